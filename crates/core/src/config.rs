//! Typed configuration, parsed purely from `(key, value)` pairs.
//!
//! The shell passes `std::env::vars()`; tests pass literal pairs. Only keys
//! starting with `COSTOP_` are read; an unset or empty variable takes its
//! default. A bad value is a [`ConfigError`] naming the variable, so a
//! misconfigured Lambda fails at cold start instead of mid-interruption.
//! [`Config`]'s `Display` prints one line for the startup log (there are no
//! secrets in it: credentials come from the Lambda role, never from here).
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `COSTOP_TABLE` | `costop` | DynamoDB table (single-table design, see [`crate::record`]). |
//! | `COSTOP_TAINT_EFFECT` | `NoSchedule` | Effect of costop's taints: `NoSchedule` or `NoExecute` (`NoExecute` also evicts non-tolerating pods via the taint manager, bypassing PDBs). |
//! | `COSTOP_TAINT_KEY_SPOT_INTERRUPTION` | `costop.io/spot-interruption` | Taint key for Spot warnings. |
//! | `COSTOP_TAINT_KEY_REBALANCE_RECOMMENDATION` | `costop.io/rebalance-recommendation` | Taint key for rebalance recommendations. |
//! | `COSTOP_TAINT_KEY_ASG_LIFECYCLE_TERMINATION` | `costop.io/asg-lifecycle-termination` | Taint key for ASG terminate hooks. |
//! | `COSTOP_TAINT_KEY_SCHEDULED_MAINTENANCE` | `costop.io/scheduled-maintenance` | Taint key for AWS Health scheduled changes. |
//! | `COSTOP_TAINT_KEY_INSTANCE_STATE_CHANGE` | `costop.io/instance-state-change` | Taint key for stopping/shutting-down instances. |
//! | `COSTOP_DRAIN_CONCURRENCY` | `16` | Evictions in flight at once (1–1000). |
//! | `COSTOP_KUBE_QPS` | `50` | Kubernetes client queries per second (> 0). |
//! | `COSTOP_KUBE_BURST` | `100` | Kubernetes client burst (≥ 1). |
//! | `COSTOP_GRACE_CAP_SECONDS` | `90` | Upper bound on any pod's eviction grace period (≥ 1). |
//! | `COSTOP_SAFETY_MARGIN_SECONDS` | `15` | Pods must be gone this long before the deadline (≥ 0, < deadline window). |
//! | `COSTOP_DEADLINE_WINDOW_SECONDS` | `120` | Spot warning lead time: deadline = event time + this. |
//! | `COSTOP_ASG_HOOK_DEADLINE_SECONDS` | `300` | Deadline for ASG terminate hooks, from event time; keep ≤ the hook's heartbeat timeout. |
//! | `COSTOP_DEDUPE_LEASE_SECONDS` | `180` | A delivery seen but not finished within this long may be taken over by a redelivery. |
//! | `COSTOP_EVICTION_BACKOFF_BASE_MS` | `250` | First retry delay after a PDB 429. |
//! | `COSTOP_EVICTION_BACKOFF_MAX_MS` | `5000` | Retry delay ceiling. |
//! | `COSTOP_EVICTION_MAX_ATTEMPTS` | `60` | Eviction attempts per pod before giving up (the deadline usually ends it first). |
//! | `COSTOP_DRY_RUN` | `false` | Plan and print, change nothing. |
//! | `COSTOP_REQUIRE_MANAGED_TAG` | `false` | Act only on instances tagged `costop.io/managed=true`. |
//! | `COSTOP_CLUSTER_ALLOW_LIST` | *(empty)* | Comma-separated cluster names; empty = any cluster found via instance tags. |
//! | `COSTOP_FORCE_DELETE_AT_DEADLINE` | `false` | Delete pods still present at the deadline (bypasses PDBs). |
//! | `COSTOP_DETACH_FROM_ASG` | `false` | Detach the instance from its ASG (desired capacity kept) so a replacement launches early. |
//! | `COSTOP_OUT_OF_SERVICE_ON_TERMINATED` | `false` | Put `node.kubernetes.io/out-of-service` on nodes whose instance stopped/terminated. |
//! | `COSTOP_TIMELINE_TTL_DAYS` | `30` | DynamoDB TTL of records (1–3650). |
//! | `COSTOP_TAINT_KEY_STANDBY` | `costop.io/standby` | Taint key of warm standbys (value `true`, `NoSchedule`); replacement pods get its toleration. |
//! | `COSTOP_STANDBY_POOL_SIZE` | `1` | Warm standbys wanted per availability zone (0–100); the keeper reports the pool against it. |
//! | `COSTOP_STANDBY_MIN_SERVE_SECONDS` | `600` | A started standby serves at least this long before it may return to the pool. |
//! | `COSTOP_STANDBY_WATCH_SECONDS` | `240` | After a Spot warning the keeper gives replacement pods the standby toleration for this long (bounded by its invocation). |
//! | `COSTOP_METRICS_NAMESPACE` | `Costop` | CloudWatch namespace for EMF metrics. |
//! | `COSTOP_LOG_LEVEL` | `info` | Log filter (a level or a `tracing` env-filter directive). |
//!
//! Booleans accept `true/false`, `1/0`, `yes/no`, `on/off` (any case).

