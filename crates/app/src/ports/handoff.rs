//! The hand-off port: giving an event to the interruption function later, as a new delivery
//! (the keeper's tick hands over a scheduled change that came due, see
//! [`costop_core::handoff`]). In AWS an asynchronous Lambda invoke, which Lambda retries and
//! dead-letters as it does EventBridge's deliveries; on the bed and in `costop replay`, the
//! interruption function in the same process.

use std::future::Future;

use super::PortError;

/// Hands an EventBridge event to the interruption function.
pub trait Handoff: Send + Sync {
    /// Deliver `event` (an EventBridge event, as JSON) to the interruption function. `Ok` once
    /// the function has accepted it for delivery (not handled it).
    fn hand_off(
        &self,
        event: &serde_json::Value,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}
