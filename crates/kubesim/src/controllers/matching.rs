//! Scheduling predicates shared by the scheduler, the DaemonSet controller and the taint
//! managers: Kubernetes quantities, taints and tolerations, `nodeSelector` and required node
//! affinity, and a pod's resource requests. Odd input never panics: an unparsable quantity
//! reads as zero, an unknown operator as "does not match".

use serde_json::{Map, Value};

use super::At;

/// Parse a Kubernetes quantity (`100m`, `1`, `1.5`, `512Mi`, `1Gi`, `1G`, `1e3`, `2E`...)
/// into its value in base units.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    let split = q
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || ((c == '+' || c == '-') && i == 0)))
        .map_or(q.len(), |(i, _)| i);
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    let v = n * mult;
    v.is_finite().then_some(v)
}

fn quantity_value(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// CPU in millicores (rounded up, as the API does).
pub fn cpu_millis(v: Option<&Value>) -> i64 {
    v.and_then(quantity_value)
        .map_or(0, |x| (x * 1000.0).ceil() as i64)
}

/// Bytes (or a plain count, e.g. `pods`).
pub fn amount(v: Option<&Value>) -> i64 {
    v.and_then(quantity_value).map_or(0, |x| x.ceil() as i64)
}

/// What a pod asks the scheduler for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    pub cpu_m: i64,
    pub mem: i64,
}

impl Requests {
    pub fn add(&mut self, o: Requests) {
        self.cpu_m += o.cpu_m;
        self.mem += o.mem;
    }
    pub fn sub(&mut self, o: Requests) {
        self.cpu_m -= o.cpu_m;
        self.mem -= o.mem;
    }
}

fn container_requests(c: &Value) -> Requests {
    // A container that sets only limits requests its limits (the API's defaulting).
    let res = c.get("resources");
    let pick = |k: &str| {
        res.and_then(|r| r.at(&format!("/requests/{k}")))
            .or_else(|| res.and_then(|r| r.at(&format!("/limits/{k}"))))
    };
    Requests {
        cpu_m: cpu_millis(pick("cpu")),
        mem: amount(pick("memory")),
    }
}

/// Effective requests: the sum over containers, at least the largest init container, plus
/// the pod overhead.
pub fn pod_requests(pod: &Value) -> Requests {
    let mut total = Requests::default();
    for c in pod
        .at("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        total.add(container_requests(c));
    }
    for c in pod
        .at("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let r = container_requests(c);
        total.cpu_m = total.cpu_m.max(r.cpu_m);
        total.mem = total.mem.max(r.mem);
    }
    if let Some(o) = pod.at("/spec/overhead") {
        total.cpu_m += cpu_millis(o.get("cpu"));
        total.mem += amount(o.get("memory"));
    }
    total
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: String,
    pub time_added: Option<String>,
}

impl Taint {
    /// `{key: value}` as the scheduler's messages print it.
    pub fn describe(&self) -> String {
        format!("{{{}: {}}}", self.key, self.value)
    }
}

