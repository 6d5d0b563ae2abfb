//! The fallback's own time, read off the ALB stand-in's access log as one reads it off a real
//! ALB's (`target_processing_time` of the requests whose target is the function): per kind of
//! request — writes, which the fallback queues, and reads, which it forwards — over the run and
//! per interval from the warning, so a run that failed says whether the function was slow, and
//! when.

use std::time::{Duration, SystemTime};

use albsim::AccessRecord;
use costop_traffic::loadgen::percentile_ms;
use serde::Serialize;

/// Percentiles of the function's processing time, ms.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Times {
    pub count: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Times {
    fn of(mut d: Vec<Duration>) -> Self {
        d.sort_unstable();
        Times {
            count: d.len(),
            p50_ms: percentile_ms(&d, 0.50),
            p99_ms: percentile_ms(&d, 0.99),
            max_ms: percentile_ms(&d, 1.0),
        }
    }
}

/// The function's time for queued writes and forwarded reads.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FallbackTime {
    pub queue: Times,
    pub forward: Times,
}

fn is_function(r: &AccessRecord) -> bool {
    r.target_id
        .as_deref()
        .is_some_and(|t| t.starts_with("arn:aws:lambda:"))
}

fn is_write(r: &AccessRecord) -> bool {
    !matches!(r.method.as_str(), "GET" | "HEAD" | "OPTIONS")
}

/// Requests that reached the function (the ALB's own refusals, throttles included, carry no
/// processing time and are counted by the causes instead).
fn timed(records: &[AccessRecord]) -> impl Iterator<Item = (&AccessRecord, Duration)> {
    records
        .iter()
        .filter(|r| is_function(r))
        .filter_map(|r| Some((r, r.target_processing_time?)))
}

/// Over the whole run.
pub fn summary(records: &[AccessRecord]) -> FallbackTime {
    let (w, r): (Vec<_>, Vec<_>) = timed(records).partition(|(r, _)| is_write(r));
    FallbackTime {
        queue: Times::of(w.into_iter().map(|(_, d)| d).collect()),
        forward: Times::of(r.into_iter().map(|(_, d)| d).collect()),
    }
}

/// One line per `step` from `from` (the warning) while the function answered anything:
/// seconds since `from` (simulated: × `scale`), then writes and reads with their p50/p99/max,
/// and the ALB's own answers for the function (throttles, timeouts) in that step.
pub fn timeline(
    records: &[AccessRecord],
    from: SystemTime,
    step: Duration,
    scale: f64,
) -> Vec<String> {
    let bucket = |t: SystemTime| -> Option<usize> {
        let d = t.duration_since(from).ok()?;
        Some((d.as_secs_f64() / step.as_secs_f64()) as usize)
    };
    let mut steps: std::collections::BTreeMap<usize, (Vec<Duration>, Vec<Duration>, usize)> =
        Default::default();
    for r in records.iter().filter(|r| is_function(r)) {
        let Some(b) = bucket(r.time) else { continue };
        let e = steps.entry(b).or_default();
        match r.target_processing_time {
            Some(d) if is_write(r) => e.0.push(d),
            Some(d) => e.1.push(d),
            None => e.2 += 1,
        }
        if r.target_processing_time.is_some() && r.elb_status_code >= 500 {
            e.2 += 1;
        }
    }
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
    steps
        .into_iter()
        .map(|(b, (w, r, refused))| {
            let (w, r) = (Times::of(w), Times::of(r));
            format!(
                "{:>6.0} s  writes {:>5} p50 {:>6} p99 {:>6} max {:>6} ms  reads {:>5} p50 {:>6} p99 {:>6} ms  5xx {:>5}",
                b as f64 * step.as_secs_f64() * scale,
                w.count,
                ms(w.p50_ms),
                ms(w.p99_ms),
                ms(w.max_ms),
                r.count,
                ms(r.p50_ms),
                ms(r.p99_ms),
                refused,
            )
        })
        .collect()
}
