//! [`HandoffQueue`]: the hand-off port kept in this process. The keeper's tick puts the events
//! it hands off on the queue; whoever runs the interruption function in the same process (the
//! bed's tests, `costop replay`) takes them off and delivers them, as Lambda would deliver an
//! asynchronous invoke.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::ports::{Handoff, PortError};

/// Events handed off, oldest first. Clones share the queue.
#[derive(Debug, Clone, Default)]
pub struct HandoffQueue {
    events: Arc<Mutex<Vec<Value>>>,
}

impl HandoffQueue {
    /// Every event handed off since the last call, oldest first.
    pub fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Handoff for HandoffQueue {
    async fn hand_off(&self, event: &Value) -> Result<(), PortError> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
        Ok(())
    }
}
