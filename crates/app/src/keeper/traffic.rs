//! Shifted traffic put back, the keeper's part: each tick reads the shift leases (one per
//! listener rule the interruption function shifted toward the fallback), reads how many targets
//! each of the rule's groups has in service, and follows [`costop_core::shift::restore_step`]:
//! keep, adjust the weights as capacity comes back, or put the rule back exactly as it was and
//! delete the lease. A lease whose shift was never applied (its function died between the lease
//! and the rule change) is put back the same way, so traffic is never left shifted. A rule the
//! load-balancer controller manages is adjusted and put back through its Ingress (the lease's
//! Ingress part, [`costop_core::shift::ingress`]), read anew each time, so a shift that was
//! never applied, or applied by a function that died, comes back the same.

use std::collections::BTreeMap;

use chrono::{TimeDelta, Utc};
use costop_core::record::{SHIFT_PK, TimelineEntry, TimelineStep};
use costop_core::shift::{self, InService, IngressShift, IngressTarget, RestoreStep, ShiftLease};
use serde::Serialize;

use super::{Keeper, KeeperError, observe};
use crate::function::{Mode, error_chain};
use crate::journal::Journal;
use crate::ports::{Clusters, Elb, KeeperPorts, Kube, PortError, Records};

/// What the tick did about one shifted rule.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficReport {
    pub rule: String,
    pub interruption_id: String,
    pub step: RestoreStep,
    /// The step was carried out (not a dry run, no error).
    pub done: bool,
}

