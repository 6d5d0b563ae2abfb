//! Trying an operation again with full-jitter backoff ([`costop_core::fallback::backoff`]) until
//! it succeeds, says stop, or the budget runs out: the one loop behind the forward (an upstream
//! with no capacity yet), the queue and the replay's settling (a transaction DynamoDB cancelled
//! for a conflict).

use std::future::Future;
use std::time::{Duration, Instant};

use costop_core::fallback::FullJitter;
use costop_core::plan::deterministic_jitter;

/// One attempt's outcome.
pub(crate) enum Attempt<T, E> {
    /// Done: return it.
    Done(T),
    /// Failed; another attempt may do better.
    Again(E),
    /// Failed; no attempt will do better.
    Stop(E),
}

/// The last outcome and how many attempts it took.
pub(crate) struct Tried<T, E> {
    pub result: Result<T, E>,
    pub attempts: u32,
}

/// Run `attempt` (given the budget left) until it is done or stops, waiting `backoff`'s jittered
/// delay (from `seed`: one spread per request) between attempts; the last error once the next
/// wait would pass `budget`.
pub(crate) async fn within_budget<T, E, F, Fut>(
    backoff: FullJitter,
    budget: Duration,
    seed: &str,
    mut attempt: F,
) -> Tried<T, E>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Attempt<T, E>>,
{
    let started = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let left = budget.saturating_sub(started.elapsed());
        let error = match attempt(left).await {
            Attempt::Done(v) => {
                return Tried {
                    result: Ok(v),
                    attempts,
                };
            }
            Attempt::Stop(e) => {
                return Tried {
                    result: Err(e),
                    attempts,
                };
            }
            Attempt::Again(e) => e,
        };
        let jitter = deterministic_jitter(seed, attempts);
        let wait = backoff.next_wait(attempts - 1, jitter, started.elapsed(), budget);
        match wait {
            Some(wait) => tokio::time::sleep(wait).await,
            None => {
                return Tried {
                    result: Err(error),
                    attempts,
                };
            }
        }
        if started.elapsed() >= budget {
            return Tried {
                result: Err(error),
                attempts,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: FullJitter = FullJitter {
        base_ms: 1,
        max_ms: 5,
    };

    #[tokio::test]
    async fn an_attempt_that_succeeds_after_failures_is_returned_with_its_count() {
        let mut n = 0;
        let t = within_budget(B, Duration::from_secs(5), "s", |_| {
            n += 1;
            let now = n;
            async move {
                if now < 3 {
                    Attempt::Again("not yet")
                } else {
                    Attempt::Done(now)
                }
            }
        })
        .await;
        assert_eq!((t.result, t.attempts), (Ok(3), 3));
    }

    #[tokio::test]
    async fn a_stop_ends_at_once_and_a_spent_budget_returns_the_last_error() {
        let t = within_budget(B, Duration::from_secs(5), "s", |_| async {
            Attempt::<(), _>::Stop("never")
        })
        .await;
        assert_eq!((t.result, t.attempts), (Err("never"), 1));

        let mut lefts = Vec::new();
        let t = within_budget(B, Duration::from_millis(30), "s", |left| {
            lefts.push(left);
            async { Attempt::<(), _>::Again("busy") }
        })
        .await;
        assert_eq!(t.result, Err("busy"));
        assert!(t.attempts > 1, "retried while the budget lasted");
        assert!(
            lefts.windows(2).all(|w| w[1] <= w[0]),
            "each attempt is told what is left: {lefts:?}"
        );
    }
}
