//! What the API server itself enforces and defaults on writes, with the real server's messages:
//!
//! - pods on create: field defaults (restart policy, grace period, scheduler, pull policy,
//!   requests from limits), `spec.priority` from the PriorityClass admission plugin (403 for an
//!   unknown class), the DefaultTolerationSeconds tolerations, a fresh `status` with the QoS class;
//! - pods on update: the spec is immutable except container images, `activeDeadlineSeconds`,
//!   *added* tolerations and a few special cases (422 otherwise); `spec.nodeName` moves only
//!   through the binding subresource;
//! - PriorityClasses (one global default, immutable value), namespaces, services and workload
//!   defaults;
//! - the eviction subresource (PodDisruptionBudget check with the real 429, budget decrement,
//!   graceful delete) and the binding subresource.
//!
//! Everything here runs inside a store transaction, so a rejected write leaves nothing behind.

use serde_json::{Map, Value, json};

use crate::clock::Clock;
use crate::error::ApiError;
use crate::resources::{self, ResourceDef};
use crate::selectors::LabelSelector;
use crate::store::{DeleteOptions, ListOptions, Part, Tx, meta_str};

/// One field-level validation error, rendered like apimachinery's `field.Error`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    /// The `StatusCause` reason: `FieldValueRequired`, `FieldValueForbidden`, `FieldValueInvalid`.
    pub reason: &'static str,
    /// What follows the field path, e.g. `Required value` or `Forbidden: ...`.
    pub body: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueRequired",
            body: "Required value".into(),
        }
    }
    pub fn forbidden(field: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueForbidden",
            body: format!("Forbidden: {detail}"),
        }
    }
    pub fn invalid(
        field: impl Into<String>,
        value: &Value,
        detail: impl std::fmt::Display,
    ) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueInvalid",
            body: format!("Invalid value: {value}: {detail}"),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body)
    }
}

/// 422 Invalid as `errors.NewInvalid` builds it: `Pod "x" is invalid: <err>` (or `[e1, e2]`).
pub fn invalid(r: &ResourceDef, name: &str, errs: Vec<FieldError>) -> ApiError {
    let kind = if r.group.is_empty() {
        r.kind.to_string()
    } else {
        format!("{}.{}", r.kind, r.group)
    };
    let msg = match errs.as_slice() {
        [] => format!("{kind} \"{name}\" is invalid"),
        [one] => format!("{kind} \"{name}\" is invalid: {one}"),
        many => format!(
            "{kind} \"{name}\" is invalid: [{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let causes: Vec<Value> = errs
        .iter()
        .map(|e| json!({"reason": e.reason, "message": e.body, "field": e.field}))
        .collect();
    ApiError::new(422, "Invalid", msg)
        .with_details(json!({"name": name, "group": r.group, "kind": r.kind, "causes": causes}))
}

/// 403 Forbidden as admission plugins return it: `pods "x" is forbidden: <msg>`.
pub fn forbidden(r: &ResourceDef, name: &str, msg: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        403,
        "Forbidden",
        format!("{} \"{name}\" is forbidden: {msg}", r.qualified()),
    )
    .with_details(json!({"name": name, "group": r.group, "kind": r.plural}))
}

fn name_of(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

fn is(r: &ResourceDef, def: &ResourceDef) -> bool {
    r.group == def.group && r.plural == def.plural
}

/// Defaults and validation for a new object (runs for API and controller writes alike).
pub fn on_create(
    tx: &mut Tx<'_>,
    r: &'static ResourceDef,
    obj: &mut Value,
) -> Result<(), ApiError> {
    if is(r, &resources::PODS) {
        pod_create(tx, obj)
    } else if is(r, &resources::NAMESPACES) {
        let spec = child(obj, "spec");
        spec.entry("finalizers")
            .or_insert_with(|| json!(["kubernetes"]));
        child(obj, "status").insert("phase".into(), json!("Active"));
        Ok(())
    } else if is(r, &resources::PRIORITYCLASSES) {
        priority_class_write(tx, r, None, obj)
    } else if is(r, &resources::SERVICES) {
        service_defaults(obj);
        Ok(())
    } else if is(r, &resources::PODDISRUPTIONBUDGETS) {
        // The disruption controller owns the status; a new PDB starts unobserved.
        obj.as_object_mut().map(|m| m.insert("status".into(), json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})));
        validate_pdb(r, obj)
    } else if r.group == "apps" {
        workload_defaults(r, obj)
    } else {
        Ok(())
    }
}

