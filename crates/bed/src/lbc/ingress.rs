//! An Ingress as the AWS Load Balancer Controller turns it into ALB listener rules: pure, from
//! the Ingress (JSON) to rules in the ELBv2 API's shape. What it follows
//! (<https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/guide/ingress/annotations/>,
//! "Actions", and `pkg/ingress/model_build_listener_rules.go`):
//!
//! - one rule per path of each `spec.rules[]` entry, in order; a `host` adds a `host-header`
//!   condition; `pathType: Exact` matches the path, `Prefix` the path and everything under it
//!   (`/p` and `/p/*`; `/` is `/*`), `ImplementationSpecific` the path as written;
//! - a backend Service port forwards to that Service's target group;
//! - a backend whose port is named `use-annotation` takes the action from the annotation
//!   `alb.ingress.kubernetes.io/actions.<service name>`: a JSON `forward` action whose
//!   `forwardConfig.targetGroups` name Services (`serviceName`, `servicePort`) or target groups
//!   (`targetGroupARN`), each with a `weight`, or a `fixed-response`;
//! - `spec.defaultBackend` becomes the listener's last rule, matching `/*`.

use serde_json::{Value, json};

/// The annotation prefix of custom actions.
pub const ACTIONS_ANNOTATION_PREFIX: &str = "alb.ingress.kubernetes.io/actions.";
/// The port name that sends a backend to its action annotation.
pub const USE_ANNOTATION: &str = "use-annotation";

/// A rule: its conditions and actions in the ELBv2 API's field names.
#[derive(Debug, Clone, PartialEq)]
pub struct IngressRule {
    /// The Ingress it comes from (`namespace/name`): the controller tags the rule with it
    /// (`ingress.k8s.aws/stack`), which tells costop the rule is the controller's.
    pub stack: String,
    pub conditions: Vec<Value>,
    pub actions: Vec<Value>,
}

/// Why an Ingress cannot be turned into rules (the real controller reports it as an event and
/// leaves the listener as it was).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngressError {
    #[error("backend {0} has no target group (no target group is bound to that Service port)")]
    NoTargetGroup(String),
    #[error("backend {name} uses an annotation, but {ACTIONS_ANNOTATION_PREFIX}{name} is missing")]
    NoAction { name: String },
    #[error("{ACTIONS_ANNOTATION_PREFIX}{name} is not a valid action: {reason}")]
    BadAction { name: String, reason: String },
}

/// Finds the target group of a Service port: (namespace, service, port number or name).
pub type TargetGroupOf<'a> = &'a dyn Fn(&str, &str, &str) -> Option<String>;

