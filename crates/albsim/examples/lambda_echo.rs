//! A function for albsim's Lambda tests, written with `lambda_http` as a real function would
//! be: it answers 201 with what it received (method, path, query, a header, the body and the
//! target group ARN from the ALB request context), and fails on `/fail`.
//!
//! Run it with `AWS_LAMBDA_RUNTIME_API` set to the address `Alb::runtime_api_addr` gives.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Error, Request, RequestExt, Response, run, service_fn};

async fn echo(req: Request) -> Result<Response<Body>, Error> {
    if req.uri().path() == "/fail" {
        return Err("asked to fail".into());
    }
    let target_group_arn = match req.request_context_ref() {
        Some(RequestContext::Alb(ctx)) => ctx.elb.target_group_arn.clone(),
        _ => None,
    };
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let answer = serde_json::json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.query_string_parameters_ref().and_then(|q| q.first("q").map(str::to_string)),
        "x_test": header("x-test"),
        "x_forwarded_for": header("x-forwarded-for"),
        "body": String::from_utf8_lossy(req.body().as_ref()),
        "target_group_arn": target_group_arn,
    });
    Ok(Response::builder()
        .status(201)
        .header("content-type", "application/json")
        .header("x-function", "echo")
        .body(Body::from(answer.to_string()))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(echo)).await
}
