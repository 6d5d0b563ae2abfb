//! Health states and reason codes as DescribeTargetHealth reports them, and the fail-open.

mod support;

use albsim::{Action, Alb, HealthState};
use bytes::Bytes;
use http::StatusCode;
use support::*;

#[tokio::test]
async fn a_new_target_is_initial_and_gets_no_traffic_until_it_passes_a_health_check() {
    let t = TestTarget::start("t").await;
    t.set_health(500);
    let mut tg = ip_group("tg", &["10.0.0.1"]);
    // Enough failures allowed that it stays initial meanwhile.
    tg.health_check.unhealthy_threshold = Some(10);
    let alb = Alb::start(
        config(vec![tg], Action::forward("tg")),
        options(resolver(&[("10.0.0.1", t.addr)])),
    )
    .await
    .expect("starts");
    assert!(
        eventually(2.0, || state_of(&alb, "tg", "10.0.0.1")
            == Some((
                HealthState::Initial,
                Some("Elb.InitialHealthChecking".into())
            )))
        .await,
        "{:?}",
        alb.target_health("tg")
    );
    assert_eq!(
        get(addr(&alb), "/").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(t.served(), 0, "no traffic while initial");
    t.set_health(200);
    all_healthy(&alb, "tg", &["10.0.0.1"]).await;
    assert_eq!(
        get(addr(&alb), "/").await,
        (StatusCode::OK, Bytes::from("t"))
    );
    let json = serde_json::to_value(alb.target_health("tg").expect("known group")).expect("json");
    assert_eq!(json[0]["Target"]["Id"], "10.0.0.1");
    assert_eq!(json[0]["TargetHealth"]["State"], "healthy");
}

#[tokio::test]
async fn a_healthy_target_failing_its_checks_turns_unhealthy_with_the_reason_and_loses_its_traffic()
{
    let a = TestTarget::start("a").await;
    let b = TestTarget::start("b").await;
    let alb = Alb::start(
        config(
            vec![ip_group("tg", &["10.0.0.1", "10.0.0.2"])],
            Action::forward("tg"),
        ),
        options(resolver(&[("10.0.0.1", a.addr), ("10.0.0.2", b.addr)])),
    )
    .await
    .expect("starts");
    all_healthy(&alb, "tg", &["10.0.0.1", "10.0.0.2"]).await;

    a.set_health(503);
    assert!(
        eventually(2.0, || state_of(&alb, "tg", "10.0.0.1")
            == Some((
                HealthState::Unhealthy,
                Some("Target.ResponseCodeMismatch".into())
            )))
        .await
    );
    let description = alb.target_health("tg").expect("group")[0]
        .target_health
        .description
        .clone();
    assert_eq!(
        description.as_deref(),
        Some("Health checks failed with these codes: [503]")
    );
    let before = a.served();
    for _ in 0..6 {
        assert_eq!(
            get(addr(&alb), "/").await,
            (StatusCode::OK, Bytes::from("b"))
        );
    }
    assert_eq!(
        a.served(),
        before,
        "an unhealthy target gets nothing while another is healthy"
    );

    // A check that outlasts the 1 s (50 ms real) timeout.
    b.health_delay_ms
        .store(200, std::sync::atomic::Ordering::SeqCst);
    assert!(
        eventually(2.0, || state_of(&alb, "tg", "10.0.0.2")
            == Some((HealthState::Unhealthy, Some("Target.Timeout".into()))))
        .await
    );
    // Healthy again after HealthyThresholdCount (2) successes.
    a.set_health(200);
    all_healthy(&alb, "tg", &["10.0.0.1"]).await;
}

#[tokio::test]
async fn when_every_target_is_unhealthy_the_group_fails_open_to_all_of_them() {
    let a = TestTarget::start("a").await;
    let b = TestTarget::start("b").await;
    let alb = Alb::start(
        config(
            vec![ip_group("tg", &["10.0.0.1", "10.0.0.2"])],
            Action::forward("tg"),
        ),
        options(resolver(&[("10.0.0.1", a.addr), ("10.0.0.2", b.addr)])),
    )
    .await
    .expect("starts");
    all_healthy(&alb, "tg", &["10.0.0.1", "10.0.0.2"]).await;
    a.set_health(500);
    b.set_health(500);
    assert!(
        eventually(2.0, || ["10.0.0.1", "10.0.0.2"].iter().all(|id| matches!(
            state_of(&alb, "tg", id),
            Some((HealthState::Unhealthy, _))
        )))
        .await
    );
    for _ in 0..10 {
        assert_eq!(get(addr(&alb), "/").await.0, StatusCode::OK);
    }
    assert_eq!(
        (a.served(), b.served()),
        (5, 5),
        "round robin over all unhealthy targets"
    );
}
