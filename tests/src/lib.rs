//! End-to-end test support: one [`Harness`] trait, two worlds. [`FastHarness`] runs costop's
//! handler with in-memory AWS fakes and kubesim (in-process, reached through the real kube
//! adapter over loopback); [`BedHarness`] runs it with the real adapters against moto and kubesim
//! (the local bed). Test bodies are generic over the harness and [`on_both!`] runs each body in
//! both worlds, every test on its own ports and state.

pub mod events;
pub mod fast;
pub mod upstream;

use std::future::Future;
use std::time::{Duration, Instant};

use costop_app::{Fallback, Handler, InterruptionPorts, Keeper, KeeperPorts};
use costop_bed::{Bed, LifecycleCall, Scenario};
use costop_core::Config;
use kubesim::Simulator;
use kubesim::resources;
use kubesim::store::ListOptions;
use serde_json::Value;

pub use fast::FastHarness;

/// What a test needs set up: a scenario and extra `COSTOP_*` settings.
#[derive(Clone)]
pub struct Setup {
    pub scenario: Scenario,
    pub env: Vec<(String, String)>,
}

impl Setup {
    /// The default scenario, sped up for tests.
    pub fn default_scenario() -> Self {
        let mut scenario = Scenario::default_scenario();
        scenario.time_scale = 50.0;
        Self {
            scenario,
            env: Vec::new(),
        }
    }
    pub fn with_env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
    /// Add Kubernetes manifests to the scenario's workloads.
    pub fn with_manifests(mut self, yaml: &str) -> Self {
        self.scenario
            .workloads
            .0
            .push(costop_bed::scenario::Workload::Yaml(yaml.to_string()));
        self
    }
}

/// A world costop runs in, for tests.
pub trait Harness: Sized + Send + Sync {
    type W: InterruptionPorts + KeeperPorts;
    fn start(setup: Setup) -> impl Future<Output = Self> + Send;
    fn handler(&self) -> &Handler<Self::W>;
    /// The keeper, over its own world sharing the same AWS state and clusters.
    fn keeper(&self) -> &Keeper<Self::W>;
    /// Launch a running spot instance like `instance_id` (same type, zone, tags, so its node
    /// joins the same group): spot capacity coming back. Its id.
    fn launch_spot_like(&self, instance_id: &str) -> impl Future<Output = String> + Send;
    fn sim(&self) -> &Simulator;
    /// `fakes` or `bed`, for messages.
    fn flavor(&self) -> &'static str;
    /// Registered targets (instance ids or IPs) of a target group, by scenario name.
    fn target_ids(&self, target_group: &str) -> impl Future<Output = Vec<String>> + Send;
    /// Register a target (an instance id or an IP) in a target group, by scenario name, on the
    /// group's port: a replacement coming into service.
    fn register_target(&self, target_group: &str, id: &str) -> impl Future<Output = ()> + Send;
    /// Launch a running instance tagged for another cluster; its id.
    fn foreign_instance(&self) -> impl Future<Output = String> + Send;
    /// How many items the table holds.
    fn table_items(&self) -> impl Future<Output = usize> + Send;
    /// Give `asg` a terminate lifecycle hook named `hook` (default result `CONTINUE`).
    fn put_terminate_hook(
        &self,
        asg: &str,
        hook: &str,
        heartbeat_timeout_seconds: i32,
    ) -> impl Future<Output = ()> + Send;
    /// Every lifecycle heartbeat and completion Auto Scaling received, oldest first: on the bed
    /// as the AWS front recorded them, on the fakes as `FakeAsg` did.
    fn lifecycle_calls(&self) -> Vec<LifecycleCall>;
    /// The events the keeper handed to the interruption function since the last call (in
    /// process on both worlds, as moto runs no Lambda), for the test to deliver.
    fn handed_off(&self) -> Vec<Value>;
    /// The fallback function over this world's queue, its upstream at `upstream` (the setup's
    /// other settings).
    fn fallback(&self, upstream: &str) -> Fallback<Self::W>;
    /// The keeper over this world (same queue and table), its upstream at `upstream`.
    fn keeper_to(&self, upstream: &str) -> Keeper<Self::W>;
    /// The listener rules whose forward costop set itself (ModifyRule, ModifyListener), by
    /// ARN, where the world records it: the fakes do; on the bed moto keeps no such record
    /// (`None`).
    fn rules_set_directly(&self) -> Option<Vec<String>>;
    /// How many items the fallback's queue holds (writes, receipts, keys, counters: on the bed
    /// every item of the queue table).
    fn queue_items(&self) -> impl Future<Output = usize> + Send;
    /// A second load balancer before the same pods, internal: its own target group `name`
    /// holding `ips` (IP targets on port 8080, kept by no controller) and a listener whose
    /// default rule forwards to it.
    fn add_internal_load_balancer(
        &self,
        name: &str,
        ips: &[String],
    ) -> impl Future<Output = ()> + Send;
}

