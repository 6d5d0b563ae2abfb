//! Query parameters of API requests (`labelSelector`, `watch`, `dryRun`, `gracePeriodSeconds`,
//! ...), parsed and validated with the real server's 400 messages.

use serde_json::Value;

use crate::error::ApiError;
use crate::resources::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::ListOptions;

/// The decoded query string of one request.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn from_uri(uri: &axum::http::Uri) -> Result<Self, ApiError> {
        if uri.query().is_none_or(str::is_empty) {
            return Ok(Self::default());
        }
        // axum's Query extractor is serde_urlencoded underneath.
        let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?
            .0;
        Ok(Self { pairs })
    }

    /// The last value of `key` (Go's `url.Values.Get` takes the first; the difference never
    /// matters for well-formed clients).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter as Go's `strconv.ParseBool` reads it; absent is `None`.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(Some(true)),
            Some("" | "0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(Some(false)),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid boolean value for {key}: {other:?}"
            ))),
        }
    }

    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        Ok(self.bool(key)?.unwrap_or(false))
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("{key}: Invalid value: {v:?}: must be an integer"))
            }),
        }
    }

    /// `dryRun=All` (the only value the server knows).
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        let values: Vec<&str> = self
            .pairs
            .iter()
            .filter(|(k, _)| k == "dryRun")
            .map(|(_, v)| v.as_str())
            .collect();
        match values.as_slice() {
            [] => Ok(false),
            vs if vs.iter().all(|v| *v == "All") => Ok(true),
            vs => Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {:?}: supported values: \"All\"",
                vs.iter()
                    .find(|v| **v != "All")
                    .copied()
                    .unwrap_or_default()
            ))),
        }
    }

    /// Validate `fieldValidation`. The simulator has no schemas, so `Strict` and `Warn` accept
    /// what `Ignore` accepts; unknown fields are kept as sent.
    pub fn check_field_validation(&self) -> Result<(), ApiError> {
        match self.get("fieldValidation") {
            None | Some("" | "Strict" | "Warn" | "Ignore") => Ok(()),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }

    /// `labelSelector` and `fieldSelector` for resource `r`.
    pub fn list_options(&self, r: &ResourceDef) -> Result<ListOptions, ApiError> {
        let label = match self.get("labelSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(LabelSelector::parse(s)?),
            None => None,
        };
        let field = match self.get("fieldSelector").filter(|s| !s.is_empty()) {
            Some(s) => Some(FieldSelector::parse(r, s)?),
            None => None,
        };
        Ok(ListOptions { label, field })
    }

    /// `resourceVersion` as a number; `""` and absent are `None`.
    pub fn resource_version(&self) -> Result<Option<u64>, ApiError> {
        match self.get("resourceVersion").filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "resourceVersion: Invalid value: {v:?}: must be a valid resource version"
                ))
            }),
        }
    }

    /// Which object a Table row carries (`includeObject`; Metadata when absent).
    pub fn include_object(&self) -> Result<super::table::Include, ApiError> {
        use super::table::Include;
        match self.get("includeObject") {
            None | Some("" | "Metadata") => Ok(Include::Metadata),
            Some("Object") => Ok(Include::Object),
            Some("None") => Ok(Include::None),
            Some(other) => Err(ApiError::bad_request(format!(
                "includeObject: Unsupported value: {other:?}: supported values: \"None\", \"Metadata\", \"Object\""
            ))),
        }
    }

    /// DeleteOptions from the query (`gracePeriodSeconds`, `propagationPolicy`,
    /// `orphanDependents`, `dryRun`) layered over a request body's (which may be empty).
    pub fn delete_options(&self, body: &Value) -> Result<crate::store::DeleteOptions, ApiError> {
        let mut merged = if body.is_object() {
            body.clone()
        } else {
            Value::Object(Default::default())
        };
        if let Some(g) = self.int("gracePeriodSeconds")? {
            merged["gracePeriodSeconds"] = g.into();
        }
        if let Some(p) = self.get("propagationPolicy").filter(|p| !p.is_empty()) {
            merged["propagationPolicy"] = p.into();
        }
        if let Some(o) = self.bool("orphanDependents")? {
            merged["orphanDependents"] = o.into();
        }
        if self.dry_run()? {
            merged["dryRun"] = serde_json::json!(["All"]);
        }
        crate::admission::delete_options_from(&merged)
    }
}
