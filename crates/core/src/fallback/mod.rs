//! The fallback's decisions, pure: a Lambda target behind the ALB that takes the requests
//! rerouted from a service during a Spot interruption, and the keeper's replay of the writes it
//! queued once traffic is back.
//!
//! - [`route`]: the route table from `COSTOP_FALLBACK_ROUTES` (method + path prefix, longest
//!   prefix wins), validated at cold start.
//! - [`policy`]: what happens to a request — `forward`, `queue` or `respond` — from its route
//!   and method, or the configured default for an unknown route.
//! - [`input`]: what the fallback refuses before storing anything (size, JSON, idempotency key).
//! - [`headers`]: the header names the fallback reads and writes, and the hop-by-hop rule.
//! - [`backoff`]: the forward's hold-and-retry schedule (full jitter) and which upstream answers
//!   end it.
//! - [`record`]: the queue table's keys and item shapes, and the writes that queue, replay and
//!   dead-letter a request as one transaction each.
//! - [`replay`]: the replay order (per path, in sequence), its pace and each outcome's fate.

pub mod backoff;
pub mod headers;
pub mod input;
pub mod policy;
pub mod record;
pub mod replay;
pub mod route;

pub use backoff::{FullJitter, UpstreamAnswer, classify_answer};
pub use input::{InputError, MAX_BODY_BYTES, check_body, check_idempotency_key};
pub use policy::{DefaultPolicy, Policy, decide};
pub use record::{QueuedWrite, Receipt, ReceiptState};
pub use replay::{ReplayFate, replay_fate, replay_lanes, replay_order};
pub use route::{FixedResponse, RouteError, RouteSpec, Routes};
