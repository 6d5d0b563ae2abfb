//! Server-side printing: `meta.k8s.io/v1` Table objects with the columns and cell values the
//! real server's printers (`pkg/printers/internalversion`) produce, so `kubectl get` output
//! (including `-o wide`, which shows the priority-1 columns) looks like a real cluster's.
//! The server always computes every column; kubectl hides priority-1 ones unless asked.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::resources::ResourceDef;
use crate::selectors::LabelSelector;

/// Which object each row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

/// One column: name, type, format, priority, description.
type Col = (&'static str, &'static str, &'static str, u8, &'static str);

const NAME: Col = (
    "Name",
    "string",
    "name",
    0,
    "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
);
const AGE: Col = (
    "Age",
    "string",
    "",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
);
const CONTAINERS: Col = (
    "Containers",
    "string",
    "",
    1,
    "Names of each container in the template.",
);
const IMAGES: Col = (
    "Images",
    "string",
    "",
    1,
    "Images referenced by each container in the template.",
);
const SELECTOR: Col = (
    "Selector",
    "string",
    "",
    1,
    "A label query over pods that should match the replica count.",
);

fn columns(r: &ResourceDef) -> &'static [Col] {
    match (r.group, r.kind) {
        ("", "Pod") => &[
            NAME,
            (
                "Ready",
                "string",
                "",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            (
                "Status",
                "string",
                "",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            (
                "Restarts",
                "string",
                "",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            ("IP", "string", "", 1, "podIP address allocated to the pod."),
            (
                "Node",
                "string",
                "",
                1,
                "NodeName indicates in which node this pod is scheduled.",
            ),
            (
                "Nominated Node",
                "string",
                "",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node.",
            ),
            (
                "Readiness Gates",
                "string",
                "",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        ("", "Node") => &[
            NAME,
            ("Status", "string", "", 0, "The status of the node"),
            ("Roles", "string", "", 0, "The roles of the node"),
            AGE,
            (
                "Version",
                "string",
                "",
                0,
                "Kubelet Version reported by the node.",
            ),
            (
                "Internal-IP",
                "string",
                "",
                1,
                "List of addresses reachable to the node.",
            ),
            (
                "External-IP",
                "string",
                "",
                1,
                "List of addresses reachable to the node.",
            ),
            (
                "OS-Image",
                "string",
                "",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            (
                "Kernel-Version",
                "string",
                "",
                1,
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            (
                "Container-Runtime",
                "string",
                "",
                1,
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ],
        ("", "Namespace") => &[
            NAME,
            ("Status", "string", "", 0, "The status of the namespace"),
            AGE,
        ],
        ("", "Event") | ("events.k8s.io", "Event") => &[
            (
                "Last Seen",
                "string",
                "",
                0,
                "The time at which the most recent occurrence of this event was recorded.",
            ),
            (
                "Type",
                "string",
                "",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future",
            ),
            (
                "Reason",
                "string",
                "",
                0,
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            (
                "Object",
                "string",
                "",
                0,
                "The object that this event is about.",
            ),
            (
                "Subobject",
                "string",
                "",
                1,
                "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.",
            ),
            (
                "Source",
                "string",
                "",
                1,
                "The component reporting this event. Should be a short machine understandable string.",
            ),
            (
                "Message",
                "string",
                "",
                0,
                "A human-readable description of the status of this operation.",
            ),
            (
                "First Seen",
                "string",
                "",
                1,
                "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
            ),
            (
                "Count",
                "string",
                "",
                1,
                "The number of times this event has occurred.",
            ),
            ("Name", "string", "name", 1, NAME.4),
        ],
        ("", "Service") => &[
            NAME,
            (
                "Type",
                "string",
                "",
                0,
                "type determines how the Service is exposed.",
            ),
            (
                "Cluster-IP",
                "string",
                "",
                0,
                "clusterIP is the IP address of the service and is usually assigned randomly.",
            ),
            (
                "External-IP",
                "string",
                "",
                0,
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            (
                "Port(s)",
                "string",
                "",
                0,
                "The list of ports that are exposed by this service.",
            ),
            AGE,
            (
                "Selector",
                "string",
                "",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        ("", "ConfigMap") => &[
            NAME,
            (
                "Data",
                "string",
                "",
                0,
                "Data contains the configuration data.",
            ),
            AGE,
        ],
        ("", "ServiceAccount") => &[
            NAME,
            (
                "Secrets",
                "string",
                "",
                0,
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            AGE,
        ],
        ("apps", "Deployment") => &[
            NAME,
            (
                "Ready",
                "string",
                "",
                0,
                "Number of the pod with ready state",
            ),
            (
                "Up-to-date",
                "string",
                "",
                0,
                "Total number of non-terminating pods targeted by this deployment that have the desired template spec.",
            ),
            (
                "Available",
                "string",
                "",
                0,
                "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        ("apps", "ReplicaSet") => &[
            NAME,
            (
                "Desired",
                "integer",
                "",
                0,
                "Replicas is the number of desired pods.",
            ),
            (
                "Current",
                "integer",
                "",
                0,
                "Replicas is the most recently observed number of non-terminating pods.",
            ),
            (
                "Ready",
                "integer",
                "",
                0,
                "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        ("apps", "DaemonSet") => &[
            NAME,
            (
                "Desired",
                "integer",
                "",
                0,
                "The total number of nodes that should be running the daemon pod.",
            ),
            (
                "Current",
                "integer",
                "",
                0,
                "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
            ),
            (
                "Ready",
                "integer",
                "",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
            ),
            (
                "Up-to-date",
                "integer",
                "",
                0,
                "The total number of nodes that are running updated daemon pod",
            ),
            (
                "Available",
                "integer",
                "",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
            ),
            (
                "Node Selector",
                "string",
                "",
                0,
                "NodeSelector is a selector which must be true for the pod to fit on a node.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        ("apps", "StatefulSet") => &[
            NAME,
            (
                "Ready",
                "string",
                "",
                0,
                "Number of the pod with ready state",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
        ],
        ("policy", "PodDisruptionBudget") => &[
            NAME,
            (
                "Min Available",
                "string",
                "",
                0,
                "The minimum number of pods that must be available.",
            ),
            (
                "Max Unavailable",
                "string",
                "",
                0,
                "The maximum number of pods that may be unavailable.",
            ),
            (
                "Allowed Disruptions",
                "integer",
                "",
                0,
                "Calculated number of pods that may be disrupted at this time.",
            ),
            AGE,
        ],
        ("scheduling.k8s.io", "PriorityClass") => &[
            NAME,
            (
                "Value",
                "integer",
                "",
                0,
                "value represents the integer value of this priority class.",
            ),
            (
                "Global-Default",
                "boolean",
                "",
                0,
                "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class.",
            ),
            AGE,
            (
                "PreemptionPolicy",
                "string",
                "",
                0,
                "preemptionPolicy is the Policy for preempting pods with lower priority.",
            ),
        ],
        ("coordination.k8s.io", "Lease") => &[
            NAME,
            (
                "Holder",
                "string",
                "",
                0,
                "holderIdentity contains the identity of the holder of a current lease.",
            ),
            AGE,
        ],
        ("discovery.k8s.io", "EndpointSlice") => &[
            NAME,
            (
                "AddressType",
                "string",
                "",
                0,
                "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name.",
            ),
            (
                "Ports",
                "string",
                "",
                0,
                "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. When ports is empty, it indicates that there are no defined ports. When a port is defined with a nil port value, it indicates \"all ports\". Each slice may include a maximum of 100 ports.",
            ),
            (
                "Endpoints",
                "string",
                "",
                0,
                "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.",
            ),
            AGE,
        ],
        ("networking.k8s.io", "Ingress") => &[
            NAME,
            (
                "Class",
                "string",
                "",
                0,
                "The name of the IngressClass resource that should be used for additional configuration",
            ),
            (
                "Hosts",
                "string",
                "",
                0,
                "Hosts that incoming requests are matched against before the ingress rule",
            ),
            (
                "Address",
                "string",
                "",
                0,
                "Address is a list containing ingress points for the load-balancer",
            ),
            (
                "Ports",
                "string",
                "",
                0,
                "Ports of TLS configurations that open",
            ),
            AGE,
        ],
        ("networking.k8s.io", "IngressClass") => &[
            NAME,
            (
                "Controller",
                "string",
                "",
                0,
                "Controller that is responsible for handling this class",
            ),
            (
                "Parameters",
                "string",
                "",
                0,
                "A reference to a resource with additional parameters",
            ),
            AGE,
        ],
        _ => &[NAME, ("Created At", "date", "", 0, AGE.4)],
    }
}

/// The `columnDefinitions` of `r`'s Table.
pub fn column_definitions(r: &ResourceDef) -> Value {
    Value::Array(
        columns(r)
            .iter()
            .map(|(name, ty, format, priority, desc)| {
                json!({"name": name, "type": ty, "format": format, "description": desc, "priority": priority})
            })
            .collect(),
    )
}

/// A Table of `objs`. `with_columns` is false for watch events after the first (the real
/// server omits the definitions there and kubectl reuses the previous ones).
pub fn render<'a>(
    r: &ResourceDef,
    api_version: &str,
    objs: impl IntoIterator<Item = &'a Value>,
    resource_version: Option<String>,
    include: Include,
    with_columns: bool,
) -> Value {
    let now = Utc::now();
    let rows: Vec<Value> = objs.into_iter().map(|o| row(r, o, include, now)).collect();
    let mut meta = Map::new();
    if let Some(rv) = resource_version {
        meta.insert("resourceVersion".into(), json!(rv));
    }
    let mut t = json!({"kind": "Table", "apiVersion": api_version, "metadata": meta, "rows": rows});
    t["columnDefinitions"] = if with_columns {
        column_definitions(r)
    } else {
        Value::Array(Vec::new())
    };
    t
}

fn row(r: &ResourceDef, obj: &Value, include: Include, now: DateTime<Utc>) -> Value {
    let (cells, conditions) = cells(r, obj, now);
    let mut row = json!({"cells": cells});
    if let Some(c) = conditions {
        row["conditions"] = c;
    }
    match include {
        Include::None => {}
        Include::Object => row["object"] = obj.clone(),
        Include::Metadata => row["object"] = partial_metadata(obj),
    }
    row
}

/// An object reduced to a `meta.k8s.io/v1` PartialObjectMetadata.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn s<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn i(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(obj: &'a Value, ptr: &str) -> &'a [Value] {
    obj.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.into()
    }
}

fn cells(r: &ResourceDef, o: &Value, now: DateTime<Utc>) -> (Vec<Value>, Option<Value>) {
    let name = s(o, "/metadata/name");
    let age = since(s(o, "/metadata/creationTimestamp"), now);
    let c: Vec<Value> = match (r.group, r.kind) {
        ("", "Pod") => return pod_cells(o, now),
        ("", "Node") => {
            let ready = arr(o, "/status/conditions")
                .iter()
                .find(|c| s(c, "/type") == "Ready");
            let mut status = vec![match ready {
                Some(c) if s(c, "/status") == "True" => "Ready",
                Some(_) => "NotReady",
                None => "Unknown",
            }];
            if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                status.push("SchedulingDisabled");
            }
            let mut roles: Vec<String> = o
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
                    Some(role) if !role.is_empty() => Some(role.to_string()),
                    Some(_) => None,
                    None if k == "kubernetes.io/role" => {
                        v.as_str().filter(|v| !v.is_empty()).map(str::to_string)
                    }
                    None => None,
                })
                .collect();
            roles.sort();
            roles.dedup();
            let address = |ty: &str| {
                arr(o, "/status/addresses")
                    .iter()
                    .find(|a| s(a, "/type") == ty)
                    .map(|a| s(a, "/address").to_string())
                    .unwrap_or_else(|| "<none>".into())
            };
            let unknown = |v: &str| {
                if v.is_empty() {
                    "<unknown>".to_string()
                } else {
                    v.to_string()
                }
            };
            vec![
                json!(name),
                json!(status.join(",")),
                json!(or_none(&roles.join(","))),
                json!(age),
                json!(s(o, "/status/nodeInfo/kubeletVersion")),
                json!(address("InternalIP")),
                json!(address("ExternalIP")),
                json!(unknown(s(o, "/status/nodeInfo/osImage"))),
                json!(unknown(s(o, "/status/nodeInfo/kernelVersion"))),
                json!(unknown(s(o, "/status/nodeInfo/containerRuntimeVersion"))),
            ]
        }
        ("", "Namespace") => vec![json!(name), json!(s(o, "/status/phase")), json!(age)],
        ("", "Event") => event_cells(o, now, false),
        ("events.k8s.io", "Event") => event_cells(o, now, true),
        ("", "Service") => {
            let ty = s(o, "/spec/type");
            let cluster_ip = arr(o, "/spec/clusterIPs")
                .first()
                .and_then(Value::as_str)
                .unwrap_or(s(o, "/spec/clusterIP"));
            let ports: Vec<String> = arr(o, "/spec/ports")
                .iter()
                .map(|p| {
                    let proto = if s(p, "/protocol").is_empty() {
                        "TCP"
                    } else {
                        s(p, "/protocol")
                    };
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(np) if np != 0 => format!("{}:{}/{}", i(p, "/port"), np, proto),
                        _ => format!("{}/{}", i(p, "/port"), proto),
                    }
                })
                .collect();
            vec![
                json!(name),
                json!(ty),
                json!(or_none(cluster_ip)),
                json!(service_external_ip(o)),
                json!(or_none(&ports.join(","))),
                json!(age),
                json!(format_labels(o.pointer("/spec/selector"))),
            ]
        }
        ("", "ConfigMap") => {
            let n = o.get("data").and_then(Value::as_object).map_or(0, Map::len)
                + o.get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, Map::len);
            vec![json!(name), json!(n), json!(age)]
        }
        ("", "ServiceAccount") => vec![json!(name), json!(arr(o, "/secrets").len()), json!(age)],
        ("apps", "Deployment") => {
            let (containers, images) = container_cells(o);
            vec![
                json!(name),
                json!(format!(
                    "{}/{}",
                    i(o, "/status/readyReplicas"),
                    i(o, "/spec/replicas")
                )),
                json!(i(o, "/status/updatedReplicas")),
                json!(i(o, "/status/availableReplicas")),
                json!(age),
                json!(containers),
                json!(images),
                json!(selector_string(o)),
            ]
        }
        ("apps", "ReplicaSet") => {
            let (containers, images) = container_cells(o);
            vec![
                json!(name),
                json!(i(o, "/spec/replicas")),
                json!(i(o, "/status/replicas")),
                json!(i(o, "/status/readyReplicas")),
                json!(age),
                json!(containers),
                json!(images),
                json!(selector_string(o)),
            ]
        }
        ("apps", "DaemonSet") => {
            let (containers, images) = container_cells(o);
            vec![
                json!(name),
                json!(i(o, "/status/desiredNumberScheduled")),
                json!(i(o, "/status/currentNumberScheduled")),
                json!(i(o, "/status/numberReady")),
                json!(i(o, "/status/updatedNumberScheduled")),
                json!(i(o, "/status/numberAvailable")),
                json!(format_labels(o.pointer("/spec/template/spec/nodeSelector"))),
                json!(age),
                json!(containers),
                json!(images),
                json!(selector_string(o)),
            ]
        }
        ("apps", "StatefulSet") => {
            let (containers, images) = container_cells(o);
            vec![
                json!(name),
                json!(format!(
                    "{}/{}",
                    i(o, "/status/readyReplicas"),
                    i(o, "/spec/replicas")
                )),
                json!(age),
                json!(containers),
                json!(images),
            ]
        }
        ("policy", "PodDisruptionBudget") => {
            let int_or_string = |ptr: &str| match o.pointer(ptr) {
                Some(Value::String(v)) => v.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => "N/A".into(),
            };
            vec![
                json!(name),
                json!(int_or_string("/spec/minAvailable")),
                json!(int_or_string("/spec/maxUnavailable")),
                json!(i(o, "/status/disruptionsAllowed")),
                json!(age),
            ]
        }
        ("scheduling.k8s.io", "PriorityClass") => vec![
            json!(name),
            json!(i(o, "/value")),
            json!(
                o.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            json!(age),
            json!(s(o, "/preemptionPolicy")),
        ],
        ("coordination.k8s.io", "Lease") => {
            vec![json!(name), json!(s(o, "/spec/holderIdentity")), json!(age)]
        }
        ("discovery.k8s.io", "EndpointSlice") => vec![
            json!(name),
            json!(s(o, "/addressType")),
            json!(discovery_ports(arr(o, "/ports"))),
            json!(discovery_endpoints(arr(o, "/endpoints"))),
            json!(age),
        ],
        ("networking.k8s.io", "Ingress") => {
            let class = match s(o, "/spec/ingressClassName") {
                "" => "<none>",
                c => c,
            };
            let ports = if arr(o, "/spec/tls").is_empty() {
                "80"
            } else {
                "80, 443"
            };
            vec![
                json!(name),
                json!(class),
                json!(ingress_hosts(arr(o, "/spec/rules"))),
                json!(ingress_address(o)),
                json!(ports),
                json!(age),
            ]
        }
        ("networking.k8s.io", "IngressClass") => {
            let params = match o.pointer("/spec/parameters").filter(|p| p.is_object()) {
                Some(p) => {
                    let group = match s(p, "/apiGroup") {
                        "" => String::new(),
                        g => format!(".{g}"),
                    };
                    format!("{}{group}/{}", s(p, "/kind"), s(p, "/name"))
                }
                None => "<none>".into(),
            };
            vec![
                json!(name),
                json!(s(o, "/spec/controller")),
                json!(params),
                json!(age),
            ]
        }
        _ => vec![json!(name), json!(s(o, "/metadata/creationTimestamp"))],
    };
    (c, None)
}

/// `printPod`: READY, STATUS (with the init-container, waiting/terminated reasons and
/// Terminating), RESTARTS with the last restart age, and the wide columns.
fn pod_cells(pod: &Value, now: DateTime<Utc>) -> (Vec<Value>, Option<Value>) {
    let phase = s(pod, "/status/phase");
    let mut reason = if s(pod, "/status/reason").is_empty() {
        phase.to_string()
    } else {
        s(pod, "/status/reason").to_string()
    };
    let conditions = arr(pod, "/status/conditions");
    if conditions
        .iter()
        .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let row_conditions = match phase {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    };
    let init_specs = arr(pod, "/spec/initContainers");
    let restartable = |name: &str| {
        init_specs
            .iter()
            .any(|c| s(c, "/name") == name && s(c, "/restartPolicy") == "Always")
    };
    let total = arr(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| s(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_sidecar_restart: Option<DateTime<Utc>> = None;
    let finished = |c: &Value| parse_time(s(c, "/lastState/terminated/finishedAt"));
    let mut initializing = false;
    let init_statuses = arr(pod, "/status/initContainerStatuses");
    for (idx, c) in init_statuses.iter().enumerate() {
        restarts += i(c, "/restartCount");
        if let Some(t) = finished(c) {
            last_restart = last_restart.max(Some(t));
        }
        let is_sidecar = restartable(s(c, "/name"));
        if is_sidecar {
            sidecar_restarts += i(c, "/restartCount");
            if let Some(t) = finished(c) {
                last_sidecar_restart = last_sidecar_restart.max(Some(t));
            }
        }
        let terminated = c.pointer("/state/terminated");
        let waiting_reason = s(c, "/state/waiting/reason");
        if terminated.is_some() && i(c, "/state/terminated/exitCode") == 0 {
            continue;
        }
        if is_sidecar && c.get("started").and_then(Value::as_bool) == Some(true) {
            if c.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            reason = if s(t, "/reason").is_empty() {
                if i(t, "/signal") != 0 {
                    format!("Init:Signal:{}", i(t, "/signal"))
                } else {
                    format!("Init:ExitCode:{}", i(t, "/exitCode"))
                }
            } else {
                format!("Init:{}", s(t, "/reason"))
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{idx}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    let initialized = conditions
        .iter()
        .any(|c| s(c, "/type") == "Initialized" && s(c, "/status") == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += i(c, "/restartCount");
            if let Some(t) = finished(c) {
                last_restart = last_restart.max(Some(t));
            }
            let waiting = s(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated.filter(|t| !s(t, "/reason").is_empty()) {
                reason = s(t, "/reason").to_string();
            } else if let Some(t) = terminated {
                reason = if i(t, "/signal") != 0 {
                    format!("Signal:{}", i(t, "/signal"))
                } else {
                    format!("ExitCode:{}", i(t, "/exitCode"))
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True");
            reason = if pod_ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    if deleting && s(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && !matches!(phase, "Succeeded" | "Failed") {
        reason = "Terminating".into();
    }
    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };
    let ip = arr(pod, "/status/podIPs")
        .first()
        .map(|p| s(p, "/ip"))
        .filter(|v| !v.is_empty())
        .unwrap_or(s(pod, "/status/podIP"));
    let gates = arr(pod, "/spec/readinessGates");
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let ok = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .any(|c| s(c, "/type") == s(g, "/conditionType") && s(c, "/status") == "True")
            })
            .count();
        format!("{ok}/{}", gates.len())
    };
    let cells = vec![
        json!(s(pod, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        json!(since(s(pod, "/metadata/creationTimestamp"), now)),
        json!(or_none(ip)),
        json!(or_none(s(pod, "/spec/nodeName"))),
        json!(or_none(s(pod, "/status/nominatedNodeName"))),
        json!(gates_cell),
    ];
    (cells, row_conditions)
}

/// `printEvent` for core/v1 and (`new_api`) events.k8s.io/v1 field names.
fn event_cells(e: &Value, now: DateTime<Utc>, new_api: bool) -> Vec<Value> {
    let f = |core: &str, new: &str| if new_api { s(e, new) } else { s(e, core) };
    let first = if f("/firstTimestamp", "/deprecatedFirstTimestamp").is_empty() {
        since(s(e, "/eventTime"), now)
    } else {
        since(f("/firstTimestamp", "/deprecatedFirstTimestamp"), now)
    };
    let mut last = if f("/lastTimestamp", "/deprecatedLastTimestamp").is_empty() {
        first.clone()
    } else {
        since(f("/lastTimestamp", "/deprecatedLastTimestamp"), now)
    };
    let mut count = e
        .pointer(if new_api {
            "/deprecatedCount"
        } else {
            "/count"
        })
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(series) = e.get("series").filter(|v| v.is_object()) {
        last = since(s(series, "/lastObservedTime"), now);
        count = i(series, "/count");
    } else if count == 0 {
        count = 1;
    }
    let obj = if new_api {
        "/regarding"
    } else {
        "/involvedObject"
    };
    let kind = s(e, &format!("{obj}/kind")).to_lowercase();
    let oname = s(e, &format!("{obj}/name"));
    let target = if oname.is_empty() {
        kind
    } else {
        format!("{kind}/{oname}")
    };
    let component = if f("/source/component", "/deprecatedSource/component").is_empty() {
        s(e, "/reportingController").to_string()
    } else {
        f("/source/component", "/deprecatedSource/component").to_string()
    };
    let component = if component.is_empty() && !new_api {
        s(e, "/reportingComponent").to_string()
    } else {
        component
    };
    let host = if f("/source/host", "/deprecatedSource/host").is_empty() {
        s(e, "/reportingInstance")
    } else {
        f("/source/host", "/deprecatedSource/host")
    };
    let source = if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(s(e, "/type")),
        json!(s(e, "/reason")),
        json!(target),
        json!(s(e, &format!("{obj}/fieldPath"))),
        json!(source),
        json!(f("/message", "/note").trim()),
        json!(first),
        json!(count),
        json!(s(e, "/metadata/name")),
    ]
}

fn service_external_ip(svc: &Value) -> String {
    let external: Vec<&str> = arr(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match s(svc, "/spec/type") {
        "ExternalName" => s(svc, "/spec/externalName").to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<&str> = arr(svc, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| {
                    if s(i, "/ip").is_empty() {
                        s(i, "/hostname")
                    } else {
                        s(i, "/ip")
                    }
                })
                .filter(|v| !v.is_empty())
                .collect();
            ips.extend(external);
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        _ => or_none(&external.join(",")),
    }
}

/// `listWithMoreString`: at most three items, then `+ N more...`; `<unset>` when empty.
fn list_with_more(items: Vec<String>) -> String {
    const MAX: usize = 3;
    let count = items.len();
    let shown = items.into_iter().take(MAX).collect::<Vec<_>>().join(",");
    if count > MAX {
        format!("{shown} + {} more...", count - MAX)
    } else if shown.is_empty() {
        "<unset>".into()
    } else {
        shown
    }
}

/// `formatDiscoveryPorts`: port numbers (a port without a number shows its name, or `*`).
fn discovery_ports(ports: &[Value]) -> String {
    list_with_more(
        ports
            .iter()
            .map(|p| match p.get("port").and_then(Value::as_i64) {
                Some(n) => n.to_string(),
                None => p
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("*")
                    .to_string(),
            })
            .collect(),
    )
}

/// `formatDiscoveryEndpoints`: every address of every endpoint.
fn discovery_endpoints(endpoints: &[Value]) -> String {
    list_with_more(
        endpoints
            .iter()
            .flat_map(|e| arr(e, "/addresses").iter())
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
    )
}

/// `formatHosts`: up to three rule hosts, `*` when no rule names one.
fn ingress_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for r in rules {
        if list.len() == MAX {
            more = true;
        }
        if !more && !s(r, "/host").is_empty() {
            list.push(s(r, "/host"));
        }
    }
    if list.is_empty() {
        "*".into()
    } else if more {
        format!("{} + {} more...", list.join(","), rules.len() - MAX)
    } else {
        list.join(",")
    }
}

/// The load balancer addresses of an Ingress (IPs, else hostnames), sorted and unique as
/// the printer's string set renders them.
fn ingress_address(o: &Value) -> String {
    let mut set: Vec<&str> = arr(o, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| match s(i, "/ip") {
            "" => s(i, "/hostname"),
            ip => ip,
        })
        .filter(|a| !a.is_empty())
        .collect();
    set.sort_unstable();
    set.dedup();
    set.join(",")
}

/// `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<String> = map
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    or_none(&pairs.join(","))
}

fn selector_string(o: &Value) -> String {
    match o.pointer("/spec/selector") {
        Some(sel) if !sel.is_null() => match LabelSelector::from_object(sel) {
            Ok(s) => s.to_string(),
            Err(_) => "<invalid>".into(),
        },
        // A missing selector selects nothing, which prints as "".
        _ => String::new(),
    }
}

fn container_cells(o: &Value) -> (String, String) {
    let cs = arr(o, "/spec/template/spec/containers");
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn parse_time(ts: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `translateTimestampSince`: the human age of a timestamp, `<unknown>` when absent.
pub fn since(ts: &str, now: DateTime<Utc>) -> String {
    match parse_time(ts) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

/// `duration.HumanDuration` from apimachinery.
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources;

    #[test]
    fn endpoint_slice_rows_list_ports_and_addresses_like_kubectl() {
        let eps: Vec<Value> = (1..=5)
            .map(|i| json!({"addresses": [format!("10.64.0.{i}")]}))
            .collect();
        assert_eq!(
            discovery_endpoints(&eps),
            "10.64.0.1,10.64.0.2,10.64.0.3 + 2 more..."
        );
        assert_eq!(discovery_endpoints(&[]), "<unset>");
        assert_eq!(
            discovery_ports(&[json!({"port": 8080}), json!({"name": "dns"})]),
            "8080,dns"
        );
    }

    #[test]
    fn ingress_rows_show_hosts_address_and_ports() {
        let ing = json!({"metadata": {"name": "shop", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"rules": [{"host": "a.example.com"}, {}], "tls": [{"hosts": ["a.example.com"]}]},
            "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}});
        let r = crate::resources::by_kind("networking.k8s.io/v1", "Ingress").expect("served");
        let (c, _) = cells(r, &ing, Utc::now());
        assert_eq!(
            c[..5],
            [
                json!("shop"),
                json!("<none>"),
                json!("a.example.com"),
                json!("lb.example.com"),
                json!("80, 443")
            ]
        );
    }

    #[test]
    fn human_durations_match_apimachinery() {
        let d = chrono::Duration::seconds;
        assert_eq!(human_duration(d(5)), "5s");
        assert_eq!(human_duration(d(119)), "119s");
        assert_eq!(human_duration(d(150)), "2m30s");
        assert_eq!(human_duration(d(600)), "10m");
        assert_eq!(human_duration(d(3 * 3600 + 120)), "3h2m");
        assert_eq!(human_duration(d(30 * 3600)), "30h");
        assert_eq!(human_duration(d(3 * 86400 + 3600)), "3d1h");
        assert_eq!(human_duration(d(-5)), "<invalid>");
    }

    #[test]
    fn pod_rows_show_status_and_readiness() {
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": Utc::now().to_rfc3339(), "deletionTimestamp": "2030-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ]},
        });
        let t = render(
            &resources::PODS,
            "meta.k8s.io/v1",
            [&pod],
            None,
            Include::None,
            true,
        );
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], "Terminating");
        assert_eq!(cells[3], "2");
        assert_eq!(cells[5], "10.0.0.1");
        assert_eq!(cells[6], "n1");
        assert_eq!(t["columnDefinitions"].as_array().map(Vec::len), Some(9));
    }

    #[test]
    fn cordoned_nodes_show_scheduling_disabled() {
        let node = json!({
            "metadata": {"name": "n", "labels": {"node-role.kubernetes.io/worker": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        });
        let t = render(
            &resources::NODES,
            "meta.k8s.io/v1",
            [&node],
            None,
            Include::Metadata,
            true,
        );
        assert_eq!(t["rows"][0]["cells"][1], "Ready,SchedulingDisabled");
        assert_eq!(t["rows"][0]["cells"][2], "worker");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
