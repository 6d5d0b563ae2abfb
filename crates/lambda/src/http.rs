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
/// One invocation at a time, as Lambda runs a function; where the environment takes several at
/// once (`AWS_LAMBDA_MAX_CONCURRENCY` above 1, as Lambda Managed Instances set it), that many
/// side by side over the same clients.
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
    let fallback = std::sync::Arc::new(fallback);
    lambda_http::run_concurrent(service_fn(move |request: Request| {
        let fallback = fallback.clone();
        async move {
            let (response, served) = fallback.handle(into_request(request)).await;
            telemetry::fallback::report(fallback.config(), &served);
            Ok::<_, std::convert::Infallible>(from_response(response))
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use costop_app::fakes::{FakeQueue, FakeUpstream};
    use costop_app::{HasQueue, WriteQueue};

    struct World {
        queue: FakeQueue,
        upstream: FakeUpstream,
    }
    costop_app::has_ports!(World {
        queue: FakeQueue,
        upstream: FakeUpstream,
    });

    /// A sample of `events/alb/` as the Lambda runtime hands it over.
    fn sample(name: &str) -> Request {
        let path = format!(
            "{}/../../events/alb/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[tokio::test]
    async fn the_alb_samples_get_the_answers_their_names_say() {
        let config = Config::from_env([(
            "COSTOP_FALLBACK_ROUTES",
            r#"[{"prefix": "/items", "queue_safe": true, "json": true}]"#,
        )])
        .expect("valid");
        let world = World {
            queue: FakeQueue::default(),
            upstream: FakeUpstream::default(),
        };
        let fallback = Fallback::new(world, config);
        for (name, status, policy) in [
            ("read", 200, "forward"),
            ("write", 202, "queue"),
            ("malformed-json", 400, "refused"),
            ("oversize", 413, "refused"),
            ("receipt", 404, "receipt"),
        ] {
            let (response, served) = fallback.handle(into_request(sample(name))).await;
            assert_eq!(
                (response.status().as_u16(), served.policy),
                (status, policy),
                "{name}"
            );
            let answer = from_response(response);
            assert!(
                !matches!(answer.body(), Body::Binary(_)),
                "{name}: the answer is text"
            );
        }
        let queued = fallback.world().queue().pending().await.unwrap();
        assert_eq!(queued.len(), 1, "only the write is stored");
        assert_eq!(queued[0].body, br#"{"sku":"A-1","qty":2}"#);
        assert_eq!(
            queued[0].idempotency_key,
            "3f1c9a2e-7b4d-4e8a-9c61-2d5f8e0b7a14"
        );
        let forwarded = fallback.world().upstream.received();
        assert_eq!(forwarded.len(), 1);
        assert_eq!(forwarded[0].uri().path(), "/items/cart");
        assert_eq!(forwarded[0].uri().query(), Some("view=full"));
        assert_eq!(forwarded[0].headers()["x-forwarded-for"], "203.0.113.7");
    }
}
