//! The assembled simulator: store, HTTP server on loopback, control loops and the EC2 node
//! link, with a kubeconfig for clients.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::api::{self, ApiState};
use crate::clock::Clock;
use crate::controllers::{self, ControllerConfig};
use crate::error::ApiError;
use crate::network::{Ipv4Cidr, ServiceNetwork};
use crate::nodes::{InstanceFacts, NodeLink, NodeLinkConfig};
use crate::resources;
use crate::store::Store;

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub cluster_name: String,
    /// Simulated seconds per real second.
    pub time_scale: f64,
    /// Simulated seconds from instance running to node Ready.
    pub node_boot_seconds: f64,
    /// Simulated seconds from pod bound to Running/Ready.
    pub pod_start_seconds: f64,
    /// Simulated seconds a gracefully deleted pod takes to go (capped by its grace period).
    pub pod_stop_seconds: f64,
    /// Simulated seconds from an instance stopping to its node going NotReady (the node
    /// lifecycle controller's `node-monitor-grace-period`).
    pub node_monitor_grace_seconds: f64,
    /// Service ClusterIP range and node port range (kube-apiserver's
    /// `--service-cluster-ip-range` and `--service-node-port-range`).
    pub service_network: ServiceNetwork,
    /// Simulated seconds from a pod or node change to the EndpointSlice update it causes.
    pub endpoint_slice_sync_seconds: f64,
    /// Simulated seconds from a namespace's deletion to the deletion of its contents.
    pub namespace_cleanup_delay_seconds: f64,
    /// Where pods get their IPs from (see [`crate::network::POD_NETWORK`]). Two simulators
    /// whose pods are served on the same machine need disjoint ranges.
    pub pod_network: Ipv4Cidr,
    /// Where to listen (port 0 picks a free one).
    pub bind: SocketAddr,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            cluster_name: "costop-bed".into(),
            time_scale: 1.0,
            node_boot_seconds: 30.0,
            pod_start_seconds: 2.0,
            pod_stop_seconds: 2.0,
            node_monitor_grace_seconds: 50.0,
            service_network: ServiceNetwork::default(),
            endpoint_slice_sync_seconds: ControllerConfig::default().endpoint_slice_sync_seconds,
            namespace_cleanup_delay_seconds: ControllerConfig::default()
                .namespace_cleanup_delay_seconds,
            pod_network: crate::network::POD_NETWORK,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulator config: {0}")]
    Config(String),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot apply manifests")]
    Manifest(#[source] ApiError),
    #[error("manifest is not valid YAML")]
    Yaml(#[source] serde_yaml::Error),
}

/// A running simulator. Dropping it stops the server and every loop.
pub struct Simulator {
    cfg: SimConfig,
    store: Arc<Store>,
    addr: SocketAddr,
    link: Arc<NodeLink>,
    tasks: Vec<JoinHandle<()>>,
}

impl Simulator {
    /// Start the API server and the control loops with the namespaces a cluster starts with.
    pub async fn start(cfg: SimConfig) -> Result<Self, SimError> {
        let clock = Clock::new(cfg.time_scale).map_err(SimError::Config)?;
        let store = Arc::new(Store::with_service_network(clock, cfg.service_network));
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            store
                .create(
                    &resources::NAMESPACES,
                    None,
                    serde_json::json!({"metadata": {"name": ns}}),
                )
                .map_err(SimError::Manifest)?;
        }
        // The API server bootstraps the two system priority classes.
        for (name, value, description) in [
            (
                "system-node-critical",
                2_000_001_000,
                "Used for system critical pods that must not be moved from their current node.",
            ),
            (
                "system-cluster-critical",
                2_000_000_000,
                "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
            ),
        ] {
            store
                .create(
                    &resources::PRIORITYCLASSES,
                    None,
                    serde_json::json!({"metadata": {"name": name}, "value": value, "description": description}),
                )
                .map_err(SimError::Manifest)?;
        }
        let listener = listen(cfg.bind).map_err(|source| SimError::Bind {
            addr: cfg.bind,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: cfg.bind,
            source,
        })?;
        let app = api::router(ApiState {
            store: store.clone(),
        });
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "kubesim API server stopped");
            }
        })];
        tasks.extend(controllers::spawn_all(
            store.clone(),
            ControllerConfig {
                pod_start_seconds: cfg.pod_start_seconds,
                pod_stop_seconds: cfg.pod_stop_seconds,
                endpoint_slice_sync_seconds: cfg.endpoint_slice_sync_seconds,
                namespace_cleanup_delay_seconds: cfg.namespace_cleanup_delay_seconds,
                pod_network: cfg.pod_network,
                ..ControllerConfig::default()
            },
        ));
        let link = Arc::new(NodeLink::new(
            store.clone(),
            NodeLinkConfig {
                boot_seconds: cfg.node_boot_seconds,
                not_ready_seconds: cfg.node_monitor_grace_seconds,
                ..NodeLinkConfig::default()
            },
        ));
        tasks.push(link.clone().spawn());
        tracing::info!(%addr, cluster = %cfg.cluster_name, scale = cfg.time_scale, "kubesim started");
        Ok(Self {
            cfg,
            store,
            addr,
            link,
            tasks,
        })
    }

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// Base URL of the API server.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// A kubeconfig whose current context points at this simulator.
    pub fn kubeconfig(&self) -> String {
        let name = &self.cfg.cluster_name;
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {url}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n    namespace: default\ncurrent-context: {name}\nusers:\n- name: {name}\n  user: {{}}\npreferences: {{}}\n",
            url = self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Create or replace every object of a multi-document YAML manifest, in order.
    pub fn apply_yaml(&self, yaml: &str) -> Result<Vec<Value>, SimError> {
        let mut out = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            let v: Value = serde::Deserialize::deserialize(doc).map_err(SimError::Yaml)?;
            if v.is_null() {
                continue;
            }
            out.push(self.apply_object(v).map_err(SimError::Manifest)?);
        }
        Ok(out)
    }

    /// Create or replace one object.
    pub fn apply_object(&self, obj: Value) -> Result<Value, ApiError> {
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let r = resources::by_kind(api_version, kind).ok_or_else(|| {
            ApiError::bad_request(format!(
                "no kind \"{kind}\" is registered for version \"{api_version}\""
            ))
        })?;
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.store.transaction(|tx| {
            if tx.try_get(r, ns.as_deref(), &name).is_some() {
                tx.update(r, ns.as_deref(), &name, obj)
            } else {
                tx.create(r, ns.as_deref(), obj)
            }
        })
    }

    /// Hand the node link the latest snapshot of the cluster's EC2 instances.
    pub fn observe_instances(&self, facts: Vec<InstanceFacts>) {
        self.link.observe(facts);
    }

    /// Stop the server and every loop.
    pub fn shutdown(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A listener with a backlog big enough for a burst of new clients (fifty handlers connecting at
/// once): with the usual 128 the kernel drops SYNs and those clients stall for a 1 s retransmit.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}