/// Validation for an update. `part` says what the write replaces: API writes of the main
/// resource ([`Part::Main`]) get the full validation; status writes and internal writes by
/// the control loops ([`Part::All`], e.g. the scheduler binding or the kubelet) are trusted.
pub fn on_update(
    tx: &mut Tx<'_>,
    r: &'static ResourceDef,
    old: &Value,
    new: &mut Value,
    part: Part,
) -> Result<(), ApiError> {
    if part != Part::Main {
        return Ok(());
    }
    if is(r, &resources::PODS) {
        pod_update(old, new)
    } else if is(r, &resources::PRIORITYCLASSES) {
        priority_class_write(tx, r, Some(old), new)
    } else if is(r, &resources::SERVICES) {
        service_defaults(new);
        Ok(())
    } else if is(r, &resources::PODDISRUPTIONBUDGETS) {
        validate_pdb(r, new)
    } else if r.group == "apps" {
        workload_defaults(r, new)
    } else {
        Ok(())
    }
}

/// `obj[key]` as an object, created (or replaced if not an object) when needed.
fn child<'a>(obj: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let m = obj.as_object_mut().expect("just made an object");
    let v = m.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("just made an object")
}

// ---------------------------------------------------------------------------------------------
// Pods

/// Defaults and admission-plugin additions for a pod's spec (idempotent).
fn pod_spec_defaults(spec: &mut Map<String, Value>) {
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
fn template_spec_defaults(spec: &mut Map<String, Value>) {
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

fn validate_pod_spec(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match spec.get("containers").and_then(Value::as_array) {
        Some(cs) if !cs.is_empty() => errs.extend(validate_containers(cs, "spec.containers")),
        _ => errs.push(FieldError::required("spec.containers")),
    }
    if let Some(cs) = spec.get("initContainers").and_then(Value::as_array) {
        errs.extend(validate_containers(cs, "spec.initContainers"));
    }
    errs
}

fn validate_containers(cs: &[Value], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, c) in cs.iter().enumerate() {
        match c.get("name").and_then(Value::as_str) {
            None | Some("") => errs.push(FieldError::required(format!("{path}[{i}].name"))),
            Some(n) if !seen.insert(n) => errs.push(FieldError {
                field: format!("{path}[{i}].name"),
                reason: "FieldValueDuplicate",
                body: format!("Duplicate value: {}", json!(n)),
            }),
            _ => {}
        }
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            errs.push(FieldError::required(format!("{path}[{i}].image")));
        }
    }
    errs
}

fn pod_create(tx: &mut Tx<'_>, pod: &mut Value) -> Result<(), ApiError> {
    let name = name_of(pod).to_string();
    let errs = validate_pod_spec(pod.get("spec").unwrap_or(&Value::Null));
    if !errs.is_empty() {
        return Err(invalid(&resources::PODS, &name, errs));
    }
    let spec = child(pod, "spec");
    pod_spec_defaults(spec);
    resolve_priority(tx, &name, spec)?;
    let qos = qos_class(spec);
    // A new pod starts with a fresh status, whatever the client sent (as the real strategy does).
    pod.as_object_mut().expect("pod is an object").insert(
        "status".into(),
        json!({"phase": "Pending", "qosClass": qos}),
    );
    Ok(())
}

/// The Priority admission plugin on create.
fn resolve_priority(
    tx: &Tx<'_>,
    pod_name: &str,
    spec: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    let class_name = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let (class_name, value, policy) = if class_name.is_empty() {
        // The global default with the lowest value (there should be one at most).
        let default = tx
            .list(&resources::PRIORITYCLASSES, None, &ListOptions::default())
            .into_iter()
            .filter(|pc| pc.get("globalDefault").and_then(Value::as_bool) == Some(true))
            .min_by_key(|pc| pc.get("value").and_then(Value::as_i64).unwrap_or(0));
        match default {
            Some(pc) => (
                name_of(&pc).to_string(),
                pc.get("value").and_then(Value::as_i64).unwrap_or(0),
                pc.get("preemptionPolicy").cloned(),
            ),
            None => (String::new(), 0, Some(json!("PreemptLowerPriority"))),
        }
    } else {
        let Some(pc) = tx.try_get(&resources::PRIORITYCLASSES, None, &class_name) else {
            return Err(forbidden(
                &resources::PODS,
                pod_name,
                format!("no PriorityClass with name {class_name} was found"),
            ));
        };
        (
            class_name,
            pc.get("value").and_then(Value::as_i64).unwrap_or(0),
            pc.get("preemptionPolicy").cloned(),
        )
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != value
    {
        return Err(forbidden(
            &resources::PODS,
            pod_name,
            format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
            ),
        ));
    }
    if !class_name.is_empty() {
        spec.insert("priorityClassName".into(), json!(class_name));
    }
    spec.insert("priority".into(), json!(value));
    if let Some(policy) = policy.filter(|p| p.is_string()) {
        if let Some(given) = spec.get("preemptionPolicy").filter(|g| **g != policy) {
            return Err(forbidden(
                &resources::PODS,
                pod_name,
                format!(
                    "the string value of PreemptionPolicy ({}) must not be provided in pod spec; priority admission controller computed {} from the given PriorityClass name",
                    given.as_str().unwrap_or(""),
                    policy.as_str().unwrap_or("")
                ),
            ));
        }
        spec.insert("preemptionPolicy".into(), policy);
    }
    Ok(())
}

