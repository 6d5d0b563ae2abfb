//! The route table: `COSTOP_FALLBACK_ROUTES`, a JSON array of routes, each an HTTP method (or
//! `*`) and a path prefix, with what the service's owner declares about it: whether its writes
//! are safe to queue (applied later, in order, exactly as sent), whether its body is JSON, and
//! optionally a fixed response. It is validated whole at cold start; an error names the entry.
//!
//! Matching: a prefix matches a path equal to it or continuing it at a `/` (so `/orders` matches
//! `/orders` and `/orders/7`, not `/ordersx`; `/` matches every path). The longest matching
//! prefix wins; between equal prefixes a route naming the method beats `*`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Any method.
pub const ANY_METHOD: &str = "*";

/// One route, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// An HTTP method (`POST`, any case) or `*`.
    #[serde(default = "any_method")]
    pub method: String,
    /// A path prefix starting with `/`.
    pub prefix: String,
    /// The route's writes may be queued and applied later (in order, with an idempotency key).
    #[serde(default)]
    pub queue_safe: bool,
    /// The route's bodies are JSON: an undecodable one is refused with 400.
    #[serde(default)]
    pub json: bool,
    /// Answer every request of the route with this response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respond: Option<FixedResponse>,
}

fn any_method() -> String {
    ANY_METHOD.to_owned()
}

/// A configured fixed response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedResponse {
    /// HTTP status, 100–599.
    pub status: u16,
    /// Response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Response body (text).
    #[serde(default)]
    pub body: String,
}

/// A route table that passed validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Routes(Vec<RouteSpec>);

/// Why the route table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Not a JSON array of routes.
    #[error("not a JSON array of routes: {0}")]
    NotJson(String),
    /// One entry is wrong.
    #[error("route {index} ({method} {prefix}): {reason}")]
    Entry {
        /// Its position, from 0.
        index: usize,
        /// Its method as written.
        method: String,
        /// Its prefix as written.
        prefix: String,
        /// What is wrong.
        reason: String,
    },
}

impl Routes {
    /// Parses and validates the JSON array.
    pub fn parse(json: &str) -> Result<Routes, RouteError> {
        let specs: Vec<RouteSpec> =
            serde_json::from_str(json).map_err(|e| RouteError::NotJson(e.to_string()))?;
        Routes::new(specs)
    }

    /// Validates routes given as data.
    pub fn new(mut specs: Vec<RouteSpec>) -> Result<Routes, RouteError> {
        for i in 0..specs.len() {
            let reason = check(&specs[i]);
            if let Some(reason) = reason {
                let s = &specs[i];
                return Err(RouteError::Entry {
                    index: i,
                    method: s.method.clone(),
                    prefix: s.prefix.clone(),
                    reason,
                });
            }
            specs[i].method = specs[i].method.to_ascii_uppercase();
            if let Some(dup) = specs[..i]
                .iter()
                .position(|o| o.method == specs[i].method && o.prefix == specs[i].prefix)
            {
                let s = &specs[i];
                return Err(RouteError::Entry {
                    index: i,
                    method: s.method.clone(),
                    prefix: s.prefix.clone(),
                    reason: format!("the same method and prefix as route {dup}"),
                });
            }
        }
        Ok(Routes(specs))
    }

    /// The routes, as configured.
    pub fn specs(&self) -> &[RouteSpec] {
        &self.0
    }

    /// The route for `method` and `path`, if any matches.
    pub fn find(&self, method: &str, path: &str) -> Option<&RouteSpec> {
        self.0
            .iter()
            .filter(|r| r.method == ANY_METHOD || r.method.eq_ignore_ascii_case(method))
            .filter(|r| prefix_matches(&r.prefix, path))
            .max_by_key(|r| (r.prefix.len(), r.method != ANY_METHOD))
    }
}

