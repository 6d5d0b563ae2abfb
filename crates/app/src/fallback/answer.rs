//! The fallback's own answers: JSON bodies, 503 with `Retry-After` (RFC 9110 §10.2.3: the
//! seconds after which the client may try again), the configured fixed responses, and the
//! refusals of bad input.

use bytes::Bytes;
use costop_core::Config;
use costop_core::fallback::{FixedResponse, InputError, headers};
use http::{HeaderName, HeaderValue, StatusCode};

/// `status` with `body` as JSON.
pub fn json(status: StatusCode, body: &serde_json::Value) -> http::Response<Bytes> {
    let mut r = http::Response::new(Bytes::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(headers::JSON_CONTENT_TYPE),
    );
    r
}

/// 503 with `Retry-After` (`COSTOP_FALLBACK_RETRY_AFTER_SECONDS`) and why.
pub fn retry_later(config: &Config, why: &str) -> http::Response<Bytes> {
    let mut r = json(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({ "error": why }),
    );
    r.headers_mut().insert(
        headers::RETRY_AFTER,
        HeaderValue::from(config.fallback_retry_after_seconds),
    );
    r
}

/// A configured fixed response (validated at cold start; a header that still does not fit is
/// left out rather than failing the request).
pub fn fixed(f: &FixedResponse) -> http::Response<Bytes> {
    let mut r = http::Response::new(Bytes::from(f.body.clone()));
    *r.status_mut() = StatusCode::from_u16(f.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    for (name, value) in &f.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            r.headers_mut().append(n, v);
        }
    }
    r
}

/// 413 or 400, saying why.
pub fn refused(e: &InputError) -> http::Response<Bytes> {
    json(
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
        &serde_json::json!({ "error": e.to_string() }),
    )
}