/// `Guaranteed`, `Burstable` or `BestEffort`, as `qos.GetPodQOS` computes it (cpu and memory
/// only; init containers count).
pub fn qos_class(spec: &Map<String, Value>) -> &'static str {
    let mut requests: std::collections::BTreeMap<&str, i128> = Default::default();
    let mut limits: std::collections::BTreeMap<&str, i128> = Default::default();
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"]
        .into_iter()
        .filter_map(|k| spec.get(k).and_then(Value::as_array))
        .flatten();
    for c in containers {
        let res = c.get("resources");
        for (name, q) in res
            .and_then(|r| r.get("requests"))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let name = name.as_str();
            if name != "cpu" && name != "memory" {
                continue;
            }
            if let Some(n) = q
                .as_str()
                .and_then(parse_quantity)
                .or_else(|| q.as_f64().map(|f| (f * 1e9) as i128))
                && n > 0
            {
                *requests
                    .entry(if name == "cpu" { "cpu" } else { "memory" })
                    .or_default() += n;
            }
        }
        let mut found = (false, false);
        for (name, q) in res
            .and_then(|r| r.get("limits"))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let name = name.as_str();
            if name != "cpu" && name != "memory" {
                continue;
            }
            if let Some(n) = q
                .as_str()
                .and_then(parse_quantity)
                .or_else(|| q.as_f64().map(|f| (f * 1e9) as i128))
                && n > 0
            {
                if name == "cpu" {
                    found.0 = true;
                } else {
                    found.1 = true;
                }
                *limits
                    .entry(if name == "cpu" { "cpu" } else { "memory" })
                    .or_default() += n;
            }
        }
        if !(found.0 && found.1) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
        && requests.len() == limits.len()
    {
        return "Guaranteed";
    }
    "Burstable"
}

/// A resource quantity (`100m`, `1.5Gi`, `2e3`, `1`) in billionths, exactly.
pub fn parse_quantity(s: &str) -> Option<i128> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let (neg, num) = match num.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, num.strip_prefix('+').unwrap_or(num)),
    };
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.len() > 9 {
        return None;
    }
    let int: i128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let frac: i128 = format!("{frac_part:0<9}").parse().ok()?;
    let nanos = int.checked_mul(1_000_000_000)?.checked_add(frac)?;
    let scaled = match suffix {
        "" => nanos,
        "n" => nanos / 1_000_000_000,
        "u" => nanos / 1_000_000,
        "m" => nanos / 1_000,
        "k" => nanos.checked_mul(1_000)?,
        "M" => nanos.checked_mul(1_000_000)?,
        "G" => nanos.checked_mul(1_000_000_000)?,
        "T" => nanos.checked_mul(1_000_000_000_000)?,
        "P" => nanos.checked_mul(1_000_000_000_000_000)?,
        "E" => nanos.checked_mul(1_000_000_000_000_000_000)?,
        "Ki" => nanos.checked_mul(1 << 10)?,
        "Mi" => nanos.checked_mul(1 << 20)?,
        "Gi" => nanos.checked_mul(1 << 30)?,
        "Ti" => nanos.checked_mul(1 << 40)?,
        "Pi" => nanos.checked_mul(1 << 50)?,
        "Ei" => nanos.checked_mul(1 << 60)?,
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().ok()?;
            if exp >= 0 {
                nanos.checked_mul(10i128.checked_pow(exp as u32)?)?
            } else {
                nanos / 10i128.checked_pow((-exp) as u32)?
            }
        }
        _ => return None,
    };
    Some(if neg { -scaled } else { scaled })
}

