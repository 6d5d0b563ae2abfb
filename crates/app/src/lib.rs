//! # costop-app — the orchestration between the pure core and the adapters
//!
//! [`ports`] names what costop needs from the world as traits over the core's plain data, and
//! which ports each function uses; [`function`] is what every function shares (the
//! [`Function`] trait, [`Mode`], [`Retryable`]); [`handler`] is the interruption function (parse
//! → observe → plan → execute); [`keeper`] is the warm standby pool's function; [`drain`] is
//! the eviction executor; [`fallback`] is the fallback function (forward, queue, respond);
//! [`handoff_queue`] hands events on within one process; [`journal`] writes every function's bookkeeping in batches;
//! [`telemetry`] is what they log and measure. Nothing here imports the AWS SDK or kube:
//! `costop-adapters` implements the ports for real, and [`fakes`] (feature `fakes`, for tests
//! and benchmarks) in memory.

pub mod drain;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod fallback;
pub mod function;
pub mod handler;
pub mod handoff_queue;
pub mod journal;
pub mod keeper;
pub mod ports;
pub mod ratelimit;
pub mod rotation;
pub mod telemetry;

pub use fallback::{Fallback, Served};
pub use function::{Function, Mode, Retryable, budget_end, error_chain};
pub use handler::{ExecutionReport, Handler, HandlerError, InstanceOutcome, Outcome};
pub use handoff_queue::HandoffQueue;
pub use keeper::{Keeper, KeeperError, KeeperOutcome};
pub use ports::{
    Asg, Claim, Clusters, Ec2, Elb, Enqueued, EvictOutcome, FallbackPorts, Handoff, HasAsg,
    HasClusters, HasEc2, HasElb, HasHandoff, HasQueue, HasRecords, HasUpstream, InterruptionPorts,
    KeeperPorts, Kube, LeaseClaim, PortError, Records, Upstream, WriteQueue,
};
