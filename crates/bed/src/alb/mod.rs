//! The scenario's load balancer as a running ALB stand-in (`albsim`), configured only from
//! moto's ELBv2 state ([`from_moto`]) and kept in step with it: whenever an ELBv2 call that may
//! change state goes through the AWS front (costop's deregistrations, the controller stand-in's
//! registrations, a rule change), and every few seconds besides, the stand-in re-reads moto and
//! applies the difference (after the stand-in's own propagation delay, as the ALB does).
//!
//! Targets are found on loopback: an instance target at its instance's private IP (mapped by the
//! dial guard, 10.a.b.c → 127.a.b.c, where the kube-proxy stand-in listens), an IP target at its
//! IP mapped the same way. The AWS front answers DescribeTargetHealth from the stand-in's view.

pub mod from_moto;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use albsim::config::TargetType;
use albsim::{Alb, AlbConfig, AlbOptions, Resolver};
use tokio::task::JoinHandle;

use crate::error::BedError;
use crate::front::AwsFront;
use crate::front::target_health::TargetHealth;
use crate::link::Ec2Link;

/// Longest wait between two reads of moto when nothing went through the front (another client
/// talking to moto directly).
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(5);

/// A running ALB stand-in and the task that keeps it in step with moto.
pub struct BedAlb {
    alb: Arc<Alb>,
    sync: JoinHandle<()>,
}

impl Drop for BedAlb {
    fn drop(&mut self) {
        self.sync.abort();
        self.alb.shutdown();
    }
}

impl BedAlb {
    /// The stand-in.
    pub fn alb(&self) -> &Arc<Alb> {
        &self.alb
    }

    /// `http://127.0.0.1:PORT` of the load balancer's listener on `listener_port`.
    pub fn url(&self, listener_port: u16) -> Option<String> {
        self.alb.url(listener_port)
    }
}

/// Where a target is on loopback (see the module docs).
fn resolver(link: Arc<Ec2Link>) -> Resolver {
    Arc::new(move |tg, target| {
        let ip: IpAddr = match tg.target_type {
            TargetType::Instance => link.private_ip(&target.id)?.parse().ok()?,
            TargetType::Ip => target.id.parse().ok()?,
            TargetType::Lambda => return None,
        };
        let ip = costop_traffic::dial::to_loopback(ip).ok()?;
        Some(SocketAddr::new(IpAddr::V4(ip), target.port.or(tg.port)?))
    })
}

async fn read(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    lb_arn: &str,
) -> Result<AlbConfig, BedError> {
    let json = from_moto::read(elb, lb_arn).await?;
    serde_json::from_value(json).map_err(|e| {
        BedError::Moto(format!(
            "moto's ELBv2 state is not a load balancer configuration: {e}"
        ))
    })
}

/// Start the stand-in for the load balancer `lb_arn`. `elb` must reach moto directly (its reads
/// are not changes). Its answers to DescribeTargetHealth are wired into `front`.
pub async fn start(
    elb: aws_sdk_elasticloadbalancingv2::Client,
    lb_arn: String,
    link: Arc<Ec2Link>,
    front: &AwsFront,
    time_scale: f64,
    access_log: Option<tokio::sync::mpsc::Sender<albsim::AccessRecord>>,
    lambda_timeouts: std::collections::HashMap<String, Duration>,
) -> Result<BedAlb, BedError> {
    let config = read(&elb, &lb_arn).await?;
    let mut options = AlbOptions::new(resolver(link));
    options.time_scale = time_scale;
    options.access_log = access_log;
    options.lambda_timeouts = lambda_timeouts;
    let alb = Arc::new(
        Alb::start(config.clone(), options)
            .await
            .map_err(|e| BedError::Moto(format!("the ALB stand-in did not start: {e}")))?,
    );
    let view = Arc::downgrade(&alb);
    front.answer_target_health(Arc::new(move |arn: &str| {
        let alb = view.upgrade()?;
        let described = alb.target_health(arn)?;
        Some(
            described
                .into_iter()
                .map(|d| TargetHealth {
                    id: d.target.id,
                    port: d.target.port,
                    availability_zone: d.target.availability_zone,
                    health_check_port: d.health_check_port,
                    state: api_string(&d.target_health.state),
                    reason: d.target_health.reason.as_ref().map(api_string),
                    description: d.target_health.description,
                })
                .collect(),
        )
    }));
    let mut changes = front.elbv2_changes();
    let stand_in = alb.clone();
    let sync = tokio::spawn(async move {
        let mut last = config;
        loop {
            let _ = tokio::time::timeout(RESYNC_INTERVAL, changes.changed()).await;
            match read(&elb, &lb_arn).await {
                Ok(config) if config != last => match stand_in.apply(config.clone()).await {
                    Ok(()) => last = config,
                    Err(e) => tracing::warn!(error = %e, "the ALB stand-in refused moto's state"),
                },
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading moto's ELBv2 state failed"),
            }
        }
    });
    Ok(BedAlb { alb, sync })
}

/// The API's string for a serde unit enum (`healthy`, `Target.Timeout`, …).
fn api_string<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}
