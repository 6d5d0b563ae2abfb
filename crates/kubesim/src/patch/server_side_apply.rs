//! Server-side apply, approximated: the body (YAML or JSON) is strategic-merged onto the live
//! object. There is no field ownership, so a field dropped from a later apply is *not* removed
//! (the real server removes it when the same manager owned it), `force`/conflicts do not exist
//! and `managedFields` are not maintained.

use serde_json::Value;

use super::strategic::strategic_merge;
use super::{PatchType, parse_body, type_name};
use crate::error::ApiError;
use crate::resources::ResourceDef;

pub(super) fn apply_patch(
    res: &ResourceDef,
    original: &Value,
    patch: &Value,
) -> Result<Value, ApiError> {
    let mut body = match patch {
        Value::String(text) => parse_body(PatchType::Apply, text.as_bytes())?,
        other => other.clone(),
    };
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "an apply patch must be an object, got {}",
            type_name(&body)
        )));
    };
    for field in ["apiVersion", "kind"] {
        if obj
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(format!(
                "{field} must be set in an apply patch"
            )));
        }
    }
    // Ownership is not modelled; dropping managedFields beats storing a client's copy.
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    strategic_merge(res, original, &body)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::patch::tests::pod;
    use crate::patch::{PatchType, apply, parse_body};
    use crate::resources;

    #[test]
    fn apply_patch_accepts_yaml_and_merges_onto_the_live_object() {
        let orig = pod(json!({"containers": [{"name": "c", "image": "a"}], "nodeName": "n1"}));
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {app: x}\nspec:\n  containers:\n  - name: c\n    image: b\n";
        let body = parse_body(PatchType::Apply, yaml.as_bytes()).unwrap();
        let out = apply(&resources::PODS, PatchType::Apply, &orig, &body).unwrap();
        assert_eq!(
            out["spec"],
            json!({"containers": [{"name": "c", "image": "b"}], "nodeName": "n1"})
        );
        assert_eq!(out["metadata"]["labels"], json!({"app": "x"}));
        assert_eq!(out["metadata"]["namespace"], "default");
        // The YAML text itself is accepted as a string value too.
        let out2 = apply(
            &resources::PODS,
            PatchType::Apply,
            &orig,
            &Value::String(yaml.to_string()),
        )
        .unwrap();
        assert_eq!(out, out2);
    }

    #[test]
    fn apply_patch_onto_nothing_builds_the_object_and_drops_managed_fields() {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "c", "managedFields": [{"manager": "x"}]}, "data": {"a": "1"}});
        let out = apply(
            &resources::CONFIGMAPS,
            PatchType::Apply,
            &Value::Null,
            &body,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})
        );
    }

    #[test]
    fn apply_patch_without_kind_or_with_bad_yaml_is_a_400() {
        let e = apply(
            &resources::CONFIGMAPS,
            PatchType::Apply,
            &Value::Null,
            &json!({"apiVersion": "v1"}),
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "kind must be set in an apply patch")
        );
        assert_eq!(
            parse_body(PatchType::Apply, b"a: [unclosed")
                .unwrap_err()
                .code,
            400
        );
    }
}
