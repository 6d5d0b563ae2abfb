//! EC2 Instance State-change Notification (`aws.ec2`).
//!
//! ```json
//! "detail": { "instance-id": "i-abcd1111", "state": "shutting-down" }
//! ```
//!
//! `stopping`/`shutting-down` mean the instance is going away now (the last
//! chance to drain, e.g. when the Spot warning was missed); `stopped`/
//! `terminated` mean it is gone; `pending`/`running` are parsed but not acted
//! on.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::field::Obj;
use super::spot::instance_id;

/// An EC2 instance state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    /// Launching or starting.
    Pending,
    /// Running.
    Running,
    /// Stopping (EBS-backed stop or hibernate in progress).
    Stopping,
    /// Stopped.
    Stopped,
    /// Terminating.
    ShuttingDown,
    /// Terminated.
    Terminated,
}

impl InstanceState {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
        }
    }

    /// Parses the wire spelling.
    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            _ => return None,
        })
    }

    /// The instance is on its way down: drain now.
    pub fn is_going_down(self) -> bool {
        matches!(self, InstanceState::Stopping | InstanceState::ShuttingDown)
    }

    /// The instance is already down: its pods are gone with it.
    pub fn is_down(self) -> bool {
        matches!(self, InstanceState::Stopped | InstanceState::Terminated)
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `detail` of a state-change notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStateChange {
    /// The instance.
    pub instance_id: String,
    /// Its new state.
    pub state: InstanceState,
}

impl InstanceStateChange {
    pub(crate) fn parse(detail: Obj<'_>) -> Result<Self, ParseError> {
        let raw = detail.req_str("state")?;
        let state = InstanceState::from_wire(raw).ok_or_else(|| ParseError::InvalidValue {
            field: detail.path("state"),
            value: raw.to_owned(),
            reason: "expected pending, running, stopping, stopped, shutting-down or terminated"
                .to_owned(),
        })?;
        Ok(InstanceStateChange {
            instance_id: instance_id(detail, "instance-id")?,
            state,
        })
    }
}
