//! `costop`: replay a captured EventBridge event through the same handler the Lambda runs,
//! against whatever AWS endpoint and cluster the environment names (`AWS_*`, including
//! `AWS_ENDPOINT_URL`, and `KUBECONFIG`), read an interruption's timeline back, and list the
//! `COSTOP_*` configuration variables (or check the environment's).
//!
//! Exit codes: 0 handled or deliberately ignored; 2 the event is malformed (nothing was
//! changed); 1 anything else (configuration, AWS or cluster errors).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use costop_app::handler::read;
use costop_app::{Handler, HandlerError, HasRecords, Mode, telemetry};
use costop_core::Config;

mod render;
mod variables;

#[derive(Parser)]
#[command(
    name = "costop",
    version,
    about = "Spot-interruption response for EKS: replay events, read timelines, list configuration"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Handle a captured EventBridge event (a JSON file) exactly as the Lambda would.
    Replay {
        /// The event file, e.g. events/aws.ec2-spot-instance-interruption-warning-terminate.json.
        file: PathBuf,
        /// Print the plan and stop: observe, decide, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the outcome as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print an interruption's timeline (by interruption id, or every interruption of an instance).
    Timeline {
        /// Interruption id (as printed by `replay`).
        #[arg(required_unless_present = "instance")]
        interruption_id: Option<String>,
        /// List the interruptions of this instance instead.
        #[arg(long)]
        instance: Option<String>,
        /// Print raw items as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the configuration the environment gives (one line) and warn about `COSTOP_*`
    /// variables costop would ignore; with `--list`, every variable, its default and meaning.
    Config {
        /// List every `COSTOP_*` variable by concern instead (needs no valid environment).
        #[arg(long)]
        list: bool,
        /// With `--list`: a JSON array of {name, group, default, accepts, doc}.
        #[arg(long, requires = "list", conflicts_with = "markdown")]
        json: bool,
        /// With `--list`: the Markdown tables of the core's configuration docs.
        #[arg(long, requires = "list")]
        markdown: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("costop: {}", costop_app::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

async fn run(cli: Cli) -> Result<ExitCode, BoxError> {
    // The listing comes before the configuration is read: it is how one finds out what to set.
    if let Cmd::Config {
        list: true,
        json,
        markdown,
    } = cli.cmd
    {
        let format = match (json, markdown) {
            (true, _) => variables::Format::Json,
            (_, true) => variables::Format::Markdown,
            _ => variables::Format::Text,
        };
        print!("{}", variables::list(format)?);
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::from_env(std::env::vars())?;
    telemetry::init_text_logs(
        &std::env::var(variables::CLI_LOG_VAR).unwrap_or_else(|_| "warn".into()),
    );
    match cli.cmd {
        Cmd::Replay {
            file,
            dry_run,
            json,
        } => {
            let bytes =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            // Parse before touching AWS or the cluster: a malformed event changes nothing.
            let payload: serde_json::Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("costop: {} is not valid JSON: {e}", file.display());
                    return Ok(ExitCode::from(2));
                }
            };
            if let Err(e) = costop_core::Event::from_value(&payload) {
                eprintln!(
                    "costop: {} is malformed: {}",
                    file.display(),
                    costop_app::error_chain(&e)
                );
                return Ok(ExitCode::from(2));
            }
            let world = costop_adapters::AwsWorld::from_env(&config).await?;
            let handler = Handler::new(world, config);
            let mode = if dry_run { Mode::DryRun } else { Mode::Execute };
            match handler.handle(&payload, mode).await {
                Ok(outcome) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&outcome)?);
                    } else {
                        print!("{}", render::outcome(&outcome, dry_run));
                    }
                    if !dry_run {
                        telemetry::interruption::emit_metrics(handler.config(), &outcome);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(HandlerError::Malformed(e)) => {
                    eprintln!(
                        "costop: {} is malformed: {}",
                        file.display(),
                        costop_app::error_chain(&e)
                    );
                    Ok(ExitCode::from(2))
                }
                Err(e) => Err(Box::new(e)),
            }
        }
        Cmd::Timeline {
            interruption_id,
            instance,
            json,
        } => {
            let world = costop_adapters::AwsWorld::from_env(&config).await?;
            let records = world.records();
            let ids = match (interruption_id, instance) {
                (Some(id), _) => vec![id],
                (None, Some(instance)) => read::interruptions_of(records, &instance).await?,
                (None, None) => unreachable!("clap requires one"),
            };
            if ids.is_empty() {
                eprintln!("costop: no interruption recorded");
                return Ok(ExitCode::FAILURE);
            }
            for id in ids {
                let items = read::timeline(records, &id).await?;
                if items.is_empty() {
                    eprintln!("costop: no interruption {id} recorded");
                    return Ok(ExitCode::FAILURE);
                }
                if json {
                    println!("{}", serde_json::to_string_pretty(&items)?);
                } else {
                    print!("{}", render::timeline(&id, &items));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Config { .. } => {
            println!("{config}");
            for warning in variables::warnings(std::env::vars()) {
                eprintln!("costop: warning: {warning}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
