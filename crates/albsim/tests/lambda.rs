//! Lambda targets through the runtime API, with a real `lambda_http` function process.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use albsim::{Action, Alb, AlbConfig, Listener, Target, TargetGroup, TargetType};
use bytes::Bytes;
use http::StatusCode;
use support::*;

const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:echo";
const GROUP: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/echo/0123456789abcdef";

fn lambda_config() -> AlbConfig {
    let mut tg = TargetGroup::new(GROUP, TargetType::Lambda, None);
    tg.targets = vec![Target::new(FUNCTION, None)];
    AlbConfig {
        listeners: vec![Listener {
            port: 80,
            rules: vec![],
            default_actions: vec![Action::forward(GROUP)],
        }],
        target_groups: vec![tg],
        attributes: Default::default(),
    }
}

/// The example function's binary, built beside the tests (or built now).
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let binary = profile_dir.join("examples").join("lambda_echo");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "albsim", "--example", "lambda_echo"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the example function");
    }
    binary
}

#[tokio::test]
async fn a_lambda_target_gets_a_well_formed_alb_event_through_the_runtime_api_and_its_answer_comes_back()
 {
    let mut options = options(resolver(&[]));
    options.lambda_timeout = Duration::from_secs(60); // 3 s real: room for a slow process start
    let alb = Alb::start(lambda_config(), options).await.expect("starts");
    let runtime_api = alb
        .runtime_api_addr(FUNCTION)
        .expect("a runtime API for the function");
    assert!(runtime_api.ip().is_loopback());
    let at = addr(&alb);
    // Sent before the function polls: it queues.
    let queued = tokio::spawn(async move {
        send(
            at,
            "POST",
            "/echo/path?q=v%20w",
            &[("x-test", "yes"), ("content-type", "text/plain")],
            Bytes::from("hello"),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut function = tokio::process::Command::new(example_binary())
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "echo")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/echo")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the function starts");

    let (status, headers, body) = queued.await.expect("request");
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(headers["x-function"], "echo");
    let echoed: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["path"], "/echo/path");
    assert_eq!(echoed["x_test"], "yes");
    assert_eq!(echoed["body"], "hello");
    assert_eq!(echoed["target_group_arn"], GROUP);
    assert_eq!(echoed["x_forwarded_for"], "127.0.0.1");
    assert!(
        echoed["query"].as_str().is_some_and(|q| q.starts_with('v')),
        "{echoed}"
    );

    // A function error is a 502 from the load balancer.
    let (status, headers, _) = send(at, "GET", "/fail", &[], Bytes::new()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["server"], "awselb/2.0");
    // And the function goes on serving.
    assert_eq!(
        send(at, "GET", "/again", &[], Bytes::new()).await.0,
        StatusCode::CREATED
    );

    function.kill().await.expect("stopped");
}

#[tokio::test]
async fn a_request_body_over_one_megabyte_to_a_lambda_target_gets_413() {
    let alb = Alb::start(lambda_config(), options(resolver(&[])))
        .await
        .expect("starts");
    let big = Bytes::from(vec![b'x'; albsim::LAMBDA_PAYLOAD_LIMIT + 1]);
    let (status, headers, _) = send(
        addr(&alb),
        "POST",
        "/",
        &[("content-type", "text/plain")],
        big,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(headers["server"], "awselb/2.0");
}

#[tokio::test]
async fn a_function_that_never_answers_gets_502_at_its_timeout() {
    let mut options = options(resolver(&[]));
    options.lambda_timeout = Duration::from_secs(3); // 150 ms real
    let alb = Alb::start(lambda_config(), options).await.expect("starts");
    let api = alb.runtime_api_addr(FUNCTION).expect("runtime api");
    let at = addr(&alb);
    let request = tokio::spawn(async move { get(at, "/").await });
    // Poll as a function would, and never answer.
    let (event_status, event_headers, event) = send(
        api,
        "GET",
        "/2018-06-01/runtime/invocation/next",
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(event_status, StatusCode::OK);
    assert!(event_headers.contains_key("lambda-runtime-aws-request-id"));
    assert!(event_headers.contains_key("lambda-runtime-deadline-ms"));
    assert_eq!(
        event_headers["lambda-runtime-invoked-function-arn"],
        FUNCTION
    );
    let event: serde_json::Value = serde_json::from_slice(&event).expect("json event");
    assert_eq!(event["requestContext"]["elb"]["targetGroupArn"], GROUP);
    assert_eq!(request.await.expect("request").0, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn an_invocation_beyond_the_functions_concurrency_is_throttled_at_once_and_the_place_comes_back_when_one_ends()
 {
    let alb = Alb::start(lambda_config(), options(resolver(&[])))
        .await
        .expect("starts");
    let api = alb.runtime_api(FUNCTION).expect("runtime api");
    api.limit_concurrency(1);
    let at = addr(&alb);
    // The first takes the function's one place and waits for an environment.
    let first = tokio::spawn(async move { get(at, "/first").await });
    while api.concurrency() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = std::time::Instant::now();
    let (status, headers, _) = send(at, "GET", "/second", &[], Bytes::new()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["server"], "awselb/2.0");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a throttled invocation is answered at once, not queued"
    );
    assert_eq!((api.throttled(), api.concurrency()), (1, 1));

    // Answer the first as a function would; its place is free again.
    let (_, event_headers, _) = send(
        alb.runtime_api_addr(FUNCTION).expect("addr"),
        "GET",
        "/2018-06-01/runtime/invocation/next",
        &[],
        Bytes::new(),
    )
    .await;
    let id = event_headers["lambda-runtime-aws-request-id"]
        .to_str()
        .expect("request id")
        .to_owned();
    let (accepted, _, _) = send(
        alb.runtime_api_addr(FUNCTION).expect("addr"),
        "POST",
        &format!("/2018-06-01/runtime/invocation/{id}/response"),
        &[("content-type", "application/json")],
        Bytes::from(r#"{"statusCode": 200, "body": "first"}"#),
    )
    .await;
    assert_eq!(accepted, StatusCode::ACCEPTED);
    let (status, body) = first.await.expect("first request");
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"first"[..]));
    assert_eq!(api.concurrency(), 0);

    // The next one queues for an environment instead of being throttled.
    let third = tokio::spawn(async move { get(at, "/third").await });
    while api.concurrency() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(api.throttled(), 1);
    third.abort();
}
