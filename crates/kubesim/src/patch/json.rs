//! JSON patch (RFC 6902): a list of operations applied in order by the `json_patch` crate; a
//! failing `test` or a path that does not resolve fails the whole patch.

use serde_json::Value;

use super::type_name;
use crate::error::ApiError;

pub(super) fn json_patch(mut doc: Value, patch: &Value) -> Result<Value, ApiError> {
    if !patch.is_array() {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            type_name(patch)
        )));
    }
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    json_patch::patch(&mut doc, &ops).map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::patch::tests::pod;
    use crate::patch::{PatchType, apply};
    use crate::resources;

    #[test]
    fn json_patch_applies_rfc6902_operations() {
        let orig = pod(json!({"nodeName": "n1"}));
        let out = apply(
            &resources::PODS,
            PatchType::Json,
            &orig,
            &json!([
                {"op": "test", "path": "/spec/nodeName", "value": "n1"},
                {"op": "add", "path": "/metadata/labels", "value": {"a": "b"}},
                {"op": "add", "path": "/metadata/labels/example.com~1x", "value": "y"},
                {"op": "replace", "path": "/spec/nodeName", "value": "n2"},
                {"op": "copy", "from": "/spec/nodeName", "path": "/spec/hostname"},
                {"op": "remove", "path": "/spec/hostname"}
            ]),
        )
        .unwrap();
        assert_eq!(
            out["metadata"]["labels"],
            json!({"a": "b", "example.com/x": "y"})
        );
        assert_eq!(out["spec"], json!({"nodeName": "n2"}));
    }

    #[test]
    fn json_patch_failed_test_or_bad_path_is_a_422() {
        let orig = pod(json!({"nodeName": "n1"}));
        for ops in [
            json!([{"op": "test", "path": "/spec/nodeName", "value": "n2"}]),
            json!([{"op": "remove", "path": "/spec/missing"}]),
            json!([{"op": "replace", "path": "/status/phase", "value": "x"}]),
        ] {
            let e = apply(&resources::PODS, PatchType::Json, &orig, &ops).unwrap_err();
            assert_eq!((e.code, e.reason), (422, "Invalid"), "{ops}");
        }
    }

    #[test]
    fn json_patch_body_that_is_not_an_operation_array_is_a_400() {
        let orig = pod(json!({}));
        for body in [
            json!({"op": "add"}),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add"}]),
        ] {
            let e = apply(&resources::PODS, PatchType::Json, &orig, &body).unwrap_err();
            assert_eq!((e.code, e.reason), (400, "BadRequest"), "{body}");
        }
    }
}
