//! Typed configuration, parsed purely from `(key, value)` pairs.
//!
//! The shell passes `std::env::vars()`; tests pass literal pairs. Only keys
//! starting with `COSTOP_` are read; an unset or empty variable takes its
//! default. A bad value is a [`ConfigError`] naming the variable, so a
//! misconfigured Lambda fails at cold start instead of mid-interruption.
//! [`Config`]'s `Display` prints one line for the startup log (there are no
//! secrets in it: credentials come from the Lambda role, never from here).
//! A `COSTOP_*` key that names no variable is ignored; [`unknown_var_warnings`]
//! lists such keys, with the variable each probably means, for a cold-start
//! warning.
//!
//! Every variable is declared once, in `config/vars.rs`: its name, group,
//! meaning, the [`Config`] field it sets and the kind of value it takes. From
//! that declaration come [`VARS`], [`KNOWN_VARS`], the [`names`] constants,
//! the parsing in [`Config::from_env`], the `Display` line, `costop config
//! --list` (its `--json` is checked in as `infra/config-vars.json`, which
//! `infra/check.py` reads) and the tables below (`config/variables.md`, written
//! by `costop config --list --markdown`; a test fails when it drifts). A
//! default is [`Config::default()`]'s value.
//!
//! The variables, by concern:
#![doc = include_str!("config/variables.md")]
//!
//! Booleans accept `true/false`, `1/0`, `yes/no`, `on/off` (any case).

use std::collections::BTreeMap;
use std::fmt;
use std::num::{ParseFloatError, ParseIntError};

use serde::{Deserialize, Serialize};

use crate::constants;
use crate::event::EventKind;
use crate::fallback::{DefaultPolicy, FullJitter, Routes};
use crate::kube::TaintEffect;
use crate::plan::{BackoffPolicy, FailedDrainResult};

mod kinds;
mod unknown;
mod vars;

pub use unknown::{UnknownVar, unknown_var_warnings, unknown_vars};
pub use vars::{Group, KNOWN_VARS, VARS, Var, markdown, names};

/// Prefix of every variable costop reads.
pub const PREFIX: &str = "COSTOP_";

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

    /// Every per-kind key: the taints costop puts on a node it acts on.
    pub fn all(&self) -> [&str; 5] {
        [
            &self.spot_interruption,
            &self.rebalance_recommendation,
            &self.asg_lifecycle_termination,
            &self.scheduled_maintenance,
            &self.instance_state_change,
        ]
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
    /// `COSTOP_ROTATION_MAX_WAIT_SECONDS`.
    pub rotation_max_wait_seconds: i64,
    /// `COSTOP_ROTATION_SETTLE_SECONDS`.
    pub rotation_settle_seconds: i64,
    /// `COSTOP_FALLBACK_TARGET_GROUP` (empty: traffic is not shifted).
    pub fallback_target_group: String,
    /// `COSTOP_SHIFT_FACTOR`.
    pub shift_factor: f32,
    /// `COSTOP_SHIFT_MAX_SECONDS`.
    pub shift_max_seconds: i64,
    /// `COSTOP_SHIFT_RESTORE_HOLD_SECONDS`.
    pub shift_restore_hold_seconds: i64,
    /// `COSTOP_DEADLINE_WINDOW_SECONDS`.
    pub deadline_window_seconds: i64,
    /// `COSTOP_ASG_HOOK_DEADLINE_SECONDS`.
    pub asg_hook_deadline_seconds: i64,
    /// `COSTOP_ASG_HOOK_FAILED_DRAIN_RESULT`.
    pub asg_hook_failed_drain_result: FailedDrainResult,
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
    /// `COSTOP_REBALANCE_TAINT`.
    pub rebalance_taint: bool,
    /// `COSTOP_REBALANCE_TAINT_SECONDS`.
    pub rebalance_taint_seconds: i64,
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
    /// `COSTOP_RESUME_SETTLE_SECONDS`.
    pub resume_settle_seconds: i64,
    /// `COSTOP_SCHEDULED_CHANGE_LEAD_SECONDS`.
    pub scheduled_change_lead_seconds: i64,
    /// `COSTOP_INTERRUPTION_FUNCTION` (empty: not set).
    pub interruption_function: String,
    /// `COSTOP_FALLBACK_ROUTES`.
    pub fallback_routes: Routes,
    /// `COSTOP_FALLBACK_DEFAULT_POLICY`.
    pub fallback_default_policy: DefaultPolicy,
    /// `COSTOP_FALLBACK_UPSTREAM` (empty: not set).
    pub fallback_upstream: String,
    /// `COSTOP_FALLBACK_FORWARD_BUDGET_MS`.
    pub fallback_forward_budget_ms: u64,
    /// `COSTOP_FALLBACK_BACKOFF_BASE_MS`, `COSTOP_FALLBACK_BACKOFF_MAX_MS`.
    pub fallback_backoff: FullJitter,
    /// `COSTOP_FALLBACK_RETRY_AFTER_SECONDS`.
    pub fallback_retry_after_seconds: u32,
    /// `COSTOP_QUEUE_TABLE`.
    pub queue_table: String,
    /// `COSTOP_QUEUE_MAX_DEPTH`.
    pub queue_max_depth: u64,
    /// `COSTOP_QUEUE_RECEIPT_DAYS`.
    pub queue_receipt_days: u32,
    /// `COSTOP_REPLAY_RATE` (per second).
    pub replay_rate: f32,
    /// `COSTOP_REPLAY_MAX_ATTEMPTS`.
    pub replay_max_attempts: u32,
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
            rotation_max_wait_seconds: 20,
            rotation_settle_seconds: 10,
            fallback_target_group: String::new(),
            shift_factor: 1.0,
            shift_max_seconds: 900,
            shift_restore_hold_seconds: 30,
            deadline_window_seconds: 120,
            asg_hook_deadline_seconds: 300,
            asg_hook_failed_drain_result: FailedDrainResult::Continue,
            dedupe_lease_seconds: 180,
            eviction_backoff: BackoffPolicy::default(),
            dry_run: false,
            require_managed_tag: false,
            cluster_allow_list: Vec::new(),
            force_delete_at_deadline: false,
            detach_from_asg: false,
            rebalance_taint: true,
            rebalance_taint_seconds: 1800,
            out_of_service_on_terminated: false,
            timeline_ttl_days: 30,
            standby_taint_key: constants::TAINT_STANDBY.to_owned(),
            standby_pool_size: 1,
            standby_min_serve_seconds: 600,
            standby_watch_seconds: 240,
            resume_settle_seconds: 120,
            scheduled_change_lead_seconds: 900,
            interruption_function: String::new(),
            fallback_routes: Routes::default(),
            fallback_default_policy: DefaultPolicy::Forward,
            fallback_upstream: String::new(),
            fallback_forward_budget_ms: 15_000,
            fallback_backoff: FullJitter {
                base_ms: 100,
                max_ms: 2_000,
            },
            fallback_retry_after_seconds: 5,
            queue_table: "costop-queue".to_owned(),
            queue_max_depth: 10_000,
            queue_receipt_days: 7,
            replay_rate: 5.0,
            replay_max_attempts: 5,
            metrics_namespace: "Costop".to_owned(),
            log_level: "info".to_owned(),
        }
    }
}

