//! The AWS Query protocol as the front needs it: which service a request is signed for, its
//! parameters (`Action=…` and the rest, from the query string and a form-encoded body), and the
//! XML answers Auto Scaling gives: an `<{Action}Response>` with an empty `<{Action}Result/>` for
//! the actions that return no data, and the `<ErrorResponse>` of a failed call.
//!
//! Shapes: the Auto Scaling API reference's actions
//! (<https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RecordLifecycleActionHeartbeat.html>,
//! <https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CompleteLifecycleAction.html>:
//! no response elements) and its common errors
//! (<https://docs.aws.amazon.com/autoscaling/ec2/APIReference/CommonErrors.html>:
//! `ValidationError`, HTTP 400; `InternalFailure`, HTTP 500).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, StatusCode, request};

use super::lifecycle::Refusal;

/// The SigV4 signing name of Auto Scaling (the service in a credential scope).
pub const AUTO_SCALING_SIGNING_NAME: &str = "autoscaling";
/// Auto Scaling's XML namespace (API version 2011-01-01).
pub const AUTO_SCALING_XMLNS: &str = "http://autoscaling.amazonaws.com/doc/2011-01-01/";

/// A request's SigV4 credential scope, `<key>/<date>/<region>/<service>/aws4_request`, from its
/// `Authorization` header (the SDKs sign with the header, never the query string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    pub region: String,
    pub service: String,
}

impl CredentialScope {
    /// The scope of an `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, …` value.
    pub fn of_authorization(value: &str) -> Option<CredentialScope> {
        let credential = value.split("Credential=").nth(1)?;
        let credential = credential.split([',', ' ']).next()?;
        let mut parts = credential.split('/');
        let (_key, _date) = (parts.next()?, parts.next()?);
        let (region, service) = (parts.next()?, parts.next()?);
        (parts.next() == Some("aws4_request")).then(|| CredentialScope {
            region: region.to_owned(),
            service: service.to_owned(),
        })
    }
}

/// Whether a request is signed for Auto Scaling (so its parameters are worth reading).
pub fn may_be_auto_scaling(request: &Request) -> bool {
    signed_for(request, AUTO_SCALING_SIGNING_NAME)
}

/// Whether the request is signed for the service with this SigV4 signing name.
pub fn signed_for(request: &Request, signing_name: &str) -> bool {
    scope(request.headers()).is_some_and(|s| s.service == signing_name)
}

fn scope(headers: &http::HeaderMap) -> Option<CredentialScope> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(CredentialScope::of_authorization)
}

/// A Query API request's parameters and credential scope.
#[derive(Debug, Clone, Default)]
pub struct QueryRequest {
    params: BTreeMap<String, String>,
    scope: Option<CredentialScope>,
}

impl QueryRequest {
    /// The parameters of the query string and, for a form-encoded body, of the body (which wins
    /// where both name one).
    pub fn parse(parts: &request::Parts, body: &[u8]) -> QueryRequest {
        let mut params: BTreeMap<String, String> = parts
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let form = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if form {
            params.extend(form_urlencoded::parse(body).into_owned());
        }
        QueryRequest {
            params,
            scope: scope(&parts.headers),
        }
    }

    /// `Action`.
    pub fn action(&self) -> Option<&str> {
        self.get("Action")
    }

    /// A parameter, when given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The region the request was signed for.
    pub fn region(&self) -> Option<&str> {
        self.scope.as_ref().map(|s| s.region.as_str())
    }
}

/// The success answer of an action that returns no data.
pub fn success(action: &str) -> Response {
    let id = request_id();
    xml(
        StatusCode::OK,
        &id,
        format!(
            "<{action}Response xmlns=\"{AUTO_SCALING_XMLNS}\"><{action}Result/><ResponseMetadata><RequestId>{id}</RequestId></ResponseMetadata></{action}Response>"
        ),
    )
}

/// The `<ErrorResponse>` of a refused call: a `ValidationError` (HTTP 400) when the request
/// names something that does not exist or breaks a rule, an `InternalFailure` (HTTP 500) when
/// the front could not read moto.
pub fn error(refusal: &Refusal) -> Response {
    let (status, kind) = match refusal {
        Refusal::Invalid(_) => (StatusCode::BAD_REQUEST, "Sender"),
        Refusal::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Receiver"),
    };
    let id = request_id();
    xml(
        status,
        &id,
        format!(
            "<ErrorResponse xmlns=\"{AUTO_SCALING_XMLNS}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>",
            refusal.code(),
            escape(refusal.message()),
        ),
    )
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An XML answer; the request id also goes in `x-amzn-RequestId`, where the SDKs read it.
pub fn xml(status: StatusCode, request_id: &str, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let headers = r.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    r
}

/// Text for an XML element.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_scope_names_the_region_and_service() {
        let auth = "AWS4-HMAC-SHA256 Credential=testing/20250311/us-east-1/autoscaling/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(
            CredentialScope::of_authorization(auth),
            Some(CredentialScope {
                region: "us-east-1".into(),
                service: "autoscaling".into()
            })
        );
        assert_eq!(
            CredentialScope::of_authorization("AWS4-HMAC-SHA256 Credential=k/d/r/s/other"),
            None
        );
        assert_eq!(CredentialScope::of_authorization("Bearer xyz"), None);
    }

    #[test]
    fn parameters_come_from_the_query_string_and_a_form_body() {
        let (parts, ()) = http::Request::post("/?Action=Ignored&Version=2011-01-01")
            .header(
                CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .header(
                AUTHORIZATION,
                "AWS4-HMAC-SHA256 Credential=k/d/eu-west-1/autoscaling/aws4_request, X",
            )
            .body(())
            .unwrap()
            .into_parts();
        let q = QueryRequest::parse(
            &parts,
            b"Action=CompleteLifecycleAction&LifecycleHookName=a%2Fb&InstanceId=",
        );
        assert_eq!(q.action(), Some("CompleteLifecycleAction"));
        assert_eq!(q.get("LifecycleHookName"), Some("a/b"));
        assert_eq!(q.get("Version"), Some("2011-01-01"));
        assert_eq!(q.get("InstanceId"), None, "empty is absent");
        assert_eq!(q.region(), Some("eu-west-1"));
    }

    #[test]
    fn error_messages_are_escaped() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