/// The listener rules an Ingress asks for, in priority order.
pub fn rules(ingress: &Value, tg_of: TargetGroupOf<'_>) -> Result<Vec<IngressRule>, IngressError> {
    let ns = ingress["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let annotations = &ingress["metadata"]["annotations"];
    let stack = format!(
        "{ns}/{}",
        ingress["metadata"]["name"].as_str().unwrap_or_default()
    );
    let mut out = Vec::new();
    for rule in ingress["spec"]["rules"].as_array().into_iter().flatten() {
        let host = rule["host"].as_str().filter(|h| !h.is_empty());
        for path in rule["http"]["paths"].as_array().into_iter().flatten() {
            let mut conditions = Vec::new();
            if let Some(h) = host {
                conditions
                    .push(json!({"Field": "host-header", "HostHeaderConfig": {"Values": [h]}}));
            }
            let p = path["path"].as_str().unwrap_or("/");
            conditions.push(json!({"Field": "path-pattern", "PathPatternConfig": {
                "Values": patterns(p, path["pathType"].as_str().unwrap_or("ImplementationSpecific"))
            }}));
            out.push(IngressRule {
                stack: stack.clone(),
                conditions,
                actions: vec![backend_action(ns, annotations, &path["backend"], tg_of)?],
            });
        }
    }
    let default = &ingress["spec"]["defaultBackend"];
    if !default.is_null() {
        out.push(IngressRule {
            stack,
            conditions: vec![
                json!({"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}),
            ],
            actions: vec![backend_action(ns, annotations, default, tg_of)?],
        });
    }
    Ok(out)
}

fn patterns(path: &str, path_type: &str) -> Vec<String> {
    match path_type {
        "Exact" => vec![path.to_owned()],
        "Prefix" if path == "/" || path.is_empty() => vec!["/*".to_owned()],
        "Prefix" => {
            let p = path.trim_end_matches('/');
            vec![p.to_owned(), format!("{p}/*")]
        }
        _ => vec![path.to_owned()],
    }
}

fn port_of(port: &Value) -> String {
    match (port["number"].as_u64(), port["name"].as_str()) {
        (Some(n), _) => n.to_string(),
        (None, Some(name)) => name.to_owned(),
        _ => String::new(),
    }
}

fn backend_action(
    ns: &str,
    annotations: &Value,
    backend: &Value,
    tg_of: TargetGroupOf<'_>,
) -> Result<Value, IngressError> {
    let name = backend["service"]["name"].as_str().unwrap_or("");
    let port = port_of(&backend["service"]["port"]);
    if port == USE_ANNOTATION {
        return annotated_action(ns, annotations, name, tg_of);
    }
    let tg = tg_of(ns, name, &port)
        .ok_or_else(|| IngressError::NoTargetGroup(format!("{ns}/{name}:{port}")))?;
    Ok(json!({"Type": "forward", "TargetGroupArn": tg}))
}

fn annotated_action(
    ns: &str,
    annotations: &Value,
    name: &str,
    tg_of: TargetGroupOf<'_>,
) -> Result<Value, IngressError> {
    let bad = |reason: &str| IngressError::BadAction {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    let raw = annotations[format!("{ACTIONS_ANNOTATION_PREFIX}{name}")]
        .as_str()
        .ok_or_else(|| IngressError::NoAction {
            name: name.to_owned(),
        })?;
    let action: Value = serde_json::from_str(raw).map_err(|e| bad(&e.to_string()))?;
    match action["type"].as_str() {
        Some("forward") => {
            let groups = action["forwardConfig"]["targetGroups"]
                .as_array()
                .ok_or_else(|| bad("forwardConfig.targetGroups is missing"))?;
            let mut tuples = Vec::new();
            for g in groups {
                let arn = match (g["targetGroupARN"].as_str(), g["serviceName"].as_str()) {
                    (Some(arn), _) => arn.to_owned(),
                    (None, Some(svc)) => {
                        let port = match &g["servicePort"] {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            _ => String::new(),
                        };
                        tg_of(ns, svc, &port).ok_or_else(|| {
                            IngressError::NoTargetGroup(format!("{ns}/{svc}:{port}"))
                        })?
                    }
                    (None, None) => {
                        return Err(bad(
                            "a target group names neither serviceName nor targetGroupARN",
                        ));
                    }
                };
                let weight = match &g["weight"] {
                    Value::Null => 1,
                    w => w.as_u64().ok_or_else(|| bad("a weight is not a number"))?,
                };
                if weight > 999 {
                    return Err(bad("weights go from 0 to 999"));
                }
                tuples.push(json!({"TargetGroupArn": arn, "Weight": weight}));
            }
            if tuples.is_empty() {
                return Err(bad("forwardConfig.targetGroups is empty"));
            }
            Ok(json!({"Type": "forward", "ForwardConfig": {"TargetGroups": tuples}}))
        }
        Some("fixed-response") => {
            let f = &action["fixedResponseConfig"];
            Ok(json!({"Type": "fixed-response", "FixedResponseConfig": {
                "StatusCode": f["statusCode"].as_str().ok_or_else(|| bad("fixedResponseConfig.statusCode is missing"))?,
                "ContentType": f["contentType"],
                "MessageBody": f["messageBody"],
            }}))
        }
        other => Err(bad(&format!(
            "type {other:?} is not supported here (forward, fixed-response)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tg_of(ns: &str, svc: &str, port: &str) -> Option<String> {
        (ns == "default" && port == "80").then(|| format!("arn:tg/{svc}"))
    }

    #[test]
    fn a_prefix_path_forwards_to_its_services_target_group() {
        let ing = json!({"metadata": {"namespace": "default"}, "spec": {"rules": [{"http": {"paths": [
            {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}}
        ]}}]}});
        let r = rules(&ing, &tg_of).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].conditions[0]["PathPatternConfig"]["Values"],
            json!(["/api", "/api/*"])
        );
        assert_eq!(r[0].actions[0]["TargetGroupArn"], "arn:tg/api");
    }

    #[test]
    fn the_actions_annotation_gives_a_weighted_forward() {
        let ing = json!({"metadata": {"namespace": "default", "annotations": {
            "alb.ingress.kubernetes.io/actions.split": r#"{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"web","servicePort":"80","weight":80},{"targetGroupARN":"arn:tg/fallback","weight":20}]}}"#
        }}, "spec": {"rules": [{"host": "shop.example", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "split", "port": {"name": "use-annotation"}}}}
        ]}}]}});
        let r = rules(&ing, &tg_of).unwrap();
        assert_eq!(r[0].conditions[0]["Field"], "host-header");
        assert_eq!(
            r[0].conditions[1]["PathPatternConfig"]["Values"],
            json!(["/*"])
        );
        assert_eq!(
            r[0].actions[0]["ForwardConfig"]["TargetGroups"],
            json!([{"TargetGroupArn": "arn:tg/web", "Weight": 80}, {"TargetGroupArn": "arn:tg/fallback", "Weight": 20}])
        );
    }

    #[test]
    fn a_missing_or_malformed_action_or_target_group_is_an_error() {
        let ing = |ann: Value, svc: &str, port: Value| {
            json!({"metadata": {"namespace": "default", "annotations": ann},
            "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Exact",
                "backend": {"service": {"name": svc, "port": port}}}]}}]}})
        };
        assert_eq!(
            rules(
                &ing(json!({}), "x", json!({"name": "use-annotation"})),
                &tg_of
            ),
            Err(IngressError::NoAction { name: "x".into() })
        );
        assert!(matches!(
            rules(
                &ing(
                    json!({"alb.ingress.kubernetes.io/actions.x": "{"}),
                    "x",
                    json!({"name": "use-annotation"})
                ),
                &tg_of
            ),
            Err(IngressError::BadAction { .. })
        ));
        assert!(matches!(
            rules(&ing(json!({}), "web", json!({"number": 81})), &tg_of),
            Err(IngressError::NoTargetGroup(_))
        ));
    }
}
