//! costop-traffic: real HTTP traffic for the local bed, to measure what a Spot interruption costs
//! a service in lost requests and lost writes.
//!
//! Layout: [`dial`] owns the rule that every connection the bed makes stays on 127.0.0.0/8
//! (cluster addresses 10.a.b.c are dialled at 127.a.b.c); [`store`] is the service's database
//! stand-in shared by all its pods; [`app`] is the workload each pod runs, with a lifecycle that
//! follows the pod's (start, ready, preStop, SIGTERM, grace period, node loss); [`loadgen`] offers
//! an open-loop load and records every request's outcome.
//!
//! How the bed drives one pod of a service and measures a load against it:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::{sync::Arc, time::Duration};
//! use costop_traffic::{App, AppSpec, LoadSpec, Store, Window, run};
//!
//! let store = Arc::new(Store::new()); // one per service, shared by its pods
//! let pod = App::start(
//!     AppSpec {
//!         addr: "127.64.0.2:8080".parse()?, // pod IP 10.64.0.2, served on its loopback twin
//!         workers: 4,
//!         service_time: Duration::from_millis(20),
//!         queue: 32,
//!         graceful: true,
//!     },
//!     store.clone(),
//! )?; // the container started
//! pod.set_ready(true)?; // start-up done: listening, /healthz 200
//!
//! let load = tokio::spawn(run(LoadSpec::new("http://10.64.0.2:8080", 50.0, Duration::from_secs(10))));
//! tokio::time::sleep(Duration::from_secs(3)).await;
//! pod.terminate(Duration::from_secs(5), Duration::from_secs(30)); // pod deleted
//! let mut report = load.await??;
//! report.check_writes(&store);
//! println!("{:?}", report.summary(Window::all()));
//! # Ok(()) }
//! ```

pub mod app;
pub mod dial;
pub mod loadgen;
pub mod store;

pub use app::{App, AppError, AppHandle, AppSpec, AppStats, Exit, Phase};
pub use dial::{DialError, DialRefused, LoopbackConnector, connect, to_loopback};
pub use loadgen::{Kind, LoadError, LoadReport, LoadSpec, Outcome, Record, Summary, Window, run};
pub use store::{Store, StoredWrite};
