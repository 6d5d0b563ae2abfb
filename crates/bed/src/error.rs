//! The bed's errors.

use crate::scenario::ScenarioError;

#[derive(Debug, thiserror::Error)]
pub enum BedError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("installing the Python tools failed: {0}")]
    Install(String),
    #[error("moto: {0}")]
    Moto(String),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("AWS {op} failed: {message}")]
    Aws { op: &'static str, message: String },
    #[error("kubesim: {0}")]
    Sim(#[from] kubesim::SimError),
    #[error("seeding: {0}")]
    Seed(String),
    #[error("not ready after {secs:.1} s: {what}")]
    NotReady { secs: f64, what: String },
}

/// `map_err` helper for SDK errors: keeps the whole error chain in the message.
pub(crate) fn aws<E: std::error::Error>(op: &'static str) -> impl FnOnce(E) -> BedError {
    move |e| BedError::Aws {
        op,
        message: aws_sdk_ec2::error::DisplayErrorContext(&e).to_string(),
    }
}
