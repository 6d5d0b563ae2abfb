//! The keeper's answer to a Spot warning (lease the zone's standby, tag it serving, retype it
//! to the spot node's type, start it, clear its node, record it, then watch for the
//! replacements; or join the standby another delivery of the interruption started) and to a
//! rebalance recommendation (retype the zone's standby ahead of time). A lease lost to another
//! delivery means planning again with what the refusal said: without that standby, or joining
//! it when the holder is this interruption.

use chrono::{DateTime, Utc};
use costop_core::event::InstanceState;
use costop_core::facts::{InstanceFacts, NodeFacts, may_back, node_of};
use costop_core::plan::resolve_cluster;
use costop_core::record::{TimelineEntry, TimelineStep};
use costop_core::standby::{
    self, LostClaim, NoStandbyReason, StartAction, StartDecision, StartFacts,
};

use super::{Keeper, KeeperError, StartReport, observe};
use crate::function::{Mode, error_chain};
use crate::ports::{Ec2, KeeperPorts, Kube, KubeOf, LeaseClaim, PortError, Records};

/// Whether a standby's node is known to be fit for its replacements, or still to be checked by
/// the replacement watch.
pub(super) struct StandbyNode<'a> {
    /// The standby.
    pub instance: &'a InstanceFacts,
    /// Its node's name, once known.
    pub name: Option<String>,
    /// Seen schedulable with only the standby taint of costop's (or made so).
    pub settled: bool,
}

impl<W: KeeperPorts> Keeper<W> {
    /// Observe, plan (again after a lost lease, with what the refusal said), execute.
    pub(super) async fn start(
        &self,
        instance_id: &str,
        mode: Mode,
        budget_end: Option<DateTime<Utc>>,
        plan: impl Fn(&StartFacts, DateTime<Utc>) -> StartDecision,
    ) -> Result<(StartDecision, Option<StartReport>), KeeperError> {
        let began = std::time::Instant::now();
        let ec2 = self.world.ec2();
        let ids = [instance_id.to_owned()];
        let (spot, standbys) = futures::join!(ec2.describe_instances(&ids), ec2.standbys());
        let spot = spot
            .map_err(observe(format!("instance {instance_id}")))?
            .into_iter()
            .next();
        let standbys = standbys.map_err(observe("standbys"))?;
        let mut facts = StartFacts {
            spot,
            standbys,
            ..StartFacts::default()
        };
        let mut kube = None;
        if let Some(spot) = facts.spot.as_ref()
            && let Some(cluster) = resolve_cluster(spot, &self.config)
        {
            let k = self.connect(&cluster.name).await?;
            let candidates = standby::stopped_in_zone(spot, &cluster.name, &facts.standbys);
            let (node, standby_nodes) = futures::join!(
                k.node_for(spot),
                futures::future::join_all(candidates.iter().map(|s| self.standby_node(&k, s)))
            );
            facts.node = node.map_err(observe(format!("node of {instance_id}")))?;
            facts.standby_nodes = standby_nodes.into_iter().flatten().collect();
            if let Some(node) = &facts.node {
                facts.pods = k
                    .pods_on(&node.name)
                    .await
                    .map_err(observe(format!("pods on {}", node.name)))?;
            }
            kube = Some(k);
        }
        let mut report = StartReport::default();
        // Each lost lease rules its standby out (or, held by this very interruption, turns the
        // plan into a join), so the plans run out within one round per standby.
        for _ in 0..=facts.standbys.len() {
            let decision = plan(&facts, Utc::now());
            let plan = match &decision {
                StartDecision::NoStandby {
                    interruption_id,
                    reason,
                } => {
                    let recorded = self
                        .no_standby(
                            instance_id,
                            interruption_id.as_deref(),
                            reason,
                            &facts,
                            mode,
                        )
                        .await?;
                    return Ok((decision, recorded.then_some(report)));
                }
                StartDecision::Act(plan) | StartDecision::Join { plan, .. } => plan,
            };
            if mode == Mode::DryRun {
                return Ok((decision, None));
            }
            match self
                .execute_start(plan, &facts, kube.as_ref(), budget_end, began, &mut report)
                .await
            {
                Ok(LeaseClaim::Won) => return Ok((decision, Some(report))),
                Ok(LeaseClaim::Lost { held_by }) => {
                    tracing::info!(standby = %plan.standby, held_by = held_by.as_deref().unwrap_or("unknown"), "standby lease held by another delivery");
                    report.leases_lost.push(plan.standby.clone());
                    facts.lost_claims.push(LostClaim {
                        standby: plan.standby.clone(),
                        held_by,
                    });
                }
                Err(e) => {
                    self.undo_start(plan).await;
                    return Err(e);
                }
            }
        }
        // Not reached while the plan rules out each lost standby; reported rather than looped.
        let decision = plan(&facts, Utc::now());
        tracing::error!(decision = %serde_json::to_string(&decision).unwrap_or_default(), "the plan still chose a standby after every lease was tried; not executed");
        Ok((decision, Some(report)))
    }

