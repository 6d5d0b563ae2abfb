//! `costop-bed`: run the local bed (moto + kubesim, seeded from a scenario) until interrupted.
//!
//! Prints `KEY=VALUE` lines on stdout (KUBECONFIG, AWS_ENDPOINT_URL for moto,
//! AWS_ENDPOINT_URL_DYNAMODB for DynamoDB's moto, AWS_ENDPOINT_URL_AUTO_SCALING for the AWS front, credentials, region, COSTOP_TABLE) to copy,
//! or to load with `set -a; . ./bed.env; set +a` after `costop-bed > bed.env &`; a human summary
//! and logs go to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use costop_bed::scenario::builtin;
use costop_bed::{Bed, Scenario};

#[derive(Debug, Parser)]
#[command(
    name = "costop-bed",
    about = "Run moto + kubesim seeded from a scenario until interrupted"
)]
struct Args {
    /// A built-in scenario's name or a scenario YAML file (the help lists the built-ins).
    #[arg(long, short, value_name = "NAME|FILE")]
    scenario: Option<String>,
    /// Override the scenario's time scale (simulated seconds per real second).
    #[arg(long)]
    time_scale: Option<f64>,
    /// Also write the kubeconfig here.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Seconds to wait for nodes Ready and pods Running before printing the environment (0: don't wait).
    #[arg(long, default_value_t = 120.0)]
    wait: f64,
    /// Print the seeded world as JSON on stderr.
    #[arg(long)]
    world: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aws_config=warn,aws_smithy_runtime=warn".into()),
        )
        .init();
    match run(parse_args()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("costop-bed: {e}");
            let mut src = std::error::Error::source(&*e);
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// The arguments, with the built-in scenarios' names in `--scenario`'s help, read from the
/// list the bed embeds so the two cannot drift apart.
fn parse_args() -> Args {
    let help = format!(
        "A built-in scenario ({}) or a scenario YAML file [default: default]",
        builtin::names()
    );
    let matches = Args::command()
        .mut_arg("scenario", |a| a.help(help))
        .get_matches();
    Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut scenario = match &args.scenario {
        None => Scenario::default_scenario(),
        Some(s) => Scenario::named_or_file(s)?,
    };
    if let Some(ts) = args.time_scale {
        scenario.time_scale = ts;
    }
    // Handle SIGINT/SIGTERM from the start, so a signal during startup still cleans up.
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let bed = tokio::select! {
        bed = Bed::start(scenario) => bed?,
        _ = int.recv() => return Ok(()),
        _ = term.recv() => return Ok(()),
    };
    if let Some(p) = &args.kubeconfig {
        bed.sim().write_kubeconfig(p)?;
    }
    if args.wait > 0.0 {
        tokio::select! {
            r = bed.wait_ready(Duration::from_secs_f64(args.wait)) => if let Err(e) = r { tracing::warn!("{e}") },
            _ = int.recv() => return Ok(()),
            _ = term.recv() => return Ok(()),
        }
    }

    let mut out = std::io::stdout().lock();
    for (k, v) in bed.env() {
        let v = if k == "KUBECONFIG" {
            args.kubeconfig
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or(v)
        } else {
            v
        };
        writeln!(out, "{k}={}", shell_quote(&v))?;
    }
    if let Some(url) = bed.alb_url() {
        writeln!(out, "BED_ALB_URL={}", shell_quote(&url))?;
    }
    out.flush()?;
    drop(out);

    let w = bed.world();
    let s = bed.scenario();
    eprintln!();
    eprintln!("costop-bed: scenario `{}` — {}", s.name, s.description);
    eprintln!(
        "  cluster {} in {} (time scale {}×), kubesim {}",
        s.cluster.name,
        s.cluster.region,
        s.time_scale,
        bed.sim().url()
    );
    eprintln!(
        "  moto {} (moto {}), DynamoDB on its own moto {}, table {}",
        bed.endpoint_url(),
        costop_bed::moto::moto_version(),
        bed.dynamodb_endpoint_url(),
        w.table
    );
    eprintln!(
        "  AWS front {}: Auto Scaling's lifecycle calls (and ELBv2 target health, with the ALB stand-in) answered there, everything else forwarded to moto",
        bed.front().url()
    );
    if let Some(url) = bed.alb_url() {
        eprintln!(
            "  load balancer (ALB stand-in) at {url}: curl it while you replay an interruption"
        );
    }
    for (name, g) in &w.node_groups {
        let kind = if g.standby {
            "standby (stopped)"
        } else {
            if g.capacity == costop_bed::scenario::Capacity::Spot {
                "spot"
            } else {
                "on-demand"
            }
        };
        let ids: Vec<&str> = g.instances.iter().map(|i| i.instance_id.as_str()).collect();
        eprintln!(
            "  node group {name}: {} {kind} — {}",
            ids.len(),
            ids.join(" ")
        );
    }
    for (name, arn) in &w.target_groups {
        eprintln!("  target group {name}: {arn}");
    }
    eprintln!("  started in {:.1} s; Ctrl-C to stop", bed.timings().total);
    if args.world {
        eprintln!("{}", serde_json::to_string_pretty(w)?);
    }

    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
    drop(bed);
    Ok(())
}

fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}
