//! costop's fallback function behind the ALB stand-in, on the `traffic` scenario: the listener
//! sends requests to the fallback's Lambda target group (as a traffic shift does), the bed's
//! Lambda service starts the function's processes, the function forwards reads to the service
//! through the upstream listener (which no shift touches), queues the writes its routes allow
//! and serves their receipts on the path kept routed to it.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple,
};
use costop_bed::{Bed, BedOptions, Scenario};

/// The function's binary as `cargo xtask test` builds it (a no-op when it already has).
fn fallback_binary() -> std::path::PathBuf {
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "-q",
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml"),
            "--package",
            "costop-fallback",
            "--bin",
            "costop-fallback",
        ])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build -p costop-fallback failed");
    costop_bed::lambda::beside_current_exe("costop-fallback").expect("the fallback's binary")
}

async fn bed() -> Bed {
    let mut s = Scenario::builtin("traffic").expect("built-in");
    s.time_scale = 20.0;
    let bed = Bed::start_with(
        s,
        BedOptions {
            fallback_binary: Some(fallback_binary()),
            ..BedOptions::default()
        },
    )
    .await
    .expect("bed starts");
    bed.wait_ready(Duration::from_secs(120))
        .await
        .expect("bed settles");
    bed
}

/// One HTTP/1.1 request on a fresh connection (a POST with `{}`): (status, headers and body).
async fn request(url: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let body = if method == "POST" { "{}" } else { "" };
    common::http(url, method, path, headers, body).await
}

async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> F,
) {
    let t0 = Instant::now();
    while !f().await {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_sent_to_the_fallback_is_forwarded_through_the_upstream_queued_and_receipted() {
    let bed = bed().await;
    let url = bed.alb_url().expect("the ALB's URL");
    let upstream = bed.upstream_url().expect("the upstream listener's URL");
    let seeded = bed
        .world()
        .fallback
        .clone()
        .expect("the fallback is seeded");
    // The service answers, directly and through the upstream listener.
    until("the service answers", Duration::from_secs(60), || async {
        request(&url, "POST", "/items/k0", &[("X-Request-Id", "seed-0")])
            .await
            .0
            == 201
    })
    .await;
    assert_eq!(request(&upstream, "GET", "/items/k0", &[]).await.0, 200);
    assert_eq!(
        bed.fallback().expect("the Lambda service").processes(),
        0,
        "no environment before the first invocation"
    );

    // Everything the public listener takes goes to the fallback, as a full shift would send it.
    let elb = bed.elbv2();
    let listener = bed.world().listener_arn.clone().expect("a listener");
    let shop = bed.world().target_groups["shop-ip"].clone();
    let weighted = |arn: &str, weight| {
        TargetGroupTuple::builder()
            .target_group_arn(arn)
            .weight(weight)
            .build()
    };
    elb.modify_listener()
        .listener_arn(&listener)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .forward_config(
                    ForwardActionConfig::builder()
                        .target_groups(weighted(&shop, 0))
                        .target_groups(weighted(&seeded.target_group_arn, 1))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("the listener forwards to the fallback");

    // A read reaches the service through the fallback's forward.
    until(
        "a read answered by way of the fallback",
        Duration::from_secs(30),
        || async {
            let (status, out) = request(&url, "GET", "/items/k0", &[]).await;
            status == 200 && bed.fallback().unwrap().processes() > 0 && out.contains("{}")
        },
    )
    .await;

    // A write on a queue-safe route is queued: 202, a receipt, readable where Location says.
    let (status, out) = request(
        &url,
        "POST",
        "/items/k1",
        &[("X-Request-Id", "w-1"), ("Idempotency-Key", "key-1")],
    )
    .await;
    assert_eq!(status, 202, "{out}");
    let location = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .expect("a Location header")
        .trim()
        .to_owned();
    assert!(location.starts_with("/_costop/receipts/"), "{location}");
    assert!(
        !bed.stores().get("default/shop").contains("w-1"),
        "a queued write is not applied before its replay"
    );
    let (status, receipt) = request(&url, "GET", &location, &[]).await;
    assert_eq!(status, 200, "{receipt}");
    assert!(receipt.contains("\"state\":\"queued\""), "{receipt}");

    // The same key again is the same write: one receipt.
    let (status, again) = request(
        &url,
        "POST",
        "/items/k1",
        &[("X-Request-Id", "w-2"), ("Idempotency-Key", "key-1")],
    )
    .await;
    assert!(matches!(status, 200 | 202), "{again}");
    assert!(again.contains(location.trim_start_matches("/_costop/receipts/")));
}
