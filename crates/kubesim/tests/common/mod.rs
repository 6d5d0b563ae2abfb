//! Shared helpers for the API tests: a simulator per test (own port, own state, stopped on
//! drop), a kubeconfig in a temp dir, a `kubectl` runner, and fixtures written straight into
//! the store (nodes, pods, PDBs) so tests do not depend on the control loops' timing.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kubesim::clock::Clock;
use kubesim::resources;
use kubesim::store::{ListOptions, Store};
use kubesim::{SimConfig, Simulator};
use serde_json::{Value, json};

/// Simulated seconds per real second: pods start and stop in milliseconds.
pub const TIME_SCALE: f64 = 100.0;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
}

pub fn sim_config() -> SimConfig {
    SimConfig {
        time_scale: TIME_SCALE,
        ..SimConfig::default()
    }
}

/// Start a simulator on a free loopback port (inside a tokio runtime).
pub async fn start() -> Simulator {
    start_with(sim_config()).await
}

/// Start a simulator with `cfg` (e.g. longer delays for a test that watches a transition).
pub async fn start_with(cfg: SimConfig) -> Simulator {
    init_tracing();
    Simulator::start(cfg).await.expect("simulator starts")
}

/// A simulator running on its own runtime, for tests that drive the blocking `kubectl`.
pub struct KubectlEnv {
    sim: Option<Simulator>,
    rt: Option<tokio::runtime::Runtime>,
    dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl KubectlEnv {
    pub fn new() -> Self {
        Self::with_config(sim_config())
    }

    /// A simulator with `cfg` behind kubectl.
    pub fn with_config(cfg: SimConfig) -> Self {
        init_tracing();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let sim = rt
            .block_on(Simulator::start(cfg))
            .expect("simulator starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig)
            .expect("kubeconfig written");
        Self {
            sim: Some(sim),
            rt: Some(rt),
            dir,
            kubeconfig,
        }
    }

    pub fn sim(&self) -> &Simulator {
        self.sim.as_ref().expect("running")
    }

    pub fn store(&self) -> &Arc<Store> {
        self.sim().store()
    }

    /// Run a future on the simulator's runtime (e.g. to spawn a helper task).
    pub fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(
        &self,
        f: F,
    ) -> tokio::task::JoinHandle<()> {
        self.rt.as_ref().expect("running").spawn(f)
    }

    /// A `kubectl` command against this simulator, with a private discovery cache.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args);
        c.env("HOME", self.dir.path()).env_remove("KUBECONFIG");
        c
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("kubectl runs")
    }

    /// Run kubectl, assert success and an empty stderr (no warnings), return stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        );
        assert!(
            stderr.trim().is_empty(),
            "kubectl {args:?} wrote to stderr:\n{stderr}"
        );
        stdout.into_owned()
    }

    /// Run kubectl with `stdin` as its input (e.g. `apply -f -`).
    #[track_caller]
    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("stdin written");
        let out = child.wait_with_output().expect("kubectl runs");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}"
        );
        assert!(
            stderr.trim().is_empty(),
            "kubectl {args:?} wrote to stderr:\n{stderr}"
        );
        stdout.into_owned()
    }
}

impl Default for KubectlEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for KubectlEnv {
    fn drop(&mut self) {
        // Stop the server and loops, then the runtime, so nothing outlives the test.
        drop(self.sim.take());
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A Ready node, written directly into the store.
pub fn node(store: &Store, name: &str, labels: Value) -> Value {
    let obj = json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": Clock::now_rfc3339(), "lastTransitionTime": Clock::now_rfc3339()}],
            "addresses": [{"type": "InternalIP", "address": "10.0.1.10"}, {"type": "Hostname", "address": name}],
            "capacity": {"cpu": "2", "memory": "8Gi", "pods": "29"},
            "allocatable": {"cpu": "1930m", "memory": "7Gi", "pods": "29"},
            "nodeInfo": {"kubeletVersion": "v1.33.1-eks-1234567", "osImage": "Amazon Linux 2023", "kernelVersion": "6.1.0",
                         "containerRuntimeVersion": "containerd://1.7.27", "architecture": "amd64", "operatingSystem": "linux"},
        },
    });
    // Admission keeps a node's status on create (the kubelet registers nodes that way).
    store
        .create(&resources::NODES, None, obj)
        .expect("node created")
}

