//! `costop`: replay a captured EventBridge event through the functions EventBridge would deliver
//! it to ([`replay`]), against whatever AWS endpoint and cluster the environment names (`AWS_*`,
//! including `AWS_ENDPOINT_URL`, and `KUBECONFIG`), read an interruption's timeline back, print
//! the EventBridge rules, and list the `COSTOP_*` configuration variables (or check the
//! environment's).
//!
//! Exit codes: 0 handled or deliberately ignored; 2 the event is malformed (nothing was
//! changed); 1 anything else (configuration, AWS or cluster errors).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use costop_app::handler::read;
use costop_app::{HasRecords, telemetry};
use costop_core::Config;

mod render;
mod replay;
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
    /// Hand a captured EventBridge event (a JSON file) to every function whose rule matches it,
    /// as EventBridge would, and print each function's outcome.
    Replay(replay::Args),
    /// Print the EventBridge rules that deliver events to each function (`--json`: the
    /// `infra/event-rules.json` that infra/check.py compares with the template).
    Rules {
        /// As JSON.
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
    if let Cmd::Rules { json } = cli.cmd {
        let rules = costop_core::rules::rules();
        if json {
            println!("{}", serde_json::to_string_pretty(&rules)?);
        } else {
            for r in rules {
                match (&r.pattern, r.schedule) {
                    (Some(p), _) => println!("{} {}: {p}", r.function, r.name),
                    (None, Some(s)) => println!("{} {}: schedule {s}", r.function, r.name),
                    (None, None) => {}
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::from_env(std::env::vars())?;
    telemetry::init_text_logs(
        &std::env::var(variables::CLI_LOG_VAR).unwrap_or_else(|_| "warn".into()),
    );
    match cli.cmd {
        Cmd::Replay(args) => replay::run(args, config).await,
        Cmd::Rules { .. } => unreachable!("answered before the configuration is read"),
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
