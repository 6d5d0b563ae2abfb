//! The errors albsim returns to its caller: a configuration it refuses, or a socket it could
//! not bind. Failures on the data path never surface here; they become the status codes the
//! ALB documents.

use std::net::SocketAddr;

/// A configuration albsim cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{field} is not a number: {value:?}")]
    BadNumber {
        field: String,
        value: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("duplicate {what}")]
    Duplicate { what: String },
    #[error("missing {what}")]
    Missing { what: String },
    #[error("unknown target group {arn}")]
    UnknownTargetGroup { arn: String },
    #[error("not supported: {what}")]
    Unsupported { what: String },
    #[error("invalid {what}")]
    Invalid { what: String },
}

/// Why the load balancer could not start or take a new configuration.
#[derive(Debug, thiserror::Error)]
pub enum AlbError {
    #[error("invalid configuration")]
    Config(#[from] ConfigError),
    #[error("could not bind {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} is outside 127.0.0.0/8: albsim serves and dials loopback only")]
    NotLoopback { addr: SocketAddr },
    #[error("the load balancer has been shut down")]
    Stopped,
}
