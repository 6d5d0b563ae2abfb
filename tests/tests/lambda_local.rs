//! The local replay of docs/deploy.md, run for real for each function: the bed (moto + kubesim)
//! on its own ports, its `KEY=VALUE` environment written to an env file, `cargo lambda watch
//! --env-file` running the function's binary against it, and `cargo lambda invoke --data-file`
//! sending EventBridge deliveries. The interruption function: a Spot warning re-addressed to a
//! bed instance, a malformed sample and an event costop does not handle, each checked in the
//! JSON that comes back and (for the warning) in the cluster, read with kubectl. The keeper: a
//! Spot warning (the zone's standby starts, read back from EC2), the captured scheduled tick,
//! and a malformed sample. The fallback: each ALB sample of `events/alb/` (a read forwarded to a
//! loopback upstream, a write queued in the bed's table and its receipt read back, bad input
//! refused with nothing stored).
//!
//! cargo-lambda is the venv's (`tools/requirements.txt`; `cargo xtask test` installs it). `watch`
//! builds the function with `cargo run --package costop-interruption --bin
//! costop-interruption`: host target, dev profile, but this package's features only, not the
//! whole workspace's, so it shares few artefacts with the test build. `cargo xtask test`
//! therefore runs [`BUILD_ARGS`] before nextest; the test runs it again (a no-op then) so the
//! invokes never wait on a compiler, however the test was started.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use costop_bed::{Bed, Scenario};
use costop_tests::{events, spot_nodes};
use serde_json::Value;

/// What `cargo lambda watch -p <function> --bin <function>` compiles, as `cargo` arguments
/// (xtask's prebuild uses the same; keep them in step).
fn build_args(function: &str) -> [&str; 7] {
    [
        "build",
        "--manifest-path",
        "Cargo.toml",
        "--package",
        function,
        "--bin",
        function,
    ]
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repo")
        .to_path_buf()
}

