//! Typed EventBridge events: the envelope, one module per event kind, the
//! dispatch on (`source`, `detail-type`) and the [`ParseError`] for malformed
//! input.
//!
//! Parsing is total: every input is either a typed [`Event`] (including the
//! typed no-op [`Event::Ignored`] for unknown or foreign events) or a
//! [`ParseError`] that names the offending field. Nothing here panics on
//! input and nothing here has side effects.
//!
//! | source            | detail-type                               | variant                     |
//! |-------------------|-------------------------------------------|-----------------------------|
//! | `aws.ec2`         | `EC2 Spot Instance Interruption Warning`  | [`Event::SpotInterruption`] |
//! | `aws.ec2`         | `EC2 Instance Rebalance Recommendation`   | [`Event::Rebalance`]        |
//! | `aws.ec2`         | `EC2 Instance State-change Notification`  | [`Event::StateChange`]      |
//! | `aws.autoscaling` | `EC2 Instance-terminate Lifecycle Action` | [`Event::AsgTerminate`]     |
//! | `aws.health`      | `AWS Health Event`                        | [`Event::Health`]           |
//! | any other         |                                           | [`Event::Ignored`]          |
//!
//! The keeper also takes `aws.events` / `Scheduled Event` ticks, parsed by
//! [`scheduled`] and dispatched in [`crate::standby::Trigger`].

mod field;
pub mod health;
pub mod lifecycle;
pub mod rebalance;
pub mod retarget;
pub mod scheduled;
pub mod spot;
pub mod state_change;

use std::fmt;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use field::Obj;
pub use health::{AffectedEntity, HealthEvent};
pub use lifecycle::AsgLifecycleAction;
pub use rebalance::RebalanceRecommendation;
pub use spot::{InstanceAction, SpotInterruptionWarning};
pub use state_change::{InstanceState, InstanceStateChange};

/// `source` of EC2 events.
pub const SOURCE_EC2: &str = "aws.ec2";
/// `source` of Auto Scaling events.
pub const SOURCE_AUTOSCALING: &str = "aws.autoscaling";
/// `source` of AWS Health events.
pub const SOURCE_HEALTH: &str = "aws.health";

/// `detail-type` of the two-minute Spot warning.
pub const DETAIL_SPOT_INTERRUPTION: &str = "EC2 Spot Instance Interruption Warning";
/// `detail-type` of the rebalance recommendation.
pub const DETAIL_REBALANCE: &str = "EC2 Instance Rebalance Recommendation";
/// `detail-type` of instance state changes.
pub const DETAIL_STATE_CHANGE: &str = "EC2 Instance State-change Notification";
/// `detail-type` of the Auto Scaling terminate lifecycle hook.
pub const DETAIL_ASG_TERMINATE: &str = "EC2 Instance-terminate Lifecycle Action";
/// `detail-type` of AWS Health events.
pub const DETAIL_HEALTH: &str = "AWS Health Event";

/// Why a delivery could not be parsed. Every variant names the field.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The payload is not JSON at all.
    #[error("event is not valid JSON (line {line}, column {column})")]
    Json {
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A required field is absent (or `null`).
    #[error("missing field `{field}`")]
    MissingField {
        /// Dotted path, e.g. `detail.instance-id`.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("field `{field}` must be {expected}, found {found}")]
    WrongType {
        /// Dotted path.
        field: String,
        /// What was expected, e.g. `a string`.
        expected: &'static str,
        /// What was found, e.g. `a number`.
        found: &'static str,
    },
    /// A field has the right type but a value costop cannot act on.
    #[error("field `{field}` has invalid value {value:?}: {reason}")]
    InvalidValue {
        /// Dotted path.
        field: String,
        /// The offending value.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A timestamp field does not parse.
    #[error("field `{field}` is not a valid timestamp: {value:?}")]
    InvalidTimestamp {
        /// Dotted path.
        field: String,
        /// The offending value.
        value: String,
        /// chrono's error.
        #[source]
        source: chrono::ParseError,
    },
    /// `aws_lambda_events` rejected the envelope after our own checks passed.
    #[error("EventBridge envelope is malformed")]
    Envelope {
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
}

impl ParseError {
    /// The dotted path of the offending field, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ParseError::MissingField { field }
            | ParseError::WrongType { field, .. }
            | ParseError::InvalidValue { field, .. }
            | ParseError::InvalidTimestamp { field, .. } => Some(field),
            ParseError::Json { .. } | ParseError::Envelope { .. } => None,
        }
    }
}

/// The EventBridge envelope of a recognised event (everything but `detail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// EventBridge schema version, `"0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Unique id of the event; redeliveries keep it, so it is the dedupe key.
    pub id: String,
    /// `source`, e.g. `aws.ec2`.
    pub source: String,
    /// `detail-type`.
    pub detail_type: String,
    /// Account the event was delivered to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// When the event was emitted (the Spot warning's two minutes start here).
    pub time: DateTime<Utc>,
    /// Region the event was delivered in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// ARNs (or ids) of the resources concerned.
    #[serde(default)]
    pub resources: Vec<String>,
}

