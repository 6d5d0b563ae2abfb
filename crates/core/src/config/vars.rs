//! The one declaration of every `COSTOP_*` variable, grouped by concern, and what comes
//! straight from it: [`VARS`], [`KNOWN_VARS`], the [`names`] constants and the Markdown table
//! of the module docs.
//!
//! Adding a variable is one entry in `declare!` below, plus its [`Config`] field and that
//! field's default in `Default for Config` (the compiler asks for both).

use std::fmt::Write as _;

use serde::Serialize;

use super::kinds::{
    Bool, DefaultPolicyKind, Effect, HookResult, HttpUrl, Int, List, Positive, RoutesJson, Shown,
    TaintKey, Text,
};
use super::{Config, ConfigError, PREFIX};

/// What a variable is about. [`VARS`] lists the variables group by group, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The DynamoDB table and its records.
    Records,
    /// Which instances and clusters costop acts on.
    Clusters,
    /// What costop changes beyond the drain itself.
    Actions,
    /// The taints costop puts on nodes.
    Taints,
    /// How pods are evicted.
    Drain,
    /// When a drain must be done.
    Deadlines,
    /// Redelivered events.
    Dedupe,
    /// The warm standby pool (the keeper).
    Standby,
    /// The fallback function and the replay of its queue.
    Fallback,
    /// Metrics and logs.
    Telemetry,
}

impl Group {
    /// Its short name, as `costop config --list --json` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Group::Records => "records",
            Group::Clusters => "clusters",
            Group::Actions => "actions",
            Group::Taints => "taints",
            Group::Drain => "drain",
            Group::Deadlines => "deadlines",
            Group::Dedupe => "dedupe",
            Group::Standby => "standby",
            Group::Fallback => "fallback",
            Group::Telemetry => "telemetry",
        }
    }

    /// A heading for people.
    pub fn title(self) -> &'static str {
        match self {
            Group::Records => "Records: the DynamoDB table",
            Group::Clusters => "Cluster selection",
            Group::Actions => "Actions beyond the drain",
            Group::Taints => "Taints",
            Group::Drain => "Drain and eviction",
            Group::Deadlines => "Deadlines",
            Group::Dedupe => "Dedupe of redeliveries",
            Group::Standby => "Standby pool (the keeper)",
            Group::Fallback => "Fallback and replay",
            Group::Telemetry => "Telemetry",
        }
    }
}

/// One `COSTOP_*` variable, as declared.
#[derive(Debug)]
pub struct Var {
    /// Its name (`COSTOP_…`).
    pub name: &'static str,
    /// Its concern.
    pub group: Group,
    /// What it means.
    pub doc: &'static str,
    read: fn(&mut Config, &str) -> Result<(), ConfigError>,
    show: fn(&Config) -> String,
    accepts: fn() -> String,
}

impl Var {
    /// Sets its field of `config` from `raw` (trimmed, not empty).
    pub(super) fn read(&self, config: &mut Config, raw: &str) -> Result<(), ConfigError> {
        (self.read)(config, raw)
    }

    /// Its value in `config`, written as the variable would be set.
    pub fn value(&self, config: &Config) -> String {
        (self.show)(config)
    }

    /// Its default, [`Config::default()`]'s value, written as the variable would be set.
    pub fn default_value(&self) -> String {
        self.value(&Config::default())
    }

    /// What values it takes, in a few words (`1–1000`, `boolean`, …).
    pub fn accepts(&self) -> String {
        (self.accepts)()
    }

    /// Its key in [`Config`]'s one-line `Display`: the name without `COSTOP_`, lowercase.
    pub fn key(&self) -> String {
        self.name
            .strip_prefix(PREFIX)
            .unwrap_or(self.name)
            .to_ascii_lowercase()
    }
}

/// The listing's shape: `costop config --list --json` prints [`VARS`] as an array of these.
impl Serialize for Var {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Listed<'a> {
            name: &'a str,
            group: &'a str,
            default: String,
            accepts: String,
            doc: &'a str,
        }
        Listed {
            name: self.name,
            group: self.group.name(),
            default: self.default_value(),
            accepts: self.accepts(),
            doc: self.doc,
        }
        .serialize(serializer)
    }
}

