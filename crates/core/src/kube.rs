//! The small slice of Kubernetes vocabulary the core reasons about: taints,
//! their effects, tolerations, and the name/value syntax rules a taint or
//! label must obey. Plain data, no client: the shell maps these to and from
//! `k8s-openapi` types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A taint effect (`spec.taints[].effect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaintEffect {
    /// New pods that do not tolerate the taint are not scheduled.
    NoSchedule,
    /// The scheduler tries to avoid the node.
    PreferNoSchedule,
    /// Running pods that do not tolerate the taint are evicted too.
    NoExecute,
}

impl TaintEffect {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

impl fmt::Display for TaintEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for [`TaintEffect::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown taint effect {0:?} (expected NoSchedule, PreferNoSchedule or NoExecute)")]
pub struct UnknownTaintEffect(pub String);

impl FromStr for TaintEffect {
    type Err = UnknownTaintEffect;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "NoSchedule" => Ok(TaintEffect::NoSchedule),
            "PreferNoSchedule" => Ok(TaintEffect::PreferNoSchedule),
            "NoExecute" => Ok(TaintEffect::NoExecute),
            other => Err(UnknownTaintEffect(other.to_owned())),
        }
    }
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taint {
    /// Qualified-name key, e.g. `costop.io/spot-interruption`.
    pub key: String,
    /// Optional label-syntax value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Effect.
    pub effect: TaintEffect,
}

impl Taint {
    /// Convenience constructor.
    pub fn new(key: impl Into<String>, value: Option<String>, effect: TaintEffect) -> Self {
        Taint {
            key: key.into(),
            value,
            effect,
        }
    }
}

/// A pod toleration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toleration {
    /// Key, absent = match all keys (with operator Exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Exists` or `Equal` (default `Equal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Value for `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Effect, absent = all effects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
    /// For NoExecute: how long the pod stays bound after the taint appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

impl Toleration {
    /// Kubernetes' matching rule: the effect matches (or is empty), the key
    /// matches (or is empty with `Exists`), and with `Equal` the values match.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        let exists = self.operator.as_deref() == Some("Exists");
        match &self.key {
            None => exists,
            Some(k) if *k != taint.key => false,
            Some(_) if exists => true,
            Some(_) => self.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        }
    }

    /// The `Equal` toleration of exactly `taint`.
    pub fn of(taint: &Taint) -> Toleration {
        Toleration {
            key: Some(taint.key.clone()),
            operator: Some("Equal".to_owned()),
            value: taint.value.clone(),
            effect: Some(taint.effect),
            toleration_seconds: None,
        }
    }
}

/// The node's taints after adding (or replacing) `taint`.
///
/// Taints are unique per (key, effect) in the API; costop owns its keys, so
/// any existing taint with the same key is replaced rather than duplicated.
/// That makes re-applying a plan idempotent.
pub fn with_taint(existing: &[Taint], taint: Taint) -> Vec<Taint> {
    let mut out: Vec<Taint> = existing
        .iter()
        .filter(|t| t.key != taint.key)
        .cloned()
        .collect();
    out.push(taint);
    out
}

/// True if `s` is a Kubernetes qualified name (`[prefix/]name`), the syntax
/// of label, annotation and taint keys.
pub fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return false;
    }
    !name.is_empty() && name.len() <= 63 && is_label_value(name)
}

/// True if `s` is a valid label (and taint) value: empty, or up to 63
/// alphanumerics, `-`, `_`, `.`, beginning and ending with an alphanumeric.
pub fn is_label_value(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let bytes = s.as_bytes();
    s.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// Turns arbitrary text into a valid label value (for taint values derived
/// from event data): invalid characters become `-`, the result is trimmed to
/// 63 characters and to alphanumeric ends.
pub fn to_label_value(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_a_taint_replaces_one_with_the_same_key() {
        let existing = vec![
            Taint::new("a", None, TaintEffect::NoSchedule),
            Taint::new("costop.io/x", Some("old".into()), TaintEffect::NoSchedule),
        ];
        let out = with_taint(
            &existing,
            Taint::new("costop.io/x", Some("new".into()), TaintEffect::NoExecute),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].value.as_deref(), Some("new"));
    }

    #[test]
    fn qualified_names_follow_the_api_rules() {
        assert!(is_qualified_name("costop.io/spot-interruption"));
        assert!(is_qualified_name("plain"));
        assert!(!is_qualified_name("Bad.Prefix/x"));
        assert!(!is_qualified_name("costop.io/"));
        assert!(!is_qualified_name("-x"));
        assert!(!is_qualified_name(""));
    }

    #[test]
    fn arbitrary_text_becomes_a_label_value() {
        assert_eq!(
            to_label_value("AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED"),
            "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED"
        );
        assert_eq!(to_label_value("shutting down!"), "shutting-down");
        assert!(is_label_value(&to_label_value(&"x".repeat(100))));
    }

    #[test]
    fn taint_effects_parse_and_print() {
        assert_eq!(
            "NoExecute".parse::<TaintEffect>().unwrap(),
            TaintEffect::NoExecute
        );
        assert!("noexecute".parse::<TaintEffect>().is_err());
        assert_eq!(TaintEffect::NoSchedule.to_string(), "NoSchedule");
    }
}
