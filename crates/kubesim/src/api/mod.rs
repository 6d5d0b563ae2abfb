//! The HTTP face of the simulator: discovery, CRUD/watch on every served resource and its
//! subresources, Status errors and server-side Table printing, as kubectl and kube-rs expect.

use std::sync::Arc;

use crate::store::Store;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<Store>,
}

/// The router serving the Kubernetes API.
pub fn router(state: ApiState) -> axum::Router {
    axum::Router::new().with_state(state)
}
