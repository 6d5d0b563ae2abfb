//! Lambda entry point of the keeper, which owns the warm standby pool: Spot warnings (start
//! the zone's standby, tolerate the replacement pods), rebalance recommendations (retype the
//! standby ahead of time) and a one-minute schedule (return standbys when spot capacity is
//! back, report the pool). Config and clients are built once per container.

use costop_app::keeper::{self, Keeper, KeeperError};
use costop_app::{Mode, telemetry};
use costop_core::Config;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

/// A keeper error as Lambda reports it (`errorType` Retryable / NonRetryable).
#[derive(Debug)]
struct LambdaError(KeeperError);

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
    tracing::info!(config = %config, "costop-keeper starting");
    let world = costop_adapters::AwsWorld::from_env(&config).await?;
    let keeper = Keeper::new(world, config);
    let keeper = &keeper;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Replacement watching ends before the invocation does.
        let budget_end = costop_app::handler::budget_end(event.context.deadline);
        // Boxed: the keeper's future nests deeply enough to exceed rustc's layout query depth.
        let outcome = Box::pin(keeper.handle_within(&event.payload, Mode::Execute, budget_end)).await.map_err(|e| {
            tracing::error!(error = %costop_app::handler::error_chain(&e), retryable = e.is_retryable(), "delivery failed");
            LambdaError(e)
        })?;
        keeper::log_outcome(&outcome);
        keeper::emit_metrics(keeper.config(), &outcome);
        Ok::<_, LambdaError>(serde_json::to_value(&outcome).unwrap_or(Value::Null))
    }))
    .await
}
