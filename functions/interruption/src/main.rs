//! Lambda entry point for interruption events (Spot warning, state change, ASG terminate hook,
//! AWS Health scheduled change, rebalance recommendation): config and clients are built once
//! per container, then each delivery goes through the shared handler.

use costop_app::{Handler, HandlerError, Mode, telemetry};
use costop_core::Config;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

/// A handler error as Lambda reports it: `errorType` is `Retryable` or `NonRetryable`, so the
/// async-invoke retry policy and the DLQ alarm can tell a transient failure from a bad event.
#[derive(Debug)]
struct LambdaError(HandlerError);

impl From<LambdaError> for Diagnostic {
    fn from(e: LambdaError) -> Self {
        Diagnostic {
            error_type: e.0.error_type().into(),
            error_message: costop_app::handler::error_chain(&e.0),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env(std::env::vars())?;
    telemetry::init_json_logs(&config.log_level);
    tracing::info!(config = %config, "costop-interruption starting");
    let world = costop_adapters::AwsWorld::from_env(&config).await?;
    let handler = Handler::new(world, config);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The invocation's own deadline bounds the drain (see `Handler::handle_within`).
        let budget_end = costop_app::handler::budget_end(event.context.deadline);
        let outcome = handler.handle_within(&event.payload, Mode::Execute, budget_end).await.map_err(|e| {
            tracing::error!(error = %costop_app::handler::error_chain(&e), retryable = e.is_retryable(), "delivery failed");
            LambdaError(e)
        })?;
        telemetry::log_outcome(&outcome);
        telemetry::emit_metrics(handler.config(), &outcome);
        Ok::<_, LambdaError>(serde_json::to_value(&outcome).unwrap_or(Value::Null))
    }))
    .await
}