use std::collections::BTreeMap;
use std::fmt;
use std::num::{ParseFloatError, ParseIntError};

use serde::{Deserialize, Serialize};

use crate::constants;
use crate::event::EventKind;
use crate::kube::{TaintEffect, is_qualified_name};
use crate::plan::BackoffPolicy;

/// Prefix of every variable costop reads.
pub const PREFIX: &str = "COSTOP_";

/// Every variable [`Config::from_env`] understands.
pub const KNOWN_VARS: [&str; 31] = [
    "COSTOP_TABLE",
    "COSTOP_TAINT_EFFECT",
    "COSTOP_TAINT_KEY_SPOT_INTERRUPTION",
    "COSTOP_TAINT_KEY_REBALANCE_RECOMMENDATION",
    "COSTOP_TAINT_KEY_ASG_LIFECYCLE_TERMINATION",
    "COSTOP_TAINT_KEY_SCHEDULED_MAINTENANCE",
    "COSTOP_TAINT_KEY_INSTANCE_STATE_CHANGE",
    "COSTOP_DRAIN_CONCURRENCY",
    "COSTOP_KUBE_QPS",
    "COSTOP_KUBE_BURST",
    "COSTOP_GRACE_CAP_SECONDS",
    "COSTOP_SAFETY_MARGIN_SECONDS",
    "COSTOP_DEADLINE_WINDOW_SECONDS",
    "COSTOP_ASG_HOOK_DEADLINE_SECONDS",
    "COSTOP_DEDUPE_LEASE_SECONDS",
    "COSTOP_EVICTION_BACKOFF_BASE_MS",
    "COSTOP_EVICTION_BACKOFF_MAX_MS",
    "COSTOP_EVICTION_MAX_ATTEMPTS",
    "COSTOP_DRY_RUN",
    "COSTOP_REQUIRE_MANAGED_TAG",
    "COSTOP_CLUSTER_ALLOW_LIST",
    "COSTOP_FORCE_DELETE_AT_DEADLINE",
    "COSTOP_DETACH_FROM_ASG",
    "COSTOP_OUT_OF_SERVICE_ON_TERMINATED",
    "COSTOP_TIMELINE_TTL_DAYS",
    "COSTOP_TAINT_KEY_STANDBY",
    "COSTOP_STANDBY_POOL_SIZE",
    "COSTOP_STANDBY_MIN_SERVE_SECONDS",
    "COSTOP_STANDBY_WATCH_SECONDS",
    "COSTOP_METRICS_NAMESPACE",
    "COSTOP_LOG_LEVEL",
];

/// A variable with a value costop cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The value is out of range or not one of the allowed words.
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is allowed.
        reason: String,
    },
    /// The value is not an integer.
    #[error("{var}={value:?} is not an integer")]
    NotAnInteger {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// The parse error.
        #[source]
        source: ParseIntError,
    },
    /// The value is not a number.
    #[error("{var}={value:?} is not a number")]
    NotANumber {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// The parse error.
        #[source]
        source: ParseFloatError,
    },
}

impl ConfigError {
    /// The variable at fault.
    pub fn var(&self) -> &'static str {
        match self {
            ConfigError::Invalid { var, .. }
            | ConfigError::NotAnInteger { var, .. }
            | ConfigError::NotANumber { var, .. } => var,
        }
    }
}