    /// Log why no standby was started, and record it on the interruption's timeline when
    /// executing and the instance is known; whether it was recorded.
    async fn no_standby(
        &self,
        instance_id: &str,
        interruption_id: Option<&str>,
        reason: &NoStandbyReason,
        facts: &StartFacts,
        mode: Mode,
    ) -> Result<bool, KeeperError> {
        tracing::info!(instance_id, reason = %reason.describe(), "no standby started");
        let (Mode::Execute, Some(iid), Some(_)) = (mode, interruption_id, &facts.spot) else {
            return Ok(false);
        };
        let entry = TimelineEntry {
            interruption_id: iid.to_owned(),
            at: Utc::now(),
            step: TimelineStep::NoStandby {
                reason: reason.describe(),
            },
        };
        self.append(&entry, "").await?;
        Ok(true)
    }

    /// The node of a standby, read as cheaply as the core's rule allows: by the name this
    /// client knows for it or its private DNS name (one GET each), taken only if it
    /// [`may_back`] the instance. No list of every node: the watch asks on every poll until a
    /// fresh standby's node registers. A failed read is logged and left to the watch.
    pub(super) async fn standby_node(
        &self,
        kube: &KubeOf<W>,
        instance: &InstanceFacts,
    ) -> Option<NodeFacts> {
        let id = instance.instance_id.as_str();
        let known = kube.known_node_name(id);
        let names = [known.as_deref(), instance.private_dns_name.as_deref()];
        for (i, name) in names.iter().enumerate() {
            let Some(name) = name.filter(|n| !n.is_empty() && !names[..i].contains(&Some(n)))
            else {
                continue;
            };
            match kube.node(name).await {
                Ok(Some(node)) if may_back(node.provider_id.as_deref(), id) => return Some(node),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(standby = %id, node = %name, error = %error_chain(&e), "could not read the standby's node");
                    return None;
                }
            }
        }
        None
    }

    /// Apply a standby node patch; whether the node is now known to be clear. A failure (the
    /// node moved since it was read, most often) is logged: the watch reads it again.
    pub(super) async fn clear_standby_node(
        &self,
        kube: &KubeOf<W>,
        patch: &costop_core::plan::RestoreNode,
    ) -> bool {
        match kube.restore_node(patch).await {
            Ok(()) => {
                tracing::info!(node = %patch.node, "standby node made schedulable, costop's taints cleared");
                true
            }
            Err(PortError::Conflict { .. }) => {
                tracing::info!(node = %patch.node, "standby node changed since it was read; checked again");
                false
            }
            Err(e) => {
                tracing::warn!(node = %patch.node, error = %error_chain(&e), "could not clear the standby's node; checked again");
                false
            }
        }
    }

    async fn execute_start(
        &self,
        plan: &standby::StartPlan,
        facts: &StartFacts,
        kube: Option<&KubeOf<W>>,
        budget_end: Option<DateTime<Utc>>,
        began: std::time::Instant,
        report: &mut StartReport,
    ) -> Result<LeaseClaim, KeeperError> {
        let ec2 = self.world.ec2();
        let failed = |action: &'static str| {
            let standby = plan.standby.clone();
            move |source| KeeperError::Execute {
                standby,
                action,
                source,
            }
        };
        // A start plan begins with the lease; a rebalance's prepare plan and a join have none.
        let leased = matches!(plan.actions.first(), Some(StartAction::ClaimStandby(_)));
        let instance = facts
            .standbys
            .iter()
            .find(|s| s.instance_id == plan.standby);
        let known_node = instance
            .and_then(|i| node_of(i, &facts.standby_nodes))
            .map(|n| n.name.clone());
        // Known clear when the plan found the node and saw nothing to clear; a join checks it
        // again, in case the delivery that started the standby did not get that far.
        let mut node_settled = leased
            && known_node.is_some()
            && !plan
                .actions
                .iter()
                .any(|a| matches!(a, StartAction::ClearStandbyNode(_)));
        for action in &plan.actions {
            match action {
                StartAction::ClaimStandby(lease) => {
                    let claim = self
                        .world
                        .records()
                        .lease_standby(lease, Utc::now())
                        .await
                        .map_err(failed(action.name()))?;
                    if claim != LeaseClaim::Won {
                        return Ok(claim);
                    }
                }
                StartAction::TagStandby(change) => ec2
                    .tag_standby(change)
                    .await
                    .map_err(failed(action.name()))?,
                StartAction::RetypeStandby {
                    instance_id, to, ..
                } if !leased => {
                    // A rebalance's retype holds no lease: a warning may have claimed and
                    // started the standby since it was read. Read it again right before, and
                    // take EC2's refusal of a no longer stopped instance as the same news.
                    let current = ec2
                        .describe_instances(std::slice::from_ref(instance_id))
                        .await
                        .map_err(failed(action.name()))?;
                    let refused = if current.first().is_some_and(standby::is_startable) {
                        match ec2.retype(instance_id, to).await {
                            Ok(()) => false,
                            Err(PortError::WrongState { .. }) => true,
                            Err(e) => return Err(failed(action.name())(e)),
                        }
                    } else {
                        true
                    };
                    if refused {
                        tracing::info!(standby = %instance_id, "standby no longer stopped and available; not retyped");
                        report.skipped = Some("standby no longer stopped and available");
                        return Ok(LeaseClaim::Won);
                    }
                }
                StartAction::RetypeStandby {
                    instance_id, to, ..
                } => ec2
                    .retype(instance_id, to)
                    .await
                    .map_err(failed(action.name()))?,
                StartAction::StartStandby { instance_id } => {
                    ec2.start(instance_id)
                        .await
                        .map_err(failed(action.name()))?;
                    report.started = true;
                    report.time_to_start_ms = Some(began.elapsed().as_millis() as u64);
                    tracing::info!(standby = %instance_id, interruption_id = %plan.interruption_id, instance_type = %plan.instance_type, "standby started");
                }
                StartAction::ClearStandbyNode(patch) => {
                    if let Some(kube) = kube {
                        node_settled = self.clear_standby_node(kube, patch).await;
                    }
                }
                StartAction::Record(entry) => self.append(entry, &plan.standby).await?,
                StartAction::TolerateReplacements(spec) => {
                    if let Some(kube) = kube {
                        let node = instance.map(|instance| StandbyNode {
                            instance,
                            name: known_node.clone(),
                            settled: node_settled,
                        });
                        report.tolerated = self.tolerate(kube, spec, node, budget_end).await;
                    }
                }
            }
            report.actions.push(action.name());
        }
        Ok(LeaseClaim::Won)
    }

    /// A start failed after the lease: put the standby back (best effort; the tick also
    /// resets a serving standby that never ran) so the retry can take it again.
    async fn undo_start(&self, plan: &standby::StartPlan) {
        let Some(StartAction::ClaimStandby(_)) = plan.actions.first() else {
            return;
        };
        let ec2 = self.world.ec2();
        if let Ok(current) = ec2
            .describe_instances(std::slice::from_ref(&plan.standby))
            .await
            && current
                .first()
                .is_some_and(|i| i.state == InstanceState::Stopped)
            && let Err(e) = ec2
                .tag_standby(&standby::available_tags(&plan.standby))
                .await
        {
            tracing::warn!(standby = %plan.standby, error = %error_chain(&e), "could not retag the standby available");
        }
        if let Err(e) = self.world.records().release_standby(&plan.standby).await {
            tracing::warn!(standby = %plan.standby, error = %error_chain(&e), "could not release the standby's lease");
        }
    }
}
