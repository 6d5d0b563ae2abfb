//! The assembled simulator: store, HTTP server on loopback, control loops and the EC2 node
//! link, with a kubeconfig for clients.

use std::net::SocketAddr;

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
    /// Where to listen (port 0 picks a free one).
    pub bind: SocketAddr,
}

/// A running simulator.
pub struct Simulator {}
