//! EC2 Spot Instance Interruption Warning (`aws.ec2`).
//!
//! Emitted two minutes before EC2 stops, hibernates or terminates a Spot
//! instance. The two minutes count from the envelope's `time`.
//!
//! ```json
//! "detail": { "instance-id": "i-1234567890abcdef0", "instance-action": "terminate" }
//! ```

use serde::{Deserialize, Serialize};

use super::field::Obj;
use super::{ParseError, is_instance_id};

/// What EC2 will do to the instance when the warning expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceAction {
    /// The instance is terminated.
    Terminate,
    /// The instance is stopped (persistent requests).
    Stop,
    /// The instance is hibernated.
    Hibernate,
}

impl InstanceAction {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceAction::Terminate => "terminate",
            InstanceAction::Stop => "stop",
            InstanceAction::Hibernate => "hibernate",
        }
    }
}

/// `detail` of a Spot interruption warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotInterruptionWarning {
    /// The instance being interrupted.
    pub instance_id: String,
    /// What happens at the end of the two minutes.
    pub instance_action: InstanceAction,
}

impl SpotInterruptionWarning {
    pub(crate) fn parse(detail: Obj<'_>) -> Result<Self, ParseError> {
        Ok(SpotInterruptionWarning {
            instance_id: instance_id(detail, "instance-id")?,
            instance_action: match detail.req_str("instance-action")? {
                "terminate" => InstanceAction::Terminate,
                "stop" => InstanceAction::Stop,
                "hibernate" => InstanceAction::Hibernate,
                other => {
                    return Err(ParseError::InvalidValue {
                        field: detail.path("instance-action"),
                        value: other.to_owned(),
                        reason: "expected terminate, stop or hibernate".to_owned(),
                    });
                }
            },
        })
    }
}

/// A required instance id field, validated.
pub(crate) fn instance_id(detail: Obj<'_>, name: &str) -> Result<String, ParseError> {
    let id = detail.req_str(name)?;
    if !is_instance_id(id) {
        return Err(ParseError::InvalidValue {
            field: detail.path(name),
            value: id.to_owned(),
            reason: "not an EC2 instance id (i- followed by 8 or 17 hex digits)".to_owned(),
        });
    }
    Ok(id.to_owned())
}
