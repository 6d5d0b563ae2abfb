//! What woke the keeper: a scheduled tick, a Spot warning, a rebalance
//! recommendation, or anything else (a typed, logged no-op).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::scheduled::ScheduledTick;
use crate::event::{
    Delivered, Event, Ignored, IgnoredReason, ParseError, RebalanceRecommendation,
    SpotInterruptionWarning,
};

/// One keeper delivery, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "trigger", rename_all = "snake_case")]
pub enum Trigger {
    /// Pool maintenance (every minute).
    Tick(ScheduledTick),
    /// Start a standby for the interrupted node.
    SpotInterruption(Delivered<SpotInterruptionWarning>),
    /// Retype the zone's standby ahead of a likely interruption.
    Rebalance(Delivered<RebalanceRecommendation>),
    /// Not the keeper's business (an interruption-only event kind, or foreign).
    Ignored(Ignored),
}

impl Trigger {
    /// Parses raw bytes.
    pub fn parse(bytes: &[u8]) -> Result<Trigger, ParseError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|source| ParseError::Json {
            line: source.line(),
            column: source.column(),
            source,
        })?;
        Trigger::from_value(&value)
    }

    /// Parses a decoded delivery.
    pub fn from_value(value: &Value) -> Result<Trigger, ParseError> {
        if let Some(tick) = ScheduledTick::from_value(value)? {
            return Ok(Trigger::Tick(tick));
        }
        Ok(match Event::from_value(value)? {
            Event::SpotInterruption(d) => Trigger::SpotInterruption(d),
            Event::Rebalance(d) => Trigger::Rebalance(d),
            Event::Ignored(i) => Trigger::Ignored(i),
            other => Trigger::Ignored(Ignored {
                source: other.source().to_owned(),
                detail_type: other.detail_type().to_owned(),
                id: other.id().map(str::to_owned),
                reason: IgnoredReason::UnknownDetailType,
            }),
        })
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Tick(_) => "tick",
            Trigger::SpotInterruption(_) => "spot-interruption",
            Trigger::Rebalance(_) => "rebalance-recommendation",
            Trigger::Ignored(_) => "ignored",
        }
    }
}