fn cargo_lambda() -> PathBuf {
    let bin = costop_bed::moto::venv_dir().join("bin/cargo-lambda");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo xtask setup`, which installs tools/requirements.txt",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// `cargo lambda watch`, its cargo and the function: every process of the tree is killed when
/// this is dropped, also while unwinding from a failed assertion. watchexec runs cargo in a
/// process group of its own, so killing watch's group alone would leave the function running.
struct Watch {
    child: Child,
    port: u16,
    log: PathBuf,
    function: &'static str,
}

impl Watch {
    fn start(function: &'static str, env_file: &Path, log: PathBuf) -> Self {
        let port = free_port();
        let out = std::fs::File::create(&log).expect("create the watch log");
        let mut cmd = Command::new(cargo_lambda());
        cmd.args([
            "lambda",
            "watch",
            "--ignore-changes",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .arg("--env-file")
        .arg(env_file)
        .args(["--package", function, "--bin", function])
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup the log"))
        .stderr(out)
        .process_group(0);
        // If this test process dies without unwinding (SIGKILL by a timeout), the kernel kills
        // watch; the function then loses its runtime API and exits on its own.
        costop_bed::process::die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("start cargo lambda watch");
        Self {
            child,
            port,
            log,
            function,
        }
    }

    /// Wait until the emulator accepts connections.
    fn wait_listening(&mut self, timeout: Duration) {
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("cargo lambda watch exited ({status}):\n{}", self.log_tail());
            }
            assert!(
                t0.elapsed() < timeout,
                "cargo lambda watch not listening after {timeout:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut pids = descendants(self.child.id() as i32);
        pids.push(self.child.id() as i32);
        // SAFETY: getpgid/killpg/kill on processes this test started; never our own group.
        unsafe {
            let ours = libc::getpgid(0);
            let mut groups: Vec<i32> = pids
                .iter()
                .map(|&p| libc::getpgid(p))
                .filter(|&g| g > 0 && g != ours)
                .collect();
            groups.sort_unstable();
            groups.dedup();
            for g in groups {
                libc::killpg(g, libc::SIGKILL);
            }
            for &p in &pids {
                libc::kill(p, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

/// Every live descendant of `root`, from the parent links in /proc.
fn descendants(root: i32) -> Vec<i32> {
    let mut links = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            links.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            links
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

struct Invoked {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Invoked {
    fn json(&self) -> Value {
        assert!(self.success, "invoke failed:\n{}", self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("invoke printed no JSON ({e}):\n{}", self.stdout))
    }
}

/// `cargo lambda invoke <function> --data-file <file>` against the emulator.
/// The captured malformed sample fails the invoke as NonRetryable (a dead letter, not a retry
/// storm), and the message says why.
async fn malformed_is_rejected(watch: &Watch, root: &Path) {
    let malformed = invoke(
        watch,
        &root.join(
            "events/aws.ec2-spot-instance-interruption-warning-malformed-missing-detail.json",
        ),
    )
    .await;
    assert!(
        !malformed.success,
        "a malformed event is an error: {}",
        malformed.stdout
    );
    assert!(
        malformed.stderr.contains("Error: NonRetryable"),
        "errorType NonRetryable:\n{}",
        malformed.stderr
    );
    assert!(
        malformed.stderr.contains("malformed"),
        "the message says why:\n{}",
        malformed.stderr
    );
}

async fn invoke(watch: &Watch, data_file: &Path) -> Invoked {
    let run = tokio::process::Command::new(cargo_lambda())
        .args([
            "lambda",
            "invoke",
            watch.function,
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(watch.port.to_string())
        .arg("--data-file")
        .arg(data_file)
        .args(["--output-format", "json", "--color", "never"])
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no answer to {} in 120 s; watch log:\n{}",
                data_file.display(),
                watch.log_tail()
            )
        })
        .expect("run cargo lambda invoke");
    Invoked {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The node as kubectl sees it through the env file's kubeconfig.
fn kubectl_node(kubeconfig: &str, cache: &Path, name: &str) -> Value {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(["get", "node", name, "-o", "json"])
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl (is it installed?)");
    assert!(
        out.status.success(),
        "kubectl get node {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kubectl prints JSON")
}

/// A value as an env file (dotenv, which cargo-lambda reads) takes it: single-quoted, taken
/// literally, when it holds what the format would read otherwise (spaces, quotes, `#`, `$`: a
/// route table's JSON, say).
fn env_file_value(v: &str) -> String {
    if v.chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '#' | '$' | '\\'))
    {
        assert!(
            !v.contains('\''),
            "no single quote in an env file value: {v}"
        );
        format!("'{v}'")
    } else {
        v.to_owned()
    }
}

