//! Lambda entry point for interruption events (Spot warning, state change, ASG terminate hook,
//! AWS Health scheduled change, rebalance recommendation): record, cordon, deregister, drain.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    costop_lambda::serve(costop_app::Handler::new).await
}
