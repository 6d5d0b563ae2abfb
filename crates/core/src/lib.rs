//! # costop-core — the functional core
//!
//! Everything costop *decides* lives here; everything it *does* lives in the
//! shell (`costop-adapters` and the Lambda functions). This crate performs no
//! I/O: no tokio, no AWS SDK, no kube client, no clock and no randomness. The
//! shell reads the world, hands the facts to [`plan()`], and executes the
//! returned [`Plan`] step by step.
//!
//! The flow for one EventBridge delivery:
//!
//! ```text
//! bytes ──Event::parse──▶ Event ──instance_ids()──▶ shell observes Facts (per instance)
//!                                                    │
//!            Config::from_env(std::env::vars()) ─────┤
//!                                                    ▼
//!                               plan(&event, &facts, &config, now) ──▶ Decision
//!                                                    │
//!                      Decision::Ignore{reason} ◀────┴────▶ Decision::Act(Plan { steps, .. })
//! ```
//!
//! Modules:
//! - [`event`]: typed EventBridge events and their parser.
//! - [`constants`]: every taint, label, annotation and tag key costop uses.
//! - [`config`]: typed configuration parsed from environment pairs.
//! - [`kube`]: the small Kubernetes vocabulary (taints, tolerations, names).
//! - [`facts`]: what the shell observed and hands to the planner.
//! - [`plan`](mod@plan): the pure planner, its actions and the executor's helpers
//!   (grace-period caps, eviction backoff, deadline reporting).
//! - [`record`]: the DynamoDB single-table model as plain data.
//! - [`metrics`]: CloudWatch Embedded Metric Format rendering.
//! - [`rules`]: the EventBridge rules that deliver events to each function.
//! - [`handoff`]: AWS Health scheduled changes kept until their moment.
//! - [`standby`]: the warm standby pool (the keeper's decisions).
//! - [`shift`]: traffic moved to the fallback during an interruption, and put back.
//! - [`fallback`]: the fallback function's routes and policies, and the replay of its queue.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod constants;
pub mod event;
pub mod facts;
pub mod fallback;
pub mod handoff;
pub mod kube;
pub mod metrics;
pub mod plan;
pub mod record;
pub mod resume;
pub mod rules;
pub mod shift;
pub mod standby;

pub use config::{Config, ConfigError};
pub use event::{Event, EventKind, Ignored, ParseError};
pub use facts::Facts;
pub use plan::{Action, Decision, IgnoreReason, Plan, plan, plan_all};
