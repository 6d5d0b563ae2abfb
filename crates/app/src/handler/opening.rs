//! Up to each instance's opening, the latency-critical part. Round one asks EC2, the dedupe
//! items and — when a warm function knows the node — the node, all at once. Each instance then
//! plans from what its opening depends on (event, delivery, instance, node: never the pods,
//! target groups or lifecycle hook) and sends the opening (the dedupe claim beside the one
//! cordon patch) as soon as its node is known, reading its pods (and an ASG hook's lifecycle
//! hook) meanwhile.

use std::time::Duration;

use chrono::{DateTime, Utc};
use costop_core::facts::{
    Delivery, Facts, InstanceFacts, LifecycleHookFacts, NodeFacts, PodFacts, StandbyLeaseRecord,
};
use costop_core::handoff::{ScheduledChange, ScheduledRef};
use costop_core::plan::action::CordonAndTaint;
use costop_core::record;
use costop_core::standby;
use costop_core::{Decision, Event, IgnoreReason, Plan};
use futures::future::join_all;

use super::{DeliveryContext, Handler, HandlerError};
use crate::function::Mode;
use crate::ports::{
    Asg, Claim, Clusters, Ec2, InterruptionPorts, Kube, KubeOf, PortError, Records,
};

/// One instance after its opening.
pub(super) struct Opened<K> {
    /// Everything observed but the target groups (and the pods, which are in `pods`).
    pub facts: Facts,
    /// The decision planned from [`Facts::for_opening`].
    pub early: Decision,
    /// The pods, read while the opening was in flight.
    pub pods: Result<Vec<PodFacts>, PortError>,
    /// The ASG terminate hook the plan heartbeats, read beside the pods (`Ok(None)` for a plan
    /// without one).
    pub hook: Result<Option<LifecycleHookFacts>, PortError>,
    /// What the opening did; `None` when nothing was sent (an ignore, or a dry run).
    pub sent: Option<Sent<K>>,
}

impl<K> Opened<K> {
    /// This delivery owns the event.
    pub fn claimed(&self) -> bool {
        matches!(self.sent, Some(Sent::Claimed(_)))
    }
}

/// What the opening's claim found.
pub(super) enum Sent<K> {
    /// Another delivery owns the event: stop.
    ClaimLost,
    /// This delivery owns it, and the node is cordoned (if the plan cordons).
    Claimed(Claimed<K>),
}

/// An event this delivery owns.
pub(super) struct Claimed<K> {
    /// The instance's cluster (absent only when the plan needs none).
    pub kube: Option<K>,
    /// When the cordon patch was answered; `None` if the plan has none (or no claim to send it
    /// with, in which case it runs first when the plan is executed).
    pub cordoned: Option<Cordoned>,
}

/// The cordon patch's answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cordoned {
    /// Since handling began.
    pub after: Duration,
    pub at: DateTime<Utc>,
}

/// What round one read about one instance.
struct FirstRead {
    instance: Option<InstanceFacts>,
    delivery: Result<Delivery, PortError>,
    /// The node by the name a warm function remembers, before EC2 answered.
    guess: Option<NodeFacts>,
    /// The scheduled change recorded for a Health event's instance.
    scheduled: Result<Option<ScheduledChange>, PortError>,
}

impl<W: InterruptionPorts> Handler<W> {
    /// Round one for every instance of the delivery, then each instance up to its opening.
    /// `Err` when EC2 could not be read (nothing was done); per instance, the error that
    /// stopped it before its opening.
    pub(super) async fn open_all(
        &self,
        cx: &DeliveryContext<'_>,
        event_id: &str,
        ids: &[String],
    ) -> Result<Vec<Result<Opened<KubeOf<W>>, HandlerError>>, PortError> {
        let describe = self.world.ec2().describe_instances(ids);
        let dedupe = join_all(ids.iter().map(|id| self.delivery(event_id, id)));
        let guesses = join_all(ids.iter().map(|id| self.speculate(cx.hint.as_deref(), id)));
        let scheduled = join_all(ids.iter().map(|id| self.scheduled(cx.event, id)));
        let (instances, deliveries, guesses, scheduled) =
            futures::join!(describe, dedupe, guesses, scheduled);
        let instances = instances?;
        let opened = ids.iter().zip(deliveries).zip(guesses).zip(scheduled).map(
            |(((id, delivery), guess), scheduled)| {
                let first = FirstRead {
                    instance: instances.iter().find(|i| i.instance_id == *id).cloned(),
                    delivery,
                    guess,
                    scheduled,
                };
                self.open_instance(cx, id, first)
            },
        );
        Ok(join_all(opened).await)
    }

