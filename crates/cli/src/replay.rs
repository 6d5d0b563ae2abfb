//! `costop replay`: a captured EventBridge event handed to every function whose rule matches
//! it ([`costop_core::rules`]), as EventBridge delivers it, each function's outcome printed.
//! The functions run side by side in this process against the environment's AWS endpoint and
//! cluster; the keeper's replacement watch is bounded by `--watch-seconds`, and scheduled changes
//! its tick hands off go to the interruption function here, as Lambda would deliver the invoke.
//!
//! Standard output carries the outcomes only (no EMF metric lines: those are the Lambda's).
//!
//! Nothing is changed before the event is known good: bad JSON, a malformed event, or
//! `--instance` with something that is not an instance id exit 2 with a message.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use costop_adapters::AwsWorld;
use costop_app::{Handler, HandoffQueue, Keeper, Mode};
use costop_core::Config;
use costop_core::event::retarget;
use costop_core::rules::{self, FUNCTIONS, INTERRUPTION_FUNCTION, KEEPER_FUNCTION};
use serde::Serialize;
use serde_json::Value;

use crate::render;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The replay's options.
#[derive(clap::Args)]
pub struct Args {
    /// The event file, e.g. events/aws.ec2-spot-instance-interruption-warning-terminate.json.
    file: PathBuf,
    /// Deliver to this function only (costop-interruption or costop-keeper), whether or not
    /// its rules match, as `cargo lambda invoke` would.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(FUNCTIONS))]
    function: Option<String>,
    /// Aim the event at this instance: every place it names one (the detail, resources, Health
    /// entities) names this id instead.
    #[arg(long, value_name = "ID")]
    instance: Option<String>,
    /// Re-date the event: its `time` becomes now (a Spot warning's two minutes start now).
    #[arg(long)]
    now: bool,
    /// How long the keeper watches for the replacement pods of a Spot warning to tolerate them
    /// onto the standby (the Lambda watches COSTOP_STANDBY_WATCH_SECONDS).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=900))]
    watch_seconds: i64,
    /// Print the plans and stop: observe, decide, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the deliveries as a JSON array instead of text.
    #[arg(long)]
    json: bool,
}

/// One delivery and what it came to, as `--json` prints it.
#[derive(Serialize)]
struct Delivered {
    function: &'static str,
    /// Set for a scheduled change the keeper handed to the interruption function.
    #[serde(skip_serializing_if = "Option::is_none")]
    handed_off_by: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip)]
    text: String,
}

pub async fn run(args: Args, config: Config) -> Result<ExitCode, BoxError> {
    let file = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let mut payload: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return refuse(format!("{file} is not valid JSON: {e}")),
    };
    if let Some(id) = &args.instance {
        payload = match retarget::aim_at_instance(&payload, id) {
            Ok(p) => p,
            Err(e) => return refuse(format!("cannot aim {file} at {id}: {e}")),
        };
    }
    if args.now {
        payload = retarget::redate(&payload, Utc::now());
    }
    // Parse before touching AWS or the cluster: a malformed event changes nothing.
    if let Err(e) = costop_core::Event::from_value(&payload) {
        return refuse(format!(
            "{file} is malformed: {}",
            costop_app::error_chain(&e)
        ));
    }
    let functions = match &args.function {
        Some(f) => FUNCTIONS.into_iter().filter(|n| n == f).collect(),
        None => rules::functions_for(&payload),
    };
    if functions.is_empty() {
        println!(
            "ignored: no costop rule matches {} / {} (EventBridge delivers it to no costop function)",
            payload["source"].as_str().unwrap_or("-"),
            payload["detail-type"].as_str().unwrap_or("-")
        );
        return Ok(ExitCode::SUCCESS);
    }

    let mode = if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Execute
    };
    let handoffs = HandoffQueue::default();
    let handler = Handler::new(AwsWorld::from_env(&config).await?, config.clone());
    let keeper_config = Config {
        standby_watch_seconds: args.watch_seconds,
        ..config.clone()
    };
    let keeper = Keeper::new(
        AwsWorld::from_env(&config)
            .await?
            .with_handoff_queue(handoffs.clone()),
        keeper_config,
    );
    // Side by side, as EventBridge invokes each rule's target independently.
    let interruption = async {
        match functions.contains(&INTERRUPTION_FUNCTION) {
            true => Some(interrupt(&handler, &payload, mode, None).await),
            false => None,
        }
    };
    let keep = async {
        match functions.contains(&KEEPER_FUNCTION) {
            true => Some(keep(&keeper, &payload, mode).await),
            false => None,
        }
    };
    let (interrupted, kept) = futures::join!(interruption, keep);
    let mut deliveries: Vec<Delivered> = interrupted.into_iter().chain(kept).collect();
    for event in handoffs.take() {
        deliveries.push(interrupt(&handler, &event, mode, Some(KEEPER_FUNCTION)).await);
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&deliveries)?);
    } else {
        for d in &deliveries {
            match d.handed_off_by {
                Some(by) => println!("{} (handed off by {by}):", d.function),
                None => println!("{}:", d.function),
            }
            match &d.error {
                Some(e) => println!("  FAILED: {e}"),
                None => print!("{}", d.text),
            }
        }
    }
    Ok(if deliveries.iter().any(|d| d.error.is_some()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A clean refusal: the message, exit 2, nothing changed.
fn refuse(message: String) -> Result<ExitCode, BoxError> {
    eprintln!("costop: {message}");
    Ok(ExitCode::from(2))
}

async fn interrupt(
    handler: &Handler<AwsWorld>,
    payload: &Value,
    mode: Mode,
    handed_off_by: Option<&'static str>,
) -> Delivered {
    let mut d = Delivered {
        function: INTERRUPTION_FUNCTION,
        handed_off_by,
        outcome: None,
        error: None,
        text: String::new(),
    };
    match handler.handle(payload, mode).await {
        Ok(outcome) => {
            d.text = render::outcome(&outcome, mode == Mode::DryRun);
            d.outcome = serde_json::to_value(&outcome).ok();
        }
        Err(e) => {
            d.error = Some(costop_app::error_chain(&e));
        }
    }
    d
}

async fn keep(keeper: &Keeper<AwsWorld>, payload: &Value, mode: Mode) -> Delivered {
    let mut d = Delivered {
        function: KEEPER_FUNCTION,
        handed_off_by: None,
        outcome: None,
        error: None,
        text: String::new(),
    };
    match keeper.handle(payload, mode).await {
        Ok(outcome) => {
            d.text = render::keeper(&outcome);
            d.outcome = serde_json::to_value(&outcome).ok();
        }
        Err(e) => {
            d.error = Some(costop_app::error_chain(&e));
        }
    }
    d
}
