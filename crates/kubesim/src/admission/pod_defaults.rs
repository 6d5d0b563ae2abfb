//! What the API server fills into a pod spec: the defaulting functions (which pod templates
//! get too) and the ServiceAccount and DefaultTolerationSeconds admission plugins.

use serde_json::{Map, Value, json};

/// Defaults and admission-plugin additions for a pod's spec (idempotent).
pub(super) fn pod_spec_defaults(spec: &mut Map<String, Value>) {
    template_spec_defaults(spec);
    spec.entry("enableServiceLinks").or_insert(json!(true));
    // The ServiceAccount admission plugin.
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    spec.entry("serviceAccountName")
        .or_insert_with(|| json!(sa));
    spec.entry("serviceAccount").or_insert_with(|| json!(sa));
    default_tolerations(spec);
}

/// The defaulting functions' part, which pod templates get too.
pub(super) fn template_spec_defaults(spec: &mut Map<String, Value>) {
    for (k, v) in [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("securityContext", json!({})),
    ] {
        spec.entry(k).or_insert(v);
    }
    for list in ["containers", "initContainers"] {
        let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            container_defaults(c);
        }
    }
}

fn container_defaults(c: &mut Map<String, Value>) {
    c.entry("terminationMessagePath")
        .or_insert_with(|| json!("/dev/termination-log"));
    c.entry("terminationMessagePolicy")
        .or_insert_with(|| json!("File"));
    if !c.contains_key("imagePullPolicy") {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        // The tag is what follows the last ':' after the last '/', ignoring a digest.
        let name = image.split('@').next().unwrap_or("");
        let tag = name
            .rsplit('/')
            .next()
            .and_then(|last| last.split_once(':'))
            .map(|(_, t)| t);
        let policy = if image.contains('@') || tag.is_some_and(|t| t != "latest") {
            "IfNotPresent"
        } else {
            "Always"
        };
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    let res = c.entry("resources").or_insert_with(|| json!({}));
    if let Some(res) = res.as_object_mut() {
        // Requests default to limits, resource by resource.
        if let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() {
            let req = res.entry("requests").or_insert_with(|| json!({}));
            if let Some(req) = req.as_object_mut() {
                for (k, v) in limits {
                    req.entry(k).or_insert(v);
                }
            }
        }
    }
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.entry("protocol").or_insert_with(|| json!("TCP"));
        }
    }
}

/// The DefaultTolerationSeconds admission plugin: tolerate `not-ready` and `unreachable`
/// NoExecute taints for 300 s unless the pod already tolerates them.
fn default_tolerations(spec: &mut Map<String, Value>) {
    let tols = spec.entry("tolerations").or_insert_with(|| json!([]));
    if !tols.is_array() {
        *tols = json!([]);
    }
    let Some(list) = tols.as_array_mut() else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = list.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
        });
        if !tolerated {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("reg:5000/app", "Always"),
            ("reg:5000/app:v1", "IfNotPresent"),
        ] {
            let mut c = json!({"image": image})
                .as_object()
                .cloned()
                .unwrap_or_default();
            container_defaults(&mut c);
            assert_eq!(c["imagePullPolicy"], policy, "{image}");
        }
    }
}