impl Config {
    /// Parses configuration from `(key, value)` pairs, e.g.
    /// `Config::from_env(std::env::vars())`. Unknown keys are ignored (see
    /// [`unknown_var_warnings`] to warn about typos).
    pub fn from_env<I, K, V>(vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        // Empty means "take the default"; a later pair for the same key wins.
        let set: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(k, v)| k.as_ref().starts_with(PREFIX) && !v.as_ref().trim().is_empty())
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().trim().to_owned()))
            .collect();
        let mut c = Config::default();
        for var in VARS {
            if let Some(raw) = set.get(var.name) {
                var.read(&mut c, raw)?;
            }
        }
        check_across_variables(&c)?;
        Ok(c)
    }

    /// True if `cluster` passes the allow-list (empty list = any cluster).
    pub fn allows_cluster(&self, cluster: &str) -> bool {
        self.cluster_allow_list.is_empty() || self.cluster_allow_list.iter().any(|c| c == cluster)
    }
}

/// The rules that tie one variable to another, checked once every variable is read (so they
/// hold whichever of the two is set, and whatever the order of the declaration).
fn check_across_variables(c: &Config) -> Result<(), ConfigError> {
    if c.safety_margin_seconds >= c.deadline_window_seconds {
        return Err(ConfigError::Invalid {
            var: names::COSTOP_SAFETY_MARGIN_SECONDS,
            value: c.safety_margin_seconds.to_string(),
            reason: format!(
                "must be less than the deadline window ({} s), or nothing could be drained",
                c.deadline_window_seconds
            ),
        });
    }
    let b = &c.eviction_backoff;
    if b.max_ms < b.base_ms {
        return Err(ConfigError::Invalid {
            var: names::COSTOP_EVICTION_BACKOFF_MAX_MS,
            value: b.max_ms.to_string(),
            reason: format!(
                "must be at least {} ({})",
                names::COSTOP_EVICTION_BACKOFF_BASE_MS,
                b.base_ms
            ),
        });
    }
    let j = &c.fallback_backoff;
    if j.max_ms < j.base_ms {
        return Err(ConfigError::Invalid {
            var: names::COSTOP_FALLBACK_BACKOFF_MAX_MS,
            value: j.max_ms.to_string(),
            reason: format!(
                "must be at least {} ({})",
                names::COSTOP_FALLBACK_BACKOFF_BASE_MS,
                j.base_ms
            ),
        });
    }
    Ok(())
}

impl fmt::Display for Config {
    /// One line for the cold-start log: `key=value` for every variable, in declaration order
    /// ([`Var::key`]: `COSTOP_DRAIN_CONCURRENCY` is `drain_concurrency`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, var) in VARS.iter().enumerate() {
            let space = if i == 0 { "" } else { " " };
            write!(f, "{space}{}={}", var.key(), var.value(self))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
