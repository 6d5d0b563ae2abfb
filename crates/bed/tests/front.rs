//! The AWS front against the real protocol: the SDK's lifecycle calls go through the front and
//! are answered from moto's state (accepted for a real hook, a `ValidationError` otherwise), and
//! every other call passes through to moto unchanged.

mod common;

use std::time::Duration;

use aws_sdk_autoscaling::config::http::HttpResponse;
use aws_sdk_autoscaling::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_autoscaling::operation::RequestId;
use aws_sdk_autoscaling::operation::complete_lifecycle_action::builders::CompleteLifecycleActionFluentBuilder;
use aws_sdk_autoscaling::operation::record_lifecycle_action_heartbeat::builders::RecordLifecycleActionHeartbeatFluentBuilder;
use common::*;
use costop_bed::{Bed, LifecycleAction};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "630aa23f-48eb-45e7-aba6-799ea6093a0f";

/// The bed's one ASG and its one instance.
fn group_and_instance(bed: &Bed) -> (String, String) {
    let asg = bed.world().node_groups["spot"]
        .autoscaling_group
        .clone()
        .expect("the spot group has an ASG");
    (asg, bed.world().instance_ids("spot")[0].clone())
}

/// A terminate hook on `asg`, put through the front (which forwards it to moto).
async fn put_hook(bed: &Bed, asg: &str, name: &str, heartbeat_timeout: i32) {
    bed.autoscaling()
        .put_lifecycle_hook()
        .auto_scaling_group_name(asg)
        .lifecycle_hook_name(name)
        .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
        .heartbeat_timeout(heartbeat_timeout)
        .default_result("CONTINUE")
        .send()
        .await
        .expect("moto takes the hook");
}

/// A heartbeat for `asg`'s `hook`, naming the lifecycle action by `token` and `instance`.
fn heartbeat(
    client: &aws_sdk_autoscaling::Client,
    (asg, hook): (&str, &str),
    token: Option<&str>,
    instance: Option<&str>,
) -> RecordLifecycleActionHeartbeatFluentBuilder {
    client
        .record_lifecycle_action_heartbeat()
        .auto_scaling_group_name(asg)
        .lifecycle_hook_name(hook)
        .set_lifecycle_action_token(token.map(str::to_owned))
        .set_instance_id(instance.map(str::to_owned))
}

/// A completion for `asg`'s `hook` with `result`, naming the action as [`heartbeat`] does.
fn complete(
    client: &aws_sdk_autoscaling::Client,
    (asg, hook): (&str, &str),
    token: Option<&str>,
    instance: Option<&str>,
    result: &str,
) -> CompleteLifecycleActionFluentBuilder {
    client
        .complete_lifecycle_action()
        .auto_scaling_group_name(asg)
        .lifecycle_hook_name(hook)
        .set_lifecycle_action_token(token.map(str::to_owned))
        .set_instance_id(instance.map(str::to_owned))
        .lifecycle_action_result(result)
}

