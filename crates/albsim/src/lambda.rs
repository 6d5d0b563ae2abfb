//! Lambda targets: the request becomes the ALB event (`AlbTargetGroupRequest`), goes to the
//! function through its runtime API, and the function's `AlbTargetGroupResponse` becomes the
//! HTTP answer, as <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html>
//! describes:
//! - "The maximum size of the request body that you can send to a Lambda function is 1 MB."
//! - "The maximum size of the response JSON that the Lambda function can send is 1 MB."
//! - Without multi-value headers "the load balancer uses the last value" of a repeated header
//!   or query parameter, and the event carries `headers` and `queryStringParameters`; with
//!   them, `multiValueHeaders` and `multiValueQueryStringParameters` (and the response must
//!   use `multiValueHeaders`).
//! - Query parameters are passed as received: "If the query parameters are URL-encoded, the
//!   load balancer does not decode them."
//! - Bodies of textual content types (`text/*`, `application/json`, `application/javascript`,
//!   `application/xml`) are passed as is, other bodies base64-encoded with `isBase64Encoded`.

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::alb::{AlbTargetGroupRequest, AlbTargetGroupResponse};
use aws_lambda_events::encodings::Body as EventBody;
use aws_lambda_events::query_map::QueryMap;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

use crate::alb::Shared;
use crate::config::{Target, TargetGroup, matcher_accepts};
use crate::health::{CheckOutcome, Reason};
use crate::responses::{self, Body};
use crate::runtime_api::InvokeError;

/// 1 MB, the request body and response JSON limit.
pub const PAYLOAD_LIMIT: usize = 1024 * 1024;

/// The parts of a client request the event carries.
pub struct EventRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// How a Lambda target answered.
pub struct LambdaOutcome {
    pub response: Response<Body>,
    pub target_status: Option<u16>,
    pub error: Option<&'static str>,
}

/// The ALB event for `req`, as JSON.
pub fn event(group: &TargetGroup, req: &EventRequest<'_>) -> Result<Bytes, serde_json::Error> {
    let multi = group.attributes.lambda_multi_value_headers;
    let mut query_multi: HashMap<String, Vec<String>> = HashMap::new();
    let mut query_last: HashMap<String, String> = HashMap::new();
    for pair in req.query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query_multi.entry(k.into()).or_default().push(v.into());
        query_last.insert(k.into(), v.into());
    }
    let mut last_headers = HeaderMap::new();
    for (name, value) in req.headers {
        last_headers.insert(name.clone(), value.clone());
    }
    let textual = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let ct = ct.trim().to_ascii_lowercase();
            ct.starts_with("text/")
                || [
                    "application/json",
                    "application/javascript",
                    "application/xml",
                ]
                .iter()
                .any(|t| ct.starts_with(t))
        })
        .unwrap_or(false);
    let (body, base64) = match std::str::from_utf8(req.body) {
        _ if req.body.is_empty() => (String::new(), false),
        Ok(text) if textual => (text.to_string(), false),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(req.body),
            true,
        ),
    };

    let mut event = AlbTargetGroupRequest::default();
    event.http_method = req.method.clone();
    event.path = Some(req.path.to_string());
    event.request_context.elb.target_group_arn = Some(group.target_group_arn.clone());
    event.is_base64_encoded = base64;
    event.body = Some(body);
    if multi {
        event.multi_value_headers = req.headers.clone();
        event.multi_value_query_string_parameters = QueryMap::from(query_multi);
    } else {
        event.headers = last_headers;
        event.query_string_parameters = QueryMap::from(query_last);
    }
    let mut value = serde_json::to_value(&event)?;
    if let Some(map) = value.as_object_mut() {
        let unused = if multi {
            ["headers", "queryStringParameters"]
        } else {
            ["multiValueHeaders", "multiValueQueryStringParameters"]
        };
        for key in unused {
            map.remove(key);
        }
    }
    serde_json::to_vec(&value).map(Bytes::from)
}

