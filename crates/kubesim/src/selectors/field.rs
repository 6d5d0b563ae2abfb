//! [`FieldSelector`]: the `fieldSelector` query parameter parsed for one resource like
//! `fields.ParseSelector` (escapes included), and matched against objects.

use serde_json::Value;

use super::field_labels::{Getter, resolve_field};
use crate::error::ApiError;
use crate::resources::ResourceDef;

#[derive(Debug, Clone, PartialEq)]
struct FieldTerm {
    field: &'static str,
    value: String,
    negate: bool,
    getter: Getter,
}

/// A parsed field selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parse the `fieldSelector` query parameter for resource `res`. A field the real server
    /// does not support for that resource is a 400 with `field label not supported: <f>` (kinds
    /// without their own field conversion use the server's generic "is not a known field
    /// selector" text). Values may escape `\,`, `\=` and `\\`; no whitespace is trimmed.
    pub fn parse(res: &ResourceDef, s: &str) -> Result<Self, ApiError> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut raw = Vec::new();
        for part in parts.iter().filter(|p| !p.is_empty()) {
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            raw.push((
                lhs,
                op == "!=",
                unescape(rhs).map_err(ApiError::bad_request)?,
            ));
        }
        let mut terms = Vec::with_capacity(raw.len());
        for (lhs, negate, value) in raw {
            let (field, getter) = resolve_field(res, lhs).map_err(ApiError::bad_request)?;
            terms.push(FieldTerm {
                field,
                value,
                negate,
                getter,
            });
        }
        Ok(Self { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.terms
            .iter()
            .all(|t| (t.getter.get(obj) == t.value) != t.negate)
    }

    /// The value when the selector pins `field=value` (e.g. `spec.nodeName`), so a store can
    /// answer from an index. `spec.host` is reported as `spec.nodeName`.
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| !t.negate && t.field == field)
            .map(|t| t.value.as_str())
    }
}

/// Split on commas not escaped by a backslash (`fields.splitTerms`).
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// The first `!=`, `==` or `=` from the left splits a term (`fields.splitTerm`).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        for op in ["!=", "==", "="] {
            if term[i..].starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

