//! Forwarding to moto: the request goes on with its method, path, query, headers and body, and
//! moto's answer streams back as it comes. Only the hop-by-hop headers, which describe one
//! connection rather than the message, are left to each connection (RFC 9110, section 7.6.1).
//! The `Host` header is kept: moto reads nothing from it that the front changes, and SigV4
//! signed it as the client sent it.

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::header::{self, HeaderMap, HeaderName};
use http::uri::{Authority, Scheme, Uri};
use http::{HeaderValue, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::BedError;

/// Headers that belong to one connection (RFC 9110, section 7.6.1).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// An HTTP/1.1 client for one moto server, with a pool of kept-alive connections.
pub struct Forwarder {
    authority: Authority,
    client: Client<HttpConnector, Body>,
}

impl Forwarder {
    /// For the moto at `moto_url` (`http://127.0.0.1:PORT`).
    pub fn new(moto_url: &str) -> Result<Forwarder, BedError> {
        let uri: Uri = moto_url
            .parse()
            .map_err(|e| BedError::Moto(format!("moto's URL {moto_url:?} is not a URI: {e}")))?;
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| BedError::Moto(format!("moto's URL {moto_url:?} has no host")))?;
        Ok(Forwarder {
            authority,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// Send `request` to moto and answer with what moto answers; a 502 when moto cannot be
    /// reached.
    pub async fn forward(&self, request: Request) -> Response {
        let (mut parts, body) = request.into_parts();
        let mut uri = parts.uri.clone().into_parts();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(self.authority.clone());
        parts.uri = match Uri::from_parts(uri) {
            Ok(u) => u,
            Err(e) => return bad_request(&format!("cannot address moto: {e}")),
        };
        strip_hop_by_hop(&mut parts.headers);
        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(answer) => {
                let (mut parts, body) = answer.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Body::new(body))
            }
            Err(e) => {
                tracing::warn!(error = %e, "the AWS front could not reach moto");
                plain(
                    StatusCode::BAD_GATEWAY,
                    &format!("moto did not answer: {e}"),
                )
            }
        }
    }
}

/// Drops the hop-by-hop headers, including those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
}

/// A 400 for a request the front cannot make sense of.
pub fn bad_request(message: &str) -> Response {
    plain(StatusCode::BAD_REQUEST, message)
}

fn plain(status: StatusCode, message: &str) -> Response {
    let mut r = Response::new(Body::from(message.to_owned()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_stay_with_their_connection() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-conn-only"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-conn-only", "1"),
            ("content-length", "12"),
            ("authorization", "AWS4-HMAC-SHA256 …"),
            ("host", "127.0.0.1:1"),
        ] {
            h.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "content-length", "host"]);
    }
}
