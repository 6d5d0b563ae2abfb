//! The namespace lifecycle as the API server enforces it
//! (<https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/> and
//! <https://kubernetes.io/docs/tasks/administer-cluster/namespaces/#deleting-a-namespace>):
//!
//! - a new namespace gets the `kubernetes` finalizer in `spec.finalizers` and phase `Active`;
//! - a deleted namespace is not removed at once: it gets a `deletionTimestamp` and phase
//!   `Terminating`, and stays until the namespace controller has deleted its contents and
//!   cleared `spec.finalizers`;
//! - the NamespaceLifecycle admission plugin refuses new objects in a terminating namespace
//!   with 403 Forbidden.
//!
//! `spec.finalizers` changes only through the namespace controller (the real server's
//! `finalize` subresource); an update of the namespace keeps the stored value.

use serde_json::{Value, json};

use super::{child, forbidden};
use crate::error::ApiError;
use crate::resources::ResourceDef;

/// The finalizer the namespace controller removes once the namespace is empty.
pub const KUBERNETES_FINALIZER: &str = "kubernetes";

pub(super) fn namespace_create(ns: &mut Value) {
    child(ns, "spec")
        .entry("finalizers")
        .or_insert_with(|| json!([KUBERNETES_FINALIZER]));
    child(ns, "status").insert("phase".into(), json!("Active"));
}

pub(super) fn namespace_update(old: &Value, new: &mut Value) {
    let finalizers = old.pointer("/spec/finalizers").cloned();
    let spec = child(new, "spec");
    match finalizers {
        Some(f) => spec.insert("finalizers".into(), f),
        None => spec.remove("finalizers"),
    };
}

/// Whether `ns` still waits for finalizers in `spec.finalizers`.
pub fn namespace_finalizing(ns: &Value) -> bool {
    ns.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// Mark a namespace being deleted as the real server shows it.
pub fn namespace_terminating(ns: &mut Value) {
    child(ns, "status").insert("phase".into(), json!("Terminating"));
}

/// Whether `ns` is being deleted.
pub fn namespace_is_terminating(ns: &Value) -> bool {
    ns.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
        || ns.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
}

/// NamespaceLifecycle: no new content in a terminating namespace (403 with the
/// `NamespaceTerminating` cause, as the real plugin sends).
pub fn namespace_open(r: &ResourceDef, ns: &Value, name: &str) -> Result<(), ApiError> {
    if !namespace_is_terminating(ns) {
        return Ok(());
    }
    let ns_name = ns
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut err = forbidden(
        r,
        name,
        format!(
            "unable to create new content in namespace {ns_name} because it is being terminated"
        ),
    );
    if let Some(d) = err.details.as_mut() {
        d["causes"] = json!([{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {ns_name} is being terminated"),
            "field": "metadata.namespace",
        }]);
    }
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::PODS;

    #[test]
    fn a_terminating_namespace_refuses_new_content_with_the_real_message() {
        let mut ns = json!({"metadata": {"name": "shop"}});
        namespace_create(&mut ns);
        assert!(namespace_open(&PODS, &ns, "web").is_ok());
        ns["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        namespace_terminating(&mut ns);
        let err = namespace_open(&PODS, &ns, "web").expect_err("refused");
        assert_eq!(
            (err.code, err.reason, err.message.as_str()),
            (
                403,
                "Forbidden",
                "pods \"web\" is forbidden: unable to create new content in namespace shop because it is being terminated"
            )
        );
        assert_eq!(
            err.details
                .as_ref()
                .map(|d| d["causes"][0]["reason"].clone()),
            Some(json!("NamespaceTerminating"))
        );
    }

    #[test]
    fn updates_cannot_drop_the_kubernetes_finalizer() {
        let mut old = json!({"metadata": {"name": "shop"}});
        namespace_create(&mut old);
        let mut new = json!({"metadata": {"name": "shop"}, "spec": {"finalizers": []}});
        namespace_update(&old, &mut new);
        assert!(namespace_finalizing(&new));
    }
}
