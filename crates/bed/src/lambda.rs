//! A Lambda service stand-in for one function: it starts the function's processes (execution
//! environments) as invocations arrive at the function's runtime API, as Lambda scales a
//! function: "When your function receives a request while it's processing a previous request,
//! Lambda launches another instance of your function to handle the increased load", up to the
//! function's concurrency limit
//! (<https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html>). Each environment
//! handles one invocation at a time and stays warm afterwards. A new environment costs
//! `cold_start` (the sandbox) before the process starts, then the process's own init. Processes
//! die with the bed (see [`crate::process`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use albsim::RuntimeApi;
use tokio::process::Child;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

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
    /// Concurrent environments at most (its reserved concurrency).
    pub max_concurrency: usize,
    /// The sandbox's part of a cold start (real time).
    pub cold_start: Duration,
}

/// A running service; dropping it stops the function's processes.
pub struct LambdaService {
    task: JoinHandle<()>,
    children: Arc<Mutex<Vec<Child>>>,
}

impl Drop for LambdaService {
    fn drop(&mut self) {
        self.task.abort();
        if let Ok(mut children) = self.children.try_lock() {
            for c in children.iter_mut() {
                let _ = c.start_kill();
            }
        }
    }
}

impl LambdaService {
    /// Execution environments started so far.
    pub async fn environments(&self) -> usize {
        self.children.lock().await.len()
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
    let children = Arc::new(Mutex::new(Vec::new()));
    let task = tokio::spawn(scale(api, spec, children.clone()));
    Ok(LambdaService { task, children })
}

/// Environments still starting: started, but not polling yet.
fn starting(started: usize, api: &RuntimeApi) -> usize {
    started.saturating_sub(api.polling_connections())
}

async fn scale(api: Arc<RuntimeApi>, spec: FunctionSpec, children: Arc<Mutex<Vec<Child>>>) {
    let mut started = 0usize;
    loop {
        let _ = tokio::time::timeout(RECHECK, api.demand()).await;
        let waiting = api.waiting();
        let ready = api.idle() + starting(started, &api);
        let wanted = waiting
            .saturating_sub(ready)
            .min(spec.max_concurrency.saturating_sub(started));
        for _ in 0..wanted {
            started += 1;
            let api = api.clone();
            let spec = spec.clone();
            let children = children.clone();
            tokio::spawn(async move {
                tokio::time::sleep(spec.cold_start).await;
                match launch(&api, &spec) {
                    Ok(child) => children.lock().await.push(child),
                    Err(e) => {
                        tracing::error!(binary = %spec.binary.display(), error = %e, "the function's process did not start")
                    }
                }
            });
        }
    }
}

fn launch(api: &RuntimeApi, spec: &FunctionSpec) -> std::io::Result<Child> {
    let mut cmd = std::process::Command::new(&spec.binary);
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env("AWS_LAMBDA_RUNTIME_API", api.addr().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    crate::process::die_with_parent(&mut cmd);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    cmd.spawn()
}