impl<W: KeeperPorts> Keeper<W> {
    /// Every lease, decided and (unless a dry run) carried out. A failure on one lease is logged
    /// and leaves it for the next tick; the first is returned after all were tried.
    pub(super) async fn restore_traffic(
        &self,
        mode: Mode,
    ) -> Result<Vec<TrafficReport>, KeeperError> {
        let items = self
            .world
            .records()
            .query(SHIFT_PK)
            .await
            .map_err(observe("traffic shifts"))?;
        let now = Utc::now();
        let hold = TimeDelta::seconds(self.config.shift_restore_hold_seconds);
        let mut reports = Vec::with_capacity(items.len());
        let mut first_error = None;
        for item in &items {
            let lease = match shift::shift_lease_from_item(item) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %error_chain(&e), "unreadable shift lease left in place");
                    continue;
                }
            };
            let in_service = self.groups_in_service(&lease).await;
            let step = shift::restore_step(&lease, &in_service, now, hold);
            let done = match mode {
                Mode::DryRun => false,
                Mode::Execute => match self.restore_one(&lease, &step).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(rule = %lease.rule_arn, error = %error_chain(&e), "traffic restore step failed; next tick retries");
                        first_error.get_or_insert(e);
                        false
                    }
                },
            };
            reports.push(TrafficReport {
                rule: lease.rule_arn.clone(),
                interruption_id: lease.interruption_id.clone(),
                step,
                done,
            });
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(reports),
        }
    }

    /// Targets in service per group of the lease; a group that could not be read is left out
    /// (taken as unchanged), one that is gone counts as whole (nothing to wait for).
    async fn groups_in_service(&self, lease: &ShiftLease) -> BTreeMap<String, InService> {
        let mut out = BTreeMap::new();
        for g in &lease.groups {
            match self.world.elb().in_service(&g.target_group_arn).await {
                Ok(Some(healthy)) => {
                    out.insert(g.target_group_arn.clone(), InService::Healthy(healthy));
                }
                Ok(None) => {
                    out.insert(g.target_group_arn.clone(), InService::Gone);
                }
                Err(e) => {
                    tracing::warn!(target_group = %g.target_group_arn, error = %error_chain(&e), "target health unreadable");
                }
            }
        }
        out
    }

    /// Take the lease's Ingress to `target`: read it as it is now (a function that died
    /// between the lease and the patch left it unshifted; one that died after, shifted) and
    /// patch what differs, the values it replaces guarded by `test`s. An Ingress that is gone
    /// is [`PortError::NotFound`]; one someone else changed since the shift an error that
    /// leaves it alone.
    async fn ingress_to(
        &self,
        part: &IngressShift,
        target: IngressTarget<'_>,
    ) -> Result<(), PortError> {
        let kube = self.world.clusters().connect(&part.cluster).await?;
        let Some(current) = kube.ingress(&part.namespace, &part.name).await? else {
            return Err(PortError::NotFound {
                op: "read ingress",
                what: format!("ingress {}", part.ingress()),
            });
        };
        let patch = part
            .patch(&current, target)
            .map_err(|e| PortError::Permanent {
                op: "build ingress patch",
                source: Box::new(e),
            })?;
        match patch {
            Some(p) => kube.patch_ingress(&part.namespace, &part.name, &p).await,
            None => Ok(()),
        }
    }

    /// Write `lease` over the one it replaces.
    async fn record_lease(&self, lease: &ShiftLease) -> Result<(), PortError> {
        let item = shift::shift_lease_item(lease).map_err(|e| PortError::Permanent {
            op: "encode shift lease",
            source: Box::new(e),
        })?;
        self.world.records().put(item).await
    }

    async fn restore_one(&self, lease: &ShiftLease, step: &RestoreStep) -> Result<(), KeeperError> {
        let failed = |action: &'static str| {
            let rule = lease.rule_arn.clone();
            move |source: PortError| KeeperError::Execute {
                standby: rule,
                action,
                source,
            }
        };
        let records = self.world.records();
        let entry = match step {
            RestoreStep::Keep => return Ok(()),
            RestoreStep::Hold { since } => {
                if lease.whole_since == Some(*since) {
                    return Ok(());
                }
                let next = ShiftLease {
                    whole_since: Some(*since),
                    ..lease.clone()
                };
                self.record_lease(&next)
                    .await
                    .map_err(failed("record_shift"))?;
                tracing::info!(rule = %lease.rule_arn, since = %since, "capacity back; the rule stays shifted for the restore hold");
                return Ok(());
            }
            RestoreStep::Adjust { weights } => {
                match &lease.ingress {
                    Some(part) => {
                        self.ingress_to(part, IngressTarget::Shifted(weights))
                            .await
                            .map_err(failed("adjust_traffic"))?;
                    }
                    None => self
                        .world
                        .elb()
                        .set_forward(&lease.rule(), weights)
                        .await
                        .map_err(failed("adjust_traffic"))?,
                }
                let next = ShiftLease {
                    applied: weights.clone(),
                    whole_since: None,
                    ..lease.clone()
                };
                self.record_lease(&next)
                    .await
                    .map_err(failed("record_shift"))?;
                TimelineStep::TrafficAdjusted {
                    rule: lease.rule_arn.clone(),
                    to_fallback: lease.to_fallback(weights),
                }
            }
            RestoreStep::Restore { reason } => {
                let put_back = match &lease.ingress {
                    Some(part) => self.ingress_to(part, IngressTarget::Original).await,
                    None => {
                        self.world
                            .elb()
                            .set_forward(&lease.rule(), &lease.before)
                            .await
                    }
                };
                match put_back {
                    // The rule (or its Ingress) is gone: nothing left to put back.
                    Ok(()) | Err(PortError::NotFound { .. }) => {}
                    Err(e) => return Err(failed("restore_traffic")(e)),
                }
                records
                    .delete(&shift::shift_lease_key(&lease.rule_arn))
                    .await
                    .map_err(failed("release_shift"))?;
                tracing::info!(rule = %lease.rule_arn, reason, "traffic restored");
                TimelineStep::TrafficRestored {
                    rule: lease.rule_arn.clone(),
                    reason: (*reason).to_owned(),
                }
            }
        };
        let journal = Journal::new(records, self.config.timeline_ttl_days);
        journal.push(TimelineEntry {
            interruption_id: lease.interruption_id.clone(),
            at: Utc::now(),
            step: entry,
        });
        journal.flush().await.map_err(failed("record"))
    }
}