/// Taint keys per event kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaintKeys {
    /// Spot warnings.
    pub spot_interruption: String,
    /// Rebalance recommendations.
    pub rebalance_recommendation: String,
    /// ASG terminate hooks.
    pub asg_lifecycle_termination: String,
    /// AWS Health scheduled changes.
    pub scheduled_maintenance: String,
    /// State changes (stopping/shutting-down).
    pub instance_state_change: String,
}

impl Default for TaintKeys {
    fn default() -> Self {
        TaintKeys {
            spot_interruption: constants::TAINT_SPOT_INTERRUPTION.to_owned(),
            rebalance_recommendation: constants::TAINT_REBALANCE_RECOMMENDATION.to_owned(),
            asg_lifecycle_termination: constants::TAINT_ASG_LIFECYCLE_TERMINATION.to_owned(),
            scheduled_maintenance: constants::TAINT_SCHEDULED_MAINTENANCE.to_owned(),
            instance_state_change: constants::TAINT_INSTANCE_STATE_CHANGE.to_owned(),
        }
    }
}

impl TaintKeys {
    /// The key for an event kind.
    pub fn for_kind(&self, kind: EventKind) -> &str {
        match kind {
            EventKind::SpotInterruption => &self.spot_interruption,
            EventKind::RebalanceRecommendation => &self.rebalance_recommendation,
            EventKind::AsgLifecycleTermination => &self.asg_lifecycle_termination,
            EventKind::ScheduledMaintenance => &self.scheduled_maintenance,
            EventKind::InstanceStateChange => &self.instance_state_change,
        }
    }
}

/// costop's configuration. See the module docs for the variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// `COSTOP_TABLE`.
    pub table_name: String,
    /// `COSTOP_TAINT_EFFECT`.
    pub taint_effect: TaintEffect,
    /// `COSTOP_TAINT_KEY_*`.
    pub taint_keys: TaintKeys,
    /// `COSTOP_DRAIN_CONCURRENCY`.
    pub drain_concurrency: u32,
    /// `COSTOP_KUBE_QPS`.
    pub kube_qps: f32,
    /// `COSTOP_KUBE_BURST`.
    pub kube_burst: u32,
    /// `COSTOP_GRACE_CAP_SECONDS`.
    pub grace_cap_seconds: i64,
    /// `COSTOP_SAFETY_MARGIN_SECONDS`.
    pub safety_margin_seconds: i64,
    /// `COSTOP_DEADLINE_WINDOW_SECONDS`.
    pub deadline_window_seconds: i64,
    /// `COSTOP_ASG_HOOK_DEADLINE_SECONDS`.
    pub asg_hook_deadline_seconds: i64,
    /// `COSTOP_DEDUPE_LEASE_SECONDS`.
    pub dedupe_lease_seconds: i64,
    /// `COSTOP_EVICTION_BACKOFF_*`, `COSTOP_EVICTION_MAX_ATTEMPTS`.
    pub eviction_backoff: BackoffPolicy,
    /// `COSTOP_DRY_RUN`.
    pub dry_run: bool,
    /// `COSTOP_REQUIRE_MANAGED_TAG`.
    pub require_managed_tag: bool,
    /// `COSTOP_CLUSTER_ALLOW_LIST` (empty = any).
    pub cluster_allow_list: Vec<String>,
    /// `COSTOP_FORCE_DELETE_AT_DEADLINE`.
    pub force_delete_at_deadline: bool,
    /// `COSTOP_DETACH_FROM_ASG`.
    pub detach_from_asg: bool,
    /// `COSTOP_OUT_OF_SERVICE_ON_TERMINATED`.
    pub out_of_service_on_terminated: bool,
    /// `COSTOP_TIMELINE_TTL_DAYS`.
    pub timeline_ttl_days: u32,
    /// `COSTOP_TAINT_KEY_STANDBY`.
    pub standby_taint_key: String,
    /// `COSTOP_STANDBY_POOL_SIZE` (per zone).
    pub standby_pool_size: u32,
    /// `COSTOP_STANDBY_MIN_SERVE_SECONDS`.
    pub standby_min_serve_seconds: i64,
    /// `COSTOP_STANDBY_WATCH_SECONDS`.
    pub standby_watch_seconds: i64,
    /// `COSTOP_METRICS_NAMESPACE`.
    pub metrics_namespace: String,
    /// `COSTOP_LOG_LEVEL`.
    pub log_level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            table_name: "costop".to_owned(),
            taint_effect: TaintEffect::NoSchedule,
            taint_keys: TaintKeys::default(),
            drain_concurrency: 16,
            kube_qps: 50.0,
            kube_burst: 100,
            grace_cap_seconds: 90,
            safety_margin_seconds: 15,
            deadline_window_seconds: 120,
            asg_hook_deadline_seconds: 300,
            dedupe_lease_seconds: 180,
            eviction_backoff: BackoffPolicy::default(),
            dry_run: false,
            require_managed_tag: false,
            cluster_allow_list: Vec::new(),
            force_delete_at_deadline: false,
            detach_from_asg: false,
            out_of_service_on_terminated: false,
            timeline_ttl_days: 30,
            standby_taint_key: constants::TAINT_STANDBY.to_owned(),
            standby_pool_size: 1,
            standby_min_serve_seconds: 600,
            standby_watch_seconds: 240,
            metrics_namespace: "Costop".to_owned(),
            log_level: "info".to_owned(),
        }
    }
}

