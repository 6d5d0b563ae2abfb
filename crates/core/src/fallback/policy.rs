//! What the fallback does with a request: pass it on to the service's surviving capacity
//! (`forward`), keep it to apply later (`queue`) or answer it from configuration (`respond`).
//!
//! - A route with a fixed response answers every request with it.
//! - Reads (`GET`, `HEAD`, `OPTIONS`: safe methods, RFC 9110 §9.2.1, nothing to keep) are
//!   forwarded.
//! - Writes are queued on routes their owner declared safe to queue, forwarded otherwise.
//! - A request no route matches gets the configured default, `forward` or `reject` (503 with
//!   `Retry-After`): the default never queues, as nobody declared such a write safe to delay.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::route::{FixedResponse, Routes};

/// What to do with one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum Policy {
    /// Pass it on to the upstream, holding and retrying until capacity answers.
    Forward,
    /// Persist it and answer 202 with a receipt; the keeper replays it later.
    Queue,
    /// Answer with a configured response.
    Respond(FixedResponse),
    /// No route and the default is to refuse: 503 with `Retry-After`.
    Reject,
}

impl Policy {
    /// Its name, for logs and the `X-Costop-Fallback` header.
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Forward => "forward",
            Policy::Queue => "queue",
            Policy::Respond(_) => "respond",
            Policy::Reject => "reject",
        }
    }
}

/// The policy of requests no route matches (`COSTOP_FALLBACK_DEFAULT_POLICY`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultPolicy {
    /// Forward them.
    #[default]
    Forward,
    /// Answer 503 with `Retry-After`.
    Reject,
}

impl FromStr for DefaultPolicy {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "forward" => Ok(DefaultPolicy::Forward),
            "reject" => Ok(DefaultPolicy::Reject),
            _ => Err(()),
        }
    }
}

impl fmt::Display for DefaultPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DefaultPolicy::Forward => "forward",
            DefaultPolicy::Reject => "reject",
        })
    }
}

/// The decision for one request: the policy, and whether its body must be JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// What to do.
    #[serde(flatten)]
    pub policy: Policy,
    /// The route declares JSON bodies.
    pub json: bool,
    /// The route's prefix, when one matched (for logs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

/// A read: a safe method (RFC 9110 §9.2.1) that changes nothing worth keeping.
pub fn is_read(method: &str) -> bool {
    ["GET", "HEAD", "OPTIONS"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// The decision for `method` `path`.
pub fn decide(routes: &Routes, default: DefaultPolicy, method: &str, path: &str) -> Decision {
    let Some(route) = routes.find(method, path) else {
        return Decision {
            policy: match default {
                DefaultPolicy::Forward => Policy::Forward,
                DefaultPolicy::Reject => Policy::Reject,
            },
            json: false,
            route: None,
        };
    };
    let policy = match &route.respond {
        Some(fixed) => Policy::Respond(fixed.clone()),
        None if is_read(method) => Policy::Forward,
        None if route.queue_safe => Policy::Queue,
        None => Policy::Forward,
    };
    Decision {
        policy,
        json: route.json,
        route: Some(route.prefix.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_forward_safe_writes_queue_other_writes_forward_and_unknown_routes_take_the_default() {
        let routes = Routes::parse(
            r#"[{"prefix": "/orders", "queue_safe": true, "json": true},
                {"prefix": "/payments"},
                {"method": "GET", "prefix": "/status", "respond": {"status": 200, "body": "degraded"}}]"#,
        )
        .unwrap();
        use DefaultPolicy::{Forward as F, Reject as R};
        for (default, method, path, want, json) in [
            (F, "GET", "/orders/1", "forward", true),
            (F, "HEAD", "/orders/1", "forward", true),
            (F, "OPTIONS", "/orders", "forward", true),
            (F, "POST", "/orders", "queue", true),
            (F, "PUT", "/orders/1", "queue", true),
            (F, "DELETE", "/orders/1", "queue", true),
            (F, "PATCH", "/orders/1", "queue", true),
            (F, "POST", "/payments", "forward", false),
            (F, "GET", "/status", "respond", false),
            (F, "POST", "/status", "forward", false),
            (F, "POST", "/elsewhere", "forward", false),
            (R, "POST", "/elsewhere", "reject", false),
            (R, "GET", "/elsewhere", "reject", false),
            (R, "POST", "/orders", "queue", true),
        ] {
            let d = decide(&routes, default, method, path);
            assert_eq!(
                (d.policy.name(), d.json),
                (want, json),
                "{default} {method} {path}"
            );
        }
    }

    #[test]
    fn the_default_policy_reads_forward_or_reject_in_any_case() {
        assert_eq!("Forward".parse(), Ok(DefaultPolicy::Forward));
        assert_eq!("REJECT".parse(), Ok(DefaultPolicy::Reject));
        assert_eq!("queue".parse::<DefaultPolicy>(), Err(()));
    }
}
