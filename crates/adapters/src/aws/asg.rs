//! Auto Scaling: detach an instance (keeping desired capacity, so a replacement launches now),
//! and the terminate lifecycle hook: its description, heartbeat and completion.
//!
//! The tests below run the real SDK client against a scripted local HTTP server
//! ([`crate::testutil::Server`]): they decode the Query-protocol body the SDK actually sends and
//! assert its `Action` and parameters, and the SDK parses a real-shaped XML reply (or error).
//! Against moto, which implements neither `RecordLifecycleActionHeartbeat` nor
//! `CompleteLifecycleAction`, the bed's AWS front answers those two.

use costop_app::ports::{Asg, PortError};
use costop_core::facts::LifecycleHookFacts;
use costop_core::plan::action::{LifecycleRef, LifecycleResult};

use super::{error_code, error_message, sdk_error};

/// Auto Scaling through the SDK.
#[derive(Clone, Debug)]
pub struct AsgAdapter {
    client: aws_sdk_autoscaling::Client,
}

impl AsgAdapter {
    /// Wraps an SDK client.
    pub fn new(client: aws_sdk_autoscaling::Client) -> Self {
        AsgAdapter { client }
    }
}

/// A `ValidationError` that means the work is already done (a redelivery, or the hook timed out
/// and Auto Scaling moved on): treated as success so a retried plan does not fail on it.
fn already_done<E: aws_sdk_autoscaling::error::ProvideErrorMetadata, R>(
    err: &aws_sdk_autoscaling::error::SdkError<E, R>,
    markers: &[&str],
) -> bool {
    error_code(err) == Some("ValidationError")
        && error_message(err).is_some_and(|m| markers.iter().any(|k| m.contains(k)))
}

/// The message Auto Scaling gives for an instance no longer in the group.
const NOT_IN_GROUP: &str = "is not part of Auto Scaling group";
/// The message Auto Scaling gives once a lifecycle action is completed or abandoned.
const NO_ACTIVE_ACTION: &str = "No active Lifecycle Action found";

impl Asg for AsgAdapter {
    async fn detach(&self, asg: &str, instance_id: &str) -> Result<(), PortError> {
        // iam: autoscaling:DetachInstances
        let result = self
            .client
            .detach_instances()
            .auto_scaling_group_name(asg)
            .instance_ids(instance_id)
            .should_decrement_desired_capacity(false)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if already_done(&e, &[NOT_IN_GROUP]) => Ok(()),
            Err(e) => Err(sdk_error("detach instance", e)),
        }
    }

    async fn describe_hook(
        &self,
        asg: &str,
        hook: &str,
    ) -> Result<Option<LifecycleHookFacts>, PortError> {
        // iam: autoscaling:DescribeLifecycleHooks
        let out = self
            .client
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(asg)
            .lifecycle_hook_names(hook)
            .send()
            .await
            .map_err(|e| sdk_error("describe lifecycle hook", e))?;
        Ok(out
            .lifecycle_hooks()
            .iter()
            .find(|h| h.lifecycle_hook_name() == Some(hook))
            .map(hook_facts))
    }

    async fn heartbeat(&self, hook: &LifecycleRef) -> Result<(), PortError> {
        // iam: autoscaling:RecordLifecycleActionHeartbeat
        let result = self
            .client
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(&hook.asg)
            .lifecycle_hook_name(&hook.hook)
            .lifecycle_action_token(&hook.token)
            .instance_id(&hook.instance_id)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Nothing left to extend; the drain still matters more than the heartbeat.
            Err(e) if already_done(&e, &[NO_ACTIVE_ACTION]) => {
                tracing::warn!(asg = %hook.asg, hook = %hook.hook, "lifecycle action no longer active; heartbeat skipped");
                Ok(())
            }
            Err(e) => Err(sdk_error("lifecycle heartbeat", e)),
        }
    }

    async fn complete(
        &self,
        hook: &LifecycleRef,
        result: LifecycleResult,
    ) -> Result<(), PortError> {
        // iam: autoscaling:CompleteLifecycleAction
        let result = self
            .client
            .complete_lifecycle_action()
            .auto_scaling_group_name(&hook.asg)
            .lifecycle_hook_name(&hook.hook)
            .lifecycle_action_token(&hook.token)
            .instance_id(&hook.instance_id)
            .lifecycle_action_result(result.as_str())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if already_done(&e, &[NO_ACTIVE_ACTION]) => Ok(()),
            Err(e) => Err(sdk_error("complete lifecycle action", e)),
        }
    }
}

