//! The traffic benchmark: what one Spot interruption costs in failed requests, on the bed's
//! `traffic` scenario (2 spot + 2 on-demand nodes, 12 pods that answer HTTP behind the ALB
//! stand-in, six on each spot node), with nothing done, with a drain as
//! aws-node-termination-handler does it, and with costop — each at two offered loads (0.6× and
//! 1.5× the capacity of the pods that survive, which is 0.3× and 0.75× the whole service's) and
//! with and without a preStop sleep in the workload.
//!
//! One run: a fresh bed; the load starts (open loop, a quarter writes); after a lead-in the Spot
//! warning arrives for the spot node with the most `shop` pods; the mode responds; two minutes
//! after the warning the instance is terminated (the node's end kills whatever still runs
//! there); the load goes on for a tail. Every request's outcome is recorded, every acknowledged
//! write is checked against the service's store, and the ALB stand-in's access log says why it
//! answered what it answered.
//!
//! - *nothing*: no response; the instance just dies.
//! - *nth*: aws-node-termination-handler's queue-processor order: cordon, taint
//!   (`aws-node-termination-handler/spot-itn`) and the exclude-from-load-balancers label, then
//!   evictions of every pod but DaemonSets', each with its own grace period, refused ones (a PDB)
//!   retried every 5 s as `kubectl drain` does; no target deregistration.
//! - *costop*: the warning delivered to the interruption function and the keeper, as the
//!   EventBridge rule's two targets do; with and without the workload's out-of-rotation opt-in
//!   (`readiness_gate` in the JSON: the pods carry `costop.io/serving: "true"` and the Service
//!   selects on it, so costop can take them out of the load balancer before evicting them; see
//!   `costop_core::constants::LABEL_SERVING` for why a label and not a readiness gate). The
//!   other modes do not read it and run without it.
//!
//! Definitions: *failed* = any answer that is not 2xx, connection errors, resets, timeouts and
//! requests the client could not send included; *lost write* = an acknowledged write absent
//! from the store at the end; *full capacity* = 12 `shop` pods Running and Ready, none on the
//! interrupted node, every one a healthy IP target of the load balancer.
//!
//! `cargo xtask bench traffic` runs the sixteen runs in real time (scale 1); `--quick` runs them
//! at 20× with costop's own time settings (deadline window, safety margin, grace cap, standby
//! watch, dedupe lease, rotation wait and settle, restore hold) divided by 20, and the workload's service time multiplied by 20 so the
//! offered rates stay what this machine can carry; it says so in its output. costop reads the
//! wall clock while the simulator counts simulated seconds, so a grace period costop derives from
//! its (scaled) deadline is 20× too short on the simulator: the quick run is a smoke test of the
//! whole path, the real-time run is the measurement. `--json` prints one
//! JSON object per run. `--mode`, `--load`, `--prestop` and `--readiness-gate yes|no`
//! (repeatable) pick runs.
//!
//! costop's runs deploy its fallback function behind the ALB stand-in (the bed's Lambda service
//! runs the release `costop-fallback`) and shift traffic to it: `--shift-factor F` is
//! `COSTOP_SHIFT_FACTOR` (default 1: the node's share; 1000 moves all of a group's traffic; 0: no
//! shift). The keeper ticks every 60 s as its schedule does, and after the load until traffic
//! is restored and the queue replayed; `fallback` in the JSON counts what it replayed and
//! dead-lettered, what was still queued, the rules restored, the function's environments and
//! throttled invocations.

#[path = "traffic/fallback_time.rs"]
mod fallback_time;
#[path = "traffic/plot.rs"]
mod plot;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use costop_app::{Handler, Keeper, Mode};
use costop_bed::{Bed, BedOptions, Scenario};
use costop_core::Config;
use costop_traffic::loadgen::{self, LoadReport, LoadSpec, Outcome, Window};
use kubesim::resources;
use kubesim::store::ListOptions;
use serde_json::{Value, json};

/// The warning's lead: the instance goes this long (simulated) after it.
const WARNING_SECONDS: f64 = 120.0;
/// Load before the warning and after the instance's end (simulated seconds).
const LEAD_IN_SECONDS: f64 = 10.0;
const TAIL_SECONDS: f64 = 60.0;
/// The workload's preStop sleep, when a run has one (the usual workaround runs 25–70 s; 20 s
/// leaves 10 s of the 30 s grace period for in-flight requests).
const PRESTOP_SECONDS: u64 = 20;
/// The quick run's time scale.
const QUICK_SCALE: f64 = 20.0;
const REPLICAS: usize = 12;
/// The workload's capacity per pod, from the scenario: workers and service time.
const WORKERS: f64 = 2.0;
const SERVICE_MS: f64 = 50.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Response {
    Nothing,
    Nth,
    Costop,
}

