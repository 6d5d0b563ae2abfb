//! What one delivery of the interruption function did, or why it failed.

use costop_core::{Decision, ParseError, Plan};
use serde::Serialize;

use crate::drain::DrainReport;
use crate::function::Retryable;
use crate::ports::PortError;

/// Why a delivery could not be handled. [`Retryable`] maps it to the Lambda error type, so a
/// malformed event is never retried.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("the event is malformed")]
    Malformed(#[source] ParseError),
    #[error("observing the world failed for instance {instance_id}")]
    Observe {
        instance_id: String,
        #[source]
        source: PortError,
    },
    #[error("action {action} failed for interruption {interruption_id}")]
    Execute {
        interruption_id: String,
        action: &'static str,
        #[source]
        source: PortError,
    },
    /// The invocation's time ran out before the drain's own deadline (see
    /// [`crate::Function::handle_within`]); the retry carries on.
    #[error(
        "the invocation's time ran out with {pods_left} pod(s) still to drain for interruption {interruption_id}"
    )]
    OutOfTime {
        interruption_id: String,
        pods_left: usize,
    },
}

impl Retryable for HandlerError {
    fn is_retryable(&self) -> bool {
        match self {
            HandlerError::Malformed(_) => false,
            HandlerError::OutOfTime { .. } => true,
            HandlerError::Observe { source, .. } | HandlerError::Execute { source, .. } => {
                source.is_retryable()
            }
        }
    }
}

/// What happened to one delivery.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub event_id: String,
    pub kind: String,
    pub instances: Vec<InstanceOutcome>,
}

impl Outcome {
    /// The plans decided (acted on or not).
    pub fn plans(&self) -> impl Iterator<Item = &Plan> {
        self.instances.iter().filter_map(|i| i.decision.as_plan())
    }
}

/// What happened for one instance of a delivery.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceOutcome {
    pub instance_id: String,
    pub decision: Decision,
    /// Present when the plan was executed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ExecutionReport>,
}

/// What executing a plan did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExecutionReport {
    /// Another delivery owned the event: nothing was done.
    pub lost_claim: bool,
    /// Milliseconds from the start of handling to the node being cordoned and tainted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_cordon_ms: Option<u64>,
    pub targets_deregistered: usize,
    /// Listener rules that now send part of their traffic to the fallback.
    #[serde(skip_serializing_if = "is_zero")]
    pub rules_shifted: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainReport>,
    /// Actions executed, in order.
    pub actions: Vec<&'static str>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}
