//! The pod app: endpoints, readiness, and each way its process can end.

mod common;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use costop_traffic::app::Phase;
use costop_traffic::{App, AppError, Exit, Store};

const LONG_GRACE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_app_refuses_connections_until_it_is_ready_then_answers_healthz() {
    let store = Arc::new(Store::new());
    let app = App::start(spec("127.77.0.1", 1, 0, 0, true), store).unwrap();
    assert_eq!(app.phase(), Phase::Starting);
    assert!(refused(app.addr()).await);
    app.set_ready(true).unwrap();
    assert_eq!(app.phase(), Phase::Serving);
    let mut c = connect(app.addr()).await.unwrap();
    let a = exchange(&mut c, "GET", "/healthz", None, "").await.unwrap();
    assert_eq!(a.status, 200);
    app.kill();
    assert_eq!(app.wait().await, Exit::Killed);
}

#[tokio::test]
async fn healthz_answers_503_while_the_app_says_it_is_not_ready_and_items_are_still_served() {
    let (app, _store) = serving(spec("127.77.0.2", 1, 0, 0, true));
    app.set_ready(false).unwrap();
    let mut c = connect(app.addr()).await.unwrap();
    assert_eq!(
        exchange(&mut c, "GET", "/healthz", None, "")
            .await
            .unwrap()
            .status,
        503
    );
    assert_eq!(
        exchange(&mut c, "GET", "/items/k", None, "")
            .await
            .unwrap()
            .status,
        404
    );
    app.set_ready(true).unwrap();
    assert_eq!(
        exchange(&mut c, "GET", "/healthz", None, "")
            .await
            .unwrap()
            .status,
        200
    );
    app.kill();
    app.wait().await;
}

#[tokio::test]
async fn an_app_outside_loopback_or_without_workers_does_not_start() {
    let store = Arc::new(Store::new());
    let mut outside = spec("127.77.0.3", 1, 0, 0, true);
    outside.addr = "10.0.0.1:0".parse().unwrap();
    assert!(matches!(
        App::start(outside, store.clone()),
        Err(AppError::NotLoopback { .. })
    ));
    assert!(matches!(
        App::start(spec("127.77.0.3", 0, 0, 0, true), store),
        Err(AppError::NoWorkers)
    ));
}

#[tokio::test]
async fn a_write_is_in_the_store_when_it_is_acknowledged_and_a_read_returns_it() {
    let (app, store) = serving(spec("127.77.0.4", 2, 0, 0, true));
    let mut c = connect(app.addr()).await.unwrap();
    let a = exchange(&mut c, "POST", "/items/k1", Some("w-1"), "hello")
        .await
        .unwrap();
    assert_eq!(a.status, 201);
    assert_eq!(a.body, "w-1");
    assert!(store.contains("w-1"));
    let r = exchange(&mut c, "GET", "/items/k1", None, "")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "hello");
    assert_eq!(r.headers.get("x-request-id").unwrap(), "w-1");
    assert_eq!(app.stats().served, 2);
    app.kill();
    app.wait().await;
}