/// A recognised event: its envelope and its typed `detail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered<D> {
    /// The envelope.
    pub envelope: Envelope,
    /// The typed detail.
    pub detail: D,
}

/// One parsed EventBridge delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// EC2 Spot Instance Interruption Warning.
    SpotInterruption(Delivered<SpotInterruptionWarning>),
    /// EC2 Instance Rebalance Recommendation.
    Rebalance(Delivered<RebalanceRecommendation>),
    /// EC2 Instance State-change Notification.
    StateChange(Delivered<InstanceStateChange>),
    /// EC2 Instance-terminate Lifecycle Action (Auto Scaling hook).
    AsgTerminate(Delivered<AsgLifecycleAction>),
    /// AWS Health Event.
    Health(Delivered<HealthEvent>),
    /// An event costop does not handle: a typed no-op, never an error.
    Ignored(Ignored),
}

/// The kind of a recognised event; selects the taint key and deadline rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// Spot two-minute warning.
    SpotInterruption,
    /// Rebalance recommendation.
    RebalanceRecommendation,
    /// Instance state change.
    InstanceStateChange,
    /// Auto Scaling terminate lifecycle hook.
    AsgLifecycleTermination,
    /// AWS Health scheduled change.
    ScheduledMaintenance,
}

impl EventKind {
    /// The kebab-case slug (used in interruption ids and metric dimensions).
    pub fn slug(self) -> &'static str {
        match self {
            EventKind::SpotInterruption => "spot-interruption",
            EventKind::RebalanceRecommendation => "rebalance-recommendation",
            EventKind::InstanceStateChange => "instance-state-change",
            EventKind::AsgLifecycleTermination => "asg-lifecycle-termination",
            EventKind::ScheduledMaintenance => "scheduled-maintenance",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// A delivery costop deliberately does nothing with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    /// `source` as delivered.
    pub source: String,
    /// `detail-type` as delivered.
    pub detail_type: String,
    /// `id` if present (for log correlation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why it is ignored.
    pub reason: IgnoredReason,
}

/// Why an event is a no-op at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoredReason {
    /// A source costop subscribes to, but a detail-type it does not handle.
    UnknownDetailType,
    /// A source costop does not handle at all.
    ForeignSource,
}

