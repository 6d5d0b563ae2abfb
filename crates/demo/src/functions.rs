//! costop's two functions as the demo runs them: the interruption function's handler and the
//! keeper, the same code and adapters the Lambdas run, pointed at the bed (moto behind the AWS
//! front, kubesim through its kubeconfig), and one warning delivered to both at once as the
//! EventBridge rule's two targets do.

use std::time::{Duration, Instant};

use costop_adapters::{AwsWorld, ClusterAccess};
use costop_app::handler::read;
use costop_app::keeper::KeeperOutcome;
use costop_app::{Handler, HasRecords, Keeper, Mode, Outcome};
use costop_bed::Bed;
use costop_core::Config;
use costop_core::record::TimelineEntry;
use costop_core::shift::RestoreStep;
use serde_json::Value;

use crate::DemoError;

/// What each function did with the warning, and how long it took.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The interruption function's outcome (cordon, deregister, drain).
    pub interruption: Outcome,
    pub interruption_took: Duration,
    /// The keeper's outcome (the standby, the replacements' toleration).
    pub keeper: KeeperOutcome,
    pub keeper_took: Duration,
}

/// What one keeper tick did about shifted traffic and the fallback's queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickSummary {
    /// Rules still shifted after the tick.
    pub shifted: usize,
    /// Rules put back.
    pub restored: usize,
    pub replayed: usize,
    pub dead_lettered: usize,
    /// Writes still queued.
    pub pending: u64,
}

/// Both functions over the bed.
pub struct Functions {
    handler: Handler<AwsWorld>,
    keeper: Keeper<AwsWorld>,
}

impl Functions {
    /// The functions with the bed's environment; `watch` bounds the keeper's replacement watch
    /// (it ends sooner once every replacement has the toleration).
    pub fn new(bed: &Bed, dry_run: bool, watch: Duration) -> Result<Self, DemoError> {
        let env = bed.env().into_iter().chain([
            ("COSTOP_DRY_RUN".to_string(), dry_run.to_string()),
            (
                "COSTOP_STANDBY_WATCH_SECONDS".to_string(),
                watch.as_secs().max(1).to_string(),
            ),
        ]);
        let config = Config::from_env(env).map_err(DemoError::Config)?;
        let world = || -> Result<AwsWorld, DemoError> {
            let access = ClusterAccess::kubeconfig_file(bed.kubeconfig_path())
                .map_err(DemoError::Kubeconfig)?;
            Ok(AwsWorld::new(
                bed.aws_config(),
                &config,
                access,
                Default::default(),
            ))
        };
        Ok(Self {
            handler: Handler::new(world()?, config.clone()),
            keeper: Keeper::new(world()?, config),
        })
    }

    /// Deliver `event` to the interruption function and the keeper at once.
    pub async fn deliver(&self, event: &Value, mode: Mode) -> Result<Delivery, DemoError> {
        let started = Instant::now();
        let handling = async {
            let outcome = self.handler.handle(event, mode).await;
            (outcome, started.elapsed())
        };
        let keeping = async {
            let outcome = Box::pin(self.keeper.handle(event, mode)).await;
            (outcome, started.elapsed())
        };
        let ((interruption, interruption_took), (keeper, keeper_took)) =
            tokio::join!(handling, keeping);
        Ok(Delivery {
            interruption: interruption.map_err(DemoError::Interruption)?,
            interruption_took,
            keeper: keeper.map_err(DemoError::Keeper)?,
            keeper_took,
        })
    }

    /// One tick of the keeper's schedule.
    pub async fn tick(&self) -> Result<TickSummary, DemoError> {
        let event = crate::warning::scheduled_tick().map_err(DemoError::Event)?;
        let outcome = Box::pin(self.keeper.handle(&event, Mode::Execute))
            .await
            .map_err(DemoError::Keeper)?;
        let KeeperOutcome::Tick {
            traffic, replay, ..
        } = outcome
        else {
            return Err(DemoError::NotATick);
        };
        let restored = traffic
            .iter()
            .filter(|t| t.done && matches!(t.step, RestoreStep::Restore { .. }))
            .count();
        let replay = replay.unwrap_or_default();
        Ok(TickSummary {
            shifted: traffic.len() - restored,
            restored,
            replayed: replay.replayed.len(),
            dead_lettered: replay.dead_lettered.len(),
            pending: replay.pending,
        })
    }

    /// The interruption's timeline as both functions recorded it in DynamoDB, oldest first.
    pub async fn timeline(&self, interruption_id: &str) -> Result<Vec<TimelineEntry>, DemoError> {
        let items = read::timeline(self.handler.world().records(), interruption_id)
            .await
            .map_err(DemoError::Timeline)?;
        let mut entries: Vec<TimelineEntry> = items
            .iter()
            .filter_map(|i| TimelineEntry::from_item(i).ok())
            .collect();
        entries.sort_by_key(|e| e.at);
        Ok(entries)
    }
}