    /// One instance up to its opening: find the node (unless the speculative read did), plan
    /// from what the opening depends on, then send the opening while reading the pods.
    async fn open_instance(
        &self,
        cx: &DeliveryContext<'_>,
        id: &str,
        first: FirstRead,
    ) -> Result<Opened<KubeOf<W>>, HandlerError> {
        let err = |source| HandlerError::Observe {
            instance_id: id.to_string(),
            source,
        };
        let mut facts = Facts {
            delivery: first.delivery.map_err(err)?,
            scheduled: first.scheduled.map_err(err)?,
            instance: first.instance,
            ..Facts::unknown_instance(id)
        };
        let cluster = facts
            .instance
            .as_ref()
            .and_then(|i| costop_core::plan::resolve_cluster(i, &self.config))
            .map(|c| c.name);
        // Whether one of costop's standbys serves an interruption is in its lease: read it
        // before planning (a round trip only standbys pay; they get no Spot warnings).
        if facts.instance.as_ref().is_some_and(standby::is_standby) {
            facts.standby_lease = self.standby_lease(id).await.map_err(err)?;
        }
        // Look for the node only if the planner would act given one: a duplicate delivery or
        // an instance of another cluster costs no Kubernetes request.
        let needs_node = matches!(
            costop_core::plan(cx.event, &facts, &self.config, cx.now),
            Decision::Ignore {
                reason: IgnoreReason::NoNodeForInstance { .. }
            }
        );
        if let (true, Some(c), Some(instance)) = (needs_node, &cluster, &facts.instance) {
            facts.node = match first.guess {
                Some(node) if Some(c.as_str()) == cx.hint.as_deref() => Some(node),
                _ => self.find_node(c, instance).await.map_err(err)?,
            };
        }
        let early = costop_core::plan(cx.event, &facts, &self.config, cx.now);
        let pods = async {
            match (&early, &facts.node, &cluster) {
                (Decision::Act(plan), Some(node), Some(c)) if plan.response.observes_pods() => {
                    self.world
                        .clusters()
                        .connect(c)
                        .await?
                        .pods_on(&node.name)
                        .await
                }
                _ => Ok(Vec::new()),
            }
        };
        let opening = async {
            match (&early, cx.mode) {
                (Decision::Act(plan), Mode::Execute) if !plan.dry_run => {
                    Some(self.open(plan, cx).await)
                }
                _ => None,
            }
        };
        // Only the in-order steps (the heartbeat interval, the completion) depend on the hook.
        let hook = async {
            match early.as_plan().and_then(Plan::lifecycle) {
                Some(l) => self.world.asg().describe_hook(&l.asg, &l.hook).await,
                None => Ok(None),
            }
        };
        // The opening first: its requests go out before the pods are asked for.
        let (sent, pods, hook) = futures::join!(opening, pods, hook);
        Ok(Opened {
            facts,
            early,
            pods,
            hook,
            sent: sent.transpose()?,
        })
    }

