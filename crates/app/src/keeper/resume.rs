//! Nodes that come back, the keeper's part: each tick reads the resume watches the
//! interruption function left, and gives a node back what costop took once its instance runs
//! again (the decision is [`costop_core::resume`]'s), recording RESUMED on the interruption's
//! timeline. A watch whose instance will not come back is dropped.

use chrono::Utc;
use costop_core::facts::NodeFacts;
use costop_core::plan::ResumeWatch;
use costop_core::record::{self, TimelineEntry, TimelineStep};
use costop_core::resume::{self, ResumeDecision};
use serde::Serialize;

use super::{Keeper, KeeperError, observe};
use crate::function::{Mode, error_chain};
use crate::journal::Journal;
use crate::ports::{Ec2, KeeperPorts, Kube, PortError, Records};

/// What the tick did about one watch.
#[derive(Debug, Clone, Serialize)]
pub struct ResumeReport {
    pub instance_id: String,
    pub interruption_id: String,
    pub decision: ResumeDecision,
    /// The decision was carried out (not a dry run, no error).
    pub done: bool,
}

impl<W: KeeperPorts> Keeper<W> {
    /// Every watch, decided and (unless a dry run) carried out. A failure on one watch is
    /// logged and leaves it for the next tick; the first is returned after all were tried.
    pub(super) async fn resume(&self, mode: Mode) -> Result<Vec<ResumeReport>, KeeperError> {
        let records = self.world.records();
        let items = records
            .query(record::RESUME_PK)
            .await
            .map_err(observe("resume watches"))?;
        let watches: Vec<ResumeWatch> = items
            .iter()
            .filter_map(|i| match record::resume_watch_from_item(i) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), "unreadable resume watch skipped");
                    None
                }
            })
            .collect();
        if watches.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = watches.iter().map(|w| w.instance_id.clone()).collect();
        let instances = self
            .world
            .ec2()
            .describe_instances(&ids)
            .await
            .map_err(observe("watched instances"))?;
        let mut reports = Vec::with_capacity(watches.len());
        let mut first_error = None;
        for watch in watches {
            let instance = instances
                .iter()
                .find(|i| i.instance_id == watch.instance_id);
            let now = Utc::now();
            let decided = match resume::before_the_node(&watch, instance, &self.config, now) {
                Some(d) => Ok(d),
                None => self.look_at_the_node(&watch).await.map(|(node, before)| {
                    resume::plan_resume(
                        &watch,
                        instance,
                        node.as_ref(),
                        before.as_ref(),
                        &self.config,
                        now,
                    )
                }),
            };
            let result = match decided {
                Ok(decision) if mode == Mode::Execute => {
                    let done = self.carry_out(&watch, &decision).await;
                    done.map(|()| (decision, true))
                }
                Ok(decision) => Ok((decision, false)),
                Err(e) => Err(e),
            };
            match result {
                Ok((decision, done)) => reports.push(ResumeReport {
                    instance_id: watch.instance_id.clone(),
                    interruption_id: watch.interruption_id.clone(),
                    decision,
                    done,
                }),
                Err(e) => {
                    tracing::warn!(instance_id = %watch.instance_id, error = %error_chain(&e), "resume watch left for the next tick");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(reports),
        }
    }

    /// The watch's node as it is, and as the interruption's snapshot recorded it before the
    /// cordon (an unreadable or missing snapshot: nothing was costop's before).
    async fn look_at_the_node(
        &self,
        watch: &ResumeWatch,
    ) -> Result<(Option<NodeFacts>, Option<NodeFacts>), KeeperError> {
        let kube = self.connect(&watch.cluster).await?;
        let snapshot_key = record::snapshot_key(&watch.interruption_id);
        let (node, snapshot) = futures::join!(
            kube.node(&watch.node),
            self.world.records().get(&snapshot_key)
        );
        let node = node.map_err(observe(format!("node {}", watch.node)))?;
        let before = snapshot
            .ok()
            .flatten()
            .and_then(|item| record::facts_from_snapshot(&item).ok())
            .and_then(|facts| facts.node);
        Ok((node, before))
    }

    async fn carry_out(
        &self,
        watch: &ResumeWatch,
        decision: &ResumeDecision,
    ) -> Result<(), KeeperError> {
        let failed = |action: &'static str| {
            let standby = watch.instance_id.clone();
            move |source: PortError| KeeperError::Execute {
                standby,
                action,
                source,
            }
        };
        let records = self.world.records();
        let key = record::resume_watch_key(&watch.instance_id);
        let forget = || records.delete(&key);
        match decision {
            ResumeDecision::Wait { .. } => Ok(()),
            ResumeDecision::Forget { reason } => {
                tracing::info!(instance_id = %watch.instance_id, reason = %reason, "resume watch dropped");
                forget().await.map_err(failed("forget_resume_watch"))
            }
            ResumeDecision::Restore { restore, restored } => {
                if let Some(patch) = restore {
                    let kube = self.connect(&watch.cluster).await?;
                    // A conflict means the node changed since it was read: the next tick reads
                    // it again.
                    kube.restore_node(patch)
                        .await
                        .map_err(failed("restore_node"))?;
                }
                let journal = Journal::new(records, self.config.timeline_ttl_days);
                journal.push(TimelineEntry {
                    interruption_id: watch.interruption_id.clone(),
                    at: Utc::now(),
                    step: TimelineStep::Resumed {
                        restored: restored.clone(),
                    },
                });
                journal.flush().await.map_err(failed("record"))?;
                tracing::info!(instance_id = %watch.instance_id, interruption_id = %watch.interruption_id, restored = ?restored, "node given back: its instance is running again");
                forget().await.map_err(failed("forget_resume_watch"))
            }
        }
    }
}