impl Response {
    fn name(self) -> &'static str {
        match self {
            Response::Nothing => "nothing",
            Response::Nth => "nth",
            Response::Costop => "costop",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [Response::Nothing, Response::Nth, Response::Costop]
            .into_iter()
            .find(|m| m.name() == s)
    }
}

struct Args {
    quick: bool,
    json: bool,
    plot: Option<PathBuf>,
    modes: Vec<Response>,
    loads: Vec<f64>,
    prestops: Vec<bool>,
    gates: Vec<bool>,
    /// `COSTOP_SHIFT_FACTOR` of costop's runs; 0: no traffic shift.
    shift_factor: f64,
}

fn args() -> Result<Args, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut a = Args {
        quick: false,
        json: false,
        plot: None,
        modes: Vec::new(),
        loads: Vec::new(),
        prestops: Vec::new(),
        gates: Vec::new(),
        shift_factor: 1.0,
    };
    let mut i = 0;
    while i < argv.len() {
        let value = |i: usize| {
            argv.get(i + 1)
                .cloned()
                .ok_or(format!("{} needs a value", argv[i]))
        };
        match argv[i].as_str() {
            "--quick" => a.quick = true,
            "--json" => a.json = true,
            "--bench" => {}
            "--plot" => {
                a.plot = Some(PathBuf::from(value(i)?));
                i += 1;
            }
            "--mode" => {
                let v = value(i)?;
                a.modes.push(
                    Response::parse(&v).ok_or(format!("--mode {v}: nothing, nth or costop"))?,
                );
                i += 1;
            }
            "--load" => {
                let v = value(i)?;
                a.loads.push(
                    v.parse()
                        .map_err(|_| format!("--load {v}: a factor like 0.6"))?,
                );
                i += 1;
            }
            "--prestop" => {
                let v = value(i)?;
                a.prestops.push(match v.as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(format!("--prestop {v}: yes or no")),
                });
                i += 1;
            }
            "--readiness-gate" => {
                let v = value(i)?;
                a.gates.push(match v.as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(format!("--readiness-gate {v}: yes or no")),
                });
                i += 1;
            }
            "--shift-factor" => {
                let v = value(i)?;
                a.shift_factor = v
                    .parse()
                    .ok()
                    .filter(|f: &f64| f.is_finite() && *f >= 0.0)
                    .ok_or(format!(
                        "--shift-factor {v}: a factor like 1 (0: no traffic shift)"
                    ))?;
                i += 1;
            }
            other => {
                return Err(format!(
                    "unknown argument {other} (--quick, --json, --plot FILE.svg, --mode, --load, --prestop, --readiness-gate, --shift-factor)"
                ));
            }
        }
        i += 1;
    }
    if a.modes.is_empty() {
        a.modes = vec![Response::Nothing, Response::Nth, Response::Costop];
    }
    if a.loads.is_empty() {
        a.loads = vec![0.6, 1.5];
    }
    if a.prestops.is_empty() {
        a.prestops = vec![false, true];
    }
    if a.gates.is_empty() {
        a.gates = vec![true, false];
    }
    Ok(a)
}

