//! A Lambda service stand-in for one function: it starts the function's processes (execution
//! environments) as invocations arrive at the function's runtime API, as Lambda scales a
//! function: "When your function receives a request while it's processing a previous request,
//! Lambda launches another instance of your function to handle the increased load", up to the
//! function's concurrency limit
//! (<https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html>). Each environment
//! handles one invocation at a time and stays warm afterwards. A new environment costs
//! `cold_start` (the sandbox) before the process starts, then the process's own init. Processes
//! die with the bed (see [`crate::process`]).
//!
//! The function's concurrency is a limit on invocations in flight, not a queue: one beyond it
//! is throttled at the runtime API ([`albsim::RuntimeApi::limit_concurrency`]), and the load
//! balancer answers it with an error, as on AWS. So that AWS's concurrency (1,000 an account by
//! default) fits on a small machine, a process may carry several environments
//! (`per_process`): it takes that many invocations side by side
//! (`AWS_LAMBDA_MAX_CONCURRENCY`, the runtime's multi-concurrency mode, which Lambda Managed
//! Instances use). What the load balancer sees — invocations in flight, throttling, a cold
//! start before a new place answers — is per invocation either way.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};

use albsim::RuntimeApi;
use tokio::process::Child;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::BedError;

/// How often the service looks again when nothing signalled (an invocation can wait for an
/// environment that was starting and then died).
const RECHECK: Duration = Duration::from_millis(100);

/// One function as the service runs it.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The function's binary (its `bootstrap`).
    pub binary: PathBuf,
    /// Its environment (without `AWS_LAMBDA_RUNTIME_API`, which the service sets).
    pub env: Vec<(String, String)>,
    /// Invocations in flight at most (its reserved concurrency, or the account's); more are
    /// throttled.
    pub max_concurrency: usize,
    /// Environments a process carries (invocations it takes side by side); 1 is Lambda's own
    /// model.
    pub per_process: usize,
    /// The sandbox's part of a cold start (real time).
    pub cold_start: Duration,
}

/// A running service; dropping it stops the function's processes.
pub struct LambdaService {
    task: JoinHandle<()>,
    counts: Arc<Counts>,
    api: Arc<RuntimeApi>,
}

/// Processes live (started, not ended) and started in all.
#[derive(Default)]
struct Counts {
    live: AtomicUsize,
    started: AtomicUsize,
}

impl Drop for LambdaService {
    fn drop(&mut self) {
        // The scaling task owns every environment's task, each its process (killed on drop).
        self.task.abort();
    }
}

impl LambdaService {
    /// Function processes started so far (ended ones included).
    pub fn processes(&self) -> usize {
        self.counts.started.load(Ordering::SeqCst)
    }

    /// Function processes alive now (starting or running).
    pub fn live(&self) -> usize {
        self.counts.live.load(Ordering::SeqCst)
    }

    /// The most invocations in flight at once so far: the execution environments Lambda
    /// would have run.
    pub fn peak_concurrency(&self) -> usize {
        self.api.peak_concurrency()
    }

    /// Invocations throttled so far (the function's concurrency was in use).
    pub fn throttled(&self) -> usize {
        self.api.throttled()
    }
}

/// The binary `name` beside the running executable, or beside its directory's parent (a test
/// or bench runs from `target/<profile>/deps/`, the binaries are in `target/<profile>/`).
pub fn beside_current_exe(name: &str) -> Result<PathBuf, BedError> {
    let exe = std::env::current_exe().map_err(|source| BedError::Io {
        what: "find the running executable".into(),
        source,
    })?;
    let dir = exe
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    [dir.join(name), dir.parent().map(|p| p.join(name)).unwrap_or_default()]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            BedError::Seed(format!(
                "no `{name}` binary beside {} (build it: cargo build -p {name}, with --release for a release build)",
                exe.display()
            ))
        })
}

