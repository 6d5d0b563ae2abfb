//! The local bed: moto (AWS) plus the kubesim cluster, seeded from a scenario and linked so that
//! EC2 instance state drives the cluster's Nodes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), costop_bed::BedError> {
//! use costop_bed::{Bed, Scenario};
//! let bed = Bed::start(Scenario::default_scenario()).await?;
//! bed.wait_ready(std::time::Duration::from_secs(60)).await?;
//! let ec2 = bed.ec2();                  // an SDK client pointed at moto
//! let kubeconfig = bed.kubeconfig_path(); // for kubectl / kube-rs
//! # let _ = (ec2, kubeconfig); Ok(()) }
//! ```
//!
//! Every bed has its own moto server and kubesim on free loopback ports; dropping it stops both.

pub mod error;
pub mod link;
pub mod moto;
pub mod process;
pub mod scenario;
pub mod seed;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};
use kubesim::store::ListOptions;
use kubesim::{SimConfig, Simulator, resources};
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinHandle;

pub use error::BedError;
pub use link::Ec2Link;
pub use moto::Moto;
pub use scenario::Scenario;
pub use seed::SeededWorld;

/// How long each start phase took (real seconds).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StartTimings {
    pub moto: f64,
    pub kubesim: f64,
    pub seed: f64,
    pub workloads: f64,
    pub total: f64,
}

/// A running bed. Dropping it stops the link, kubesim and moto, and removes its temp dir.
pub struct Bed {
    link: JoinHandle<()>,
    ec2_link: Arc<Ec2Link>,
    sim: Arc<Simulator>,
    moto: Moto,
    sdk: SdkConfig,
    scenario: Scenario,
    world: SeededWorld,
    kubeconfig: PathBuf,
    timings: StartTimings,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Bed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bed")
            .field("scenario", &self.scenario.name)
            .field("moto", &self.moto)
            .field("kubesim", &self.sim.url())
            .finish()
    }
}

