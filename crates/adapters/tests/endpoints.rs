//! The SDK configuration of a cold start honours the service-specific endpoint variables: with
//! `AWS_ENDPOINT_URL` on a dead port and `AWS_ENDPOINT_URL_AUTO_SCALING` on a local server, the
//! Auto Scaling adapter reaches the server. This is how the bed sends Auto Scaling to its AWS
//! front and everything else to moto.
//!
//! The only test in this binary: it sets the process environment before any other thread runs.

use std::time::Duration;

use costop_adapters::{AsgAdapter, load_sdk_config};
use costop_app::ports::Asg;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ANSWER: &str = "<DescribeLifecycleHooksResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><DescribeLifecycleHooksResult><LifecycleHooks><member><LifecycleHookName>drain</LifecycleHookName><AutoScalingGroupName>workers</AutoScalingGroupName><HeartbeatTimeout>40</HeartbeatTimeout><DefaultResult>CONTINUE</DefaultResult></member></LifecycleHooks></DescribeLifecycleHooksResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeLifecycleHooksResponse>";

#[test]
fn the_cold_start_config_sends_auto_scaling_to_its_service_specific_endpoint() {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    // SAFETY: no other thread exists yet that could read the environment (the runtime is built
    // below, and this binary has no other test).
    unsafe {
        for (k, v) in [
            ("AWS_ENDPOINT_URL", dead_url.as_str()),
            ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ] {
            std::env::set_var(k, v);
        }
        std::env::set_var(
            "AWS_ENDPOINT_URL_AUTO_SCALING",
            format!("http://{}", server.local_addr().unwrap()),
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        server.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(server).unwrap();
        let answer = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // The request is small: read until its form body has arrived.
            while !String::from_utf8_lossy(&request).contains("Action=DescribeLifecycleHooks") {
                let n = conn.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed before sending its request");
                request.extend_from_slice(&buf[..n]);
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\r\n{ANSWER}",
                ANSWER.len()
            );
            conn.write_all(reply.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&request).into_owned()
        });
        let sdk = load_sdk_config().await;
        let asg = AsgAdapter::new(aws_sdk_autoscaling::Client::new(&sdk));
        let hook = tokio::time::timeout(
            Duration::from_secs(20),
            asg.describe_hook("workers", "drain"),
        )
        .await
        .expect("answered in time")
        .expect("the Auto Scaling endpoint answered");
        assert_eq!(hook.map(|h| h.heartbeat_timeout_seconds), Some(40));
        let request = answer.await.unwrap();
        assert!(
            request.contains("LifecycleHookNames.member.1=drain"),
            "{request}"
        );
    });
}
