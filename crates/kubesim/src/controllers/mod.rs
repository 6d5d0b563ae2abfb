//! The control loops that make the store behave like a cluster: workload controllers, PDB
//! status, garbage collection, the scheduler and the kubelet stand-in.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::store::Store;

/// Knobs of the control loops (delays are simulated seconds; see [`crate::Clock`]).
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Bound pods become Running and Ready after this long.
    pub pod_start_seconds: f64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self { pod_start_seconds: 2.0 }
    }
}

/// Start every control loop; abort the handles to stop them.
pub fn spawn_all(_store: Arc<Store>, _cfg: ControllerConfig) -> Vec<JoinHandle<()>> {
    Vec::new()
}