/// The `COSTOP_*` pairs, empty values dropped (empty = default).
struct Vars(BTreeMap<String, String>);

impl Vars {
    fn get(&self, var: &'static str) -> Option<&str> {
        self.0.get(var).map(String::as_str)
    }

    fn string(&self, var: &'static str, into: &mut String) {
        if let Some(v) = self.get(var) {
            *into = v.to_owned();
        }
    }

    fn int<T>(&self, var: &'static str, into: &mut T, min: T, max: T) -> Result<(), ConfigError>
    where
        T: std::str::FromStr<Err = ParseIntError> + PartialOrd + fmt::Display + Copy,
    {
        let Some(raw) = self.get(var) else {
            return Ok(());
        };
        let v: T = raw.parse().map_err(|source| ConfigError::NotAnInteger {
            var,
            value: raw.to_owned(),
            source,
        })?;
        if v < min || v > max {
            return Err(ConfigError::Invalid {
                var,
                value: raw.to_owned(),
                reason: format!("must be between {min} and {max}"),
            });
        }
        *into = v;
        Ok(())
    }

    fn bool(&self, var: &'static str, into: &mut bool) -> Result<(), ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(());
        };
        *into = match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                return Err(ConfigError::Invalid {
                    var,
                    value: raw.to_owned(),
                    reason: "expected true/false, 1/0, yes/no or on/off".to_owned(),
                });
            }
        };
        Ok(())
    }

    fn taint_key(&self, var: &'static str, into: &mut String) -> Result<(), ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(());
        };
        if !is_qualified_name(raw) {
            return Err(ConfigError::Invalid {
                var,
                value: raw.to_owned(),
                reason: "not a Kubernetes qualified name (e.g. example.com/my-taint)".to_owned(),
            });
        }
        *into = raw.to_owned();
        Ok(())
    }
}

