//! # costop-adapters — the imperative shell's edge
//!
//! The only crate that imports the AWS SDK and kube. It implements `costop-app`'s ports over the
//! real services and nothing else: no decisions are taken here, only translations between the
//! wire and the core's plain data, and between transport errors and [`PortError`]s.
//!
//! - [`kube`]: [`KubeCluster`], one Kubernetes cluster (`Kube` port).
//! - [`clusters`]: [`KubeClusters`], cached cluster access from a kubeconfig or from EKS
//!   (DescribeCluster plus a presigned-STS bearer token, see [`clusters::token`]).
//! - [`aws`]: [`Ec2Adapter`], [`ElbAdapter`], [`AsgAdapter`], [`DynamoRecords`], [`DynamoQueue`].
//! - [`upstream`]: [`HttpUpstream`], the fallback's HTTP client to the service's capacity.
//! - [`world`]: [`AwsWorld`], everything above built once per Lambda cold start, and
//!   [`FallbackWorld`], the fallback's two ports.
//!
//! Every error keeps its source error whole: `PortError::Transient`/`Permanent` box the SDK's
//! `SdkError` or kube's `Error`, so logs show the real cause chain.
//!
//! [`PortError`]: costop_app::ports::PortError

#![forbid(unsafe_code)]

pub mod aws;
pub mod clusters;
pub mod kube;
pub mod upstream;
pub mod world;

#[cfg(test)]
mod testutil;

pub use aws::{AsgAdapter, DynamoQueue, DynamoRecords, Ec2Adapter, ElbAdapter, LambdaHandoff};
pub use clusters::{ClusterAccess, KubeClusters, KubeOptions};
pub use kube::KubeCluster;
pub use upstream::HttpUpstream;
pub use world::{AdapterError, AwsWorld, FallbackWorld, load_sdk_config};

/// Installs rustls' aws-lc-rs crypto provider as the process default, once.
///
/// kube's rustls connector asks rustls for the process-wide provider and panics when none is
/// installed; with both `ring` and `aws-lc-rs` reachable in the dependency tree rustls cannot
/// pick one itself. Called before any kube client is built; harmless when already installed.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already the default: that one serves just as well.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}
