//! The forward's hold-and-retry: while the service's surviving capacity does not answer, the
//! fallback waits and tries again, with exponential backoff and "full jitter" (each wait drawn
//! uniformly from zero to the exponential delay, so many held requests spread out instead of
//! retrying in waves: <https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/>),
//! until capacity answers or the budget runs out. The budget defaults to well under the ALB's
//! 60-second idle timeout, after which the client would see the load balancer's own 504 instead
//! of the fallback's 503 with `Retry-After`.
//!
//! What counts as capacity answering ([`classify_answer`]): any response but 502, 503 and 504.
//! Those three are what a load balancer answers when no target did (a target that closed the
//! connection or sent a bad response, no healthy target, a target that timed out:
//! <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-troubleshooting.html>),
//! and what an overloaded service says to mean "try again". Every other status — a 500
//! included — is the service's own answer about this request, passed on as it is: retrying a
//! write the service failed on could apply it twice. No answer at all (refused, reset, timed
//! out) is retried.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Exponential backoff with full jitter: the wait before retry `n` (from 0) is
/// `jitter × min(max, base × 2ⁿ)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullJitter {
    /// The first delay's ceiling, milliseconds.
    pub base_ms: u64,
    /// The ceiling of every delay, milliseconds.
    pub max_ms: u64,
}

impl FullJitter {
    /// The wait before retry `retry` (0 = the first retry), with `jitter` in `[0, 1)` (clamped)
    /// supplied by the shell.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let ceiling = self
            .base_ms
            .saturating_mul(1u64.checked_shl(retry.min(63)).unwrap_or(u64::MAX))
            .min(self.max_ms);
        let j = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Duration::from_millis((ceiling as f64 * j) as u64)
    }

    /// The wait before retry `retry` when `elapsed` of `budget` has gone: the jittered delay,
    /// cut to what is left; `None` once the budget is spent (then the fallback answers 503).
    pub fn next_wait(
        &self,
        retry: u32,
        jitter: f64,
        elapsed: Duration,
        budget: Duration,
    ) -> Option<Duration> {
        let left = budget.checked_sub(elapsed).filter(|l| !l.is_zero())?;
        Some(self.delay(retry, jitter).min(left))
    }
}

/// How an upstream attempt ended, for the forward loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamAnswer {
    /// Capacity answered: pass the response on.
    Answered,
    /// No capacity yet: wait and retry while the budget lasts.
    Retry,
}

/// What an upstream attempt's status (`None`: no response at all) means for the forward.
pub fn classify_answer(status: Option<u16>) -> UpstreamAnswer {
    match status {
        None | Some(502..=504) => UpstreamAnswer::Retry,
        Some(_) => UpstreamAnswer::Answered,
    }
}

/// The longest one upstream attempt may take before it counts as no answer, so one hung
/// connection cannot use the whole budget.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    const B: FullJitter = FullJitter {
        base_ms: 100,
        max_ms: 2_000,
    };

    #[test]
    fn the_delay_doubles_to_its_ceiling_scaled_by_the_jitter() {
        for (retry, jitter, ms) in [
            (0, 1.0, 100),
            (1, 1.0, 200),
            (2, 1.0, 400),
            (4, 1.0, 1_600),
            (5, 1.0, 2_000),
            (60, 1.0, 2_000),
            (u32::MAX, 1.0, 2_000),
            (3, 0.5, 400),
            (3, 0.0, 0),
            (3, -1.0, 0),
            (3, 7.0, 800),
            (3, f64::NAN, 0),
        ] {
            assert_eq!(
                B.delay(retry, jitter),
                Duration::from_millis(ms),
                "{retry} {jitter}"
            );
        }
    }

    #[test]
    fn the_wait_is_cut_to_the_budget_left_and_ends_with_it() {
        let s = Duration::from_millis;
        for (retry, elapsed, budget, want) in [
            (0, 0, 15_000, Some(100)),
            (5, 14_000, 15_000, Some(1_000)),
            (5, 14_900, 15_000, Some(100)),
            (5, 15_000, 15_000, None),
            (0, 16_000, 15_000, None),
        ] {
            assert_eq!(
                B.next_wait(retry, 1.0, s(elapsed), s(budget)),
                want.map(s),
                "{retry} {elapsed}/{budget}"
            );
        }
    }

    #[test]
    fn only_no_answer_and_502_503_504_are_retried() {
        use UpstreamAnswer::*;
        for (status, want) in [
            (None, Retry),
            (Some(502), Retry),
            (Some(503), Retry),
            (Some(504), Retry),
            (Some(200), Answered),
            (Some(201), Answered),
            (Some(404), Answered),
            (Some(429), Answered),
            (Some(500), Answered),
            (Some(501), Answered),
        ] {
            assert_eq!(classify_answer(status), want, "{status:?}");
        }
    }
}
