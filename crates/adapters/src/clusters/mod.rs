//! Access to the clusters costop serves: [`KubeClusters`] implements the `Clusters` port and
//! caches one [`KubeCluster`] per cluster name.
//!
//! Two modes ([`ClusterAccess`]), chosen from the environment:
//! - **kubeconfig** (`KUBECONFIG` set: the local bed, non-EKS clusters): a context named like the
//!   cluster serves it, else the current context serves every cluster name.
//! - **EKS** (otherwise): `eks:DescribeCluster` gives the endpoint and CA; the bearer token is a
//!   presigned STS URL ([`token`]) made from the Lambda role's credentials. Tokens are good for
//!   15 minutes, so a cached client is rebuilt with a fresh token after [`TOKEN_REFRESH`].
//!
//! Every kube client is built with kube's own retry layer off: it would silently retry an
//! eviction's 429 (a PodDisruptionBudget refusal) for minutes, where costop's drain wants the
//! refusal back at once to apply its own deadline-aware backoff.

pub mod token;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use costop_app::ports::{Clusters, PortError};
use kube::config::{
    AuthInfo, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};
use tokio::sync::Mutex;

use crate::aws::sdk_error;
use crate::kube::KubeCluster;
use crate::world::AdapterError;

/// Age after which an EKS client is rebuilt with a fresh token. Tokens last 15 minutes, so a
/// handle taken just before the refresh stays valid for 10 more: longer than any delivery's drain
/// (a Spot warning's two minutes, an ASG hook's `COSTOP_ASG_HOOK_DEADLINE_SECONDS`). The cost is
/// one DescribeCluster and one TLS handshake per five minutes on a warm Lambda.
pub const TOKEN_REFRESH: Duration = Duration::from_secs(5 * 60);

/// Timeouts of every kube client. Client-side QPS limiting is the drain executor's
/// (`COSTOP_KUBE_QPS`/`COSTOP_KUBE_BURST`), not the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubeOptions {
    /// TCP + TLS connect.
    pub connect_timeout: Duration,
    /// Waiting for a response, counted from when the request was written.
    pub read_timeout: Duration,
    /// Writing a request.
    pub write_timeout: Duration,
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(20),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// How clusters are reached.
#[derive(Clone)]
pub enum ClusterAccess {
    /// From a kubeconfig (loaded once, from `KUBECONFIG`).
    Kubeconfig(Box<Kubeconfig>),
    /// EKS: DescribeCluster + an IAM bearer token.
    Eks {
        /// The EKS client.
        eks: aws_sdk_eks::Client,
        /// Signs the tokens.
        credentials: SharedCredentialsProvider,
        /// The region of the clusters (and of the STS endpoint).
        region: String,
    },
}

impl std::fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterAccess::Kubeconfig(k) => f
                .debug_struct("Kubeconfig")
                .field("current_context", &k.current_context)
                .finish(),
            ClusterAccess::Eks { region, .. } => {
                f.debug_struct("Eks").field("region", region).finish()
            }
        }
    }
}

impl ClusterAccess {
    /// Kubeconfig mode when `KUBECONFIG` is set (read now, so a bad file fails the cold start),
    /// else EKS mode with the SDK config's region and credentials.
    pub fn from_env(sdk: &SdkConfig) -> Result<ClusterAccess, AdapterError> {
        if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) {
            let kubeconfig = Kubeconfig::read().map_err(AdapterError::Kubeconfig)?;
            return Ok(ClusterAccess::Kubeconfig(Box::new(kubeconfig)));
        }
        ClusterAccess::eks(sdk)
    }

    /// Kubeconfig mode from one file (the bed's kubesim, tests).
    pub fn kubeconfig_file(
        path: impl AsRef<std::path::Path>,
    ) -> Result<ClusterAccess, AdapterError> {
        let kubeconfig = Kubeconfig::read_from(path).map_err(AdapterError::Kubeconfig)?;
        Ok(ClusterAccess::Kubeconfig(Box::new(kubeconfig)))
    }

    /// EKS mode.
    pub fn eks(sdk: &SdkConfig) -> Result<ClusterAccess, AdapterError> {
        Ok(ClusterAccess::Eks {
            eks: aws_sdk_eks::Client::new(sdk),
            credentials: sdk
                .credentials_provider()
                .ok_or(AdapterError::NoCredentials)?,
            region: sdk.region().ok_or(AdapterError::NoRegion)?.to_string(),
        })
    }
}

