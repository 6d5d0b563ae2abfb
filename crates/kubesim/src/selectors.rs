//! Label selectors (`app=web,tier in (a,b),!canary`) and field selectors
//! (`spec.nodeName=n1,status.phase!=Succeeded`) with the real server's rules and errors.
//!
//! The label grammar, validation and error texts follow `k8s.io/apimachinery/pkg/labels`
//! (`labels.Parse`, `metav1.LabelSelectorAsSelector`); field selectors follow
//! `k8s.io/apimachinery/pkg/fields` plus the per-kind field label conversions of the API server.

use std::fmt;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::resources::ResourceDef;

// ---------------------------------------------------------------------------------------------
// Label key / value validation (k8s.io/apimachinery/pkg/util/validation)
// ---------------------------------------------------------------------------------------------

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    let ext = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.';
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&c| ext(c))
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty()
            && alnum(b[0])
            && alnum(b[b.len() - 1])
            && b.iter().all(|&c| alnum(c) || c == b'-')
    })
}

/// The errors `validation.IsQualifiedName` reports for a label key (empty when valid).
pub fn label_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > 253 {
                    errs.push("prefix part must be no more than 253 characters".to_string());
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(format!("prefix part {DNS1123_SUBDOMAIN_MSG}"));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !is_qualified_name_part(name) {
        errs.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    errs
}

/// The errors `validation.IsValidLabelValue` reports (empty when valid; `""` is valid).
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(LABEL_VALUE_MSG.to_string());
    }
    errs
}

/// `field.Invalid(path, value, detail).Error()`; a nil path prints as `<nil>` in Go.
fn invalid(path: &str, value: &str, errs: &[String]) -> String {
    format!("{path}: Invalid value: {value:?}: {}", errs.join("; "))
}

// ---------------------------------------------------------------------------------------------
// Requirements
// ---------------------------------------------------------------------------------------------

/// A `selection.Operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One `key op values` term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    op: Operator,
    /// Sorted and deduplicated, like the Go `sets.String` the parser builds.
    values: Vec<String>,
}