impl Config {
    /// Parses configuration from `(key, value)` pairs, e.g.
    /// `Config::from_env(std::env::vars())`. Unknown keys are ignored (see
    /// [`unknown_vars`] to warn about typos).
    pub fn from_env<I, K, V>(vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let vars = Vars(
            vars.into_iter()
                .filter(|(k, v)| k.as_ref().starts_with(PREFIX) && !v.as_ref().trim().is_empty())
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().trim().to_owned()))
                .collect(),
        );
        let mut c = Config::default();

        vars.string("COSTOP_TABLE", &mut c.table_name);
        if let Some(raw) = vars.get("COSTOP_TAINT_EFFECT") {
            c.taint_effect = match raw.parse() {
                Ok(e @ (TaintEffect::NoSchedule | TaintEffect::NoExecute)) => e,
                // PreferNoSchedule would let pods land on a dying node.
                _ => {
                    return Err(ConfigError::Invalid {
                        var: "COSTOP_TAINT_EFFECT",
                        value: raw.to_owned(),
                        reason: "expected NoSchedule or NoExecute".to_owned(),
                    });
                }
            };
        }
        let k = &mut c.taint_keys;
        vars.taint_key(
            "COSTOP_TAINT_KEY_SPOT_INTERRUPTION",
            &mut k.spot_interruption,
        )?;
        vars.taint_key(
            "COSTOP_TAINT_KEY_REBALANCE_RECOMMENDATION",
            &mut k.rebalance_recommendation,
        )?;
        vars.taint_key(
            "COSTOP_TAINT_KEY_ASG_LIFECYCLE_TERMINATION",
            &mut k.asg_lifecycle_termination,
        )?;
        vars.taint_key(
            "COSTOP_TAINT_KEY_SCHEDULED_MAINTENANCE",
            &mut k.scheduled_maintenance,
        )?;
        vars.taint_key(
            "COSTOP_TAINT_KEY_INSTANCE_STATE_CHANGE",
            &mut k.instance_state_change,
        )?;

        vars.int(
            "COSTOP_DRAIN_CONCURRENCY",
            &mut c.drain_concurrency,
            1,
            1000,
        )?;
        if let Some(raw) = vars.get("COSTOP_KUBE_QPS") {
            let qps: f32 = raw.parse().map_err(|source| ConfigError::NotANumber {
                var: "COSTOP_KUBE_QPS",
                value: raw.to_owned(),
                source,
            })?;
            if !(qps.is_finite() && qps > 0.0) {
                return Err(ConfigError::Invalid {
                    var: "COSTOP_KUBE_QPS",
                    value: raw.to_owned(),
                    reason: "must be a positive number".to_owned(),
                });
            }
            c.kube_qps = qps;
        }
        vars.int("COSTOP_KUBE_BURST", &mut c.kube_burst, 1, 100_000)?;
        vars.int(
            "COSTOP_GRACE_CAP_SECONDS",
            &mut c.grace_cap_seconds,
            1,
            86_400,
        )?;
        vars.int(
            "COSTOP_DEADLINE_WINDOW_SECONDS",
            &mut c.deadline_window_seconds,
            1,
            86_400,
        )?;
        vars.int(
            "COSTOP_SAFETY_MARGIN_SECONDS",
            &mut c.safety_margin_seconds,
            0,
            86_400,
        )?;
        if c.safety_margin_seconds >= c.deadline_window_seconds {
            return Err(ConfigError::Invalid {
                var: "COSTOP_SAFETY_MARGIN_SECONDS",
                value: c.safety_margin_seconds.to_string(),
                reason: format!(
                    "must be less than the deadline window ({} s), or nothing could be drained",
                    c.deadline_window_seconds
                ),
            });
        }
        vars.int(
            "COSTOP_ASG_HOOK_DEADLINE_SECONDS",
            &mut c.asg_hook_deadline_seconds,
            1,
            7_200,
        )?;
        vars.int(
            "COSTOP_DEDUPE_LEASE_SECONDS",
            &mut c.dedupe_lease_seconds,
            1,
            86_400,
        )?;
        let b = &mut c.eviction_backoff;
        vars.int("COSTOP_EVICTION_BACKOFF_BASE_MS", &mut b.base_ms, 1, 60_000)?;
        vars.int("COSTOP_EVICTION_BACKOFF_MAX_MS", &mut b.max_ms, 1, 600_000)?;
        vars.int(
            "COSTOP_EVICTION_MAX_ATTEMPTS",
            &mut b.max_attempts,
            1,
            10_000,
        )?;
        if b.max_ms < b.base_ms {
            return Err(ConfigError::Invalid {
                var: "COSTOP_EVICTION_BACKOFF_MAX_MS",
                value: b.max_ms.to_string(),
                reason: format!(
                    "must be at least COSTOP_EVICTION_BACKOFF_BASE_MS ({})",
                    b.base_ms
                ),
            });
        }

        vars.bool("COSTOP_DRY_RUN", &mut c.dry_run)?;
        vars.bool("COSTOP_REQUIRE_MANAGED_TAG", &mut c.require_managed_tag)?;
        if let Some(raw) = vars.get("COSTOP_CLUSTER_ALLOW_LIST") {
            c.cluster_allow_list = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        vars.bool(
            "COSTOP_FORCE_DELETE_AT_DEADLINE",
            &mut c.force_delete_at_deadline,
        )?;
        vars.bool("COSTOP_DETACH_FROM_ASG", &mut c.detach_from_asg)?;
        vars.bool(
            "COSTOP_OUT_OF_SERVICE_ON_TERMINATED",
            &mut c.out_of_service_on_terminated,
        )?;
        vars.int(
            "COSTOP_TIMELINE_TTL_DAYS",
            &mut c.timeline_ttl_days,
            1,
            3650,
        )?;
        vars.taint_key("COSTOP_TAINT_KEY_STANDBY", &mut c.standby_taint_key)?;
        vars.int("COSTOP_STANDBY_POOL_SIZE", &mut c.standby_pool_size, 0, 100)?;
        vars.int(
            "COSTOP_STANDBY_MIN_SERVE_SECONDS",
            &mut c.standby_min_serve_seconds,
            0,
            86_400,
        )?;
        vars.int(
            "COSTOP_STANDBY_WATCH_SECONDS",
            &mut c.standby_watch_seconds,
            1,
            900,
        )?;
        vars.string("COSTOP_METRICS_NAMESPACE", &mut c.metrics_namespace);
        vars.string("COSTOP_LOG_LEVEL", &mut c.log_level);
        Ok(c)
    }

    /// True if `cluster` passes the allow-list (empty list = any cluster).
    pub fn allows_cluster(&self, cluster: &str) -> bool {
        self.cluster_allow_list.is_empty() || self.cluster_allow_list.iter().any(|c| c == cluster)
    }
}

