//! An ASG terminate hook's decisions: how often to send heartbeats while the drain runs, and
//! which result completes the lifecycle action.
//!
//! **Heartbeats.** A lifecycle action waits `HeartbeatTimeout` seconds for a heartbeat or a
//! completion, then Auto Scaling applies the hook's `DefaultResult` on its own
//! ([`RecordLifecycleActionHeartbeat`] restarts that wait). The plan sends one heartbeat before
//! the drain and one every half of the hook's timeout while the drain runs, so a heartbeat that
//! is slow or lost still leaves time for the next. The shell reads the hook with
//! `DescribeLifecycleHooks`; should that fail, the interval is half of the smallest timeout AWS
//! allows (30 s), which keeps any hook alive.
//!
//! **Result.** After a drain that evicted everything the result is `CONTINUE`. After a drain
//! whose deadline came with pods left (see [`FailedDrainResult`]) it is what
//! `COSTOP_ASG_HOOK_FAILED_DRAIN_RESULT` says: `CONTINUE` (the default), `ABANDON`, or the
//! hook's own `DefaultResult`. For a terminating instance both results terminate it; `ABANDON`
//! also cuts the group's other terminate hooks short, and it is what an instance lifecycle
//! policy's `TerminateHookAbandon` retention trigger acts on, keeping the instance for an
//! operator instead ([instance retention]). The default is `CONTINUE` rather than the hook's
//! `DefaultResult` (which is what Auto Scaling would apply if costop said nothing, and `ABANDON`
//! when the hook does not say) because pods left at the deadline are lost either way, while
//! `ABANDON` would also skip other hooks, such as a log backup, that do not depend on the drain.
//!
//! **Deadline.** The drain of a hook runs against the plan's deadline, event time +
//! `COSTOP_ASG_HOOK_DEADLINE_SECONDS`, which also bounds its grace periods. The shell cuts the
//! drain short 3 s before the invocation's own end when that comes first (the Lambda's
//! budget) and gives the event to Lambda's retry, which drains on against the same deadline;
//! `infra/check.py` requires the function's timeout to cover the deadline, so in a deployment
//! the plan's deadline comes first. The hook's heartbeat timeout bounds nothing while the
//! heartbeats go out. The hook's global timeout (100 × the heartbeat timeout, at most 48 h; at
//! least 3000 s, as the heartbeat timeout is at least 30 s) cannot be extended, and comes first
//! only if the deadline is set beyond it: beyond any Lambda's 900 s.
//!
//! [`RecordLifecycleActionHeartbeat`]: https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RecordLifecycleActionHeartbeat.html
//! [instance retention]: https://docs.aws.amazon.com/autoscaling/ec2/userguide/instance-lifecycle-policy.html

use serde::{Deserialize, Serialize};

use super::action::LifecycleResult;
use crate::facts::LifecycleHookFacts;

/// The smallest `HeartbeatTimeout` Auto Scaling accepts (`PutLifecycleHook`: 30 to 7200 s).
pub const MIN_HEARTBEAT_TIMEOUT_SECONDS: i64 = 30;

/// How often to send a heartbeat while the drain runs: half the hook's heartbeat timeout, or
/// half the smallest one AWS allows when the hook is unknown; at least every second.
pub fn heartbeat_every_seconds(hook: Option<&LifecycleHookFacts>) -> i64 {
    let timeout = hook.map_or(MIN_HEARTBEAT_TIMEOUT_SECONDS, |h| {
        h.heartbeat_timeout_seconds
    });
    (timeout / 2).max(1)
}

/// `COSTOP_ASG_HOOK_FAILED_DRAIN_RESULT`: how to complete a hook after a drain whose deadline
/// came with pods left (reported, or force-deleted when configured).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailedDrainResult {
    /// `CONTINUE`, as after a drain that went well.
    #[default]
    Continue,
    /// `ABANDON`.
    Abandon,
    /// The hook's `DefaultResult` (`CONTINUE` when the hook could not be read).
    Default,
}

impl FailedDrainResult {
    /// The word the variable takes.
    pub fn as_str(self) -> &'static str {
        match self {
            FailedDrainResult::Continue => "CONTINUE",
            FailedDrainResult::Abandon => "ABANDON",
            FailedDrainResult::Default => "DEFAULT",
        }
    }
}

impl std::fmt::Display for FailedDrainResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FailedDrainResult {
    type Err = ();

    /// `CONTINUE`, `ABANDON` or `DEFAULT`, in any case.
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_uppercase().as_str() {
            "CONTINUE" => Ok(FailedDrainResult::Continue),
            "ABANDON" => Ok(FailedDrainResult::Abandon),
            "DEFAULT" => Ok(FailedDrainResult::Default),
            _ => Err(()),
        }
    }
}

/// The completion's results: (after a drain that went well, after one that failed).
pub fn completion_results(
    on_failed: FailedDrainResult,
    hook: Option<&LifecycleHookFacts>,
) -> (LifecycleResult, LifecycleResult) {
    let failed = match on_failed {
        FailedDrainResult::Continue => LifecycleResult::Continue,
        FailedDrainResult::Abandon => LifecycleResult::Abandon,
        FailedDrainResult::Default => hook.map_or(LifecycleResult::Continue, |h| h.default_result),
    };
    (LifecycleResult::Continue, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifecycleResult::{Abandon, Continue};

    fn hook(heartbeat_timeout_seconds: i64, default_result: LifecycleResult) -> LifecycleHookFacts {
        LifecycleHookFacts {
            heartbeat_timeout_seconds,
            default_result,
        }
    }

    #[test]
    fn heartbeats_go_out_every_half_of_the_hooks_timeout() {
        for (timeout, every) in [
            (Some(7200), 3600),
            (Some(3600), 1800),
            (Some(300), 150),
            (Some(31), 15),
            (Some(30), 15),
            (Some(4), 2),
            (Some(1), 1),
            (Some(0), 1),
            (None, 15),
        ] {
            let h = timeout.map(|t| hook(t, Continue));
            assert_eq!(heartbeat_every_seconds(h.as_ref()), every, "{timeout:?}");
        }
    }

    #[test]
    fn a_failed_drain_completes_as_configured_and_a_good_one_always_continues() {
        use FailedDrainResult as F;
        for (on_failed, hook_default, failed) in [
            (F::Continue, Some(Abandon), Continue),
            (F::Continue, None, Continue),
            (F::Abandon, Some(Continue), Abandon),
            (F::Abandon, None, Abandon),
            (F::Default, Some(Abandon), Abandon),
            (F::Default, Some(Continue), Continue),
            (F::Default, None, Continue),
        ] {
            let h = hook_default.map(|d| hook(300, d));
            assert_eq!(
                completion_results(on_failed, h.as_ref()),
                (Continue, failed),
                "{on_failed} with the hook's default {hook_default:?}"
            );
        }
    }

    #[test]
    fn the_setting_reads_its_three_words_in_any_case() {
        for (raw, want) in [
            ("CONTINUE", Ok(FailedDrainResult::Continue)),
            ("abandon", Ok(FailedDrainResult::Abandon)),
            ("Default", Ok(FailedDrainResult::Default)),
            ("ROLLBACK", Err(())),
            ("", Err(())),
        ] {
            assert_eq!(raw.parse::<FailedDrainResult>(), want, "{raw:?}");
        }
        for v in [
            FailedDrainResult::Continue,
            FailedDrainResult::Abandon,
            FailedDrainResult::Default,
        ] {
            assert_eq!(v.as_str().parse(), Ok(v));
        }
    }
}
