//! [`AwsWorld`]: every adapter, built once per Lambda cold start from the environment, behind the
//! ports every function runs against; [`FallbackWorld`], the fallback's queue and upstream only
//! (no Kubernetes or EC2 client to build at its cold start).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use costop_core::Config;

use crate::aws::{AsgAdapter, DynamoQueue, DynamoRecords, Ec2Adapter, ElbAdapter, LambdaHandoff};
use crate::clusters::{ClusterAccess, KubeClusters, KubeOptions};
use crate::upstream::HttpUpstream;

/// SDK attempts per call (first try included). Few: a Spot warning leaves two minutes, and a
/// failed delivery is retried whole by Lambda anyway.
pub const AWS_MAX_ATTEMPTS: u32 = 3;
/// Connecting to an AWS endpoint.
pub const AWS_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt of one call.
pub const AWS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// One call, retries included.
pub const AWS_OPERATION_TIMEOUT: Duration = Duration::from_secs(25);

/// Building the world failed (at cold start: the function should fail loudly).
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// No region in the environment or profile.
    #[error("no AWS region is configured (set AWS_REGION)")]
    NoRegion,
    /// No credentials provider could be set up.
    #[error("no AWS credentials provider is configured")]
    NoCredentials,
    /// `KUBECONFIG` is set but unreadable.
    #[error("cannot read the kubeconfig named by KUBECONFIG")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
}

/// The real world: AWS through the SDK, clusters through kube.
pub struct AwsWorld {
    ec2: Ec2Adapter,
    elb: ElbAdapter,
    asg: AsgAdapter,
    records: DynamoRecords,
    clusters: KubeClusters,
    handoff: LambdaHandoff,
    queue: DynamoQueue,
    upstream: HttpUpstream,
}

/// The SDK configuration costop uses: the standard credential/region chain, standard retries
/// with [`AWS_MAX_ATTEMPTS`], and connect/attempt/operation timeouts. The chain also honours
/// `AWS_ENDPOINT_URL` and the service-specific `AWS_ENDPOINT_URL_<SERVICE>` (e.g.
/// `AWS_ENDPOINT_URL_AUTO_SCALING`), which override AWS's endpoints: the local bed points
/// everything at moto and Auto Scaling at its AWS front. No endpoint is set here in code, as that
/// would make every client ignore the service-specific variables
/// (<https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html>).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(AWS_MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(2)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(AWS_CONNECT_TIMEOUT)
                .operation_attempt_timeout(AWS_ATTEMPT_TIMEOUT)
                .operation_timeout(AWS_OPERATION_TIMEOUT)
                .build(),
        )
        .load()
        .await
}

impl AwsWorld {
    /// From the environment: [`load_sdk_config`], then [`ClusterAccess::from_env`]
    /// (kubeconfig when `KUBECONFIG` is set, else EKS).
    pub async fn from_env(config: &Config) -> Result<AwsWorld, AdapterError> {
        let sdk = load_sdk_config().await;
        let access = ClusterAccess::from_env(&sdk)?;
        Ok(AwsWorld::new(&sdk, config, access, KubeOptions::default()))
    }

    /// From explicit parts (tests, the bed).
    pub fn new(
        sdk: &SdkConfig,
        config: &Config,
        access: ClusterAccess,
        kube: KubeOptions,
    ) -> AwsWorld {
        AwsWorld {
            ec2: Ec2Adapter::new(aws_sdk_ec2::Client::new(sdk)),
            elb: ElbAdapter::new(aws_sdk_elasticloadbalancingv2::Client::new(sdk)),
            asg: AsgAdapter::new(aws_sdk_autoscaling::Client::new(sdk)),
            records: DynamoRecords::new(aws_sdk_dynamodb::Client::new(sdk), &config.table_name),
            queue: DynamoQueue::new(aws_sdk_dynamodb::Client::new(sdk), &config.queue_table),
            upstream: HttpUpstream::new(&config.fallback_upstream),
            clusters: KubeClusters::new(access, kube),
            handoff: match config.interruption_function.as_str() {
                "" => LambdaHandoff::Unset,
                f => LambdaHandoff::Invoke {
                    client: aws_sdk_lambda::Client::new(sdk),
                    function: f.to_owned(),
                },
            },
        }
    }

    /// Hand-offs go to `queue`, for the interruption function running in this process (the
    /// bed, `costop replay`), instead of a Lambda invoke.
    pub fn with_handoff_queue(mut self, queue: costop_app::HandoffQueue) -> AwsWorld {
        self.handoff = LambdaHandoff::Queue(queue);
        self
    }
}

costop_app::has_ports!(AwsWorld {
    ec2: Ec2Adapter,
    elb: ElbAdapter,
    asg: AsgAdapter,
    records: DynamoRecords,
    clusters: KubeClusters,
    handoff: LambdaHandoff,
    queue: DynamoQueue,
    upstream: HttpUpstream,
});

/// The fallback's world: the queue table and the upstream.
pub struct FallbackWorld {
    queue: DynamoQueue,
    upstream: HttpUpstream,
}

impl FallbackWorld {
    /// From the environment ([`load_sdk_config`]).
    pub async fn from_env(config: &Config) -> FallbackWorld {
        FallbackWorld::new(&load_sdk_config().await, config)
    }

    /// From explicit parts (tests, the bed).
    pub fn new(sdk: &SdkConfig, config: &Config) -> FallbackWorld {
        FallbackWorld {
            queue: DynamoQueue::new(aws_sdk_dynamodb::Client::new(sdk), &config.queue_table),
            upstream: HttpUpstream::new(&config.fallback_upstream),
        }
    }
}

costop_app::has_ports!(FallbackWorld {
    queue: DynamoQueue,
    upstream: HttpUpstream,
});
