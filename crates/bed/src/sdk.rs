//! The bed's AWS SDK configuration and environment. Every service goes to moto
//! (`AWS_ENDPOINT_URL`) except DynamoDB, which has a moto process of its own
//! (`AWS_ENDPOINT_URL_DYNAMODB`), and Auto Scaling and ELBv2, which go to the AWS front
//! (`AWS_ENDPOINT_URL_AUTO_SCALING`, `AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2`): the SDKs'
//! service-specific endpoint variables, named
//! `AWS_ENDPOINT_URL_<service id in upper case, spaces as underscores>`
//! (<https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html>, and the list of
//! identifiers at <https://docs.aws.amazon.com/sdkref/latest/guide/ss-endpoints-table.html>).
//! DynamoDB is a service apart on AWS too: its latency does not depend on how busy EC2's API
//! is. One Python process serving both made the fallback's queue wait behind the bed's EC2 and
//! ELBv2 polling, on the same interpreter lock.
//!
//! A child process (costop's Lambdas, the aws CLI) reads these from its environment. The bed's
//! own clients resolve them from the same lines, by the SDK's rule, in [`from_env_lines`].

use aws_config::{BehaviorVersion, SdkConfig};
use aws_types::origin::Origin;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

use crate::moto;

/// The global endpoint variable.
pub const ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// Auto Scaling's endpoint variable (service id `Auto Scaling`).
pub const ENDPOINT_URL_AUTO_SCALING: &str = "AWS_ENDPOINT_URL_AUTO_SCALING";
/// ELBv2's endpoint variable (service id `Elastic Load Balancing v2`): the front answers
/// `DescribeTargetHealth` from the ALB stand-in.
pub const ENDPOINT_URL_ELBV2: &str = "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2";
/// DynamoDB's endpoint variable (service id `DynamoDB`): its own moto process.
pub const ENDPOINT_URL_DYNAMODB: &str = "AWS_ENDPOINT_URL_DYNAMODB";

/// Where the bed's AWS services answer (`http://127.0.0.1:PORT` each).
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// moto: every service without its own.
    pub moto: String,
    /// DynamoDB's moto process.
    pub dynamodb: String,
    /// The AWS front: Auto Scaling and ELBv2.
    pub front: String,
}

/// The AWS part of a process's environment: the endpoints, moto's test credentials, the
/// region, and no instance metadata lookups.
pub fn aws_env(endpoints: &Endpoints, region: &str) -> Vec<(String, String)> {
    [
        (ENDPOINT_URL, endpoints.moto.as_str()),
        (ENDPOINT_URL_DYNAMODB, &endpoints.dynamodb),
        (ENDPOINT_URL_AUTO_SCALING, &endpoints.front),
        (ENDPOINT_URL_ELBV2, &endpoints.front),
        ("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY),
        ("AWS_REGION", region),
        ("AWS_DEFAULT_REGION", region),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// An SDK config straight to one endpoint (a moto server): fixed test credentials, the region.
pub async fn sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    let creds = aws_credential_types::Credentials::new(
        moto::ACCESS_KEY_ID,
        moto::SECRET_ACCESS_KEY,
        None,
        None,
        "costop-bed",
    );
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .load()
        .await
}

/// An SDK config whose clients take their endpoints from `lines` as the SDK takes them from a
/// process environment: a service's `AWS_ENDPOINT_URL_<SERVICE>` when set, else
/// `AWS_ENDPOINT_URL`. (An endpoint set in code would make the clients ignore the
/// service-specific variables, so the global one is marked as coming from the environment.)
pub async fn from_env_lines(lines: &[(String, String)], region: &str) -> SdkConfig {
    let get = |k: &str| lines.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let global = get(ENDPOINT_URL).unwrap_or_default();
    let mut b = sdk_config(&global, region).await.to_builder();
    b.insert_origin("endpoint_url", Origin::shared_environment_variable());
    b.set_service_config(Some(EnvLines(lines.to_vec())));
    b.build()
}

/// Service configuration read from `KEY=VALUE` lines by the SDK's naming rule.
#[derive(Debug)]
struct EnvLines(Vec<(String, String)>);

impl LoadServiceConfig for EnvLines {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        let specific = service_variable(key.env(), key.service_id());
        [specific.as_str(), key.env()].into_iter().find_map(|name| {
            self.0
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }
}

/// `AWS_ENDPOINT_URL` + `Auto Scaling` → `AWS_ENDPOINT_URL_AUTO_SCALING`.
fn service_variable(variable: &str, service_id: &str) -> String {
    format!("{variable}_{}", service_id.to_uppercase().replace(' ', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_variable_is_the_service_id_in_upper_case_with_underscores() {
        assert_eq!(
            service_variable(ENDPOINT_URL, "Auto Scaling"),
            ENDPOINT_URL_AUTO_SCALING
        );
        assert_eq!(
            service_variable(ENDPOINT_URL, "Elastic Load Balancing v2"),
            ENDPOINT_URL_ELBV2
        );
        assert_eq!(
            service_variable(ENDPOINT_URL, "DynamoDB"),
            ENDPOINT_URL_DYNAMODB
        );
    }

    #[tokio::test]
    async fn auto_scaling_goes_to_the_front_dynamodb_to_its_moto_and_everything_else_to_moto() {
        use std::time::Duration;
        use tokio::net::TcpListener;
        let moto = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dynamodb = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = |l: &TcpListener| format!("http://{}", l.local_addr().unwrap());
        let lines = aws_env(
            &Endpoints {
                moto: url(&moto),
                dynamodb: url(&dynamodb),
                front: url(&front),
            },
            "eu-west-1",
        );
        let sdk = from_env_lines(&lines, "eu-west-1").await;
        // Neither listener answers: each request only shows where its connection went.
        let asg = aws_sdk_autoscaling::Client::new(&sdk);
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let short = Duration::from_millis(300);
        let _ = tokio::time::timeout(short, asg.describe_lifecycle_hooks().send()).await;
        let at_front = tokio::time::timeout(short, front.accept()).await;
        let at_moto = tokio::time::timeout(short, moto.accept()).await;
        assert!(
            at_front.is_ok() && at_moto.is_err(),
            "Auto Scaling went to the front"
        );
        let _ = tokio::time::timeout(short, ddb.list_tables().send()).await;
        let at_dynamodb = tokio::time::timeout(short, dynamodb.accept()).await;
        let at_moto = tokio::time::timeout(short, moto.accept()).await;
        assert!(
            at_dynamodb.is_ok() && at_moto.is_err(),
            "DynamoDB went to its own moto"
        );
        let _ = tokio::time::timeout(short, ec2.describe_instances().send()).await;
        let at_moto = tokio::time::timeout(short, moto.accept()).await;
        assert!(at_moto.is_ok(), "EC2 went to moto");
    }
}
