//! The resource types the simulator serves: one static table that routing, discovery, the
//! store and the table printer all read, so a type is added in one place.

/// One served resource type (a GroupVersionResource plus what discovery says about it).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ResourceDef {
    /// API group; `""` is the core group served under `/api/v1`.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources served, e.g. `status`, `eviction`, `binding`.
    pub subresources: &'static [&'static str],
}

impl ResourceDef {
    /// `v1` or `apps/v1`, as objects carry it in `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// `pods` or `deployments.apps`, as error messages name a resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
    /// Subresource kinds as discovery reports them.
    pub fn subresource_kind(&self, sub: &str) -> (&'static str, &'static str, &'static str) {
        // (group, version, kind) of the object the subresource accepts.
        match sub {
            "eviction" => ("policy", "v1", "Eviction"),
            "binding" => ("", "v1", "Binding"),
            "scale" => ("autoscaling", "v1", "Scale"),
            _ => (self.group, self.version, self.kind),
        }
    }
}

macro_rules! res {
    ($name:ident, $group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $ns:expr,
     [$($short:expr),*], [$($cat:expr),*], [$($sub:expr),*]) => {
        pub static $name: ResourceDef = ResourceDef {
            group: $group, version: $version, kind: $kind, plural: $plural, singular: $singular,
            namespaced: $ns, short_names: &[$($short),*], categories: &[$($cat),*],
            subresources: &[$($sub),*],
        };
    };
}

res!(
    NAMESPACES,
    "",
    "v1",
    "Namespace",
    "namespaces",
    "namespace",
    false,
    ["ns"],
    [],
    ["status"]
);
res!(
    NODES,
    "",
    "v1",
    "Node",
    "nodes",
    "node",
    false,
    ["no"],
    [],
    ["status"]
);
res!(
    PODS,
    "",
    "v1",
    "Pod",
    "pods",
    "pod",
    true,
    ["po"],
    ["all"],
    ["status", "eviction", "binding"]
);
res!(
    EVENTS,
    "",
    "v1",
    "Event",
    "events",
    "event",
    true,
    ["ev"],
    [],
    []
);
res!(
    SERVICES,
    "",
    "v1",
    "Service",
    "services",
    "service",
    true,
    ["svc"],
    ["all"],
    ["status"]
);
res!(
    CONFIGMAPS,
    "",
    "v1",
    "ConfigMap",
    "configmaps",
    "configmap",
    true,
    ["cm"],
    [],
    []
);
res!(
    SERVICEACCOUNTS,
    "",
    "v1",
    "ServiceAccount",
    "serviceaccounts",
    "serviceaccount",
    true,
    ["sa"],
    [],
    []
);
res!(
    DEPLOYMENTS,
    "apps",
    "v1",
    "Deployment",
    "deployments",
    "deployment",
    true,
    ["deploy"],
    ["all"],
    ["status", "scale"]
);
res!(
    REPLICASETS,
    "apps",
    "v1",
    "ReplicaSet",
    "replicasets",
    "replicaset",
    true,
    ["rs"],
    ["all"],
    ["status", "scale"]
);
res!(
    DAEMONSETS,
    "apps",
    "v1",
    "DaemonSet",
    "daemonsets",
    "daemonset",
    true,
    ["ds"],
    ["all"],
    ["status"]
);
res!(
    STATEFULSETS,
    "apps",
    "v1",
    "StatefulSet",
    "statefulsets",
    "statefulset",
    true,
    ["sts"],
    ["all"],
    ["status", "scale"]
);
res!(
    PODDISRUPTIONBUDGETS,
    "policy",
    "v1",
    "PodDisruptionBudget",
    "poddisruptionbudgets",
    "poddisruptionbudget",
    true,
    ["pdb"],
    [],
    ["status"]
);
res!(
    PRIORITYCLASSES,
    "scheduling.k8s.io",
    "v1",
    "PriorityClass",
    "priorityclasses",
    "priorityclass",
    false,
    ["pc"],
    [],
    []
);
res!(
    LEASES,
    "coordination.k8s.io",
    "v1",
    "Lease",
    "leases",
    "lease",
    true,
    [],
    [],
    []
);
res!(
    EVENTS_V1,
    "events.k8s.io",
    "v1",
    "Event",
    "events",
    "event",
    true,
    ["ev"],
    [],
    []
);
res!(
    ENDPOINTSLICES,
    "discovery.k8s.io",
    "v1",
    "EndpointSlice",
    "endpointslices",
    "endpointslice",
    true,
    [],
    [],
    []
);
res!(
    INGRESSES,
    "networking.k8s.io",
    "v1",
    "Ingress",
    "ingresses",
    "ingress",
    true,
    ["ing"],
    [],
    ["status"]
);
res!(
    INGRESSCLASSES,
    "networking.k8s.io",
    "v1",
    "IngressClass",
    "ingressclasses",
    "ingressclass",
    false,
    [],
    [],
    []
);

/// Every served resource, in discovery order.
pub static ALL: &[&ResourceDef] = &[
    &NAMESPACES,
    &NODES,
    &PODS,
    &EVENTS,
    &SERVICES,
    &CONFIGMAPS,
    &SERVICEACCOUNTS,
    &DEPLOYMENTS,
    &REPLICASETS,
    &DAEMONSETS,
    &STATEFULSETS,
    &PODDISRUPTIONBUDGETS,
    &PRIORITYCLASSES,
    &LEASES,
    &EVENTS_V1,
    &ENDPOINTSLICES,
    &INGRESSES,
    &INGRESSCLASSES,
];

/// Look a resource up by group, version and plural (as it appears in a URL path).
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    ALL.iter()
        .copied()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Look a resource up by `apiVersion` and `kind` (as they appear in an object).
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    ALL.iter()
        .copied()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// Served group/versions, core first: `("", "v1")`, `("apps", "v1")`, ...
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in ALL {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}
