//! One client request, end to end: route it, pick a target group and target, send it there
//! once (the ALB does not retry), and answer with the target's response or with the status
//! the ALB documents for the failure (see `responses`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use crate::access::AccessRecord;
use crate::alb::Shared;
use crate::config::{RedirectConfig, TargetType};
use crate::lambda::{self, EventRequest};
use crate::resolve::{self, ResolveError};
use crate::responses::{self, Body};
use crate::routing::{RequestView, RouteAction, pick_weighted};
use crate::upstream::UpstreamError;

/// What the access record says beyond the request itself.
#[derive(Default)]
struct Outcome {
    action: Option<&'static str>,
    group: Option<String>,
    target_id: Option<String>,
    target_addr: Option<SocketAddr>,
    target_status: Option<u16>,
    target_time: Option<std::time::Duration>,
    error: Option<&'static str>,
}

pub async fn handle(
    shared: &Arc<Shared>,
    listener_port: u16,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let mut outcome = Outcome::default();
    let response = route(shared, listener_port, peer, req, &mut outcome).await;
    shared.access.emit(AccessRecord {
        time: SystemTime::now(),
        listener_port,
        client: peer,
        method,
        path,
        target_group_arn: outcome.group,
        target_id: outcome.target_id,
        target_addr: outcome.target_addr,
        elb_status_code: response.status().as_u16(),
        target_status_code: outcome.target_status,
        target_processing_time: outcome.target_time,
        error_reason: outcome.error,
        action: outcome.action,
    });
    response
}

/// The record of a request rejected before it reached HTTP.
pub fn record_bad_request(shared: &Shared, listener_port: u16, peer: SocketAddr) {
    shared.access.emit(AccessRecord {
        time: SystemTime::now(),
        listener_port,
        client: peer,
        method: String::new(),
        path: String::new(),
        target_group_arn: None,
        target_id: None,
        target_addr: None,
        elb_status_code: 400,
        target_status_code: None,
        target_processing_time: None,
        error_reason: Some("MalformedRequest"),
        action: None,
    });
}

async fn route(
    shared: &Arc<Shared>,
    listener_port: u16,
    peer: SocketAddr,
    req: Request<Incoming>,
    outcome: &mut Outcome,
) -> Response<Body> {
    let Some(routes) = shared.routes(listener_port) else {
        outcome.error = Some("ListenerNotConfigured");
        return responses::error(StatusCode::SERVICE_UNAVAILABLE);
    };
    let (parts, body) = req.into_parts();
    let view = RequestView {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
    };
    match routes.route(&view).clone() {
        RouteAction::FixedResponse {
            status,
            content_type,
            body,
        } => {
            outcome.action = Some("fixed-response");
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            responses::generated(
                status,
                content_type.as_deref().unwrap_or("text/plain"),
                Bytes::from(body),
            )
        }
        RouteAction::Redirect(config) => {
            outcome.action = Some("redirect");
            let status = if config.status_code == "HTTP_301" {
                StatusCode::MOVED_PERMANENTLY
            } else {
                StatusCode::FOUND
            };
            responses::redirect(status, &location(&config, &view, listener_port))
        }
        RouteAction::Forward(groups) => {
            outcome.action = Some("forward");
            let Some(arn) = pick_weighted(&groups, &mut rand::rng()).map(str::to_string) else {
                outcome.error = Some("NoTargetGroupWeight");
                return responses::error(StatusCode::SERVICE_UNAVAILABLE);
            };
            outcome.group = Some(arn.clone());
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    outcome.error = Some("ClientBodyError");
                    return responses::error(StatusCode::BAD_REQUEST);
                }
            };
            forward(shared, listener_port, peer, &arn, parts, body, outcome).await
        }
    }
}

