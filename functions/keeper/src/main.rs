//! Lambda entry point of the keeper, which owns the warm standby pool: Spot warnings (start
//! the zone's standby, tolerate the replacement pods), rebalance recommendations (retype the
//! standby ahead of time) and a one-minute schedule (return standbys when spot capacity is
//! back, report the pool).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    costop_lambda::serve(costop_app::Keeper::new).await
}
