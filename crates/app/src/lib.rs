//! # costop-app — the orchestration between the pure core and the adapters
//!
//! [`ports`] names what costop needs from the world as traits over the core's plain data;
//! [`handler`] runs one delivery (parse → observe → plan → execute); [`keeper`] runs the warm
//! standby pool's deliveries the same way; [`drain`] is the eviction
//! executor; [`fakes`] are in-memory AWS ports for fast tests. Nothing here imports the AWS
//! SDK or kube: `costop-adapters` implements the ports for real.

pub mod drain;
pub mod fakes;
pub mod handler;
pub mod keeper;
pub mod ports;
pub mod ratelimit;
pub mod telemetry;

pub use handler::{ExecutionReport, Handler, HandlerError, InstanceOutcome, Mode, Outcome};
pub use keeper::{Keeper, KeeperError, KeeperOutcome};
pub use ports::{Asg, Claim, Clusters, Ec2, Elb, EvictOutcome, Kube, PortError, Records, World};
