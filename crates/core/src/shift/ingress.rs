//! The Ingress path of the shift: a listener rule the AWS Load Balancer Controller manages is
//! shifted through the Ingress it comes from, never changed directly (the controller would undo
//! it at its next reconcile). Owns finding the Ingress path a rule comes from, and the JSON
//! Patches (RFC 6902) that move its backend onto a weighted forward action and back.
//!
//! The controller's behaviour this follows
//! (<https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/guide/ingress/annotations/>,
//! "Actions", and `pkg/ingress/model_build_listener_rules.go`):
//!
//! - each path of each `spec.rules[]` entry is one listener rule, its conditions a `host-header`
//!   from the entry's `host` and a `path-pattern` from the path: `Prefix` `/p` matches `/p` and
//!   `/p/*` (`/` is `/*`), `Exact` `/p`, `ImplementationSpecific` the path as written;
//!   `spec.defaultBackend` is the last rule, `/*`;
//! - a backend whose port is named `use-annotation` takes its action from the annotation
//!   `alb.ingress.kubernetes.io/actions.<service name>`: a `forward` whose
//!   `forwardConfig.targetGroups` name Services (`serviceName`, `servicePort`) or target groups
//!   (`targetGroupARN`), each with a `weight`, in the rule's order.
//!
//! A backend that names a Service port directly is switched to a costop-owned action
//! ([`IngressShift::action`]) holding the Service with the fallback's target group beside it; a
//! backend already on an action has that action's weights rewritten. The restore puts back
//! exactly the backend and annotation found before. Every patch carries `test` operations on
//! the values it replaces, so an edit that lands between the read and the patch makes the patch
//! fail (422) instead of being overwritten.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{RuleFacts, WeightedGroup};

/// The annotation prefix of the controller's custom actions.
pub const ACTIONS_ANNOTATION_PREFIX: &str = "alb.ingress.kubernetes.io/actions.";
/// The backend port name that sends the controller to the action annotation.
pub const USE_ANNOTATION: &str = "use-annotation";
/// The prefix of the actions costop adds.
const ACTION_PREFIX: &str = "costop-shift-";
/// A Service name (and so an action's name in a backend) is a DNS-1035 label: 63 characters.
const DNS_LABEL_MAX: usize = 63;

/// Why a rule cannot be shifted through its Ingress, or an Ingress not patched. Each leaves the
/// Ingress as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngressShiftError {
    /// The rule's Ingress was not among the facts (missing, or unreadable).
    #[error("Ingress {ingress} was not read")]
    NotRead {
        /// The Ingress (`namespace/name`).
        ingress: String,
    },
    /// No path of the Ingress makes the rule's conditions.
    #[error("no path of Ingress {ingress} makes rule {rule} (hosts {hosts:?}, paths {paths:?})")]
    NoSuchPath {
        /// The Ingress (`namespace/name`).
        ingress: String,
        /// The rule's ARN.
        rule: String,
        /// The rule's hosts.
        hosts: Vec<String>,
        /// The rule's path patterns.
        paths: Vec<String>,
    },
    /// More than one path makes the same conditions: which one the rule is cannot be told.
    #[error("{count} paths of Ingress {ingress} make rule {rule}'s conditions")]
    Ambiguous {
        /// The Ingress (`namespace/name`).
        ingress: String,
        /// The rule's ARN.
        rule: String,
        /// How many paths.
        count: usize,
    },
    /// The backend's action serves other paths too: reweighting it would shift them as well.
    #[error("action {action} of Ingress {ingress} serves more than one path")]
    SharedAction {
        /// The Ingress (`namespace/name`).
        ingress: String,
        /// The action's name.
        action: String,
    },
    /// The action annotation is missing, not JSON, or not a forward.
    #[error("action {action} of Ingress {ingress}: {reason}")]
    BadAction {
        /// The Ingress (`namespace/name`).
        ingress: String,
        /// The action's name.
        action: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The rule's forward does not have the groups the Ingress asks for (the controller has not
    /// applied the Ingress's last change yet).
    #[error("rule {rule} forwards to {rule_groups} groups, its Ingress path to {ingress_groups}")]
    OutOfStep {
        /// The rule's ARN.
        rule: String,
        /// Groups the rule forwards to.
        rule_groups: usize,
        /// Groups the Ingress path names.
        ingress_groups: usize,
    },
    /// The Ingress no longer shows the backend or action as the shift left or found it: someone
    /// else changed it; costop leaves it to them.
    #[error("Ingress {ingress} changed at {at} since the shift: {found}")]
    Changed {
        /// The Ingress (`namespace/name`).
        ingress: String,
        /// Where (a JSON Pointer, or the annotation).
        at: String,
        /// What is there now.
        found: String,
    },
}

