//! The ports: what costop needs from AWS and Kubernetes, as traits over the core's plain data.
//! `costop-adapters` implements them with the AWS SDK and kube; [`crate::fakes`] (feature
//! `fakes`) and the test crate implement them in memory, so the same functions and the same
//! test bodies run on both. [`world`] says which ports a world supplies; each function asks
//! only for the ones it uses.

mod aws;
mod handoff;
mod kube;
mod queue;
mod records;
mod upstream;
pub mod world;

pub use aws::{Asg, Ec2, Elb};
pub use handoff::Handoff;
pub use kube::{Clusters, Kube};
pub use queue::{Enqueued, WriteQueue};
pub use records::{PUT_MANY_IN_FLIGHT, Records};
pub use upstream::Upstream;
pub use world::{
    FallbackPorts, HasAsg, HasClusters, HasEc2, HasElb, HasHandoff, HasQueue, HasRecords,
    HasUpstream, InterruptionPorts, KeeperPorts, KubeOf,
};

/// Any error from below a port, kept whole (never stringified) for logs and diagnostics.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A port call failed. The variant says what the handler may do about it.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The object changed since it was read (optimistic concurrency); re-read and retry.
    #[error("{op}: the object was modified concurrently")]
    Conflict { op: &'static str },
    /// The object is not there.
    #[error("{op}: {what} not found")]
    NotFound { op: &'static str, what: String },
    /// The object is not in a state that allows the call (EC2's `IncorrectInstanceState`: an
    /// instance started or stopped by someone else since it was read); re-read before deciding.
    #[error("{op}: not in a state that allows it")]
    WrongState {
        op: &'static str,
        #[source]
        source: BoxError,
    },
    /// Throttling, timeouts, 5xx: worth retrying the whole delivery.
    #[error("{op} failed (transient)")]
    Transient {
        op: &'static str,
        #[source]
        source: BoxError,
    },
    /// Permissions, validation, a bug: retrying will not help.
    #[error("{op} failed")]
    Permanent {
        op: &'static str,
        #[source]
        source: BoxError,
    },
}

impl PortError {
    /// `Transient` or `Permanent`, as the adapter judged the source.
    pub fn classified(op: &'static str, transient: bool, source: BoxError) -> Self {
        if transient {
            PortError::Transient { op, source }
        } else {
            PortError::Permanent { op, source }
        }
    }

    /// Worth a retry of the delivery (Lambda's async retry) rather than a dead letter.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PortError::Transient { .. } | PortError::Conflict { .. } | PortError::WrongState { .. }
        )
    }
}

/// The result of one eviction request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvictOutcome {
    /// Accepted: the pod is being deleted gracefully.
    Accepted,
    /// Refused with 429 (a PodDisruptionBudget); retry later. The server's message.
    Blocked { message: String },
    /// The pod (with that uid) no longer exists.
    Gone,
}

/// The outcome of the dedupe claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This delivery owns the event.
    Won,
    /// Another delivery owns it.
    Lost,
}

/// The outcome of a standby lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseClaim {
    /// This delivery holds the standby.
    Won,
    /// Another delivery holds it: the interruption its lease names, when the table returned
    /// the item that refused the write (the core's [`costop_core::record::lease_holder`]).
    Lost { held_by: Option<String> },
}
