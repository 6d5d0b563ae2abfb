//! The errors admission rejects a write with, in apimachinery's wording: [`FieldError`]s
//! gathered into a 422 Invalid, and the 403 Forbidden of admission plugins.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::resources::ResourceDef;

/// One field-level validation error, rendered like apimachinery's `field.Error`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    /// The `StatusCause` reason: `FieldValueRequired`, `FieldValueForbidden`, `FieldValueInvalid`.
    pub reason: &'static str,
    /// What follows the field path, e.g. `Required value` or `Forbidden: ...`.
    pub body: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueRequired",
            body: "Required value".into(),
        }
    }
    pub fn forbidden(field: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueForbidden",
            body: format!("Forbidden: {detail}"),
        }
    }
    pub fn invalid(
        field: impl Into<String>,
        value: &Value,
        detail: impl std::fmt::Display,
    ) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueInvalid",
            body: format!("Invalid value: {value}: {detail}"),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body)
    }
}

/// 422 Invalid as `errors.NewInvalid` builds it: `Pod "x" is invalid: <err>` (or `[e1, e2]`).
pub fn invalid(r: &ResourceDef, name: &str, errs: Vec<FieldError>) -> ApiError {
    let kind = if r.group.is_empty() {
        r.kind.to_string()
    } else {
        format!("{}.{}", r.kind, r.group)
    };
    let msg = match errs.as_slice() {
        [] => format!("{kind} \"{name}\" is invalid"),
        [one] => format!("{kind} \"{name}\" is invalid: {one}"),
        many => format!(
            "{kind} \"{name}\" is invalid: [{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let causes: Vec<Value> = errs
        .iter()
        .map(|e| json!({"reason": e.reason, "message": e.body, "field": e.field}))
        .collect();
    ApiError::new(422, "Invalid", msg)
        .with_details(json!({"name": name, "group": r.group, "kind": r.kind, "causes": causes}))
}

/// 403 Forbidden as admission plugins return it: `pods "x" is forbidden: <msg>`.
pub fn forbidden(r: &ResourceDef, name: &str, msg: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        403,
        "Forbidden",
        format!("{} \"{name}\" is forbidden: {msg}", r.qualified()),
    )
    .with_details(json!({"name": name, "group": r.group, "kind": r.plural}))
}