/// What is wrong with one route, if anything.
fn check(r: &RouteSpec) -> Option<String> {
    if r.method != ANY_METHOD
        && (r.method.is_empty() || !r.method.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Some("method must be an HTTP method (letters) or *".into());
    }
    if !r.prefix.starts_with('/') {
        return Some("prefix must start with /".into());
    }
    if r.prefix.contains(['?', '#']) || r.prefix.bytes().any(|b| b.is_ascii_control() || b == b' ')
    {
        return Some("prefix must be a path (no query, fragment, spaces or controls)".into());
    }
    if let Some(fixed) = &r.respond {
        if !(100..=599).contains(&fixed.status) {
            return Some(format!("respond.status {} is not 100–599", fixed.status));
        }
        if let Some(bad) = fixed.headers.keys().find(|h| !is_token(h)) {
            return Some(format!(
                "respond header name {bad:?} is not a valid header name"
            ));
        }
        if let Some((name, _)) = fixed
            .headers
            .iter()
            .find(|(_, v)| v.bytes().any(|b| b.is_ascii_control() && b != b'\t'))
        {
            return Some(format!("respond header {name:?} has a control character"));
        }
    }
    None
}

/// An HTTP token (RFC 9110 §5.6.2), what a header name must be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `prefix` matches `path` equal to it or continuing it at a `/`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(json: &str) -> Routes {
        Routes::parse(json).expect("valid")
    }

    #[test]
    fn the_longest_matching_prefix_wins_and_a_named_method_beats_any() {
        let r = routes(
            r#"[{"prefix": "/"},
                {"prefix": "/orders", "queue_safe": true},
                {"method": "post", "prefix": "/orders/bulk"},
                {"method": "DELETE", "prefix": "/orders"}]"#,
        );
        for (method, path, want) in [
            ("GET", "/", Some(("*", "/"))),
            ("GET", "/other", Some(("*", "/"))),
            ("POST", "/orders", Some(("*", "/orders"))),
            ("POST", "/orders/7", Some(("*", "/orders"))),
            ("POST", "/ordersx", Some(("*", "/"))),
            ("POST", "/orders/bulk", Some(("POST", "/orders/bulk"))),
            ("PUT", "/orders/bulk", Some(("*", "/orders"))),
            ("DELETE", "/orders/7", Some(("DELETE", "/orders"))),
            ("delete", "/orders", Some(("DELETE", "/orders"))),
        ] {
            let got = r
                .find(method, path)
                .map(|s| (s.method.as_str(), s.prefix.as_str()));
            assert_eq!(got, want, "{method} {path}");
        }
        assert_eq!(routes(r#"[{"prefix": "/a"}]"#).find("GET", "/b"), None);
    }

    #[test]
    fn a_prefix_matches_whole_segments() {
        for (prefix, path, want) in [
            ("/a", "/a", true),
            ("/a", "/a/b", true),
            ("/a", "/ab", false),
            ("/a/", "/a/b", true),
            ("/a/", "/a", false),
            ("/", "/anything", true),
        ] {
            assert_eq!(prefix_matches(prefix, path), want, "{prefix} {path}");
        }
    }

    #[test]
    fn a_bad_entry_is_named_by_its_position_method_and_prefix() {
        for (json, index, says) in [
            (
                r#"[{"prefix": "/a"}, {"prefix": "b"}]"#,
                1,
                "must start with /",
            ),
            (r#"[{"method": "P0ST", "prefix": "/a"}]"#, 0, "HTTP method"),
            (r#"[{"prefix": "/a?x=1"}]"#, 0, "no query"),
            (
                r#"[{"prefix": "/a", "respond": {"status": 700}}]"#,
                0,
                "700",
            ),
            (
                r#"[{"prefix": "/a", "respond": {"status": 503, "headers": {"bad name": "x"}}}]"#,
                0,
                "header name",
            ),
            (
                r#"[{"prefix": "/a"}, {"method": "*", "prefix": "/a"}]"#,
                1,
                "route 0",
            ),
        ] {
            match Routes::parse(json) {
                Err(RouteError::Entry {
                    index: i, reason, ..
                }) => {
                    assert_eq!(i, index, "{json}");
                    assert!(reason.contains(says), "{json}: {reason}");
                }
                other => panic!("{json}: {other:?}"),
            }
        }
        let e = Routes::parse(r#"[{"prefix": "/a", "queue": true}]"#).unwrap_err();
        assert!(
            matches!(e, RouteError::NotJson(ref m) if m.contains("queue")),
            "{e}"
        );
        assert!(matches!(Routes::parse("{}"), Err(RouteError::NotJson(_))));
        let e = Routes::parse(r#"[{"method": "GET", "prefix": "x"}]"#).unwrap_err();
        assert_eq!(e.to_string(), "route 0 (GET x): prefix must start with /");
    }
}