/// `fields.UnescapeValue`.
fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    ));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Go prints the rune with %v, i.e. as its code point.
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ));
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources;

    fn fsel(res: &ResourceDef, s: &str) -> FieldSelector {
        FieldSelector::parse(res, s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn field_selector_matches_pod_fields_with_zero_values_for_missing_ones() {
        let bound = json!({"metadata": {"name": "p1", "namespace": "ns"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                     "serviceAccountName": "sa", "hostNetwork": true},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]}});
        let pending = json!({"metadata": {"name": "p2", "namespace": "ns"}, "spec": {}, "status": {"phase": "Pending"}});
        let cases: &[(&str, bool, bool)] = &[
            ("", true, true),
            ("spec.nodeName=n1", true, false),
            ("spec.nodeName==n1", true, false),
            ("spec.nodeName=", false, true),
            ("spec.nodeName!=", true, false),
            ("spec.host=n1", true, false),
            ("status.phase!=Succeeded,status.phase!=Failed", true, true),
            ("metadata.name=p2", false, true),
            ("metadata.namespace=ns,metadata.name=p1", true, false),
            ("spec.hostNetwork=true", true, false),
            ("spec.hostNetwork=false", false, true),
            ("status.podIP=10.0.0.1", true, false),
            ("spec.restartPolicy=Always", true, false),
            ("spec.schedulerName=default-scheduler", true, false),
            ("spec.serviceAccountName=sa", true, false),
            ("status.nominatedNodeName=", true, true),
        ];
        for (s, a, b) in cases {
            let f = fsel(&resources::PODS, s);
            assert_eq!((f.matches(&bound), f.matches(&pending)), (*a, *b), "{s:?}");
        }
    }

    #[test]
    fn field_selector_rejects_unsupported_fields_with_a_400() {
        let cases: &[(&ResourceDef, &str, &str)] = &[
            (
                &resources::PODS,
                "spec.foo=x",
                "field label not supported: spec.foo",
            ),
            (
                &resources::PODS,
                "metadata.labels=x",
                "field label not supported: metadata.labels",
            ),
            (
                &resources::NODES,
                "metadata.namespace=x",
                "field label not supported: metadata.namespace",
            ),
            (
                &resources::NODES,
                "spec.nodeName = n1",
                "field label not supported: spec.nodeName ",
            ),
            (
                &resources::NAMESPACES,
                "spec.finalizers=x",
                "field label not supported: spec.finalizers",
            ),
            (
                &resources::EVENTS,
                "message=x",
                "field label not supported: message",
            ),
            (
                &resources::SERVICES,
                "spec.ports=x",
                "field label not supported: spec.ports",
            ),
            (
                &resources::DEPLOYMENTS,
                "spec.replicas=1",
                "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            ),
        ];
        for (res, s, want) in cases {
            let e = FieldSelector::parse(res, s).expect_err(s);
            assert_eq!(
                (e.code, e.reason, e.message.as_str()),
                (400, "BadRequest", *want),
                "{s:?}"
            );
        }
    }

    #[test]
    fn field_selector_reports_bad_syntax_and_escapes() {
        let e = FieldSelector::parse(&resources::PODS, "spec.nodeName").unwrap_err();
        assert_eq!(
            e.message,
            "invalid selector: 'spec.nodeName'; can't understand 'spec.nodeName'"
        );
        let e = FieldSelector::parse(&resources::PODS, "metadata.name=a=b").unwrap_err();
        assert_eq!(
            e.message,
            "invalid field selector: unescaped character in value: 61"
        );
        let e = FieldSelector::parse(&resources::PODS, "metadata.name=a\\x").unwrap_err();
        assert_eq!(
            e.message,
            "invalid field selector: invalid escape sequence: \\x"
        );
        let f = fsel(&resources::CONFIGMAPS, "metadata.name=a\\,b\\=c");
        assert!(f.matches(&json!({"metadata": {"name": "a,b=c"}})));
        assert!(
            fsel(&resources::CONFIGMAPS, "metadata.name=x,")
                .matches(&json!({"metadata": {"name": "x"}}))
        );
    }

    #[test]
    fn field_selector_supports_node_namespace_event_service_and_replicaset_fields() {
        let node = json!({"metadata": {"name": "n1"}, "spec": {}});
        assert!(fsel(&resources::NODES, "spec.unschedulable=false").matches(&node));
        assert!(
            fsel(&resources::NODES, "spec.unschedulable=true")
                .matches(&json!({"spec": {"unschedulable": true}}))
        );
        assert!(
            fsel(&resources::NAMESPACES, "status.phase=Active")
                .matches(&json!({"status": {"phase": "Active"}}))
        );
        let ev = json!({"metadata": {"name": "e", "namespace": "d"}, "involvedObject": {"kind": "Pod", "name": "p",
            "namespace": "d", "uid": "u", "apiVersion": "v1", "resourceVersion": "3", "fieldPath": "spec"},
            "reason": "Scheduled", "reportingComponent": "default-scheduler", "source": {"component": "kubelet"},
            "type": "Normal"});
        let all = "involvedObject.kind=Pod,involvedObject.name=p,involvedObject.namespace=d,involvedObject.uid=u,\
                   involvedObject.apiVersion=v1,involvedObject.resourceVersion=3,involvedObject.fieldPath=spec,\
                   reason=Scheduled,reportingComponent=default-scheduler,source=kubelet,type=Normal,\
                   metadata.name=e,metadata.namespace=d";
        assert!(fsel(&resources::EVENTS, all).matches(&ev));
        assert!(!fsel(&resources::EVENTS, "type=Warning").matches(&ev));
        let svc = json!({"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1"}});
        assert!(
            fsel(
                &resources::SERVICES,
                "spec.type=ClusterIP,spec.clusterIP=10.96.0.1"
            )
            .matches(&svc)
        );
        assert!(fsel(&resources::REPLICASETS, "status.replicas=0").matches(&json!({"status": {}})));
        assert!(
            fsel(&resources::REPLICASETS, "status.replicas!=0")
                .matches(&json!({"status": {"replicas": 2}}))
        );
        assert!(
            fsel(&resources::PRIORITYCLASSES, "metadata.name=high")
                .matches(&json!({"metadata": {"name": "high"}}))
        );
    }

    #[test]
    fn field_selector_exact_exposes_pinned_values_for_indexing() {
        let f = fsel(&resources::PODS, "status.phase!=Succeeded,spec.nodeName=n1");
        assert_eq!(f.exact("spec.nodeName"), Some("n1"));
        assert_eq!(f.exact("status.phase"), None);
        assert_eq!(
            fsel(&resources::PODS, "spec.host=n2").exact("spec.nodeName"),
            Some("n2")
        );
        assert_eq!(
            fsel(&resources::PODS, "spec.nodeName=").exact("spec.nodeName"),
            Some("")
        );
        assert!(fsel(&resources::PODS, "").is_empty());
    }
}
