//! kubesim: an in-memory cluster that speaks enough of the Kubernetes API for the real `kubectl`
//! and the `kube` crate to use it unmodified, with the controllers, scheduler and kubelet
//! behaviour costop depends on. Nodes come and go with EC2 instances through [`nodes`].
//!
//! Layout: [`store`] owns objects, resourceVersions and watch history; [`api`] serves HTTP;
//! [`admission`] holds the API server's validation and eviction rules; [`network`] the service
//! address ranges and their allocators; [`controllers`] run the control loops; [`sim`] ties
//! them together.

pub mod admission;
pub mod api;
pub mod clock;
pub mod controllers;
pub mod error;
pub mod network;
pub mod nodes;
pub mod patch;
pub mod resources;
pub mod selectors;
pub mod sim;
pub mod store;

pub use clock::Clock;
pub use error::ApiError;
pub use sim::{SimConfig, SimError, Simulator};
pub use store::Store;
