//! Logs and metrics output: structured JSON logs (one line per event, fields carry event id,
//! instance and node) and CloudWatch EMF metric lines on stdout, where Lambda ships them to
//! CloudWatch Logs and CloudWatch extracts the metrics — no PutMetricData call, no extra IAM.
//! [`interruption`], [`keeper`] and [`fallback`] say what each function logs and measures.

pub mod fallback;
pub mod interruption;
pub mod keeper;

use std::io::Write;

use tracing_subscriber::EnvFilter;

/// JSON logs to stdout at `level` (or `RUST_LOG` when set). Call once at start-up.
pub fn init_json_logs(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Human-readable logs to stderr (CLI, demo).
pub fn init_text_logs(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Print EMF documents to stdout, one per line, where CloudWatch Logs extracts them.
pub fn emit(docs: &[serde_json::Value]) {
    let mut out = std::io::stdout().lock();
    for doc in docs {
        let _ = writeln!(out, "{doc}");
    }
}
