//! What every costop function shares, whatever runs it (the Lambda runtime, `costop replay`,
//! the demo, the tests): the [`Function`] trait, the [`Mode`], the [`Retryable`] rule that
//! becomes Lambda's error type, the invocation budget, and one-line error chains.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Execute the plan, or stop after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Execute,
    DryRun,
}

/// An error that knows whether the delivery is worth retrying. Lambda reports it as the
/// invocation's `errorType`: `Retryable` or `NonRetryable`, so the async-invoke retry policy
/// and the DLQ alarm can tell a transient failure from a bad event.
pub trait Retryable: std::error::Error + Send + Sync + 'static {
    /// Worth Lambda's async retry rather than the dead-letter queue.
    fn is_retryable(&self) -> bool;

    /// `Retryable` / `NonRetryable`, the Lambda diagnostic error type.
    fn error_type(&self) -> &'static str {
        if self.is_retryable() {
            "Retryable"
        } else {
            "NonRetryable"
        }
    }
}

/// One costop function: a delivery (the raw EventBridge JSON) in, an outcome out. The Lambda
/// plumbing (`costop-lambda`), `costop replay`, the demo and the tests all drive functions
/// through it.
pub trait Function: Send + Sync {
    /// What one delivery did (the invocation's response, printed by `--json`).
    type Outcome: Serialize + Send;
    /// Why a delivery failed.
    type Error: Retryable;

    /// The function's name as deployed (`costop-interruption`, …), for logs.
    fn name(&self) -> &'static str;

    /// Handle one delivery, done by `budget_end` (the invocation's deadline) when there is one.
    fn handle_within(
        &self,
        payload: &serde_json::Value,
        mode: Mode,
        budget_end: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<Self::Outcome, Self::Error>> + Send;

    /// Log the outcome and emit its metrics (EMF on stdout).
    fn report(&self, outcome: &Self::Outcome);
}

/// An error and its sources, one line, for the timeline (the log keeps the typed error).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        // SDK errors often repeat their source in their own text; say each thing once.
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The invocation budget from Lambda's context deadline (epoch milliseconds). A deadline
/// already past on arrival is not a real one (cargo lambda's local emulator sends a duration
/// where Lambda sends an epoch): then `None`, and the plan's own deadlines apply.
pub fn budget_end(deadline_ms: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(i64::try_from(deadline_ms).ok()?)
        .filter(|end| *end > Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[test]
    fn an_error_chain_names_each_source_once() {
        assert_eq!(error_chain(&Outer(Inner)), "outer: inner");
    }

    #[test]
    fn a_deadline_already_past_is_no_budget() {
        assert_eq!(budget_end(1_000), None);
        let later = Utc::now() + chrono::TimeDelta::seconds(60);
        assert_eq!(
            budget_end(later.timestamp_millis() as u64).map(|d| d.timestamp_millis()),
            Some(later.timestamp_millis())
        );
    }
}
