//! The kube-proxy stand-in: every node whose instance runs listens on its loopback address
//! (its InternalIP mapped by the dial guard, 10.a.b.c → 127.a.b.c) on each NodePort of each
//! Service, and forwards every connection to an endpoint [`proxy_rules`] allows, chosen at
//! random as iptables' `statistic` match does. A node with no endpoint for a port does not
//! listen on it (kube-proxy's REJECT rule: the client sees "connection refused"). A Service
//! with `externalTrafficPolicy: Local` gets its health-check node port served on every node.
//!
//! Changes reach the proxy after `sync_period` (kube-proxy's `--iptables-min-sync-period`,
//! 1 s by default: <https://kubernetes.io/docs/reference/command-line-tools-reference/kube-proxy/>).
//! Established connections outlive a rule change (conntrack keeps them), and die with the node:
//! when the node's instance stops or terminates, its listeners close and its connections reset.
//!
//! [`proxy_rules`]: super::proxy_rules

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubesim::Simulator;
use kubesim::resources;
use kubesim::store::ListOptions;
use rand::seq::IndexedRandom;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::proxy_rules::{self, Endpoint};

/// Where one listener serves: a node's loopback address and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Socket {
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// What one listener does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Forward to one of these endpoints.
    Forward(Vec<Endpoint>),
    /// Answer kube-proxy's health check: status and local endpoint count.
    HealthCheck {
        namespace: String,
        name: String,
        status: u16,
        local: usize,
    },
}

/// The rules every listener reads; replaced whole at each sync.
type Table = Arc<Mutex<BTreeMap<Socket, Role>>>;

/// The names of the nodes whose instances run (kube-proxy runs there), asked at each sync.
pub type RunningNodes = Arc<dyn Fn() -> BTreeSet<String> + Send + Sync>;

/// A running node's listeners and the switch that resets its connections.
struct NodeProxy {
    alive: watch::Sender<bool>,
    listeners: BTreeMap<u16, JoinHandle<()>>,
}

impl Drop for NodeProxy {
    fn drop(&mut self) {
        let _ = self.alive.send(false);
        for l in self.listeners.values() {
            l.abort();
        }
    }
}

/// Start the stand-in; it runs until the handle is aborted (every listener and connection
/// then stops with it).
pub fn spawn(sim: Arc<Simulator>, running: RunningNodes, sync_period: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let table: Table = Arc::default();
        let mut nodes: BTreeMap<Ipv4Addr, NodeProxy> = BTreeMap::new();
        loop {
            let wanted = rules(&sim, &running());
            let ips: BTreeSet<Ipv4Addr> = wanted.keys().map(|s| s.ip).collect();
            // A node gone (its instance stopped or terminated): dropping it resets everything.
            nodes.retain(|ip, _| ips.contains(ip));
            *table.lock().unwrap_or_else(|e| e.into_inner()) = wanted.clone();
            for ip in ips {
                let node = nodes.entry(ip).or_insert_with(|| NodeProxy {
                    alive: watch::channel(true).0,
                    listeners: BTreeMap::new(),
                });
                node.listeners.retain(|port, handle| {
                    let keep = wanted.contains_key(&Socket { ip, port: *port });
                    if !keep {
                        handle.abort();
                    }
                    keep
                });
                for socket in wanted.keys().filter(|s| s.ip == ip) {
                    if node.listeners.contains_key(&socket.port) {
                        continue;
                    }
                    let addr = SocketAddr::from((socket.ip, socket.port));
                    match TcpListener::bind(addr).await {
                        Ok(l) => {
                            let task = serve(l, *socket, table.clone(), node.alive.subscribe());
                            node.listeners.insert(socket.port, tokio::spawn(task));
                        }
                        Err(e) => {
                            tracing::warn!(%addr, error = %e, "kube-proxy stand-in cannot listen")
                        }
                    }
                }
            }
            tokio::time::sleep(sync_period).await;
        }
    })
}