#[tokio::test]
async fn malformed_requests_get_400_and_unknown_paths_404() {
    let (app, store) = serving(spec("127.77.0.5", 1, 0, 0, true));
    let mut c = connect(app.addr()).await.unwrap();
    let no_id = exchange(&mut c, "POST", "/items/k", None, "x")
        .await
        .unwrap();
    assert_eq!(no_id.status, 400);
    let bad_id = exchange(&mut c, "POST", "/items/k", Some("a b"), "x")
        .await
        .unwrap();
    assert_eq!(bad_id.status, 400);
    for path in ["/nope", "/items/", "/items/a/b", "/"] {
        let a = exchange(&mut c, "GET", path, None, "").await.unwrap();
        assert_eq!(a.status, 404, "{path}");
    }
    let method = exchange(&mut c, "DELETE", "/items/k", None, "")
        .await
        .unwrap();
    assert_eq!(method.status, 405);
    assert!(store.is_empty());

    let mut raw = connect(app.addr()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, b"this is not http\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut raw).await.unwrap().status, 400);
    app.kill();
    app.wait().await;
}

#[tokio::test]
async fn graceful_termination_finishes_requests_in_flight_and_queued_and_refuses_new_connections() {
    // One worker: the first write is being served, the second waits in the queue.
    let (app, store) = serving(spec("127.77.0.6", 1, 300, 4, true));
    let mut first = connect(app.addr()).await.unwrap();
    let mut second = connect(app.addr()).await.unwrap();
    send(&mut first, "POST", "/items/a", Some("in-flight"), "1")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    send(&mut second, "POST", "/items/b", Some("queued"), "2")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(app.stats().in_flight, 2);

    app.terminate(Duration::ZERO, LONG_GRACE);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(app.phase(), Phase::Draining);
    assert!(refused(app.addr()).await, "the listener closes at SIGTERM");

    for (stream, id) in [(&mut first, "in-flight"), (&mut second, "queued")] {
        let a = read_answer(stream).await.unwrap();
        assert_eq!(a.status, 201);
        assert!(a.closes(), "answered Connection: close after SIGTERM");
        assert!(store.contains(id));
        assert!(closed(stream).await);
    }
    assert_eq!(app.wait().await, Exit::Graceful);
    assert_eq!(app.stats().served, 2);
}

#[tokio::test]
async fn graceful_termination_serves_normally_during_the_prestop_hook() {
    let (app, _store) = serving(spec("127.77.0.7", 2, 0, 0, true));
    let began = Instant::now();
    app.terminate(Duration::from_millis(400), LONG_GRACE);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.phase(), Phase::PreStop);
    let mut c = connect(app.addr())
        .await
        .expect("still listening in preStop");
    let a = exchange(&mut c, "GET", "/healthz", None, "").await.unwrap();
    assert_eq!(a.status, 200);
    assert!(!a.closes(), "kept alive during preStop");

    assert_eq!(app.wait().await, Exit::Graceful);
    assert!(began.elapsed() >= Duration::from_millis(400));
    assert!(refused(app.addr()).await);
    assert!(
        closed(&mut c).await,
        "the idle kept-alive connection is closed"
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_at_sigterm() {
    let (app, _store) = serving(spec("127.77.0.8", 1, 0, 0, true));
    let mut c = connect(app.addr()).await.unwrap();
    assert_eq!(
        exchange(&mut c, "GET", "/healthz", None, "")
            .await
            .unwrap()
            .status,
        200
    );
    app.terminate(Duration::ZERO, LONG_GRACE);
    assert!(closed(&mut c).await);
    assert_eq!(app.wait().await, Exit::Graceful);
}

#[tokio::test]
async fn a_request_still_running_when_the_grace_period_ends_is_reset() {
    let (app, store) = serving(spec("127.77.0.9", 1, 3_000, 0, true));
    let mut c = connect(app.addr()).await.unwrap();
    send(&mut c, "POST", "/items/a", Some("too-slow"), "1")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let began = Instant::now();
    app.terminate(Duration::from_millis(100), Duration::from_millis(400));
    let err = read_answer(&mut c).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    assert_eq!(app.wait().await, Exit::KilledAtGracePeriod);
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(
        !store.contains("too-slow"),
        "never acknowledged, never stored"
    );
    assert_eq!(app.stats().in_flight, 0);
}

#[tokio::test]
async fn a_prestop_hook_longer_than_the_grace_period_ends_in_a_kill() {
    let (app, _store) = serving(spec("127.77.0.10", 1, 0, 0, true));
    let mut c = connect(app.addr()).await.unwrap();
    exchange(&mut c, "GET", "/healthz", None, "").await.unwrap();
    app.terminate(Duration::from_secs(5), Duration::from_millis(200));
    assert_eq!(app.wait().await, Exit::KilledAtGracePeriod);
    let mut byte = [0u8; 1];
    let err = tokio::io::AsyncReadExt::read(&mut c, &mut byte)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn a_non_graceful_app_serves_through_prestop_then_resets_its_connections_at_sigterm() {
    let (app, store) = serving(spec("127.77.0.11", 1, 2_000, 0, false));
    app.terminate(Duration::from_millis(300), LONG_GRACE);
    let mut c = connect(app.addr()).await.expect("listening during preStop");
    send(&mut c, "POST", "/items/a", Some("cut"), "1")
        .await
        .unwrap();
    let began = Instant::now();
    let err = read_answer(&mut c).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    assert!(began.elapsed() < Duration::from_millis(1_500));
    assert_eq!(app.wait().await, Exit::AtSigterm);
    assert!(refused(app.addr()).await);
    assert!(!store.contains("cut"));
}

#[tokio::test]
async fn kill_resets_every_connection_at_once_and_answers_nothing_more() {
    let (app, _store) = serving(spec("127.77.0.12", 1, 2_000, 4, true));
    let mut busy = connect(app.addr()).await.unwrap();
    let mut queued = connect(app.addr()).await.unwrap();
    let mut idle = connect(app.addr()).await.unwrap();
    send(&mut busy, "POST", "/items/a", Some("a"), "1")
        .await
        .unwrap();
    send(&mut queued, "POST", "/items/b", Some("b"), "1")
        .await
        .unwrap();
    exchange(&mut idle, "GET", "/healthz", None, "")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let began = Instant::now();
    app.kill();
    for stream in [&mut busy, &mut queued] {
        let err = read_answer(stream).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    }
    let err = exchange(&mut idle, "GET", "/healthz", None, "")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{err}"
    );
    assert_eq!(app.wait().await, Exit::Killed);
    assert!(began.elapsed() < Duration::from_millis(500));
    assert!(refused(app.addr()).await);
    assert_eq!(app.stats().in_flight, 0);
    assert!(
        app.set_ready(true).is_err(),
        "a killed app cannot come back"
    );
}

#[tokio::test]
async fn every_acknowledged_write_is_in_the_store_when_the_app_is_killed_mid_load() {
    let (app, store) = serving(spec("127.77.0.13", 4, 5, 64, true));
    let addr = app.addr();
    let mut writers = Vec::new();
    for w in 0..8 {
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let Ok(mut c) = connect(addr).await else {
                return acked;
            };
            for i in 0..1_000 {
                let id = format!("w{w}-{i}");
                match exchange(&mut c, "POST", "/items/k", Some(&id), "x").await {
                    Ok(a) if a.status == 201 => acked.push(id),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.kill();
    let mut acknowledged = 0;
    for w in writers {
        for id in w.await.unwrap() {
            assert!(store.contains(&id), "{id} acknowledged but not stored");
            acknowledged += 1;
        }
    }
    assert!(acknowledged > 0);
    assert_eq!(app.wait().await, Exit::Killed);
}

#[tokio::test]
async fn dropping_the_last_handle_kills_the_app() {
    let (app, _store) = serving(spec("127.77.0.14", 1, 0, 0, true));
    let addr = app.addr();
    let mut c = connect(addr).await.unwrap();
    exchange(&mut c, "GET", "/healthz", None, "").await.unwrap();
    let clone = app.clone();
    drop(app);
    assert!(!refused(addr).await, "a clone still drives the app");
    drop(clone);
    assert!(closed(&mut c).await);
    assert!(refused(addr).await);
}

#[tokio::test]
async fn terminating_an_app_that_never_became_ready_ends_gracefully() {
    let store = Arc::new(Store::new());
    let app = App::start(spec("127.77.0.15", 1, 0, 0, true), store).unwrap();
    app.terminate(Duration::ZERO, LONG_GRACE);
    assert_eq!(app.wait().await, Exit::Graceful);
    assert!(matches!(app.set_ready(true), Err(AppError::Gone { .. })));
    assert!(refused(app.addr()).await);
}

#[test]
fn a_handle_outliving_its_runtime_drops_quietly() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (app, _store) = runtime.block_on(async { serving(spec("127.77.0.16", 1, 0, 0, true)) });
    drop(runtime);
    app.kill();
    drop(app);
}
