//! What the fallback adds to a read it forwards: the same GET sent to a loopback service
//! straight (the baseline: one HTTP round trip through the same client) and through the
//! fallback's handler (`Fallback::handle`: route match, policy, hop-by-hop filtering, the
//! upstream call, the response mapped back), alternately, after a warm-up. Reported: p50 and
//! p99 of each, and the added latency (forwarded minus direct, per percentile).
//!
//! In process, on purpose: it measures the fallback's own work. On AWS a rerouted request also
//! pays the ALB's invocation of the Lambda function (the ALB → Lambda hop, not measurable
//! here), which the figure does not include.
//!
//! `cargo xtask bench fallback [-- --requests N] [--json]`; `--json` prints one object with
//! `requests`, `direct_p50_ms`, `direct_p99_ms`, `forwarded_p50_ms`, `forwarded_p99_ms`,
//! `added_p50_ms`, `added_p99_ms`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use costop_adapters::HttpUpstream;
use costop_app::Fallback;
use costop_app::fakes::FakeQueue;
use costop_app::ports::Upstream;
use costop_core::Config;
use costop_tests::upstream::TestUpstream;
use serde_json::json;

/// The fallback's ports for a forward: an (unused) queue and the real HTTP upstream.
struct World {
    queue: FakeQueue,
    upstream: HttpUpstream,
}

costop_app::has_ports!(World {
    queue: FakeQueue,
    upstream: HttpUpstream,
});

const WARM_UP: usize = 200;

fn read() -> http::Request<Bytes> {
    http::Request::builder()
        .method("GET")
        .uri("/items/42?view=full")
        .header("x-forwarded-for", "203.0.113.7")
        .body(Bytes::new())
        .expect("a valid request")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let json = argv.iter().any(|a| a == "--json");
    let requests: usize = argv
        .iter()
        .position(|a| a == "--requests")
        .and_then(|i| argv.get(i + 1))
        .map(|v| v.parse().expect("--requests N"))
        .unwrap_or(5000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let service = TestUpstream::start(|_, _| 200).await;
        let config = Config::from_env([("COSTOP_FALLBACK_UPSTREAM", service.url.as_str())])
            .expect("config");
        let direct = HttpUpstream::new(&config.fallback_upstream);
        let fallback = Fallback::new(
            World {
                queue: FakeQueue::default(),
                upstream: HttpUpstream::new(&config.fallback_upstream),
            },
            config,
        );
        let (mut straight, mut through) = (Vec::new(), Vec::new());
        for i in 0..WARM_UP + requests {
            let t = Instant::now();
            let r = direct
                .send(read(), Duration::from_secs(5))
                .await
                .expect("the service answers");
            assert_eq!(r.status(), 200);
            let d = t.elapsed();
            let t = Instant::now();
            let (r, _) = fallback.handle(read()).await;
            assert_eq!(r.status(), 200, "forwarded");
            let f = t.elapsed();
            if i >= WARM_UP {
                straight.push(d.as_secs_f64() * 1000.0);
                through.push(f.as_secs_f64() * 1000.0);
            }
        }
        straight.sort_by(f64::total_cmp);
        through.sort_by(f64::total_cmp);
        let (d50, d99) = (percentile(&straight, 0.5), percentile(&straight, 0.99));
        let (f50, f99) = (percentile(&through, 0.5), percentile(&through, 0.99));
        let out = json!({
            "requests": requests,
            "direct_p50_ms": d50,
            "direct_p99_ms": d99,
            "forwarded_p50_ms": f50,
            "forwarded_p99_ms": f99,
            "added_p50_ms": f50 - d50,
            "added_p99_ms": f99 - d99,
        });
        if json {
            println!("{out}");
        } else {
            println!(
                "{requests} reads: direct p50 {d50:.3} ms p99 {d99:.3} ms; through the fallback p50 {f50:.3} ms p99 {f99:.3} ms; added p50 {:.3} ms p99 {:.3} ms",
                f50 - d50,
                f99 - d99
            );
        }
    });
}