struct Cached {
    cluster: KubeCluster,
    /// When to rebuild (EKS tokens); `None` = never.
    refresh_at: Option<Instant>,
}

/// Cluster connections, cached per cluster name for the life of the (warm) Lambda.
pub struct KubeClusters {
    access: ClusterAccess,
    options: KubeOptions,
    // A tokio mutex held across the build: concurrent first connects build one client, not N.
    cache: Mutex<HashMap<String, Cached>>,
}

impl KubeClusters {
    /// Cluster access with the given timeouts.
    pub fn new(access: ClusterAccess, options: KubeOptions) -> Self {
        KubeClusters {
            access,
            options,
            cache: Mutex::default(),
        }
    }

    /// The mode in use.
    pub fn access(&self) -> &ClusterAccess {
        &self.access
    }

    async fn build(&self, cluster: &str) -> Result<Cached, PortError> {
        let (config, refresh_at) = match &self.access {
            ClusterAccess::Kubeconfig(kubeconfig) => {
                (kubeconfig_config(kubeconfig, cluster).await?, None)
            }
            ClusterAccess::Eks {
                eks,
                credentials,
                region,
            } => {
                let config = eks_config(eks, credentials, region, cluster).await?;
                (config, Some(Instant::now() + TOKEN_REFRESH))
            }
        };
        let client = client(config, &self.options)?;
        Ok(Cached {
            cluster: KubeCluster::new(client),
            refresh_at,
        })
    }
}

/// The kube config for `cluster`: its own context if the kubeconfig has one by that name, else
/// the current context.
async fn kubeconfig_config(
    kubeconfig: &Kubeconfig,
    cluster: &str,
) -> Result<kube::Config, PortError> {
    let context = kubeconfig
        .contexts
        .iter()
        .any(|c| c.name == cluster)
        .then(|| cluster.to_owned());
    let options = KubeConfigOptions {
        context,
        ..KubeConfigOptions::default()
    };
    kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
        .await
        .map_err(|e| PortError::Permanent {
            op: "load kubeconfig",
            source: Box::new(e),
        })
}

/// A kube client from `config` with costop's timeouts and without kube's retry layer.
fn client(mut config: kube::Config, options: &KubeOptions) -> Result<kube::Client, PortError> {
    crate::install_crypto_provider();
    config.connect_timeout = Some(options.connect_timeout);
    config.read_timeout = Some(options.read_timeout);
    config.write_timeout = Some(options.write_timeout);
    // Count the read timeout from when the request is sent, not from when a pooled connection
    // went idle.
    config.reset_reader_on_write = true;
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|e| PortError::Permanent {
        op: "build kube client",
        source: Box::new(e),
    })
}

/// DescribeCluster + a fresh token → a kube config for an EKS cluster.
async fn eks_config(
    eks: &aws_sdk_eks::Client,
    credentials: &SharedCredentialsProvider,
    region: &str,
    cluster: &str,
) -> Result<kube::Config, PortError> {
    // iam: eks:DescribeCluster
    let described = eks
        .describe_cluster()
        .name(cluster)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception())
            {
                PortError::NotFound {
                    op: "describe cluster",
                    what: format!("EKS cluster {cluster}"),
                }
            } else {
                sdk_error("describe cluster", e)
            }
        })?;
    let info = described.cluster();
    let endpoint = info.and_then(|c| c.endpoint()).filter(|e| !e.is_empty());
    let ca = info
        .and_then(|c| c.certificate_authority())
        .and_then(|ca| ca.data())
        .filter(|d| !d.is_empty());
    let (Some(endpoint), Some(ca)) = (endpoint, ca) else {
        // A cluster still being created has neither.
        return Err(PortError::Transient {
            op: "describe cluster",
            source: format!("EKS cluster {cluster} has no endpoint or certificate authority yet")
                .into(),
        });
    };
    let creds = credentials
        .provide_credentials()
        .await
        .map_err(|e| PortError::Transient {
            op: "load AWS credentials",
            source: Box::new(e),
        })?;
    let token = token::eks_token(cluster, region, &creds, SystemTime::now()).map_err(|e| {
        PortError::Permanent {
            op: "sign EKS token",
            source: Box::new(e),
        }
    })?;
    // Through a kubeconfig so kube decodes the base64 PEM CA bundle exactly as kubectl would.
    let kubeconfig = eks_kubeconfig(cluster, endpoint, ca, token);
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| PortError::Permanent {
            op: "build EKS kube config",
            source: Box::new(e),
        })
}