impl Bed {
    /// Start moto and kubesim, seed AWS, link EC2 to the nodes and apply the workloads. Returns
    /// without waiting for nodes and pods (see [`Bed::wait_ready`]).
    pub async fn start(scenario: Scenario) -> Result<Self, BedError> {
        scenario.validate()?;
        let t0 = Instant::now();
        let mut timings = StartTimings::default();

        let moto = tokio::task::spawn_blocking(Moto::start)
            .await
            .map_err(|e| BedError::Moto(format!("start task failed: {e}")))??;
        timings.moto = t0.elapsed().as_secs_f64();

        let t = Instant::now();
        let sim = Arc::new(
            Simulator::start(SimConfig {
                cluster_name: scenario.cluster.name.clone(),
                time_scale: scenario.time_scale,
                node_boot_seconds: scenario.delays.node_boot,
                pod_start_seconds: scenario.delays.pod_start,
                pod_stop_seconds: scenario.delays.pod_stop,
                node_monitor_grace_seconds: scenario.delays.node_monitor_grace,
                ..SimConfig::default()
            })
            .await?,
        );
        let dir = tempfile::Builder::new()
            .prefix("costop-bed-")
            .tempdir()
            .map_err(|source| BedError::Io {
                what: "create the bed's temp dir".into(),
                source,
            })?;
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig)
            .map_err(|source| BedError::Io {
                what: format!("write {}", kubeconfig.display()),
                source,
            })?;
        timings.kubesim = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let sdk = sdk_config(&moto.endpoint_url(), &scenario.cluster.region).await;
        let world = seed::seed(&sdk, &scenario).await?;
        let ec2_link = Arc::new(Ec2Link::new(
            aws_sdk_ec2::Client::new(&sdk),
            &scenario.cluster.name,
            &scenario.cluster.region,
        ));
        sim.observe_instances(ec2_link.snapshot().await?);
        let link = ec2_link.clone().spawn(sim.clone(), link::POLL_INTERVAL);
        timings.seed = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let manifests = scenario.manifests_yaml();
        let mut bed = Bed {
            link,
            ec2_link,
            sim,
            moto,
            sdk,
            scenario,
            world,
            kubeconfig,
            timings: StartTimings::default(),
            _dir: dir,
        };
        bed.sim.apply_yaml(&manifests)?;
        timings.workloads = t.elapsed().as_secs_f64();
        timings.total = t0.elapsed().as_secs_f64();
        tracing::info!(scenario = %bed.scenario.name, ?timings, "bed started");
        bed.timings = timings;
        Ok(bed)
    }

    /// Start the built-in default scenario.
    pub async fn start_default() -> Result<Self, BedError> {
        Self::start(Scenario::default_scenario()).await
    }

    /// Wait until every instance seeded running has a Ready node, every Deployment, StatefulSet
    /// and DaemonSet reports all replicas ready, and every pod is Running.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), BedError> {
        let start = Instant::now();
        loop {
            let missing = self.not_ready();
            if missing.is_empty() {
                tracing::info!(secs = start.elapsed().as_secs_f64(), "bed ready");
                return Ok(());
            }
            if start.elapsed() > timeout {
                let more = missing.len().saturating_sub(8);
                let mut what = missing.into_iter().take(8).collect::<Vec<_>>().join("; ");
                if more > 0 {
                    what.push_str(&format!("; and {more} more"));
                }
                return Err(BedError::NotReady {
                    secs: start.elapsed().as_secs_f64(),
                    what,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What is not ready yet (empty when ready).
    pub fn not_ready(&self) -> Vec<String> {
        let mut out = Vec::new();
        let store = self.sim.store();
        let all = ListOptions::default();
        let nodes = store.list(&resources::NODES, None, &all).0;
        for id in self.world.running_instance_ids() {
            match nodes
                .iter()
                .find(|n| node_instance_id(n) == Some(id.as_str()))
            {
                None => out.push(format!("instance {id} has no node")),
                Some(n) if !node_ready(n) => out.push(format!("node {} is not Ready", name(n))),
                Some(_) => {}
            }
        }
        for (r, what) in [
            (&resources::DEPLOYMENTS, "deployment"),
            (&resources::STATEFULSETS, "statefulset"),
        ] {
            for d in store.list(r, None, &all).0 {
                let want = d
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                let ready = d
                    .pointer("/status/readyReplicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if ready < want {
                    out.push(format!("{what} {} has {ready}/{want} ready", ns_name(&d)));
                }
            }
        }
        for d in store.list(&resources::DAEMONSETS, None, &all).0 {
            let want = d
                .pointer("/status/desiredNumberScheduled")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let ready = d
                .pointer("/status/numberReady")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if want == 0 || ready < want {
                out.push(format!(
                    "daemonset {} has {ready}/{want} ready",
                    ns_name(&d)
                ));
            }
        }
        for p in store.list(&resources::PODS, None, &all).0 {
            let phase = p
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Pending");
            if phase != "Running" && phase != "Succeeded" {
                out.push(format!("pod {} is {phase}", ns_name(&p)));
            }
        }
        out
    }

    /// The moto endpoint (`http://127.0.0.1:PORT`).
    pub fn endpoint_url(&self) -> String {
        self.moto.endpoint_url()
    }
    pub fn moto(&self) -> &Moto {
        &self.moto
    }
    /// Path of a kubeconfig for kubesim (in the bed's temp dir).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }
    /// SDK config pointed at moto, with test credentials and the scenario's region.
    pub fn aws_config(&self) -> &SdkConfig {
        &self.sdk
    }
    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk)
    }
    pub fn elbv2(&self) -> aws_sdk_elasticloadbalancingv2::Client {
        aws_sdk_elasticloadbalancingv2::Client::new(&self.sdk)
    }
    pub fn autoscaling(&self) -> aws_sdk_autoscaling::Client {
        aws_sdk_autoscaling::Client::new(&self.sdk)
    }
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }
    pub fn sim(&self) -> &Arc<Simulator> {
        &self.sim
    }
    /// The EC2 poller feeding kubesim (e.g. for an immediate [`Ec2Link::snapshot`]).
    pub fn ec2_link(&self) -> &Arc<Ec2Link> {
        &self.ec2_link
    }
    pub fn world(&self) -> &SeededWorld {
        &self.world
    }
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }
    pub fn timings(&self) -> &StartTimings {
        &self.timings
    }

    /// The environment a child process (costop's Lambdas, kubectl, the aws CLI) needs.
    pub fn env(&self) -> Vec<(String, String)> {
        let region = &self.scenario.cluster.region;
        [
            ("KUBECONFIG", self.kubeconfig.display().to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint_url()),
            ("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY.to_string()),
            ("AWS_REGION", region.clone()),
            ("AWS_DEFAULT_REGION", region.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            ("COSTOP_TABLE", self.world.table.clone()),
            ("COSTOP_CLUSTER", self.scenario.cluster.name.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Forget every AWS resource in moto (`/moto-api/reset`); kubesim is left as it is.
    pub async fn reset_aws(&self) -> Result<(), BedError> {
        self.moto.reset().await
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        // Stop polling before moto goes; kubesim's and moto's own drops follow.
        self.link.abort();
    }
}

/// An SDK config for a moto endpoint: fixed test credentials, the given region.
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

/// The instance id of a Node, from `spec.providerID` (`aws:///<az>/<instance-id>`), by the
/// core's rule.
pub fn node_instance_id(node: &Value) -> Option<&str> {
    node.pointer("/spec/providerID")
        .and_then(Value::as_str)
        .and_then(costop_core::facts::instance_id_from_provider_id)
}

/// Whether a Node's Ready condition is True.
pub fn node_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

fn name(o: &Value) -> &str {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
}

fn ns_name(o: &Value) -> String {
    match o.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{ns}/{}", name(o)),
        None => name(o).to_string(),
    }
}
