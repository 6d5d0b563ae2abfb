//! Rules, weights and the per-group algorithms.

mod support;

use albsim::{
    Action, Alb, LoadBalancingAlgorithm, Rule, RuleCondition,
    config::{HttpHeaderConfig, ValuesConfig},
};
use bytes::Bytes;
use http::StatusCode;
use support::*;

fn cond(field: &str, values: &[&str]) -> RuleCondition {
    let v = ValuesConfig {
        values: values.iter().map(|s| s.to_string()).collect(),
    };
    let mut c = RuleCondition {
        field: field.into(),
        ..RuleCondition::default()
    };
    match field {
        "path-pattern" => c.path_pattern_config = Some(v),
        "host-header" => c.host_header_config = Some(v),
        "http-request-method" => c.http_request_method_config = Some(v),
        _ => unreachable!(),
    }
    c
}

#[tokio::test]
async fn rules_are_matched_in_priority_order_on_path_host_method_and_header() {
    let api = TestTarget::start("api").await;
    let web = TestTarget::start("web").await;
    let resolver = resolver(&[("10.0.0.1", api.addr), ("10.0.0.2", web.addr)]);
    let mut cfg = config(
        vec![
            ip_group("tg-api", &["10.0.0.1"]),
            ip_group("tg-web", &["10.0.0.2"]),
        ],
        Action::forward("tg-web"),
    );
    let header = RuleCondition {
        field: "http-header".into(),
        http_header_config: Some(HttpHeaderConfig {
            http_header_name: "X-Canary".into(),
            values: vec!["ye?".into()],
        }),
        ..RuleCondition::default()
    };
    cfg.listeners[0].rules = vec![
        // Listed out of order: priority decides.
        Rule {
            priority: 20,
            conditions: vec![cond("path-pattern", &["/api/*"])],
            actions: vec![Action::forward("tg-api")],
        },
        Rule {
            priority: 10,
            conditions: vec![cond("path-pattern", &["/api/teapot"])],
            actions: vec![Action::fixed_response(418, "text/plain", "short and stout")],
        },
        Rule {
            priority: 30,
            conditions: vec![
                cond("host-header", &["*.EXAMPLE.com"]),
                cond("http-request-method", &["DELETE"]),
            ],
            actions: vec![Action::fixed_response(403, "text/plain", "no deletes")],
        },
        Rule {
            priority: 40,
            conditions: vec![header],
            actions: vec![Action::forward("tg-api")],
        },
    ];
    let alb = Alb::start(cfg, options(resolver)).await.expect("starts");
    all_healthy(&alb, "tg-api", &["10.0.0.1"]).await;
    all_healthy(&alb, "tg-web", &["10.0.0.2"]).await;
    let a = addr(&alb);

    assert_eq!(
        get(a, "/api/users?x=1").await,
        (StatusCode::OK, Bytes::from("api"))
    );
    let (status, headers, body) = send(a, "GET", "/api/teapot", &[], Bytes::new()).await;
    assert_eq!(
        (status.as_u16(), body),
        (418, Bytes::from("short and stout"))
    );
    assert_eq!(headers["server"], "awselb/2.0");
    assert_eq!(
        get(a, "/API/users").await,
        (StatusCode::OK, Bytes::from("web")),
        "paths are case-sensitive"
    );
    assert_eq!(
        send(a, "DELETE", "/x", &[], Bytes::new()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(a, "PUT", "/x", &[("x-canary", "YES")], Bytes::new())
            .await
            .2,
        Bytes::from("api")
    );
    assert_eq!(get(a, "/other").await, (StatusCode::OK, Bytes::from("web")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_forward_splits_ten_thousand_requests_eighty_twenty_within_three_points() {
    let blue = TestTarget::start("blue").await;
    let green = TestTarget::start("green").await;
    let resolver = resolver(&[("10.0.0.1", blue.addr), ("10.0.0.2", green.addr)]);
    let cfg = config(
        vec![
            ip_group("tg-blue", &["10.0.0.1"]),
            ip_group("tg-green", &["10.0.0.2"]),
        ],
        Action::forward_weighted([("tg-blue", 80), ("tg-green", 20)]),
    );
    let alb = Alb::start(cfg, options(resolver)).await.expect("starts");
    all_healthy(&alb, "tg-blue", &["10.0.0.1"]).await;
    all_healthy(&alb, "tg-green", &["10.0.0.2"]).await;
    let a = addr(&alb);
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(tokio::spawn(async move {
            let mut c = Client::connect(a).await;
            for _ in 0..2500 {
                assert_eq!(c.get("/").await.0, StatusCode::OK);
            }
        }));
    }
    for c in clients {
        c.await.expect("client");
    }
    let (b, g) = (blue.served(), green.served());
    assert_eq!(b + g, 10_000);
    let share = b as f64 / 100.0;
    assert!((77.0..=83.0).contains(&share), "blue got {share}%");
}

#[tokio::test]
async fn round_robin_takes_turns_while_least_outstanding_requests_avoids_a_busy_target() {
    for algorithm in [
        LoadBalancingAlgorithm::RoundRobin,
        LoadBalancingAlgorithm::LeastOutstandingRequests,
    ] {
        let one = TestTarget::start("one").await;
        let two = TestTarget::start("two").await;
        let resolver = resolver(&[("10.0.0.1", one.addr), ("10.0.0.2", two.addr)]);
        let mut tg = ip_group("tg", &["10.0.0.1", "10.0.0.2"]);
        tg.attributes.load_balancing_algorithm = algorithm;
        let alb = Alb::start(config(vec![tg], Action::forward("tg")), options(resolver))
            .await
            .expect("starts");
        all_healthy(&alb, "tg", &["10.0.0.1", "10.0.0.2"]).await;
        let a = addr(&alb);
        // One request held on whichever target takes it.
        let held = tokio::spawn(async move { get(a, "/hold").await });
        assert!(eventually(2.0, || one.served() + two.served() == 1).await);
        let busy_is_one = one.served() == 1;
        for _ in 0..10 {
            assert_eq!(get(a, "/").await.0, StatusCode::OK);
        }
        let (busy, idle) = if busy_is_one {
            (one.served() - 1, two.served())
        } else {
            (two.served() - 1, one.served())
        };
        match algorithm {
            LoadBalancingAlgorithm::RoundRobin => assert_eq!((busy, idle), (5, 5), "{algorithm:?}"),
            LoadBalancingAlgorithm::LeastOutstandingRequests => {
                assert_eq!((busy, idle), (0, 10), "{algorithm:?}")
            }
        }
        one.release();
        two.release();
        assert_eq!(held.await.expect("held").0, StatusCode::OK);
    }
}
