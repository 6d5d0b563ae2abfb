//! Deployments, ReplicaSets, StatefulSets and DaemonSets: their defaults (the pod template's
//! included) and the selector that must match the template's labels.

use serde_json::{Value, json};

use super::pod_defaults::template_spec_defaults;
use super::{FieldError, child, invalid, name_of};
use crate::error::ApiError;
use crate::resources::ResourceDef;
use crate::selectors::LabelSelector;

/// Replica defaults and the selector checks of Deployments, ReplicaSets, StatefulSets and
/// DaemonSets.
pub(super) fn workload_defaults(r: &'static ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    if !matches!(
        r.kind,
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
    ) {
        return Ok(());
    }
    let name = name_of(obj).to_string();
    let spec = child(obj, "spec");
    if r.kind != "DaemonSet" {
        spec.entry("replicas").or_insert_with(|| json!(1));
    }
    spec.entry("revisionHistoryLimit")
        .or_insert_with(|| json!(10));
    if r.kind == "Deployment" {
        spec.entry("progressDeadlineSeconds")
            .or_insert_with(|| json!(600));
        spec.entry("strategy")
            .or_insert_with(|| json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}));
    }
    if let Some(tpl) = spec
        .get_mut("template")
        .and_then(|t| t.get_mut("spec"))
        .and_then(Value::as_object_mut)
    {
        template_spec_defaults(tpl);
    }
    let mut errs = Vec::new();
    let selector = spec.get("selector").cloned();
    match selector {
        None | Some(Value::Null) => errs.push(FieldError::required("spec.selector")),
        Some(sel) => match LabelSelector::from_object(&sel) {
            Ok(s) if s.is_empty() => errs.push(FieldError::invalid(
                "spec.selector",
                &sel,
                "empty selector is invalid for deployment",
            )),
            Ok(s) => {
                let labels = spec
                    .get("template")
                    .and_then(|t| t.pointer("/metadata/labels"))
                    .and_then(Value::as_object);
                if !s.matches(labels) {
                    errs.push(FieldError::invalid(
                        "spec.template.metadata.labels",
                        &json!(labels.cloned().unwrap_or_default()),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
            Err(e) => errs.push(FieldError::invalid("spec.selector", &sel, e.message)),
        },
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(invalid(r, &name, errs))
    }
}
