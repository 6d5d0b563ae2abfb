//! [`LabelSelector`]: match everything, match nothing, or requirements that must all hold;
//! built from the query syntax, a `metav1.LabelSelector` object or a label map, and printed
//! like `metav1.FormatLabelSelector`.

use std::fmt;

use serde_json::{Map, Value};

use super::label_parser::{Parser, lex};
use super::requirement::{Operator, Requirement};
use crate::error::ApiError;

/// A parsed label selector; empty matches everything.
///
/// Three states, as in Go: *everything* (no requirements; the `Default`), *nothing*
/// (`labels.Nothing()`, from a null `metav1.LabelSelector`), and a list of requirements that
/// must all hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no object (Go's `labels.Nothing()`): what a missing/null
    /// `metav1.LabelSelector` means, e.g. a policy/v1 PodDisruptionBudget without `selector`.
    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parse the `labelSelector` query parameter syntax. Bad syntax is a 400 BadRequest.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let tokens = lex(s);
        let mut p = Parser { tokens, pos: 0 };
        let mut requirements = p.parse().map_err(ApiError::bad_request)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self {
            requirements,
            nothing: false,
        })
    }

    /// Build from a `metav1.LabelSelector` object (`matchLabels` + `matchExpressions`), as
    /// Deployments, ReplicaSets, DaemonSets, StatefulSets and PDBs carry it.
    ///
    /// `Value::Null` (pass it for a missing `selector`) gives [`LabelSelector::nothing`]; an
    /// empty `{}` gives [`LabelSelector::everything`]. Invalid keys, values or operators are a
    /// 400 with the Go error text.
    pub fn from_object(sel: &Value) -> Result<Self, ApiError> {
        let obj = match sel {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(o) => o,
            other => {
                return Err(ApiError::bad_request(format!(
                    "label selector must be an object, got {other}"
                )));
            }
        };
        let mut requirements = Vec::new();
        if let Some(ml) = obj.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in ml {
                let v = v.as_str().unwrap_or_default().to_string();
                requirements.push(
                    Requirement::new(k, Operator::Equals, vec![v])
                        .map_err(ApiError::bad_request)?,
                );
            }
        }
        if let Some(exprs) = obj.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
                let op_name = e
                    .get("operator")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let op = match op_name {
                    "In" => Operator::In,
                    "NotIn" => Operator::NotIn,
                    "Exists" => Operator::Exists,
                    "DoesNotExist" => Operator::DoesNotExist,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "{other:?} is not a valid label selector operator"
                        )));
                    }
                };
                let values = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|vs| {
                        vs.iter()
                            .map(|v| v.as_str().unwrap_or_default().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                requirements
                    .push(Requirement::new(key, op, values).map_err(ApiError::bad_request)?);
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self {
            requirements,
            nothing: false,
        })
    }

    /// Equality requirements from a plain label map (a Service's `spec.selector`,
    /// `labels.SelectorFromSet`). Not validated: the map is assumed to come from a stored object.
    pub fn from_map(labels: &Map<String, Value>) -> Self {
        let mut requirements: Vec<Requirement> = labels
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                op: Operator::Equals,
                values: vec![
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                ],
            })
            .collect();
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Self {
            requirements,
            nothing: false,
        }
    }

    /// True only for the match-everything selector (Go's `Selector.Empty()`).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for the match-nothing selector.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Match against an object's `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(obj.pointer("/metadata/labels").and_then(Value::as_object))
    }
}