/// Run `manifests` with every pod landing on `node`: the other nodes are cordoned while the pods
/// are scheduled, then uncordoned, so the evicted pods have somewhere to go.
pub async fn pin_to<H: Harness>(h: &H, node_name: &str, manifests: &str, expect_pods: usize) {
    let store = h.sim().store();
    let (nodes, _) = store.list(&resources::NODES, None, &ListOptions::default());
    let others: Vec<String> = nodes
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .filter(|n| *n != node_name)
        .map(str::to_string)
        .collect();
    let set = |unschedulable: bool| {
        for n in &others {
            store
                .modify(&resources::NODES, None, n, |o| {
                    o["spec"]["unschedulable"] = serde_json::json!(unschedulable);
                    Ok(())
                })
                .expect("cordon toggles");
        }
    };
    set(true);
    h.sim().apply_yaml(manifests).expect("manifests apply");
    eventually("pinned pods to run", Duration::from_secs(30), || {
        pods_on(h.sim(), node_name)
            .iter()
            .filter(|p| {
                p["metadata"]["labels"]["pinned"] == "true" && p["status"]["phase"] == "Running"
            })
            .count()
            >= expect_pods
    })
    .await;
    set(false);
}

/// Settings every test world uses on top of the setup's.
/// The timeline an interruption recorded, in the table's order (entries that do not decode are
/// left out).
pub async fn timeline<H: Harness>(
    h: &H,
    interruption_id: &str,
) -> Vec<costop_core::record::TimelineEntry> {
    costop_app::handler::read::timeline(
        costop_app::HasRecords::records(h.handler().world()),
        interruption_id,
    )
    .await
    .expect("the timeline reads")
    .iter()
    .filter_map(|i| costop_core::record::TimelineEntry::from_item(i).ok())
    .collect()
}

/// An HTTP IP target group on port 8080 for a scenario, bound to `service` (the controller
/// stand-in keeps it) or to nothing, with the load balancer's default health checks.
pub fn ip_target_group(
    name: &str,
    service: Option<costop_bed::scenario::ServiceRef>,
) -> costop_bed::scenario::TargetGroup {
    costop_bed::scenario::TargetGroup {
        name: name.into(),
        port: 8080,
        protocol: costop_bed::scenario::Protocol::Http,
        target_type: costop_bed::scenario::TargetType::Ip,
        node_groups: Vec::new(),
        service,
        health_check_interval_seconds: None,
        healthy_threshold_count: None,
        unhealthy_threshold_count: None,
        deregistration_delay_seconds: None,
    }
}

/// A setting's value that names a scenario target group, `target-group:<name>`, becomes that
/// group's ARN in each world (moto's ARNs are only known once the bed is seeded).
pub const TARGET_GROUP_VALUE: &str = "target-group:";

pub fn config(
    base: Vec<(String, String)>,
    setup: &Setup,
    arn_of: impl Fn(&str) -> Option<String>,
) -> Config {
    let resolved = setup
        .env
        .iter()
        .map(|(k, v)| match v.strip_prefix(TARGET_GROUP_VALUE) {
            Some(name) => (
                k.clone(),
                arn_of(name).unwrap_or_else(|| panic!("no target group {name} in the scenario")),
            ),
            None => (k.clone(), v.clone()),
        });
    Config::from_env(base.into_iter().chain(resolved)).expect("test config is valid")
}

