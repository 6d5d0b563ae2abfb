//! Why a demo run failed: the bed, costop's configuration or functions, or the displaced pods
//! not reaching the standby in time.

use std::time::Duration;

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the local bed did not come up")]
    Bed(#[source] costop_bed::BedError),
    #[error("costop's configuration from the bed's environment is invalid")]
    Config(#[source] costop_core::ConfigError),
    #[error("the bed's kubeconfig cannot be read")]
    Kubeconfig(#[source] costop_adapters::AdapterError),
    /// The scenario has no spot node to interrupt.
    #[error("scenario `{scenario}` has no Ready spot node to interrupt")]
    NoSpotNode { scenario: String },
    #[error("the captured Spot warning in events/ cannot be re-addressed")]
    Event(#[source] serde_json::Error),
    #[error("the interruption function failed")]
    Interruption(#[source] costop_app::HandlerError),
    #[error("the keeper failed")]
    Keeper(#[source] costop_app::KeeperError),
    /// The interruption function did not act on the node (the event was ignored).
    #[error("the interruption function did not act on {instance_id}: {why}")]
    Ignored { instance_id: String, why: String },
    /// The keeper started no standby, so the displaced pods have nowhere to go.
    #[error("the keeper started no standby: {why}")]
    NoStandby { why: String },
    /// The bound on the wait for the displaced pods passed.
    #[error(
        "after {:.0} s the displaced pods are not all running on the standby {standby}:\n{}",
        waited.as_secs_f64(),
        .waiting.iter().map(|w| format!("  - {w}")).collect::<Vec<_>>().join("\n")
    )]
    NotOnStandby {
        waited: Duration,
        /// The standby, and its node when it has one.
        standby: String,
        /// What each pod still waits for.
        waiting: Vec<String>,
    },
    #[error("the dry run's plan cannot be written as JSON")]
    PlanJson(#[source] serde_json::Error),
    #[error("reading the interruption's timeline from DynamoDB failed")]
    Timeline(#[source] costop_app::PortError),
    /// The service behind the ALB did not acknowledge a write in time.
    #[error("the service behind the load balancer at {url} did not answer a write within {:.0} s", waited.as_secs_f64())]
    ServiceDown { url: String, waited: Duration },
    #[error("the keeper answered its scheduled tick with something else than a tick")]
    NotATick,
    #[error("the demo's traffic could not run")]
    Load(#[source] costop_traffic::loadgen::LoadError),
    #[error("the demo's traffic task failed")]
    LoadTask(#[source] tokio::task::JoinError),
    #[error("writing the demo's output failed")]
    Output(#[source] std::io::Error),
}

impl From<std::io::Error> for DemoError {
    fn from(e: std::io::Error) -> Self {
        DemoError::Output(e)
    }
}
