//! `cargo xtask measure-lambda`: the Lambda figures of BENCHMARKS.md ("Lambda functions"),
//! measured on the artefact that is deployed, not on a test build, for one function at a time
//! (`--function`).
//!
//! 1. `cargo lambda build --release --output-format zip` of the functions the measurement runs
//!    (skipped with `--no-build`); the measured zip's size; each `bootstrap` extracted to a temp
//!    dir.
//! 2. The bed (`costop-bed` with the function's scenario) as a child process; its `KEY=VALUE`
//!    lines become the functions' environment. One Deployment (110 replicas) is pinned to its
//!    first spot node with kubectl.
//! 3. Per function process, a fresh `cargo lambda watch --only-lambda-apis` (cargo-lambda's
//!    runtime emulator, no build) and the extracted `bootstrap` started against it:
//!    * init rounds: an event costop ignores (no I/O) is posted the moment the process is
//!      spawned, so the emulator hands it over on the function's first `/next`. The time to its
//!      answer minus the median warm answer to the same event (the emulator's and the HTTP
//!      round trip's own cost, the handler being a parse) is the init: exec, config, logging,
//!      SDK and kube clients, runtime client;
//!    * the heavy round: a new process whose first event is the Spot warning for the loaded
//!      node, as after a real cold start. costop-interruption drains the node's pods;
//!      costop-keeper starts the zone's standby and tolerates every replacement pod while a
//!      costop-interruption process, given the same warning at the same moment (the rule's two
//!      targets), drains the node. The measured process's peak RSS (`VmHWM` of
//!      /proc/<pid>/status) is read once its invoke has answered, before it is killed;
//!    * costop-fallback (no cluster load: it needs only moto's queue table): the init rounds
//!      send `events/alb/read.json`, which a configured fixed response answers (no I/O); the
//!      heavy round is `events/alb/write.json`, queued in moto's queue table (202);
//!    * for each process, the CPU time it used (`wait4`'s rusage): Lambda gives a function CPU
//!      in proportion to its memory size, so this is what decides `MemorySize`, not the RSS.
//!
//! The bed, the emulators and the functions each run in their own process group, killed on drop,
//! also when a step fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::{cargo, run};

/// Options of `cargo xtask measure-lambda`.
#[derive(clap::Args)]
pub struct Args {
    /// The function to measure.
    #[arg(long, value_enum, default_value_t = Measured::Interruption)]
    function: Measured,
    /// Cold starts to measure (each its own process and emulator).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Pods pinned to the interrupted node.
    #[arg(long, default_value_t = 110)]
    pods: usize,
    /// Scenario for the bed (default: scenarios/bench-drain.yaml for costop-interruption,
    /// scenarios/bench-keeper.yaml for costop-keeper, scenarios/default.yaml for
    /// costop-fallback).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Measure the zips already in target/lambda/.
    #[arg(long)]
    no_build: bool,
}

/// The deployable functions.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Measured {
    #[value(name = "costop-interruption")]
    Interruption,
    #[value(name = "costop-keeper")]
    Keeper,
    #[value(name = "costop-fallback")]
    Fallback,
}

impl Measured {
    fn binary(self) -> &'static str {
        match self {
            Self::Interruption => INTERRUPTION,
            Self::Keeper => "costop-keeper",
            Self::Fallback => FALLBACK,
        }
    }

    fn scenario(self) -> &'static str {
        match self {
            Self::Interruption => "scenarios/bench-drain.yaml",
            Self::Keeper => "scenarios/bench-keeper.yaml",
            Self::Fallback => "scenarios/default.yaml",
        }
    }

    /// The functions the heavy round runs: the keeper's replacements come from the interruption
    /// function's drain.
    fn needs(self) -> &'static [&'static str] {
        match self {
            Self::Interruption => &[INTERRUPTION],
            Self::Keeper => &[INTERRUPTION, "costop-keeper"],
            Self::Fallback => &[FALLBACK],
        }
    }
}

const INTERRUPTION: &str = "costop-interruption";
const FALLBACK: &str = "costop-fallback";
/// The fallback's routes while measured: reads of `/items` answered from configuration (the
/// no-op), writes queued.
const FALLBACK_ROUTES: &str = r#"[{"prefix": "/items", "queue_safe": true, "json": true},
    {"method": "GET", "prefix": "/items", "respond": {"status": 200, "body": "ok"}}]"#;
