//! Auto Scaling's lifecycle action calls, which moto does not implement:
//! `RecordLifecycleActionHeartbeat` and `CompleteLifecycleAction`, answered from moto's state.
//!
//! A call is accepted when the group exists (`DescribeAutoScalingGroups`), the group has the
//! hook (`DescribeLifecycleHooks`), it names the lifecycle action by token or instance, an
//! instance it names is in the group (`DescribeAutoScalingInstances`), and the action is still
//! active. Otherwise it is refused with a `ValidationError`, as Auto Scaling does
//! (<https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CompleteLifecycleAction.html>,
//! <https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RecordLifecycleActionHeartbeat.html>).
//!
//! moto never puts an instance in a wait state, so the front starts tracking a lifecycle action
//! at its first call and then keeps Auto Scaling's clock on it: the action ends when it is
//! completed, when no heartbeat came within the hook's `HeartbeatTimeout`, or at its global
//! timeout, 100 × the heartbeat timeout or 48 hours, whichever is smaller (the `GlobalTimeout`
//! of <https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_LifecycleHook.html>; moto
//! reports 48 hours for every hook). A call on an ended action is refused with the message
//! Auto Scaling gives, `No active Lifecycle Action found with token …` (or `… instance ID …`).
//!
//! Every call is recorded, accepted or not, for the tests to assert on what costop sent.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aws_sdk_autoscaling::config::Region;
use aws_sdk_autoscaling::error::DisplayErrorContext;

use super::query::QueryRequest;

/// The longest a lifecycle action may wait, heartbeats or not (48 hours).
const MAX_GLOBAL_TIMEOUT: Duration = Duration::from_secs(172_800);
/// The global timeout in heartbeat timeouts.
const GLOBAL_TIMEOUT_HEARTBEATS: u32 = 100;
/// Auto Scaling's default `HeartbeatTimeout`, for a hook that does not say (`PutLifecycleHook`).
const DEFAULT_HEARTBEAT_TIMEOUT_SECONDS: i32 = 3600;
/// The region of a request that names none (never an SDK's).
const DEFAULT_REGION: &str = "us-east-1";

/// The lifecycle action calls the front answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleAction {
    /// `RecordLifecycleActionHeartbeat`.
    Heartbeat,
    /// `CompleteLifecycleAction`.
    Complete,
}

impl LifecycleAction {
    /// The Query API action of this name, if the front answers it.
    pub fn from_name(action: &str) -> Option<LifecycleAction> {
        match action {
            "RecordLifecycleActionHeartbeat" => Some(LifecycleAction::Heartbeat),
            "CompleteLifecycleAction" => Some(LifecycleAction::Complete),
            _ => None,
        }
    }

    /// The Query API action name.
    pub fn name(self) -> &'static str {
        match self {
            LifecycleAction::Heartbeat => "RecordLifecycleActionHeartbeat",
            LifecycleAction::Complete => "CompleteLifecycleAction",
        }
    }
}

/// One lifecycle call as the front received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleCall {
    pub action: LifecycleAction,
    /// `AutoScalingGroupName` (empty when missing).
    pub asg: String,
    /// `LifecycleHookName` (empty when missing).
    pub hook: String,
    /// `InstanceId`.
    pub instance_id: Option<String>,
    /// `LifecycleActionToken`.
    pub token: Option<String>,
    /// `LifecycleActionResult` (completions).
    pub result: Option<String>,
    /// When it arrived.
    pub at: Instant,
    /// Why it was refused (its error's code and message); `None` when accepted.
    pub refused: Option<String>,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `ValidationError` (HTTP 400): what the request names does not exist, or breaks a rule.
    Invalid(String),
    /// `InternalFailure` (HTTP 500): moto's state could not be read.
    Internal(String),
}

impl Refusal {
    /// The AWS error code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Invalid(_) => "ValidationError",
            Refusal::Internal(_) => "InternalFailure",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Refusal::Invalid(m) | Refusal::Internal(m) => m,
        }
    }
}

/// What the hook says about the time a lifecycle action may wait.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    heartbeat: Duration,
    global: Duration,
}

