//! costop-traffic: real HTTP traffic for the local bed, to measure what a Spot interruption costs
//! a service in lost requests and lost writes.
//!
//! Layout: [`dial`] owns the rule that every connection the bed makes stays on 127.0.0.0/8
//! (cluster addresses 10.a.b.c are dialled at 127.a.b.c); [`store`] is the service's database
//! stand-in shared by all its pods; [`app`] is the workload each pod runs, with a lifecycle that
//! follows the pod's (start, ready, preStop, SIGTERM, grace period, node loss); [`loadgen`] offers
//! an open-loop load and records every request's outcome.

pub mod app;
pub mod dial;
pub mod loadgen;
pub mod store;

pub use app::{App, AppError, AppHandle, AppSpec, AppStats, Exit, Phase};
pub use dial::{DialError, DialRefused, LoopbackConnector, connect, to_loopback};
pub use loadgen::{Kind, LoadError, LoadReport, LoadSpec, Outcome, Record, Summary, Window, run};
pub use store::{Store, StoredWrite};
