//! The local bed: moto (AWS) behind the AWS front, plus the kubesim cluster, seeded from a
//! scenario and linked so that EC2 instance state drives the cluster's Nodes.
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
//! Every bed has its own moto servers (one for DynamoDB, one for the other services), AWS
//! front and kubesim on free loopback ports; dropping it stops them all. The front answers the
//! Auto Scaling lifecycle calls moto lacks and forwards everything else to moto (see
//! [`front`]); the bed's clients and [`Bed::env`] send Auto Scaling to it, and DynamoDB to its
//! own moto (see [`sdk`]).

pub mod alb;
pub mod error;
pub mod fallback;
pub mod front;
pub mod lambda;
pub mod lbc;
pub mod link;
pub mod moto;
pub mod net;
pub mod process;
pub mod scenario;
pub mod sdk;
pub mod seed;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use kubesim::store::ListOptions;
use kubesim::{SimConfig, Simulator, resources};
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinHandle;

pub use error::BedError;
pub use front::{AwsFront, LifecycleAction, LifecycleCall};
pub use link::Ec2Link;
pub use moto::Moto;
pub use scenario::Scenario;
pub use sdk::sdk_config;
pub use seed::SeededWorld;

/// How long each start phase took (real seconds).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StartTimings {
    /// moto and the AWS front in front of it.
    pub moto: f64,
    pub kubesim: f64,
    pub seed: f64,
    pub workloads: f64,
    pub total: f64,
}

/// What a bed may be started with besides its scenario.
#[derive(Debug, Default)]
pub struct BedOptions {
    /// Where the ALB stand-in sends one record per request (dropped when full).
    pub alb_access_log: Option<tokio::sync::mpsc::Sender<albsim::AccessRecord>>,
    /// The fallback function's binary, for a scenario that deploys it (default: `costop-fallback`
    /// beside the running executable, see [`lambda::beside_current_exe`]).
    pub fallback_binary: Option<PathBuf>,
}

/// A running bed. Dropping it stops the link, kubesim, the front and both motos, and removes
/// its temp dir.
pub struct Bed {
    link: JoinHandle<()>,
    /// The load-balancer controller stand-in, when the scenario binds target groups.
    lbc: Option<JoinHandle<()>>,
    /// Pods that answer, and the kube-proxy stand-in.
    pods: JoinHandle<()>,
    kube_proxy: JoinHandle<()>,
    /// The stores of the services the pods' apps write to.
    stores: net::pods::Stores,
    /// The fallback function's processes, when the scenario deploys it (dropped before the
    /// ALB).
    fallback: Option<lambda::LambdaService>,
    /// The ALB stand-in, when the scenario asks for it.
    alb: Option<alb::BedAlb>,
    ec2_link: Arc<Ec2Link>,
    sim: Arc<Simulator>,
    front: AwsFront,
    moto: Moto,
    /// DynamoDB's own moto process.
    dynamodb: Moto,
    sdk: SdkConfig,
    scenario: Scenario,
    world: SeededWorld,
    kubeconfig: PathBuf,
    timings: StartTimings,
    /// This bed's pod addresses, held until it is dropped.
    _pod_network: net::pod_network::PodNetwork,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Bed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bed")
            .field("scenario", &self.scenario.name)
            .field("moto", &self.moto)
            .field("front", &self.front)
            .field("kubesim", &self.sim.url())
            .finish()
    }
}

impl Bed {
    /// Start moto and kubesim, seed AWS, link EC2 to the nodes and apply the workloads. Returns
    /// without waiting for nodes and pods (see [`Bed::wait_ready`]).
    pub async fn start(scenario: Scenario) -> Result<Self, BedError> {
        Self::start_with(scenario, BedOptions::default()).await
    }

