//! Scheduled changes, the keeper's part: each tick reads the AWS Health scheduled changes the
//! interruption function kept (see [`costop_core::handoff`]) and hands every one that came due
//! back to the interruption function, which then plans it as an imminent change. The record is
//! deleted once the hand-off is accepted; should the delete fail, the next tick hands it off
//! again and the interruption function's dedupe takes the second delivery for a duplicate.

use chrono::{DateTime, Utc};
use costop_core::handoff::{self, ScheduledChange};
use costop_core::record::{self, TimelineEntry, TimelineStep};
use serde::Serialize;

use super::{Keeper, KeeperError, observe};
use crate::function::{Mode, error_chain};
use crate::journal::Journal;
use crate::ports::{Handoff, KeeperPorts, Records};

/// What the tick did about one scheduled change that came due.
#[derive(Debug, Clone, Serialize)]
pub struct HandoffReport {
    pub instance_id: String,
    pub interruption_id: String,
    pub due_at: DateTime<Utc>,
    /// The interruption function accepted the event (not a dry run, no error).
    pub handed_off: bool,
    /// Why it was not, when it failed (it stays for the next tick).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl<W: KeeperPorts> Keeper<W> {
    /// Every scheduled change that came due, handed off (unless a dry run). A failed hand-off is
    /// reported and left for the next tick; only an unreadable table fails the tick.
    pub(super) async fn hand_off_due(&self, mode: Mode) -> Result<Vec<HandoffReport>, KeeperError> {
        let records = self.world.records();
        let items = records
            .query(record::SCHEDULED_PK)
            .await
            .map_err(observe("scheduled changes"))?;
        let kept: Vec<(ScheduledChange, serde_json::Value)> = items
            .iter()
            .filter_map(|i| match record::scheduled_change_from_item(i) {
                Ok(kept) => Some(kept),
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), "unreadable scheduled change skipped");
                    None
                }
            })
            .collect();
        let mut reports = Vec::new();
        for (change, event) in handoff::due(&kept, |(c, _)| c, Utc::now()) {
            let mut report = HandoffReport {
                instance_id: change.instance_id.clone(),
                interruption_id: change.interruption_id.clone(),
                due_at: change.due_at,
                handed_off: false,
                error: None,
            };
            if mode == Mode::Execute {
                match self.hand_off_one(change, event).await {
                    Ok(()) => report.handed_off = true,
                    Err(e) => {
                        let e = error_chain(&e);
                        tracing::error!(instance_id = %change.instance_id, interruption_id = %change.interruption_id, error = %e, "could not hand a due scheduled change to the interruption function; the next tick tries again");
                        report.error = Some(e);
                    }
                }
            }
            reports.push(report);
        }
        Ok(reports)
    }

    async fn hand_off_one(
        &self,
        change: &ScheduledChange,
        event: &serde_json::Value,
    ) -> Result<(), crate::ports::PortError> {
        self.world.handoff().hand_off(event).await?;
        tracing::info!(instance_id = %change.instance_id, interruption_id = %change.interruption_id, due_at = %change.due_at, "scheduled change handed to the interruption function");
        let journal = Journal::new(self.world.records(), self.config.timeline_ttl_days);
        journal.push(TimelineEntry {
            interruption_id: change.interruption_id.clone(),
            at: Utc::now(),
            step: TimelineStep::HandedOff,
        });
        let key = record::scheduled_change_key(&change.reference());
        let (recorded, forgotten) =
            futures::join!(journal.flush(), self.world.records().delete(&key));
        if let Err(e) = recorded {
            tracing::warn!(interruption_id = %change.interruption_id, error = %error_chain(&e), "could not record the hand-off");
        }
        forgotten
    }
}