/// The HTTP answer for the function's response payload, or the access-log tag of why it is
/// not a valid one (the load balancer then answers 502).
pub fn response(group: &TargetGroup, payload: &[u8]) -> Result<Response<Body>, &'static str> {
    if payload.len() > PAYLOAD_LIMIT {
        return Err("LambdaResponseTooLarge");
    }
    let parsed: AlbTargetGroupResponse =
        serde_json::from_slice(payload).map_err(|_| "LambdaInvalidResponse")?;
    let status = u16::try_from(parsed.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or("LambdaInvalidResponse")?;
    let body = match parsed.body {
        None | Some(EventBody::Empty) => Vec::new(),
        Some(EventBody::Binary(b)) => b,
        Some(EventBody::Text(t)) if parsed.is_base64_encoded => {
            base64::engine::general_purpose::STANDARD
                .decode(t.as_bytes())
                .map_err(|_| "LambdaInvalidResponse")?
        }
        Some(EventBody::Text(t)) => t.into_bytes(),
        Some(_) => return Err("LambdaInvalidResponse"),
    };
    let headers = if group.attributes.lambda_multi_value_headers {
        parsed.multi_value_headers
    } else {
        parsed.headers
    };
    let mut out = Response::new(Full::new(Bytes::from(body)));
    *out.status_mut() = status;
    for (name, value) in &headers {
        if !is_hop_by_hop(name) {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out.headers_mut().remove(http::header::CONTENT_LENGTH);
    Ok(out)
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "trailer" | "upgrade"
    )
}

/// Sends one request to the function `target` of `group`.
pub async fn forward(
    shared: &Shared,
    group: &TargetGroup,
    target: &Target,
    req: &EventRequest<'_>,
    idle_timeout: Duration,
) -> LambdaOutcome {
    let fail = |status: StatusCode, tag: &'static str| LambdaOutcome {
        response: responses::error(status),
        target_status: None,
        error: Some(tag),
    };
    if req.body.len() > PAYLOAD_LIMIT {
        return fail(StatusCode::PAYLOAD_TOO_LARGE, "LambdaRequestTooLarge");
    }
    let Ok(event) = event(group, req) else {
        return fail(StatusCode::BAD_GATEWAY, "LambdaInvalidRequest");
    };
    let Some(api) = shared.runtime_api(&target.id) else {
        return fail(StatusCode::BAD_GATEWAY, "LambdaUnhandled");
    };
    match api.invoke(event, idle_timeout).await {
        Ok(payload) => match response(group, &payload) {
            Ok(response) => {
                let status = response.status().as_u16();
                LambdaOutcome {
                    response,
                    target_status: Some(status),
                    error: None,
                }
            }
            Err(tag) => fail(StatusCode::BAD_GATEWAY, tag),
        },
        Err(InvokeError::NotPolled) => fail(StatusCode::GATEWAY_TIMEOUT, "LambdaNotPolled"),
        Err(InvokeError::Timeout) => fail(StatusCode::BAD_GATEWAY, "LambdaTimeout"),
        // The access log's reason codes: "LambdaThrottling: The Lambda function was throttled
        // because there were too many requests"; a failed Lambda request is logged with 502
        // (<https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-access-logs.html>,
        // "Error reason codes" and the example of a failed request to a Lambda function).
        Err(InvokeError::Throttled) => fail(StatusCode::BAD_GATEWAY, "LambdaThrottling"),
        Err(InvokeError::Function(message)) => {
            tracing::debug!(function = %target.id, %message, "function error");
            fail(StatusCode::BAD_GATEWAY, "LambdaUnhandled")
        }
    }
}

/// A health check of a function: an event for `GET path` from the health checker, passed
/// when the function answers a status the matcher accepts.
pub async fn health_check(
    shared: &Shared,
    group: &TargetGroup,
    target: &Target,
    path: &str,
    timeout: Duration,
) -> CheckOutcome {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("ELB-HealthChecker/2.0"),
    );
    let req = EventRequest {
        method: &Method::GET,
        path,
        query: None,
        headers: &headers,
        body: &[],
    };
    let failed = || {
        CheckOutcome::Failed(
            Reason::FailedHealthChecks,
            Reason::FailedHealthChecks.description().into(),
        )
    };
    let (Ok(event), Some(api)) = (event(group, &req), shared.runtime_api(&target.id)) else {
        return failed();
    };
    match tokio::time::timeout(timeout, api.invoke(event, timeout)).await {
        Err(_) | Ok(Err(InvokeError::NotPolled | InvokeError::Timeout)) => {
            CheckOutcome::Failed(Reason::Timeout, Reason::Timeout.description().into())
        }
        Ok(Err(InvokeError::Function(_) | InvokeError::Throttled)) => failed(),
        Ok(Ok(payload)) => match response(group, &payload) {
            Ok(r) if matcher_accepts(group.health_check.matcher(), r.status().as_u16()) => {
                CheckOutcome::Passed
            }
            Ok(r) => CheckOutcome::Failed(
                Reason::ResponseCodeMismatch,
                format!(
                    "Health checks failed with these codes: [{}]",
                    r.status().as_u16()
                ),
            ),
            Err(_) => failed(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TargetType;

    #[test]
    fn the_event_has_the_alb_shape_with_single_value_headers_by_default() {
        let group = TargetGroup::new("arn:tg", TargetType::Lambda, None);
        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        headers.insert("content-type", HeaderValue::from_static("image/png"));
        let body = [0u8, 159, 146, 150];
        let req = EventRequest {
            method: &Method::POST,
            path: "/p",
            query: Some("a=1&a=%20x"),
            headers: &headers,
            body: &body,
        };
        let json: serde_json::Value =
            serde_json::from_slice(&event(&group, &req).expect("builds")).expect("json");
        assert_eq!(json["httpMethod"], "POST");
        assert_eq!(json["requestContext"]["elb"]["targetGroupArn"], "arn:tg");
        assert_eq!(json["headers"]["x-a"], "2");
        assert_eq!(json["queryStringParameters"]["a"], "%20x");
        assert_eq!(json["isBase64Encoded"], true);
        assert_eq!(json["body"], "AJ+Slg==");
        assert!(json.get("multiValueHeaders").is_none());
    }

    #[test]
    fn a_response_over_one_megabyte_is_refused() {
        let group = TargetGroup::new("arn:tg", TargetType::Lambda, None);
        let big = format!(
            r#"{{"statusCode":200,"body":"{}"}}"#,
            "x".repeat(PAYLOAD_LIMIT)
        );
        assert_eq!(
            response(&group, big.as_bytes()).err(),
            Some("LambdaResponseTooLarge")
        );
        let ok = response(
            &group,
            br#"{"statusCode":201,"headers":{"x-b":"c"},"body":"hi"}"#,
        )
        .expect("valid");
        assert_eq!(ok.status(), StatusCode::CREATED);
        assert_eq!(ok.headers()["x-b"], "c");
    }
}