/// What costop needs of a hook. Auto Scaling fills both fields in its answers; should one be
/// missing, AWS's defaults apply (`PutLifecycleHook`: a heartbeat timeout of 3600 s, and
/// `ABANDON`).
fn hook_facts(h: &aws_sdk_autoscaling::types::LifecycleHook) -> LifecycleHookFacts {
    LifecycleHookFacts {
        heartbeat_timeout_seconds: h.heartbeat_timeout().map_or(3600, i64::from),
        default_result: match h.default_result() {
            Some("CONTINUE") => LifecycleResult::Continue,
            _ => LifecycleResult::Abandon,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::tests::sdk_config;
    use crate::testutil::{Captured, Reply, Server};

    const NS: &str = "http://autoscaling.amazonaws.com/doc/2011-01-01/";

    fn ok(action: &str) -> Reply {
        Reply::xml(
            200,
            format!(
                "<{action}Response xmlns=\"{NS}\"><{action}Result/><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{action}Response>"
            ),
        )
    }

    fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::xml(
            status,
            format!(
                "<ErrorResponse xmlns=\"{NS}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
            ),
        )
    }

    fn hook() -> LifecycleRef {
        LifecycleRef {
            asg: "workers".into(),
            hook: "drain".into(),
            token: "tok-1".into(),
            instance_id: "i-0123456789abcdef0".into(),
        }
    }

    /// An adapter against a server answering with `replies` in order.
    async fn adapter(replies: Vec<Reply>) -> (AsgAdapter, Server) {
        let server = Server::scripted(replies, |r: &Captured| ok(&r.form()["Action"])).await;
        let client = aws_sdk_autoscaling::Client::new(&sdk_config(&server.url).await);
        (AsgAdapter::new(client), server)
    }

    #[tokio::test]
    async fn complete_sends_the_result_for_the_hook() {
        let (asg, server) = adapter(vec![]).await;
        asg.complete(&hook(), LifecycleResult::Continue)
            .await
            .unwrap();
        let req = &server.requests()[0];
        assert_eq!(req.method, "POST");
        let form = req.form();
        assert_eq!(form["Action"], "CompleteLifecycleAction");
        assert_eq!(form["Version"], "2011-01-01");
        assert_eq!(form["AutoScalingGroupName"], "workers");
        assert_eq!(form["LifecycleHookName"], "drain");
        assert_eq!(form["LifecycleActionToken"], "tok-1");
        assert_eq!(form["InstanceId"], "i-0123456789abcdef0");
        assert_eq!(form["LifecycleActionResult"], "CONTINUE");
        assert!(
            req.headers["authorization"].starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/"),
            "signed"
        );
        asg.complete(&hook(), LifecycleResult::Abandon)
            .await
            .unwrap();
        assert_eq!(
            server.requests()[1].form()["LifecycleActionResult"],
            "ABANDON"
        );
    }

    fn described(hooks: &str) -> Reply {
        Reply::xml(
            200,
            format!(
                "<DescribeLifecycleHooksResponse xmlns=\"{NS}\"><DescribeLifecycleHooksResult><LifecycleHooks>{hooks}</LifecycleHooks></DescribeLifecycleHooksResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeLifecycleHooksResponse>"
            ),
        )
    }

    #[tokio::test]
    async fn describe_hook_reads_the_heartbeat_timeout_and_default_result() {
        let member = |name: &str, timeout: &str, result: &str| {
            format!(
                "<member><LifecycleHookName>{name}</LifecycleHookName><AutoScalingGroupName>workers</AutoScalingGroupName><LifecycleTransition>autoscaling:EC2_INSTANCE_TERMINATING</LifecycleTransition>{timeout}{result}<GlobalTimeout>30000</GlobalTimeout></member>"
            )
        };
        let (asg, server) = adapter(vec![
            described(&member(
                "drain",
                "<HeartbeatTimeout>300</HeartbeatTimeout>",
                "<DefaultResult>CONTINUE</DefaultResult>",
            )),
            described(&member("drain", "", "")),
            described(""),
        ])
        .await;
        assert_eq!(
            asg.describe_hook("workers", "drain").await.unwrap(),
            Some(LifecycleHookFacts {
                heartbeat_timeout_seconds: 300,
                default_result: LifecycleResult::Continue,
            })
        );
        let form = server.requests()[0].form();
        assert_eq!(form["Action"], "DescribeLifecycleHooks");
        assert_eq!(form["AutoScalingGroupName"], "workers");
        assert_eq!(form["LifecycleHookNames.member.1"], "drain");
        assert_eq!(
            asg.describe_hook("workers", "drain").await.unwrap(),
            Some(LifecycleHookFacts {
                heartbeat_timeout_seconds: 3600,
                default_result: LifecycleResult::Abandon,
            }),
            "AWS's defaults for what the answer leaves out"
        );
        assert_eq!(asg.describe_hook("workers", "drain").await.unwrap(), None);
    }

    #[tokio::test]
    async fn heartbeat_names_the_hook_and_token() {
        let (asg, server) = adapter(vec![]).await;
        asg.heartbeat(&hook()).await.unwrap();
        let form = server.requests()[0].form();
        assert_eq!(form["Action"], "RecordLifecycleActionHeartbeat");
        assert_eq!(form["AutoScalingGroupName"], "workers");
        assert_eq!(form["LifecycleHookName"], "drain");
        assert_eq!(form["LifecycleActionToken"], "tok-1");
        assert_eq!(form["InstanceId"], "i-0123456789abcdef0");
        assert!(!form.contains_key("LifecycleActionResult"));
    }

    #[tokio::test]
    async fn detach_keeps_the_desired_capacity() {
        let (asg, server) = adapter(vec![]).await;
        asg.detach("workers", "i-0123456789abcdef0").await.unwrap();
        let form = server.requests()[0].form();
        assert_eq!(form["Action"], "DetachInstances");
        assert_eq!(form["AutoScalingGroupName"], "workers");
        assert_eq!(form["InstanceIds.member.1"], "i-0123456789abcdef0");
        assert_eq!(form["ShouldDecrementDesiredCapacity"], "false");
    }

    #[tokio::test]
    async fn finished_work_is_success_and_other_errors_are_classified() {
        let (asg, _server) = adapter(vec![
            error(
                400,
                "ValidationError",
                "No active Lifecycle Action found with token tok-1",
            ),
            error(
                400,
                "ValidationError",
                "The instance i-0123456789abcdef0 is not part of Auto Scaling group workers.",
            ),
            error(
                400,
                "ValidationError",
                "No active Lifecycle Action found with token tok-1",
            ),
            error(400, "Throttling", "Rate exceeded"),
            error(400, "ResourceContention", "busy"),
            error(403, "AccessDenied", "no"),
            error(400, "ValidationError", "Group workers not found"),
        ])
        .await;
        asg.complete(&hook(), LifecycleResult::Continue)
            .await
            .unwrap();
        asg.detach("workers", "i-0123456789abcdef0").await.unwrap();
        asg.heartbeat(&hook()).await.unwrap();
        assert!(matches!(
            asg.complete(&hook(), LifecycleResult::Continue).await,
            Err(PortError::Transient { .. })
        ));
        assert!(matches!(
            asg.heartbeat(&hook()).await,
            Err(PortError::Transient { .. })
        ));
        assert!(matches!(
            asg.detach("workers", "i-1").await,
            Err(PortError::Permanent { .. })
        ));
        assert!(matches!(
            asg.complete(&hook(), LifecycleResult::Continue).await,
            Err(PortError::Permanent { .. })
        ));
    }
}