fn list(sim: &Simulator, def: &'static kubesim::resources::ResourceDef) -> Vec<Value> {
    sim.store().list(def, None, &ListOptions::default()).0
}

/// The node's InternalIP on loopback.
fn node_loopback(node: &Value) -> Option<Ipv4Addr> {
    let ip = node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")?["address"]
        .as_str()?
        .parse()
        .ok()?;
    costop_traffic::dial::to_loopback(ip).ok()
}

/// Every listener the running nodes should have now, with what it does.
pub fn rules(sim: &Simulator, running: &BTreeSet<String>) -> BTreeMap<Socket, Role> {
    let services = list(sim, &resources::SERVICES);
    let slices = list(sim, &resources::ENDPOINTSLICES);
    let nodes = list(sim, &resources::NODES);
    let mut out = BTreeMap::new();
    for node in &nodes {
        let Some(name) = node["metadata"]["name"].as_str() else {
            continue;
        };
        if !running.contains(name) {
            continue;
        }
        let Some(ip) = node_loopback(node) else {
            continue;
        };
        for svc in &services {
            let (ns, svc_name) = (
                svc["metadata"]["namespace"].as_str().unwrap_or(""),
                svc["metadata"]["name"].as_str().unwrap_or(""),
            );
            let own: Vec<Value> = slices
                .iter()
                .filter(|s| {
                    s["metadata"]["namespace"] == ns
                        && s["metadata"]["labels"]["kubernetes.io/service-name"] == svc_name
                })
                .cloned()
                .collect();
            for (port_name, node_port) in proxy_rules::node_ports(svc) {
                let eps = proxy_rules::endpoints_for(svc, &own, &port_name, name);
                if !eps.is_empty() {
                    out.insert(
                        Socket {
                            ip,
                            port: node_port,
                        },
                        Role::Forward(eps),
                    );
                }
            }
            if proxy_rules::Policy::of(svc) == proxy_rules::Policy::Local
                && let Some(port) = proxy_rules::health_check_node_port(svc)
            {
                let (status, local) = proxy_rules::health_check(&own, name);
                out.insert(
                    Socket { ip, port },
                    Role::HealthCheck {
                        namespace: ns.to_owned(),
                        name: svc_name.to_owned(),
                        status,
                        local,
                    },
                );
            }
        }
    }
    out
}

/// One listener: each connection handled by the role the table gives its socket now.
async fn serve(listener: TcpListener, socket: Socket, table: Table, alive: watch::Receiver<bool>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let role = table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&socket)
            .cloned();
        let mut alive = alive.clone();
        tokio::spawn(async move {
            let work = async {
                match role {
                    Some(Role::Forward(eps)) => forward(client, &eps).await,
                    Some(Role::HealthCheck {
                        namespace,
                        name,
                        status,
                        local,
                    }) => health(client, &namespace, &name, status, local).await,
                    None => {}
                }
            };
            tokio::select! {
                () = work => {}
                // The node went away: the connection dies with it (dropped = reset).
                _ = alive.wait_for(|up| !up) => {}
            }
        });
    }
}

/// Splice the client to a random allowed endpoint, through the dial guard.
async fn forward(mut client: TcpStream, eps: &[Endpoint]) {
    let Some(ep) = eps.choose(&mut rand::rng()) else {
        return;
    };
    let Ok(ip) = ep.ip.parse() else {
        return;
    };
    let Ok(mut upstream) = costop_traffic::dial::connect(SocketAddr::new(ip, ep.port)).await else {
        // The pod refuses: so does the proxied connection.
        let _ = client.set_zero_linger();
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// kube-proxy's health-check server: a small JSON document and the status.
async fn health(mut client: TcpStream, namespace: &str, name: &str, status: u16, local: usize) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let _ = client.read(&mut buf).await;
    let body = serde_json::json!({
        "service": {"namespace": namespace, "name": name},
        "localEndpoints": local,
    })
    .to_string();
    let reason = if status == 200 {
        "OK"
    } else {
        "Service Unavailable"
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(response.as_bytes()).await;
}