impl Requirement {
    /// Build and validate a requirement like `labels.NewRequirement`; the error is the Go
    /// error text (one error, or `[e1, e2]` for several).
    pub fn new(key: &str, op: Operator, values: Vec<String>) -> Result<Self, String> {
        let mut values = values;
        values.sort();
        values.dedup();
        let mut errs = Vec::new();
        let key_errs = label_key_errors(key);
        if !key_errs.is_empty() {
            errs.push(invalid("key", key, &key_errs));
        }
        let shown = || {
            format!(
                "[{}]",
                values
                    .iter()
                    .map(|v| format!("{v:?}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        match op {
            Operator::In | Operator::NotIn if values.is_empty() => errs.push(format!(
                "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
                shown()
            )),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => errs.push(format!(
                "values: Invalid value: {}: exact-match compatibility requires one single value",
                shown()
            )),
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(format!(
                "values: Invalid value: {}: values set must be empty for exists and does not exist",
                shown()
            )),
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                        shown()
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(format!(
                            "values[{i}]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let verrs = label_value_errors(v);
            if !verrs.is_empty() {
                errs.push(invalid(&format!("values[{i}][{key}]"), v, &verrs));
            }
        }
        match errs.len() {
            0 => Ok(Self {
                key: key.to_string(),
                op,
                values,
            }),
            1 => Err(errs.remove(0)),
            _ => Err(format!("[{}]", errs.join(", "))),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }
    pub fn operator(&self) -> Operator {
        self.op
    }
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// `Requirement.Matches`: negative operators match objects without the key.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let got = labels.and_then(|l| l.get(&self.key)).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        match self.op {
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                got.is_some_and(|g| self.values.contains(&g))
            }
            Operator::NotEquals | Operator::NotIn => got.is_none_or(|g| !self.values.contains(&g)),
            Operator::Exists => got.is_some(),
            Operator::DoesNotExist => got.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(Ok(have)), [want]) =
                    (got.map(|g| g.parse::<i64>()), self.values.as_slice())
                else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.op == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// The canonical form `labels.Requirement.String()` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.op {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
        };
        let set = matches!(self.op, Operator::In | Operator::NotIn);
        f.write_str(op)?;
        if set {
            f.write_str("(")?;
        }
        f.write_str(&self.values.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Label selector
// ---------------------------------------------------------------------------------------------

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

// --- lexer / parser, a port of labels/selector.go so errors read the same ---------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Eos,
    Ident,
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Gt,
    Lt,
    Bang,
    Open,
    Close,
    Comma,
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn special_token(s: &[u8]) -> Option<Tok> {
    Some(match s {
        b"=" => Tok::Equals,
        b"==" => Tok::DoubleEquals,
        b"!=" => Tok::NotEquals,
        b"!" => Tok::Bang,
        b"(" => Tok::Open,
        b")" => Tok::Close,
        b"," => Tok::Comma,
        b">" => Tok::Gt,
        b"<" => Tok::Lt,
        _ => return None,
    })
}

fn lex(s: &str) -> Vec<(Tok, String)> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
        }
        if i >= b.len() || b[i] == 0 {
            out.push((Tok::Eos, String::new()));
            return out;
        }
        if is_special(b[i]) {
            // Longest run of special characters that still forms a token ("!=", "==").
            let start = i;
            let mut best = (special_token(&b[i..=i]).unwrap_or(Tok::Eos), i + 1);
            let mut j = i + 1;
            while j < b.len() && is_special(b[j]) {
                match special_token(&b[start..=j]) {
                    Some(t) => best = (t, j + 1),
                    None => break,
                }
                j += 1;
            }
            out.push((
                best.0,
                String::from_utf8_lossy(&b[start..best.1]).into_owned(),
            ));
            i = best.1;
        } else {
            let start = i;
            while i < b.len()
                && b[i] != 0
                && !is_special(b[i])
                && !matches!(b[i], b' ' | b'\t' | b'\r' | b'\n')
            {
                i += 1;
            }
            let word = String::from_utf8_lossy(&b[start..i]).into_owned();
            let tok = match word.as_str() {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Ident,
            };
            out.push((tok, word));
        }
    }
}

struct Parser {
    tokens: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    /// In a value position `in`/`notin` are plain identifiers.
    fn lookahead(&self, values: bool) -> (Tok, String) {
        let (t, l) = self.tokens[self.pos.min(self.tokens.len() - 1)].clone();
        let t = if values && matches!(t, Tok::In | Tok::NotIn) {
            Tok::Ident
        } else {
            t
        };
        (t, l)
    }

    fn consume(&mut self, values: bool) -> (Tok, String) {
        let r = self.lookahead(values);
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        r
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(true);
            match tok {
                Tok::Ident | Tok::Bang => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(true);
                    match t {
                        Tok::Eos => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(true);
                            if t2 != Tok::Ident && t2 != Tok::Bang {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::Eos => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (mut tok, mut lit) = self.consume(true);
        let mut op = None;
        if tok == Tok::Bang {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(true);
        }
        if tok != Tok::Ident {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let key_errs = label_key_errors(&lit);
        if !key_errs.is_empty() {
            return Err(invalid("<nil>", &lit, &key_errs));
        }
        let key = lit;
        let (next, _) = self.lookahead(true);
        if matches!(next, Tok::Eos | Tok::Comma) {
            return Requirement::new(&key, op.unwrap_or(Operator::Exists), Vec::new());
        }
        if op == Some(Operator::DoesNotExist) {
            // `!key=v`: the requirement ends at the key; the caller then rejects the `=`.
            return Requirement::new(&key, Operator::DoesNotExist, Vec::new());
        }
        let (tok, lit) = self.consume(false);
        let op = match tok {
            Tok::In => Operator::In,
            Tok::NotIn => Operator::NotIn,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::NotEquals => Operator::NotEquals,
            Tok::Gt => Operator::GreaterThan,
            Tok::Lt => Operator::LessThan,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        };
        let values = match op {
            Operator::In | Operator::NotIn => self.set_values()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, op, values)
    }

    fn set_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(true);
        if tok != Tok::Open {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(true);
        match tok {
            Tok::Ident | Tok::Comma => {
                let s = self.identifiers()?;
                let (t, _) = self.consume(true);
                if t != Tok::Close {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(s)
            }
            Tok::Close => {
                self.consume(true);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut s: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.consume(true);
            match tok {
                Tok::Ident => {
                    s.push(lit);
                    let (t2, l2) = self.lookahead(true);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::Close => return Ok(s),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    // "(,a" "a,)" "a,,b" all contribute an empty value, as in Go.
                    if s.is_empty() {
                        s.push(String::new());
                    }
                    let (t2, _) = self.lookahead(true);
                    if t2 == Tok::Close {
                        s.push(String::new());
                        return Ok(s);
                    }
                    if t2 == Tok::Comma {
                        self.consume(true);
                        s.push(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(true);
        if matches!(tok, Tok::Eos | Tok::Comma) {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(true);
        if tok == Tok::Ident {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Field selector
// ---------------------------------------------------------------------------------------------

/// How a selectable field is read from an object: the first JSON pointer present wins, else
/// `default` (Go renders zero values: `""`, `"false"`, `"0"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Getter {
    pointers: &'static [&'static str],
    default: &'static str,
}

impl Getter {
    fn get(&self, obj: &Value) -> String {
        for p in self.pointers {
            match obj.pointer(p) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => return s.clone(),
                Some(Value::Bool(b)) => return b.to_string(),
                Some(other) => return other.to_string(),
            }
        }
        self.default.to_string()
    }
}

const fn g(pointers: &'static [&'static str]) -> Getter {
    Getter {
        pointers,
        default: "",
    }
}

/// Resolve a field label for `res` like the API server's field label conversion funcs:
/// `(canonical field, getter)` or the real error text.
fn resolve_field(res: &ResourceDef, field: &str) -> Result<(&'static str, Getter), String> {
    const NAME: (&str, Getter) = ("metadata.name", g(&["/metadata/name"]));
    const NAMESPACE: (&str, Getter) = ("metadata.namespace", g(&["/metadata/namespace"]));
    let unsupported = || format!("field label not supported: {field}");
    match (res.group, res.plural) {
        ("", "pods") => Ok(match field {
            "metadata.name" => NAME,
            "metadata.namespace" => NAMESPACE,
            // spec.host is the pre-1.0 name kept for old clients.
            "spec.nodeName" | "spec.host" => ("spec.nodeName", g(&["/spec/nodeName"])),
            "spec.restartPolicy" => ("spec.restartPolicy", g(&["/spec/restartPolicy"])),
            "spec.schedulerName" => ("spec.schedulerName", g(&["/spec/schedulerName"])),
            "spec.serviceAccountName" => {
                ("spec.serviceAccountName", g(&["/spec/serviceAccountName"]))
            }
            "spec.hostNetwork" => (
                "spec.hostNetwork",
                Getter {
                    pointers: &["/spec/hostNetwork"],
                    default: "false",
                },
            ),
            "status.phase" => ("status.phase", g(&["/status/phase"])),
            "status.podIP" => ("status.podIP", g(&["/status/podIPs/0/ip", "/status/podIP"])),
            "status.nominatedNodeName" => (
                "status.nominatedNodeName",
                g(&["/status/nominatedNodeName"]),
            ),
            _ => return Err(unsupported()),
        }),
        ("", "nodes") => Ok(match field {
            "metadata.name" => NAME,
            "spec.unschedulable" => (
                "spec.unschedulable",
                Getter {
                    pointers: &["/spec/unschedulable"],
                    default: "false",
                },
            ),
            _ => return Err(unsupported()),
        }),
        ("", "namespaces") => Ok(match field {
            "metadata.name" => NAME,
            "status.phase" => ("status.phase", g(&["/status/phase"])),
            _ => return Err(unsupported()),
        }),
        ("", "events") => Ok(match field {
            "metadata.name" => NAME,
            "metadata.namespace" => NAMESPACE,
            "involvedObject.kind" => ("involvedObject.kind", g(&["/involvedObject/kind"])),
            "involvedObject.namespace" => (
                "involvedObject.namespace",
                g(&["/involvedObject/namespace"]),
            ),
            "involvedObject.name" => ("involvedObject.name", g(&["/involvedObject/name"])),
            "involvedObject.uid" => ("involvedObject.uid", g(&["/involvedObject/uid"])),
            "involvedObject.apiVersion" => (
                "involvedObject.apiVersion",
                g(&["/involvedObject/apiVersion"]),
            ),
            "involvedObject.resourceVersion" => (
                "involvedObject.resourceVersion",
                g(&["/involvedObject/resourceVersion"]),
            ),
            "involvedObject.fieldPath" => (
                "involvedObject.fieldPath",
                g(&["/involvedObject/fieldPath"]),
            ),
            "reason" => ("reason", g(&["/reason"])),
            "reportingComponent" => ("reportingComponent", g(&["/reportingComponent"])),
            "source" => ("source", g(&["/source/component"])),
            "type" => ("type", g(&["/type"])),
            _ => return Err(unsupported()),
        }),
        ("", "services") => Ok(match field {
            "metadata.name" => NAME,
            "metadata.namespace" => NAMESPACE,
            "spec.clusterIP" => ("spec.clusterIP", g(&["/spec/clusterIP"])),
            "spec.type" => ("spec.type", g(&["/spec/type"])),
            _ => return Err(unsupported()),
        }),
        _ => Ok(match field {
            "metadata.name" => NAME,
            "metadata.namespace" => NAMESPACE,
            "status.replicas" if res.plural == "replicasets" => (
                "status.replicas",
                Getter {
                    pointers: &["/status/replicas"],
                    default: "0",
                },
            ),
            // Kinds without their own conversion func use DefaultMetaV1FieldSelectorConversion.
            _ => {
                return Err(format!(
                    "{field:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                ));
            }
        }),
    }
}

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
