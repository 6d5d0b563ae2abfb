//! The project runner behind the README's commands: `cargo xtask demo` runs the main job on
//! the local bed, `cargo xtask test` installs what the tests need and runs all of them,
//! `cargo xtask bed` starts the standalone bed, `cargo xtask bench` runs the benchmarks,
//! `cargo xtask measure-lambda [--function …]` measures a deployable function (zip size, init,
//! peak RSS, CPU time).
//! It only orchestrates other commands, so it stays dependency-light and builds in seconds.

mod measure;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "costop project tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the project-local tools (Python virtualenv with moto and friends).
    Setup,
    /// Run every test (installs what it needs first).
    Test {
        /// Extra arguments for `cargo nextest run` (e.g. a filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Start the standalone local bed (moto + kubesim) and run until interrupted.
    Bed {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the demo: a Spot warning handled end to end on the local bed.
    Demo {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the benchmarks and print their figures.
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build a function's release Lambda zip and measure its size, cold-start init and peak RSS
    /// on its heavy round on the bed: a 110-pod drain, or the keeper's standby start with 110
    /// replacements (see BENCHMARKS.md).
    MeasureLambda(measure::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = repo_root();
    let result = match cli.cmd {
        Cmd::Setup => setup(&root),
        Cmd::Test { args } => setup(&root).and_then(|()| test(&root, &args)),
        Cmd::Bed { args } => setup(&root).and_then(|()| {
            build_fallback(&root, false)?;
            run(cargo(&root)
                .args(["run", "-q", "-p", "costop-bed", "--bin", "costop-bed", "--"])
                .args(&args))
        }),
        Cmd::Demo { args } => setup(&root).and_then(|()| {
            build_fallback(&root, false)?;
            run(cargo(&root)
                .args(["run", "-q", "-p", "costop-demo", "--"])
                .args(&args))
        }),
        Cmd::Bench { args } => setup(&root).and_then(|()| {
            // `cargo xtask bench traffic --quick`: one benchmark by name; otherwise all of them.
            // A `--` after the name (`bench traffic -- --json`, as cargo's own commands take it)
            // separates nothing more here: the benchmark gets what follows.
            build_fallback(&root, true)?;
            match args.first().filter(|a| BENCHES.contains(&a.as_str())) {
                Some(name) => run(cargo(&root)
                    .args(["bench", "-p", "costop-tests", "--bench", name, "--"])
                    .args(
                        args[1..]
                            .iter()
                            .skip(usize::from(args.get(1).is_some_and(|a| a == "--"))),
                    )),
                None => run(cargo(&root)
                    .args(["bench", "--workspace", "--"])
                    .args(&args)),
            }
        }),
        Cmd::MeasureLambda(args) => setup(&root).and_then(|()| measure::measure(&root, &args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The benchmarks `cargo xtask bench <name>` runs alone (`tests/benches/<name>.rs`).
const BENCHES: &[&str] = &["interruption", "traffic", "fallback"];

/// The fallback function's binary, which the bed runs behind its ALB stand-in when a scenario
/// deploys the fallback (`traffic`): beside the bed's own executable, same profile.
fn build_fallback(root: &Path, release: bool) -> Result<(), String> {
    let mut c = cargo(root);
    c.args([
        "build",
        "-q",
        "-p",
        "costop-fallback",
        "--bin",
        "costop-fallback",
    ]);
    if release {
        c.arg("--release");
    }
    run(&mut c)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repo")
        .to_path_buf()
}

fn cargo(root: &Path) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root);
    c
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{:?} failed ({status})", cmd.get_program()))
    }
}

/// Create `.venv` and install `tools/requirements.txt` into it when it changed since the
/// last install (a stamp file holds the installed requirements).
fn setup(root: &Path) -> Result<(), String> {
    let venv = root.join(".venv");
    let req = root.join("tools/requirements.txt");
    let wanted =
        std::fs::read_to_string(&req).map_err(|e| format!("cannot read {}: {e}", req.display()))?;
    let stamp = venv.join(".costop-requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    if !venv.join("bin/python").exists() {
        eprintln!("xtask: creating {}", venv.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    eprintln!("xtask: installing tools/requirements.txt into .venv");
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&req))?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))
}

/// The Lambda functions (package = binary name). `cargo lambda watch -p <f> --bin <f>` compiles
/// each with `cargo build --manifest-path Cargo.toml --package <f> --bin <f>` (it runs `cargo
/// run`); tests/tests/lambda_local.rs builds the same way.
const LAMBDA_FUNCTIONS: [&str; 3] = ["costop-interruption", "costop-keeper", "costop-fallback"];

fn test(root: &Path, extra: &[String]) -> Result<(), String> {
    let nextest = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nextest {
        eprintln!("xtask: installing cargo-nextest");
        run(cargo(root).args(["install", "--locked", "cargo-nextest"]))?;
    }
    // Doc examples are tests too, and nextest does not run them: run them first so the run
    // closes on nextest's summary of every other test. Before them, formatting (`cargo fmt
    // --all` fixes it) and clippy over every target, warnings denied: that also compiles the
    // benchmarks, which no test builds, so a port change cannot leave them broken.
    if extra.is_empty() {
        run(cargo(root).args(["fmt", "--all", "--check"]))?;
        run(cargo(root).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "-q",
            "--",
            "-D",
            "warnings",
        ]))?;
        run(cargo(root).args(["test", "--workspace", "--exclude", "xtask", "--doc", "-q"]))?;
    }
    // tests/tests/lambda_local.rs runs `cargo lambda watch`, which builds the function with this
    // command: its own feature set, so nothing nextest builds serves it, and a cold build takes
    // ~10 min on 2 cores. Built here, outside any test's timeout, the test only starts it.
    for f in LAMBDA_FUNCTIONS {
        run(cargo(root).args([
            "build",
            "--manifest-path",
            "Cargo.toml",
            "--package",
            f,
            "--bin",
            f,
        ]))?;
    }
    run(cargo(root)
        .args(["nextest", "run", "--workspace", "--exclude", "xtask"])
        .args(extra))
}
