//! `forward`: pass the request on to the service's surviving capacity through the upstream,
//! holding it and retrying with full-jitter backoff ([`costop_core::fallback::backoff`]) until
//! capacity answers or the budget (`COSTOP_FALLBACK_FORWARD_BUDGET_MS`) runs out; then 503 with
//! `Retry-After`. Hop-by-hop headers are not passed on, in either direction; `X-Forwarded-*`
//! and the rest are. A request is sent again after no answer: a route whose writes must not be
//! applied twice should be declared `queue_safe` (replays carry an `Idempotency-Key`) or given a
//! fixed response.

use std::time::Duration;

use bytes::Bytes;
use costop_core::fallback::backoff::ATTEMPT_TIMEOUT;
use costop_core::fallback::{UpstreamAnswer, classify_answer, headers};

use super::retry::{Attempt, within_budget};
use super::{Fallback, Served, retry_later};
use crate::function::error_chain;
use crate::ports::{FallbackPorts, PortError, Upstream};

/// `headers` without the hop-by-hop ones (RFC 9110 §7.6.1).
pub(crate) fn end_to_end(headers: &http::HeaderMap) -> http::HeaderMap {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap_or("")))
        .collect();
    let kept: Vec<&str> = headers::end_to_end(pairs.iter().copied())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut out = http::HeaderMap::new();
    for (n, v) in headers {
        if kept.contains(&n.as_str()) {
            out.append(n.clone(), v.clone());
        }
    }
    out
}

/// The request as the upstream gets it: method, origin-form URI, end-to-end headers, body.
pub(crate) fn upstream_request(request: &http::Request<Bytes>) -> http::Request<Bytes> {
    let mut out = http::Request::new(request.body().clone());
    *out.method_mut() = request.method().clone();
    *out.uri_mut() = request
        .uri()
        .path_and_query()
        .and_then(|pq| pq.as_str().parse().ok())
        .unwrap_or_else(|| http::Uri::from_static("/"));
    *out.headers_mut() = end_to_end(request.headers());
    out
}

impl<W: FallbackPorts> Fallback<W> {
    pub(super) async fn forward(
        &self,
        request: http::Request<Bytes>,
        served: &mut Served,
    ) -> http::Response<Bytes> {
        let budget = Duration::from_millis(self.config.fallback_forward_budget_ms);
        let outgoing = upstream_request(&request);
        // A seed per request: the core's jitter is deterministic, the spread comes from here.
        let seed = uuid::Uuid::new_v4().to_string();
        let tried = within_budget(self.config.fallback_backoff, budget, &seed, |left| {
            let outgoing = outgoing.clone();
            async move {
                match self
                    .world
                    .upstream()
                    .send(outgoing, ATTEMPT_TIMEOUT.min(left))
                    .await
                {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        if classify_answer(Some(status)) == UpstreamAnswer::Answered {
                            Attempt::Done(response)
                        } else {
                            Attempt::Again(format!("the upstream answered {status}"))
                        }
                    }
                    // Not configured, or a request it can never take: waiting will not help.
                    Err(e @ PortError::Permanent { .. }) => {
                        tracing::error!(error = %error_chain(&e), "the upstream cannot take the request");
                        Attempt::Stop(error_chain(&e))
                    }
                    Err(e) => Attempt::Again(error_chain(&e)),
                }
            }
        })
        .await;
        let attempts = tried.attempts;
        served.attempts = Some(attempts);
        let last = match tried.result {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                parts.headers = end_to_end(&parts.headers);
                return http::Response::from_parts(parts, body);
            }
            Err(last) => last,
        };
        served.gave_up = true;
        tracing::warn!(attempts, last = %last, "no capacity answered within the forward budget");
        retry_later(
            &self.config,
            &format!(
                "no capacity answered within {} ms ({attempts} attempts; last: {last})",
                budget.as_millis()
            ),
        )
    }
}