const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodUpdate` for the main resource.
fn pod_update(old: &Value, new: &mut Value) -> Result<(), ApiError> {
    let name = name_of(old).to_string();
    let old_spec = old
        .get("spec")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    {
        let spec = child(new, "spec");
        pod_spec_defaults(spec);
        // The Priority plugin keeps what it resolved on create.
        for k in ["priority", "preemptionPolicy", "priorityClassName"] {
            if !spec.contains_key(k)
                && let Some(v) = old_spec.get(k)
            {
                spec.insert(k.into(), v.clone());
            }
        }
    }
    let new_spec = new
        .get("spec")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut errs = Vec::new();

    // Containers: same count, images may change but must stay set.
    for list in ["containers", "initContainers"] {
        let o = old_spec
            .get(list)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let n = new_spec
            .get(list)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if o.len() != n.len() {
            return Err(invalid(
                &resources::PODS,
                &name,
                vec![FieldError::forbidden(
                    format!("spec.{list}"),
                    "pod updates may not add or remove containers",
                )],
            ));
        }
        for (i, c) in n.iter().enumerate() {
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                errs.push(FieldError::required(format!("spec.{list}[{i}].image")));
            }
        }
    }

    // activeDeadlineSeconds may be set or lowered, never raised or removed.
    let old_ads = old_spec
        .get("activeDeadlineSeconds")
        .and_then(Value::as_i64);
    let new_ads = new_spec
        .get("activeDeadlineSeconds")
        .and_then(Value::as_i64);
    match (old_ads, new_ads) {
        (Some(_), None) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            &Value::Null,
            "must not update from a positive integer to nil value",
        )),
        (Some(o), Some(n)) if n > o => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            &json!(n),
            "must be less than or equal to previous value",
        )),
        _ => {}
    }

    // Tolerations: existing ones may only change their tolerationSeconds.
    let old_tols = old_spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let new_tols = new_spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let kept = old_tols.iter().all(|o| {
        new_tols.iter().any(|n| {
            let mut o = normalized(o);
            let n = normalized(n);
            if let (Some(om), Some(nm)) = (o.as_object_mut(), n.as_object()) {
                match nm.get("tolerationSeconds") {
                    Some(s) => om.insert("tolerationSeconds".into(), s.clone()),
                    None => om.remove("tolerationSeconds"),
                };
            }
            o == n
        })
    });
    if !kept {
        errs.push(FieldError::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }

    // Scheduling gates may only be removed.
    let old_gates = old_spec
        .get("schedulingGates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for g in new_spec
        .get("schedulingGates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !old_gates.contains(g) {
            let gname = g.get("name").and_then(Value::as_str).unwrap_or("");
            errs.push(FieldError::forbidden(
                "spec.schedulingGates",
                format!("only deletion is allowed, but found new scheduling gate '{gname}'"),
            ));
        }
    }

    // Everything else must be unchanged: overwrite the updatable fields with the old values
    // and compare.
    let mut munged = new_spec.clone();
    for list in ["containers", "initContainers"] {
        let old_list = old_spec.get(list).and_then(Value::as_array);
        if let (Some(cs), Some(old_list)) =
            (munged.get_mut(list).and_then(Value::as_array_mut), old_list)
        {
            for (c, oc) in cs.iter_mut().zip(old_list) {
                if let Some(c) = c.as_object_mut() {
                    match oc.get("image") {
                        Some(img) => c.insert("image".into(), img.clone()),
                        None => c.remove("image"),
                    };
                }
            }
        }
    }
    for k in ["activeDeadlineSeconds", "tolerations", "schedulingGates"] {
        match old_spec.get(k) {
            Some(v) => munged.insert(k.into(), v.clone()),
            None => munged.remove(k),
        };
    }
    let old_grace = old_spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64);
    if old_grace.is_some_and(|g| g < 0)
        && munged
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            == Some(1)
    {
        munged.insert("terminationGracePeriodSeconds".into(), json!(old_grace));
    }
    let munged = Value::Object(munged);
    let old_spec_v = Value::Object(old_spec);
    if normalized(&munged) != normalized(&old_spec_v) {
        errs.push(FieldError::forbidden(
            "spec",
            format!(
                "pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}\n{}",
                spec_diff(&old_spec_v, &munged)
            ),
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(invalid(&resources::PODS, &name, errs))
    }
}

/// Semantic equality as apimachinery sees it: nulls, empty lists and empty maps are the same
/// as absent.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| !is_empty_value(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// A short cmp.Diff-like rendering of the top-level spec fields that differ.
fn spec_diff(old: &Value, new: &Value) -> String {
    let (o, n) = (normalized(old), normalized(new));
    let empty = Map::new();
    let (om, nm) = (
        o.as_object().unwrap_or(&empty),
        n.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = om.keys().chain(nm.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = String::from("  core.PodSpec{\n");
    for k in keys {
        let (a, b) = (om.get(k), nm.get(k));
        if a == b {
            continue;
        }
        let field = go_field_name(k);
        if let Some(a) = a {
            out.push_str(&format!("- \t{field}: {a},\n"));
        }
        if let Some(b) = b {
            out.push_str(&format!("+ \t{field}: {b},\n"));
        }
    }
    out.push_str("  }\n");
    out
}

fn go_field_name(json_name: &str) -> String {
    let mut c = json_name.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Other resources

fn service_defaults(svc: &mut Value) {
    let spec = child(svc, "spec");
    spec.entry("type").or_insert_with(|| json!("ClusterIP"));
    spec.entry("sessionAffinity")
        .or_insert_with(|| json!("None"));
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let is_external_name = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
    if !headless
        && !is_external_name
        && spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        // A free-enough address from the default EKS service range.
        let b = uuid::Uuid::new_v4().into_bytes();
        let ip = format!("10.100.{}.{}", b[0], b[1].max(1));
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.entry("protocol").or_insert_with(|| json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                p.entry("targetPort").or_insert(port);
            }
        }
    }
}

/// Replica defaults and the selector checks of Deployments, ReplicaSets, StatefulSets and
/// DaemonSets.
fn workload_defaults(r: &'static ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
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

fn validate_pdb(r: &'static ResourceDef, pdb: &Value) -> Result<(), ApiError> {
    let spec = pdb.get("spec").unwrap_or(&Value::Null);
    if spec.get("minAvailable").is_some_and(|v| !v.is_null())
        && spec.get("maxUnavailable").is_some_and(|v| !v.is_null())
    {
        return Err(invalid(
            r,
            name_of(pdb),
            vec![FieldError::invalid(
                "spec",
                &Value::String("{...}".into()),
                "minAvailable and maxUnavailable cannot be both set",
            )],
        ));
    }
    Ok(())
}

/// PriorityClass defaults, the single global default, and the immutable value.
fn priority_class_write(
    tx: &Tx<'_>,
    r: &'static ResourceDef,
    old: Option<&Value>,
    pc: &mut Value,
) -> Result<(), ApiError> {
    let name = name_of(pc).to_string();
    let m = pc.as_object_mut().expect("objects reach admission as maps");
    m.entry("preemptionPolicy")
        .or_insert_with(|| json!("PreemptLowerPriority"));
    if m.get("value").and_then(Value::as_i64).is_none() {
        return Err(invalid(r, &name, vec![FieldError::required("value")]));
    }
    if let Some(old) = old {
        let mut errs = Vec::new();
        for k in ["value", "preemptionPolicy"] {
            if old.get(k) != m.get(k) {
                errs.push(FieldError::forbidden(k, "may not be changed in an update."));
            }
        }
        if !errs.is_empty() {
            return Err(invalid(r, &name, errs));
        }
    }
    if m.get("globalDefault").and_then(Value::as_bool) == Some(true) {
        let other = tx
            .list(&resources::PRIORITYCLASSES, None, &ListOptions::default())
            .into_iter()
            .find(|o| {
                o.get("globalDefault").and_then(Value::as_bool) == Some(true) && name_of(o) != name
            });
        if let Some(other) = other {
            return Err(forbidden(
                r,
                &name,
                format!(
                    "PriorityClass {} is already marked as default. Only one default can exist",
                    name_of(&other)
                ),
            ));
        }
    }
    Ok(())
}

/// The grace period a delete of `pod` gets: the request's, else the pod's
/// `terminationGracePeriodSeconds`, else 30.
pub fn pod_grace_period(pod: &Value, requested: Option<i64>) -> i64 {
    requested
        .or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

// ---------------------------------------------------------------------------------------------
// Eviction

const PDB_VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// `DeleteOptions` as a JSON object (an Eviction's `deleteOptions`, a DELETE body) in store terms.
pub fn delete_options_from(v: &Value) -> Result<DeleteOptions, ApiError> {
    let grace = match v.get("gracePeriodSeconds") {
        None | Some(Value::Null) => None,
        Some(g) => Some(
            g.as_i64()
                .ok_or_else(|| ApiError::bad_request("gracePeriodSeconds must be an integer"))?,
        ),
    };
    let policy = v.get("propagationPolicy").and_then(Value::as_str);
    if let Some(p) = policy
        && !matches!(p, "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
        )));
    }
    let orphan = policy == Some("Orphan")
        || (policy.is_none() && v.get("orphanDependents").and_then(Value::as_bool) == Some(true));
    let dry_run = match v.get("dryRun") {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) if a.is_empty() => false,
        Some(Value::Array(a)) if a.iter().all(|x| x.as_str() == Some("All")) => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other}: supported values: \"All\""
            )));
        }
    };
    let pre = v.get("preconditions");
    Ok(DeleteOptions {
        grace_period_seconds: grace,
        precondition_uid: pre
            .and_then(|p| p.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_rv: pre
            .and_then(|p| p.get("resourceVersion"))
            .and_then(Value::as_str)
            .map(str::to_string),
        orphan,
        dry_run,
    })
}

fn is_pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
}

/// Pods whose disruption has already happened (terminal, pending, terminating) are deleted
/// without looking at budgets.
fn can_ignore_pdb(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed" | "Pending")
    ) || meta_str(pod, "deletionTimestamp").is_some()
}

fn status_i64(pdb: &Value, field: &str) -> i64 {
    pdb.get("status")
        .and_then(|s| s.get(field))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn too_many_requests(message: String) -> ApiError {
    ApiError::too_many_requests(
        PDB_VIOLATION,
        json!({"reason": "DisruptionBudget", "message": message}),
    )
}

/// POST pods/{name}/eviction, following the real `EvictionREST.Create`: terminal, pending and
/// terminating pods go without a budget check; otherwise the one PDB matching the pod must
/// allow a disruption (more than one is a 500), and is decremented with the pod recorded in
/// `status.disruptedPods`; unready pods may go without spending budget when the PDB's
/// unhealthyPodEvictionPolicy or its current health allows. The pod then gets the
/// DisruptionTarget condition and a graceful delete with the Eviction's deleteOptions.
/// (Dry-run is handled by the caller rolling the transaction back.)
pub fn evict(tx: &mut Tx<'_>, ns: &str, name: &str, eviction: &Value) -> Result<(), ApiError> {
    let opts = match eviction.get("deleteOptions") {
        Some(o) if o.is_object() => delete_options_from(o)?,
        _ => DeleteOptions::default(),
    };
    let pod = tx.get(&resources::PODS, Some(ns), name)?;
    check_preconditions(&pod, &opts, name)?;
    if !can_ignore_pdb(&pod) {
        let pdbs = matching_pdbs(tx, ns, &pod);
        if pdbs.len() > 1 {
            return Err(ApiError::new(
                500,
                "",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        if let Some(pdb) = pdbs.into_iter().next() {
            let unhealthy_ok = !is_pod_ready(&pod)
                && (pdb
                    .pointer("/spec/unhealthyPodEvictionPolicy")
                    .and_then(Value::as_str)
                    == Some("AlwaysAllow")
                    || (status_i64(&pdb, "currentHealthy") >= status_i64(&pdb, "desiredHealthy")
                        && status_i64(&pdb, "desiredHealthy") > 0));
            if !unhealthy_ok {
                check_and_decrement(tx, ns, name, &pdb)?;
            }
        }
    }
    add_disruption_condition(tx, ns, name)?;
    let del = DeleteOptions {
        precondition_uid: None,
        precondition_rv: None,
        dry_run: false,
        ..opts
    };
    tx.delete(&resources::PODS, Some(ns), name, &del)?;
    Ok(())
}

fn check_preconditions(pod: &Value, opts: &DeleteOptions, name: &str) -> Result<(), ApiError> {
    if let Some(uid) = &opts.precondition_uid
        && meta_str(pod, "uid") != Some(uid.as_str())
    {
        return Err(ApiError::conflict("", "pods", name).with_message(format!(
            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
            meta_str(pod, "uid").unwrap_or("")
        )));
    }
    if let Some(rv) = &opts.precondition_rv
        && meta_str(pod, "resourceVersion") != Some(rv.as_str())
    {
        return Err(ApiError::conflict("", "pods", name).with_message(format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta_str(pod, "resourceVersion").unwrap_or("")
            )));
    }
    Ok(())
}

/// PDBs in the pod's namespace whose selector matches the pod. A nil or empty selector matches
/// nothing here (unlike elsewhere in policy/v1), and a pod without labels has none.
fn matching_pdbs(tx: &Tx<'_>, ns: &str, pod: &Value) -> Vec<Value> {
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    if labels.is_none_or(Map::is_empty) {
        return Vec::new();
    }
    tx.list(
        &resources::PODDISRUPTIONBUDGETS,
        Some(ns),
        &ListOptions::default(),
    )
    .into_iter()
    .filter(|pdb| {
        let Some(sel) = pdb.pointer("/spec/selector").filter(|s| !s.is_null()) else {
            return false;
        };
        match LabelSelector::from_object(sel) {
            Ok(s) => !s.is_empty() && s.matches(labels),
            Err(_) => false,
        }
    })
    .collect()
}

fn check_and_decrement(
    tx: &mut Tx<'_>,
    ns: &str,
    pod_name: &str,
    pdb: &Value,
) -> Result<(), ApiError> {
    let pdb_name = name_of(pdb).to_string();
    let generation = pdb
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if status_i64(pdb, "observedGeneration") < generation {
        return Err(too_many_requests(format!(
            "The disruption budget {pdb_name} is still being processed by the server."
        )));
    }
    let allowed = status_i64(pdb, "disruptionsAllowed");
    if allowed < 0 {
        return Err(forbidden(
            &resources::PODDISRUPTIONBUDGETS,
            &pdb_name,
            "pdb disruptions allowed is negative",
        ));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, Map::len);
    if disrupted > 2000 {
        return Err(forbidden(
            &resources::PODDISRUPTIONBUDGETS,
            &pdb_name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(too_many_requests(format!(
            "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
            status_i64(pdb, "desiredHealthy"),
            status_i64(pdb, "currentHealthy")
        )));
    }
    let now = Clock::now_rfc3339();
    tx.modify(&resources::PODDISRUPTIONBUDGETS, Some(ns), &pdb_name, |p| {
        let status = child(p, "status");
        status.insert("disruptionsAllowed".into(), json!(allowed - 1));
        let dp = status.entry("disruptedPods").or_insert_with(|| json!({}));
        if !dp.is_object() {
            *dp = json!({});
        }
        dp[pod_name] = json!(now);
        if allowed - 1 == 0 {
            set_condition(
                status,
                json!({"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods", "message": "", "observedGeneration": generation}),
                &now,
            );
        }
        Ok(())
    })?;
    Ok(())
}

fn add_disruption_condition(tx: &mut Tx<'_>, ns: &str, name: &str) -> Result<(), ApiError> {
    let now = Clock::now_rfc3339();
    tx.modify(&resources::PODS, Some(ns), name, |p| {
        set_condition(
            child(p, "status"),
            json!({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}),
            &now,
        );
        Ok(())
    })?;
    Ok(())
}

/// Upsert a condition by type; `lastTransitionTime` moves only when the status changes.
fn set_condition(status: &mut Map<String, Value>, mut cond: Value, now: &str) {
    let conds = status.entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let list = conds.as_array_mut().expect("just made an array");
    let ty = cond.get("type").cloned();
    match list.iter_mut().find(|c| c.get("type") == ty.as_ref()) {
        Some(existing) => {
            let changed = existing.get("status") != cond.get("status");
            let ltt = if changed {
                json!(now)
            } else {
                existing
                    .get("lastTransitionTime")
                    .cloned()
                    .unwrap_or(json!(now))
            };
            cond["lastTransitionTime"] = ltt;
            if existing.get("lastProbeTime").is_some() {
                cond["lastProbeTime"] = Value::Null;
            }
            *existing = cond;
        }
        None => {
            cond["lastTransitionTime"] = json!(now);
            list.push(cond);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Binding

/// POST pods/{name}/binding: bind a pod that has no node yet (409 otherwise), recording the
/// PodScheduled condition and the Binding's annotations.
pub fn bind(tx: &mut Tx<'_>, ns: &str, name: &str, binding: &Value) -> Result<(), ApiError> {
    if let Some(bname) = meta_str(binding, "name").filter(|n| !n.is_empty())
        && bname != name
    {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Binding object",
        ));
    }
    let target = binding.get("target").unwrap_or(&Value::Null);
    let node = target
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut errs = Vec::new();
    if node.is_empty() {
        errs.push(FieldError::required("target.name"));
    }
    if let Some(kind) = target
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty() && *k != "Node")
    {
        errs.push(FieldError::invalid(
            "target.kind",
            &json!(kind),
            "must be empty or 'Node'",
        ));
    }
    if !errs.is_empty() {
        let mut e = invalid(&resources::PODS, name, errs);
        e.message = e.message.replacen("Pod \"", "Binding \"", 1);
        return Err(e);
    }
    let pod = tx.get(&resources::PODS, Some(ns), name)?;
    let conflict = |msg: String| {
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on pods/binding \"{name}\": {msg}"),
        )
        .with_details(json!({"name": name, "kind": "pods/binding"}))
    };
    if let Some(uid) = meta_str(binding, "uid").filter(|u| !u.is_empty())
        && meta_str(&pod, "uid") != Some(uid)
    {
        return Err(conflict(format!(
            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
            meta_str(&pod, "uid").unwrap_or("")
        )));
    }
    if meta_str(&pod, "deletionTimestamp").is_some() {
        return Err(conflict(format!(
            "pod {name} is being deleted, cannot be assigned to a host"
        )));
    }
    if let Some(current) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Err(conflict(format!(
            "pod {name} is already assigned to node \"{current}\""
        )));
    }
    if pod
        .pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty())
    {
        return Err(conflict(format!(
            "pod {name} has non-empty .spec.schedulingGates"
        )));
    }
    let annotations = binding
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned();
    let now = Clock::now_rfc3339();
    tx.modify(&resources::PODS, Some(ns), name, |p| {
        child(p, "spec").insert("nodeName".into(), json!(node));
        if let Some(a) = annotations {
            let meta = child(p, "metadata");
            let ann = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(ann) = ann.as_object_mut() {
                ann.extend(a);
            }
        }
        set_condition(
            child(p, "status"),
            json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null}),
            &now,
        );
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_exactly() {
        assert_eq!(parse_quantity("100m"), Some(100_000_000));
        assert_eq!(parse_quantity("0.1"), parse_quantity("100m"));
        assert_eq!(parse_quantity("1Gi"), Some((1i128 << 30) * 1_000_000_000));
        assert_eq!(parse_quantity("1Gi"), parse_quantity("1073741824"));
        assert_eq!(parse_quantity("2e3"), parse_quantity("2k"));
        assert_eq!(parse_quantity("abc"), None);
        assert_eq!(parse_quantity(""), None);
    }

    #[test]
    fn qos_classes() {
        let spec = |c: Value| {
            json!({"containers": [c]})
                .as_object()
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(qos_class(&spec(json!({"name": "a"}))), "BestEffort");
        assert_eq!(
            qos_class(&spec(json!({"resources": {"requests": {"cpu": "1"}}}))),
            "Burstable"
        );
        assert_eq!(
            qos_class(&spec(
                json!({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}})
            )),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&spec(
                json!({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}})
            )),
            "Burstable"
        );
    }

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

    #[test]
    fn pod_updates_allow_only_added_tolerations() {
        let mut old = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x:1"}]}});
        pod_spec_defaults(child(&mut old, "spec"));
        let mut added = old.clone();
        if let Some(t) = added["spec"]["tolerations"].as_array_mut() {
            t.push(json!({"key": "k", "operator": "Exists"}));
        }
        assert!(pod_update(&old, &mut added).is_ok());

        let mut removed = old.clone();
        if let Some(t) = removed["spec"]["tolerations"].as_array_mut() {
            t.remove(0);
        }
        // The removed default toleration is re-added by defaulting, so removing it is a no-op...
        assert!(pod_update(&old, &mut removed).is_ok());
        // ...but removing a user toleration is not.
        let mut removed_user = old.clone();
        removed_user["spec"]["tolerations"] = json!([]);
        let e = pod_update(&added, &mut removed_user).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .contains("spec.tolerations: Forbidden: existing toleration can not be modified"),
            "{}",
            e.message
        );

        let mut image = old.clone();
        image["spec"]["containers"][0]["image"] = json!("x:2");
        assert!(pod_update(&old, &mut image).is_ok());

        let mut node = old.clone();
        node["spec"]["nodeName"] = json!("n1");
        let e = pod_update(&old, &mut node).unwrap_err();
        assert!(e.message.starts_with("Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"), "{}", e.message);
    }
}
