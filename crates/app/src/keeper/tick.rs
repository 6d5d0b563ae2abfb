//! The pool tick: the resume watches ([`super::resume`]) and the scheduled changes that came
//! due ([`super::handoff`]), the replay of queued writes ([`super::replay`]), then per cluster return serving standbys whose zone has spot capacity back
//! (drain, stop, retag available, release the lease), put back standbys that never served,
//! and report the pool against its wanted size.

use std::collections::BTreeMap;

use chrono::Utc;
use costop_core::event::InstanceState;
use costop_core::facts::{InstanceFacts, node_of};
use costop_core::plan::resolve_cluster;
use costop_core::record::TimelineStep;
use costop_core::standby::{self, PoolFacts, StandbyFacts, TickAction, TickPlan};

use super::{Keeper, KeeperError, KeeperOutcome, TickReport, observe};
use crate::function::{Mode, error_chain};
use crate::ports::{Ec2, EvictOutcome, KeeperPorts, Kube, KubeOf, Records};

impl<W: KeeperPorts> Keeper<W> {
    /// One tick: the resume watches, and every cluster with standbys (and every allow-listed one), planned and executed
    /// independently; the first failure is returned after all clusters had their turn.
    pub(super) async fn tick(&self, mode: Mode) -> Result<KeeperOutcome, KeeperError> {
        let standbys = self
            .world
            .ec2()
            .standbys()
            .await
            .map_err(observe("standbys"))?;
        let mut by_cluster: BTreeMap<String, Vec<InstanceFacts>> = self
            .config
            .cluster_allow_list
            .iter()
            .map(|c| (c.clone(), Vec::new()))
            .collect();
        for s in standbys {
            if let Some(c) = resolve_cluster(&s, &self.config) {
                by_cluster.entry(c.name).or_default().push(s);
            }
        }
        let mut plans = Vec::new();
        let mut reports = Vec::new();
        let mut first_error = None;
        for (cluster, standbys) in by_cluster {
            match self.tick_cluster(&cluster, standbys, mode).await {
                Ok((plan, report)) => {
                    plans.push(plan);
                    reports.extend(report);
                }
                Err(e) => {
                    tracing::error!(cluster = %cluster, error = %error_chain(&e), "pool maintenance failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        // Nodes whose instances came back, whatever the cluster.
        let resumes = match self.resume(mode).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "giving nodes back failed");
                first_error.get_or_insert(e);
                Vec::new()
            }
        };
        // Scheduled changes that came due, whatever the cluster.
        let handoffs = match self.hand_off_due(mode).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "reading the scheduled changes failed");
                first_error.get_or_insert(e);
                Vec::new()
            }
        };
        // Shifted traffic, whatever the cluster.
        let traffic = match self.restore_traffic(mode).await {
            Ok(t) => t,
            Err(e) => {
                first_error.get_or_insert(e);
                Vec::new()
            }
        };
        // The fallback's queued writes, once traffic is back (after the restore above).
        let replay = match self.replay(mode).await {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "reading the write queue failed");
                first_error.get_or_insert(e);
                None
            }
        };
        match first_error {
            Some(e) => Err(e),
            None => Ok(KeeperOutcome::Tick {
                plans,
                reports,
                resumes,
                handoffs,
                traffic,
                replay,
            }),
        }
    }

    async fn tick_cluster(
        &self,
        cluster: &str,
        standbys: Vec<InstanceFacts>,
        mode: Mode,
    ) -> Result<(TickPlan, Option<TickReport>), KeeperError> {
        let kube = self.connect(cluster).await?;
        let nodes = kube
            .nodes()
            .await
            .map_err(observe(format!("nodes of {cluster}")))?;
        let mut facts = PoolFacts {
            cluster: cluster.to_owned(),
            standbys: Vec::new(),
            nodes,
        };
        for instance in standbys {
            let node = node_of(&instance, &facts.nodes).cloned();
            // A stopped standby has nothing running on it worth a request.
            let pods = match (&node, instance.state) {
                (Some(n), s) if s != InstanceState::Stopped => kube
                    .pods_on(&n.name)
                    .await
                    .map_err(observe(format!("pods on {}", n.name)))?,
                _ => Vec::new(),
            };
            facts.standbys.push(StandbyFacts {
                instance,
                node,
                pods,
            });
        }
        let plan = standby::plan_tick(&facts, &self.config, Utc::now());
        if mode == Mode::DryRun {
            return Ok((plan, None));
        }
        let report = self.execute_tick(&kube, &plan).await?;
        Ok((plan, Some(report)))
    }

    async fn execute_tick(
        &self,
        kube: &KubeOf<W>,
        plan: &TickPlan,
    ) -> Result<TickReport, KeeperError> {
        let ec2 = self.world.ec2();
        let mut report = TickReport {
            cluster: plan.cluster.clone(),
            ..TickReport::default()
        };
        for action in &plan.actions {
            let failed = |standby: &str| {
                let standby = standby.to_owned();
                let action = action.name();
                move |source| KeeperError::Execute {
                    standby,
                    action,
                    source,
                }
            };
            match action {
                TickAction::TagStandby(change) => ec2
                    .tag_standby(change)
                    .await
                    .map_err(failed(&change.instance_id))?,
                TickAction::SetUnschedulable {
                    node,
                    unschedulable,
                } => kube
                    .set_unschedulable(node, *unschedulable)
                    .await
                    .map_err(failed(node))?,
                TickAction::EvictFromStandby { node, pods } => {
                    for pod in pods {
                        match kube.evict(pod).await.map_err(failed(node))? {
                            EvictOutcome::Accepted | EvictOutcome::Gone => {
                                report.evictions_accepted += 1
                            }
                            EvictOutcome::Blocked { .. } => report.evictions_blocked += 1,
                        }
                    }
                }
                TickAction::StopStandby { instance_id } => {
                    ec2.stop(instance_id).await.map_err(failed(instance_id))?;
                    report.stopped.push(instance_id.clone());
                }
                TickAction::ReleaseLease { instance_id } => self
                    .world
                    .records()
                    .release_standby(instance_id)
                    .await
                    .map_err(failed(instance_id))?,
                TickAction::Record(entry) => {
                    if let TimelineStep::StandbyReturned { standby } = &entry.step {
                        report.returned.push(standby.clone());
                        tracing::info!(standby = %standby, interruption_id = %entry.interruption_id, "standby returned to the pool");
                    }
                    self.append(entry, "").await?
                }
            }
            report.actions.push(action.name());
        }
        Ok(report)
    }
}