/// One group of the forward action costop writes, as the annotation names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionGroup {
    /// The target group the controller resolves it to (the rule's group).
    pub target_group_arn: String,
    /// The annotation's entry for it without its `weight` (`serviceName` and `servicePort`, or
    /// `targetGroupARN`).
    pub entry: Value,
}

/// Where a controller-managed rule comes from in its Ingress, what the shift changes there, and
/// what the restore puts back (part of the rule's [`super::ShiftLease`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngressShift {
    /// The cluster the Ingress is in.
    pub cluster: String,
    /// The Ingress's namespace.
    pub namespace: String,
    /// The Ingress's name.
    pub name: String,
    /// JSON Pointer (RFC 6901) of the backend the rule comes from.
    pub backend_at: String,
    /// That backend before the shift.
    pub backend_before: Value,
    /// The action the shifted backend uses: its own when it already had one, else costop's.
    pub action: String,
    /// The action's annotation before the shift; `None` when costop added it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_before: Option<String>,
    /// The action as written, its `forwardConfig.targetGroups` left to the weights (an existing
    /// action keeps its other settings, such as target group stickiness).
    pub template: Value,
    /// The action's groups, one per group of the rule's forward before the shift.
    pub groups: Vec<ActionGroup>,
}

/// What a patch makes of the Ingress.
#[derive(Debug, Clone, Copy)]
pub enum IngressTarget<'a> {
    /// The backend on the action, the action forwarding with these weights.
    Shifted(&'a [WeightedGroup]),
    /// The backend and annotation as before the shift.
    Original,
}

/// `namespace/name` of an Ingress object.
pub fn ingress_ref(ingress: &Value) -> String {
    format!(
        "{}/{}",
        ingress["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default"),
        ingress["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// A path of the Ingress as the controller turns it into a rule.
struct Candidate<'a> {
    pointer: String,
    hosts: Vec<String>,
    paths: Vec<String>,
    backend: &'a Value,
}

fn candidates(ingress: &Value) -> Vec<Candidate<'_>> {
    let mut out = Vec::new();
    for (i, rule) in ingress["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let hosts: Vec<String> = rule["host"]
            .as_str()
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .into_iter()
            .collect();
        for (j, path) in rule["http"]["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            out.push(Candidate {
                pointer: format!("/spec/rules/{i}/http/paths/{j}/backend"),
                hosts: hosts.clone(),
                paths: patterns(
                    path["path"].as_str().unwrap_or("/"),
                    path["pathType"]
                        .as_str()
                        .unwrap_or("ImplementationSpecific"),
                ),
                backend: &path["backend"],
            });
        }
    }
    let default = &ingress["spec"]["defaultBackend"];
    if !default.is_null() {
        out.push(Candidate {
            pointer: "/spec/defaultBackend".into(),
            hosts: Vec::new(),
            paths: vec!["/*".into()],
            backend: default,
        });
    }
    out
}

/// The path patterns the controller gives a path (`buildPathPatterns` in
/// `model_build_listener_rules.go`).
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

fn sorted(v: &[String]) -> Vec<&str> {
    let mut s: Vec<&str> = v.iter().map(String::as_str).collect();
    s.sort_unstable();
    s
}