/// A pod bound to `node_name` (if any), with `labels` and an owner, written into the store
/// and (with `running`) marked Running and Ready the way the kubelet reports it.
pub fn pod(
    store: &Store,
    ns: &str,
    name: &str,
    node_name: Option<&str>,
    labels: Value,
    owner: Option<&Value>,
    running: bool,
) -> Value {
    let mut obj = json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "app", "image": "nginx:1.27", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
    });
    if let Some(n) = node_name {
        obj["spec"]["nodeName"] = json!(n);
    }
    if let Some(o) = owner {
        obj["metadata"]["ownerReferences"] = json!([{
            "apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"], "uid": o["metadata"]["uid"],
            "controller": true, "blockOwnerDeletion": true,
        }]);
    }
    let created = store
        .create(&resources::PODS, Some(ns), obj)
        .expect("pod created");
    if running {
        set_running(store, ns, name)
    } else {
        created
    }
}

/// Mark a pod Running and Ready (what the kubelet does once its containers start).
pub fn set_running(store: &Store, ns: &str, name: &str) -> Value {
    let now = Clock::now_rfc3339();
    store
        .modify(&resources::PODS, Some(ns), name, |p| {
            let conds: Vec<Value> = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
                .iter()
                .map(|t| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now}))
                .collect();
            p["status"]["phase"] = json!("Running");
            p["status"]["conditions"] = json!(conds);
            p["status"]["podIP"] = json!("10.0.1.20");
            p["status"]["podIPs"] = json!([{"ip": "10.0.1.20"}]);
            p["status"]["startTime"] = json!(now);
            p["status"]["containerStatuses"] = json!([{"name": "app", "ready": true, "started": true, "restartCount": 0,
                "image": "nginx:1.27", "imageID": "", "state": {"running": {"startedAt": now}}}]);
            Ok(())
        })
        .expect("pod marked running")
}

/// A PDB over `selector` whose status says `allowed` disruptions (as the disruption
/// controller would report for `healthy` of `expected` pods).
#[allow(clippy::too_many_arguments)]
pub fn pdb(
    store: &Store,
    ns: &str,
    name: &str,
    selector: Value,
    min_available: i64,
    allowed: i64,
    healthy: i64,
    expected: i64,
) -> Value {
    let created = store
        .create(
            &resources::PODDISRUPTIONBUDGETS,
            Some(ns),
            json!({"metadata": {"name": name}, "spec": {"minAvailable": min_available, "selector": {"matchLabels": selector}}}),
        )
        .expect("pdb created");
    set_pdb_status(store, ns, name, allowed, healthy, min_available, expected);
    created
}

/// Overwrite a PDB's status (the disruption controller's job), observed at its generation.
pub fn set_pdb_status(
    store: &Store,
    ns: &str,
    name: &str,
    allowed: i64,
    healthy: i64,
    desired: i64,
    expected: i64,
) -> Value {
    store
        .modify(&resources::PODDISRUPTIONBUDGETS, Some(ns), name, |p| {
            let generation = p["metadata"]["generation"].clone();
            p["status"] = json!({
                "observedGeneration": generation, "disruptionsAllowed": allowed, "currentHealthy": healthy,
                "desiredHealthy": desired, "expectedPods": expected,
            });
            Ok(())
        })
        .expect("pdb status set")
}

