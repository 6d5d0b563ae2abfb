//! One Kubernetes cluster through kube: [`KubeCluster`] implements the `Kube` port (the
//! interruption handler's node and pod calls, and the standby keeper's node list, pending pods,
//! toleration patch, cordon toggle and standby node clearing, and the Ingress read and patch of
//! the traffic shift's Ingress path).
//!
//! Owns the API calls costop makes against a cluster and their error mapping. Each call site
//! carries an `// rbac: <resource> <verb>` marker that the infra RBAC check scans for; keep one
//! per distinct call when adding or moving calls. Translations to and from the core's data live
//! in `convert` (pure, unit-tested).

mod convert;
mod quantity;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use costop_app::ports::{EvictOutcome, Kube, PortError};
use costop_core::facts::{InstanceFacts, NodeFacts, PodFacts, instance_id_from_provider_id};
use costop_core::kube::Taint;
use costop_core::plan::action::{CordonAndTaint, EvictPod, PodUid, RestoreNode};
use costop_core::standby::TolerationPatch;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Resource as _;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::Status;

/// Page size for node and pod lists: bounded responses on big clusters.
const LIST_PAGE: u32 = 500;

/// A Kubernetes cluster. Cheap to clone: clones share the client (its connection pool) and the
/// instance → node name cache.
#[derive(Clone)]
pub struct KubeCluster {
    client: kube::Client,
    /// instance id → node name, filled by lookups and node lists, so a warm Lambda reads the
    /// node of any instance it has indexed in the same round as EC2, and finds a node whose name
    /// is not the instance's DNS name without listing every node again.
    node_names: Arc<Mutex<NodeIndex>>,
}

#[derive(Default)]
struct NodeIndex {
    names: HashMap<String, String>,
    /// When the last full list filled `names`.
    listed_at: Option<Instant>,
}

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCluster").finish_non_exhaustive()
    }
}

/// kube's error → the port's. The source is kept whole.
///
/// 409 → `Conflict` (re-read and retry), 404 → `NotFound`, 429/5xx and transport failures →
/// `Transient`, everything else (403, 422, bad requests, TLS/auth setup) → `Permanent`.
pub(crate) fn port_error(
    op: &'static str,
    what: impl FnOnce() -> String,
    err: kube::Error,
) -> PortError {
    use kube::Error as E;
    let transient = match &err {
        E::Api(status) => match status.code {
            409 => return PortError::Conflict { op },
            404 => return PortError::NotFound { op, what: what() },
            429 | 500..=599 => true,
            _ => false,
        },
        E::HyperError(_) | E::Service(_) | E::ReadEvents(_) => true,
        _ => false,
    };
    PortError::classified(op, transient, Box::new(err))
}

fn api_status(err: &kube::Error) -> Option<&Status> {
    match err {
        kube::Error::Api(s) => Some(s),
        _ => None,
    }
}