/// The traffic scenario for one run; with `gate`, the workload follows costop's out-of-rotation
/// opt-in: its pods carry `costop.io/serving: "true"` and its Service selects on it (the
/// Deployment's and the PodDisruptionBudget's selectors do not).
fn scenario(scale: f64, prestop: bool, gate: bool) -> Scenario {
    let mut s = Scenario::builtin("traffic").expect("the traffic scenario is built in");
    s.time_scale = scale;
    for w in &mut s.workloads.0 {
        if let costop_bed::scenario::Workload::Yaml(y) = w {
            // The service time in simulated ms: multiplied by the scale, real capacity stays.
            *y = y.replace(
                "bed.costop.io/service-ms: \"50\"",
                &format!(
                    "bed.costop.io/service-ms: \"{}\"",
                    (SERVICE_MS * scale) as u64
                ),
            );
            if gate {
                let lines: Vec<&str> = y.lines().collect();
                let mut out = String::new();
                for (i, line) in lines.iter().enumerate() {
                    let t = line.trim_start();
                    let indent = &line[..line.len() - t.len()];
                    let template_labels = t == "labels: {app: shop}"
                        && lines.get(i + 1).is_some_and(|n| n.trim() == "annotations:");
                    if template_labels || t == "selector: {app: shop}" {
                        let key = t.split(':').next().unwrap_or_default();
                        out.push_str(&format!(
                            "{indent}{key}: {{app: shop, {}: \"{}\"}}\n",
                            costop_core::constants::LABEL_SERVING,
                            costop_core::constants::LABEL_SERVING_IN
                        ));
                    } else {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
                assert!(
                    out.matches(costop_core::constants::LABEL_SERVING).count() == 2,
                    "the shop template and Service carry the opt-in"
                );
                *y = out;
            }
            if prestop {
                // The preStop hook goes beside `ports:`, at its indentation.
                let ports = "ports: [{name: http, containerPort: 8080}]";
                let indent = y
                    .lines()
                    .find(|l| l.trim_start() == ports)
                    .map(|l| l.len() - l.trim_start().len())
                    .expect("the shop container declares its port");
                *y = y.replace(
                    ports,
                    &format!(
                        "{ports}\n{}lifecycle: {{preStop: {{sleep: {{seconds: {PRESTOP_SECONDS}}}}}}}",
                        " ".repeat(indent)
                    ),
                );
            }
        }
    }
    s
}

fn pods(bed: &Bed) -> Vec<Value> {
    bed.sim()
        .store()
        .list(&resources::PODS, Some("default"), &ListOptions::default())
        .0
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "shop")
        .collect()
}

fn ready(p: &Value) -> bool {
    p["metadata"].get("deletionTimestamp").is_none()
        && p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn healthy_ips(bed: &Bed) -> Vec<String> {
    let arn = &bed.world().target_groups["shop-ip"];
    bed.alb()
        .and_then(|a| a.alb().target_health(arn))
        .unwrap_or_default()
        .into_iter()
        .filter(|d| serde_json::to_value(d.target_health.state).ok() == Some(json!("healthy")))
        .map(|d| d.target.id)
        .collect()
}

/// Every replica Ready, none on `victim`, each a healthy IP target.
fn full_capacity(bed: &Bed, victim: &str) -> bool {
    let healthy = healthy_ips(bed);
    let ready: Vec<Value> = pods(bed).into_iter().filter(ready).collect();
    ready.len() >= REPLICAS
        && ready.iter().all(|p| {
            p["spec"]["nodeName"] != victim
                && p["status"]["podIP"]
                    .as_str()
                    .is_some_and(|ip| healthy.iter().any(|h| h == ip))
        })
}

/// Keys the load reads and writes.
const KEYS: usize = 16;

/// One write of `key` through the load balancer, before the load starts.
async fn seed_item(url: &str, key: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the ALB accepts");
    let body = "{}";
    let req = format!(
        "POST /items/{key} HTTP/1.1\r\nHost: shop\r\nX-Request-Id: seed-{key}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    assert!(out.starts_with("HTTP/1.1 201"), "seeding {key}: {out}");
}

/// The spot node with the most `shop` pods: (instance id, node name, pods on it).
fn victim(bed: &Bed) -> (String, String, usize) {
    let nodes = bed
        .sim()
        .store()
        .list(&resources::NODES, None, &ListOptions::default())
        .0;
    let pods = pods(bed);
    nodes
        .iter()
        .filter(|n| n["metadata"]["labels"]["eks.amazonaws.com/capacityType"] == "SPOT")
        .filter_map(|n| {
            let name = n["metadata"]["name"].as_str()?;
            let on = pods
                .iter()
                .filter(|p| p["spec"]["nodeName"] == name)
                .count();
            Some((
                costop_bed::node_instance_id(n)?.to_owned(),
                name.to_owned(),
                on,
            ))
        })
        .max_by_key(|(_, _, on)| *on)
        .expect("a spot node")
}

fn costop_config(bed: &Bed, scale: f64, shift_factor: f64) -> Config {
    let secs = |s: f64| ((s / scale).round() as i64).max(1).to_string();
    let mut env = bed.env();
    if shift_factor > 0.0 {
        env.push(("COSTOP_SHIFT_FACTOR".into(), shift_factor.to_string()));
    } else {
        env.retain(|(k, _)| k != "COSTOP_FALLBACK_TARGET_GROUP");
    }
    env.extend([
        ("COSTOP_DEADLINE_WINDOW_SECONDS".into(), secs(120.0)),
        ("COSTOP_SAFETY_MARGIN_SECONDS".into(), secs(15.0)),
        ("COSTOP_GRACE_CAP_SECONDS".into(), secs(90.0)),
        ("COSTOP_STANDBY_WATCH_SECONDS".into(), secs(240.0)),
        ("COSTOP_DEDUPE_LEASE_SECONDS".into(), secs(180.0)),
        ("COSTOP_ROTATION_MAX_WAIT_SECONDS".into(), secs(20.0)),
        ("COSTOP_ROTATION_SETTLE_SECONDS".into(), secs(10.0)),
        ("COSTOP_SHIFT_RESTORE_HOLD_SECONDS".into(), secs(30.0)),
        // A tenth of the whole service's 480 requests/s: the replay does not flood it, and
        // one tick's window replays 2,000 writes.
        ("COSTOP_REPLAY_RATE".into(), "50".into()),
    ]);
    Config::from_env(env).expect("a valid configuration")
}

/// aws-node-termination-handler's response (see the module docs).
async fn nth_drain(bed: &Bed, node: &str, scale: f64) {
    use costop_app::{Clusters, Kube};
    use costop_core::kube::{Taint, TaintEffect, with_taint};
    use costop_core::plan::action::{CordonAndTaint, EvictPod};
    let access =
        costop_adapters::ClusterAccess::kubeconfig_file(bed.kubeconfig_path()).expect("kubeconfig");
    let clusters = costop_adapters::KubeClusters::new(access, Default::default());
    let kube = clusters
        .connect(&bed.scenario().cluster.name)
        .await
        .expect("cluster");
    let n = kube
        .node(node)
        .await
        .expect("node")
        .expect("the node exists");
    let taint = Taint::new(
        "aws-node-termination-handler/spot-itn",
        Some(String::new()),
        TaintEffect::NoSchedule,
    );
    let cordon = CordonAndTaint {
        node: node.to_owned(),
        cordon: true,
        taints_after: with_taint(&n.taints, taint.clone()),
        taint,
        exclude_from_lb_label: true,
        annotations: Default::default(),
        resource_version: None,
    };
    kube.cordon_and_taint(&cordon).await.expect("cordoned");
    let mut left: Vec<EvictPod> = kube
        .pods_on(node)
        .await
        .expect("pods")
        .into_iter()
        .filter(|p| !p.is_daemonset())
        .map(|p| EvictPod {
            grace_period_seconds: p.grace_seconds(),
            namespace: p.namespace,
            name: p.name,
            uid: p.uid,
            after_rotation: false,
        })
        .collect();
    let retry = Duration::from_secs_f64(5.0 / scale);
    while !left.is_empty() {
        let mut still = Vec::new();
        for p in left {
            match kube.evict(&p).await {
                Ok(costop_app::EvictOutcome::Blocked { .. }) | Err(_) => still.push(p),
                Ok(_) => {}
            }
        }
        left = still;
        if !left.is_empty() {
            tokio::time::sleep(retry).await;
        }
    }
}

/// Marks on a run's time line (seconds from the load's start).
#[derive(Debug, Default, Clone, serde::Serialize)]
struct Marks {
    warning_s: f64,
    cordon_s: Option<f64>,
    first_eviction_s: Option<f64>,
    last_eviction_s: Option<f64>,
    instance_end_s: f64,
    full_capacity_s: Option<f64>,
}

/// Moments seen on the cluster: the victim cordoned, its first `shop` pod deleted, its last one.
#[derive(Default)]
struct Seen {
    cordon: Option<Instant>,
    first_eviction: Option<Instant>,
    last_eviction: Option<Instant>,
}

fn look(bed: &Bed, node: &str, seen: &mut Seen) {
    let now = Instant::now();
    if seen.cordon.is_none()
        && bed
            .sim()
            .store()
            .get(&resources::NODES, None, node)
            .is_ok_and(|n| n["spec"]["unschedulable"] == true)
    {
        seen.cordon = Some(now);
    }
    let on: Vec<Value> = pods(bed)
        .into_iter()
        .filter(|p| p["spec"]["nodeName"] == node)
        .collect();
    let deleting = on
        .iter()
        .filter(|p| p["metadata"].get("deletionTimestamp").is_some())
        .count();
    if deleting > 0 && seen.first_eviction.is_none() {
        seen.first_eviction = Some(now);
    }
    if seen.first_eviction.is_some()
        && seen.last_eviction.is_none()
        && on
            .iter()
            .all(|p| p["metadata"].get("deletionTimestamp").is_some())
    {
        seen.last_eviction = Some(now);
    }
}

/// The keeper's schedule (simulated seconds between ticks).
const TICK_SECONDS: f64 = 60.0;
/// Ticks after the load at most, until traffic is restored and every queued write replayed.
const DRAIN_TICKS: usize = 10;

/// What one keeper tick saw and did about the shift and the queue.
struct TickFigures {
    leases: usize,
    restored: usize,
    replayed: usize,
    dead_lettered: usize,
    pending: u64,
}

async fn tick(keeper: &Keeper<costop_adapters::AwsWorld>) -> TickFigures {
    let event = {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/aws.events-scheduled-event.json"
        ))
        .expect("sample");
        let mut e: Value = serde_json::from_str(&text).expect("JSON");
        e["id"] = json!(uuid::Uuid::new_v4().to_string());
        e["time"] = json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
        e
    };
    match keeper.handle(&event, Mode::Execute).await {
        Ok(costop_app::keeper::KeeperOutcome::Tick {
            traffic, replay, ..
        }) => {
            let replay = replay.unwrap_or_default();
            // What the tick did about traffic and the queue, on stderr: a run that ends with
            // writes still pending says why (a shift still held, a path blocked, a settle lost).
            eprintln!(
                "keeper tick: traffic {} replay {}",
                json!(traffic),
                json!({
                    "gated": replay.gated,
                    "replayed": replay.replayed.len(),
                    "retried": replay.retried,
                    "blocked": replay.blocked,
                    "unsettled": replay.unsettled,
                    "dead_lettered": replay.dead_lettered.len(),
                    "pending": replay.pending,
                })
            );
            TickFigures {
                leases: traffic
                    .iter()
                    .filter(|t| {
                        !matches!(t.step, costop_core::shift::RestoreStep::Restore { .. })
                            || !t.done
                    })
                    .count(),
                restored: traffic
                    .iter()
                    .filter(|t| {
                        matches!(t.step, costop_core::shift::RestoreStep::Restore { .. }) && t.done
                    })
                    .count(),
                replayed: replay.replayed.len(),
                dead_lettered: replay.dead_lettered.len(),
                pending: replay.pending,
            }
        }
        Ok(other) => panic!("the keeper did not tick: {other:?}"),
        Err(e) => {
            eprintln!(
                "costop's keeper tick failed: {}",
                costop_app::error_chain(&e)
            );
            TickFigures {
                leases: 1,
                restored: 0,
                replayed: 0,
                dead_lettered: 0,
                pending: 1,
            }
        }
    }
}

/// The fallback's part of a run: writes replayed and dead-lettered by the keeper, writes left
/// pending, rules restored, the function's execution environments (the most invocations in
/// flight at once) and its throttled invocations.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct FallbackFigures {
    replayed: usize,
    dead_lettered: usize,
    pending_after: u64,
    rules_restored: usize,
    environments: usize,
    throttled: usize,
    ticks: usize,
    /// The function's processing time (the access log's `target_processing_time`) of the
    /// writes it queued and the reads it forwarded.
    time: fallback_time::FallbackTime,
}

