//! Changes through `apply`: the propagation delay, draining, registration.

mod support;

use std::time::Duration;

use albsim::{Action, Alb, HealthState};
use bytes::Bytes;
use http::StatusCode;
use support::*;

#[tokio::test]
async fn a_deregistered_target_finishes_in_flight_requests_gets_no_new_ones_and_is_gone_after_the_delay()
 {
    let a = TestTarget::start("a").await;
    let b = TestTarget::start("b").await;
    let resolver = resolver(&[("10.0.0.1", a.addr), ("10.0.0.2", b.addr)]);
    let mut tg = ip_group("tg", &["10.0.0.1", "10.0.0.2"]);
    tg.attributes.deregistration_delay_seconds = 20; // 1 s real
    let alb = Alb::start(
        config(vec![tg.clone()], Action::forward("tg")),
        options(resolver),
    )
    .await
    .expect("starts");
    all_healthy(&alb, "tg", &["10.0.0.1", "10.0.0.2"]).await;
    let at = addr(&alb);
    // Hold one request on each target.
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(at, "/hold").await }))
        .collect();
    assert!(eventually(2.0, || a.served() == 1 && b.served() == 1).await);

    tg.targets.retain(|t| t.id == "10.0.0.2");
    let applied = std::time::Instant::now();
    alb.apply(config(vec![tg], Action::forward("tg")))
        .await
        .expect("applies");
    assert_eq!(
        state_of(&alb, "tg", "10.0.0.1"),
        Some((
            HealthState::Draining,
            Some("Target.DeregistrationInProgress".into())
        )),
        "reported at once"
    );
    // After the propagation delay (100 ms) no new request reaches it.
    tokio::time::sleep(Duration::from_millis(150)).await;
    for _ in 0..6 {
        assert_eq!(get(at, "/").await, (StatusCode::OK, Bytes::from("b")));
    }
    assert_eq!(a.served(), 1);
    // Its in-flight request completes.
    a.release();
    b.release();
    for h in held {
        assert_eq!(h.await.expect("held").0, StatusCode::OK);
    }
    assert!(
        state_of(&alb, "tg", "10.0.0.1").is_some(),
        "still draining before the delay"
    );
    assert!(eventually(3.0, || state_of(&alb, "tg", "10.0.0.1").is_none()).await);
    assert!(
        applied.elapsed() >= Duration::from_millis(950),
        "gone only after the delay"
    );
}

#[tokio::test]
async fn changes_reach_the_data_plane_only_after_the_propagation_delay() {
    let old = TestTarget::start("old").await;
    let new = TestTarget::start("new").await;
    let resolver = resolver(&[("10.0.0.1", old.addr), ("10.0.0.2", new.addr)]);
    let groups = vec![
        ip_group("tg-old", &["10.0.0.1"]),
        ip_group("tg-new", &["10.0.0.2"]),
    ];
    let mut o = options(resolver);
    o.propagation_delay = Duration::from_secs(10); // 500 ms real
    let alb = Alb::start(config(groups.clone(), Action::forward("tg-old")), o)
        .await
        .expect("starts");
    all_healthy(&alb, "tg-old", &["10.0.0.1"]).await;
    // tg-new is not used by any rule yet.
    assert!(matches!(
        state_of(&alb, "tg-new", "10.0.0.2"),
        Some((HealthState::Unused, _))
    ));
    let applied = std::time::Instant::now();
    alb.apply(config(
        groups,
        Action::forward_weighted([("tg-old", 0), ("tg-new", 1)]),
    ))
    .await
    .expect("applies");
    let mut switched_at = None;
    while applied.elapsed() < Duration::from_secs(2) {
        let (status, body) = get(addr(&alb), "/").await;
        assert_eq!(status, StatusCode::OK);
        if body == "new" {
            switched_at = Some(applied.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let switched_at = switched_at.expect("the new weights took effect");
    assert!(
        switched_at >= Duration::from_millis(480),
        "switched after {switched_at:?}"
    );
    assert!(old.served() > 3, "the old rule served meanwhile");

    // A registered target is initial (registration in progress) until the change propagates.
    let mut groups = vec![
        ip_group("tg-old", &["10.0.0.1", "10.0.0.2"]),
        ip_group("tg-new", &["10.0.0.2"]),
    ];
    groups[0].health_check.healthy_threshold = Some(2);
    alb.apply(config(groups, Action::forward("tg-old")))
        .await
        .expect("applies");
    assert_eq!(
        state_of(&alb, "tg-old", "10.0.0.2"),
        Some((
            HealthState::Initial,
            Some("Elb.RegistrationInProgress".into())
        ))
    );
    all_healthy(&alb, "tg-old", &["10.0.0.2"]).await;
}
