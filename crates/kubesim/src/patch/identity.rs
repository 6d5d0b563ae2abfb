//! The fields that name an object (`apiVersion`, `kind`, `metadata.name`, `metadata.namespace`,
//! `metadata.uid`): a patch that drops them gets the live values back, and one that changes
//! them is rejected with the real server's status code.

use serde_json::{Map, Value};

use super::type_name;
use crate::error::ApiError;
use crate::resources::ResourceDef;

/// Restore or police the fields a patch may not change (see [`apply`](super::apply)).
pub(super) fn keep_identity(
    res: &ResourceDef,
    original: &Value,
    mut result: Value,
) -> Result<Value, ApiError> {
    let Some(obj) = result.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "the patched object must be a JSON object, got {}",
            type_name(&result)
        )));
    };
    let orig_str = |ptr: &str| {
        original
            .pointer(ptr)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let name = orig_str("/metadata/name").unwrap_or_default().to_string();
    let immutable = |field: &str, new: &Value| {
        let shown = new
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| new.to_string());
        ApiError::invalid(
            res.kind,
            &name,
            res.group,
            vec![(
                field.to_string(),
                format!("Invalid value: {shown:?}: field is immutable"),
            )],
        )
    };
    for field in ["apiVersion", "kind"] {
        let Some(before) = orig_str(&format!("/{field}")) else {
            continue;
        };
        match obj.get(field) {
            None | Some(Value::Null) => {
                obj.insert(field.to_string(), Value::String(before.to_string()));
            }
            Some(Value::String(s)) if s == before => {}
            Some(other) => return Err(immutable(field, other)),
        }
    }
    if original.get("metadata").is_none() && obj.get("metadata").is_none() {
        return Ok(result);
    }
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj.insert("metadata".to_string(), Value::Object(Map::new()));
    }
    let meta = obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .expect("metadata is an object");
    let new_str = |m: &Map<String, Value>, k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if let Some(before) = orig_str("/metadata/name") {
        let after = new_str(meta, "name");
        if after != before {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({after}) does not match the name on the URL ({before})"
            )));
        }
    }
    if let Some(before) = orig_str("/metadata/namespace") {
        let after = new_str(meta, "namespace");
        if after.is_empty() {
            meta.insert("namespace".to_string(), Value::String(before.to_string()));
        } else if after != before {
            return Err(ApiError::bad_request(format!(
                "the namespace of the object ({after}) does not match the namespace on the URL ({before})"
            )));
        }
    }
    if let Some(before) = orig_str("/metadata/uid") {
        match meta.get("uid") {
            None | Some(Value::Null) => {
                meta.insert("uid".to_string(), Value::String(before.to_string()));
            }
            Some(Value::String(s)) if s.is_empty() => {
                meta.insert("uid".to_string(), Value::String(before.to_string()));
            }
            Some(Value::String(s)) if s == before => {}
            Some(other) => return Err(immutable("metadata.uid", other)),
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::patch::tests::pod;
    use crate::patch::{PatchType, apply};
    use crate::resources;

    #[test]
    fn patch_changing_the_name_or_namespace_is_a_400() {
        let orig = pod(json!({}));
        for kind in [PatchType::Merge, PatchType::Strategic] {
            let e = apply(
                &resources::PODS,
                kind,
                &orig,
                &json!({"metadata": {"name": "q"}}),
            )
            .unwrap_err();
            assert_eq!(
                (e.code, e.message.as_str()),
                (
                    400,
                    "the name of the object (q) does not match the name on the URL (p)"
                )
            );
            let e = apply(
                &resources::PODS,
                kind,
                &orig,
                &json!({"metadata": {"namespace": "other"}}),
            )
            .unwrap_err();
            assert_eq!(
                (e.code, e.message.as_str()),
                (
                    400,
                    "the namespace of the object (other) does not match the namespace on the URL (default)"
                )
            );
        }
        let e = apply(
            &resources::PODS,
            PatchType::Json,
            &orig,
            &json!([{"op": "remove", "path": "/metadata/name"}]),
        )
        .unwrap_err();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn patch_changing_uid_kind_or_api_version_is_a_422() {
        let orig = pod(json!({}));
        for patch in [
            json!({"metadata": {"uid": "other"}}),
            json!({"kind": "Service"}),
            json!({"apiVersion": "v2"}),
        ] {
            let e = apply(&resources::PODS, PatchType::Merge, &orig, &patch).unwrap_err();
            assert_eq!((e.code, e.reason), (422, "Invalid"), "{patch}");
        }
        let e = apply(
            &resources::PODS,
            PatchType::Merge,
            &orig,
            &json!({"metadata": {"uid": "x"}}),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "Pod \"p\" is invalid: metadata.uid: Invalid value: \"x\": field is immutable"
        );
    }

    #[test]
    fn patch_removing_identity_fields_gets_them_back_and_keeps_a_sent_resource_version() {
        let orig = pod(json!({}));
        let out = apply(
            &resources::PODS,
            PatchType::Merge,
            &orig,
            &json!({"apiVersion": null, "kind": null, "metadata": {"namespace": null, "uid": null, "resourceVersion": "41"}}),
        )
        .unwrap();
        assert_eq!(out["apiVersion"], "v1");
        assert_eq!(out["kind"], "Pod");
        assert_eq!(
            out["metadata"],
            json!({"name": "p", "namespace": "default", "uid": "u", "resourceVersion": "41"})
        );
    }
}
