//! The AWS Load Balancer Controller stand-in: it keeps each target group the scenario binds to
//! a Service (a TargetGroupBinding's `serviceRef`) equal to what the controller would register
//! — the Service's pods for IP target groups, the nodes on its nodePort for instance ones, by
//! [`resolve`]'s rules — through moto's ELBv2 API, the source of truth every other part of the
//! bed (costop, the ALB stand-in) reads.
//!
//! The real controller reconciles a TargetGroupBinding when the Service's EndpointSlices, its
//! pods or the nodes change (watch events), then calls RegisterTargets / DeregisterTargets
//! (`pkg/targetgroupbinding/resource_manager.go`). Its reaction is not instantaneous: the watch,
//! the work queue and the AWS calls take time, so a change is applied once it has held for the
//! scenario's `delays.lb_controller_reconcile` (simulated seconds). A terminating pod therefore
//! stays registered that long after its endpoint stops being ready, as on a real cluster.
//!
//! Ingresses of class `alb` become the load balancer's listener rules ([`listener`], translated
//! by [`ingress`]), including the weighted forward of an `alb.ingress.kubernetes.io/actions.*`
//! annotation.

pub mod ingress;
pub mod listener;
pub mod resolve;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use kubesim::Simulator;
use kubesim::resources;
use kubesim::store::ListOptions;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::scenario::TargetType;
pub use resolve::{ResolveError, ServicePort, Target};

/// How often the stand-in looks at the cluster (real time; small next to any reconcile delay).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// One target group kept equal to a Service port.
#[derive(Debug, Clone)]
pub struct Binding {
    pub target_group_arn: String,
    pub target_type: TargetType,
    pub namespace: String,
    pub service: String,
    pub port: ServicePort,
}

/// Start the stand-in; it runs until the handle is aborted (the bed does on drop).
/// `reconcile_delay` is real time (the scenario's delay divided by its time scale).
pub fn spawn(
    sim: Arc<Simulator>,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    bindings: Vec<Binding>,
    listener_arn: Option<String>,
    reconcile_delay: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut rules = listener::ListenerState::default();
        let mut applied: BTreeMap<String, BTreeSet<Target>> = BTreeMap::new();
        for b in &bindings {
            applied.insert(
                b.target_group_arn.clone(),
                registered(&elb, &b.target_group_arn)
                    .await
                    .unwrap_or_default(),
            );
        }
        let mut pending: BTreeMap<String, Instant> = BTreeMap::new();
        loop {
            tokio::time::sleep(POLL_INTERVAL).await;
            if let Some(l) = &listener_arn {
                listener::step(&sim, &elb, &bindings, l, &mut rules, reconcile_delay).await;
            }
            for b in &bindings {
                let desired = match desired(&sim, b) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::debug!(service = %b.service, error = %e, "binding not resolvable yet");
                        continue;
                    }
                };
                let arn = &b.target_group_arn;
                if applied.get(arn) == Some(&desired) {
                    pending.remove(arn);
                    continue;
                }
                let since = *pending.entry(arn.clone()).or_insert_with(Instant::now);
                if since.elapsed() < reconcile_delay {
                    continue;
                }
                let before = applied.get(arn).cloned().unwrap_or_default();
                match apply(&elb, arn, &before, &desired).await {
                    Ok(()) => {
                        tracing::debug!(target_group = %arn, targets = desired.len(), "targets reconciled");
                        applied.insert(arn.clone(), desired);
                        pending.remove(arn);
                    }
                    Err(e) => {
                        tracing::warn!(target_group = %arn, error = %e, "reconcile failed; retrying")
                    }
                }
            }
        }
    })
}

fn list(
    sim: &Simulator,
    def: &'static kubesim::resources::ResourceDef,
    ns: Option<&str>,
) -> Vec<Value> {
    sim.store().list(def, ns, &ListOptions::default()).0
}

/// What the binding wants now (the fast test world's in-memory controller uses it too).
pub fn desired(sim: &Simulator, b: &Binding) -> Result<BTreeSet<Target>, ResolveError> {
    let ns = Some(b.namespace.as_str());
    let Some(service) = list(sim, &resources::SERVICES, ns)
        .into_iter()
        .find(|s| s["metadata"]["name"] == b.service.as_str())
    else {
        return Ok(BTreeSet::new());
    };
    let nodes = list(sim, &resources::NODES, None);
    let targets = match b.target_type {
        TargetType::Ip => {
            let slices: Vec<Value> = list(sim, &resources::ENDPOINTSLICES, ns)
                .into_iter()
                .filter(|s| {
                    s["metadata"]["labels"]["kubernetes.io/service-name"] == b.service.as_str()
                })
                .collect();
            let pods = list(sim, &resources::PODS, ns);
            resolve::ip_targets(&service, &b.port, &slices, &pods, &nodes)?
        }
        TargetType::Instance => resolve::instance_targets(&service, &b.port, &nodes)?,
    };
    Ok(targets.into_iter().collect())
}

type ElbError = Box<dyn std::error::Error + Send + Sync>;

/// The targets moto has registered in a group.
async fn registered(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    arn: &str,
) -> Result<BTreeSet<Target>, ElbError> {
    let out = elb
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await?;
    Ok(out
        .target_health_descriptions()
        .iter()
        .filter_map(|d| d.target())
        .filter_map(|t| {
            Some(Target {
                id: t.id()?.to_owned(),
                port: u16::try_from(t.port()?).ok()?,
            })
        })
        .collect())
}

fn descriptions(targets: &BTreeSet<Target>) -> Vec<TargetDescription> {
    targets
        .iter()
        .map(|t| {
            TargetDescription::builder()
                .id(&t.id)
                .port(i32::from(t.port))
                .build()
        })
        .collect()
}

async fn apply(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    arn: &str,
    before: &BTreeSet<Target>,
    desired: &BTreeSet<Target>,
) -> Result<(), ElbError> {
    let gone: BTreeSet<Target> = before.difference(desired).cloned().collect();
    let new: BTreeSet<Target> = desired.difference(before).cloned().collect();
    if !gone.is_empty() {
        elb.deregister_targets()
            .target_group_arn(arn)
            .set_targets(Some(descriptions(&gone)))
            .send()
            .await?;
    }
    if !new.is_empty() {
        elb.register_targets()
            .target_group_arn(arn)
            .set_targets(Some(descriptions(&new)))
            .send()
            .await?;
    }
    Ok(())
}
