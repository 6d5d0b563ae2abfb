//! The keeper's answer to a Spot warning (lease the zone's standby, tag it serving, retype it
//! to the spot node's type, start it, record it, then watch for the replacements) and to a
//! rebalance recommendation (retype the zone's standby ahead of time). A lease lost to another
//! interruption means planning again without that standby.

use chrono::{DateTime, Utc};
use costop_core::plan::resolve_cluster;
use costop_core::record::{TimelineEntry, TimelineStep};
use costop_core::standby::{self, StartAction, StartDecision, StartFacts};

use super::{Keeper, KeeperError, StartReport, observe};
use crate::function::{Mode, error_chain};
use crate::ports::{Claim, Ec2, KeeperPorts, Kube, KubeOf, PortError, Records};

/// Leases lost to other interruptions before the keeper gives up on a warning.
const MAX_CLAIMS: usize = 3;

impl<W: KeeperPorts> Keeper<W> {
    /// Observe, plan (again without a standby whose lease is lost), execute.
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
        if let Some(cluster) = facts
            .spot
            .as_ref()
            .and_then(|s| resolve_cluster(s, &self.config))
        {
            let k = self.connect(&cluster.name).await?;
            let spot = facts.spot.as_ref().expect("checked above");
            facts.node = k
                .node_for(spot)
                .await
                .map_err(observe(format!("node of {instance_id}")))?;
            if let Some(node) = &facts.node {
                facts.pods = k
                    .pods_on(&node.name)
                    .await
                    .map_err(observe(format!("pods on {}", node.name)))?;
            }
            kube = Some(k);
        }
        let mut report = StartReport::default();
        for _ in 0..MAX_CLAIMS {
            let decision = plan(&facts, Utc::now());
            let plan = match &decision {
                StartDecision::NoStandby {
                    interruption_id,
                    reason,
                } => {
                    tracing::info!(instance_id, reason = %reason.describe(), "no standby started");
                    if let (Mode::Execute, Some(iid), Some(_)) =
                        (mode, interruption_id, &facts.spot)
                    {
                        let entry = TimelineEntry {
                            interruption_id: iid.clone(),
                            at: Utc::now(),
                            step: TimelineStep::NoStandby {
                                reason: reason.describe(),
                            },
                        };
                        self.append(&entry, "").await?;
                        return Ok((decision, Some(report)));
                    }
                    return Ok((decision, None));
                }
                StartDecision::Act(p) => p,
            };
            if mode == Mode::DryRun {
                return Ok((decision, None));
            }
            match self
                .execute_start(plan, kube.as_ref(), budget_end, began, &mut report)
                .await
            {
                Ok(Claim::Won) => return Ok((decision, Some(report))),
                Ok(Claim::Lost) => {
                    report.leases_lost.push(plan.standby.clone());
                    facts.leased_elsewhere.push(plan.standby.clone());
                }
                Err(e) => {
                    self.undo_start(plan).await;
                    return Err(e);
                }
            }
        }
        // Every candidate was taken: plan once more to report why nothing is left.
        Ok((plan(&facts, Utc::now()), Some(report)))
    }

    async fn execute_start(
        &self,
        plan: &standby::StartPlan,
        kube: Option<&KubeOf<W>>,
        budget_end: Option<DateTime<Utc>>,
        began: std::time::Instant,
        report: &mut StartReport,
    ) -> Result<Claim, KeeperError> {
        let ec2 = self.world.ec2();
        let failed = |action: &'static str| {
            let standby = plan.standby.clone();
            move |source| KeeperError::Execute {
                standby,
                action,
                source,
            }
        };
        // A start plan begins with the lease; a rebalance's prepare plan has none.
        let leased = matches!(plan.actions.first(), Some(StartAction::ClaimStandby(_)));
        for action in &plan.actions {
            match action {
                StartAction::ClaimStandby(lease) => {
                    let claim = self
                        .world
                        .records()
                        .lease_standby(lease, Utc::now())
                        .await
                        .map_err(failed(action.name()))?;
                    if claim == Claim::Lost {
                        return Ok(Claim::Lost);
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
                        return Ok(Claim::Won);
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
                StartAction::Record(entry) => self.append(entry, &plan.standby).await?,
                StartAction::TolerateReplacements(spec) => {
                    if let Some(kube) = kube {
                        report.tolerated = self.tolerate(kube, spec, budget_end).await;
                    }
                }
            }
            report.actions.push(action.name());
        }
        Ok(Claim::Won)
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
                .is_some_and(|i| i.state == costop_core::event::InstanceState::Stopped)
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
