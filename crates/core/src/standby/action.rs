//! The steps of the keeper's plans, each one idempotent unit of work for the
//! shell (usually one API call): [`StartAction`]s for a Spot warning's start
//! (or a rebalance's retype), [`TickAction`]s for the pool tick, so each
//! executor matches every step it can meet. The JSON form is what dry-run
//! prints and what the golden files compare.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::replacements::ReplacementSpec;
use crate::plan::EvictPod;
use crate::plan::action::RestoreNode;
use crate::record::{StandbyLease, TimelineEntry};

/// One step of a start plan (a Spot warning) or a prepare plan (a rebalance
/// recommendation's retype ahead of time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum StartAction {
    /// Take the standby's lease (conditional write); if another interruption
    /// holds it, the shell plans again without this standby.
    ClaimStandby(StandbyLease),
    /// Set and remove tags on the standby (EC2 `CreateTags`/`DeleteTags`).
    TagStandby(TagChange),
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
    /// Make the standby's node schedulable and clear it of costop's taints and
    /// label from an earlier life (one node patch). A failure is left to the
    /// replacement watch, which checks the node again.
    ClearStandbyNode(RestoreNode),
    /// Give pending replacement pods the standby toleration while they appear.
    TolerateReplacements(ReplacementSpec),
    /// Append to an interruption's timeline.
    Record(TimelineEntry),
}

/// One step of a pool tick's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum TickAction {
    /// Set and remove tags on the standby (EC2 `CreateTags`/`DeleteTags`).
    TagStandby(TagChange),
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

/// Tags to set and remove on a standby.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagChange {
    /// The standby.
    pub instance_id: String,
    /// Tags to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Tag keys to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl StartAction {
    /// The action's snake_case name (log field, error context).
    pub fn name(&self) -> &'static str {
        match self {
            StartAction::ClaimStandby(_) => "claim_standby",
            StartAction::TagStandby(_) => "tag_standby",
            StartAction::RetypeStandby { .. } => "retype_standby",
            StartAction::StartStandby { .. } => "start_standby",
            StartAction::ClearStandbyNode(_) => "clear_standby_node",
            StartAction::TolerateReplacements(_) => "tolerate_replacements",
            StartAction::Record(_) => "record",
        }
    }
}

impl TickAction {
    /// The action's snake_case name (log field, error context).
    pub fn name(&self) -> &'static str {
        match self {
            TickAction::TagStandby(_) => "tag_standby",
            TickAction::SetUnschedulable { .. } => "set_unschedulable",
            TickAction::EvictFromStandby { .. } => "evict_from_standby",
            TickAction::StopStandby { .. } => "stop_standby",
            TickAction::ReleaseLease { .. } => "release_lease",
            TickAction::Record(_) => "record",
        }
    }
}
