//! The HTTP face of the simulator: discovery, CRUD/watch on every served resource and its
//! subresources, Status errors and server-side Table printing, as kubectl and kube-rs expect.
//!
//! One fallback handler parses the Kubernetes URL layout itself (`/api/v1/...`,
//! `/apis/<group>/<version>/...`, namespaced and cluster-wide, legacy `/watch/` paths), then
//! hands off to [`discovery`] or [`handlers`]. Content negotiation follows the `Accept` header:
//! `as=Table` (kubectl), `as=PartialObjectMetadata[List]` (kube-rs metadata API),
//! `as=APIGroupDiscoveryList` (aggregated discovery), else plain JSON.

mod discovery;
mod handlers;
mod protobuf;
mod query;
mod table;
mod watch;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::resources::{self, ResourceDef};
use crate::store::Store;

pub use discovery::GIT_VERSION;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<Store>,
}

/// The router serving the Kubernetes API.
pub fn router(state: ApiState) -> axum::Router {
    axum::Router::new()
        .fallback(dispatch)
        // The real server accepts request bodies up to 3 MiB.
        .layer(DefaultBodyLimit::max(3 * 1024 * 1024))
        .with_state(state)
}

/// What a request's `Accept` header asks for, in the client's order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    Json,
    Table { api_version: &'static str },
    Metadata,
    Aggregated { api_version: &'static str },
}

/// Parse `Accept` into the outputs we can produce, best first. No header means JSON.
fn accepted(headers: &HeaderMap) -> Vec<Output> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return vec![Output::Json];
    };
    let mut out = Vec::new();
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if !matches!(
            media,
            "application/json" | "*/*" | "application/*" | "application/json-seq"
        ) {
            continue;
        }
        let (mut as_, mut g, mut v) = ("", "", "");
        for p in parts {
            match p.split_once('=') {
                Some(("as", x)) => as_ = x,
                Some(("g", x)) => g = x,
                Some(("v", x)) => v = x,
                _ => {}
            }
        }
        let o = match (as_, g, v) {
            ("", _, _) => Output::Json,
            ("Table", "meta.k8s.io", "v1") => Output::Table {
                api_version: "meta.k8s.io/v1",
            },
            ("Table", "meta.k8s.io", "v1beta1") => Output::Table {
                api_version: "meta.k8s.io/v1beta1",
            },
            (
                "PartialObjectMetadata" | "PartialObjectMetadataList",
                "meta.k8s.io",
                "v1" | "v1beta1",
            ) => Output::Metadata,
            ("APIGroupDiscoveryList", "apidiscovery.k8s.io", "v2") => Output::Aggregated {
                api_version: "apidiscovery.k8s.io/v2",
            },
            ("APIGroupDiscoveryList", "apidiscovery.k8s.io", "v2beta1") => Output::Aggregated {
                api_version: "apidiscovery.k8s.io/v2beta1",
            },
            _ => continue,
        };
        out.push(o);
    }
    if out.is_empty() {
        // Only protobuf or YAML asked for: answer JSON anyway, which every client reads.
        out.push(Output::Json);
    }
    out
}

/// The first accepted output for which `ok` holds, else JSON.
fn choose(headers: &HeaderMap, ok: impl Fn(&Output) -> bool) -> Output {
    accepted(headers)
        .into_iter()
        .find(|o| ok(o))
        .unwrap_or(Output::Json)
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    bytes_response(status, serde_json::to_vec(body).unwrap_or_default())
}

pub(crate) fn bytes_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(status, &self.to_status())
    }
}

/// 404 for a path the server does not serve (kubectl: "the server could not find the
/// requested resource").
pub(crate) fn path_not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
    .with_details(json!({}))
}

/// A request for a served resource, parsed from its URL.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub res: &'static ResourceDef,
    pub ns: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
    /// `/watch/` in the path (the deprecated watch form).
    pub legacy_watch: bool,
}

enum Route {
    Version,
    Health,
    Api,
    Apis,
    ApiGroup(String),
    ResourceList(String, String),
    OpenApiV2,
    OpenApiV3Root,
    OpenApiV3(String),
    Resource(Target),
}

fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["version"] => return Some(Route::Version),
        ["healthz" | "livez" | "readyz", ..] => return Some(Route::Health),
        ["api"] => return Some(Route::Api),
        ["apis"] => return Some(Route::Apis),
        ["apis", g] => return Some(Route::ApiGroup(g.to_string())),
        ["openapi", "v2"] | ["swagger-2.0.0.pb-v1"] => return Some(Route::OpenApiV2),
        ["openapi", "v3"] => return Some(Route::OpenApiV3Root),
        ["openapi", "v3", gv @ ..] => return Some(Route::OpenApiV3(gv.join("/"))),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    if rest.is_empty() {
        return (!legacy_watch)
            .then(|| Route::ResourceList(group.to_string(), version.to_string()));
    }
    // `namespaces/<ns>/<plural>/...` unless `<plural>` is really a subresource of a namespace.
    let (ns, rest) = match rest {
        ["namespaces", ns, plural, ..]
            if resources::lookup(group, version, plural).is_some_and(|r| r.namespaced) =>
        {
            (Some(ns.to_string()), &rest[2..])
        }
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    let res = resources::lookup(group, version, plural)?;
    if ns.is_some() && !res.namespaced {
        return None;
    }
    if let Some(s) = &sub
        && (!res.subresources.contains(&s.as_str()) || legacy_watch)
    {
        return None;
    }
    // A named namespaced object needs its namespace in the path.
    if res.namespaced && ns.is_none() && name.is_some() {
        return None;
    }
    Some(Route::Resource(Target {
        res,
        ns,
        name,
        sub,
        legacy_watch,
    }))
}

