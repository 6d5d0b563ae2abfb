//! The lease of a shifted rule: what it was, what was applied, and what the restore follows.
//! One item per rule under [`crate::record::SHIFT_PK`], sort key the rule's ARN.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{IngressShift, WeightedGroup};
use crate::record::{Attr, Item, Key, RecordError, SHIFT_PK, get_s};

/// One group of a shifted rule: its targets at the notice, and how many of them the
/// interrupted node held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupShare {
    /// Target group ARN.
    pub target_group_arn: String,
    /// Targets registered at the notice.
    pub expected: usize,
    /// Of those, the interrupted node's.
    pub announced: usize,
    /// The interrupted node's targets (instance id or IP): capacity that is leaving, however
    /// healthy it still looks. Empty in leases written before it was recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaving: Vec<String>,
}

impl GroupShare {
    /// The node's share of the group.
    pub fn announced_share(&self) -> f64 {
        ratio(self.announced, self.expected)
    }

    /// The share of the group's capacity missing with `in_service` targets.
    pub fn deficit_share(&self, in_service: usize) -> f64 {
        ratio(self.expected.saturating_sub(in_service), self.expected)
    }

    /// The share of the group's capacity missing with `healthy` targets, those leaving not
    /// counted: the node's share at the notice, shrinking as replacements turn healthy.
    pub fn missing_share(&self, healthy: &[String]) -> f64 {
        let staying = healthy.iter().filter(|t| !self.leaving.contains(t)).count();
        self.deficit_share(staying)
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// A shifted rule (see the module docs of [`super`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftLease {
    /// Rule ARN.
    pub rule_arn: String,
    /// Its listener.
    pub listener_arn: String,
    /// The listener's default rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_default: bool,
    /// The forward before the shift: what the restore puts back.
    pub before: Vec<WeightedGroup>,
    /// The forward applied last.
    pub applied: Vec<WeightedGroup>,
    /// The fallback's target group.
    pub fallback_target_group: String,
    /// `COSTOP_SHIFT_FACTOR` at the notice.
    pub factor: f64,
    /// The rule's groups that held the node's targets.
    pub groups: Vec<GroupShare>,
    /// The interruption that shifted it.
    pub interruption_id: String,
    /// Until then the node's announced share stays shifted (its deadline).
    pub hold_until: DateTime<Utc>,
    /// The rule is put back then at the latest.
    pub restore_by: DateTime<Utc>,
    /// Since when the tick has found every group whole again (the restore waits
    /// `COSTOP_SHIFT_RESTORE_HOLD_SECONDS` from then); `None` while capacity is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole_since: Option<DateTime<Utc>>,
    /// For a rule the load-balancer controller manages: the Ingress the weights go to, and
    /// what it had before (leases of other rules have none). Boxed: most leases have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Box<IngressShift>>,
}

impl ShiftLease {
    /// The rule as the lease knows it (its forward as before the shift).
    pub fn rule(&self) -> super::RuleFacts {
        super::RuleFacts {
            arn: self.rule_arn.clone(),
            listener_arn: self.listener_arn.clone(),
            is_default: self.is_default,
            forward: self.before.clone(),
            ingress: self.ingress.as_deref().map(IngressShift::ingress),
            hosts: Vec::new(),
            paths: Vec::new(),
        }
    }

    /// The fallback's weight in `forward`, in percent.
    pub fn to_fallback(&self, forward: &[WeightedGroup]) -> u32 {
        forward
            .iter()
            .filter(|g| g.target_group_arn == self.fallback_target_group)
            .map(|g| g.weight)
            .sum()
    }
}

/// The key of the lease of `rule_arn`.
pub fn shift_lease_key(rule_arn: &str) -> Key {
    Key {
        pk: SHIFT_PK.to_owned(),
        sk: format!("RULE#{rule_arn}"),
    }
}

/// The lease as a table item (the lease as JSON beside its key; no TTL: only a restore
/// deletes it, so a shift is never forgotten).
pub fn shift_lease_item(lease: &ShiftLease) -> Result<Item, RecordError> {
    let mut item = shift_lease_key(&lease.rule_arn).to_item();
    let json = serde_json::to_string(lease).map_err(|source| RecordError::Json {
        name: "lease".into(),
        source,
    })?;
    item.insert("lease".into(), Attr::s(json));
    item.insert("interruption_id".into(), Attr::s(&lease.interruption_id));
    Ok(item)
}

/// A lease read back.
pub fn shift_lease_from_item(item: &Item) -> Result<ShiftLease, RecordError> {
    serde_json::from_str(get_s(item, "lease")?).map_err(|source| RecordError::Json {
        name: "lease".into(),
        source,
    })
}
