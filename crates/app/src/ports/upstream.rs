//! The upstream port: one HTTP request to the service's surviving capacity, through the
//! configured upstream that bypasses the fallback (`COSTOP_FALLBACK_UPSTREAM`). The request's
//! URI is the origin form (`/path?query`); the adapter puts the upstream in front.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use super::PortError;

/// An HTTP client to the upstream.
pub trait Upstream: Send + Sync {
    /// Send `request` and read the whole response within `timeout`. No response at all
    /// (refused, reset, timed out) is a `Transient` error; an upstream not configured is
    /// `Permanent`.
    fn send(
        &self,
        request: http::Request<Bytes>,
        timeout: Duration,
    ) -> impl Future<Output = Result<http::Response<Bytes>, PortError>> + Send;
}