impl FallbackFigures {
    fn add(&mut self, t: TickFigures) {
        self.replayed += t.replayed;
        self.dead_lettered += t.dead_lettered;
        self.pending_after = t.pending;
        self.rules_restored += t.restored;
        self.ticks += 1;
    }
}

struct RunResult {
    mode: Response,
    shift_factor: f64,
    fallback: FallbackFigures,
    load: f64,
    prestop: bool,
    readiness_gate: bool,
    capacity_rps: f64,
    offered_rps: f64,
    report: LoadReport,
    marks: Marks,
    causes: BTreeMap<String, u64>,
}

async fn one_run(
    mode: Response,
    load: f64,
    prestop: bool,
    gate: bool,
    scale: f64,
    shift_factor: f64,
) -> RunResult {
    let (log_tx, mut log_rx) = tokio::sync::mpsc::channel(1 << 20);
    let scenario = scenario(scale, prestop, gate);
    // The fallback's forwards reach the service through this listener, not the clients'.
    let upstream_port = scenario
        .load_balancer
        .as_ref()
        .and_then(|lb| lb.fallback.as_ref())
        .map(|f| f.upstream_listener_port);
    let bed = Bed::start_with(
        scenario,
        BedOptions {
            alb_access_log: Some(log_tx),
            ..BedOptions::default()
        },
    )
    .await
    .expect("the bed starts");
    bed.wait_ready(Duration::from_secs_f64(600.0))
        .await
        .expect("the bed settles");
    let t0 = Instant::now();
    while healthy_ips(&bed).len() < REPLICAS {
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "the targets never turned healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = bed.alb_url().expect("ALB URL");
    // Every key written once, so a read finds an item (a 404 would count as a failure).
    for k in 0..KEYS {
        seed_item(&url, &format!("k{k}")).await;
    }
    let (instance, node, on_victim) = victim(&bed);
    let victim_ips: Vec<String> = pods(&bed)
        .iter()
        .filter(|p| p["spec"]["nodeName"] == node.as_str())
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_owned))
        .collect();
    let surviving = (REPLICAS - on_victim) as f64;
    let capacity_rps = surviving * WORKERS / (SERVICE_MS / 1000.0);
    let offered_rps = capacity_rps * load;
    let real = |s: f64| Duration::from_secs_f64(s / scale);
    let duration = real(LEAD_IN_SECONDS + WARNING_SECONDS + TAIL_SECONDS);
    let mut spec = LoadSpec::new(url, offered_rps, duration);
    spec.keys = KEYS;
    // Open loop: a request due is sent whatever is outstanding (the offered rate times the
    // timeout fits), so a slow answer is counted as slow or timed out, never as unsent.
    spec.max_in_flight = 8192;
    spec.timeout = Duration::from_secs(10);
    let started = Instant::now();
    let load_task = tokio::spawn(loadgen::run(spec));

    tokio::time::sleep(real(LEAD_IN_SECONDS)).await;
    let warning_at = Instant::now();
    let event = {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/aws.ec2-spot-instance-interruption-warning-terminate.json"
        ))
        .expect("sample");
        let e: Value = serde_json::from_str(&text).expect("JSON");
        let e = costop_core::event::retarget::aim_at_instance(&e, &instance).expect("aimed");
        costop_core::event::retarget::redate(&e, chrono::Utc::now())
    };
    // costop's two functions on the bed, as deployed: the interruption function and the keeper
    // (the warning's two targets), the keeper also on its schedule.
    let costop = (mode == Response::Costop).then(|| {
        let config = costop_config(&bed, scale, shift_factor);
        let world = || {
            let access = costop_adapters::ClusterAccess::kubeconfig_file(bed.kubeconfig_path())
                .expect("kubeconfig");
            costop_adapters::AwsWorld::new(bed.aws_config(), &config, access, Default::default())
        };
        (
            Handler::new(world(), config.clone()),
            Keeper::new(world(), config.clone()),
        )
    });
    let responder = {
        let node = node.clone();
        let bed_ref = &bed;
        let costop = costop.as_ref();
        let event = &event;
        async move {
            match (mode, costop) {
                (Response::Nth, _) => nth_drain(bed_ref, &node, scale).await,
                (Response::Costop, Some((handler, keeper))) => {
                    let (h, k) = tokio::join!(
                        handler.handle(event, Mode::Execute),
                        keeper.handle(event, Mode::Execute)
                    );
                    if let Err(e) = h {
                        eprintln!(
                            "costop's interruption function failed: {}",
                            costop_app::error_chain(&e)
                        );
                    }
                    if let Err(e) = k {
                        eprintln!("costop's keeper failed: {}", costop_app::error_chain(&e));
                    }
                }
                _ => {}
            }
        }
    };
    // The keeper's schedule (EventBridge `rate(1 minute)`) while the load runs.
    let mut fallback = FallbackFigures::default();
    let ticker = {
        let keeper = costop.as_ref().map(|(_, k)| k);
        let fallback = &mut fallback;
        async move {
            let Some(keeper) = keeper else { return };
            loop {
                tokio::time::sleep(real(TICK_SECONDS)).await;
                if started.elapsed() >= duration {
                    return;
                }
                fallback.add(tick(keeper).await);
            }
        }
    };
    let end = async {
        tokio::time::sleep(real(WARNING_SECONDS)).await;
        bed.ec2()
            .terminate_instances()
            .instance_ids(&instance)
            .send()
            .await
            .expect("the instance is terminated");
        Instant::now()
    };
    let mut seen = Seen::default();
    let watch_full = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            look(&bed, &node, &mut seen);
            if warning_at.elapsed() > real(1.0) && full_capacity(&bed, &node) {
                return Instant::now();
            }
            if started.elapsed() >= duration {
                return Instant::now() + Duration::from_secs(1_000_000);
            }
        }
    };
    let ((), ended_at, full_at, ()) = tokio::join!(responder, end, watch_full, ticker);
    let mut report = load_task
        .await
        .expect("the load task")
        .expect("the load ran");
    // The keeper's ticks go on after the load until traffic is restored and the queue is
    // replayed (back to back here: only the writes' fate is still to be seen), at most
    // DRAIN_TICKS.
    if let Some((_, keeper)) = &costop {
        for _ in 0..DRAIN_TICKS {
            let t = tick(keeper).await;
            let done = t.leases == 0 && t.pending == 0;
            fallback.add(t);
            if done {
                break;
            }
        }
    }
    if let Some(f) = bed.fallback() {
        fallback.environments = f.peak_concurrency();
        fallback.throttled = f.throttled();
    }
    let store = bed.stores().get("default/shop");
    report.check_writes(&store);
    // Why the load balancer answered what it did, and where: a target of the interrupted node
    // (its instance, or one of its pods' IPs as they were before the warning) or another one.
    let mut records = Vec::new();
    while let Ok(r) = log_rx.try_recv() {
        records.push(r);
    }
    if mode == Response::Costop {
        fallback.time = fallback_time::summary(&records);
        let from = std::time::SystemTime::now() - warning_at.elapsed();
        for line in fallback_time::timeline(&records, from, real(10.0), scale) {
            eprintln!("fallback after the warning {line}");
        }
    }
    let mut causes = BTreeMap::new();
    for r in &records {
        if r.elb_status_code >= 500 || r.elb_status_code < 200 {
            let place = match r.target_id.as_deref() {
                Some(t) if t == instance || victim_ips.iter().any(|ip| ip == t) => {
                    "interrupted node"
                }
                Some(t) if t.starts_with("arn:aws:lambda:") => "the fallback",
                Some(_) => "other node",
                None => "no target",
            };
            let via = if Some(r.listener_port) == upstream_port {
                ", a forward of the fallback's"
            } else {
                ""
            };
            let key = format!(
                "{} {} ({place}{via})",
                r.elb_status_code,
                r.error_reason.unwrap_or("from target"),
            );
            *causes.entry(key).or_insert(0) += 1;
        }
    }
    let secs = |at: Instant| at.saturating_duration_since(started).as_secs_f64();
    let full = secs(full_at);
    let marks = Marks {
        warning_s: secs(warning_at),
        cordon_s: seen.cordon.map(secs),
        first_eviction_s: seen.first_eviction.map(secs),
        last_eviction_s: seen.last_eviction.map(secs),
        instance_end_s: secs(ended_at),
        full_capacity_s: (full <= duration.as_secs_f64()).then_some(full),
    };
    RunResult {
        mode,
        shift_factor: if mode == Response::Costop {
            shift_factor
        } else {
            0.0
        },
        fallback,
        load,
        prestop,
        readiness_gate: gate,
        capacity_rps,
        offered_rps,
        report,
        marks,
        causes,
    }
}

