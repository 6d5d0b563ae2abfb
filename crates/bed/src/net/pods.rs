//! Pods that answer: for every pod of a workload that asks for it, the bed runs the workload app
//! of `costop-traffic` on the pod's loopback address (its IP mapped by the dial guard,
//! 10.a.b.c → 127.a.b.c) and the first container port, following the pod's life as the
//! kubelet drives a container's:
//!
//! - the app starts serving when the pod turns Ready (the simulator's kubelet marks it Ready
//!   after the scenario's pod start delay, standing in for a readiness probe that passed);
//! - when the pod is deleted (it gets a `deletionTimestamp`), the app runs the preStop hook the
//!   spec declares (`lifecycle.preStop.sleep.seconds`, or an `exec` of `sleep N`), then gets
//!   SIGTERM, with the pod's grace period counted from the deletion, preStop included
//!   (<https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination>);
//! - when the pod object is gone, or its node's instance no longer runs, whatever still runs
//!   is killed.
//!
//! A pod opts in with the annotation `bed.costop.io/app: http` (on the pod template). Its
//! capacity comes from annotations too (defaults in brackets): `bed.costop.io/workers` [8],
//! `bed.costop.io/service-ms` [20, simulated], `bed.costop.io/queue` [64],
//! `bed.costop.io/graceful` [true]. Every pod of one namespace and `app` label shares one store
//! (the service's database stand-in), or the one `bed.costop.io/store` names.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use costop_traffic::app::{App, AppHandle, AppSpec};
use costop_traffic::store::Store;
use kubesim::Simulator;
use kubesim::resources;
use kubesim::store::ListOptions;
use serde_json::Value;
use tokio::task::JoinHandle;

/// The annotation a workload opts in with, and its value.
pub const ANNOTATION_APP: &str = "bed.costop.io/app";
pub const APP_HTTP: &str = "http";
pub const ANNOTATION_WORKERS: &str = "bed.costop.io/workers";
pub const ANNOTATION_SERVICE_MS: &str = "bed.costop.io/service-ms";
pub const ANNOTATION_QUEUE: &str = "bed.costop.io/queue";
pub const ANNOTATION_GRACEFUL: &str = "bed.costop.io/graceful";
pub const ANNOTATION_STORE: &str = "bed.costop.io/store";

/// How often the runtime looks at the pods (real time).
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The stores of the bed's services, by name; the load generator checks writes against them.
#[derive(Clone, Default)]
pub struct Stores(Arc<Mutex<BTreeMap<String, Arc<Store>>>>);

impl Stores {
    /// The store named `name`, created empty on first use.
    pub fn get(&self, name: &str) -> Arc<Store> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Store::new()))
            .clone()
    }

    /// Every store's name.
    pub fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

/// What the runtime needs to know about a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodApp {
    pub uid: String,
    pub store: String,
    pub addr: SocketAddr,
    pub node: String,
    pub ready: bool,
    pub deleting: bool,
    pub pre_stop: Duration,
    pub grace: Duration,
    pub spec: AppSpec,
}

fn annotation<'a>(pod: &'a Value, key: &str) -> Option<&'a str> {
    pod["metadata"]["annotations"][key].as_str()
}

fn number(pod: &Value, key: &str, default: u64) -> u64 {
    annotation(pod, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The app a pod asks for, once it has an IP and a node; `None` for a pod that does not opt in.
/// Durations are real time (simulated seconds divided by `time_scale`).
pub fn pod_app(pod: &Value, time_scale: f64) -> Option<PodApp> {
    if annotation(pod, ANNOTATION_APP) != Some(APP_HTTP) {
        return None;
    }
    let scale =
        |secs: f64| Duration::from_secs_f64((secs / time_scale.max(f64::MIN_POSITIVE)).max(0.0));
    let ip: IpAddr = pod["status"]["podIP"].as_str()?.parse().ok()?;
    let container = &pod["spec"]["containers"][0];
    let port = container["ports"][0]["containerPort"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(8080);
    let addr = SocketAddr::new(
        IpAddr::V4(costop_traffic::dial::to_loopback(ip).ok()?),
        port,
    );
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let store = annotation(pod, ANNOTATION_STORE)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "{ns}/{}",
                pod["metadata"]["labels"]["app"].as_str().unwrap_or("app")
            )
        });
    let ready = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    let grace = pod["metadata"]["deletionGracePeriodSeconds"]
        .as_f64()
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_f64())
        .unwrap_or(30.0);
    Some(PodApp {
        uid: pod["metadata"]["uid"].as_str()?.to_owned(),
        store,
        addr,
        node: pod["spec"]["nodeName"].as_str()?.to_owned(),
        ready,
        deleting: pod["metadata"].get("deletionTimestamp").is_some(),
        pre_stop: scale(kubesim::controllers::kubelet::pre_stop_seconds(pod)),
        grace: scale(grace),
        spec: AppSpec {
            addr,
            workers: usize::try_from(number(pod, ANNOTATION_WORKERS, 8))
                .unwrap_or(8)
                .max(1),
            service_time: scale(number(pod, ANNOTATION_SERVICE_MS, 20) as f64 / 1000.0),
            queue: usize::try_from(number(pod, ANNOTATION_QUEUE, 64)).unwrap_or(64),
            graceful: annotation(pod, ANNOTATION_GRACEFUL) != Some("false"),
        },
    })
}

/// One running app and what has been done to it.
struct Running {
    handle: AppHandle,
    terminating: bool,
}

/// Start the runtime. `running_nodes` names the nodes whose instances run. Runs until aborted;
/// every app is killed with it.
pub fn spawn(
    sim: Arc<Simulator>,
    stores: Stores,
    running_nodes: Arc<dyn Fn() -> BTreeSet<String> + Send + Sync>,
    time_scale: f64,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Dropped with the task: each handle kills its app when dropped.
        let mut apps: BTreeMap<String, Running> = BTreeMap::new();
        loop {
            let pods = sim
                .store()
                .list(&resources::PODS, None, &ListOptions::default())
                .0;
            let nodes = running_nodes();
            let wanted: BTreeMap<String, PodApp> = pods
                .iter()
                .filter_map(|p| pod_app(p, time_scale))
                .map(|a| (a.uid.clone(), a))
                .collect();
            // Gone pods, and pods whose node's machine is gone: killed.
            apps.retain(|uid, r| {
                let keep = wanted.get(uid).is_some_and(|a| nodes.contains(&a.node));
                if !keep {
                    r.handle.kill();
                }
                keep
            });
            for (uid, app) in &wanted {
                if !nodes.contains(&app.node) {
                    continue;
                }
                match apps.get_mut(uid) {
                    Some(r) if app.deleting && !r.terminating => {
                        r.handle.terminate(app.pre_stop, app.grace);
                        r.terminating = true;
                    }
                    Some(_) => {}
                    None if app.ready && !app.deleting => {
                        match App::start(app.spec.clone(), stores.get(&app.store)) {
                            Ok(handle) => {
                                if let Err(e) = handle.set_ready(true) {
                                    tracing::warn!(addr = %app.addr, error = %e, "pod app not ready");
                                }
                                apps.insert(
                                    uid.clone(),
                                    Running {
                                        handle,
                                        terminating: false,
                                    },
                                );
                            }
                            Err(e) => {
                                tracing::warn!(addr = %app.addr, error = %e, "pod app did not start")
                            }
                        }
                    }
                    None => {}
                }
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
}