/// Declares the variables: per group, each variable's doc comment, then
/// `NAME => config.field.path: Kind;`, the kind (see `kinds.rs`) reading the value into that
/// field.
macro_rules! declare {
    ($(
        $group:ident {
            $(
                $(#[doc = $doc:literal])+
                $name:ident => $($field:ident).+ : $kind:expr;
            )+
        }
    )+) => {
        /// Every variable's name as a constant, so code that names a variable (an error, a
        /// rule across variables, a test) is checked by the compiler.
        pub mod names {
            $($(
                $(#[doc = $doc])+
                pub const $name: &str = stringify!($name);
            )+)+
        }

        /// Every variable costop reads, group by group.
        pub static VARS: &[Var] = &[$($(
            Var {
                name: names::$name,
                group: Group::$group,
                doc: concat!($($doc),+).trim_ascii(),
                read: |c, raw| {
                    c.$($field).+ = $kind.read(names::$name, raw)?;
                    Ok(())
                },
                show: |c| c.$($field).+.shown(),
                accepts: || $kind.accepts(),
            },
        )+)+];

        /// Every variable [`Config::from_env`] understands.
        pub const KNOWN_VARS: &[&str] = &[$($(names::$name),+),+];
    };
}

declare! {
    Records {
        /// DynamoDB table (single-table design, see `costop_core::record`).
        COSTOP_TABLE => table_name: Text;
        /// DynamoDB TTL of records, in days.
        COSTOP_TIMELINE_TTL_DAYS => timeline_ttl_days: Int(1, 3650);
    }
    Clusters {
        /// Act only on instances tagged `costop.io/managed=true`.
        COSTOP_REQUIRE_MANAGED_TAG => require_managed_tag: Bool;
        /// Cluster names; empty = any cluster found via instance tags.
        COSTOP_CLUSTER_ALLOW_LIST => cluster_allow_list: List;
    }
    Actions {
        /// Plan and print, change nothing.
        COSTOP_DRY_RUN => dry_run: Bool;
        /// The fallback function's target group (ARN; set by the template). On a notice, each
        /// listener rule that forwards to a group holding the node's targets sends the node's
        /// share of that group's traffic there until the group's capacity is back. Empty:
        /// traffic is not shifted.
        COSTOP_FALLBACK_TARGET_GROUP => fallback_target_group: Text;
        /// The share shifted is the node's share of its groups times this (1 moves exactly
        /// what the node carried; more leaves headroom on the survivors). A factor that moves
        /// all of a group's traffic (the number of its targets, or simply 1000) takes its pods
        /// out of rotation without the serving-label opt-in: every request goes through the
        /// fallback, whose forward retries what a stopping pod refuses.
        COSTOP_SHIFT_FACTOR => shift_factor: Positive;
        /// A shifted rule is put back at the latest this long after the notice, whatever the
        /// capacity (the keeper's tick checks every minute).
        COSTOP_SHIFT_MAX_SECONDS => shift_max_seconds: Int(1, 86_400);
        /// Once the groups of a shifted rule are whole again, the rule stays shifted this long
        /// before it is put back, so the requests the fallback still holds are answered before
        /// the clients' own go straight to the service again (at least the forward budget; the
        /// keeper's tick checks every minute).
        COSTOP_SHIFT_RESTORE_HOLD_SECONDS => shift_restore_hold_seconds: Int(0, 900);
        /// Delete pods still present at the deadline (bypasses PDBs).
        COSTOP_FORCE_DELETE_AT_DEADLINE => force_delete_at_deadline: Bool;
        /// Detach the instance from its ASG (desired capacity kept) so a replacement launches
        /// early.
        COSTOP_DETACH_FROM_ASG => detach_from_asg: Bool;
        /// How an ASG terminate hook is completed when the drain's deadline came with pods
        /// left: `CONTINUE`, `ABANDON` (other terminate hooks are cut short; a group whose
        /// instance lifecycle policy retains on an abandoned hook keeps the instance), or
        /// `DEFAULT`, the hook's DefaultResult, what AWS applies if nobody answers. CONTINUE by
        /// default: the pods left are lost either way, and other hooks still run. A drain that
        /// went well always continues.
        COSTOP_ASG_HOOK_FAILED_DRAIN_RESULT => asg_hook_failed_drain_result: HookResult;
        /// Put `node.kubernetes.io/out-of-service` on nodes whose instance stopped/terminated.
        COSTOP_OUT_OF_SERVICE_ON_TERMINATED => out_of_service_on_terminated: Bool;
        /// On a rebalance recommendation, taint the node `PreferNoSchedule` (nothing is
        /// drained) so new pods prefer other nodes while its interruption risk is high.
        COSTOP_REBALANCE_TAINT => rebalance_taint: Bool;
        /// How long the rebalance taint stays when no interruption follows: then the keeper's
        /// tick removes it from a node whose instance still runs.
        COSTOP_REBALANCE_TAINT_SECONDS => rebalance_taint_seconds: Int(1, 604_800);
    }
    Taints {
        /// Effect of costop's taints (`NoExecute` also evicts non-tolerating pods via the taint
        /// manager, bypassing PDBs).
        COSTOP_TAINT_EFFECT => taint_effect: Effect;
        /// Taint key for Spot warnings.
        COSTOP_TAINT_KEY_SPOT_INTERRUPTION => taint_keys.spot_interruption: TaintKey;
        /// Taint key for rebalance recommendations.
        COSTOP_TAINT_KEY_REBALANCE_RECOMMENDATION => taint_keys.rebalance_recommendation: TaintKey;
        /// Taint key for ASG terminate hooks.
        COSTOP_TAINT_KEY_ASG_LIFECYCLE_TERMINATION => taint_keys.asg_lifecycle_termination: TaintKey;
        /// Taint key for AWS Health scheduled changes.
        COSTOP_TAINT_KEY_SCHEDULED_MAINTENANCE => taint_keys.scheduled_maintenance: TaintKey;
        /// Taint key for stopping/shutting-down instances.
        COSTOP_TAINT_KEY_INSTANCE_STATE_CHANGE => taint_keys.instance_state_change: TaintKey;
    }
    Drain {
        /// Evictions in flight at once.
        COSTOP_DRAIN_CONCURRENCY => drain_concurrency: Int(1, 1000);
        /// Kubernetes client queries per second.
        COSTOP_KUBE_QPS => kube_qps: Positive;
        /// Kubernetes client burst.
        COSTOP_KUBE_BURST => kube_burst: Int(1, 100_000);
        /// Upper bound on any pod's eviction grace period, in seconds.
        COSTOP_GRACE_CAP_SECONDS => grace_cap_seconds: Int(1, 86_400);
        /// First retry delay after a PDB 429.
        COSTOP_EVICTION_BACKOFF_BASE_MS => eviction_backoff.base_ms: Int(1, 60_000);
        /// Retry delay ceiling; at least `COSTOP_EVICTION_BACKOFF_BASE_MS`.
        COSTOP_EVICTION_BACKOFF_MAX_MS => eviction_backoff.max_ms: Int(1, 600_000);
        /// Eviction attempts per pod before giving up (the deadline usually ends it first).
        COSTOP_EVICTION_MAX_ATTEMPTS => eviction_backoff.max_attempts: Int(1, 10_000);
        /// How long the drain waits for the load balancers to report the targets it
        /// deregistered `draining` before it evicts the pods that serve them anyway (bounded
        /// by the deadline).
        COSTOP_ROTATION_MAX_WAIT_SECONDS => rotation_max_wait_seconds: Int(0, 600);
        /// Once those targets are draining, how long before their pods are evicted: an ALB
        /// stops routing to a deregistered target a few seconds after it reports it
        /// `draining`, and kube-proxy drops a pod that left its Service within its sync
        /// period (1 s by default). 0 evicts at once.
        COSTOP_ROTATION_SETTLE_SECONDS => rotation_settle_seconds: Int(0, 300);
    }
    Deadlines {
        /// Spot warning lead time: deadline = event time + this.
        COSTOP_DEADLINE_WINDOW_SECONDS => deadline_window_seconds: Int(1, 86_400);
        /// Pods must be gone this long before the deadline; less than the deadline window.
        COSTOP_SAFETY_MARGIN_SECONDS => safety_margin_seconds: Int(0, 86_400);
        /// Deadline for ASG terminate hooks, from event time. Heartbeats keep the hook alive
        /// until then; keep it within the hook's global timeout (100 × its heartbeat timeout,
        /// at most 48 h).
        COSTOP_ASG_HOOK_DEADLINE_SECONDS => asg_hook_deadline_seconds: Int(1, 7_200);
        /// After an interruption's deadline, how long an instance that is still running is
        /// presumed on its way down (EC2 stops a Spot instance at about the deadline, not on
        /// it) before the keeper gives its node back; then a running instance is back.
        COSTOP_RESUME_SETTLE_SECONDS => resume_settle_seconds: Int(0, 86_400);
        /// How long before an AWS Health scheduled change's `startTime` costop acts on it. A
        /// change further off is recorded as scheduled and handed to the interruption function
        /// by the keeper's tick at `startTime` minus this (within a tick of it); a nearer one is
        /// acted on at once. Long enough for a drain, short enough not to give capacity away
        /// days early.
        COSTOP_SCHEDULED_CHANGE_LEAD_SECONDS => scheduled_change_lead_seconds: Int(60, 604_800);
        /// The interruption function (name or ARN) the keeper hands scheduled changes to when
        /// they come due, invoked asynchronously; set by the template. Empty: due changes wait
        /// in the table, and the keeper reports them.
        COSTOP_INTERRUPTION_FUNCTION => interruption_function: Text;
    }
    Dedupe {
        /// A delivery seen but not finished within this long may be taken over by a
        /// redelivery.
        COSTOP_DEDUPE_LEASE_SECONDS => dedupe_lease_seconds: Int(1, 86_400);
    }
    Standby {
        /// Taint key of warm standbys (value `true`, `NoSchedule`); replacement pods get its
        /// toleration.
        COSTOP_TAINT_KEY_STANDBY => standby_taint_key: TaintKey;
        /// Warm standbys wanted per availability zone; the keeper reports the pool against it.
        COSTOP_STANDBY_POOL_SIZE => standby_pool_size: Int(0, 100);
        /// A started standby serves at least this long before it may return to the pool.
        COSTOP_STANDBY_MIN_SERVE_SECONDS => standby_min_serve_seconds: Int(0, 86_400);
        /// After a Spot warning the keeper gives replacement pods the standby toleration for
        /// this long (bounded by its invocation).
        COSTOP_STANDBY_WATCH_SECONDS => standby_watch_seconds: Int(1, 900);
    }
    Fallback {
        /// The fallback's routes: a JSON array of `{"method": "POST" or "*", "prefix": "/orders",
        /// "queue_safe": bool, "json": bool, "respond": {"status", "headers", "body"}}`. Reads
        /// are forwarded, writes queued where `queue_safe`, forwarded otherwise; a `respond`
        /// route answers with its fixed response. The longest matching prefix wins.
        COSTOP_FALLBACK_ROUTES => fallback_routes: RoutesJson;
        /// What the fallback does with a request no route matches: `forward` or `reject` (503
        /// with `Retry-After`).
        COSTOP_FALLBACK_DEFAULT_POLICY => fallback_default_policy: DefaultPolicyKind;
        /// The service's surviving capacity, reached around the fallback: an internal listener
        /// or load balancer URL (`http://` only). Forwards and replays go there. Empty: nothing
        /// is forwarded (503) and the keeper does not replay.
        COSTOP_FALLBACK_UPSTREAM => fallback_upstream: HttpUrl;
        /// How long a forwarded request is held and retried while the upstream does not answer,
        /// before the fallback answers 503 with `Retry-After`; well under the ALB's 60-second
        /// idle timeout.
        COSTOP_FALLBACK_FORWARD_BUDGET_MS => fallback_forward_budget_ms: Int(100, 55_000);
        /// The first retry's wait ceiling of a held request (full jitter, doubling).
        COSTOP_FALLBACK_BACKOFF_BASE_MS => fallback_backoff.base_ms: Int(1, 10_000);
        /// The ceiling of every wait of a held request; at least the base.
        COSTOP_FALLBACK_BACKOFF_MAX_MS => fallback_backoff.max_ms: Int(1, 30_000);
        /// `Retry-After` of the fallback's 503s, in seconds.
        COSTOP_FALLBACK_RETRY_AFTER_SECONDS => fallback_retry_after_seconds: Int(1, 3_600);
        /// The DynamoDB table of queued writes, their receipts and dead letters.
        COSTOP_QUEUE_TABLE => queue_table: Text;
        /// Writes the queue holds at most; a write beyond is answered 503 with `Retry-After`.
        COSTOP_QUEUE_MAX_DEPTH => queue_max_depth: Int(1, 10_000_000);
        /// Days a settled receipt (and its idempotency key) stays readable. Pending writes and
        /// dead letters never expire.
        COSTOP_QUEUE_RECEIPT_DAYS => queue_receipt_days: Int(1, 3650);
        /// Queued writes the keeper replays per second once traffic is restored.
        COSTOP_REPLAY_RATE => replay_rate: Positive;
        /// Replays of one write before it is dead-lettered (kept and reported).
        COSTOP_REPLAY_MAX_ATTEMPTS => replay_max_attempts: Int(1, 100);
    }
    Telemetry {
        /// CloudWatch namespace for EMF metrics.
        COSTOP_METRICS_NAMESPACE => metrics_namespace: Text;
        /// Log filter (a level or a `tracing` env-filter directive).
        COSTOP_LOG_LEVEL => log_level: Text;
    }
}

/// [`VARS`] as Markdown, a table per group: the variables section of the module docs
/// (`config/variables.md`, which `costop config --list --markdown` writes).
pub fn markdown() -> String {
    let mut out = String::new();
    let mut group = None;
    for var in VARS {
        if group != Some(var.group) {
            group = Some(var.group);
            let _ = write!(
                out,
                "\n**{}** (`{}`)\n\n| Variable | Default | Accepts | Meaning |\n|---|---|---|---|\n",
                var.group.title(),
                var.group.name()
            );
        }
        let default = match var.default_value() {
            d if d.is_empty() => "*(empty)*".to_owned(),
            d => format!("`{d}`"),
        };
        let _ = writeln!(
            out,
            "| `{}` | {default} | {} | {} |",
            var.name,
            var.accepts(),
            var.doc.replace('|', "\\|")
        );
    }
    out
}