fn failed(s: &loadgen::Summary) -> u64 {
    s.sent + s.dropped_by_client - s.ok_2xx
}

fn json_of(r: &RunResult, scale: f64) -> Value {
    let all = r.report.summary(Window::all());
    let w = Duration::from_secs_f64(r.marks.warning_s);
    let f = r.marks.full_capacity_s.map(Duration::from_secs_f64);
    let before = r.report.summary(Window::before(w));
    let during = match f {
        Some(f) => r.report.summary(Window::between(w, f)),
        None => r.report.summary(Window::after(w)),
    };
    let after = f.map(|f| r.report.summary(Window::after(f)));
    let connection = r
        .report
        .records
        .iter()
        .filter(|x| matches!(x.outcome, Outcome::ConnectError | Outcome::Reset))
        .count();
    json!({
        "mode": r.mode.name(),
        "load": r.load,
        "prestop": r.prestop,
        "readiness_gate": r.readiness_gate,
        "shift_factor": r.shift_factor,
        "sent": all.sent + all.dropped_by_client,
        "ok": all.ok_2xx,
        "accepted": all.accepted_202,
        "failed": failed(&all),
        "lost_writes": all.lost_writes,
        "p99_ms": all.p99_ms,
        "full_capacity_s": r.marks.full_capacity_s.map(|f| (f - r.marks.warning_s) * scale),
        "by_status": all.by_status,
        "connection_errors": connection,
        "timeouts": all.timeouts,
        "dropped_by_client": all.dropped_by_client,
        "p50_ms": {"before": before.p50_ms, "during": during.p50_ms, "after": after.as_ref().and_then(|a| a.p50_ms)},
        "p99_ms_by_phase": {"before": before.p99_ms, "during": during.p99_ms, "after": after.as_ref().and_then(|a| a.p99_ms)},
        "failed_by_phase": {"before": failed(&before), "during": failed(&during), "after": after.as_ref().map(failed)},
        "causes": r.causes,
        "marks_s": {
            "warning": r.marks.warning_s * scale,
            "cordon": r.marks.cordon_s.map(|v| v * scale),
            "first_eviction": r.marks.first_eviction_s.map(|v| v * scale),
            "last_eviction": r.marks.last_eviction_s.map(|v| v * scale),
            "instance_end": r.marks.instance_end_s * scale,
            "full_capacity": r.marks.full_capacity_s.map(|v| v * scale),
        },
        "fallback": r.fallback,
        "capacity_rps": r.capacity_rps,
        "offered_rps": r.offered_rps,
        "time_scale": scale,
    })
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("traffic bench: {e}");
            std::process::exit(2);
        }
    };
    let scale = if a.quick { QUICK_SCALE } else { 1.0 };
    // costop's own logs (the functions run in this process) on stderr, when RUST_LOG is set.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Only costop reads the opt-in: the other modes run once, without it where asked for.
    let gates_of = |mode: Response| -> Vec<bool> {
        match mode {
            Response::Costop => a.gates.clone(),
            _ => vec![if a.gates.contains(&false) {
                false
            } else {
                a.gates[0]
            }],
        }
    };
    let runs_total: usize = a.modes.iter().map(|m| gates_of(*m).len()).sum::<usize>()
        * a.loads.len()
        * a.prestops.len();
    eprintln!(
        "traffic bench: {} run(s) at time scale {scale}{}",
        runs_total,
        if a.quick {
            " (quick: costop's deadline window, safety margin, grace cap, standby watch and dedupe lease divided by 20; the workload's service time ×20, so real rates stay. A grace period costop derives from its scaled deadline reaches the simulator as simulated seconds, 20× shorter than meant: quick runs are a smoke test, the real-time run gives the figures)"
        } else {
            " (real time)"
        }
    );
    let mut results = Vec::new();
    let mut runs = Vec::new();
    for &prestop in &a.prestops {
        for &load in &a.loads {
            for (mode, gate) in a
                .modes
                .iter()
                .flat_map(|m| gates_of(*m).into_iter().map(move |g| (*m, g)))
            {
                let r = rt.block_on(one_run(mode, load, prestop, gate, scale, a.shift_factor));
                let j = json_of(&r, scale);
                if a.json {
                    println!("{j}");
                } else {
                    println!(
                        "{:<8} load {:<4} prestop {:<5} gate {:<5} sent {:>7} ok {:>7} failed {:>6} lost writes {:>3} p99 {:>8} ms full capacity {:>7} s  causes {}",
                        r.mode.name(),
                        r.load,
                        r.prestop,
                        r.readiness_gate,
                        j["sent"],
                        j["ok"],
                        j["failed"],
                        j["lost_writes"],
                        j["p99_ms"]
                            .as_f64()
                            .map(|v| format!("{v:.1}"))
                            .unwrap_or("-".into()),
                        j["full_capacity_s"]
                            .as_f64()
                            .map(|v| format!("{v:.1}"))
                            .unwrap_or("never".into()),
                        j["causes"]
                    );
                }
                results.push(j);
                runs.push(r);
            }
        }
    }
    if let Some(path) = &a.plot {
        let panels: Vec<plot::Panel<'_>> = runs
            .iter()
            .map(|r| {
                let m = &r.marks;
                let marks = [
                    ("notice", Some(m.warning_s)),
                    ("cordon", m.cordon_s),
                    ("first eviction", m.first_eviction_s),
                    ("last eviction", m.last_eviction_s),
                    ("instance end", Some(m.instance_end_s)),
                    ("full capacity", m.full_capacity_s),
                ]
                .into_iter()
                .filter_map(|(l, t)| Some((l, t? * scale)))
                .collect();
                plot::Panel {
                    title: format!(
                        "{}{}: load {}× ({:.0} req/s), preStop {}",
                        r.mode.name(),
                        if r.readiness_gate { " (opt-in)" } else { "" },
                        r.load,
                        r.offered_rps,
                        if r.prestop { "20 s" } else { "none" }
                    ),
                    records: &r.report.records,
                    scale,
                    marks,
                }
            })
            .collect();
        match plot::draw(path, &panels) {
            Ok(()) => eprintln!("traffic bench: picture in {}", path.display()),
            Err(e) => eprintln!("traffic bench: could not draw {}: {e}", path.display()),
        }
    }
    // costop's failures as a ratio to the drain's, per load, preStop and opt-in setting.
    for &prestop in &a.prestops {
        for &load in &a.loads {
            let of = |m: &str, gate: Option<bool>| {
                results
                    .iter()
                    .find(|j| {
                        j["mode"] == m
                            && j["load"] == load
                            && j["prestop"] == prestop
                            && gate.is_none_or(|g| j["readiness_gate"] == g)
                    })
                    .and_then(|j| j["failed"].as_f64())
            };
            for &gate in &a.gates {
                let (Some(c), Some(n)) = (of("costop", Some(gate)), of("nth", None)) else {
                    continue;
                };
                eprintln!(
                    "load {load} prestop {prestop} readiness gate {gate}: costop failed {c} vs nth {n} ({})",
                    if n > 0.0 {
                        format!("{:.2}×", c / n)
                    } else {
                        "nth lost none".into()
                    }
                );
            }
        }
    }
}
