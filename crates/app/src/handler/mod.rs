//! The interruption function: one EventBridge delivery → parse → observe the facts of every
//! instance it names → plan (pure, in the core) → execute the plan phase by phase. Dry-run is
//! "stop after the plan": the same path up to the decision, then nothing is executed.
//!
//! [`opening`] observes each instance and sends its opening (the dedupe claim beside the one
//! cordon patch) as soon as its node is known; [`execute`] plans from the complete facts and
//! runs the rest; [`read`] serves the timelines back (`costop timeline`).

mod execute;
mod opening;
mod outcome;
pub mod read;

use std::time::Instant;

use chrono::{DateTime, Utc};
use costop_core::facts::TargetGroupFacts;
use costop_core::{Config, Event};
use futures::future::join_all;

use crate::function::{Function, Mode};
use crate::ports::{Elb, InterruptionPorts, PortError};

pub use outcome::{ExecutionReport, HandlerError, InstanceOutcome, Outcome};

/// The interruption function over a world with its ports.
pub struct Handler<W> {
    world: W,
    config: Config,
    /// The cluster of the last instance served (a warm function's hint for speculative reads).
    last_cluster: std::sync::Mutex<Option<String>>,
}

/// What every instance of one delivery shares while it is handled.
struct DeliveryContext<'a> {
    event: &'a Event,
    /// The delivery as it came (a scheduled change keeps it to be handed back when due).
    payload: &'a serde_json::Value,
    /// When the delivery arrived, as the planner sees it.
    now: DateTime<Utc>,
    /// When handling began (for time to cordon; a cold start's init is not in it).
    started: Instant,
    mode: Mode,
    /// The cluster a warm function read speculatively, if any.
    hint: Option<String>,
    /// The invocation's end, if it has one.
    budget_end: Option<DateTime<Utc>>,
}

impl<W: InterruptionPorts> Handler<W> {
    pub fn new(world: W, config: Config) -> Self {
        Self {
            world,
            config,
            last_cluster: std::sync::Mutex::new(None),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn world(&self) -> &W {
        &self.world
    }

    /// Handle one delivery (the raw EventBridge JSON) with no time limit of its own.
    pub async fn handle(
        &self,
        payload: &serde_json::Value,
        mode: Mode,
    ) -> Result<Outcome, HandlerError> {
        self.handle_within(payload, mode, None).await
    }

    /// Handle one delivery, done by `budget_end` (the Lambda invocation's deadline). A drain
    /// whose own deadline lies beyond it (an ASG hook waits up to its heartbeat timeout) stops
    /// a few seconds before, records how far it got, gives the event up and fails retryably, so
    /// the async retry carries on from the cluster as it then is instead of being killed
    /// mid-flight with nothing recorded.
    pub async fn handle_within(
        &self,
        payload: &serde_json::Value,
        mode: Mode,
        budget_end: Option<DateTime<Utc>>,
    ) -> Result<Outcome, HandlerError> {
        let started = Instant::now();
        let event = Event::from_value(payload).map_err(HandlerError::Malformed)?;
        let now = Utc::now();
        let ids: Vec<String> = event
            .instance_ids()
            .into_iter()
            .map(|s| s.to_string())
            .collect();
        let event_id = event.id().unwrap_or_default().to_string();
        let kind = event
            .kind()
            .map(|k| k.slug().to_string())
            .unwrap_or_else(|| "ignored".into());
        if ids.is_empty() || matches!(event, Event::Ignored(_)) {
            let instances = costop_core::plan_all(&event, &[], &self.config, now)
                .into_iter()
                .enumerate()
                .map(|(i, decision)| InstanceOutcome {
                    instance_id: ids.get(i).cloned().unwrap_or_default(),
                    decision,
                    report: None,
                })
                .collect();
            return Ok(Outcome {
                event_id,
                kind,
                instances,
            });
        }
        let cx = DeliveryContext {
            event: &event,
            payload,
            now,
            started,
            mode,
            hint: self.cluster_hint(),
            budget_end,
        };
        let all = |source| HandlerError::Observe {
            instance_id: ids.join(","),
            source,
        };

        // The target groups are read beside everything up to the openings and awaited only
        // after them.
        let shift = !self.config.fallback_target_group.is_empty();
        let (groups, rules, opened) = futures::join!(
            self.world.elb().target_groups(),
            // Boxed: one more nested future here takes the function's future past rustc's
            // layout depth limit.
            Box::pin(async {
                if shift {
                    self.world.elb().listener_rules().await
                } else {
                    Ok(Vec::new())
                }
            }),
            self.open_all(&cx, &event_id, &ids)
        );
        // Shifting traffic helps; it must never hold up the drain.
        let rules = rules.unwrap_or_else(|e| {
            tracing::error!(error = %crate::function::error_chain(&e), "listener rules unreadable; traffic not shifted");
            Vec::new()
        });
        let opened = opened.map_err(all)?;
        let claimed_any = opened.iter().any(|o| o.as_ref().is_ok_and(|o| o.claimed()));
        // Nothing done yet: a failed target-group read fails the delivery, to be retried whole.
        // Once a node is cordoned its drain must go on: the deregistration is skipped instead.
        let groups: Result<Vec<TargetGroupFacts>, PortError> = match groups {
            Err(e) if !claimed_any => return Err(all(e)),
            other => other,
        };
        // Instances are independent (a Health event names several): each finishes even when
        // another failed; the first error is returned after all of them.
        let runs = opened
            .into_iter()
            .map(|opened| async { self.finish(&cx, opened?, &groups, &rules).await });
        let mut instances = Vec::with_capacity(ids.len());
        let mut first_error = None;
        for r in join_all(runs).await {
            match r {
                Ok(o) => instances.push(o),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(Outcome {
                event_id,
                kind,
                instances,
            }),
        }
    }

    /// The cluster to read speculatively: the only one allowed, else the last one served.
    fn cluster_hint(&self) -> Option<String> {
        match self.config.cluster_allow_list.as_slice() {
            [only] => Some(only.clone()),
            _ => self
                .last_cluster
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    fn remember_cluster(&self, cluster: &str) {
        *self.last_cluster.lock().unwrap_or_else(|e| e.into_inner()) = Some(cluster.to_string());
    }
}

impl<W: InterruptionPorts> Function for Handler<W> {
    type Outcome = Outcome;
    type Error = HandlerError;

    fn name(&self) -> &'static str {
        "costop-interruption"
    }

    fn handle_within(
        &self,
        payload: &serde_json::Value,
        mode: Mode,
        budget_end: Option<DateTime<Utc>>,
    ) -> impl std::future::Future<Output = Result<Outcome, HandlerError>> + Send {
        Handler::handle_within(self, payload, mode, budget_end)
    }

    fn report(&self, outcome: &Outcome) {
        crate::telemetry::interruption::log_outcome(outcome);
        crate::telemetry::interruption::emit_metrics(&self.config, outcome);
    }
}

/// Compile-time check: a delivery's future is `Send`, so callers may `tokio::spawn` it.
#[allow(dead_code)]
fn handling_is_send<'a, W: InterruptionPorts>(
    h: &'a Handler<W>,
    payload: &'a serde_json::Value,
) -> impl std::future::Future + Send + 'a {
    h.handle(payload, Mode::Execute)
}