fn service_name(backend: &Value) -> &str {
    backend["service"]["name"].as_str().unwrap_or_default()
}

/// The backend's port as the annotation names it: a number stays a number (the controller
/// reads `servicePort` as an int-or-string, and a string is a port *name*).
fn service_port(backend: &Value) -> Option<Value> {
    let port = &backend["service"]["port"];
    match (port["number"].as_u64(), port["name"].as_str()) {
        (Some(n), _) => Some(json!(n)),
        (None, Some(name)) => Some(json!(name)),
        _ => None,
    }
}

fn uses_annotation(backend: &Value) -> bool {
    backend["service"]["port"]["name"] == USE_ANNOTATION
}

/// `costop-shift-<service>-<port>`, made a DNS-1035 label: lower case, `-` for anything else,
/// at most 63 characters, no `-` at the end.
fn action_name(service: &str, port: &Value, suffix: Option<usize>) -> String {
    let port = match port {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let tail = suffix.map(|n| format!("-{n}")).unwrap_or_default();
    let raw = format!("{ACTION_PREFIX}{service}-{port}");
    let mut name: String = raw
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(DNS_LABEL_MAX - tail.len());
    let mut name = name.trim_end_matches('-').to_owned();
    name.push_str(&tail);
    name
}

/// The annotation key of `action`.
pub fn action_key(action: &str) -> String {
    format!("{ACTIONS_ANNOTATION_PREFIX}{action}")
}

/// RFC 6901: `~` is written `~0`, `/` `~1`.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn annotation<'a>(ingress: &'a Value, key: &str) -> Option<&'a str> {
    ingress["metadata"]["annotations"][key].as_str()
}

