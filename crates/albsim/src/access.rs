//! Per-request access records, shaped after the ALB access log's fields
//! (<https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-access-logs.html#access-log-entry-syntax>),
//! so a benchmark can tell failures the load balancer generated (`elb_status_code` without a
//! `target_status_code`) from answers a target gave.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;

/// One request as the access log would record it.
#[derive(Debug, Clone, Serialize)]
pub struct AccessRecord {
    /// When the response was complete.
    pub time: SystemTime,
    pub listener_port: u16,
    pub client: SocketAddr,
    pub method: String,
    pub path: String,
    /// The target group the request was forwarded to, if any.
    pub target_group_arn: Option<String>,
    /// The target's id (instance id, IP, function ARN) and the address dialled, if any.
    pub target_id: Option<String>,
    pub target_addr: Option<SocketAddr>,
    /// The status the client got.
    pub elb_status_code: u16,
    /// The status the target answered, absent when the target gave no complete answer.
    pub target_status_code: Option<u16>,
    /// Time spent waiting on the target (connect, request, full response); absent when no
    /// target was dialled.
    pub target_processing_time: Option<Duration>,
    /// Why the load balancer answered itself, e.g. `TargetConnectionError`,
    /// `TargetResponseTimeout`, `NoHealthyTargets`, `LambdaUnhandled`.
    pub error_reason: Option<&'static str>,
    /// `forward`, `fixed-response` or `redirect`; absent for a request rejected before routing.
    pub action: Option<&'static str>,
}

/// Where records go: a bounded channel that never slows the data path (records are dropped
/// when it is full).
#[derive(Clone)]
pub struct AccessSink(Option<mpsc::Sender<AccessRecord>>);

impl AccessSink {
    pub fn new(sender: Option<mpsc::Sender<AccessRecord>>) -> Self {
        Self(sender)
    }

    pub fn emit(&self, record: AccessRecord) {
        if let Some(sender) = &self.0
            && sender.try_send(record).is_err()
        {
            tracing::debug!("access record dropped: the channel is full or closed");
        }
    }
}
