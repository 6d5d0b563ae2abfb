//! `costop-demo` (`cargo xtask demo`): the demo of [`costop_demo::run`] on stdout, with the
//! scenario and dry-run chosen on the command line.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use costop_app::telemetry;
use costop_bed::Scenario;
use costop_bed::scenario::builtin;
use costop_demo::Options;

#[derive(Parser)]
#[command(about = "costop on the local bed: a Spot warning handled end to end")]
struct Args {
    /// A built-in scenario's name or a scenario YAML file (the help lists the built-ins).
    #[arg(long, value_name = "NAME|FILE", default_value = "demo")]
    scenario: String,
    /// Only print the plans (dry run): nothing is changed.
    #[arg(long)]
    dry_run: bool,
}

/// The arguments, with the built-in scenarios' names in `--scenario`'s help, read from the
/// list the bed embeds so the two cannot drift apart.
fn parse_args() -> Args {
    let help = format!(
        "A built-in scenario ({}) or a scenario YAML file",
        builtin::names()
    );
    let matches = Args::command()
        .mut_arg("scenario", |a| a.help(help))
        .get_matches();
    Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = parse_args();
    telemetry::init_text_logs(&std::env::var("COSTOP_DEMO_LOG").unwrap_or_else(|_| "warn".into()));
    let scenario = match Scenario::named_or_file(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("costop-demo: {}", costop_app::error_chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        dry_run: args.dry_run,
        ..Options::default()
    };
    match costop_demo::run(scenario, &options, &mut std::io::stdout()).await {
        // Dropping the run's bed stops moto and kubesim.
        Ok(run) => {
            drop(run);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\ncostop-demo failed: {}", costop_app::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
