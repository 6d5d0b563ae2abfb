//! Out of rotation before eviction: the drain's [`Rotation`] carried out. The opted-in pods are
//! relabeled out of their Services, the targets the plan watches are read until each is
//! `draining` or gone (or the wait's end comes), and the settle time passes; then the drain
//! evicts the pods that serve a load balancer. Each moment goes to the timeline. Infallible by
//! design, like the drain: a failed call is logged and the wait goes on to its end, since the
//! pods must be evicted before the deadline whatever the load balancer says.

use std::time::Duration;

use chrono::Utc;
use costop_core::facts::TargetServing;
use costop_core::plan::action::Rotation;
use costop_core::record::TimelineStep;
use futures::StreamExt;

use crate::function::error_chain;
use crate::ports::{Elb, Kube};
use crate::ratelimit::RateLimiter;

/// How often the targets' state is read while waiting for `draining`.
const STATE_POLL: Duration = Duration::from_millis(250);

/// Relabels in flight at once.
const RELABEL_CONCURRENCY: usize = 16;

/// Take the serving pods out of rotation; returns once their evictions may begin.
pub async fn run<K: Kube, E: Elb, F: Fn(TimelineStep)>(
    kube: &K,
    elb: &E,
    limiter: &RateLimiter,
    rotation: &Rotation,
    record: &F,
) {
    // Owned pods, as in the drain: a closure over borrowed ones loses `Send`.
    let relabeled: Vec<_> = futures::stream::iter(rotation.relabel.clone())
        .map(|pod| async move {
            limiter.acquire().await;
            match kube.leave_rotation(&pod).await {
                Ok(true) => Some(pod.pod_ref()),
                Ok(false) => None,
                Err(e) => {
                    tracing::warn!(pod = %pod.pod_ref(), error = %error_chain(&e), "could not take the pod out of rotation");
                    None
                }
            }
        })
        .buffer_unordered(RELABEL_CONCURRENCY)
        .filter_map(std::future::ready)
        .collect()
        .await;
    let targets = rotation.watch.iter().map(|g| g.targets.len()).sum();
    record(TimelineStep::OutOfRotation { relabeled, targets });
    let in_service = wait_draining(elb, rotation).await;
    if in_service.is_empty() {
        record(TimelineStep::TargetsDraining);
    } else {
        tracing::warn!(
            ?in_service,
            "targets still in service at the end of the wait; evicting their pods anyway"
        );
        record(TimelineStep::RotationWaitExpired { in_service });
    }
    if rotation.settle_seconds > 0 {
        tokio::time::sleep(Duration::from_secs(rotation.settle_seconds.unsigned_abs())).await;
    }
    record(TimelineStep::RotationSettled);
}

/// Read the watched targets until none is in service or the wait ends; those still in service
/// (`id:port`) then.
async fn wait_draining<E: Elb>(elb: &E, rotation: &Rotation) -> Vec<String> {
    let mut in_service: Vec<String> = Vec::new();
    let mut pending: Vec<_> = rotation.watch.clone();
    loop {
        let reads = futures::future::join_all(pending.iter().map(|g| elb.serving(g))).await;
        let mut still = Vec::new();
        in_service.clear();
        for (group, read) in pending.into_iter().zip(reads) {
            match read {
                Ok(states) => {
                    let serving: Vec<_> = states
                        .into_iter()
                        .filter(|(_, s)| *s == TargetServing::InService)
                        .map(|(t, _)| t)
                        .collect();
                    in_service.extend(serving.iter().map(|t| match t.port {
                        Some(p) => format!("{}:{p}", t.id),
                        None => t.id.clone(),
                    }));
                    if !serving.is_empty() {
                        still.push(costop_core::plan::DeregisterTargets {
                            targets: serving,
                            ..group
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(target_group = %group.target_group_arn, error = %error_chain(&e), "could not read target health");
                    in_service.extend(group.targets.iter().map(|t| t.id.clone()));
                    still.push(group);
                }
            }
        }
        pending = still;
        if pending.is_empty() || Utc::now() >= rotation.wait_until {
            return in_service;
        }
        tokio::time::sleep(STATE_POLL).await;
    }
}
