//! The Lambda runtime around a costop [`Function`]: what every function's `main.rs` calls.
//! [`serve`] does the cold start once per container (configuration from `COSTOP_*`, JSON logs,
//! a warning for every unknown `COSTOP_*` variable, the AWS world), then hands each invocation's
//! payload to the function within the invocation's deadline, logs and measures its outcome, and
//! reports a failure with `errorType` `Retryable` or `NonRetryable` ([`LambdaError`]).
//! [`serve_fallback`] does the same for the fallback, an HTTP function behind the ALB.

mod http;

pub use http::serve_fallback;

use costop_adapters::AwsWorld;
use costop_app::function::{Function, Mode, Retryable, budget_end, error_chain};
use costop_app::telemetry;
use costop_core::Config;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

/// A function's error as Lambda reports it: `errorType` is `Retryable` or `NonRetryable`, so
/// the async-invoke retry policy and the DLQ alarm can tell a transient failure from a bad
/// event; `errorMessage` is the error with its sources.
#[derive(Debug)]
pub struct LambdaError<E>(pub E);

impl<E: Retryable> From<LambdaError<E>> for Diagnostic {
    fn from(e: LambdaError<E>) -> Self {
        Diagnostic {
            error_type: e.0.error_type().into(),
            error_message: error_chain(&e.0),
        }
    }
}

/// Run `build`'s function under the Lambda runtime until the container is recycled. A bad
/// configuration or an unusable AWS environment fails the cold start, naming what is wrong.
pub async fn serve<F, B>(build: B) -> Result<(), lambda_runtime::Error>
where
    F: Function,
    B: FnOnce(AwsWorld, Config) -> F,
{
    let config = Config::from_env(std::env::vars())?;
    telemetry::init_json_logs(&config.log_level);
    for unknown in costop_core::config::unknown_var_warnings(std::env::vars()) {
        tracing::warn!(variable = %unknown.name, "{unknown} (see `costop config --list`)");
    }
    let shown = config.to_string();
    let world = AwsWorld::from_env(&config).await?;
    let function = build(world, config);
    tracing::info!(config = %shown, "{} starting", function.name());
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The invocation's own deadline bounds the work (a drain, a replacement watch).
        let budget_end = budget_end(event.context.deadline);
        let outcome = function
            .handle_within(&event.payload, Mode::Execute, budget_end)
            .await
            .map_err(|e| {
                tracing::error!(error = %error_chain(&e), retryable = e.is_retryable(), "delivery failed");
                LambdaError(e)
            })?;
        function.report(&outcome);
        Ok::<_, LambdaError<F::Error>>(serde_json::to_value(&outcome).unwrap_or(Value::Null))
    }))
    .await
}
