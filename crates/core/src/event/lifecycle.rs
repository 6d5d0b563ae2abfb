//! EC2 Instance-terminate Lifecycle Action (`aws.autoscaling`).
//!
//! Auto Scaling holds a terminating instance in `Terminating:Wait` until
//! the hook is completed (or its heartbeat timeout expires). costop drains
//! the node and then completes the action with `CONTINUE`.
//!
//! ```json
//! "detail": {
//!   "LifecycleActionToken": "87654321-4321-4321-4321-210987654321",
//!   "AutoScalingGroupName": "my-asg",
//!   "LifecycleHookName": "my-lifecycle-hook",
//!   "EC2InstanceId": "i-1234567890abcdef0",
//!   "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
//!   "NotificationMetadata": "additional-info",
//!   "Origin": "AutoScalingGroup",
//!   "Destination": "EC2"
//! }
//! ```

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::field::Obj;
use super::spot::instance_id;

/// The only transition this detail-type carries.
pub const TRANSITION_TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";

/// `detail` of an instance-terminate lifecycle action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsgLifecycleAction {
    /// Token to complete/heartbeat this specific action.
    pub lifecycle_action_token: String,
    /// The Auto Scaling group.
    pub auto_scaling_group_name: String,
    /// The hook.
    pub lifecycle_hook_name: String,
    /// The terminating instance.
    pub ec2_instance_id: String,
    /// Always [`TRANSITION_TERMINATING`].
    pub lifecycle_transition: String,
    /// Free-form metadata configured on the hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_metadata: Option<String>,
    /// Where the instance comes from (`AutoScalingGroup` or `WarmPool`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Where it goes (`EC2` = terminated, `WarmPool` = returned to the pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

impl AsgLifecycleAction {
    pub(crate) fn parse(detail: Obj<'_>) -> Result<Self, ParseError> {
        let transition = detail.req_str("LifecycleTransition")?;
        if transition != TRANSITION_TERMINATING {
            return Err(ParseError::InvalidValue {
                field: detail.path("LifecycleTransition"),
                value: transition.to_owned(),
                reason: format!("expected {TRANSITION_TERMINATING}"),
            });
        }
        Ok(AsgLifecycleAction {
            lifecycle_action_token: detail.req_nonempty("LifecycleActionToken")?.to_owned(),
            auto_scaling_group_name: detail.req_nonempty("AutoScalingGroupName")?.to_owned(),
            lifecycle_hook_name: detail.req_nonempty("LifecycleHookName")?.to_owned(),
            ec2_instance_id: instance_id(detail, "EC2InstanceId")?,
            lifecycle_transition: transition.to_owned(),
            notification_metadata: detail.opt_str("NotificationMetadata")?.map(str::to_owned),
            origin: detail.opt_str("Origin")?.map(str::to_owned),
            destination: detail.opt_str("Destination")?.map(str::to_owned),
        })
    }
}
