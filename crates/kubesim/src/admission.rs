//! What the API server itself enforces and defaults on writes: pod defaults (phase, priority
//! from its PriorityClass, QoS), immutability of a pod's spec except *added* tolerations (422
//! otherwise), the eviction subresource (PDB check with the real 429 message, budget
//! decrement) and the binding subresource.

use serde_json::Value;

use crate::error::ApiError;
use crate::resources::ResourceDef;
use crate::store::Tx;

/// Defaults and validation for a new object.
pub fn on_create(_tx: &mut Tx<'_>, _r: &'static ResourceDef, _obj: &mut Value) -> Result<(), ApiError> {
    Ok(())
}

/// Validation for an update (`new` may be adjusted, e.g. defaults re-applied).
pub fn on_update(_tx: &mut Tx<'_>, _r: &'static ResourceDef, _old: &Value, _new: &mut Value) -> Result<(), ApiError> {
    Ok(())
}

/// The grace period a delete of `pod` gets: the request's, else the pod's
/// `terminationGracePeriodSeconds`, else 30.
pub fn pod_grace_period(pod: &Value, requested: Option<i64>) -> i64 {
    requested
        .or_else(|| pod.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
        .unwrap_or(30)
        .max(0)
}

/// POST pods/{name}/eviction: honour PodDisruptionBudgets, then delete gracefully.
pub fn evict(_tx: &mut Tx<'_>, _ns: &str, _name: &str, _eviction: &Value) -> Result<(), ApiError> {
    Err(ApiError::internal("eviction not implemented yet"))
}

/// POST pods/{name}/binding: bind a pending pod to a node.
pub fn bind(_tx: &mut Tx<'_>, _ns: &str, _name: &str, _binding: &Value) -> Result<(), ApiError> {
    Err(ApiError::internal("binding not implemented yet"))
}