impl KubeCluster {
    /// Wraps a client (see [`crate::KubeClusters`] for building one).
    pub fn new(client: kube::Client) -> Self {
        KubeCluster {
            client,
            node_names: Arc::default(),
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    fn node_api(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn pod_api(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, NodeIndex> {
        self.node_names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn get_node(&self, name: &str) -> Result<Option<Node>, PortError> {
        // rbac: nodes get
        self.node_api()
            .get_opt(name)
            .await
            .map_err(|e| port_error("get node", || format!("node {name}"), e))
    }

    /// Pages through every node, handing each to `each` and refreshing the whole instance → name
    /// index on the way. Only one page is held at a time: Node objects are big (image lists) and
    /// clusters can have thousands.
    async fn list_nodes(&self, mut each: impl FnMut(Node)) -> Result<(), PortError> {
        let mut names = HashMap::new();
        let mut params = ListParams::default().limit(LIST_PAGE);
        loop {
            // rbac: nodes list
            let page = self
                .node_api()
                .list(&params)
                .await
                .map_err(|e| port_error("list nodes", || "nodes".into(), e))?;
            for node in page.items {
                if let (Some(id), Some(name)) =
                    (node_instance_id(&node), node.metadata.name.as_ref())
                {
                    names.insert(id.to_owned(), name.clone());
                }
                each(node);
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        *self.cache() = NodeIndex {
            names,
            listed_at: Some(Instant::now()),
        };
        Ok(())
    }

    /// Lists every node (refreshing the index) and returns the one backed by `instance_id` if
    /// asked.
    async fn list_into_index(&self, instance_id: Option<&str>) -> Result<Option<Node>, PortError> {
        let mut found = None;
        self.list_nodes(|node| {
            if instance_id.is_some() && node_instance_id(&node) == instance_id {
                found = Some(node);
            }
        })
        .await?;
        Ok(found)
    }

    /// Pods of every namespace matching `field_selector`, paged.
    async fn list_pods(
        &self,
        field_selector: &str,
        what: impl Fn() -> String,
    ) -> Result<Vec<PodFacts>, PortError> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let mut out = Vec::new();
        let mut params = ListParams::default()
            .fields(field_selector)
            .limit(LIST_PAGE);
        loop {
            // rbac: pods list
            let page = api
                .list(&params)
                .await
                .map_err(|e| port_error("list pods", &what, e))?;
            out.extend(page.items.iter().map(convert::pod_facts));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        Ok(out)
    }

    /// A JSON Patch of a pod, sent as a raw request: kube's typed `Patch::Json` needs its
    /// `jsonpatch` feature (another crate in every function) for what is one PATCH with a fixed
    /// body. `Ok(false)` when the API answers one of the `not_applied` codes.
    async fn json_patch_pod(
        &self,
        op: &'static str,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
        not_applied: &[u16],
    ) -> Result<bool, PortError> {
        let what = || format!("pod {namespace}/{name}");
        let permanent =
            |e: Box<dyn std::error::Error + Send + Sync>| PortError::Permanent { op, source: e };
        let body = serde_json::to_vec(patch).map_err(|e| permanent(Box::new(e)))?;
        let path = format!("{}/{name}", Pod::url_path(&(), Some(namespace)));
        let request = http::Request::patch(path)
            .header(http::header::CONTENT_TYPE, "application/json-patch+json")
            .body(body)
            .map_err(|e| permanent(Box::new(e)))?;
        // rbac: pods patch
        match self.client.request_text(request).await {
            Ok(_) => Ok(true),
            Err(e) => match api_status(&e) {
                Some(s) if not_applied.contains(&s.code) => {
                    tracing::info!(pod = %what(), code = s.code, message = %s.message, op, "pod patch not applied");
                    Ok(false)
                }
                _ => Err(port_error(op, what, e)),
            },
        }
    }

    /// A request to an Ingress (`networking.k8s.io/v1`): raw, as for the pod patch, so the
    /// object stays the JSON the API returns (the core's Ingress patches are built from it).
    fn ingress_request(
        method: http::Method,
        namespace: &str,
        name: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<http::Request<Vec<u8>>, PortError> {
        let path = format!("{}/{name}", Ingress::url_path(&(), Some(namespace)));
        let mut request = http::Request::builder().method(method).uri(path);
        if let Some(t) = content_type {
            request = request.header(http::header::CONTENT_TYPE, t);
        }
        request.body(body).map_err(|e| PortError::Permanent {
            op: "build ingress request",
            source: Box::new(e),
        })
    }

    async fn patch_node(
        &self,
        op: &'static str,
        name: &str,
        patch: serde_json::Value,
    ) -> Result<(), PortError> {
        // rbac: nodes patch
        self.node_api()
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(drop)
            .map_err(|e| port_error(op, || format!("node {name}"), e))
    }
}

fn node_instance_id(node: &Node) -> Option<&str> {
    node.spec
        .as_ref()?
        .provider_id
        .as_deref()
        .and_then(instance_id_from_provider_id)
}

/// The core's rule for a node found by name (see [`costop_core::facts::may_back`]).
fn is_node_of(node: &Node, instance_id: &str) -> bool {
    costop_core::facts::may_back(
        node.spec.as_ref().and_then(|s| s.provider_id.as_deref()),
        instance_id,
    )
}

impl Kube for KubeCluster {
    fn known_node_name(&self, instance_id: &str) -> Option<String> {
        self.cache().names.get(instance_id).cloned()
    }

    async fn refresh_node_index(&self, max_age: Duration) -> Result<bool, PortError> {
        if self
            .cache()
            .listed_at
            .is_some_and(|at| at.elapsed() < max_age)
        {
            return Ok(false);
        }
        self.list_into_index(None).await.map(|_| true)
    }

    async fn node_for(&self, instance: &InstanceFacts) -> Result<Option<NodeFacts>, PortError> {
        let id = instance.instance_id.as_str();
        let cached = self.cache().names.get(id).cloned();
        let mut tried: Vec<&str> = Vec::new();
        for name in [cached.as_deref(), instance.private_dns_name.as_deref()]
            .into_iter()
            .flatten()
        {
            if name.is_empty() || tried.contains(&name) {
                continue;
            }
            tried.push(name);
            if let Some(node) = self.get_node(name).await?
                && is_node_of(&node, id)
            {
                self.cache().names.insert(id.to_owned(), name.to_owned());
                return Ok(Some(convert::node_facts(&node)));
            }
        }
        // Custom node names (e.g. Karpenter/Bottlerocket resource names): match the providerID.
        Ok(self
            .list_into_index(Some(id))
            .await?
            .as_ref()
            .map(convert::node_facts))
    }

    async fn node(&self, name: &str) -> Result<Option<NodeFacts>, PortError> {
        Ok(self.get_node(name).await?.as_ref().map(convert::node_facts))
    }

    async fn pods_on(&self, node: &str) -> Result<Vec<PodFacts>, PortError> {
        self.list_pods(&format!("spec.nodeName={node}"), || {
            format!("pods on {node}")
        })
        .await
    }

    async fn cordon_and_taint(&self, action: &CordonAndTaint) -> Result<(), PortError> {
        self.patch_node(
            "cordon and taint node",
            &action.node,
            convert::cordon_patch(action),
        )
        .await
    }

    async fn set_taints(
        &self,
        node: &str,
        taints: &[Taint],
        resource_version: Option<&str>,
    ) -> Result<(), PortError> {
        self.patch_node(
            "set node taints",
            node,
            convert::taints_patch(taints, resource_version),
        )
        .await
    }

    async fn restore_node(&self, restore: &RestoreNode) -> Result<(), PortError> {
        self.patch_node(
            "restore node",
            &restore.node,
            convert::restore_patch(restore),
        )
        .await
    }

    async fn evict(&self, pod: &EvictPod) -> Result<EvictOutcome, PortError> {
        let body = convert::eviction_body(pod);
        // rbac: pods/eviction create
        let result = self
            .pod_api(&pod.namespace)
            .create_subresource::<_, serde_json::Value>(
                "eviction",
                &pod.name,
                &PostParams::default(),
                &body,
            )
            .await;
        match result {
            Ok(_) => Ok(EvictOutcome::Accepted),
            Err(e) => match api_status(&e) {
                Some(s) if s.code == 429 => Ok(EvictOutcome::Blocked {
                    message: convert::blocked_message(s),
                }),
                Some(s)
                    if s.code == 404
                        || (s.code == 409 && convert::is_uid_precondition_failure(s)) =>
                {
                    Ok(EvictOutcome::Gone)
                }
                _ => Err(port_error("evict pod", || pod.pod_ref().to_string(), e)),
            },
        }
    }

    async fn force_delete(&self, pod: &EvictPod) -> Result<(), PortError> {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: (!pod.uid.is_empty()).then(|| Preconditions {
                uid: Some(pod.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        // rbac: pods delete
        match self
            .pod_api(&pod.namespace)
            .delete(&pod.name, &params)
            .await
        {
            Ok(_) => Ok(()),
            // Already gone, or the name now belongs to a successor we must not touch.
            Err(e)
                if api_status(&e).is_some_and(|s| {
                    s.code == 404 || (s.code == 409 && convert::is_uid_precondition_failure(s))
                }) =>
            {
                Ok(())
            }
            Err(e) => Err(port_error(
                "force delete pod",
                || pod.pod_ref().to_string(),
                e,
            )),
        }
    }

    async fn nodes(&self) -> Result<Vec<NodeFacts>, PortError> {
        let mut out = Vec::new();
        self.list_nodes(|node| out.push(convert::node_facts(&node)))
            .await?;
        Ok(out)
    }

    async fn unbound_pods(&self) -> Result<Vec<PodFacts>, PortError> {
        self.list_pods("spec.nodeName=", || "unbound pods".into())
            .await
    }

    async fn tolerate(&self, patch: &TolerationPatch) -> Result<bool, PortError> {
        // Gone, or changed since it was read (a failed `test` is a 422, a write race a 409):
        // the next poll reads the pod again.
        self.json_patch_pod(
            "tolerate pod",
            &patch.namespace,
            &patch.name,
            &convert::toleration_patch(patch),
            &[404, 409, 422],
        )
        .await
    }

    async fn leave_rotation(&self, pod: &PodUid) -> Result<bool, PortError> {
        // Gone, or a successor with the name (the uid `test` fails with 422).
        self.json_patch_pod(
            "take pod out of rotation",
            &pod.namespace,
            &pod.name,
            &convert::leave_rotation_patch(pod),
            &[404, 422],
        )
        .await
    }

    async fn ingress(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, PortError> {
        let what = || format!("ingress {namespace}/{name}");
        let request = Self::ingress_request(http::Method::GET, namespace, name, None, Vec::new())?;
        // rbac: ingresses.networking.k8s.io get
        match self.client.request::<serde_json::Value>(request).await {
            Ok(ingress) => Ok(Some(ingress)),
            Err(e) if api_status(&e).is_some_and(|s| s.code == 404) => Ok(None),
            Err(e) => Err(port_error("get ingress", what, e)),
        }
    }

    async fn patch_ingress(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<(), PortError> {
        const OP: &str = "patch ingress";
        let what = || format!("ingress {namespace}/{name}");
        let body = serde_json::to_vec(patch).map_err(|e| PortError::Permanent {
            op: OP,
            source: Box::new(e),
        })?;
        let request = Self::ingress_request(
            http::Method::PATCH,
            namespace,
            name,
            Some("application/json-patch+json"),
            body,
        )?;
        // rbac: ingresses.networking.k8s.io patch
        match self.client.request_text(request).await {
            Ok(_) => Ok(()),
            // A failed `test` is a 422: the Ingress changed since it was read.
            Err(e) if api_status(&e).is_some_and(|s| s.code == 422) => {
                tracing::info!(ingress = %what(), error = %e, "ingress patch not applied: changed since it was read");
                Err(PortError::Conflict { op: OP })
            }
            Err(e) => Err(port_error(OP, what, e)),
        }
    }

    async fn set_unschedulable(&self, node: &str, unschedulable: bool) -> Result<(), PortError> {
        self.patch_node(
            "set node unschedulable",
            node,
            convert::unschedulable_patch(unschedulable),
        )
        .await
    }
}

#[cfg(test)]
mod tests;