/// The name cargo-lambda's emulator serves on `/.rt` with `--only-lambda-apis`.
const EMULATED_NAME: &str = "_";
const ZIP_GOAL_MB: f64 = 6.0;
const INIT_GOAL_MS: f64 = 30.0;
const RSS_GOAL_MB: f64 = 40.0;
const MIB_IN_MB: f64 = 1.048_576;

pub fn measure(root: &Path, args: &Args) -> Result<(), String> {
    let venv_bin = root.join(".venv/bin");
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let measured = args.function.binary();
    if !args.no_build {
        // The zig cross-linker cargo-lambda uses comes with the venv's ziglang: .venv/bin first.
        let mut build = cargo(root);
        build
            .env("PATH", &path)
            .args(["lambda", "build", "--release", "--output-format", "zip"]);
        for bin in args.function.needs() {
            build.args(["--bin", bin]);
        }
        run(&mut build)?;
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let work = std::env::temp_dir().join(format!("costop-measure-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("create {}: {e}", work.display()))?;
    let _cleanup = RemoveOnDrop(work.clone());
    let zip = target.join(format!("lambda/{measured}/bootstrap.zip"));
    let zip_bytes = std::fs::metadata(&zip)
        .map_err(|e| format!("{}: {e} (build it, or drop --no-build)", zip.display()))?
        .len();
    let bootstrap = extract(&venv_bin, &zip, &work.join(measured))?;
    let bootstrap_bytes = std::fs::metadata(&bootstrap)
        .map_err(|e| format!("{}: {e}", bootstrap.display()))?
        .len();
    eprintln!(
        "measure: {} is {} bytes ({} bytes unzipped)",
        zip.display(),
        zip_bytes,
        bootstrap_bytes
    );
    let drainer = match args.function {
        Measured::Interruption | Measured::Fallback => None,
        Measured::Keeper => {
            let zip = target.join(format!("lambda/{INTERRUPTION}/bootstrap.zip"));
            Some(extract(&venv_bin, &zip, &work.join(INTERRUPTION))?)
        }
    };

    let scenario = args
        .scenario
        .clone()
        .unwrap_or_else(|| PathBuf::from(args.function.scenario()));
    eprintln!("measure: starting the bed ({})", scenario.display());
    let (_bed, env) = start_bed(root, &scenario)?;
    let kubeconfig = env
        .iter()
        .find(|(k, _)| k == "KUBECONFIG")
        .map(|(_, v)| v.clone())
        .ok_or("the bed printed no KUBECONFIG")?;
    let kube = Kubectl {
        kubeconfig,
        cache: work.join("kube-cache"),
    };
    let instance = if args.function == Measured::Fallback {
        String::new()
    } else {
        let (node, instance) = kube.first_spot_node()?;
        eprintln!("measure: pinning {} pods to {node} ({instance})", args.pods);
        kube.load(&node, args.pods)?;
        instance
    };

    let mut fn_env = env.clone();
    if args.function == Measured::Fallback {
        fn_env.push(("COSTOP_FALLBACK_ROUTES".into(), FALLBACK_ROUTES.into()));
    }
    fn_env.push(("COSTOP_DRY_RUN".into(), "false".into()));
    // Lambda's own log level stays info: what a deployed function would print.
    fn_env.push(("COSTOP_LOG_LEVEL".into(), "info".into()));
    let noop_event = match args.function {
        Measured::Fallback => "events/alb/read.json",
        _ => "events/aws.ec2-ami-state-change.json",
    };
    let noop =
        std::fs::read(root.join(noop_event)).map_err(|e| format!("read the no-op event: {e}"))?;

    let mut inits = Vec::new();
    let mut idle_rss = Vec::new();
    let mut idle_cpu = Vec::new();
    let mut warm_all = Vec::new();
    for round in 1..=args.rounds {
        let mut f = Function::start(
            root,
            &venv_bin,
            &bootstrap,
            &fn_env,
            &work.join(format!("init-{round}.log")),
        )?;
        let first = f.invoke_timed(&noop)?;
        // costop-interruption answers `kind: ignored`, costop-keeper `trigger: ignored`,
        // costop-fallback its fixed response.
        if first.1["kind"] != "ignored"
            && first.1["trigger"] != "ignored"
            && first.1["statusCode"] != 200
        {
            return Err(format!("the no-op event was not ignored: {:#}", first.1));
        }
        let mut warm: Vec<f64> = (0..10)
            .map(|_| f.invoke_timed(&noop).map(|(ms, _)| ms))
            .collect::<Result<_, _>>()?;
        let warm_ms = median(&mut warm);
        warm_all.extend(warm);
        let init = first.0 - warm_ms;
        let rss = f.status_kb("VmHWM")?;
        let cpu = f.process.kill_for_cpu_time()?.as_secs_f64() * 1e3;
        eprintln!(
            "measure: round {round}: first answer {:.1} ms, warm {warm_ms:.2} ms → init {init:.1} ms; peak RSS {rss} kB; CPU {cpu:.1} ms",
            first.0
        );
        inits.push(init);
        idle_rss.push(rss as f64 / 1024.0);
        idle_cpu.push(cpu);
    }

    let warning = match args.function {
        Measured::Fallback => std::fs::read(root.join("events/alb/write.json"))
            .map_err(|e| format!("read the write: {e}"))?,
        _ => spot_warning(root, &instance)?,
    };
    let mut f = Function::start(
        root,
        &venv_bin,
        &bootstrap,
        &fn_env,
        &work.join("heavy.log"),
    )?;
    let heavy_row = match &drainer {
        None if args.function == Measured::Fallback => {
            let (ms, outcome) = f.invoke_timed(&warning)?;
            fallback_row(&outcome, ms)?
        }
        None => {
            let (ms, outcome) = f.invoke_timed(&warning)?;
            drain_row(&outcome, ms)?
        }
        Some(drainer) => {
            let d = Function::start(root, &venv_bin, drainer, &fn_env, &work.join("drainer.log"))?;
            let (kept, drained) = std::thread::scope(|s| {
                let drained = s.spawn(|| d.invoke_timed(&warning));
                let kept = f.invoke_timed(&warning);
                (
                    kept,
                    drained
                        .join()
                        .unwrap_or_else(|_| Err("the drainer's thread panicked".into())),
                )
            });
            let (ms, outcome) = kept?;
            let (drain_ms, drained) = drained?;
            let drain = drain_row(&drained, drain_ms)?;
            format!("{}\n{drain}", keeper_row(&outcome, ms, args.pods)?)
        }
    };
    let hwm = f.status_kb("VmHWM")? as f64 / 1024.0;
    let rss_end = f.status_kb("VmRSS")? as f64 / 1024.0;
    let heavy_cpu = f.process.kill_for_cpu_time()?.as_secs_f64() * 1e3;
    drop(f);
    // The keeper's most frequent invocation: the one-minute tick, here after a cold start, with
    // the standby serving (its minimum serve time not over: observe and report only).
    let tick_row = match args.function {
        Measured::Interruption | Measured::Fallback => None,
        Measured::Keeper => {
            let tick = std::fs::read(root.join("events/aws.events-scheduled-event.json"))
                .map_err(|e| format!("read the tick: {e}"))?;
            let mut f =
                Function::start(root, &venv_bin, &bootstrap, &fn_env, &work.join("tick.log"))?;
            let (ms, outcome) = f.invoke_timed(&tick)?;
            let hwm = f.status_kb("VmHWM")? as f64 / 1024.0;
            let cpu = f.process.kill_for_cpu_time()?.as_secs_f64() * 1e3;
            let serving = outcome["plans"][0]["report"]["zones"]
                .as_object()
                .map_or(0, |z| {
                    z.values()
                        .filter_map(|v| v["serving"].as_u64())
                        .sum::<u64>()
                });
            if outcome["trigger"] != "tick" || serving != 1 {
                return Err(format!(
                    "the tick did not see the serving standby: {outcome:#}"
                ));
            }
            Some(format!(
                "| tick (cold start + one cluster's pool, 1 serving standby): answered / peak RSS / CPU | — | {ms:.0} ms / {hwm:.1} MiB / {cpu:.0} ms | |"
            ))
        }
    };

    let zip_mb = zip_bytes as f64 / 1e6;
    let init_med = median(&mut inits.clone());
    let (init_min, init_max) = range(&inits);
    let verdict = |ok: bool| if ok { "met" } else { "missed" };
    let heavy = match args.function {
        Measured::Interruption => format!("{}-pod drain", args.pods),
        Measured::Keeper => format!("standby start + {} replacements tolerated", args.pods),
        Measured::Fallback => "one queued write (DynamoDB transaction)".to_owned(),
    };
    println!();
    println!(
        "{measured}, x86_64 release (`cargo lambda build --release`), bed `{}`",
        scenario.display()
    );
    println!();
    println!("| figure | goal | measured | verdict |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| zip size (`bootstrap.zip`) | ≤ {ZIP_GOAL_MB} MB | {zip_mb:.2} MB ({:.2} MB unzipped) | {} |",
        bootstrap_bytes as f64 / 1e6,
        verdict(zip_mb <= ZIP_GOAL_MB)
    );
    println!(
        "| init (spawn → first event answered − warm answer), {} cold starts | ≤ {INIT_GOAL_MS} ms | median {init_med:.1} ms ({init_min:.1}–{init_max:.1}) | {} |",
        inits.len(),
        verdict(init_med <= INIT_GOAL_MS)
    );
    println!(
        "| peak RSS (VmHWM), cold start + {heavy} | ≤ {RSS_GOAL_MB} MB | {hwm:.1} MiB ({:.1} MB) | {} |",
        hwm * MIB_IN_MB,
        verdict(hwm * MIB_IN_MB <= RSS_GOAL_MB)
    );
    println!(
        "| … after init only (no-op event) | — | {:.1}–{:.1} MiB | |",
        range(&idle_rss).0,
        range(&idle_rss).1
    );
    println!("| … RSS when the heavy invocation answered | — | {rss_end:.1} MiB | |");
    println!(
        "| CPU time (user + system): init + 11 no-op answers / cold start + {heavy} | — | {:.1}–{:.1} ms / {heavy_cpu:.0} ms | |",
        range(&idle_cpu).0,
        range(&idle_cpu).1
    );
    println!("{heavy_row}");
    if let Some(row) = tick_row {
        println!("{row}");
    }
    println!(
        "| warm no-op answer through the emulator (subtracted) | — | median {:.2} ms | |",
        median(&mut warm_all)
    );
    Ok(())
}

/// Unzip `zip` into `dir`; the executable `bootstrap`.
fn extract(venv_bin: &Path, zip: &Path, dir: &Path) -> Result<PathBuf, String> {
    if !zip.exists() {
        return Err(format!(
            "{}: missing (build it, or drop --no-build)",
            zip.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    run(Command::new(venv_bin.join("python"))
        .args(["-m", "zipfile", "-e"])
        .arg(zip)
        .arg(dir))?;
    let bootstrap = dir.join("bootstrap");
    std::fs::set_permissions(
        &bootstrap,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .map_err(|e| format!("chmod {}: {e}", bootstrap.display()))?;
    Ok(bootstrap)
}

/// The interruption function's answer to the warning: it must have drained; the table row.
/// (Under `--function costop-keeper` this is the companion process that made the replacements.)
fn drain_row(outcome: &Value, ms: f64) -> Result<String, String> {
    let report = &outcome["instances"][0]["report"];
    let drain = &report["drain"];
    if outcome["instances"][0]["decision"]["decision"] != "act" || drain.is_null() {
        return Err(format!("the Spot warning was not acted on: {outcome:#}"));
    }
    let evictions = drain["evictions_issued"].as_u64().unwrap_or(0);
    let remaining = drain["remaining"].as_array().map_or(0, Vec::len);
    Ok(format!(
        "| drain invocation: answered / time_to_cordon / all evictions issued | — | {ms:.0} ms / {} ms / {} ms; {evictions} evicted, {remaining} left | |",
        report["time_to_cordon_ms"], drain["all_issued_ms"]
    ))
}

/// The fallback's answer to the write: it must have queued it (202); the table row.
fn fallback_row(outcome: &Value, ms: f64) -> Result<String, String> {
    if outcome["statusCode"] != 202 {
        return Err(format!("the write was not queued: {outcome:#}"));
    }
    Ok(format!(
        "| fallback invocation: answered (one queueing transaction) | — | {ms:.0} ms; 202 | |"
    ))
}

/// The keeper's answer to the warning: it must have started a standby and tolerated `pods`
/// replacements; the table row.
fn keeper_row(outcome: &Value, ms: f64, pods: usize) -> Result<String, String> {
    let report = &outcome["report"];
    let tolerated = report["tolerated"].as_u64().unwrap_or(0);
    if outcome["trigger"] != "standby" || report["started"] != true || tolerated != pods as u64 {
        return Err(format!(
            "the keeper did not start a standby and tolerate {pods} replacements: {outcome:#}"
        ));
    }
    Ok(format!(
        "| keeper invocation: answered (start, then every replacement tolerated) / time_to_start | — | {ms:.0} ms / {} ms; standby {} started, {tolerated} tolerated | |",
        report["time_to_start_ms"],
        outcome["decision"]["standby"].as_str().unwrap_or("?")
    ))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn range(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        })
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child in its own process group, the group killed on drop; the kernel kills the child if
/// xtask dies first (PDEATHSIG).
struct Group {
    child: Child,
    /// Reaped by [`Group::kill_for_cpu_time`]: its pid may belong to someone else now.
    reaped: bool,
}

impl Group {
    fn spawn(cmd: &mut Command) -> Result<Self, String> {
        cmd.process_group(0);
        let parent = std::process::id();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
        Ok(Self {
            child,
            reaped: false,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kill the group and reap the child: the CPU time (user + system) it used in its life, from
    /// `wait4`'s rusage (µs; /proc's clock ticks are 10 ms).
    fn kill_for_cpu_time(&mut self) -> Result<Duration, String> {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: signalling and reaping a child we started and have not reaped yet.
        let usage = unsafe {
            libc::killpg(pid, libc::SIGKILL);
            let mut status = 0;
            let mut usage: libc::rusage = std::mem::zeroed();
            if libc::wait4(pid, &mut status, 0, &mut usage) != pid {
                return Err(format!("wait4({pid}): {}", std::io::Error::last_os_error()));
            }
            usage
        };
        self.reaped = true;
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        Ok(tv(usage.ru_utime) + tv(usage.ru_stime))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        // SIGTERM first: costop-bed stops moto and kubesim on it.
        let pgid = self.pid() as libc::pid_t;
        // SAFETY: signalling the group of a child we started (its pgid is its pid).
        unsafe { libc::killpg(pgid, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above; also reaps stragglers of the group.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// `costop-bed --scenario …` until it has printed its environment (it waits for the bed to
/// settle first); the lines as (key, value).
fn start_bed(root: &Path, scenario: &Path) -> Result<(Group, Vec<(String, String)>), String> {
    let mut cmd = cargo(root);
    cmd.args([
        "run",
        "-q",
        "-p",
        "costop-bed",
        "--bin",
        "costop-bed",
        "--",
        "--scenario",
    ])
    .arg(scenario)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    let mut bed = Group::spawn(&mut cmd)?;
    let out = bed.child.stdout.take().ok_or("no bed stdout")?;
    let mut env = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.map_err(|e| format!("read the bed's output: {e}"))?;
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        // costop-bed single-quotes values with unusual characters; ours have none.
        env.push((k.to_string(), v.trim_matches('\'').to_string()));
        if k == "COSTOP_CLUSTER" {
            return Ok((bed, env));
        }
    }
    Err("costop-bed exited before printing its environment".into())
}

struct Kubectl {
    kubeconfig: String,
    cache: PathBuf,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .env_remove("KUBECONFIG");
        c
    }

    fn json(&self, args: &[&str]) -> Result<Value, String> {
        let out = self
            .command(args)
            .output()
            .map_err(|e| format!("cannot run kubectl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("kubectl {}: {e}", args.join(" ")))
    }

    /// (node name, instance id) of the first Ready spot node, by name.
    fn first_spot_node(&self) -> Result<(String, String), String> {
        let nodes = self.json(&[
            "get",
            "nodes",
            "-l",
            "eks.amazonaws.com/capacityType=SPOT",
            "-o",
            "json",
        ])?;
        let mut found: Vec<(String, String)> = nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| {
                let name = n["metadata"]["name"].as_str()?.to_string();
                let id = n["spec"]["providerID"]
                    .as_str()?
                    .rsplit('/')
                    .next()?
                    .to_string();
                Some((name, id))
            })
            .collect();
        found.sort();
        found
            .into_iter()
            .next()
            .ok_or_else(|| "the scenario has no spot node".into())
    }

    /// One Deployment of `pods` replicas preferring `node`; waits until they all run there.
    fn load(&self, node: &str, pods: usize) -> Result<(), String> {
        let manifest = include_str!("../../scenarios/workloads/pinned-load.yaml")
            .replace("NAME", "load")
            .replace("REPLICAS", &pods.to_string())
            .replace("NODE", node);
        let mut apply = self
            .command(&["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("kubectl apply: {e}"))?;
        apply
            .stdin
            .take()
            .ok_or("no stdin")?
            .write_all(manifest.as_bytes())
            .map_err(|e| format!("kubectl apply: {e}"))?;
        if !apply
            .wait()
            .map_err(|e| format!("kubectl apply: {e}"))?
            .success()
        {
            return Err("kubectl apply of the load failed".into());
        }
        let t0 = Instant::now();
        loop {
            let pods_json = self.json(&["get", "pods", "-l", "app=load", "-o", "json"])?;
            let running = pods_json["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| {
                    p["spec"]["nodeName"] == node
                        && p["status"]["phase"] == "Running"
                        && p["metadata"]["deletionTimestamp"].is_null()
                })
                .count();
            if running >= pods {
                return Ok(());
            }
            if t0.elapsed() > Duration::from_secs(300) {
                return Err(format!(
                    "only {running} of {pods} pods running on {node} after 300 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A bootstrap process and the emulator it polls, both killed on drop (the function first).
struct Function {
    process: Group,
    _emulator: Group,
    port: u16,
    spawned: Instant,
    /// No event answered yet: the next answer's time counts from the spawn.
    first: std::sync::atomic::AtomicBool,
}

impl Function {
    fn start(
        root: &Path,
        venv_bin: &Path,
        bootstrap: &Path,
        env: &[(String, String)],
        log: &Path,
    ) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("free port: {e}"))?
            .port();
        let mut emu = Command::new(venv_bin.join("cargo-lambda"));
        emu.args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let emulator = Group::spawn(&mut emu)?;
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if t0.elapsed() > Duration::from_secs(30) {
                return Err(format!(
                    "the emulator is not listening on {port} after 30 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out =
            std::fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let mut cmd = Command::new(bootstrap);
        cmd.env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // What Lambda (and cargo-lambda's watch) set for a function. The memory size is only
            // reported here: nothing on this machine limits the process's memory or CPU by it.
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", EMULATED_NAME)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(|e| e.to_string())?)
            .stderr(out);
        let spawned = Instant::now();
        let process = Group::spawn(&mut cmd)?;
        Ok(Self {
            process,
            _emulator: emulator,
            port,
            spawned,
            first: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// Post one event; (ms until the answer, the answer). The first call's time counts from the
    /// spawn, so it includes the init.
    fn invoke_timed(&self, body: &[u8]) -> Result<(f64, Value), String> {
        let t0 = if self.first.swap(false, std::sync::atomic::Ordering::Relaxed) {
            self.spawned
        } else {
            Instant::now()
        };
        let (status, answer) = post(
            self.port,
            &format!("/2015-03-31/functions/{EMULATED_NAME}/invocations"),
            body,
        )?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if status != 200 {
            return Err(format!("the function answered HTTP {status}: {answer}"));
        }
        let v = serde_json::from_str(&answer).map_err(|e| format!("not JSON ({e}): {answer}"))?;
        Ok((ms, v))
    }

    /// A `kB` line of /proc/<pid>/status.
    fn status_kb(&self, key: &str) -> Result<u64, String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.pid()))
            .map_err(|e| format!("read status: {e}"))?;
        status
            .lines()
            .find_map(|l| {
                l.strip_prefix(key)?
                    .strip_prefix(':')?
                    .trim()
                    .strip_suffix(" kB")?
                    .trim()
                    .parse()
                    .ok()
            })
            .ok_or_else(|| format!("no {key} in /proc/{}/status", self.process.pid()))
    }
}

/// A minimal HTTP/1.1 POST on loopback: (status, body). Handles a chunked answer.
fn post(port: u16, path: &str, body: &[u8]) -> Result<(u16, String), String> {
    let err = |e: std::io::Error| format!("POST {path}: {e}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(180)))
        .map_err(err)?;
    s.set_nodelay(true).map_err(err)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(&[head.as_bytes(), body].concat())
        .map_err(err)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(err)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("POST {path}: no HTTP head in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("POST {path}: bad status line"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The captured Spot warning, re-addressed to `instance` and dated now.
fn spot_warning(root: &Path, instance: &str) -> Result<Vec<u8>, String> {
    let path = root.join("events/aws.ec2-spot-instance-interruption-warning-terminate.json");
    let mut ev: Value = serde_json::from_slice(
        &std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    ev["id"] = json!(format!("measure-{}", now.as_nanos()));
    ev["time"] = json!(utc_rfc3339(now.as_secs()));
    ev["resources"] = json!([format!(
        "arn:aws:ec2:us-east-1:123456789012:instance/{instance}"
    )]);
    ev["detail"]["instance-id"] = json!(instance);
    serde_json::to_vec(&ev).map_err(|e| e.to_string())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (days → civil date after H. Hinnant).
fn utc_rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