/// Build `function` as watch will, start the bed, write its env (plus `extra`) to a file.
async fn prepare(
    function: &str,
    extra: &[(&str, &str)],
) -> (Bed, tempfile::TempDir, PathBuf, Vec<(String, String)>) {
    let build =
        tokio::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(build_args(function))
            .current_dir(repo_root())
            .kill_on_drop(true)
            .output()
            .await
            .expect("run cargo build");
    assert!(
        build.status.success(),
        "{function} does not build:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );

    let mut scenario = Scenario::default_scenario();
    scenario.time_scale = 50.0;
    let bed = Bed::start(scenario).await.expect("bed starts");
    bed.wait_ready(Duration::from_secs(180))
        .await
        .expect("bed settles");

    let dir = tempfile::tempdir().expect("tempdir");
    let env_file = dir.path().join("bed.env");
    let mut env = bed.env();
    env.push(("COSTOP_DRY_RUN".into(), "false".into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let lines: String = env
        .iter()
        .map(|(k, v)| format!("{k}={}\n", env_file_value(v)))
        .collect();
    std::fs::write(&env_file, lines).expect("write the env file");
    (bed, dir, env_file, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_lambda_watch_runs_the_function_against_the_bed_and_answers_each_invoke() {
    let root = repo_root();
    let (bed, dir, env_file, env) = prepare("costop-interruption", &[]).await;
    let (instance, node_name) = spot_nodes(bed.sim())
        .into_iter()
        .next()
        .expect("a spot node");
    let kubeconfig = env
        .iter()
        .find(|(k, _)| k == "KUBECONFIG")
        .map(|(_, v)| v.clone())
        .expect("KUBECONFIG in the bed env");

    // A copy of the captured warning, re-addressed to the bed's instance and dated now.
    let warning = dir.path().join("spot-warning.json");
    let event = events::spot_warning(&instance, Utc::now());
    std::fs::write(&warning, serde_json::to_vec_pretty(&event).unwrap()).expect("write the event");

    let mut watch = Watch::start(
        "costop-interruption",
        &env_file,
        dir.path().join("watch.log"),
    );
    watch.wait_listening(Duration::from_secs(60));

    let acted = invoke(&watch, &warning).await.json();
    assert_eq!(acted["kind"], "spot-interruption", "{acted:#}");
    let outcome = &acted["instances"][0];
    assert_eq!(outcome["instance_id"], instance.as_str(), "{acted:#}");
    assert_eq!(
        outcome["decision"]["decision"], "act",
        "the plan acted: {acted:#}"
    );
    let report = &outcome["report"];
    assert!(
        report["time_to_cordon_ms"].is_u64(),
        "time_to_cordon reported: {acted:#}"
    );
    assert_eq!(report["lost_claim"], false, "{acted:#}");
    assert!(
        report["actions"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "cordon_and_taint")),
        "cordon_and_taint executed: {acted:#}"
    );

    let node = kubectl_node(&kubeconfig, &dir.path().join("kube-cache"), &node_name);
    assert_eq!(
        node.pointer("/spec/unschedulable"),
        Some(&Value::Bool(true)),
        "node cordoned: {node:#}"
    );
    let taints = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert!(
        taints
            .iter()
            .any(|t| t["key"] == costop_core::constants::TAINT_SPOT_INTERRUPTION),
        "node carries costop's taint: {taints:?}"
    );
    let annotation = node
        .pointer("/metadata/annotations/costop.io~1interruption-id")
        .and_then(Value::as_str);
    assert_eq!(
        annotation,
        outcome["decision"]["interruption_id"].as_str(),
        "the node names the interruption the outcome reports"
    );

    malformed_is_rejected(&watch, &root).await;

    let ignored = invoke(&watch, &root.join("events/aws.ec2-ami-state-change.json"))
        .await
        .json();
    assert_eq!(ignored["kind"], "ignored", "{ignored:#}");
    let decision = &ignored["instances"][0]["decision"];
    assert_eq!(decision["decision"], "ignore", "{ignored:#}");
    assert_eq!(decision["reason"]["reason"], "unknown_event", "{ignored:#}");
    assert_eq!(
        decision["reason"]["detail_type"], "EC2 AMI State Change",
        "{ignored:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_lambda_watch_runs_the_keeper_against_the_bed_and_answers_each_invoke() {
    let root = repo_root();
    // A short watch window: the invoke returns once replacements had their chance.
    let (bed, dir, env_file, _) =
        prepare("costop-keeper", &[("COSTOP_STANDBY_WATCH_SECONDS", "3")]).await;
    let (instance, _) = spot_nodes(bed.sim())
        .into_iter()
        .next()
        .expect("a spot node");
    let warning = dir.path().join("spot-warning.json");
    std::fs::write(
        &warning,
        serde_json::to_vec_pretty(&events::spot_warning(&instance, Utc::now())).unwrap(),
    )
    .expect("write the event");

    let mut watch = Watch::start("costop-keeper", &env_file, dir.path().join("watch.log"));
    watch.wait_listening(Duration::from_secs(60));

    let started = invoke(&watch, &warning).await.json();
    assert_eq!(started["trigger"], "standby", "{started:#}");
    assert_eq!(started["decision"]["decision"], "act", "{started:#}");
    assert_eq!(started["report"]["started"], true, "{started:#}");
    let standby = started["decision"]["standby"]
        .as_str()
        .expect("the standby's id")
        .to_string();
    let out = bed
        .ec2()
        .describe_instances()
        .instance_ids(&standby)
        .send()
        .await
        .expect("describe the standby");
    let state = out.reservations()[0].instances()[0]
        .state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string());
    assert!(
        matches!(state.as_deref(), Some("pending" | "running")),
        "the standby was started: {state:?}"
    );

    let tick = invoke(&watch, &root.join("events/aws.events-scheduled-event.json"))
        .await
        .json();
    assert_eq!(tick["trigger"], "tick", "{tick:#}");
    assert_eq!(
        tick["plans"][0]["cluster"],
        bed.scenario().cluster.name.as_str(),
        "{tick:#}"
    );

    malformed_is_rejected(&watch, &root).await;
}

/// The fallback through cargo-lambda's emulator, as docs/deploy.md replays it: each sample of
/// `events/alb/` as the ALB sends it, against the bed's queue table and a loopback upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_lambda_watch_runs_the_fallback_and_answers_each_alb_sample() {
    let root = repo_root();
    let upstream = costop_tests::upstream::TestUpstream::start(|_, _| 200).await;
    let routes = r#"[{"prefix": "/items", "queue_safe": true, "json": true}]"#;
    let (bed, dir, env_file, _) = prepare(
        "costop-fallback",
        &[
            ("COSTOP_FALLBACK_ROUTES", routes),
            ("COSTOP_FALLBACK_UPSTREAM", &upstream.url),
        ],
    )
    .await;
    let queue_items = || costop_tests::queue_items_on(&bed);
    let mut watch = Watch::start("costop-fallback", &env_file, dir.path().join("watch.log"));
    watch.wait_listening(Duration::from_secs(60));
    let sample = |name: &str| root.join(format!("events/alb/{name}.json"));
    let header = |answer: &Value, name: &str| {
        answer["headers"][name]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no {name} header: {answer:#}"))
    };

    // A read is forwarded to the upstream, query and client address on.
    let read = invoke(&watch, &sample("read")).await.json();
    assert_eq!(read["statusCode"], 200, "{read:#}");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "one forward");
    assert_eq!(seen[0].target, "/items/cart?view=full");

    // Bad input is refused and stores nothing.
    assert_eq!(queue_items().await, 0);
    for (name, status) in [("malformed-json", 400), ("oversize", 413)] {
        let refused = invoke(&watch, &sample(name)).await.json();
        assert_eq!(refused["statusCode"], status, "{name}: {refused:#}");
    }
    assert_eq!(queue_items().await, 0, "nothing stored for bad input");

    // A write is queued in the bed's table: 202, and its receipt is readable where it says.
    let queued = invoke(&watch, &sample("write")).await.json();
    assert_eq!(queued["statusCode"], 202, "{queued:#}");
    let location = header(&queued, "location");
    assert!(location.starts_with("/_costop/receipts/"), "{location}");
    assert!(queue_items().await > 0, "the write is in the queue table");
    assert_eq!(upstream.seen().len(), 1, "a queued write is not forwarded");
    let mut receipt: Value =
        serde_json::from_slice(&std::fs::read(sample("receipt")).expect("the receipt sample"))
            .expect("JSON");
    receipt["path"] = Value::String(location.clone());
    let receipt_file = dir.path().join("receipt.json");
    std::fs::write(&receipt_file, serde_json::to_vec(&receipt).unwrap()).expect("write");
    let read_back = invoke(&watch, &receipt_file).await.json();
    assert_eq!(read_back["statusCode"], 200, "{read_back:#}");
    let body: Value = serde_json::from_str(read_back["body"].as_str().expect("a text body"))
        .expect("the receipt is JSON");
    assert_eq!(body["state"], "queued", "{body:#}");
    assert_eq!(body["location"], location.as_str(), "{body:#}");

    // The receipt sample's own id was never queued.
    let unknown = invoke(&watch, &sample("receipt")).await.json();
    assert_eq!(unknown["statusCode"], 404, "{unknown:#}");
}