pub fn taints(node: &Value) -> Vec<Taint> {
    node.at("/spec/taints")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(|t| {
                    Some(Taint {
                        key: t.get("key").and_then(Value::as_str)?.to_string(),
                        value: t
                            .get("value")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        effect: t
                            .get("effect")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        time_added: t
                            .get("timeAdded")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    pub key: String,
    pub operator: String,
    pub value: String,
    pub effect: String,
    pub seconds: Option<i64>,
}

impl Toleration {
    pub fn tolerates(&self, t: &Taint) -> bool {
        if !self.effect.is_empty() && self.effect != t.effect {
            return false;
        }
        match self.operator.as_str() {
            "Exists" => self.key.is_empty() || self.key == t.key,
            "" | "Equal" => self.key == t.key && self.value == t.value,
            _ => false,
        }
    }
}

pub fn tolerations(pod: &Value) -> Vec<Toleration> {
    pod.at("/spec/tolerations")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .map(|t| Toleration {
                    key: t
                        .get("key")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    operator: t
                        .get("operator")
                        .and_then(Value::as_str)
                        .unwrap_or("Equal")
                        .to_string(),
                    value: t
                        .get("value")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    effect: t
                        .get("effect")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    seconds: t.get("tolerationSeconds").and_then(Value::as_i64),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn tolerated(tols: &[Toleration], t: &Taint) -> bool {
    tols.iter().any(|tol| tol.tolerates(t))
}

/// The first NoSchedule/NoExecute taint the tolerations do not tolerate.
pub fn untolerated<'t>(taints: &'t [Taint], tols: &[Toleration]) -> Option<&'t Taint> {
    taints
        .iter()
        .find(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(tols, t))
}

fn label<'v>(labels: Option<&'v Map<String, Value>>, key: &str) -> Option<&'v str> {
    labels.and_then(|l| l.get(key)).and_then(Value::as_str)
}

/// `spec.nodeSelector`: every pair must be a node label.
pub fn node_selector_matches(pod: &Value, node_labels: Option<&Map<String, Value>>) -> bool {
    match pod.at("/spec/nodeSelector").and_then(Value::as_object) {
        Some(sel) => sel.iter().all(|(k, v)| label(node_labels, k) == v.as_str()),
        None => true,
    }
}

fn requirement_matches(req: &Value, value: Option<&str>) -> bool {
    let values: Vec<&str> = req
        .get("values")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match req.get("operator").and_then(Value::as_str).unwrap_or("") {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if op == "Gt" { v > bound } else { v < bound }
        }
        _ => false,
    }
}

/// One `NodeSelectorTerm`: all expressions and fields must match; an empty term matches
/// nothing.
pub fn term_matches(
    term: &Value,
    node_name: &str,
    node_labels: Option<&Map<String, Value>>,
) -> bool {
    let exprs = term
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let fields = term
        .get("matchFields")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|e| {
        requirement_matches(
            e,
            e.get("key")
                .and_then(Value::as_str)
                .and_then(|k| label(node_labels, k)),
        )
    }) && fields.iter().all(|f| {
        let v = match f.get("key").and_then(Value::as_str) {
            Some("metadata.name") => Some(node_name),
            _ => None,
        };
        requirement_matches(f, v)
    })
}

/// `requiredDuringSchedulingIgnoredDuringExecution`: terms are ORed.
pub fn required_affinity_matches(
    pod: &Value,
    node_name: &str,
    node_labels: Option<&Map<String, Value>>,
) -> bool {
    match pod.at("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution") {
        Some(sel) if !sel.is_null() => sel
            .get("nodeSelectorTerms")
            .and_then(Value::as_array)
            .is_some_and(|terms| {
                terms
                    .iter()
                    .any(|t| term_matches(t, node_name, node_labels))
            }),
        _ => true,
    }
}

/// Sum of the weights of matching `preferredDuringSchedulingIgnoredDuringExecution` terms.
pub fn preferred_affinity_score(
    pod: &Value,
    node_name: &str,
    node_labels: Option<&Map<String, Value>>,
) -> i64 {
    pod.at("/spec/affinity/nodeAffinity/preferredDuringSchedulingIgnoredDuringExecution")
        .and_then(Value::as_array)
        .map(|prefs| {
            prefs
                .iter()
                .filter(|p| {
                    p.get("preference")
                        .is_some_and(|t| term_matches(t, node_name, node_labels))
                })
                .map(|p| p.get("weight").and_then(Value::as_i64).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

/// Node selector and required affinity.
pub fn node_affinity_matches(pod: &Value, node: &Value) -> bool {
    let labels = node.at("/metadata/labels").and_then(Value::as_object);
    let name = node
        .at("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    node_selector_matches(pod, labels) && required_affinity_matches(pod, name, labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_parse_like_kubernetes() {
        assert_eq!(cpu_millis(Some(&json!("100m"))), 100);
        assert_eq!(cpu_millis(Some(&json!("1"))), 1000);
        assert_eq!(cpu_millis(Some(&json!("1.5"))), 1500);
        assert_eq!(cpu_millis(Some(&json!(2))), 2000);
        assert_eq!(amount(Some(&json!("512Mi"))), 512 * 1024 * 1024);
        assert_eq!(amount(Some(&json!("1Gi"))), 1 << 30);
        assert_eq!(amount(Some(&json!("1G"))), 1_000_000_000);
        assert_eq!(amount(Some(&json!("1e3"))), 1000);
        assert_eq!(amount(Some(&json!("2k"))), 2000);
        assert_eq!(amount(Some(&json!("bogus"))), 0);
        assert_eq!(amount(None), 0);
    }

    #[test]
    fn tolerations_match_taints() {
        let t = Taint {
            key: "k".into(),
            value: "v".into(),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        let tol = |v: Value| tolerations(&json!({"spec": {"tolerations": [v]}}))[0].tolerates(&t);
        assert!(tol(json!({"key": "k", "value": "v"})));
        assert!(tol(
            json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})
        ));
        assert!(tol(json!({"operator": "Exists"})));
        assert!(!tol(json!({"key": "k", "value": "w"})));
        assert!(!tol(
            json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})
        ));
    }

    #[test]
    fn affinity_terms_are_ored_and_expressions_anded() {
        let node_labels = json!({"zone": "a", "cpus": "8"});
        let l = node_labels.as_object();
        let pod = json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
            {"matchExpressions": [{"key": "cpus", "operator": "Gt", "values": ["4"]}, {"key": "gpu", "operator": "DoesNotExist"}]}
        ]}}}}});
        assert!(required_affinity_matches(&pod, "n1", l));
        let by_name = json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}
        ]}}}}});
        assert!(!required_affinity_matches(&by_name, "n1", l));
        assert!(required_affinity_matches(&by_name, "n2", l));
    }
}