/// Where the rule comes from in `ingress` and what a shift changes there; an error when no path
/// (or more than one) makes the rule, its action serves other paths too, or the rule does not
/// forward as the Ingress says.
pub fn locate(
    rule: &RuleFacts,
    ingress: &Value,
    cluster: &str,
) -> Result<IngressShift, IngressShiftError> {
    let ingress_name = ingress_ref(ingress);
    let all = candidates(ingress);
    let matching: Vec<&Candidate<'_>> = all
        .iter()
        .filter(|c| {
            let by_conditions =
                sorted(&c.hosts) == sorted(&rule.hosts) && sorted(&c.paths) == sorted(&rule.paths);
            // The controller proper makes `defaultBackend` the listener's default action.
            let as_default = rule.is_default
                && rule.paths.is_empty()
                && rule.hosts.is_empty()
                && c.pointer == "/spec/defaultBackend";
            by_conditions || as_default
        })
        .collect();
    let found = match matching.as_slice() {
        [one] => *one,
        [] => {
            return Err(IngressShiftError::NoSuchPath {
                ingress: ingress_name,
                rule: rule.arn.clone(),
                hosts: rule.hosts.clone(),
                paths: rule.paths.clone(),
            });
        }
        more => {
            return Err(IngressShiftError::Ambiguous {
                ingress: ingress_name,
                rule: rule.arn.clone(),
                count: more.len(),
            });
        }
    };
    let out_of_step = |ingress_groups: usize| IngressShiftError::OutOfStep {
        rule: rule.arn.clone(),
        rule_groups: rule.forward.len(),
        ingress_groups,
    };
    let backend = found.backend;
    let service = service_name(backend);
    if uses_annotation(backend) {
        let users = all
            .iter()
            .filter(|c| uses_annotation(c.backend) && service_name(c.backend) == service)
            .count();
        if users > 1 {
            return Err(IngressShiftError::SharedAction {
                ingress: ingress_name,
                action: service.to_owned(),
            });
        }
        let bad = |reason: &str| IngressShiftError::BadAction {
            ingress: ingress_name.clone(),
            action: service.to_owned(),
            reason: reason.to_owned(),
        };
        let raw = annotation(ingress, &action_key(service))
            .ok_or_else(|| bad("the annotation is missing"))?;
        let template: Value = serde_json::from_str(raw).map_err(|e| bad(&e.to_string()))?;
        if template["type"] != "forward" {
            return Err(bad("not a forward action"));
        }
        let entries = template["forwardConfig"]["targetGroups"]
            .as_array()
            .ok_or_else(|| bad("forwardConfig.targetGroups is missing"))?;
        if entries.len() != rule.forward.len() {
            return Err(out_of_step(entries.len()));
        }
        let groups = rule
            .forward
            .iter()
            .zip(entries)
            .map(|(g, e)| {
                let mut entry = e.clone();
                if let Some(o) = entry.as_object_mut() {
                    o.remove("weight");
                }
                ActionGroup {
                    target_group_arn: g.target_group_arn.clone(),
                    entry,
                }
            })
            .collect();
        return Ok(IngressShift {
            cluster: cluster.to_owned(),
            namespace: ns_of(ingress),
            name: name_of(ingress),
            backend_at: found.pointer.clone(),
            backend_before: backend.clone(),
            action: service.to_owned(),
            action_before: Some(raw.to_owned()),
            template,
            groups,
        });
    }
    let [group] = rule.forward.as_slice() else {
        return Err(out_of_step(1));
    };
    let port = service_port(backend).ok_or_else(|| IngressShiftError::BadAction {
        ingress: ingress_name.clone(),
        action: service.to_owned(),
        reason: "the backend names no Service port".into(),
    })?;
    // The name must be the path's alone: another path naming the same Service port, or an
    // annotation of that name, would share it.
    let shared = all.iter().any(|c| {
        c.pointer != found.pointer
            && service_name(c.backend) == service
            && service_port(c.backend).as_ref() == Some(&port)
    });
    let mut action = action_name(service, &port, None);
    if shared || annotation(ingress, &action_key(&action)).is_some() {
        let n = all
            .iter()
            .position(|c| c.pointer == found.pointer)
            .unwrap_or_default();
        action = action_name(service, &port, Some(n));
    }
    Ok(IngressShift {
        cluster: cluster.to_owned(),
        namespace: ns_of(ingress),
        name: name_of(ingress),
        backend_at: found.pointer.clone(),
        backend_before: backend.clone(),
        action,
        action_before: None,
        template: json!({"type": "forward", "forwardConfig": {}}),
        groups: vec![ActionGroup {
            target_group_arn: group.target_group_arn.clone(),
            entry: json!({"serviceName": service, "servicePort": port}),
        }],
    })
}

