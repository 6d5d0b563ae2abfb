//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch
//! (merge keys and directives as kubectl sends them) and apply patches.
//!
//! This module decodes a body and dispatches on its [`PatchType`]; a merge patch is the
//! `json_patch` crate's RFC 7386 merge and needs nothing more. The other types each have a
//! module: `json` (RFC 6902 operations), `strategic` (the strategic merge, over the
//! patch-strategy table in `schema`) and `server_side_apply` (apply patches as strategic
//! merges). `identity` then puts back or polices the fields that name the object.

mod identity;
mod json;
mod schema;
mod server_side_apply;
mod strategic;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::resources::ResourceDef;
use identity::keep_identity;
use json::json_patch;
use server_side_apply::apply_patch;

pub use schema::{Field, ListStrategy, Ty};
pub use strategic::strategic_merge;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    /// From the request's Content-Type; anything else is a 415.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(Self::Apply),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

/// Decode a raw PATCH body for `kind`: JSON for the JSON/merge/strategic types, YAML or JSON
/// for apply patches. Undecodable or empty bodies are a 400.
pub fn parse_body(kind: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("patch body is not UTF-8: {e}")))?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(ApiError::bad_request("the patch body is empty"));
    }
    if kind == PatchType::Apply && !trimmed.starts_with('{') {
        return serde_yaml::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML apply patch: {e}")));
    }
    serde_json::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch as JSON: {e}")))
}

/// Apply `patch` of type `kind` to `original` (an object of resource `res`) and return the result.
/// A patch that cannot be applied is a 422 (JSON patch test/path failures) or 400 (bad body).
///
/// `original` may be `Value::Null` (apply-creates): the patch then applies to `{}`. For
/// [`PatchType::Apply`], `patch` may also be a `Value::String` holding the YAML text.
///
/// The result keeps `apiVersion`, `kind`, `metadata.name`, `metadata.namespace` and
/// `metadata.uid`: a patch that removes them gets the originals back; one that changes name or
/// namespace is a 400 and one that changes uid/apiVersion/kind a 422, as on the real server. A
/// `metadata.resourceVersion` set by the patch is kept so the caller can check it.
pub fn apply(
    res: &ResourceDef,
    kind: PatchType,
    original: &Value,
    patch: &Value,
) -> Result<Value, ApiError> {
    let base = if original.is_null() {
        Value::Object(Map::new())
    } else {
        original.clone()
    };
    let result = match kind {
        PatchType::Json => json_patch(base, patch)?,
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(format!(
                    "a merge patch must be a JSON object, got {}",
                    type_name(patch)
                )));
            }
            let mut doc = base;
            json_patch::merge(&mut doc, patch);
            doc
        }
        PatchType::Strategic => strategic_merge(res, &base, patch)?,
        PatchType::Apply => apply_patch(res, &base, patch)?,
    };
    keep_identity(res, original, result)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