    /// The opening: the dedupe claim and the node patch go out together, so the node is
    /// cordoned one round trip after its facts are in. The patch is idempotent (the same taint,
    /// conditional on the resourceVersion), so a concurrent duplicate delivery that also sends
    /// it changes nothing; only the claim's winner goes on.
    async fn open(
        &self,
        plan: &Plan,
        cx: &DeliveryContext<'_>,
    ) -> Result<Sent<KubeOf<W>>, HandlerError> {
        let fail = |action: &'static str| {
            let id = plan.interruption_id.clone();
            move |source| HandlerError::Execute {
                interruption_id: id,
                action,
                source,
            }
        };
        let kube = match self.world.clusters().connect(&plan.cluster).await {
            Ok(k) => Some(k),
            Err(e) if plan.actions().any(|a| a.needs_cluster()) => {
                return Err(fail("connect")(e));
            }
            Err(_) => None,
        };
        let opening = plan.opening();
        let Some(claim) = opening.claim else {
            return Ok(Sent::Claimed(Claimed {
                kube,
                cordoned: None,
            }));
        };
        let cordon = async {
            match (opening.cordon, kube.as_ref()) {
                (Some(c), Some(k)) => Some(self.cordon(k, c).await.map(|()| Cordoned {
                    after: cx.started.elapsed(),
                    at: Utc::now(),
                })),
                _ => None,
            }
        };
        let (claimed, cordoned) =
            futures::join!(self.world.records().claim(claim, Utc::now()), cordon);
        match claimed.map_err(fail("record_event"))? {
            Claim::Lost => {
                tracing::info!(interruption_id = %plan.interruption_id, "another delivery owns this event; stopping");
                return Ok(Sent::ClaimLost);
            }
            Claim::Won => {}
        }
        match cordoned.transpose() {
            Ok(cordoned) => Ok(Sent::Claimed(Claimed { kube, cordoned })),
            Err(e) => {
                self.give_up(plan, "cordon_and_taint", &e).await;
                Err(fail("cordon_and_taint")(e))
            }
        }
    }

    /// The one-request cordon+taint; on a conflict (the node changed since it was read) read it
    /// again, re-plan the patch from the fresh node and retry a few times.
    pub(super) async fn cordon<K: Kube>(
        &self,
        kube: &K,
        first: &CordonAndTaint,
    ) -> Result<(), PortError> {
        let mut action = first.clone();
        for attempt in 0..5 {
            match kube.cordon_and_taint(&action).await {
                Err(PortError::Conflict { .. }) if attempt < 4 => {
                    let node = kube.node(&action.node).await?.ok_or(PortError::NotFound {
                        op: "cordon",
                        what: format!("node {}", action.node),
                    })?;
                    action = costop_core::plan::refresh_cordon(&action, &node);
                }
                other => return other,
            }
        }
        Ok(())
    }

    async fn standby_lease(&self, id: &str) -> Result<Option<StandbyLeaseRecord>, PortError> {
        let item = self
            .world
            .records()
            .get(&record::standby_lease_key(id))
            .await?;
        record::standby_lease_from_item(item.as_ref()).map_err(|e| PortError::Permanent {
            op: "read standby lease",
            source: Box::new(e),
        })
    }

    /// What was scheduled for this Health event's instance (no request for other events).
    async fn scheduled(
        &self,
        event: &Event,
        id: &str,
    ) -> Result<Option<ScheduledChange>, PortError> {
        let Event::Health(d) = event else {
            return Ok(None);
        };
        let key = record::scheduled_change_key(&ScheduledRef {
            instance_id: id.to_owned(),
            event_arn: d.detail.event_arn.clone(),
        });
        match self.world.records().get(&key).await? {
            None => Ok(None),
            Some(item) => record::scheduled_change_from_item(&item)
                .map(|(change, _)| Some(change))
                .map_err(|e| PortError::Permanent {
                    op: "read scheduled change",
                    source: Box::new(e),
                }),
        }
    }

    async fn delivery(&self, event_id: &str, id: &str) -> Result<Delivery, PortError> {
        let item = self
            .world
            .records()
            .get(&record::dedupe_key(event_id, id))
            .await?;
        record::delivery_from_item(item.as_ref()).map_err(|e| PortError::Permanent {
            op: "read dedupe item",
            source: Box::new(e),
        })
    }

    /// The node of `instance_id` read by a name remembered from an earlier invocation (or the
    /// node index), before EC2 has answered; `None` when there is nothing to go on or the guess
    /// is stale. Only the node: its pods are read beside the opening, never ahead of it.
    async fn speculate(&self, cluster: Option<&str>, instance_id: &str) -> Option<NodeFacts> {
        let kube = self.world.clusters().connect(cluster?).await.ok()?;
        let name = kube.known_node_name(instance_id)?;
        let node = kube.node(&name).await.ok()??;
        // A recycled name (same private IP, new instance) is not this instance's node.
        node.may_back(instance_id).then_some(node)
    }

    async fn find_node(
        &self,
        cluster: &str,
        instance: &InstanceFacts,
    ) -> Result<Option<NodeFacts>, PortError> {
        let kube = self.world.clusters().connect(cluster).await?;
        self.remember_cluster(cluster);
        kube.node_for(instance).await
    }
}