/// Remove pods whose graceful deletion period is over — the kubelet's part, for tests that
/// must not depend on the kubelet loop. Harmless when the real kubelet loop does it first.
pub async fn reap_terminated_pods(store: Arc<Store>) {
    loop {
        let now = chrono::Utc::now();
        let (pods, _) = store.list(&resources::PODS, None, &ListOptions::default());
        for p in pods {
            let due = p
                .pointer("/metadata/deletionTimestamp")
                .and_then(Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t <= now);
            if due {
                let ns = p["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let name = p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let _ = store.transaction(|tx| tx.remove(&resources::PODS, Some(&ns), &name));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Poll `f` until it returns `Some`, or panic after `timeout`.
#[track_caller]
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A kube client for `sim` (plain http, no auth), default namespace `default`.
pub fn client(sim: &Simulator) -> kube::Client {
    // kube's rustls needs a process-wide crypto provider; a second install is harmless.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut cfg = kube::Config::new(sim.url().parse().expect("simulator URL"));
    cfg.default_namespace = "default".into();
    // kube retries 429s (a blocked eviction) with backoff for minutes by default; tests want
    // to see the first answer.
    cfg.default_retry = false;
    kube::Client::try_from(cfg).expect("kube client")
}

fn running_and_ready(p: &Value) -> bool {
    p.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
        && p.pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
        && p.pointer("/metadata/deletionTimestamp").is_none()
}

/// Make sure a bound pod is Running and Ready: the kubelet loop does it within milliseconds
/// when present; otherwise mark it ourselves.
pub async fn ensure_running(store: &Store, ns: &str, name: &str) {
    let start = Instant::now();
    loop {
        let p = store
            .get(&resources::PODS, Some(ns), name)
            .expect("pod exists");
        if running_and_ready(&p) {
            return;
        }
        if start.elapsed() > Duration::from_millis(500) {
            set_running(store, ns, name);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Blocking form of [`ensure_running`].
pub fn ensure_running_blocking(store: &Store, ns: &str, name: &str) {
    let start = Instant::now();
    loop {
        let p = store
            .get(&resources::PODS, Some(ns), name)
            .expect("pod exists");
        if running_and_ready(&p) {
            return;
        }
        if start.elapsed() > Duration::from_millis(500) {
            set_running(store, ns, name);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Set a PDB's status until it sticks: the disruption controller, when running, computes the
/// same numbers from the pods; without it ours stand.
pub fn settle_pdb(
    store: &Store,
    ns: &str,
    name: &str,
    allowed: i64,
    healthy: i64,
    desired: i64,
    expected: i64,
) {
    let start = Instant::now();
    loop {
        let p = store
            .get(&resources::PODDISRUPTIONBUDGETS, Some(ns), name)
            .expect("pdb exists");
        let observed = p.pointer("/status/observedGeneration") == p.pointer("/metadata/generation");
        if observed
            && p.pointer("/status/disruptionsAllowed")
                .and_then(Value::as_i64)
                == Some(allowed)
        {
            std::thread::sleep(Duration::from_millis(50));
            let again = store
                .get(&resources::PODDISRUPTIONBUDGETS, Some(ns), name)
                .expect("pdb exists");
            if again.pointer("/status") == p.pointer("/status") {
                return;
            }
            continue;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "PDB {name} never settled at {allowed} allowed: {p}"
        );
        set_pdb_status(store, ns, name, allowed, healthy, desired, expected);
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// The running pod of controller `owner` on `node_name`: the workload controllers and the
/// scheduler make it within milliseconds when they run; otherwise it is written by hand.
/// Returns its name.
pub fn owned_pod(store: &Store, ns: &str, owner: &Value, node_name: &str, labels: Value) -> String {
    let uid = owner["metadata"]["uid"].clone();
    let start = Instant::now();
    let name = loop {
        let (pods, _) = store.list(&resources::PODS, Some(ns), &ListOptions::default());
        let mine = pods.iter().find(|p| {
            p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node_name)
                && p.pointer("/metadata/deletionTimestamp").is_none()
                && p.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|o| o["uid"] == uid && o["controller"] == true)
        });
        if let Some(p) = mine {
            break p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
        if start.elapsed() > Duration::from_millis(1500) {
            let name = format!(
                "{}-hand1",
                owner["metadata"]["name"].as_str().unwrap_or("pod")
            );
            pod(
                store,
                ns,
                &name,
                Some(node_name),
                labels,
                Some(owner),
                false,
            );
            break name;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    ensure_running_blocking(store, ns, &name);
    name
}
