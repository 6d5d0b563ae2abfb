//! The AWS ports over the SDK: EC2 ([`Ec2Adapter`]), ELBv2 ([`ElbAdapter`]), Auto Scaling
//! ([`AsgAdapter`]), the DynamoDB table ([`DynamoRecords`]) and the hand-off to the interruption
//! function through Lambda ([`LambdaHandoff`]), the fallback's write queue ([`DynamoQueue`]), plus the one rule that turns any
//! SDK error into a [`PortError`]. Each call site carries an `// iam: <action>` marker naming the
//! permission it needs.

mod asg;
mod dynamo;
mod ec2;
mod elb;
mod lambda;
mod queue;

pub use asg::AsgAdapter;
pub use dynamo::{
    AttrError, DynamoRecords, attr_from_value, attr_to_value, item_from_sdk, item_to_sdk,
};
pub use ec2::Ec2Adapter;
pub use elb::ElbAdapter;
pub use lambda::{LambdaHandoff, NoInterruptionFunction};
pub use queue::DynamoQueue;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use costop_app::ports::PortError;

/// Error codes worth retrying: throttling and the services' own transient faults (the same
/// families the SDK's standard retry strategy retries, plus Auto Scaling's `ResourceContention`).
const TRANSIENT_CODES: [&str; 23] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "ResourceContention",
];

/// Whether a service error code is transient.
pub fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

/// Any SDK error → [`PortError`], keeping the `SdkError` as the source.
///
/// Timeouts, dispatch (network) failures, unparsable responses, throttling/transient codes and
/// HTTP 5xx/429 are `Transient`; request-construction failures and every other service error
/// (access denied, validation, not found…) are `Permanent`. Callers handle the codes that mean
/// something for their operation (e.g. a failed condition) before calling this.
pub(crate) fn sdk_error<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::ConstructionFailure(_) => false,
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(d) => !d.is_user(),
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            s.err().code().is_some_and(is_transient_code) || status >= 500 || status == 429
        }
        // SdkError is non-exhaustive; an unknown kind is not known to be retryable.
        _ => false,
    };
    PortError::classified(op, transient, Box::new(err))
}

/// The service error code, if `err` is a service error.
pub(crate) fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    err.as_service_error().and_then(|e| e.code())
}

/// The service error message, if `err` is a service error.
pub(crate) fn error_message<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    err.as_service_error().and_then(|e| e.message())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::{Reply, Server};
    use aws_config::BehaviorVersion;
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_credential_types::Credentials;
    use serde_json::json;
    use std::time::Duration;

    /// An SDK config aimed at a test server: fixed credentials, no retries, short timeouts.
    pub(crate) async fn sdk_config(url: &str) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(url)
            .region("us-east-1")
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(2))
                    .build(),
            )
            .load()
            .await
    }

    #[test]
    fn throttling_and_faults_are_transient_codes() {
        for code in [
            "Throttling",
            "ThrottlingException",
            "RequestLimitExceeded",
            "InternalServerError",
            "ResourceContention",
        ] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in [
            "AccessDenied",
            "ValidationError",
            "ValidationException",
            "ConditionalCheckFailedException",
        ] {
            assert!(!is_transient_code(code), "{code}");
        }
    }

    async fn get_item_error(reply: impl Fn() -> Reply + Send + Sync + 'static) -> PortError {
        let server = Server::start(move |_| reply()).await;
        let client = aws_sdk_dynamodb::Client::new(&sdk_config(&server.url).await);
        let err = client.get_item().table_name("t").send().await.unwrap_err();
        sdk_error("get item", err)
    }

    fn ddb_error(status: u16, kind: &str) -> Reply {
        Reply::aws_json(
            status,
            json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": "m"}),
        )
    }

    #[tokio::test]
    async fn real_error_responses_are_classified() {
        let e = get_item_error(|| ddb_error(400, "ThrottlingException")).await;
        assert!(matches!(e, PortError::Transient { .. }), "{e:?}");
        let e = get_item_error(|| ddb_error(400, "ProvisionedThroughputExceededException")).await;
        assert!(matches!(e, PortError::Transient { .. }), "{e:?}");
        let e = get_item_error(|| ddb_error(500, "SomethingNew")).await;
        assert!(matches!(e, PortError::Transient { .. }), "{e:?}");
        let e = get_item_error(|| ddb_error(400, "AccessDeniedException")).await;
        assert!(matches!(e, PortError::Permanent { .. }), "{e:?}");
        let e = get_item_error(|| ddb_error(400, "ValidationException")).await;
        let PortError::Permanent { source, .. } = e else {
            panic!("{e:?}")
        };
        // The whole SdkError is kept, code and all.
        let sdk = source.downcast_ref::<SdkError<aws_sdk_dynamodb::operation::get_item::GetItemError, HttpResponse>>();
        assert_eq!(sdk.and_then(error_code), Some("ValidationException"));
    }

    #[tokio::test]
    async fn network_failures_are_transient() {
        // A port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let client = aws_sdk_dynamodb::Client::new(&sdk_config(&url).await);
        let err = client.get_item().table_name("t").send().await.unwrap_err();
        assert!(matches!(
            sdk_error("get item", err),
            PortError::Transient { .. }
        ));
    }
}