fn eks_kubeconfig(cluster: &str, endpoint: &str, ca_data: &str, token: String) -> Kubeconfig {
    const USER: &str = "costop";
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: cluster.to_owned(),
            cluster: Some(kube::config::Cluster {
                server: Some(endpoint.to_owned()),
                certificate_authority_data: Some(ca_data.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: USER.to_owned(),
            auth_info: Some(AuthInfo {
                token: Some(token.into()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: cluster.to_owned(),
            context: Some(Context {
                cluster: cluster.to_owned(),
                user: Some(USER.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some(cluster.to_owned()),
        ..Default::default()
    }
}

impl Clusters for KubeClusters {
    type Kube = KubeCluster;

    async fn connect(&self, cluster: &str) -> Result<KubeCluster, PortError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(cluster)
            && c.refresh_at.is_none_or(|at| Instant::now() < at)
        {
            return Ok(c.cluster.clone());
        }
        let built = self.build(cluster).await?;
        let handle = built.cluster.clone();
        cache.insert(cluster.to_owned(), built);
        Ok(handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: bed
clusters:
- name: bed
  cluster: {server: "http://127.0.0.1:1"}
- name: prod
  cluster: {server: "http://127.0.0.1:2"}
contexts:
- name: bed
  context: {cluster: bed, user: u}
- name: prod
  context: {cluster: prod, user: u}
users:
- name: u
  user: {token: t}
"#;

    fn clusters() -> KubeClusters {
        let kubeconfig = Kubeconfig::from_yaml(KUBECONFIG).unwrap();
        KubeClusters::new(
            ClusterAccess::Kubeconfig(Box::new(kubeconfig)),
            KubeOptions::default(),
        )
    }

    #[tokio::test]
    async fn a_context_named_like_the_cluster_wins_else_the_current_context_serves() {
        let kubeconfig = Kubeconfig::from_yaml(KUBECONFIG).unwrap();
        let url = |cluster: &'static str| {
            let kubeconfig = kubeconfig.clone();
            async move {
                kubeconfig_config(&kubeconfig, cluster)
                    .await
                    .unwrap()
                    .cluster_url
                    .to_string()
            }
        };
        assert_eq!(url("prod").await, "http://127.0.0.1:2/");
        assert_eq!(url("anything-else").await, "http://127.0.0.1:1/");
    }

    #[tokio::test]
    async fn clients_are_cached_per_cluster() {
        let c = clusters();
        c.connect("prod").await.unwrap();
        c.connect("prod").await.unwrap();
        c.connect("bed").await.unwrap();
        assert_eq!(c.cache.lock().await.len(), 2);
    }

    #[test]
    fn the_eks_kubeconfig_carries_endpoint_ca_and_token() {
        let k = eks_kubeconfig(
            "prod",
            "https://x.eks.amazonaws.com",
            "Q0E=",
            "k8s-aws-v1.abc".into(),
        );
        assert_eq!(k.current_context.as_deref(), Some("prod"));
        let cluster = k.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(
            cluster.server.as_deref(),
            Some("https://x.eks.amazonaws.com")
        );
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("Q0E="));
        let auth = k.auth_infos[0].auth_info.as_ref().unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(
            auth.token.as_ref().unwrap().expose_secret(),
            "k8s-aws-v1.abc"
        );
    }
}