/// `COSTOP_*` keys in `vars` that costop does not know (likely typos), for
/// a startup warning.
pub fn unknown_vars<I, K, V>(vars: I) -> Vec<String>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
{
    let mut out: Vec<String> = vars
        .into_iter()
        .map(|(k, _)| k.as_ref().to_owned())
        .filter(|k| k.starts_with(PREFIX) && !KNOWN_VARS.contains(&k.as_str()))
        .collect();
    out.sort();
    out
}

impl fmt::Display for Config {
    /// One line, `key=value` pairs, for the cold-start log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = &self.taint_keys;
        let b = &self.eviction_backoff;
        write!(
            f,
            "table={} taint_effect={} taint_keys=[{},{},{},{},{}] drain_concurrency={} kube_qps={} \
             kube_burst={} grace_cap_s={} safety_margin_s={} deadline_window_s={} asg_hook_deadline_s={} \
             dedupe_lease_s={} eviction_backoff_ms={}..{}x{} dry_run={} require_managed_tag={} \
             cluster_allow_list=[{}] force_delete_at_deadline={} detach_from_asg={} \
             out_of_service_on_terminated={} timeline_ttl_days={} standby_taint_key={} \
             standby_pool_size={} standby_min_serve_s={} standby_watch_s={} metrics_namespace={} log_level={}",
            self.table_name,
            self.taint_effect,
            k.spot_interruption,
            k.rebalance_recommendation,
            k.asg_lifecycle_termination,
            k.scheduled_maintenance,
            k.instance_state_change,
            self.drain_concurrency,
            self.kube_qps,
            self.kube_burst,
            self.grace_cap_seconds,
            self.safety_margin_seconds,
            self.deadline_window_seconds,
            self.asg_hook_deadline_seconds,
            self.dedupe_lease_seconds,
            b.base_ms,
            b.max_ms,
            b.max_attempts,
            self.dry_run,
            self.require_managed_tag,
            self.cluster_allow_list.join(","),
            self.force_delete_at_deadline,
            self.detach_from_asg,
            self.out_of_service_on_terminated,
            self.timeline_ttl_days,
            self.standby_taint_key,
            self.standby_pool_size,
            self.standby_min_serve_seconds,
            self.standby_watch_seconds,
            self.metrics_namespace,
            self.log_level,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_env(pairs.iter().copied())
    }

