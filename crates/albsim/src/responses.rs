//! Answers the load balancer writes itself (its error pages, fixed responses and redirects),
//! marked `server: awselb/2.0` as the ALB marks them, with the ALB's HTML error body and
//! reason phrases.
//!
//! When each error status is sent, from
//! <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-troubleshooting.html>:
//! - 400: "The client sent a malformed request that does not meet the HTTP specification."
//! - 413: "Target is a Lambda function and the request body exceeds 1 MB."
//! - 502: "The load balancer received a TCP RST from the target when attempting to establish a
//!   connection", "The target closed the connection with a TCP RST or a TCP FIN while the load
//!   balancer had an outstanding request to the target", "The target response is malformed or
//!   contains HTTP headers that are not valid", "The target is a Lambda function and the
//!   response body exceeds 1 MB", "The target is a Lambda function that did not respond before
//!   its configured timeout was reached", "The target is a Lambda function that returned an
//!   error".
//! - 503: "The target groups for the load balancer have no registered targets."
//! - 504: "The load balancer failed to establish a connection to the target before the
//!   connection timeout expired (10 seconds)", "The load balancer established a connection to
//!   the target but the target did not respond before the idle timeout period elapsed."

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

pub type Body = Full<Bytes>;

pub const SERVER: &str = "awselb/2.0";

/// The reason phrase the ALB puts on its status line where it differs from the canonical one.
fn reason_phrase(status: StatusCode) -> &'static str {
    match status.as_u16() {
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        413 => "Request Entity Too Large",
        _ => status.canonical_reason().unwrap_or(""),
    }
}

/// The ALB's own error page for `status`.
pub fn error(status: StatusCode) -> Response<Body> {
    let phrase = reason_phrase(status);
    let title = format!("{} {}", status.as_u16(), phrase);
    let html = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    );
    let mut response = generated(status, "text/html", Bytes::from(html));
    if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(phrase.as_bytes().to_vec()) {
        response.extensions_mut().insert(phrase);
    }
    response
}

/// The ALB's 400 as raw bytes, for a request too malformed to reach the HTTP layer.
pub fn raw_bad_request() -> Vec<u8> {
    let title = "400 Bad Request";
    let html = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    );
    format!(
        "HTTP/1.1 400 Bad Request\r\nServer: {SERVER}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
        html.len()
    )
    .into_bytes()
}

/// A response the load balancer writes, as a fixed-response action's.
pub fn generated(status: StatusCode, content_type: &str, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::SERVER, HeaderValue::from_static(SERVER));
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    response
}

/// A redirect action's answer.
pub fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut response = error(status);
    if let Ok(loc) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, loc);
    }
    response
}
