//! The load generator against the pod app: open-loop rate, capacity, the client's concurrency
//! bound, outcomes around a kill, and the check of acknowledged writes against the store.

mod common;

use std::time::{Duration, Instant};

use common::*;
use costop_traffic::{AppHandle, LoadError, LoadSpec, Outcome, Window, run};

/// The app's address as the cluster names it: 127.a.b.c is served for 10.a.b.c.
fn cluster_url(app: &AppHandle) -> String {
    let addr = app.addr();
    let [_, b, c, d] = match addr.ip() {
        std::net::IpAddr::V4(v4) => v4.octets(),
        std::net::IpAddr::V6(_) => unreachable!("apps serve on IPv4 loopback"),
    };
    format!("http://10.{b}.{c}.{d}:{}", addr.port())
}

#[tokio::test]
async fn the_load_generator_keeps_its_rate_against_a_slow_server() {
    // One worker taking 400 ms: a closed-loop client would manage about 2.5 requests a second.
    let (app, _store) = serving(spec("127.78.0.1", 1, 400, 1_000, true));
    let mut load = LoadSpec::new(cluster_url(&app), 50.0, Duration::from_secs(1));
    load.timeout = Duration::from_millis(300);
    let report = run(load).await.unwrap();
    assert_eq!(report.records.len(), 50);
    for r in &report.records {
        let late = r.sent_at.saturating_sub(r.scheduled_at);
        assert!(
            late < Duration::from_millis(100),
            "{} sent {late:?} late",
            r.id
        );
    }
    let last = report.records.last().unwrap();
    assert!(
        last.sent_at < Duration::from_millis(1_100),
        "{:?}",
        last.sent_at
    );
    let all = report.summary(Window::all());
    assert_eq!(all.sent, 50);
    assert_eq!(all.dropped_by_client, 0);
    assert!(all.timeouts > 40, "{all:?}");
    app.kill();
    app.wait().await;
}

#[tokio::test]
async fn at_half_capacity_no_request_is_answered_503() {
    // 2 workers × 1 / 50 ms = 40 requests a second; offer 20.
    let (app, store) = serving(spec("127.78.0.2", 2, 50, 4, true));
    let mut load = LoadSpec::new(cluster_url(&app), 20.0, Duration::from_secs(2));
    load.write_ratio = 0.5;
    let mut report = run(load).await.unwrap();
    assert_eq!(report.check_writes(&store), 0);
    let all = report.summary(Window::all());
    assert_eq!(all.sent, 40);
    assert_eq!(all.by_status.get(&503), None, "{all:?}");
    assert_eq!(all.ok_2xx + all.by_status.get(&404).unwrap_or(&0), 40);
    assert!(all.acknowledged_writes > 0);
    assert_eq!(app.stats().rejected_503, 0);
    app.kill();
    app.wait().await;
}

#[tokio::test]
async fn at_three_times_capacity_the_queue_fills_and_503s_appear() {
    let (app, _store) = serving(spec("127.78.0.3", 2, 50, 4, true));
    let load = LoadSpec::new(cluster_url(&app), 120.0, Duration::from_secs(2));
    let report = run(load).await.unwrap();
    let all = report.summary(Window::all());
    let rejected = *all.by_status.get(&503).unwrap_or(&0);
    assert!(rejected > 60, "{all:?}");
    // Served at about capacity: 40 a second for 2 s, plus what the queue held.
    let served = all.sent - rejected;
    assert!((60..=100).contains(&served), "{all:?}");
    assert_eq!(app.stats().rejected_503, rejected);
    app.kill();
    app.wait().await;
}

#[tokio::test]
async fn requests_beyond_the_clients_concurrency_bound_are_dropped_by_the_client_not_sent() {
    let (app, _store) = serving(spec("127.78.0.4", 8, 500, 16, true));
    let mut load = LoadSpec::new(cluster_url(&app), 40.0, Duration::from_millis(500));
    load.max_in_flight = 2;
    let report = run(load).await.unwrap();
    let all = report.summary(Window::all());
    assert_eq!(all.sent + all.dropped_by_client, 20);
    assert!(all.dropped_by_client >= 15, "{all:?}");
    assert!(all.sent >= 2);
    assert!(
        report
            .records
            .iter()
            .filter(|r| r.outcome == Outcome::DroppedByClient)
            .all(|r| r.latency.is_none())
    );
    app.kill();
    app.wait().await;
}

