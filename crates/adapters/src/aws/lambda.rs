//! The hand-off port over Lambda: an asynchronous `Invoke` of the interruption function
//! (`InvocationType: Event`), which Lambda queues, retries and dead-letters like an EventBridge
//! delivery. In one process (the bed, `costop replay`) the port is a [`HandoffQueue`] instead.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use costop_app::HandoffQueue;
use costop_app::ports::{Handoff, PortError};

use super::sdk_error;

/// Where hand-offs go.
#[derive(Debug, Clone)]
pub enum LambdaHandoff {
    /// Invoke the interruption function (`COSTOP_INTERRUPTION_FUNCTION`) asynchronously.
    Invoke {
        client: aws_sdk_lambda::Client,
        function: String,
    },
    /// Queue them for the interruption function running in this process.
    Queue(HandoffQueue),
    /// No interruption function configured: every hand-off fails, saying so.
    Unset,
}

/// A hand-off with no interruption function to give it to.
#[derive(Debug, thiserror::Error)]
#[error(
    "COSTOP_INTERRUPTION_FUNCTION is not set: the keeper has no interruption function to hand due scheduled changes to"
)]
pub struct NoInterruptionFunction;

impl Handoff for LambdaHandoff {
    async fn hand_off(&self, event: &serde_json::Value) -> Result<(), PortError> {
        match self {
            LambdaHandoff::Invoke { client, function } => {
                let payload = serde_json::to_vec(event).map_err(|e| PortError::Permanent {
                    op: "encode hand-off",
                    source: Box::new(e),
                })?;
                // iam: lambda:InvokeFunction
                client
                    .invoke()
                    .function_name(function)
                    .invocation_type(InvocationType::Event)
                    .payload(Blob::new(payload))
                    .send()
                    .await
                    .map_err(|e| sdk_error("invoke interruption function", e))?;
                Ok(())
            }
            LambdaHandoff::Queue(q) => q.hand_off(event).await,
            LambdaHandoff::Unset => Err(PortError::Permanent {
                op: "hand off",
                source: Box::new(NoInterruptionFunction),
            }),
        }
    }
}