impl fmt::Display for LabelSelector {
    /// `Selector.String()`: requirements sorted by key, comma-joined; `""` for everything and
    /// for nothing (as in Go).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// `metav1.FormatLabelSelector`: `<none>` for an empty selector, `<error>` for an invalid one.
pub fn format_label_selector(sel: &Value) -> String {
    match LabelSelector::from_object(sel) {
        Err(_) => "<error>".to_string(),
        Ok(s) => {
            let out = s.to_string();
            if out.is_empty() {
                "<none>".to_string()
            } else {
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::selectors::{label_key_errors, label_value_errors};

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn parse_err(s: &str) -> String {
        let e = LabelSelector::parse(s).expect_err(s);
        assert_eq!(e.code, 400, "{s:?}");
        assert_eq!(e.reason, "BadRequest");
        e.message
    }

    #[test]
    fn label_selector_parses_every_operator_and_matches_like_the_server() {
        let l = labels(json!({"app": "web", "tier": "fe", "replicas": "3"}));
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("   ", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("app notin (web, db)", false),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=web,tier=fe", true),
            ("app=web,tier=be", false),
            ("  app = web ,  tier in ( fe , be )  ", true),
            ("replicas>2", true),
            ("replicas<3", false),
            ("tier>1", false),
            ("app=", false),
            ("missing=", false),
            ("missing!=", true),
        ];
        for (s, want) in cases {
            assert_eq!(sel(s).matches(Some(&l)), *want, "{s:?}");
        }
    }

    #[test]
    fn label_selector_notin_matches_objects_without_the_key() {
        let s = sel("env notin (prod),tier!=db");
        assert!(s.matches(None));
        assert!(s.matches(Some(&labels(json!({"app": "x"})))));
        assert!(!s.matches(Some(&labels(json!({"env": "prod"})))));
        assert!(!sel("env in (prod)").matches(None));
    }

    #[test]
    fn label_selector_empty_string_selects_everything() {
        let s = sel("");
        assert!(s.is_empty());
        assert!(s.matches(None));
        assert!(s.matches_object(&json!({"metadata": {}})));
        assert_eq!(s, LabelSelector::default());
    }

    #[test]
    fn label_selector_accepts_keywords_and_prefixes_as_keys_and_values() {
        assert!(sel("in=notin").matches(Some(&labels(json!({"in": "notin"})))));
        let s = sel("example.com/role in (in,notin)");
        assert!(s.matches(Some(&labels(json!({"example.com/role": "in"})))));
        assert!(sel("app in ()").matches(Some(&labels(json!({"app": ""})))));
        assert!(sel("app in (,a)").matches(Some(&labels(json!({"app": ""})))));
    }

    #[test]
    fn label_selector_prints_its_canonical_form_sorted_by_key() {
        assert_eq!(
            sel("z=1,a in (c,b),!m,k,n!=2,x==y").to_string(),
            "a in (b,c),k,!m,n!=2,x==y,z=1"
        );
        let from = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod", "dev"]}]
        }))
        .unwrap();
        assert_eq!(from.to_string(), "app=web,env notin (dev,prod)");
        assert_eq!(format_label_selector(&json!({})), "<none>");
        assert_eq!(
            format_label_selector(&json!({"matchLabels": {"a": "b"}})),
            "a=b"
        );
        assert_eq!(
            format_label_selector(&json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]})),
            "<error>"
        );
    }

    #[test]
    fn label_selector_reports_syntax_errors_with_the_real_messages() {
        let cases: &[(&str, &str)] = &[
            (
                "a in b",
                "unable to parse requirement: found 'b' expected: '('",
            ),
            (
                "a in (b",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "a in (b c)",
                "unable to parse requirement: found 'c', expected: ',' or ')'",
            ),
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
            ("a=b,", "found '', expected: identifier after ','"),
            (
                "=b",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            (
                "!",
                "unable to parse requirement: found '', expected: identifier",
            ),
            (
                "a=(b)",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            (
                "a>x",
                "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
        ];
        for (s, want) in cases {
            assert_eq!(parse_err(s), *want, "{s:?}");
        }
    }

    #[test]
    fn label_selector_validates_keys_and_values_like_the_server() {
        assert_eq!(
            parse_err("-app=x"),
            "unable to parse requirement: <nil>: Invalid value: \"-app\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        assert!(
            parse_err("Example.com/app=x").contains("prefix part a lowercase RFC 1123 subdomain")
        );
        assert!(parse_err("a/b/c=x").contains("a qualified name must consist of"));
        assert!(parse_err("/app=x").contains("prefix part must be non-empty"));
        assert!(
            parse_err(&format!("{}=x", "k".repeat(64)))
                .contains("name part must be no more than 63 characters")
        );
        let long = "v".repeat(64);
        assert_eq!(
            parse_err(&format!("app={long}")),
            format!(
                "unable to parse requirement: values[0][app]: Invalid value: \"{long}\": must be no more than 63 characters"
            )
        );
        assert!(parse_err("app=-x").starts_with(
            "unable to parse requirement: values[0][app]: Invalid value: \"-x\": a valid label must be an empty string"
        ));
        sel(&format!(
            "example.com/{}={}",
            "k".repeat(63),
            "v".repeat(63)
        ));
        assert!(label_key_errors("app.kubernetes.io/name").is_empty());
        assert!(label_value_errors("").is_empty());
    }

    #[test]
    fn label_selector_from_object_uses_match_labels_and_expressions() {
        let s = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe", "be"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists"},
                {"key": "env", "operator": "NotIn", "values": ["prod"]}
            ]
        }))
        .unwrap();
        let yes = json!({"metadata": {"labels": {"app": "web", "tier": "fe", "zone": "a"}}});
        let canary = json!({"metadata": {"labels": {"app": "web", "tier": "fe", "zone": "a", "canary": "1"}}});
        let prod = json!({"metadata": {"labels": {"app": "web", "tier": "fe", "zone": "a", "env": "prod"}}});
        assert!(s.matches_object(&yes));
        assert!(!s.matches_object(&canary));
        assert!(!s.matches_object(&prod));
        assert!(!s.matches_object(&json!({"metadata": {}})));
    }

    #[test]
    fn empty_label_selector_object_matches_everything_but_null_matches_nothing() {
        let everything = LabelSelector::from_object(&json!({})).unwrap();
        assert!(everything.is_empty() && !everything.is_nothing());
        assert!(everything.matches_object(&json!({"metadata": {"labels": {"a": "b"}}})));
        assert!(everything.matches(None));
        let nothing = LabelSelector::from_object(&Value::Null).unwrap();
        assert_eq!(nothing, LabelSelector::nothing());
        assert!(nothing.is_nothing() && !nothing.is_empty());
        assert!(!nothing.matches(None));
        assert!(!nothing.matches_object(&json!({"metadata": {"labels": {"a": "b"}}})));
    }

    #[test]
    fn label_selector_from_object_rejects_bad_operators_and_values() {
        let e = LabelSelector::from_object(
            &json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "\"Gt\" is not a valid label selector operator")
        );
        let e = LabelSelector::from_object(
            &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
        );
        let e = LabelSelector::from_object(
            &json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("values set must be empty for exists and does not exist")
        );
        assert!(LabelSelector::from_object(&json!({"matchLabels": {"a": "-"}})).is_err());
    }

    #[test]
    fn label_selector_from_map_is_an_equality_selector() {
        let s = LabelSelector::from_map(&labels(json!({"b": "2", "a": "1"})));
        assert_eq!(s.to_string(), "a=1,b=2");
        assert!(s.matches(Some(&labels(json!({"a": "1", "b": "2", "c": "3"})))));
        assert!(!s.matches(Some(&labels(json!({"a": "1"})))));
    }
}
