//! The fields each resource lets a field selector name and how each is read from an object,
//! following the API server's per-kind field label conversion funcs.

use serde_json::Value;

use crate::resources::ResourceDef;

/// How a selectable field is read from an object: the first JSON pointer present wins, else
/// `default` (Go renders zero values: `""`, `"false"`, `"0"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Getter {
    pointers: &'static [&'static str],
    default: &'static str,
}

impl Getter {
    pub(super) fn get(&self, obj: &Value) -> String {
        for p in self.pointers {
            match obj.pointer(p) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => return s.clone(),
                Some(Value::Bool(b)) => return b.to_string(),
                Some(other) => return other.to_string(),
            }
        }
        self.default.to_string()
    }
}

const fn g(pointers: &'static [&'static str]) -> Getter {
    Getter {
        pointers,
        default: "",
    }
}

/// Resolve a field label for `res` like the API server's field label conversion funcs:
/// `(canonical field, getter)` or the real error text.
pub(super) fn resolve_field(
    res: &ResourceDef,
    field: &str,
) -> Result<(&'static str, Getter), String> {
    const NAME: (&str, Getter) = ("metadata.name", g(&["/metadata/name"]));
    const NAMESPACE: (&str, Getter) = ("metadata.namespace", g(&["/metadata/namespace"]));
    let unsupported = || format!("field label not supported: {field}");
    match (res.group, res.plural) {
        ("", "pods") => Ok(match field {
            "metadata.name" => NAME,
            "metadata.namespace" => NAMESPACE,
            // spec.host is the pre-1.0 name kept for old clients.
            "spec.nodeName" | "spec.host" => ("spec.nodeName", g(&["/spec/nodeName"])),
            "spec.restartPolicy" => ("spec.restartPolicy", g(&["/spec/restartPolicy"])),
            "spec.schedulerName" => ("spec.schedulerName", g(&["/spec/schedulerName"])),
            "spec.serviceAccountName" => {
                ("spec.serviceAccountName", g(&["/spec/serviceAccountName"]))
            }
            "spec.hostNetwork" => (
                "spec.hostNetwork",
                Getter {
                    pointers: &["/spec/hostNetwork"],
                    default: "false",
                },
            ),
            "status.phase" => ("status.phase", g(&["/status/phase"])),
            "status.podIP" => ("status.podIP", g(&["/status/podIPs/0/ip", "/status/podIP"])),
            "status.nominatedNodeName" => (
                "status.nominatedNodeName",
                g(&["/status/nominatedNodeName"]),
            ),
            _ => return Err(unsupported()),
        }),
        ("", "nodes") => Ok(match field {
            "metadata.name" => NAME,
            "spec.unschedulable" => (
                "spec.unschedulable",
                Getter {
                    pointers: &["/spec/unschedulable"],
                    default: "false",
                },
            ),
            _ => return Err(unsupported()),
        }),
        ("", "namespaces") => Ok(match field {
            "metadata.name" => NAME,
            "status.phase" => ("status.phase", g(&["/status/phase"])),
            _ => return Err(unsupported()),
        }),
        ("", "events") => Ok(match field {
            "metadata.name" => NAME,
            "metadata.namespace" => NAMESPACE,
            "involvedObject.kind" => ("involvedObject.kind", g(&["/involvedObject/kind"])),
            "involvedObject.namespace" => (
                "involvedObject.namespace",
                g(&["/involvedObject/namespace"]),
            ),
            "involvedObject.name" => ("involvedObject.name", g(&["/involvedObject/name"])),
            "involvedObject.uid" => ("involvedObject.uid", g(&["/involvedObject/uid"])),
            "involvedObject.apiVersion" => (
                "involvedObject.apiVersion",
                g(&["/involvedObject/apiVersion"]),
            ),
            "involvedObject.resourceVersion" => (
                "involvedObject.resourceVersion",
                g(&["/involvedObject/resourceVersion"]),
            ),
            "involvedObject.fieldPath" => (
                "involvedObject.fieldPath",
                g(&["/involvedObject/fieldPath"]),
            ),
            "reason" => ("reason", g(&["/reason"])),
            "reportingComponent" => ("reportingComponent", g(&["/reportingComponent"])),
            "source" => ("source", g(&["/source/component"])),
            "type" => ("type", g(&["/type"])),
            _ => return Err(unsupported()),
        }),
        ("", "services") => Ok(match field {
            "metadata.name" => NAME,
            "metadata.namespace" => NAMESPACE,
            "spec.clusterIP" => ("spec.clusterIP", g(&["/spec/clusterIP"])),
            "spec.type" => ("spec.type", g(&["/spec/type"])),
            _ => return Err(unsupported()),
        }),
        _ => Ok(match field {
            "metadata.name" => NAME,
            "metadata.namespace" => NAMESPACE,
            "status.replicas" if res.plural == "replicasets" => (
                "status.replicas",
                Getter {
                    pointers: &["/status/replicas"],
                    default: "0",
                },
            ),
            // Kinds without their own conversion func use DefaultMetaV1FieldSelectorConversion.
            _ => {
                return Err(format!(
                    "{field:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                ));
            }
        }),
    }
}