/// How many items a bed's queue table holds (every item: writes, receipts, keys, counters).
pub async fn queue_items_on(bed: &costop_bed::Bed) -> usize {
    let out = bed
        .dynamodb()
        .scan()
        .table_name(&bed.world().queue_table)
        .send()
        .await
        .expect("scan the queue table");
    out.count() as usize
}

/// Poll `f` until it holds or `timeout` passes (then panic with `what`).
pub async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Wait until a node is Ready and every pod Running (none Pending, none terminating), or panic
/// naming what is not: each pod with its phase, node and conditions, so a slow start can be told
/// from a stuck one.
pub async fn settle(sim: &Simulator, timeout: Duration) {
    let t0 = Instant::now();
    loop {
        let left = unsettled(sim);
        if left.is_empty() {
            return;
        }
        assert!(
            t0.elapsed() < timeout,
            "timed out after {timeout:?} waiting for the cluster to settle; not yet:\n{}",
            left.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// What keeps the cluster from settling, one line each (empty once settled).
pub fn unsettled(sim: &Simulator) -> Vec<String> {
    let (nodes, _) = sim
        .store()
        .list(&resources::NODES, None, &ListOptions::default());
    let (pods, _) = sim
        .store()
        .list(&resources::PODS, None, &ListOptions::default());
    let mut out = Vec::new();
    if !nodes.iter().any(costop_bed::node_ready) {
        out.push(format!("no node Ready ({} nodes)", nodes.len()));
    }
    if pods.is_empty() {
        out.push("no pods".to_string());
    }
    for p in &pods {
        let phase = p.pointer("/status/phase").and_then(Value::as_str);
        let deleting = p["metadata"].get("deletionTimestamp").is_some();
        if phase != Some("Running") || deleting {
            out.push(format!(
                "pod {}/{}: phase {phase:?}, node {}, deleting {deleting}, conditions {}",
                p["metadata"]["namespace"].as_str().unwrap_or(""),
                p["metadata"]["name"].as_str().unwrap_or(""),
                p["spec"]["nodeName"],
                p["status"]["conditions"],
            ));
        }
    }
    out
}

/// Ready spot nodes: (instance id, node name), by node name.
pub fn spot_nodes(sim: &Simulator) -> Vec<(String, String)> {
    let (nodes, _) = sim
        .store()
        .list(&resources::NODES, None, &ListOptions::default());
    nodes
        .iter()
        .filter(|n| {
            n.pointer("/metadata/labels/eks.amazonaws.com~1capacityType")
                .and_then(Value::as_str)
                == Some("SPOT")
        })
        .filter(|n| costop_bed::node_ready(n))
        .filter_map(|n| {
            Some((
                costop_bed::node_instance_id(n)?.to_string(),
                n["metadata"]["name"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The node object.
pub fn node(sim: &Simulator, name: &str) -> Value {
    sim.store()
        .get(&resources::NODES, None, name)
        .expect("node exists")
}

/// Pods bound to `node` (all namespaces), as objects.
pub fn pods_on(sim: &Simulator, node: &str) -> Vec<Value> {
    let (pods, _) = sim
        .store()
        .list(&resources::PODS, None, &ListOptions::default());
    pods.into_iter()
        .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
        .collect()
}

/// A node's InternalIP (the instance's private IP).
pub fn node_ip(sim: &Simulator, name: &str) -> Option<String> {
    node(sim, name)
        .pointer("/status/addresses")
        .and_then(Value::as_array)?
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str().map(str::to_string))
}

/// `namespace/name` of a pod object.
pub fn pod_ref(p: &Value) -> String {
    format!(
        "{}/{}",
        p["metadata"]["namespace"].as_str().unwrap_or(""),
        p["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// Whether a pod is owned by a DaemonSet.
pub fn is_daemonset_pod(p: &Value) -> bool {
    p.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|o| o.iter().any(|r| r["kind"] == "DaemonSet"))
}

/// The bed world: real adapters against moto and kubesim.
pub struct BedHarness {
    pub bed: Bed,
    handler: Handler<costop_adapters::AwsWorld>,
    keeper: Keeper<costop_adapters::AwsWorld>,
    handoffs: costop_app::HandoffQueue,
}

impl Harness for BedHarness {
    type W = costop_adapters::AwsWorld;

    async fn start(setup: Setup) -> Self {
        let bed = Bed::start(setup.scenario.clone())
            .await
            .expect("bed starts");
        bed.wait_ready(Duration::from_secs(180))
            .await
            .expect("bed settles");
        let config = config(bed.env(), &setup, |name| {
            bed.world().target_groups.get(name).cloned()
        });
        let world = || {
            let access = costop_adapters::ClusterAccess::kubeconfig_file(bed.kubeconfig_path())
                .expect("kubeconfig");
            costop_adapters::AwsWorld::new(bed.aws_config(), &config, access, Default::default())
        };
        let handoffs = costop_app::HandoffQueue::default();
        let (handler, keeper) = (
            Handler::new(world(), config.clone()),
            Keeper::new(world().with_handoff_queue(handoffs.clone()), config),
        );
        Self {
            handler,
            keeper,
            bed,
            handoffs,
        }
    }
    fn handler(&self) -> &Handler<Self::W> {
        &self.handler
    }
    fn keeper(&self) -> &Keeper<Self::W> {
        &self.keeper
    }
    async fn launch_spot_like(&self, instance_id: &str) -> String {
        use aws_sdk_ec2::types::{
            InstanceMarketOptionsRequest, MarketType, ResourceType, TagSpecification,
        };
        let ec2 = self.bed.ec2();
        let out = ec2
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .expect("describe");
        let source = out.reservations()[0].instances()[0].clone();
        let zone = source
            .placement()
            .and_then(|p| p.availability_zone())
            .expect("zone")
            .to_string();
        let w = self.bed.world();
        let tags: Vec<_> = source
            .tags()
            .iter()
            .filter(|t| !t.key().unwrap_or("aws:").starts_with("aws:"))
            .cloned()
            .collect();
        let out = ec2
            .run_instances()
            .image_id(&w.ami_id)
            .instance_type(source.instance_type().expect("type").clone())
            .subnet_id(&w.subnets[&zone])
            .min_count(1)
            .max_count(1)
            .instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .build(),
            )
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(tags))
                    .build(),
            )
            .send()
            .await
            .expect("run instance");
        out.instances()[0].instance_id().expect("id").to_string()
    }
    fn sim(&self) -> &Simulator {
        self.bed.sim()
    }
    fn flavor(&self) -> &'static str {
        "bed"
    }
    async fn register_target(&self, target_group: &str, id: &str) {
        let arn = &self.bed.world().target_groups[target_group];
        self.bed
            .elbv2()
            .register_targets()
            .target_group_arn(arn)
            .targets(
                aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                    .id(id)
                    .build(),
            )
            .send()
            .await
            .expect("target registered");
    }
    async fn add_internal_load_balancer(&self, name: &str, ips: &[String]) {
        use aws_sdk_elasticloadbalancingv2::types::{
            Action, ActionTypeEnum, LoadBalancerSchemeEnum, ProtocolEnum, TargetDescription,
            TargetTypeEnum,
        };
        let elb = self.bed.elbv2();
        let world = self.bed.world();
        let group = elb
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .vpc_id(&world.vpc_id)
            .target_type(TargetTypeEnum::Ip)
            .send()
            .await
            .expect("target group created");
        let group = group.target_groups()[0]
            .target_group_arn()
            .expect("a group ARN")
            .to_owned();
        elb.register_targets()
            .target_group_arn(&group)
            .set_targets(Some(
                ips.iter()
                    .map(|ip| TargetDescription::builder().id(ip).port(8080).build())
                    .collect(),
            ))
            .send()
            .await
            .expect("targets registered");
        let lb = elb
            .create_load_balancer()
            .name(name)
            .scheme(LoadBalancerSchemeEnum::Internal)
            .set_subnets(Some(world.subnets.values().cloned().collect()))
            .send()
            .await
            .expect("load balancer created");
        elb.create_listener()
            .load_balancer_arn(lb.load_balancers()[0].load_balancer_arn().expect("an ARN"))
            .protocol(ProtocolEnum::Http)
            .port(80)
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(&group)
                    .build(),
            )
            .send()
            .await
            .expect("listener created");
    }
    async fn target_ids(&self, target_group: &str) -> Vec<String> {
        let arn = self
            .bed
            .world()
            .target_groups
            .get(target_group)
            .expect("target group in scenario");
        let out = self
            .bed
            .elbv2()
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .expect("describe target health");
        out.target_health_descriptions()
            .iter()
            .filter_map(|d| d.target().and_then(|t| t.id()).map(str::to_string))
            .collect()
    }
    async fn foreign_instance(&self) -> String {
        use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
        let w = self.bed.world();
        let subnet = w.subnets.values().next().expect("a subnet");
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .tags(
                Tag::builder()
                    .key("eks:cluster-name")
                    .value("someone-elses")
                    .build(),
            )
            .tags(
                Tag::builder()
                    .key("kubernetes.io/cluster/someone-elses")
                    .value("owned")
                    .build(),
            )
            .build();
        let out = self
            .bed
            .ec2()
            .run_instances()
            .image_id(&w.ami_id)
            .instance_type(InstanceType::M5Large)
            .subnet_id(subnet)
            .min_count(1)
            .max_count(1)
            .tag_specifications(tags)
            .send()
            .await
            .expect("run instance");
        out.instances()[0].instance_id().expect("id").to_string()
    }
    async fn table_items(&self) -> usize {
        let out = self
            .bed
            .dynamodb()
            .scan()
            .table_name(&self.bed.world().table)
            .send()
            .await
            .expect("scan");
        out.count() as usize
    }
    async fn put_terminate_hook(&self, asg: &str, hook: &str, heartbeat_timeout_seconds: i32) {
        self.bed
            .autoscaling()
            .put_lifecycle_hook()
            .auto_scaling_group_name(asg)
            .lifecycle_hook_name(hook)
            .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
            .heartbeat_timeout(heartbeat_timeout_seconds)
            .default_result("CONTINUE")
            .send()
            .await
            .expect("moto takes the hook");
    }
    fn lifecycle_calls(&self) -> Vec<LifecycleCall> {
        self.bed.lifecycle_calls()
    }
    fn handed_off(&self) -> Vec<Value> {
        self.handoffs.take()
    }
    fn fallback(&self, upstream: &str) -> Fallback<Self::W> {
        let config = self.with_upstream(upstream);
        Fallback::new(self.world(&config), config)
    }
    fn keeper_to(&self, upstream: &str) -> Keeper<Self::W> {
        let config = self.with_upstream(upstream);
        Keeper::new(
            self.world(&config)
                .with_handoff_queue(self.handoffs.clone()),
            config,
        )
    }
    fn rules_set_directly(&self) -> Option<Vec<String>> {
        None
    }
    async fn queue_items(&self) -> usize {
        queue_items_on(&self.bed).await
    }
}

impl BedHarness {
    fn with_upstream(&self, upstream: &str) -> Config {
        let mut config = self.keeper.config().clone();
        config.fallback_upstream = upstream.to_owned();
        config
    }
    fn world(&self, config: &Config) -> costop_adapters::AwsWorld {
        let access = costop_adapters::ClusterAccess::kubeconfig_file(self.bed.kubeconfig_path())
            .expect("kubeconfig");
        costop_adapters::AwsWorld::new(self.bed.aws_config(), config, access, Default::default())
    }
}

/// Run one generic test body in both worlds: `on_both!(body, setup)` makes the tests
/// `body::on_fakes` and `body::on_the_bed`, each with its own harness from `setup`.
#[macro_export]
macro_rules! on_both {
    ($body:ident, $setup:expr) => {
        mod $body {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_fakes() {
                let h = <$crate::FastHarness as $crate::Harness>::start($setup).await;
                super::$body(h).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_the_bed() {
                let h = <$crate::BedHarness as $crate::Harness>::start($setup).await;
                super::$body(h).await;
            }
        }
    };
}
