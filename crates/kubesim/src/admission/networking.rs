//! Defaults and validation of the networking kinds other than Service:
//!
//! - Ingress: the DefaultIngressClass admission plugin gives an Ingress without a class the
//!   IngressClass annotated `ingressclass.kubernetes.io/is-default-class: "true"` (the newest
//!   one when several are), every path needs a `pathType`, and a new Ingress starts with an
//!   empty `status.loadBalancer`
//!   (<https://kubernetes.io/docs/concepts/services-networking/ingress/#default-ingress-class>,
//!   <https://kubernetes.io/docs/reference/kubernetes-api/service-resources/ingress-v1/>);
//! - EndpointSlice: `addressType` is required, one of IPv4, IPv6 and FQDN, and immutable
//!   (<https://kubernetes.io/docs/concepts/services-networking/endpoint-slices/#address-types>).

use serde_json::{Value, json};

use super::child;
use super::errors::FieldError;
use crate::resources::INGRESSCLASSES;
use crate::store::{ListOptions, Tx, meta_str};

const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const ADDRESS_TYPES: [&str; 3] = ["FQDN", "IPv4", "IPv6"];

pub(super) fn ingress_create(tx: &Tx<'_>, ing: &mut Value) -> Vec<FieldError> {
    let has_class = ing
        .pointer("/spec/ingressClassName")
        .is_some_and(|c| !c.is_null())
        || ing
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .is_some_and(|a| a.contains_key(LEGACY_CLASS_ANNOTATION));
    if !has_class
        && let Some(class) = tx
            .list(&INGRESSCLASSES, None, &ListOptions::default())
            .into_iter()
            .filter(|c| {
                c.pointer("/metadata/annotations")
                    .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    .and_then(Value::as_str)
                    == Some("true")
            })
            .max_by(|a, b| meta_str(a, "creationTimestamp").cmp(&meta_str(b, "creationTimestamp")))
    {
        let name = meta_str(&class, "name").unwrap_or_default().to_string();
        child(ing, "spec").insert("ingressClassName".into(), json!(name));
    }
    child(ing, "status")
        .entry("loadBalancer")
        .or_insert_with(|| json!({}));
    validate_ingress(ing)
}

pub(super) fn validate_ingress(ing: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rules = ing
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, rule) in rules.iter().enumerate() {
        let paths = rule
            .pointer("/http/paths")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (j, path) in paths.iter().enumerate() {
            let field = format!("spec.rules[{i}].http.paths[{j}].pathType");
            match path.get("pathType").and_then(Value::as_str) {
                None => errs.push(FieldError {
                    body: "Required value: pathType must be specified".into(),
                    ..FieldError::required(field)
                }),
                Some("Exact" | "Prefix" | "ImplementationSpecific") => {}
                Some(other) => errs.push(FieldError {
                    field,
                    reason: "FieldValueNotSupported",
                    body: format!(
                        "Unsupported value: \"{other}\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\""
                    ),
                }),
            }
        }
    }
    errs
}

pub(super) fn validate_endpoint_slice(slice: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let ty = slice.get("addressType").and_then(Value::as_str);
    match ty {
        None | Some("") => return vec![FieldError::required("addressType")],
        Some(t) if !ADDRESS_TYPES.contains(&t) => {
            return vec![FieldError {
                field: "addressType".into(),
                reason: "FieldValueNotSupported",
                body: format!(
                    "Unsupported value: \"{t}\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""
                ),
            }];
        }
        Some(_) => {}
    }
    if let Some(old) = old
        && old.get("addressType") != slice.get("addressType")
    {
        return vec![FieldError::invalid(
            "addressType",
            slice.get("addressType").unwrap_or(&Value::Null),
            "field is immutable",
        )];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_paths_need_a_path_type() {
        let ing = json!({"spec": {"rules": [{"http": {"paths": [{"path": "/", "backend": {}}]}}]}});
        let errs: Vec<String> = validate_ingress(&ing)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            ["spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"]
        );
    }

    #[test]
    fn endpoint_slices_need_a_known_fixed_address_type() {
        assert_eq!(
            validate_endpoint_slice(&json!({}), None)[0].to_string(),
            "addressType: Required value"
        );
        let old = json!({"addressType": "IPv4"});
        assert!(validate_endpoint_slice(&old, None).is_empty());
        assert_eq!(
            validate_endpoint_slice(&json!({"addressType": "IPv6"}), Some(&old))[0].to_string(),
            "addressType: Invalid value: \"IPv6\": field is immutable"
        );
    }
}