impl Timeouts {
    fn of(heartbeat_timeout_seconds: Option<i32>) -> Timeouts {
        let seconds = heartbeat_timeout_seconds.unwrap_or(DEFAULT_HEARTBEAT_TIMEOUT_SECONDS);
        let heartbeat = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
        Timeouts {
            heartbeat,
            global: (heartbeat * GLOBAL_TIMEOUT_HEARTBEATS).min(MAX_GLOBAL_TIMEOUT),
        }
    }
}

/// One lifecycle action: (group, hook, instance id or token).
type ActionKey = (String, String, String);

/// A lifecycle action's clock.
#[derive(Debug)]
struct Tracked {
    started: Instant,
    last_heartbeat: Instant,
    ended: bool,
}

#[derive(Default)]
struct State {
    calls: Vec<LifecycleCall>,
    actions: HashMap<ActionKey, Tracked>,
    /// The instance of each token seen with one, so calls naming either find the same action.
    instance_of_token: HashMap<String, String>,
}

/// The lifecycle calls' state and moto, where the groups and hooks live.
pub(super) struct Lifecycle {
    moto: aws_sdk_autoscaling::Client,
    state: Mutex<State>,
}

impl Lifecycle {
    pub(super) fn new(moto: aws_sdk_autoscaling::Client) -> Lifecycle {
        Lifecycle {
            moto,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn calls(&self) -> Vec<LifecycleCall> {
        self.state().calls.clone()
    }

    /// Answer one call (see the module docs), and record it.
    pub(super) async fn answer(
        &self,
        action: LifecycleAction,
        q: &QueryRequest,
    ) -> Result<(), Refusal> {
        let at = Instant::now();
        let outcome = self.check(action, q, at).await;
        let call = LifecycleCall {
            action,
            asg: q.get("AutoScalingGroupName").unwrap_or_default().to_owned(),
            hook: q.get("LifecycleHookName").unwrap_or_default().to_owned(),
            instance_id: q.get("InstanceId").map(str::to_owned),
            token: q.get("LifecycleActionToken").map(str::to_owned),
            result: q.get("LifecycleActionResult").map(str::to_owned),
            at,
            refused: outcome
                .as_ref()
                .err()
                .map(|r| format!("{}: {}", r.code(), r.message())),
        };
        tracing::debug!(?call, "lifecycle call");
        self.state().calls.push(call);
        outcome
    }

    async fn check(
        &self,
        action: LifecycleAction,
        q: &QueryRequest,
        at: Instant,
    ) -> Result<(), Refusal> {
        let required = |name: &str, field: &str| {
            q.get(name).ok_or_else(|| {
                Refusal::Invalid(format!(
                    "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
                ))
            })
        };
        let asg = required("AutoScalingGroupName", "autoScalingGroupName")?;
        let hook = required("LifecycleHookName", "lifecycleHookName")?;
        let (token, instance) = (q.get("LifecycleActionToken"), q.get("InstanceId"));
        if token.is_none() && instance.is_none() {
            return Err(Refusal::Invalid(
                "A lifecycle action token or an instance ID must be specified".into(),
            ));
        }
        if action == LifecycleAction::Complete {
            let result = required("LifecycleActionResult", "lifecycleActionResult")?;
            if result != "CONTINUE" && result != "ABANDON" {
                return Err(Refusal::Invalid(format!(
                    "Invalid lifecycle action result {result}: expected CONTINUE or ABANDON"
                )));
            }
        }
        let region = q.region().unwrap_or(DEFAULT_REGION);
        let timeouts = self.read_moto(region, asg, hook, instance).await?;

        let mut state = self.state();
        if let (Some(t), Some(i)) = (token, instance) {
            state.instance_of_token.insert(t.to_owned(), i.to_owned());
        }
        let id = instance
            .or_else(|| token.and_then(|t| state.instance_of_token.get(t).map(String::as_str)))
            .or(token)
            .unwrap_or_default()
            .to_owned();
        let tracked = state
            .actions
            .entry((asg.to_owned(), hook.to_owned(), id))
            .or_insert(Tracked {
                started: at,
                last_heartbeat: at,
                ended: false,
            });
        let timed_out = at.duration_since(tracked.last_heartbeat) > timeouts.heartbeat
            || at.duration_since(tracked.started) > timeouts.global;
        if tracked.ended || timed_out {
            // Auto Scaling applied the hook's default result, or a completion came before.
            tracked.ended = true;
            return Err(Refusal::Invalid(match token {
                Some(t) => format!("No active Lifecycle Action found with token {t}"),
                None => format!(
                    "No active Lifecycle Action found with instance ID {}",
                    instance.unwrap_or_default()
                ),
            }));
        }
        match action {
            LifecycleAction::Heartbeat => tracked.last_heartbeat = at,
            LifecycleAction::Complete => tracked.ended = true,
        }
        Ok(())
    }

    /// The hook's timeouts, once moto confirms the group, the hook and the instance's membership.
    async fn read_moto(
        &self,
        region: &str,
        asg: &str,
        hook: &str,
        instance: Option<&str>,
    ) -> Result<Timeouts, Refusal> {
        let in_region = || {
            aws_sdk_autoscaling::config::Builder::default().region(Region::new(region.to_owned()))
        };
        let groups = self
            .moto
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(asg)
            .customize()
            .config_override(in_region())
            .send();
        let hooks = self
            .moto
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(asg)
            .lifecycle_hook_names(hook)
            .customize()
            .config_override(in_region())
            .send();
        let member = async {
            match instance {
                Some(i) => self
                    .moto
                    .describe_auto_scaling_instances()
                    .instance_ids(i)
                    .customize()
                    .config_override(in_region())
                    .send()
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let (groups, hooks, member) = tokio::join!(groups, hooks, member);
        let groups = groups.map_err(moto_failed("DescribeAutoScalingGroups"))?;
        if groups.auto_scaling_groups().is_empty() {
            return Err(Refusal::Invalid(format!("Group {asg} not found")));
        }
        let hooks = hooks.map_err(moto_failed("DescribeLifecycleHooks"))?;
        let Some(found) = hooks
            .lifecycle_hooks()
            .iter()
            .find(|h| h.lifecycle_hook_name() == Some(hook))
        else {
            return Err(Refusal::Invalid(format!(
                "No lifecycle hook named {hook} found for group {asg}"
            )));
        };
        let member = member.map_err(moto_failed("DescribeAutoScalingInstances"))?;
        if let (Some(i), Some(out)) = (instance, member) {
            let in_group = out
                .auto_scaling_instances()
                .iter()
                .any(|d| d.instance_id() == Some(i) && d.auto_scaling_group_name() == Some(asg));
            if !in_group {
                return Err(Refusal::Invalid(format!(
                    "No active Lifecycle Action found with instance ID {i}"
                )));
            }
        }
        Ok(Timeouts::of(found.heartbeat_timeout()))
    }
}

/// `map_err` for a read of moto's state that failed: the bed's failure, not the caller's.
fn moto_failed<E: std::error::Error>(op: &'static str) -> impl FnOnce(E) -> Refusal {
    move |e| {
        Refusal::Internal(format!(
            "reading moto ({op}) failed: {}",
            DisplayErrorContext(&e)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_global_timeout_is_a_hundred_heartbeat_timeouts_or_two_days() {
        for (heartbeat, global) in [
            (Some(30), 3000),
            (Some(4), 400),
            (Some(7200), 172_800),
            (None, 172_800),
        ] {
            let t = Timeouts::of(heartbeat);
            assert_eq!(t.global, Duration::from_secs(global), "{heartbeat:?}");
        }
        assert_eq!(Timeouts::of(None).heartbeat, Duration::from_secs(3600));
    }

    #[test]
    fn the_front_answers_exactly_the_two_lifecycle_calls() {
        for a in [LifecycleAction::Heartbeat, LifecycleAction::Complete] {
            assert_eq!(LifecycleAction::from_name(a.name()), Some(a));
        }
        for other in [
            "DescribeLifecycleHooks",
            "DetachInstances",
            "PutLifecycleHook",
        ] {
            assert_eq!(LifecycleAction::from_name(other), None);
        }
    }
}