/// Starts serving `api`'s invocations with `spec`'s processes. The binary must exist.
pub fn start(api: Arc<RuntimeApi>, spec: FunctionSpec) -> Result<LambdaService, BedError> {
    if !spec.binary.is_file() {
        return Err(BedError::Seed(format!(
            "the function's binary {} is missing (build it: cargo build --release -p costop-fallback)",
            spec.binary.display()
        )));
    }
    api.limit_concurrency(spec.max_concurrency);
    let counts = Arc::new(Counts::default());
    let task = tokio::spawn(scale(api.clone(), spec, counts.clone()));
    Ok(LambdaService { task, counts, api })
}

/// Processes to start now: enough that every invocation in flight has a place, in live
/// processes (running or still starting) or new ones, within the function's concurrency.
fn wanted(in_flight: usize, live: usize, spec: &FunctionSpec) -> usize {
    let per = spec.per_process.max(1);
    let most = spec.max_concurrency.div_ceil(per);
    in_flight
        .saturating_sub(live * per)
        .div_ceil(per)
        .min(most.saturating_sub(live))
}

async fn scale(api: Arc<RuntimeApi>, spec: FunctionSpec, counts: Arc<Counts>) {
    let mut environments = JoinSet::new();
    loop {
        let _ = tokio::time::timeout(RECHECK, api.demand()).await;
        while environments.try_join_next().is_some() {}
        let live = counts.live.load(Ordering::SeqCst);
        for _ in 0..wanted(api.concurrency(), live, &spec) {
            counts.live.fetch_add(1, Ordering::SeqCst);
            counts.started.fetch_add(1, Ordering::SeqCst);
            environments.spawn(environment(api.clone(), spec.clone(), counts.clone()));
        }
    }
}

/// One execution environment: the sandbox's cold start, then the process until it ends. A
/// process that ends (a crash, or the runtime giving up after a timed-out invocation, which
/// Lambda answers by resetting the environment) frees its place for a new one.
async fn environment(api: Arc<RuntimeApi>, spec: FunctionSpec, counts: Arc<Counts>) {
    struct Live(Arc<Counts>);
    impl Drop for Live {
        fn drop(&mut self) {
            self.0.live.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let _live = Live(counts);
    tokio::time::sleep(spec.cold_start).await;
    match launch(&api, &spec) {
        Ok(mut child) => match child.wait().await {
            Ok(status) => {
                tracing::warn!(binary = %spec.binary.display(), %status, "a function process ended; its environment is replaced on demand")
            }
            Err(e) => tracing::warn!(error = %e, "waiting for a function process failed"),
        },
        Err(e) => {
            tracing::error!(binary = %spec.binary.display(), error = %e, "the function's process did not start")
        }
    }
}

fn launch(api: &RuntimeApi, spec: &FunctionSpec) -> std::io::Result<Child> {
    let mut cmd = std::process::Command::new(&spec.binary);
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env("AWS_LAMBDA_RUNTIME_API", api.addr().to_string())
        .env(
            "AWS_LAMBDA_MAX_CONCURRENCY",
            spec.per_process.max(1).to_string(),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    crate::process::die_with_parent(&mut cmd);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(max_concurrency: usize, per_process: usize) -> FunctionSpec {
        FunctionSpec {
            binary: PathBuf::new(),
            env: vec![],
            max_concurrency,
            per_process,
            cold_start: Duration::ZERO,
        }
    }

    #[test]
    fn a_process_is_started_for_the_invocations_the_live_ones_have_no_place_for() {
        // (in flight, live processes, max concurrency, per process) -> processes to start
        for (in_flight, live, max, per, want) in [
            (0, 0, 100, 1, 0),
            (3, 1, 100, 1, 2),
            (150, 0, 100, 1, 100),
            (150, 40, 100, 1, 60),
            (1, 0, 1000, 50, 1),
            (50, 1, 1000, 50, 0),
            (51, 1, 1000, 50, 1),
            (1000, 2, 1000, 50, 18),
            (1000, 20, 1000, 50, 0),
            (120, 0, 100, 30, 4),
        ] {
            assert_eq!(
                wanted(in_flight, live, &spec(max, per)),
                want,
                "{in_flight} in flight, {live} live, at most {max}, {per} a process"
            );
        }
    }
}