fn ns_of(ingress: &Value) -> String {
    ingress["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned()
}

fn name_of(ingress: &Value) -> String {
    ingress["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

impl IngressShift {
    /// `namespace/name`.
    pub fn ingress(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The backend as the shift leaves it: on the action.
    pub fn shifted_backend(&self) -> Value {
        json!({"service": {"name": self.action, "port": {"name": USE_ANNOTATION}}})
    }

    /// The action annotation's value for `weights` (in the rule's groups, the fallback's among
    /// them): each group's entry with its weight, the fallback by its target group ARN.
    pub fn action_value(&self, weights: &[WeightedGroup]) -> String {
        let groups: Vec<Value> = weights
            .iter()
            .map(|w| {
                let mut entry = self
                    .groups
                    .iter()
                    .find(|g| g.target_group_arn == w.target_group_arn)
                    .map_or_else(
                        || json!({"targetGroupARN": w.target_group_arn}),
                        |g| g.entry.clone(),
                    );
                entry["weight"] = json!(w.weight);
                entry
            })
            .collect();
        let mut action = self.template.clone();
        action["forwardConfig"]["targetGroups"] = Value::Array(groups);
        action.to_string()
    }

    /// Whether `value` is this action as costop writes it, whatever its weights: its groups
    /// are the rule's (and the fallback's) in order.
    fn is_ours(&self, value: &str) -> bool {
        let Ok(v) = serde_json::from_str::<Value>(value) else {
            return false;
        };
        let Some(found) = v["forwardConfig"]["targetGroups"].as_array() else {
            return false;
        };
        if found.len() < self.groups.len() {
            return false;
        }
        let unweighted: Vec<Value> = found
            .iter()
            .map(|g| {
                let mut g = g.clone();
                if let Some(o) = g.as_object_mut() {
                    o.remove("weight");
                }
                g
            })
            .collect();
        let (known, added) = unweighted.split_at(self.groups.len());
        let groups_match = known.iter().zip(&self.groups).all(|(f, g)| *f == g.entry)
            && added.iter().all(|g| {
                g.as_object()
                    .is_some_and(|o| o.len() == 1 && o.contains_key("targetGroupARN"))
            });
        let (mut rest, mut template) = (v.clone(), self.template.clone());
        rest["forwardConfig"]["targetGroups"] = Value::Null;
        template["forwardConfig"]["targetGroups"] = Value::Null;
        groups_match && rest == template
    }

    /// The JSON Patch that takes `current` (the Ingress as just read) to `target`; `None` when it
    /// is there already. Each value it replaces is guarded by a `test` of what was read. An
    /// error, and no patch, when the backend or the annotation is neither as found before the
    /// shift nor as costop writes it (someone else changed it since).
    pub fn patch(
        &self,
        current: &Value,
        target: IngressTarget<'_>,
    ) -> Result<Option<Value>, IngressShiftError> {
        let changed = |at: &str, found: String| IngressShiftError::Changed {
            ingress: self.ingress(),
            at: at.to_owned(),
            found,
        };
        let shifted_backend = self.shifted_backend();
        let backend = current.pointer(&self.backend_at).unwrap_or(&Value::Null);
        if *backend != self.backend_before && *backend != shifted_backend {
            return Err(changed(&self.backend_at, backend.to_string()));
        }
        let key = action_key(&self.action);
        let found = annotation(current, &key);
        if let Some(v) = found
            && self.action_before.as_deref() != Some(v)
            && !self.is_ours(v)
        {
            return Err(changed(&key, v.to_owned()));
        }
        let (want_backend, want_action) = match target {
            IngressTarget::Shifted(weights) => (shifted_backend, Some(self.action_value(weights))),
            IngressTarget::Original => (self.backend_before.clone(), self.action_before.clone()),
        };
        let mut ops = Vec::new();
        let at = format!("/metadata/annotations/{}", escape(&key));
        match (found, want_action.as_deref()) {
            (Some(v), Some(w)) if v != w => {
                ops.push(json!({"op": "test", "path": at, "value": v}));
                ops.push(json!({"op": "replace", "path": at, "value": w}));
            }
            (Some(v), None) => {
                ops.push(json!({"op": "test", "path": at, "value": v}));
                // Costop's annotation alone: the Ingress had none, and gets none back.
                let only = current["metadata"]["annotations"]
                    .as_object()
                    .is_some_and(|m| m.len() == 1);
                let whole = if only {
                    "/metadata/annotations"
                } else {
                    at.as_str()
                };
                ops.push(json!({"op": "remove", "path": whole}));
            }
            (None, Some(w)) => match current["metadata"]["annotations"].as_object() {
                Some(_) => ops.push(json!({"op": "add", "path": at, "value": w})),
                // No annotations yet: the map is added whole, so nothing may have come in
                // since the read (a moved resourceVersion fails the `test`).
                None => {
                    if let Some(rv) = current["metadata"]["resourceVersion"].as_str() {
                        ops.push(
                            json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}),
                        );
                    }
                    let mut map = Map::new();
                    map.insert(key.clone(), json!(w));
                    ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": map}));
                }
            },
            _ => {}
        }
        if *backend != want_backend {
            ops.push(json!({"op": "test", "path": self.backend_at, "value": backend}));
            ops.push(json!({"op": "replace", "path": self.backend_at, "value": want_backend}));
        }
        Ok((!ops.is_empty()).then_some(Value::Array(ops)))
    }
}

#[cfg(test)]
mod tests;