    #[test]
    fn no_variables_means_the_documented_defaults() {
        let c = env(&[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.taint_effect, TaintEffect::NoSchedule);
        assert_eq!(c.safety_margin_seconds, 15);
        assert_eq!(c.deadline_window_seconds, 120);
        assert!(
            !c.force_delete_at_deadline && !c.detach_from_asg && !c.out_of_service_on_terminated
        );
    }

    #[test]
    fn every_documented_variable_is_read() {
        let c = env(&[
            ("COSTOP_TABLE", "t"),
            ("COSTOP_TAINT_EFFECT", "NoExecute"),
            ("COSTOP_TAINT_KEY_SPOT_INTERRUPTION", "example.com/spot"),
            ("COSTOP_DRAIN_CONCURRENCY", "4"),
            ("COSTOP_KUBE_QPS", "12.5"),
            ("COSTOP_KUBE_BURST", "20"),
            ("COSTOP_GRACE_CAP_SECONDS", "30"),
            ("COSTOP_SAFETY_MARGIN_SECONDS", "10"),
            ("COSTOP_DEADLINE_WINDOW_SECONDS", "110"),
            ("COSTOP_DRY_RUN", "yes"),
            ("COSTOP_REQUIRE_MANAGED_TAG", "1"),
            ("COSTOP_CLUSTER_ALLOW_LIST", " prod , ,staging"),
            ("COSTOP_FORCE_DELETE_AT_DEADLINE", "TRUE"),
            ("COSTOP_DETACH_FROM_ASG", "on"),
            ("COSTOP_OUT_OF_SERVICE_ON_TERMINATED", "true"),
            ("COSTOP_TIMELINE_TTL_DAYS", "7"),
            ("COSTOP_LOG_LEVEL", "debug"),
            ("PATH", "/bin"),
        ])
        .unwrap();
        assert_eq!(c.table_name, "t");
        assert_eq!(c.taint_effect, TaintEffect::NoExecute);
        assert_eq!(
            c.taint_keys.for_kind(EventKind::SpotInterruption),
            "example.com/spot"
        );
        assert_eq!(
            c.taint_keys.for_kind(EventKind::ScheduledMaintenance),
            constants::TAINT_SCHEDULED_MAINTENANCE
        );
        assert_eq!((c.drain_concurrency, c.kube_burst), (4, 20));
        assert!((c.kube_qps - 12.5).abs() < f32::EPSILON);
        assert_eq!(
            (
                c.grace_cap_seconds,
                c.safety_margin_seconds,
                c.deadline_window_seconds
            ),
            (30, 10, 110)
        );
        assert!(c.dry_run && c.require_managed_tag && c.force_delete_at_deadline);
        assert!(c.detach_from_asg && c.out_of_service_on_terminated);
        assert_eq!(c.cluster_allow_list, vec!["prod", "staging"]);
        assert_eq!(c.timeline_ttl_days, 7);
        assert_eq!(c.log_level, "debug");
    }

    #[test]
    fn a_bad_value_names_the_variable() {
        for (var, value) in [
            ("COSTOP_TAINT_EFFECT", "PreferNoSchedule"),
            ("COSTOP_TAINT_EFFECT", "noschedule"),
            ("COSTOP_DRAIN_CONCURRENCY", "0"),
            ("COSTOP_DRAIN_CONCURRENCY", "many"),
            ("COSTOP_KUBE_QPS", "-1"),
            ("COSTOP_KUBE_QPS", "fast"),
            ("COSTOP_DRY_RUN", "maybe"),
            ("COSTOP_SAFETY_MARGIN_SECONDS", "120"),
            ("COSTOP_TAINT_KEY_SCHEDULED_MAINTENANCE", "Not A Key"),
            ("COSTOP_EVICTION_BACKOFF_MAX_MS", "10"),
        ] {
            let err = env(&[(var, value)]).unwrap_err();
            assert_eq!(err.var(), var, "{var}={value}");
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    #[test]
    fn empty_values_take_the_default() {
        assert_eq!(
            env(&[("COSTOP_DRAIN_CONCURRENCY", " ")])
                .unwrap()
                .drain_concurrency,
            16
        );
    }

    #[test]
    fn the_allow_list_admits_any_cluster_when_empty() {
        let any = Config::default();
        assert!(any.allows_cluster("whatever"));
        let only = env(&[("COSTOP_CLUSTER_ALLOW_LIST", "prod")]).unwrap();
        assert!(only.allows_cluster("prod") && !only.allows_cluster("staging"));
    }

    #[test]
    fn typos_are_reported_as_unknown_variables() {
        let unknown = unknown_vars([
            ("COSTOP_DRY_RUNN", "1"),
            ("COSTOP_DRY_RUN", "1"),
            ("HOME", "/"),
        ]);
        assert_eq!(unknown, vec!["COSTOP_DRY_RUNN"]);
    }

    #[test]
    fn display_prints_one_line() {
        let line = Config::default().to_string();
        assert!(!line.contains('\n'));
        assert!(line.starts_with("table=costop taint_effect=NoSchedule"));
    }
}
