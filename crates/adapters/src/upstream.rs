//! [`HttpUpstream`]: the `Upstream` port over HTTP/1.1 (hyper-util's pooled client), to the
//! service's surviving capacity at `COSTOP_FALLBACK_UPSTREAM` — an internal listener or load
//! balancer that bypasses the fallback. Plain `http://` only (no TLS: the upstream is inside the
//! VPC); a response body over 1 MB is refused, as the ALB could not carry it back from a Lambda
//! target anyway ("The maximum size of the response JSON that the Lambda function can send is
//! 1 MB": <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html>).
//! Idle pooled connections are closed after [`POOL_IDLE`], before a load balancer's 60-second
//! idle timeout would close them under a request.

use std::time::Duration;

use bytes::Bytes;
use costop_app::ports::{PortError, Upstream};
use costop_core::fallback::MAX_BODY_BYTES;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long an idle pooled connection is kept.
pub const POOL_IDLE: Duration = Duration::from_secs(30);

/// Why an upstream request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// `COSTOP_FALLBACK_UPSTREAM` is not set.
    #[error("no upstream is configured (COSTOP_FALLBACK_UPSTREAM)")]
    NotConfigured,
    /// The request's path does not make a URI with the upstream in front.
    #[error("the request's path and the upstream do not make a URI")]
    BadUri(#[source] http::Error),
    /// No answer within the attempt's time.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// Connecting, sending or reading failed.
    #[error("the upstream request failed")]
    Http(#[source] hyper_util::client::legacy::Error),
    /// Reading the response body failed or it is over 1 MB.
    #[error("the upstream's response body could not be read (over 1 MB, or cut off)")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The upstream client; without an upstream configured (the default) every request fails
/// `Permanent`.
#[derive(Clone, Debug, Default)]
pub struct HttpUpstream(Option<std::sync::Arc<Target>>);

/// Where requests go and the pool that takes them there.
#[derive(Debug)]
struct Target {
    /// `http://host[:port][/base]`, without a trailing `/`.
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl HttpUpstream {
    /// To `base` (`COSTOP_FALLBACK_UPSTREAM`, already validated); empty: none. Building
    /// connects nothing: the first request does.
    pub fn new(base: &str) -> HttpUpstream {
        if base.is_empty() {
            return HttpUpstream(None);
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        HttpUpstream(Some(std::sync::Arc::new(Target {
            base: base.trim_end_matches('/').to_owned(),
            client,
        })))
    }
}

fn transient(e: UpstreamError) -> PortError {
    PortError::Transient {
        op: "upstream request",
        source: Box::new(e),
    }
}

fn permanent(e: UpstreamError) -> PortError {
    PortError::Permanent {
        op: "upstream request",
        source: Box::new(e),
    }
}

impl Upstream for HttpUpstream {
    async fn send(
        &self,
        request: http::Request<Bytes>,
        timeout: Duration,
    ) -> Result<http::Response<Bytes>, PortError> {
        let Some(Target { base, client }) = self.0.as_deref() else {
            return Err(permanent(UpstreamError::NotConfigured));
        };
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        parts.uri = format!("{base}{path}")
            .parse::<http::Uri>()
            .map_err(|e| permanent(UpstreamError::BadUri(e.into())))?;
        let request = http::Request::from_parts(parts, Full::new(body));
        let exchange = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| transient(UpstreamError::Http(e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| permanent(UpstreamError::Body(e)))?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| transient(UpstreamError::TimedOut(timeout)))?
    }
}