/// The error code, message and HTTP status of a refused call.
fn refused<T, E: ProvideErrorMetadata>(
    r: Result<T, SdkError<E, HttpResponse>>,
) -> (String, String, u16) {
    let Err(e) = r else {
        panic!("accepted; a refusal was expected")
    };
    let status = e.raw_response().map_or(0, |r| r.status().as_u16());
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
        status,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_calls_for_a_real_hook_succeed_through_the_front_and_are_recorded() {
    let bed = one_node_bed().await;
    let (asg, instance) = group_and_instance(&bed);
    put_hook(&bed, &asg, "drain", 60).await;
    let client = bed.autoscaling();
    let hook = (asg.as_str(), "drain");
    let beat = heartbeat(&client, hook, Some(TOKEN), Some(&instance))
        .send()
        .await
        .expect("the heartbeat is accepted");
    assert!(
        beat.request_id().is_some_and(|id| !id.is_empty()),
        "AWS's response metadata"
    );
    complete(&client, hook, Some(TOKEN), Some(&instance), "CONTINUE")
        .send()
        .await
        .expect("the completion is accepted");

    let calls = bed.lifecycle_calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(
        calls.iter().map(|c| c.action).collect::<Vec<_>>(),
        [LifecycleAction::Heartbeat, LifecycleAction::Complete]
    );
    for c in &calls {
        assert_eq!((c.asg.as_str(), c.hook.as_str()), (asg.as_str(), "drain"));
        assert_eq!(c.token.as_deref(), Some(TOKEN));
        assert_eq!(c.instance_id.as_deref(), Some(instance.as_str()));
        assert_eq!(c.refused, None);
    }
    assert_eq!(calls[0].result, None);
    assert_eq!(calls[1].result.as_deref(), Some("CONTINUE"));
    assert!(calls[0].at <= calls[1].at);

    // Completed: Auto Scaling no longer knows the action, and says so.
    let again = complete(&client, hook, Some(TOKEN), None, "CONTINUE")
        .send()
        .await;
    assert_eq!(
        refused(again),
        (
            "ValidationError".to_owned(),
            format!("No active Lifecycle Action found with token {TOKEN}"),
            400
        )
    );
    assert!(bed.lifecycle_calls()[2].refused.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_calls_naming_what_moto_does_not_have_are_validation_errors() {
    let bed = one_node_bed().await;
    let (asg, instance) = group_and_instance(&bed);
    put_hook(&bed, &asg, "drain", 60).await;
    let client = bed.autoscaling();
    let beat = |asg: &str, hook: &str, instance: Option<&str>| {
        heartbeat(&client, (asg, hook), instance.and(Some(TOKEN)), instance).send()
    };
    for (what, answer, message) in [
        (
            "an unknown hook",
            beat(&asg, "no-such-hook", Some(&instance)).await,
            format!("No lifecycle hook named no-such-hook found for group {asg}"),
        ),
        (
            "an unknown group",
            beat("no-such-group", "drain", Some(&instance)).await,
            "Group no-such-group not found".to_owned(),
        ),
        (
            "an instance outside the group",
            beat(&asg, "drain", Some("i-0123456789abcdef0")).await,
            "No active Lifecycle Action found with instance ID i-0123456789abcdef0".to_owned(),
        ),
        (
            "neither token nor instance",
            beat(&asg, "drain", None).await,
            "A lifecycle action token or an instance ID must be specified".to_owned(),
        ),
    ] {
        assert_eq!(
            refused(answer),
            ("ValidationError".to_owned(), message, 400),
            "{what}"
        );
    }
    let bad_result = complete(&client, (&asg, "drain"), None, Some(&instance), "ROLLBACK")
        .send()
        .await;
    assert_eq!(refused(bad_result).0, "ValidationError");
    let calls = bed.lifecycle_calls();
    assert_eq!(calls.len(), 5);
    assert!(
        calls.iter().all(|c| c
            .refused
            .as_deref()
            .is_some_and(|r| r.starts_with("ValidationError: "))),
        "{calls:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_action_without_a_heartbeat_within_the_hooks_timeout_is_over() {
    let bed = one_node_bed().await;
    let (asg, instance) = group_and_instance(&bed);
    put_hook(&bed, &asg, "drain", 1).await;
    let client = bed.autoscaling();
    let beat = || heartbeat(&client, (&asg, "drain"), Some(TOKEN), Some(&instance)).send();
    beat().await.expect("in time");
    tokio::time::sleep(Duration::from_millis(600)).await;
    beat().await.expect("a heartbeat restarts the wait");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (code, message, _) = refused(beat().await);
    assert_eq!(code, "ValidationError");
    assert_eq!(
        message,
        format!("No active Lifecycle Action found with token {TOKEN}")
    );
}

/// A raw `GET path` to `base` (`http://127.0.0.1:PORT`): the status line and the body.
async fn get(base: &str, path: &str) -> (String, String) {
    let mut conn = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: bed\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_call_passes_through_the_front_to_moto_unchanged() {
    let bed = one_node_bed().await;
    let region = &bed.scenario().cluster.region;
    let (asg, instance) = group_and_instance(&bed);
    let front = costop_bed::sdk_config(&bed.front().url(), region).await;

    let via_front = aws_sdk_ec2::Client::new(&front)
        .describe_instances()
        .instance_ids(&instance)
        .send()
        .await
        .expect("EC2 through the front");
    let direct = bed
        .ec2()
        .describe_instances()
        .instance_ids(&instance)
        .send()
        .await
        .expect("EC2 from moto");
    assert_eq!(via_front.reservations(), direct.reservations());

    let groups = aws_sdk_autoscaling::Client::new(&front)
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&asg)
        .send()
        .await
        .expect("an Auto Scaling call moto implements, through the front");
    let members: Vec<&str> = groups.auto_scaling_groups()[0]
        .instances()
        .iter()
        .filter_map(|i| i.instance_id())
        .collect();
    assert_eq!(members, [instance.as_str()]);

    // Method, path and query reach moto as sent, and its answer comes back as it gave it.
    let path = "/moto-api/?from=the-front";
    let (status, body) = get(&bed.front().url(), path).await;
    assert_eq!((status, body), get(&bed.endpoint_url(), path).await);
    assert!(
        bed.lifecycle_calls().is_empty(),
        "nothing here was the front's own"
    );
}
