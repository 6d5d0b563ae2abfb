//! The fallback function: an ALB Lambda target that takes the requests rerouted from a service
//! during a Spot interruption. Per request: receipts are served here
//! (`GET /_costop/receipts/{id}`); everything else is checked ([`costop_core::fallback::input`]:
//! 413, 400 — nothing stored), then handled by its route's policy
//! ([`costop_core::fallback::policy`]): [`forward`] to the surviving capacity, [`queue`]d for
//! the keeper's replay, answered from configuration, or refused with 503 and `Retry-After`.
//! Every answer carries `X-Costop-Fallback` with the policy applied. Failures below become
//! answers (503 with `Retry-After`), never a failed invocation, which the ALB would turn into a
//! bare 502.

mod answer;
mod forward;
mod queue;
pub(crate) mod retry;

use std::time::Instant;

use bytes::Bytes;
use costop_core::Config;
use costop_core::fallback::{self, Policy, headers};
use serde::Serialize;

use crate::ports::FallbackPorts;

pub use answer::{fixed, json, retry_later};

/// What one request came to, for the log line and the metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Served {
    /// `forward`, `queue`, `respond`, `reject`, `receipt` or `refused` (bad input).
    pub policy: &'static str,
    /// The status answered.
    pub status: u16,
    /// The route's prefix, when one matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The receipt, for a queued write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
    /// The write was a duplicate of a queued one (same `Idempotency-Key`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// Attempts: to reach the upstream for a forward, to store the write for a queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// The forward's budget ran out (or the queue was full, or a port failed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gave_up: bool,
    /// Time in the fallback, ms.
    pub elapsed_ms: u64,
}

impl Served {
    fn new(policy: &'static str) -> Self {
        Served {
            policy,
            status: 0,
            route: None,
            receipt: None,
            duplicate: false,
            attempts: None,
            gave_up: false,
            elapsed_ms: 0,
        }
    }
}

/// The fallback over a world with its ports.
pub struct Fallback<W> {
    world: W,
    config: Config,
}

impl<W: FallbackPorts> Fallback<W> {
    /// Over `world`, as `config` says.
    pub fn new(world: W, config: Config) -> Self {
        Fallback { world, config }
    }

    /// Its configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Its world.
    pub fn world(&self) -> &W {
        &self.world
    }

    /// One request → its answer, and what it came to.
    pub async fn handle(&self, request: http::Request<Bytes>) -> (http::Response<Bytes>, Served) {
        let started = Instant::now();
        let (mut response, mut served) = self.route(request).await;
        served.status = response.status().as_u16();
        served.elapsed_ms = started.elapsed().as_millis() as u64;
        if let Ok(v) = http::HeaderValue::from_str(served.policy) {
            response.headers_mut().insert(headers::X_COSTOP_FALLBACK, v);
        }
        (response, served)
    }

    async fn route(&self, request: http::Request<Bytes>) -> (http::Response<Bytes>, Served) {
        let path = request.uri().path().to_owned();
        if path.starts_with(headers::RECEIPTS_PREFIX) {
            return (self.receipt(&request).await, Served::new("receipt"));
        }
        let method = request.method().as_str().to_owned();
        let decision = fallback::decide(
            &self.config.fallback_routes,
            self.config.fallback_default_policy,
            &method,
            &path,
        );
        let is_write = !fallback::policy::is_read(&method);
        let checked =
            fallback::check_body(request.body(), decision.json && is_write).and_then(|()| {
                match request.headers().get(headers::IDEMPOTENCY_KEY) {
                    Some(k) => fallback::check_idempotency_key(k.as_bytes()).map(drop),
                    None => Ok(()),
                }
            });
        if let Err(refused) = checked {
            let mut served = Served::new("refused");
            served.route = decision.route;
            return (answer::refused(&refused), served);
        }
        let mut served = Served::new(decision.policy.name());
        served.route = decision.route.clone();
        let response = match &decision.policy {
            Policy::Respond(f) => fixed(f),
            Policy::Reject => {
                served.gave_up = true;
                retry_later(
                    &self.config,
                    "no route for this request and the default is to reject it",
                )
            }
            Policy::Forward => self.forward(request, &mut served).await,
            Policy::Queue => self.queue(request, &mut served).await,
        };
        (response, served)
    }
}

/// Compile-time check: handling a request is `Send`.
#[allow(dead_code)]
fn handling_is_send<W: FallbackPorts>(
    f: &Fallback<W>,
    r: http::Request<Bytes>,
) -> impl std::future::Future + Send + '_ {
    f.handle(r)
}