async fn forward(
    shared: &Arc<Shared>,
    listener_port: u16,
    peer: SocketAddr,
    arn: &str,
    parts: http::request::Parts,
    body: Bytes,
    outcome: &mut Outcome,
) -> Response<Body> {
    let Some(group) = shared.group(arn) else {
        outcome.error = Some("NoRegisteredTargets");
        return responses::error(StatusCode::SERVICE_UNAVAILABLE);
    };
    let Some(target) = group.pick() else {
        // "The target groups for the load balancer have no registered targets" (HTTP 503);
        // so too when none of them may take traffic yet.
        outcome.error = Some("NoRoutableTargets");
        return responses::error(StatusCode::SERVICE_UNAVAILABLE);
    };
    let config = group.config();
    outcome.target_id = Some(target.target.id.clone());
    let _in_flight = target.begin_request();
    let started = Instant::now();
    let headers = forwarded_headers(&parts.headers, peer, listener_port);

    if config.target_type == TargetType::Lambda {
        let req = EventRequest {
            method: &parts.method,
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &headers,
            body: &body,
        };
        let idle = shared.idle_timeout();
        let result = tokio::select! {
            r = lambda::forward(shared, &config, &target.target, &req, idle) => Some(r),
            () = target.wait_gone() => None,
        };
        outcome.target_time = Some(started.elapsed());
        return match result {
            Some(r) => {
                outcome.target_status = r.target_status;
                outcome.error = r.error;
                r.response
            }
            None => {
                outcome.error = Some("TargetDeregistered");
                responses::error(StatusCode::BAD_GATEWAY)
            }
        };
    }

    let addr = match resolve::resolve(&shared.resolver, &config, &target.target) {
        Ok(addr) => addr,
        Err(e) => {
            // An unknown or refused address is a connection that cannot be made: 502 as for a
            // refused connection.
            outcome.error = Some(match e {
                ResolveError::Unknown => "TargetConnectionError",
                ResolveError::NotLoopback => "TargetAddressNotLoopback",
            });
            return responses::error(StatusCode::BAD_GATEWAY);
        }
    };
    outcome.target_addr = Some(addr);
    let uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut builder = Request::builder().method(parts.method.clone()).uri(uri);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    let Ok(upstream_req) = builder.body(Full::new(body)) else {
        outcome.error = Some("RequestBuildError");
        return responses::error(StatusCode::BAD_REQUEST);
    };
    let sent = tokio::select! {
        r = shared.pool.send(addr, upstream_req, shared.connect_timeout(), shared.idle_timeout()) => Some(r),
        // The deregistration delay is over while the request is still in flight: the load
        // balancer closes the connection to the target.
        () = target.wait_gone() => None,
    };
    outcome.target_time = Some(started.elapsed());
    match sent {
        Some(Ok(response)) => {
            outcome.target_status = Some(response.status().as_u16());
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Full::new(body))
        }
        Some(Err(e)) => {
            tracing::debug!(%addr, error = %e, "target failed the request");
            outcome.error = Some(e.tag());
            let status = match e {
                UpstreamError::ConnectTimeout | UpstreamError::Timeout => {
                    StatusCode::GATEWAY_TIMEOUT
                }
                _ => StatusCode::BAD_GATEWAY,
            };
            responses::error(status)
        }
        None => {
            outcome.error = Some("TargetDeregistered");
            responses::error(StatusCode::BAD_GATEWAY)
        }
    }
}

/// The request headers the target sees: hop-by-hop headers dropped, and the `X-Forwarded-*`
/// and `X-Amzn-Trace-Id` headers the ALB adds
/// (<https://docs.aws.amazon.com/elasticloadbalancing/latest/application/x-forwarded-headers.html>).
fn forwarded_headers(incoming: &HeaderMap, peer: SocketAddr, listener_port: u16) -> HeaderMap {
    let mut headers = incoming.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(header::CONTENT_LENGTH);
    let xff = match incoming
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(prior) => format!("{prior}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    headers.insert("x-forwarded-port", HeaderValue::from(listener_port));
    if !headers.contains_key("x-amzn-trace-id")
        && let Ok(v) = HeaderValue::from_str(&crate::trace_id())
    {
        headers.insert("x-amzn-trace-id", v);
    }
    headers
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// A redirect's `Location`: each component the config leaves out, or gives as `#{…}`, keeps
/// the request's value.
fn location(config: &RedirectConfig, req: &RequestView<'_>, listener_port: u16) -> String {
    let host_header = req
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let host = host_header.split(':').next().unwrap_or("");
    let port = listener_port.to_string();
    let fill = |value: &Option<String>, default: &str| -> String {
        value
            .as_deref()
            .unwrap_or(default)
            .replace("#{protocol}", "http")
            .replace("#{host}", host)
            .replace("#{port}", &port)
            .replace("#{path}", req.path)
            .replace("#{query}", req.query.unwrap_or(""))
    };
    let protocol = fill(&config.protocol, "#{protocol}").to_ascii_lowercase();
    let host = fill(&config.host, "#{host}");
    let port = fill(&config.port, "#{port}");
    let path = fill(&config.path, "/#{path}");
    let path = if path.starts_with("//") {
        path[1..].to_string()
    } else {
        path
    };
    let query = fill(&config.query, "#{query}");
    let default_port =
        (protocol == "http" && port == "80") || (protocol == "https" && port == "443");
    let mut out = format!("{protocol}://{host}");
    if !default_port {
        out.push(':');
        out.push_str(&port);
    }
    out.push_str(&path);
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    out
}