async fn dispatch(
    State(st): State<ApiState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(route) = route(uri.path()) else {
        return path_not_found().into_response();
    };
    let reading = method == Method::GET || method == Method::HEAD;
    if !reading && !matches!(route, Route::Resource(_)) {
        return ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )
        .into_response();
    }
    let q = match query::Query::from_uri(&uri) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    match route {
        Route::Version => json_response(StatusCode::OK, &discovery::version()),
        Route::Health => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "ok",
        )
            .into_response(),
        Route::Api | Route::Apis => {
            let core = matches!(route, Route::Api);
            match choose(&headers, |o| {
                matches!(o, Output::Json | Output::Aggregated { .. })
            }) {
                Output::Aggregated { api_version } => {
                    let body = serde_json::to_vec(&discovery::aggregated(core, api_version))
                        .unwrap_or_default();
                    let ct = format!(
                        "application/json;g=apidiscovery.k8s.io;v={};as=APIGroupDiscoveryList",
                        api_version.rsplit('/').next().unwrap_or("v2")
                    );
                    (StatusCode::OK, [(header::CONTENT_TYPE, ct)], body).into_response()
                }
                _ if core => {
                    let host = headers
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("127.0.0.1:6443");
                    json_response(StatusCode::OK, &discovery::api_versions(host))
                }
                _ => json_response(StatusCode::OK, &discovery::api_group_list()),
            }
        }
        Route::ApiGroup(g) => match discovery::api_group_doc(&g) {
            Some(doc) => json_response(StatusCode::OK, &doc),
            None => path_not_found().into_response(),
        },
        Route::ResourceList(g, v) => match discovery::resource_list(&g, &v) {
            Some(doc) => json_response(StatusCode::OK, &doc),
            None => path_not_found().into_response(),
        },
        // No Swagger 2.0 document: clients fall back to v3 or their built-in types.
        Route::OpenApiV2 => path_not_found().into_response(),
        Route::OpenApiV3Root => json_response(StatusCode::OK, &discovery::openapi_v3_root()),
        Route::OpenApiV3(gv) => match discovery::openapi_v3_gv(&gv) {
            Some(doc) => json_response(StatusCode::OK, &doc),
            None => path_not_found().into_response(),
        },
        Route::Resource(t) => handlers::handle(&st, &method, t, &q, &headers, body)
            .await
            .unwrap_or_else(IntoResponse::into_response),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Option<Target> {
        match route(path)? {
            Route::Resource(t) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn paths_resolve_to_resources() {
        let t = target("/api/v1/namespaces/default/pods/web-1/eviction").expect("eviction path");
        assert_eq!(
            (
                t.res.plural,
                t.ns.as_deref(),
                t.name.as_deref(),
                t.sub.as_deref()
            ),
            ("pods", Some("default"), Some("web-1"), Some("eviction"))
        );
        let t = target("/api/v1/namespaces/kube-system").expect("namespace path");
        assert_eq!(
            (t.res.plural, t.ns, t.name.as_deref()),
            ("namespaces", None, Some("kube-system"))
        );
        let t = target("/api/v1/namespaces/x/status").expect("namespace status");
        assert_eq!(
            (t.res.plural, t.name.as_deref(), t.sub.as_deref()),
            ("namespaces", Some("x"), Some("status"))
        );
        let t = target("/api/v1/pods").expect("all pods");
        assert!(t.ns.is_none() && t.name.is_none());
        let t = target("/apis/apps/v1/watch/namespaces/d/deployments/web").expect("legacy watch");
        assert!(t.legacy_watch && t.name.as_deref() == Some("web"));
        assert!(target("/api/v1/pods/x").is_none());
        assert!(target("/api/v1/namespaces/d/nodes").is_none());
        assert!(target("/api/v1/namespaces/d/pods/x/logs").is_none());
        assert!(target("/apis/apps/v1/namespaces/d/widgets").is_none());
    }

    #[test]
    fn accept_headers_pick_tables_and_discovery() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json".parse().unwrap_or(header::HeaderValue::from_static("")));
        assert_eq!(
            accepted(&h)[0],
            Output::Table {
                api_version: "meta.k8s.io/v1"
            }
        );
        h.insert(header::ACCEPT, header::HeaderValue::from_static("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"));
        assert_eq!(
            accepted(&h)[0],
            Output::Aggregated {
                api_version: "apidiscovery.k8s.io/v2"
            }
        );
        assert_eq!(accepted(&HeaderMap::new()), vec![Output::Json]);
    }
}