    /// [`Bed::start`], with options (the ALB stand-in's access log, for the traffic
    /// benchmark).
    pub async fn start_with(scenario: Scenario, options: BedOptions) -> Result<Self, BedError> {
        scenario.validate()?;
        let t0 = Instant::now();
        let mut timings = StartTimings::default();

        // DynamoDB on a moto process of its own (see [`sdk`]); the two start side by side.
        let dynamodb_options = moto::MotoOptions {
            transaction_window: Duration::from_secs_f64(
                scenario.delays.dynamodb_transaction / scenario.time_scale,
            ),
        };
        let start_task =
            |e: tokio::task::JoinError| BedError::Moto(format!("start task failed: {e}"));
        let (moto, dynamodb) = tokio::join!(
            tokio::task::spawn_blocking(Moto::start),
            tokio::task::spawn_blocking(move || Moto::start_configured(dynamodb_options)),
        );
        let (moto, dynamodb) = (moto.map_err(start_task)??, dynamodb.map_err(start_task)??);
        let region = &scenario.cluster.region;
        let front = AwsFront::start(
            &moto.endpoint_url(),
            &sdk_config(&moto.endpoint_url(), region).await,
        )
        .await?;
        timings.moto = t0.elapsed().as_secs_f64();

        let t = Instant::now();
        let pod_network = net::pod_network::PodNetwork::claim()?;
        let sim = Arc::new(
            Simulator::start(SimConfig {
                cluster_name: scenario.cluster.name.clone(),
                time_scale: scenario.time_scale,
                node_boot_seconds: scenario.delays.node_boot,
                pod_start_seconds: scenario.delays.pod_start,
                pod_stop_seconds: scenario.delays.pod_stop,
                node_monitor_grace_seconds: scenario.delays.node_monitor_grace,
                pod_network: pod_network.cidr(),
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
        let endpoints = sdk::Endpoints {
            moto: moto.endpoint_url(),
            dynamodb: dynamodb.endpoint_url(),
            front: front.url(),
        };
        let sdk = sdk::from_env_lines(&sdk::aws_env(&endpoints, region), region).await;
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
        let scale = scenario.time_scale.max(f64::MIN_POSITIVE);
        let running_nodes = running_nodes(sim.clone(), ec2_link.clone());
        let stores = net::pods::Stores::default();
        let pods = net::pods::spawn(sim.clone(), stores.clone(), running_nodes.clone(), scale);
        let kube_proxy = net::kube_proxy::spawn(
            sim.clone(),
            running_nodes,
            Duration::from_secs_f64(scenario.delays.kube_proxy_sync / scale),
        );
        let alb = match (&scenario.load_balancer, &world.load_balancer_arn) {
            (Some(lb), Some(arn)) if lb.stand_in => Some(
                alb::start(
                    aws_sdk_elasticloadbalancingv2::Client::new(
                        &sdk::sdk_config(&moto.endpoint_url(), region).await,
                    ),
                    arn.clone(),
                    ec2_link.clone(),
                    &front,
                    scale,
                    options.alb_access_log.clone(),
                    // The functions behind it run with their configured timeout.
                    world
                        .fallback
                        .iter()
                        .zip(lb.fallback.iter())
                        .map(|(seeded, f)| {
                            (
                                seeded.function_arn.clone(),
                                Duration::from_secs(u64::from(f.timeout_seconds)),
                            )
                        })
                        .collect(),
                )
                .await?,
            ),
            _ => None,
        };
        let fallback = match (&alb, &world.fallback, &scenario.load_balancer) {
            (Some(alb), Some(seeded), Some(lb)) => {
                let f = lb.fallback.as_ref().ok_or_else(|| {
                    BedError::Seed("a seeded fallback without its scenario section".into())
                })?;
                Some(
                    start_fallback(
                        alb,
                        seeded,
                        f,
                        &options,
                        &world.queue_table,
                        &endpoints,
                        region,
                    )
                    .await?,
                )
            }
            _ => None,
        };
        let bindings = lbc_bindings(&scenario, &world);
        let lbc = (!bindings.is_empty()).then(|| {
            lbc::spawn(
                sim.clone(),
                aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
                bindings,
                world.listener_arn.clone(),
                Duration::from_secs_f64(
                    scenario.delays.lb_controller_reconcile
                        / scenario.time_scale.max(f64::MIN_POSITIVE),
                ),
            )
        });
        let mut bed = Bed {
            link,
            lbc,
            pods,
            kube_proxy,
            stores,
            fallback,
            alb,
            ec2_link,
            sim,
            front,
            moto,
            dynamodb,
            sdk,
            scenario,
            world,
            kubeconfig,
            timings: StartTimings::default(),
            _pod_network: pod_network,
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

    /// The moto endpoint (`http://127.0.0.1:PORT`): every service but DynamoDB and the
    /// front's.
    pub fn endpoint_url(&self) -> String {
        self.moto.endpoint_url()
    }
    pub fn moto(&self) -> &Moto {
        &self.moto
    }
    /// DynamoDB's moto endpoint (`AWS_ENDPOINT_URL_DYNAMODB`).
    pub fn dynamodb_endpoint_url(&self) -> String {
        self.dynamodb.endpoint_url()
    }
    /// DynamoDB's moto process.
    pub fn dynamodb_moto(&self) -> &Moto {
        &self.dynamodb
    }
    /// The AWS front (`AWS_ENDPOINT_URL_AUTO_SCALING`).
    pub fn front(&self) -> &AwsFront {
        &self.front
    }
    /// The URL of the ALB stand-in's listener (`http://127.0.0.1:PORT`), when it runs.
    pub fn alb_url(&self) -> Option<String> {
        let port = self.scenario.load_balancer.as_ref()?.listener_port;
        self.alb.as_ref()?.url(port)
    }

    /// The URL of the fallback's upstream, the internal listener, when the scenario deploys
    /// the fallback and the stand-in runs.
    pub fn upstream_url(&self) -> Option<String> {
        let port = self.world.fallback.as_ref()?.upstream_listener_port;
        self.alb.as_ref()?.url(port)
    }

    /// The fallback's Lambda service stand-in, when it runs.
    pub fn fallback(&self) -> Option<&lambda::LambdaService> {
        self.fallback.as_ref()
    }

    /// The ALB stand-in, when it runs.
    pub fn alb(&self) -> Option<&alb::BedAlb> {
        self.alb.as_ref()
    }

    /// The stores the pods' apps write to, by name (`<namespace>/<app label>` unless a pod's
    /// `bed.costop.io/store` names another).
    pub fn stores(&self) -> &net::pods::Stores {
        &self.stores
    }

    pub fn lifecycle_calls(&self) -> Vec<LifecycleCall> {
        self.front.lifecycle_calls()
    }
    /// Path of a kubeconfig for kubesim (in the bed's temp dir).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }
    /// SDK config with the endpoints of [`Bed::env`] (moto, and the front for Auto Scaling),
    /// test credentials and the scenario's region.
    pub fn aws_config(&self) -> &SdkConfig {
        &self.sdk
    }
    /// A new SDK config like [`Bed::aws_config`], with its own connections (a cold start's).
    pub async fn new_aws_config(&self) -> SdkConfig {
        let region = &self.scenario.cluster.region;
        sdk::from_env_lines(&self.aws_env(), region).await
    }
    fn aws_env(&self) -> Vec<(String, String)> {
        sdk::aws_env(
            &sdk::Endpoints {
                moto: self.endpoint_url(),
                dynamodb: self.dynamodb_endpoint_url(),
                front: self.front.url(),
            },
            &self.scenario.cluster.region,
        )
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

    /// The environment a child process (costop's Lambdas, kubectl, the aws CLI) needs: the
    /// kubeconfig, the AWS endpoints (moto; the front for Auto Scaling), credentials and region,
    /// and costop's tables and cluster.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            "KUBECONFIG".to_owned(),
            self.kubeconfig.display().to_string(),
        )];
        env.extend(self.aws_env());
        env.push(("COSTOP_TABLE".to_owned(), self.world.table.clone()));
        env.push((
            "COSTOP_QUEUE_TABLE".to_owned(),
            self.world.queue_table.clone(),
        ));
        env.push((
            "COSTOP_CLUSTER".to_owned(),
            self.scenario.cluster.name.clone(),
        ));
        // With the fallback deployed, costop shifts traffic to it and replays through its
        // upstream, as the template's `ShiftTraffic` sets them.
        if let Some(f) = &self.world.fallback {
            env.push((
                "COSTOP_FALLBACK_TARGET_GROUP".to_owned(),
                f.target_group_arn.clone(),
            ));
            if let Some(url) = self.upstream_url() {
                env.push(("COSTOP_FALLBACK_UPSTREAM".to_owned(), url));
            }
        }
        env
    }

    /// Forget every AWS resource in both moto processes (`/moto-api/reset`); kubesim is left
    /// as it is.
    pub async fn reset_aws(&self) -> Result<(), BedError> {
        self.moto.reset().await?;
        self.dynamodb.reset().await
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        // Stop polling before moto goes; kubesim's and moto's own drops follow.
        self.link.abort();
        if let Some(lbc) = &self.lbc {
            lbc.abort();
        }
        self.pods.abort();
        self.kube_proxy.abort();
    }
}

/// The nodes whose instances run, by node name (kube-proxy and the pods' apps live there).
fn running_nodes(sim: Arc<Simulator>, link: Arc<Ec2Link>) -> net::kube_proxy::RunningNodes {
    Arc::new(move || {
        let running = link.running_instances();
        sim.store()
            .list(&resources::NODES, None, &ListOptions::default())
            .0
            .iter()
            .filter(|n| node_instance_id(n).is_some_and(|id| running.contains(id)))
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    })
}

/// The scenario's target groups bound to a Service, for the controller stand-in.
/// Runs the fallback function behind the ALB stand-in: its processes on the function's runtime
/// API, its upstream the internal listener.
async fn start_fallback(
    alb: &alb::BedAlb,
    seeded: &fallback::SeededFallback,
    f: &scenario::Fallback,
    options: &BedOptions,
    queue_table: &str,
    endpoints: &sdk::Endpoints,
    region: &str,
) -> Result<lambda::LambdaService, BedError> {
    let api = alb.alb().runtime_api(&seeded.function_arn).ok_or_else(|| {
        BedError::Seed(format!(
            "the ALB stand-in has no runtime API for {}",
            seeded.function_arn
        ))
    })?;
    let upstream = alb.url(seeded.upstream_listener_port).ok_or_else(|| {
        BedError::Seed(format!(
            "the ALB stand-in does not serve the upstream listener {}",
            seeded.upstream_listener_port
        ))
    })?;
    let binary = match &options.fallback_binary {
        Some(b) => b.clone(),
        None => lambda::beside_current_exe("costop-fallback")?,
    };
    let mut env = sdk::aws_env(endpoints, region);
    env.push(("COSTOP_QUEUE_TABLE".to_owned(), queue_table.to_owned()));
    env.extend(fallback::environment(f, &upstream));
    lambda::start(
        api,
        lambda::FunctionSpec {
            binary,
            env,
            max_concurrency: f.max_concurrency as usize,
            per_process: f.environments_per_process as usize,
            cold_start: std::time::Duration::from_millis(u64::from(f.cold_start_ms)),
        },
    )
}

fn lbc_bindings(scenario: &Scenario, world: &SeededWorld) -> Vec<lbc::Binding> {
    scenario
        .target_groups
        .iter()
        .filter_map(|tg| {
            let svc = tg.service.as_ref()?;
            Some(lbc::Binding {
                target_group_arn: world.target_groups.get(&tg.name)?.clone(),
                target_type: tg.target_type,
                namespace: svc.namespace.clone(),
                service: svc.name.clone(),
                port: match &svc.port {
                    scenario::PortRef::Number(n) => lbc::ServicePort::Number(*n),
                    scenario::PortRef::Name(n) => lbc::ServicePort::Name(n.clone()),
                },
            })
        })
        .collect()
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
