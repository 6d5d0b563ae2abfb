//! The patch strategies of the fields our resources carry, from the `patchStrategy` and
//! `patchMergeKey` struct tags of k8s.io/api: which lists merge, by which key, and which are
//! replaced wholesale.

/// The Go struct a JSON object stands for, as far as patch strategies care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// No known strategies below: maps merge, lists replace.
    Unknown,
    /// A top-level object whose only known field is `metadata`.
    Generic,
    Pod,
    Node,
    Service,
    Namespace,
    ServiceAccount,
    /// Deployment, ReplicaSet, DaemonSet, StatefulSet.
    Workload,
    PodDisruptionBudget,
    ObjectMeta,
    PodTemplateSpec,
    PodSpec,
    Container,
    PodStatus,
    NodeSpec,
    NodeStatus,
    ServiceSpec,
    /// Any status whose only strategic list is `conditions` keyed by `type`.
    ConditionsStatus,
    WorkloadSpec,
}

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// No `patchStrategy`: the patch's list replaces the live one.
    Atomic,
    /// `patchStrategy:"merge"` on scalars (finalizers, podCIDRs): set union.
    MergePrimitive,
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`.
    MergeByKey(&'static str),
}

/// A field's element/value type and list strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub ty: Ty,
    pub list: ListStrategy,
}

const fn f(ty: Ty, list: ListStrategy) -> Field {
    Field { ty, list }
}

const UNKNOWN: Field = f(Ty::Unknown, ListStrategy::Atomic);

fn keyed(key: &'static str, ty: Ty) -> Field {
    f(ty, ListStrategy::MergeByKey(key))
}

impl Ty {
    /// The schema root for an object of `kind`.
    pub fn root(kind: &str) -> Ty {
        match kind {
            "Pod" => Ty::Pod,
            "Node" => Ty::Node,
            "Service" => Ty::Service,
            "Namespace" => Ty::Namespace,
            "ServiceAccount" => Ty::ServiceAccount,
            "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" => Ty::Workload,
            "PodDisruptionBudget" => Ty::PodDisruptionBudget,
            _ => Ty::Generic,
        }
    }

    /// The field `key` of this type.
    pub fn field(self, key: &str) -> Field {
        use ListStrategy::{Atomic, MergePrimitive};
        let is_root = matches!(
            self,
            Ty::Generic
                | Ty::Pod
                | Ty::Node
                | Ty::Service
                | Ty::Namespace
                | Ty::ServiceAccount
                | Ty::Workload
                | Ty::PodDisruptionBudget
        );
        if is_root && key == "metadata" {
            return f(Ty::ObjectMeta, Atomic);
        }
        match (self, key) {
            (Ty::Pod, "spec") => f(Ty::PodSpec, Atomic),
            (Ty::Pod, "status") => f(Ty::PodStatus, Atomic),
            (Ty::Node, "spec") => f(Ty::NodeSpec, Atomic),
            (Ty::Node, "status") => f(Ty::NodeStatus, Atomic),
            (Ty::Service, "spec") => f(Ty::ServiceSpec, Atomic),
            (Ty::Service | Ty::Namespace | Ty::Workload | Ty::PodDisruptionBudget, "status") => {
                f(Ty::ConditionsStatus, Atomic)
            }
            (Ty::ServiceAccount, "secrets") => keyed("name", Ty::Unknown),
            (Ty::Workload, "spec") => f(Ty::WorkloadSpec, Atomic),

            (Ty::ObjectMeta, "finalizers") => f(Ty::Unknown, MergePrimitive),
            (Ty::ObjectMeta, "ownerReferences") => keyed("uid", Ty::Unknown),

            (Ty::WorkloadSpec, "template") => f(Ty::PodTemplateSpec, Atomic),
            (Ty::PodTemplateSpec, "metadata") => f(Ty::ObjectMeta, Atomic),
            (Ty::PodTemplateSpec, "spec") => f(Ty::PodSpec, Atomic),

            (Ty::PodSpec, "containers" | "initContainers" | "ephemeralContainers") => {
                keyed("name", Ty::Container)
            }
            // volumes and resourceClaims are also `retainKeys`; `$retainKeys` is honoured wherever sent.
            (
                Ty::PodSpec,
                "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims",
            ) => keyed("name", Ty::Unknown),
            (Ty::PodSpec, "hostAliases") => keyed("ip", Ty::Unknown),
            (Ty::PodSpec, "topologySpreadConstraints") => keyed("topologyKey", Ty::Unknown),
            // tolerations, readinessGates: no strategy, replaced wholesale.
            (Ty::Container, "ports") => keyed("containerPort", Ty::Unknown),
            (Ty::Container, "env") => keyed("name", Ty::Unknown),
            (Ty::Container, "volumeMounts") => keyed("mountPath", Ty::Unknown),
            (Ty::Container, "volumeDevices") => keyed("devicePath", Ty::Unknown),

            (Ty::PodStatus, "conditions") => keyed("type", Ty::Unknown),
            (Ty::PodStatus, "podIPs" | "hostIPs") => keyed("ip", Ty::Unknown),
            (Ty::PodStatus, "resourceClaimStatuses") => keyed("name", Ty::Unknown),
            // containerStatuses & co. have no strategy.
            (Ty::NodeSpec, "podCIDRs") => f(Ty::Unknown, MergePrimitive),
            // NodeSpec.taints has no patch strategy: kubectl taint sends the whole list.
            (Ty::NodeStatus, "conditions" | "addresses") => keyed("type", Ty::Unknown),
            (Ty::ServiceSpec, "ports") => keyed("port", Ty::Unknown),
            (Ty::ConditionsStatus, "conditions") => keyed("type", Ty::Unknown),
            _ => UNKNOWN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_table_knows_the_real_patch_strategies() {
        use ListStrategy::*;
        let at = |path: &[&str], kind: &str| {
            path.iter()
                .fold(f(Ty::root(kind), Atomic), |fld, k| fld.ty.field(k))
                .list
        };
        let cases: &[(&str, &[&str], ListStrategy)] = &[
            ("Pod", &["spec", "containers"], MergeByKey("name")),
            ("Pod", &["spec", "initContainers"], MergeByKey("name")),
            ("Pod", &["spec", "ephemeralContainers"], MergeByKey("name")),
            ("Pod", &["spec", "volumes"], MergeByKey("name")),
            ("Pod", &["spec", "imagePullSecrets"], MergeByKey("name")),
            ("Pod", &["spec", "hostAliases"], MergeByKey("ip")),
            ("Pod", &["spec", "tolerations"], Atomic),
            (
                "Pod",
                &["spec", "containers", "ports"],
                MergeByKey("containerPort"),
            ),
            ("Pod", &["spec", "containers", "env"], MergeByKey("name")),
            (
                "Pod",
                &["spec", "containers", "volumeMounts"],
                MergeByKey("mountPath"),
            ),
            (
                "Pod",
                &["spec", "containers", "volumeDevices"],
                MergeByKey("devicePath"),
            ),
            ("Pod", &["spec", "containers", "args"], Atomic),
            ("Pod", &["status", "conditions"], MergeByKey("type")),
            ("Pod", &["status", "podIPs"], MergeByKey("ip")),
            ("Pod", &["status", "containerStatuses"], Atomic),
            ("Pod", &["metadata", "finalizers"], MergePrimitive),
            ("Pod", &["metadata", "ownerReferences"], MergeByKey("uid")),
            ("Node", &["spec", "taints"], Atomic),
            ("Node", &["spec", "podCIDRs"], MergePrimitive),
            ("Node", &["status", "conditions"], MergeByKey("type")),
            ("Node", &["status", "addresses"], MergeByKey("type")),
            ("Service", &["spec", "ports"], MergeByKey("port")),
            ("ServiceAccount", &["secrets"], MergeByKey("name")),
            ("Deployment", &["status", "conditions"], MergeByKey("type")),
            (
                "StatefulSet",
                &["spec", "template", "spec", "containers", "env"],
                MergeByKey("name"),
            ),
            (
                "DaemonSet",
                &["spec", "template", "metadata", "finalizers"],
                MergePrimitive,
            ),
            (
                "ReplicaSet",
                &["spec", "template", "spec", "tolerations"],
                Atomic,
            ),
            (
                "ConfigMap",
                &["metadata", "ownerReferences"],
                MergeByKey("uid"),
            ),
            ("ConfigMap", &["data", "x"], Atomic),
        ];
        for (kind, path, want) in cases {
            assert_eq!(at(path, kind), *want, "{kind} {path:?}");
        }
    }
}