impl Event {
    /// Parses raw bytes (what a Lambda receives, or a file under `events/`).
    pub fn parse(bytes: &[u8]) -> Result<Event, ParseError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|source| ParseError::Json {
            line: source.line(),
            column: source.column(),
            source,
        })?;
        Event::from_value(&value)
    }

    /// Parses an already-decoded JSON value.
    pub fn from_value(value: &Value) -> Result<Event, ParseError> {
        let root = Obj::new(value, "")?;
        let source = root.req_str("source")?;
        let detail_type = root.req_str("detail-type")?;
        if classify(source, detail_type).is_none() {
            // Foreign/unknown events are not validated further: we never act
            // on them, so their shape is not our business.
            return Ok(Event::Ignored(ignored(
                source,
                detail_type,
                root.opt_str("id").ok().flatten(),
            )));
        }
        // Check the fields we depend on ourselves so errors name them, then
        // let aws_lambda_events own the envelope type.
        root.req_nonempty("id")?;
        root.req_rfc3339("time")?;
        Obj::new(root.req("detail")?, "detail")?;
        let _ = root.opt_str("account")?;
        let _ = root.opt_str("region")?;
        for (i, r) in root.opt_array("resources")?.iter().enumerate() {
            if !r.is_string() {
                return Err(root.wrong(&format!("resources[{i}]"), "a string", r));
            }
        }
        let ev: EventBridgeEvent<Value> = serde_json::from_value(value.clone())
            .map_err(|source| ParseError::Envelope { source })?;
        Event::from_eventbridge(ev)
    }

    /// Converts an `aws_lambda_events` EventBridge event (what
    /// `lambda_runtime` hands a handler typed as `EventBridgeEvent<Value>`).
    pub fn from_eventbridge(ev: EventBridgeEvent<Value>) -> Result<Event, ParseError> {
        let Some(kind) = classify(&ev.source, &ev.detail_type) else {
            return Ok(Event::Ignored(ignored(
                &ev.source,
                &ev.detail_type,
                ev.id.as_deref(),
            )));
        };
        let id = ev
            .id
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ParseError::MissingField { field: "id".into() })?;
        let time = ev.time.ok_or_else(|| ParseError::MissingField {
            field: "time".into(),
        })?;
        let envelope = Envelope {
            version: ev.version,
            id,
            source: ev.source,
            detail_type: ev.detail_type,
            account: ev.account,
            time,
            region: ev.region,
            resources: ev.resources.unwrap_or_default(),
        };
        let detail = Obj::new(&ev.detail, "detail")?;
        Ok(match kind {
            EventKind::SpotInterruption => Event::SpotInterruption(Delivered {
                detail: SpotInterruptionWarning::parse(detail)?,
                envelope,
            }),
            EventKind::RebalanceRecommendation => Event::Rebalance(Delivered {
                detail: RebalanceRecommendation::parse(detail)?,
                envelope,
            }),
            EventKind::InstanceStateChange => Event::StateChange(Delivered {
                detail: InstanceStateChange::parse(detail)?,
                envelope,
            }),
            EventKind::AsgLifecycleTermination => Event::AsgTerminate(Delivered {
                detail: AsgLifecycleAction::parse(detail)?,
                envelope,
            }),
            EventKind::ScheduledMaintenance => Event::Health(Delivered {
                detail: HealthEvent::parse(detail)?,
                envelope,
            }),
        })
    }

    /// The envelope, for recognised events.
    pub fn envelope(&self) -> Option<&Envelope> {
        match self {
            Event::SpotInterruption(d) => Some(&d.envelope),
            Event::Rebalance(d) => Some(&d.envelope),
            Event::StateChange(d) => Some(&d.envelope),
            Event::AsgTerminate(d) => Some(&d.envelope),
            Event::Health(d) => Some(&d.envelope),
            Event::Ignored(_) => None,
        }
    }

    /// The kind, for recognised events.
    pub fn kind(&self) -> Option<EventKind> {
        match self {
            Event::SpotInterruption(_) => Some(EventKind::SpotInterruption),
            Event::Rebalance(_) => Some(EventKind::RebalanceRecommendation),
            Event::StateChange(_) => Some(EventKind::InstanceStateChange),
            Event::AsgTerminate(_) => Some(EventKind::AsgLifecycleTermination),
            Event::Health(_) => Some(EventKind::ScheduledMaintenance),
            Event::Ignored(_) => None,
        }
    }

    /// `source` as delivered.
    pub fn source(&self) -> &str {
        match self {
            Event::Ignored(i) => &i.source,
            _ => self.envelope().map_or("", |e| e.source.as_str()),
        }
    }

    /// `detail-type` as delivered.
    pub fn detail_type(&self) -> &str {
        match self {
            Event::Ignored(i) => &i.detail_type,
            _ => self.envelope().map_or("", |e| e.detail_type.as_str()),
        }
    }

    /// The event id, when present.
    pub fn id(&self) -> Option<&str> {
        match self {
            Event::Ignored(i) => i.id.as_deref(),
            _ => self.envelope().map(|e| e.id.as_str()),
        }
    }

    /// The EC2 instance ids this event is about, in event order, without
    /// duplicates. The shell observes [`crate::Facts`] for each of them.
    /// Empty for ignored events and for Health events that name no EC2
    /// instance (e.g. an RDS event); Health entities marked `RESOLVED` are
    /// left out.
    pub fn instance_ids(&self) -> Vec<String> {
        match self {
            Event::SpotInterruption(d) => vec![d.detail.instance_id.clone()],
            Event::Rebalance(d) => vec![d.detail.instance_id.clone()],
            Event::StateChange(d) => vec![d.detail.instance_id.clone()],
            Event::AsgTerminate(d) => vec![d.detail.ec2_instance_id.clone()],
            Event::Health(d) => {
                let mut out: Vec<String> = Vec::new();
                // Entities AWS marks RESOLVED are listed too: the planner cancels what was
                // scheduled for them.
                for e in &d.detail.affected_entities {
                    if let Some(id) = &e.instance_id
                        && !out.contains(id)
                    {
                        out.push(id.clone());
                    }
                }
                // An event without entities still lists resources (same ids).
                if d.detail.affected_entities.is_empty() {
                    for r in &d.envelope.resources {
                        if let Some(id) = resolve_instance_id(r)
                            && !out.iter().any(|o| o == id)
                        {
                            out.push(id.to_owned());
                        }
                    }
                }
                out
            }
            Event::Ignored(_) => Vec::new(),
        }
    }
}

fn classify(source: &str, detail_type: &str) -> Option<EventKind> {
    match (source, detail_type) {
        (SOURCE_EC2, DETAIL_SPOT_INTERRUPTION) => Some(EventKind::SpotInterruption),
        (SOURCE_EC2, DETAIL_REBALANCE) => Some(EventKind::RebalanceRecommendation),
        (SOURCE_EC2, DETAIL_STATE_CHANGE) => Some(EventKind::InstanceStateChange),
        (SOURCE_AUTOSCALING, DETAIL_ASG_TERMINATE) => Some(EventKind::AsgLifecycleTermination),
        (SOURCE_HEALTH, DETAIL_HEALTH) => Some(EventKind::ScheduledMaintenance),
        _ => None,
    }
}

