//! The steps of the keeper's plans, each one idempotent unit of work for the
//! shell (usually one API call). The JSON form is what dry-run prints and
//! what the golden files compare.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::replacements::ReplacementSpec;
use crate::plan::EvictPod;
use crate::record::{StandbyLease, TimelineEntry};

/// One keeper step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum StandbyAction {
    /// Take the standby's lease (conditional write); if another interruption
    /// holds it, the shell plans again without this standby.
    ClaimStandby(StandbyLease),
    /// Set and remove tags on the standby (EC2 `CreateTags`/`DeleteTags`).
    TagStandby {
        /// The standby.
        instance_id: String,
        /// Tags to set.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        set: BTreeMap<String, String>,
        /// Tag keys to remove.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        remove: Vec<String>,
    },
    /// Change the stopped standby's instance type (`ModifyInstanceAttribute`).
    RetypeStandby {
        /// The standby.
        instance_id: String,
        /// Its type now.
        from: Option<String>,
        /// The type to take.
        to: String,
    },
    /// `StartInstances`.
    StartStandby {
        /// The standby.
        instance_id: String,
    },
    /// Give pending replacement pods the standby toleration while they appear.
    TolerateReplacements(ReplacementSpec),
    /// Mark the standby's node (un)schedulable; its taint stays either way.
    SetUnschedulable {
        /// Node.
        node: String,
        /// `spec.unschedulable`.
        unschedulable: bool,
    },
    /// Evict the pods still on a returning standby (PDBs respected; a refused
    /// eviction is tried again on the next tick).
    EvictFromStandby {
        /// Node.
        node: String,
        /// Pods.
        pods: Vec<EvictPod>,
    },
    /// `StopInstances`.
    StopStandby {
        /// The standby.
        instance_id: String,
    },
    /// Release the standby's lease.
    ReleaseLease {
        /// The standby.
        instance_id: String,
    },
    /// Append to an interruption's timeline.
    Record(TimelineEntry),
}

impl StandbyAction {
    /// The action's snake_case name (log field, error context).
    pub fn name(&self) -> &'static str {
        match self {
            StandbyAction::ClaimStandby(_) => "claim_standby",
            StandbyAction::TagStandby { .. } => "tag_standby",
            StandbyAction::RetypeStandby { .. } => "retype_standby",
            StandbyAction::StartStandby { .. } => "start_standby",
            StandbyAction::TolerateReplacements(_) => "tolerate_replacements",
            StandbyAction::SetUnschedulable { .. } => "set_unschedulable",
            StandbyAction::EvictFromStandby { .. } => "evict_from_standby",
            StandbyAction::StopStandby { .. } => "stop_standby",
            StandbyAction::ReleaseLease { .. } => "release_lease",
            StandbyAction::Record(_) => "record",
        }
    }
}
