//! Lambda entry point of the fallback, an ALB Lambda target for the requests rerouted from a
//! service during a Spot interruption: forward to the surviving capacity (held and retried),
//! queue the writes declared safe to queue (replayed by the keeper once traffic is back), or
//! answer from configuration.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    costop_lambda::serve_fallback().await
}