fn ignored(source: &str, detail_type: &str, id: Option<&str>) -> Ignored {
    let reason = if matches!(source, SOURCE_EC2 | SOURCE_AUTOSCALING | SOURCE_HEALTH) {
        IgnoredReason::UnknownDetailType
    } else {
        IgnoredReason::ForeignSource
    };
    Ignored {
        source: source.to_owned(),
        detail_type: detail_type.to_owned(),
        id: id.map(str::to_owned),
        reason,
    }
}

/// True if `s` looks like an EC2 instance id (`i-` + 8 or 17 hex digits).
pub fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Extracts the instance id from an EC2 instance ARN, e.g.
/// `arn:aws:ec2:us-east-1:123456789012:instance/i-0abc…`. Accepts any
/// partition and the account-less form EC2 uses in Spot warnings
/// (`arn:aws:ec2:us-east-2a:instance/i-…`).
pub fn instance_id_from_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.strip_prefix("arn:")?.splitn(3, ':');
    let _partition = parts.next()?;
    if parts.next()? != "ec2" {
        return None;
    }
    // The resource is the last ':'-separated segment: "instance/i-…".
    let resource = parts.next()?.rsplit(':').next()?;
    let id = resource.strip_prefix("instance/")?;
    is_instance_id(id).then_some(id)
}

/// An instance id given either as an id or as an instance ARN.
pub fn resolve_instance_id(value: &str) -> Option<&str> {
    let value = value.trim();
    if is_instance_id(value) {
        Some(value)
    } else {
        instance_id_from_arn(value)
    }
}

/// The file-name prefix a sample of this event has under `events/`:
/// `<source>-<slug(detail-type)>`, where the slug is the lower-cased
/// detail-type with runs of non-alphanumerics turned into `-`, minus a
/// leading word that repeats the service (`aws.ec2` + `EC2 Spot…` →
/// `aws.ec2-spot-…`).
pub fn sample_slug(source: &str, detail_type: &str) -> String {
    let mut slug = String::new();
    for c in detail_type.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let service = source.rsplit('.').next().unwrap_or(source);
    let slug = slug.strip_prefix(&format!("{service}-")).unwrap_or(slug);
    format!("{source}-{slug}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_recognised() {
        assert!(is_instance_id("i-1234567890abcdef0"));
        assert!(is_instance_id("i-12345678"));
        assert!(!is_instance_id("i-1234567890ABCDEF0"));
        assert!(!is_instance_id("i-123"));
        assert!(!is_instance_id("db-abc"));
    }

    #[test]
    fn instance_arns_resolve_to_ids() {
        assert_eq!(
            instance_id_from_arn("arn:aws:ec2:us-east-1:123456789012:instance/i-0abc1234567890def"),
            Some("i-0abc1234567890def")
        );
        assert_eq!(
            instance_id_from_arn(
                "arn:aws-us-gov:ec2:us-gov-west-1:123456789012:instance/i-0abc1234567890def"
            ),
            Some("i-0abc1234567890def")
        );
        assert_eq!(
            instance_id_from_arn("arn:aws:ec2:us-east-2a:instance/i-1234567890abcdef0"),
            Some("i-1234567890abcdef0")
        );
        assert_eq!(
            instance_id_from_arn("arn:aws:rds:us-east-1:123456789012:db:x"),
            None
        );
        assert_eq!(
            instance_id_from_arn("arn:aws:ec2:us-east-1:123456789012:volume/vol-1"),
            None
        );
        assert_eq!(resolve_instance_id(" i-12345678 "), Some("i-12345678"));
    }

    #[test]
    fn sample_slugs_drop_the_repeated_service_word() {
        assert_eq!(
            sample_slug("aws.ec2", "EC2 Spot Instance Interruption Warning"),
            "aws.ec2-spot-instance-interruption-warning"
        );
        assert_eq!(
            sample_slug("aws.ec2", "EC2 Instance State-change Notification"),
            "aws.ec2-instance-state-change-notification"
        );
        assert_eq!(
            sample_slug("aws.autoscaling", "EC2 Instance-terminate Lifecycle Action"),
            "aws.autoscaling-ec2-instance-terminate-lifecycle-action"
        );
        assert_eq!(
            sample_slug("aws.health", "AWS Health Event"),
            "aws.health-aws-health-event"
        );
        assert_eq!(
            sample_slug("aws.s3", "Object Created"),
            "aws.s3-object-created"
        );
    }
}
