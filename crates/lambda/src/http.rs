//! The Lambda runtime around the fallback, an ALB Lambda target: [`serve_fallback`] does the
//! cold start once (configuration and its route table, JSON logs, the queue and upstream
//! clients), then turns each ALB event into an HTTP request for the fallback and its answer back
//! into the target's response (`lambda_http`, feature `alb`:
//! <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html>).
//! Nothing is built per request.

use bytes::Bytes;
use costop_adapters::FallbackWorld;
use costop_app::Fallback;
use costop_app::telemetry;
use costop_core::Config;
use lambda_http::{Body, Request, Response, service_fn};

/// The request as the fallback takes it.
fn into_request(request: Request) -> http::Request<Bytes> {
    let (parts, body) = request.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    http::Request::from_parts(parts, body)
}

/// The fallback's answer as the target's response: text stays text, anything else goes
/// base64-encoded.
fn from_response(response: http::Response<Bytes>) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let body = match String::from_utf8(body.to_vec()) {
        Ok(t) if t.is_empty() => Body::Empty,
        Ok(t) => Body::Text(t),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    Response::from_parts(parts, body)
}

/// Run the fallback under the Lambda runtime until the container is recycled. A bad
/// configuration (a route table that does not validate, say) fails the cold start, naming it.
pub async fn serve_fallback() -> Result<(), lambda_http::Error> {
    let config = Config::from_env(std::env::vars())?;
    telemetry::init_json_logs(&config.log_level);
    for unknown in costop_core::config::unknown_var_warnings(std::env::vars()) {
        tracing::warn!(variable = %unknown.name, "{unknown} (see `costop config --list`)");
    }
    let shown = config.to_string();
    let world = FallbackWorld::from_env(&config).await;
    let fallback = Fallback::new(world, config);
    tracing::info!(config = %shown, "costop-fallback starting");
    let fallback = &fallback;
    lambda_http::run(service_fn(move |request: Request| async move {
        let (response, served) = fallback.handle(into_request(request)).await;
        telemetry::fallback::report(fallback.config(), &served);
        Ok::<_, std::convert::Infallible>(from_response(response))
    }))
    .await
}
