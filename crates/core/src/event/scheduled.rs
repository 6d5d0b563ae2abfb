//! EventBridge Scheduler / scheduled rule ticks (`aws.events`, `Scheduled Event`).
//!
//! Only the keeper subscribes to them (its pool maintenance runs every
//! minute); the interruption function never sees one and would ignore it as
//! a foreign source. The `detail` is an empty object; the rule's ARN is the
//! first resource.
//!
//! ```json
//! { "source": "aws.events", "detail-type": "Scheduled Event",
//!   "resources": ["arn:aws:events:us-east-1:123456789012:rule/costop-keeper"], "detail": {} }
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ParseError;
use super::field::Obj;

/// `source` of scheduled events.
pub const SOURCE_EVENTS: &str = "aws.events";
/// `detail-type` of scheduled events.
pub const DETAIL_SCHEDULED: &str = "Scheduled Event";

/// One tick of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledTick {
    /// Event id.
    pub id: String,
    /// When the schedule fired.
    pub time: DateTime<Utc>,
    /// The rule that fired, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl ScheduledTick {
    /// `Ok(None)` when `value` is not a scheduled event; an error names the
    /// field when it is one but malformed.
    pub fn from_value(value: &Value) -> Result<Option<ScheduledTick>, ParseError> {
        let root = Obj::new(value, "")?;
        if root.opt_str("source")? != Some(SOURCE_EVENTS)
            || root.opt_str("detail-type")? != Some(DETAIL_SCHEDULED)
        {
            return Ok(None);
        }
        let rule = match root.opt_array("resources")?.first() {
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(root.wrong("resources[0]", "a string", other)),
            None => None,
        };
        Ok(Some(ScheduledTick {
            id: root.req_nonempty("id")?.to_owned(),
            time: root.req_rfc3339("time")?,
            rule,
        }))
    }
}