#[tokio::test]
async fn acknowledged_writes_are_all_in_the_store_and_a_dropped_one_is_counted_lost() {
    let (app, store) = serving(spec("127.78.0.5", 4, 5, 16, true));
    let mut load = LoadSpec::new(cluster_url(&app), 50.0, Duration::from_secs(1));
    load.write_ratio = 1.0;
    let mut report = run(load).await.unwrap();
    assert_eq!(report.check_writes(&store), 0);
    let all = report.summary(Window::all());
    assert_eq!(all.acknowledged_writes, 50, "{all:?}");
    assert_eq!(all.lost_writes, 0);
    let victim = report.records[10].receipt.clone().unwrap();
    assert!(store.remove(&victim).is_some());
    assert_eq!(report.check_writes(&store), 1);
    assert_eq!(report.summary(Window::all()).lost_writes, 1);
    assert_eq!(report.records[10].lost, Some(true));
    app.kill();
    app.wait().await;
}

#[tokio::test]
async fn a_kill_mid_run_shows_as_resets_and_connect_errors_after_it_and_none_before() {
    // 8 workers × 1 / 100 ms = 80 a second, offered 40: no queue builds before the kill.
    let (app, store) = serving(spec("127.78.0.6", 8, 100, 64, true));
    let mut load = LoadSpec::new(cluster_url(&app), 40.0, Duration::from_millis(1_500));
    load.write_ratio = 0.5;
    load.timeout = Duration::from_secs(1);
    let killer = app.clone();
    let kill_at = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let at = Instant::now();
        killer.kill();
        at
    });
    let mut report = run(load).await.unwrap();
    let killed = report.offset(kill_at.await.unwrap());
    assert_eq!(
        report.check_writes(&store),
        0,
        "acknowledged before the kill"
    );

    let before = report.summary(Window::before(killed - Duration::from_millis(300)));
    assert_eq!(
        before.ok_2xx + before.by_status.get(&404).unwrap_or(&0),
        before.sent
    );
    let around = report.summary(Window::between(killed - Duration::from_millis(300), killed));
    assert!(
        around.resets > 0,
        "requests in service at the kill: {around:?}"
    );
    let after = report.summary(Window::after(killed + Duration::from_millis(100)));
    assert!(after.sent > 10);
    assert_eq!(after.connect_errors, after.sent, "{after:?}");
    assert_eq!(app.wait().await, costop_traffic::Exit::Killed);
}

#[tokio::test]
async fn records_export_as_json_with_millisecond_offsets() {
    let (app, _store) = serving(spec("127.78.0.7", 1, 0, 0, true));
    let mut load = LoadSpec::new(cluster_url(&app), 20.0, Duration::from_millis(200));
    load.write_ratio = 1.0;
    let report = run(load).await.unwrap();
    let json = serde_json::to_value(&report).unwrap();
    let first = &json["records"][0];
    assert_eq!(first["kind"], "write");
    assert_eq!(first["outcome"], "status");
    assert_eq!(first["status"], 201);
    assert!(first["sent_at_ms"].as_f64().unwrap() < 50.0);
    assert!(first["latency_ms"].as_f64().unwrap() > 0.0);
    let back: costop_traffic::LoadReport = serde_json::from_value(json).unwrap();
    assert_eq!(back.records.len(), report.records.len());
    assert_eq!(back.records[0].outcome, Outcome::Status(201));
    app.kill();
    app.wait().await;
}

#[tokio::test]
async fn a_base_url_outside_the_bed_is_refused_before_any_request() {
    for url in [
        "http://192.168.1.1:80",
        "http://8.8.8.8",
        "http://example.com",
    ] {
        let err = run(LoadSpec::new(url, 10.0, Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert!(matches!(err, LoadError::Dial { .. }), "{url}: {err}");
    }
}
