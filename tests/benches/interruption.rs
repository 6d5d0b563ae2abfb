//! The interruption benchmark: costop's real adapters against the local bed (moto +
//! kubesim), every port call recorded.
//!
//! 1. Sequential round trips from invocation to the node being cordoned and tainted: cold (a new
//!    function), warm on another spot node, and warm on an instance the function has already seen
//!    (a rebalance recommendation, then the Spot warning for the same instance).
//! 2. A 110-pod drain: time until every eviction is issued, and until the node is drained.
//! 3. 50 simultaneous interruptions of 50 nodes × 30 pods, each its own handler (like 50 Lambda
//!    containers; cold, or with `--warm` each having handled a rebalance recommendation for its
//!    instance first): time until every node is cordoned, until every eviction is issued, the
//!    taint success rate, and where the time goes (AWS vs Kubernetes calls).
//!
//! Run: `cargo bench -p costop-tests --bench interruption` (`-- --quick` for a smaller run; `--part
//! 1|2|3` for one part; `--nodes N` for part 3's fleet size; `--warm` for part 3's warm fleet;
//! `--aws-in-memory` for part 3 with AWS served by the in-memory fakes (moto out of the picture);
//! `--verbose` lists every call of part 1). `COSTOP_*` variables in the
//! environment override the handler's configuration (e.g. `COSTOP_KUBE_QPS`). BENCHMARKS.md
//! records the figures.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use costop_adapters::{AwsWorld, ClusterAccess};
use costop_app::fakes::{FakeAsg, FakeEc2, FakeElb, FakeRecords};
use costop_app::ports::{
    Asg, Claim, Clusters, Ec2, Elb, EvictOutcome, HasAsg, HasClusters, HasEc2, HasElb, HasRecords,
    InterruptionPorts, Kube, KubeOf, LeaseClaim, PortError, Records,
};
use costop_app::{Handler, Mode, Outcome};
use costop_bed::{Bed, Scenario};
use costop_core::Config;
use costop_core::facts::{
    InstanceFacts, LifecycleHookFacts, NodeFacts, PodFacts, RegisteredTarget, TargetGroupFacts,
    TargetServing,
};
use costop_core::kube::Taint;
use costop_core::plan::action::{
    CordonAndTaint, DeregisterTargets, EvictPod, LifecycleRef, LifecycleResult, PodUid,
    RecordEvent, RestoreNode,
};
use costop_core::record::{Item, Key, StandbyLease, Update};
use costop_core::shift::{RuleFacts, WeightedGroup};
use costop_core::standby::{TagChange, TolerationPatch};
use costop_tests::fast::FastWorld;
use costop_tests::{events, pods_on, spot_nodes};
use kubesim::resources;
use serde_json::{Value, json};

// ------------------------------------------------------------------------------------------------
// The recorder: every port call as (name, side, start, end).

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Aws,
    Kube,
    /// No request goes out (kubeconfig access: building the client is local).
    Local,
}

#[derive(Debug, Clone)]
struct Call {
    name: &'static str,
    side: Side,
    start: Duration,
    end: Duration,
    /// Sequential HTTP requests the call makes (1 for all but a cold `elb.target_groups`).
    requests: usize,
    /// When the future was first polled (diagnostics: `start` is when the handler asked).
    polled: Duration,
}

impl Call {
    fn ms(&self) -> f64 {
        (self.end - self.start).as_secs_f64() * 1e3
    }
}

struct Recorder {
    t0: Instant,
    calls: Mutex<Vec<Call>>,
}

impl Recorder {
    fn new(t0: Instant) -> Arc<Self> {
        Arc::new(Self {
            t0,
            calls: Mutex::default(),
        })
    }
    /// Time `f` from now (when the handler asks, not when the future is first polled: a future
    /// polled after a sibling's synchronous work would otherwise look like it started late).
    fn time<T>(
        &self,
        name: &'static str,
        side: Side,
        f: impl Future<Output = T>,
    ) -> impl Future<Output = T> {
        let start = self.t0.elapsed();
        async move {
            let polled = self.t0.elapsed();
            let out = f.await;
            let end = self.t0.elapsed();
            let requests = if name == TG_COLD { 2 } else { 1 };
            self.calls.lock().unwrap().push(Call {
                name,
                side,
                start,
                end,
                requests,
                polled,
            });
            out
        }
    }
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

/// Every AWS port of a world, recorded. One type for all of them (their method names differ).
struct Port<W> {
    w: Arc<W>,
    rec: Arc<Recorder>,
    /// When the adapter last listed the target groups (it reuses the list for `GROUP_LIST_TTL`).
    tg_listed: Mutex<Option<Instant>>,
}

/// `elb.target_groups` with the adapter's group list cold: DescribeTargetGroups, then
/// DescribeTargetHealth (per group, in parallel) — two sequential requests.
const TG_COLD: &str = "elb.target_groups(cold)";
/// `costop_adapters::aws::elb::GROUP_LIST_TTL` (not exported).
const GROUP_LIST_TTL: Duration = Duration::from_secs(60);

/// A world whose every port call is recorded.
struct RecWorld<W> {
    port: Port<W>,
}

impl<W: InterruptionPorts + 'static> RecWorld<W> {
    fn new(w: W, rec: Arc<Recorder>) -> Self {
        Self {
            port: Port {
                w: Arc::new(w),
                rec,
                tg_listed: Mutex::default(),
            },
        }
    }
}

impl<W: InterruptionPorts + 'static> HasEc2 for RecWorld<W> {
    type Ec2 = Port<W>;
    fn ec2(&self) -> &Port<W> {
        &self.port
    }
}
impl<W: InterruptionPorts + 'static> HasElb for RecWorld<W> {
    type Elb = Port<W>;
    fn elb(&self) -> &Port<W> {
        &self.port
    }
}
impl<W: InterruptionPorts + 'static> HasAsg for RecWorld<W> {
    type Asg = Port<W>;
    fn asg(&self) -> &Port<W> {
        &self.port
    }
}
impl<W: InterruptionPorts + 'static> HasRecords for RecWorld<W> {
    type Records = Port<W>;
    fn records(&self) -> &Port<W> {
        &self.port
    }
}
impl<W: InterruptionPorts + 'static> HasClusters for RecWorld<W> {
    type Clusters = Port<W>;
    fn clusters(&self) -> &Port<W> {
        &self.port
    }
}

impl<W: InterruptionPorts + 'static> Ec2 for Port<W> {
    fn describe_instances(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<InstanceFacts>, PortError>> + Send {
        self.rec.time(
            "ec2.describe_instances",
            Side::Aws,
            self.w.ec2().describe_instances(ids),
        )
    }
    fn standbys(&self) -> impl Future<Output = Result<Vec<InstanceFacts>, PortError>> + Send {
        self.rec
            .time("ec2.standbys", Side::Aws, self.w.ec2().standbys())
    }
    fn tag_standby(
        &self,
        change: &TagChange,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec.time(
            "ec2.tag_standby",
            Side::Aws,
            self.w.ec2().tag_standby(change),
        )
    }
    fn retype(
        &self,
        instance_id: &str,
        instance_type: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec.time(
            "ec2.retype",
            Side::Aws,
            self.w.ec2().retype(instance_id, instance_type),
        )
    }
    fn start(&self, instance_id: &str) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec
            .time("ec2.start", Side::Aws, self.w.ec2().start(instance_id))
    }
    fn stop(&self, instance_id: &str) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec
            .time("ec2.stop", Side::Aws, self.w.ec2().stop(instance_id))
    }
}

impl<W: InterruptionPorts + 'static> Elb for Port<W> {
    fn target_groups(
        &self,
    ) -> impl Future<Output = Result<Vec<TargetGroupFacts>, PortError>> + Send {
        let mut listed = self.tg_listed.lock().unwrap();
        let cold = listed.is_none_or(|at| at.elapsed() >= GROUP_LIST_TTL);
        if cold {
            *listed = Some(Instant::now());
        }
        let name = if cold { TG_COLD } else { "elb.target_groups" };
        self.rec.time(name, Side::Aws, self.w.elb().target_groups())
    }
    fn deregister(
        &self,
        action: &DeregisterTargets,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec
            .time("elb.deregister", Side::Aws, self.w.elb().deregister(action))
    }
    fn serving(
        &self,
        targets: &DeregisterTargets,
    ) -> impl Future<Output = Result<Vec<(RegisteredTarget, TargetServing)>, PortError>> + Send
    {
        self.rec
            .time("elb.serving", Side::Aws, self.w.elb().serving(targets))
    }
    fn listener_rules(&self) -> impl Future<Output = Result<Vec<RuleFacts>, PortError>> + Send {
        self.rec.time(
            "elb.listener_rules",
            Side::Aws,
            self.w.elb().listener_rules(),
        )
    }
    fn set_forward(
        &self,
        rule: &RuleFacts,
        forward: &[WeightedGroup],
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec.time(
            "elb.set_forward",
            Side::Aws,
            self.w.elb().set_forward(rule, forward),
        )
    }
    fn in_service(
        &self,
        target_group_arn: &str,
    ) -> impl Future<Output = Result<Option<Vec<String>>, PortError>> + Send {
        self.rec.time(
            "elb.in_service",
            Side::Aws,
            self.w.elb().in_service(target_group_arn),
        )
    }
}

impl<W: InterruptionPorts + 'static> Asg for Port<W> {
    fn detach(
        &self,
        asg: &str,
        instance_id: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec.time(
            "asg.detach",
            Side::Aws,
            self.w.asg().detach(asg, instance_id),
        )
    }
    fn heartbeat(&self, hook: &LifecycleRef) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec
            .time("asg.heartbeat", Side::Aws, self.w.asg().heartbeat(hook))
    }
    fn describe_hook(
        &self,
        asg: &str,
        hook: &str,
    ) -> impl Future<Output = Result<Option<LifecycleHookFacts>, PortError>> + Send {
        self.rec.time(
            "asg.describe_hook",
            Side::Aws,
            self.w.asg().describe_hook(asg, hook),
        )
    }
    fn complete(
        &self,
        hook: &LifecycleRef,
        result: LifecycleResult,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec.time(
            "asg.complete",
            Side::Aws,
            self.w.asg().complete(hook, result),
        )
    }
}

impl<W: InterruptionPorts + 'static> Records for Port<W> {
    fn get(&self, key: &Key) -> impl Future<Output = Result<Option<Item>, PortError>> + Send {
        self.rec
            .time("ddb.get", Side::Aws, self.w.records().get(key))
    }
    fn put(&self, item: Item) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec
            .time("ddb.put", Side::Aws, self.w.records().put(item))
    }
    fn claim(
        &self,
        action: &RecordEvent,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Claim, PortError>> + Send {
        self.rec
            .time("ddb.claim", Side::Aws, self.w.records().claim(action, now))
    }
    fn update(&self, update: &Update) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec
            .time("ddb.update", Side::Aws, self.w.records().update(update))
    }
    fn delete(&self, key: &Key) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec
            .time("ddb.delete", Side::Aws, self.w.records().delete(key))
    }
    fn query(&self, pk: &str) -> impl Future<Output = Result<Vec<Item>, PortError>> + Send {
        self.rec
            .time("ddb.query", Side::Aws, self.w.records().query(pk))
    }
    fn query_instance(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Vec<Item>, PortError>> + Send {
        self.rec.time(
            "ddb.query_instance",
            Side::Aws,
            self.w.records().query_instance(instance_id),
        )
    }
    fn put_many(&self, items: Vec<Item>) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec
            .time("ddb.put_many", Side::Aws, self.w.records().put_many(items))
    }
    fn lease_standby(
        &self,
        lease: &StandbyLease,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<LeaseClaim, PortError>> + Send {
        self.rec.time(
            "ddb.lease_standby",
            Side::Aws,
            self.w.records().lease_standby(lease, now),
        )
    }
}

impl<W: InterruptionPorts + 'static> Clusters for Port<W> {
    type Kube = RecKube<KubeOf<W>>;
    async fn connect(&self, cluster: &str) -> Result<Self::Kube, PortError> {
        let inner = self
            .rec
            .time(
                "kube.connect",
                Side::Local,
                self.w.clusters().connect(cluster),
            )
            .await?;
        Ok(RecKube {
            inner,
            rec: self.rec.clone(),
        })
    }
}

#[derive(Clone)]
struct RecKube<K> {
    inner: K,
    rec: Arc<Recorder>,
}

impl<K: Kube> Kube for RecKube<K> {
    fn node_for(
        &self,
        instance: &InstanceFacts,
    ) -> impl Future<Output = Result<Option<NodeFacts>, PortError>> + Send {
        self.rec
            .time("kube.node_for", Side::Kube, self.inner.node_for(instance))
    }
    fn known_node_name(&self, instance_id: &str) -> Option<String> {
        self.inner.known_node_name(instance_id)
    }
    fn refresh_node_index(
        &self,
        max_age: Duration,
    ) -> impl Future<Output = Result<bool, PortError>> + Send {
        self.rec.time(
            "kube.refresh_node_index",
            Side::Kube,
            self.inner.refresh_node_index(max_age),
        )
    }
    fn node(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<NodeFacts>, PortError>> + Send {
        self.rec
            .time("kube.node", Side::Kube, self.inner.node(name))
    }
    fn pods_on(&self, node: &str) -> impl Future<Output = Result<Vec<PodFacts>, PortError>> + Send {
        self.rec
            .time("kube.pods_on", Side::Kube, self.inner.pods_on(node))
    }
    fn ingress(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, PortError>> + Send {
        self.rec.time(
            "kube.ingress",
            Side::Kube,
            self.inner.ingress(namespace, name),
        )
    }
    fn patch_ingress(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec.time(
            "kube.patch_ingress",
            Side::Kube,
            self.inner.patch_ingress(namespace, name, patch),
        )
    }
    fn cordon_and_taint(
        &self,
        action: &CordonAndTaint,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec.time(
            "kube.cordon_and_taint",
            Side::Kube,
            self.inner.cordon_and_taint(action),
        )
    }
    fn set_taints(
        &self,
        node: &str,
        taints: &[Taint],
        resource_version: Option<&str>,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec.time(
            "kube.set_taints",
            Side::Kube,
            self.inner.set_taints(node, taints, resource_version),
        )
    }
    fn restore_node(
        &self,
        restore: &RestoreNode,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec.time(
            "kube.restore_node",
            Side::Kube,
            self.inner.restore_node(restore),
        )
    }
    fn evict(
        &self,
        pod: &EvictPod,
    ) -> impl Future<Output = Result<EvictOutcome, PortError>> + Send {
        self.rec
            .time("kube.evict", Side::Kube, self.inner.evict(pod))
    }
    fn force_delete(&self, pod: &EvictPod) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec.time(
            "kube.force_delete",
            Side::Kube,
            self.inner.force_delete(pod),
        )
    }
    fn nodes(&self) -> impl Future<Output = Result<Vec<NodeFacts>, PortError>> + Send {
        self.rec.time("kube.nodes", Side::Kube, self.inner.nodes())
    }
    fn unbound_pods(&self) -> impl Future<Output = Result<Vec<PodFacts>, PortError>> + Send {
        self.rec
            .time("kube.unbound_pods", Side::Kube, self.inner.unbound_pods())
    }
    fn tolerate(
        &self,
        patch: &TolerationPatch,
    ) -> impl Future<Output = Result<bool, PortError>> + Send {
        self.rec
            .time("kube.tolerate", Side::Kube, self.inner.tolerate(patch))
    }
    fn leave_rotation(&self, pod: &PodUid) -> impl Future<Output = Result<bool, PortError>> + Send {
        self.rec.time(
            "kube.leave_rotation",
            Side::Kube,
            self.inner.leave_rotation(pod),
        )
    }
    fn set_unschedulable(
        &self,
        node: &str,
        unschedulable: bool,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        self.rec.time(
            "kube.set_unschedulable",
            Side::Kube,
            self.inner.set_unschedulable(node, unschedulable),
        )
    }
}

const CORDON: &str = "kube.cordon_and_taint";

/// The longest chain of requests (each starting after the previous one ended) among the calls
/// that ended by the time the node was cordoned, ending with the cordon call. Local calls (no
/// request) are left out. `None` when there was no cordon.
fn critical_path(calls: &[Call]) -> Option<Vec<Call>> {
    let cordon = calls
        .iter()
        .filter(|c| c.name == CORDON)
        .max_by_key(|c| c.end)?
        .clone();
    let mut set: Vec<Call> = calls
        .iter()
        .filter(|c| c.side != Side::Local && c.end <= cordon.end)
        .cloned()
        .collect();
    set.sort_by_key(|c| (c.end, c.start));
    // dp[i]: most sequential requests in a chain ending with set[i]; prev[i]: the call before it.
    let mut dp: Vec<usize> = set.iter().map(|c| c.requests).collect();
    let mut prev = vec![None; set.len()];
    for i in 0..set.len() {
        for j in 0..i {
            // On a tie, the predecessor that ended last (the one that actually gated the call).
            let w = set[i].requests;
            let better = dp[j] + w > dp[i]
                || (dp[j] + w == dp[i] && prev[i].is_some_and(|p: usize| set[j].end > set[p].end));
            if set[j].end <= set[i].start && better {
                dp[i] = dp[j] + w;
                prev[i] = Some(j);
            }
        }
    }
    let last = set
        .iter()
        .rposition(|c| c.name == CORDON && c.end == cordon.end)?;
    let mut chain = vec![set[last].clone()];
    let mut at = last;
    while let Some(p) = prev[at] {
        chain.push(set[p].clone());
        at = p;
    }
    chain.reverse();
    Some(chain)
}

fn show_chain(chain: &[Call], origin: Duration) -> String {
    chain
        .iter()
        .map(|c| {
            format!(
                "{} [{:.1}–{:.1} ms]",
                c.name,
                (c.start.saturating_sub(origin)).as_secs_f64() * 1e3,
                (c.end.saturating_sub(origin)).as_secs_f64() * 1e3
            )
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

// ------------------------------------------------------------------------------------------------
// Set-up helpers.

type BenchHandler = Handler<RecWorld<AwsWorld>>;

fn scenario(file: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(file);
    Scenario::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The handler's configuration: the bed's, then any `COSTOP_*` of this process.
fn config(bed: &Bed) -> Config {
    let own = std::env::vars()
        .filter(|(k, _)| k.starts_with("COSTOP_") && k != "COSTOP_TABLE" && k != "COSTOP_CLUSTER");
    Config::from_env(bed.env().into_iter().chain(own)).expect("valid COSTOP_* settings")
}

/// A new function instance: its own SDK clients (own connection pool) and its own kube client.
async fn cold_handler(bed: &Bed, config: &Config, rec: Arc<Recorder>) -> BenchHandler {
    let sdk = bed.new_aws_config().await;
    let access = ClusterAccess::kubeconfig_file(bed.kubeconfig_path()).expect("kubeconfig");
    let world = AwsWorld::new(&sdk, config, access, Default::default());
    Handler::new(RecWorld::new(world, rec), config.clone())
}

async fn start_bed(s: Scenario) -> Bed {
    let t = Instant::now();
    let bed = Bed::start(s).await.expect("bed starts");
    bed.wait_ready(Duration::from_secs(300))
        .await
        .expect("bed settles");
    eprintln!(
        "  (bed `{}` up in {:.1} s)",
        bed.scenario().name,
        t.elapsed().as_secs_f64()
    );
    bed
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One Deployment per node, `replicas` pods each, preferring that node (they land there while it
/// is schedulable; their replacements go elsewhere once it is cordoned).
fn pinned_deployments(nodes: &[String], replicas: usize) -> String {
    const TEMPLATE: &str = include_str!("../../scenarios/workloads/pinned-load.yaml");
    nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let doc = TEMPLATE
                .replace("NAME", &format!("load-{i}"))
                .replace("REPLICAS", &replicas.to_string())
                .replace("NODE", node);
            format!("---\n{doc}")
        })
        .collect()
}

fn running_bench_pods(bed: &Bed, node: &str) -> usize {
    pods_on(bed.sim(), node)
        .iter()
        .filter(|p| p["metadata"]["labels"]["bench"] == "true" && p["status"]["phase"] == "Running")
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
        .count()
}

async fn load_nodes(bed: &Bed, nodes: &[String], replicas: usize) {
    let t = Instant::now();
    bed.sim()
        .apply_yaml(&pinned_deployments(nodes, replicas))
        .expect("deployments apply");
    wait_for(
        "the bench pods to run on their nodes",
        Duration::from_secs(300),
        || nodes.iter().all(|n| running_bench_pods(bed, n) >= replicas),
    )
    .await;
    eprintln!(
        "  ({} × {replicas} pods running in {:.1} s)",
        nodes.len(),
        t.elapsed().as_secs_f64()
    );
}

fn has_taint(bed: &Bed, node: &str, key: &str) -> bool {
    bed.sim()
        .store()
        .get(&resources::NODES, None, node)
        .ok()
        .and_then(|n| n.pointer("/spec/taints").and_then(Value::as_array).cloned())
        .is_some_and(|ts| ts.iter().any(|t| t["key"] == key))
}

fn rebalance(instance_id: &str) -> Value {
    let path = format!(
        "{}/../events/aws.ec2-instance-rebalance-recommendation.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut ev: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("json");
    ev["id"] = json!(uuid::Uuid::new_v4().to_string());
    ev["time"] = json!(Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
    ev["resources"] = json!([format!(
        "arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}"
    )]);
    ev["detail"]["instance-id"] = json!(instance_id);
    ev
}

fn report_of(out: &Outcome) -> costop_app::ExecutionReport {
    out.instances
        .first()
        .and_then(|i| i.report.clone())
        .expect("the plan was executed")
}

fn stats(xs: &mut [f64]) -> String {
    if xs.is_empty() {
        return "n=0".into();
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| xs[((xs.len() - 1) as f64 * p).round() as usize];
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    format!(
        "n={} min {:.1} p50 {:.1} mean {:.1} p90 {:.1} max {:.1}",
        xs.len(),
        xs[0],
        q(0.5),
        mean,
        q(0.9),
        xs[xs.len() - 1]
    )
}

/// Per call name: count and latency stats (ms).
fn per_name(calls: &[Call]) -> BTreeMap<(Side, &'static str), Vec<f64>> {
    let mut m: BTreeMap<(Side, &'static str), Vec<f64>> = BTreeMap::new();
    for c in calls {
        m.entry((c.side, c.name)).or_default().push(c.ms());
    }
    m
}

fn print_calls(calls: &[Call]) {
    for ((side, name), mut v) in per_name(calls) {
        println!(
            "      {:<5} {:<24} {}",
            format!("{side:?}"),
            name,
            stats(&mut v)
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Part 1: round trips to the cordon.

struct Trip {
    label: &'static str,
    chain: Vec<Call>,
    all: Vec<Call>,
    time_to_cordon_ms: u64,
    origin: Duration,
}

async fn one_trip(h: &BenchHandler, rec: &Recorder, label: &'static str, event: &Value) -> Trip {
    rec.take();
    let origin = rec.t0.elapsed();
    let out = h.handle(event, Mode::Execute).await.expect("handled");
    let report = report_of(&out);
    let calls = rec.take();
    let chain = critical_path(&calls).expect("the node was cordoned");
    Trip {
        label,
        chain,
        all: calls,
        time_to_cordon_ms: report.time_to_cordon_ms.expect("time to cordon"),
        origin,
    }
}

async fn part1(quick: bool) {
    println!(
        "\n== 1. Sequential round trips from invocation to cordon+taint (bench-path, real adapters on the bed)"
    );
    let bed = start_bed(scenario("bench-path.yaml")).await;
    let config = config(&bed);
    let nodes = spot_nodes(bed.sim());
    let rounds = if quick { 1 } else { 2 };
    assert!(nodes.len() >= 3 * rounds, "need {} spot nodes", 3 * rounds);
    let mut trips = Vec::new();
    for r in 0..rounds {
        let rec = Recorder::new(Instant::now());
        let h = cold_handler(&bed, &config, rec.clone()).await;
        let [a, b, c] = [&nodes[3 * r], &nodes[3 * r + 1], &nodes[3 * r + 2]];
        trips.push(
            one_trip(
                &h,
                &rec,
                "cold (new function)",
                &events::spot_warning(&a.0, Utc::now()),
            )
            .await,
        );
        // The first invocation indexed every node of the cluster beside its drain.
        trips.push(
            one_trip(
                &h,
                &rec,
                "warm, a node not seen before",
                &events::spot_warning(&b.0, Utc::now()),
            )
            .await,
        );
        // A rebalance recommendation usually precedes the warning: the function has seen the instance.
        h.handle(&rebalance(&c.0), Mode::Execute)
            .await
            .expect("rebalance handled");
        trips.push(
            one_trip(
                &h,
                &rec,
                "warm, instance seen before",
                &events::spot_warning(&c.0, Utc::now()),
            )
            .await,
        );
    }
    if std::env::args().any(|a| a == "--verbose") {
        for t in &trips {
            println!("  {} — every call up to the cordon:", t.label);
            for c in t
                .all
                .iter()
                .filter(|c| c.end <= t.chain.last().map(|l| l.end).unwrap_or_default())
            {
                let ms = |d: Duration| d.saturating_sub(t.origin).as_secs_f64() * 1e3;
                println!(
                    "      {:<26} asked {:>6.1} polled {:>6.1} done {:>6.1} ms",
                    c.name,
                    ms(c.start),
                    ms(c.polled),
                    ms(c.end)
                );
            }
        }
    }
    for t in &trips {
        let n: usize = t.chain.iter().map(|c| c.requests).sum();
        println!(
            "  {:<28} {n} sequential round trip(s) ({} port calls), time_to_cordon {} ms: {}",
            t.label,
            t.chain.len(),
            t.time_to_cordon_ms,
            show_chain(&t.chain, t.origin)
        );
    }
    println!("  (goal: ≤ 2 sequential round trips on a warm function)");
}

// ------------------------------------------------------------------------------------------------
// Part 2: a 110-pod drain.

async fn part2(quick: bool) {
    const PODS: usize = 110;
    println!(
        "\n== 2. 110-pod drain (bench-drain: m5.8xlarge spot nodes, real adapters on the bed)"
    );
    let bed = start_bed(scenario("bench-drain.yaml")).await;
    let config = config(&bed);
    println!(
        "  config: COSTOP_DRAIN_CONCURRENCY={} COSTOP_KUBE_QPS={} COSTOP_KUBE_BURST={}; time_scale {} (pod_stop {} sim s = {:.0} ms real)",
        config.drain_concurrency,
        config.kube_qps,
        config.kube_burst,
        bed.scenario().time_scale,
        bed.scenario().delays.pod_stop,
        bed.scenario().delays.pod_stop / bed.scenario().time_scale * 1e3
    );
    let nodes = spot_nodes(bed.sim());
    let rounds = if quick { 1 } else { nodes.len() };
    let names: Vec<String> = nodes.iter().take(rounds).map(|(_, n)| n.clone()).collect();
    load_nodes(&bed, &names, PODS).await;
    let rec = Recorder::new(Instant::now());
    let h = cold_handler(&bed, &config, rec.clone()).await;
    for (i, (instance, node)) in nodes.iter().take(rounds).enumerate() {
        rec.take();
        let origin = rec.t0.elapsed();
        let t = Instant::now();
        let out = h
            .handle(&events::spot_warning(instance, Utc::now()), Mode::Execute)
            .await
            .expect("handled");
        let total = t.elapsed();
        let calls = rec.take();
        let report = report_of(&out);
        let drain = report.drain.clone().expect("a drain");
        let evicts: Vec<&Call> = calls.iter().filter(|c| c.name == "kube.evict").collect();
        let first_evict = evicts.iter().map(|c| c.start).min().unwrap_or_default();
        let last_issued = evicts.iter().map(|c| c.end).max().unwrap_or_default();
        let last_list = calls
            .iter()
            .filter(|c| c.name == "kube.pods_on")
            .map(|c| c.end)
            .max()
            .unwrap_or_default();
        let ms = |d: Duration| d.saturating_sub(origin).as_secs_f64() * 1e3;
        println!(
            "  round {} ({}): {} evictions ({} evict calls, {} retries), all_issued_ms {} (drain start → last eviction accepted); \
             from invocation: cordoned {} ms, first eviction {:.0} ms, all issued {:.0} ms, drained {:.0} ms, handler done {:.0} ms; remaining {}",
            i + 1,
            if i == 0 { "cold" } else { "warm" },
            drain.evictions_issued,
            evicts.len(),
            drain.eviction_retries,
            drain.all_issued_ms,
            report.time_to_cordon_ms.unwrap_or(0),
            ms(first_evict),
            ms(last_issued),
            ms(last_list),
            total.as_secs_f64() * 1e3,
            drain.remaining.len(),
        );
        let _ = node;
        let mut lat: Vec<f64> = evicts.iter().map(|c| c.ms()).collect();
        println!("      eviction latency ms: {}", stats(&mut lat));
        if i == 0 {
            print_calls(&calls);
        }
    }
    println!("  (goal: all evictions issued ≤ 500 ms)");
}

// ------------------------------------------------------------------------------------------------
// Part 3: 50 simultaneous interruptions.

/// A warm container has read the target groups and indexed the nodes before.
async fn warm_up<W: InterruptionPorts + 'static>(
    h: &Handler<RecWorld<W>>,
    rec: &Recorder,
    instance: &str,
    warm: bool,
) {
    if warm {
        h.handle(&rebalance(instance), Mode::Execute)
            .await
            .expect("rebalance handled");
        rec.take();
    }
}

fn print_init(n: usize, warm: bool, since: Instant) {
    println!(
        "  init of {n} handlers (clients{}, not measured): {:.0} ms",
        if warm {
            ", one rebalance recommendation each"
        } else {
            ""
        },
        since.elapsed().as_secs_f64() * 1e3
    );
}

/// A handler and the recorder of its calls.
type Recorded<W> = (Arc<Handler<RecWorld<W>>>, Arc<Recorder>);

/// Every invocation its own task, as 50 Lambda containers would run side by side.
async fn run_fleet<W: InterruptionPorts + 'static>(
    handlers: Vec<Recorded<W>>,
    events: Vec<Value>,
    nodes: &[(String, String)],
) -> Vec<Run> {
    let tasks: Vec<_> = handlers
        .into_iter()
        .zip(events)
        .zip(nodes.iter())
        .map(|(((h, rec), ev), (_, node))| {
            let node = node.clone();
            tokio::spawn(async move {
                let result = h
                    .handle(&ev, Mode::Execute)
                    .await
                    .map(|o| report_of(&o))
                    .map_err(|e| costop_app::error_chain(&e));
                let done = rec.t0.elapsed();
                Run {
                    node,
                    calls: rec.take(),
                    result,
                    done,
                }
            })
        })
        .collect();
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("invocation task"))
        .collect()
}

struct Run {
    node: String,
    calls: Vec<Call>,
    result: Result<costop_app::ExecutionReport, String>,
    done: Duration,
}

async fn part3(quick: bool, nodes_wanted: Option<usize>, warm: bool, in_memory: bool) {
    const PODS: usize = 30;
    let mut s = scenario("bench-fleet.yaml");
    let n = nodes_wanted.unwrap_or(if quick { 10 } else { 50 });
    s.node_groups[0].count = Some(n as u32);
    s.node_groups[1].count = Some((n * PODS).div_ceil(200).max(1) as u32);
    println!(
        "\n== 3. {n} simultaneous interruptions of {n} nodes × {PODS} pods (bench-fleet, each invocation its own {} handler{})",
        if warm { "warm" } else { "cold" },
        if in_memory {
            "; AWS in memory, Kubernetes on kubesim"
        } else {
            ""
        }
    );
    let bed = start_bed(s).await;
    let config = config(&bed);
    println!(
        "  config: COSTOP_DRAIN_CONCURRENCY={} COSTOP_KUBE_QPS={} COSTOP_KUBE_BURST={}; time_scale {}",
        config.drain_concurrency,
        config.kube_qps,
        config.kube_burst,
        bed.scenario().time_scale
    );
    let nodes = spot_nodes(bed.sim());
    assert_eq!(nodes.len(), n);
    let names: Vec<String> = nodes.iter().map(|(_, n)| n.clone()).collect();
    load_nodes(&bed, &names, PODS).await;

    // Init (outside the measured window, like a Lambda's init phase): one world per invocation.
    let t_init = Instant::now();
    let t0 = Instant::now();
    let events: Vec<Value> = nodes
        .iter()
        .map(|(id, _)| events::spot_warning(id, Utc::now()))
        .collect();
    let (start, runs) = if in_memory {
        // The bed's EC2 and ELB facts, read once from moto, served by the in-memory fakes; one
        // table shared by every invocation, as DynamoDB is. Kubernetes is the same kubesim.
        let probe = cold_handler(&bed, &config, Recorder::new(t0)).await;
        let ids: Vec<String> = nodes.iter().map(|(id, _)| id.clone()).collect();
        let (ec2, elb) = (FakeEc2::default(), FakeElb::default());
        for i in probe
            .world()
            .ec2()
            .describe_instances(&ids)
            .await
            .expect("describe instances")
        {
            ec2.insert(i);
        }
        for g in probe
            .world()
            .elb()
            .target_groups()
            .await
            .expect("target groups")
        {
            elb.groups.lock().unwrap().insert(g.arn.clone(), g);
        }
        let records = FakeRecords::default();
        let mut handlers = Vec::new();
        for (instance, _) in &nodes {
            let rec = Recorder::new(t0);
            let access = ClusterAccess::kubeconfig_file(bed.kubeconfig_path()).expect("kubeconfig");
            let world = FastWorld {
                ec2: ec2.clone(),
                elb: elb.clone(),
                asg: FakeAsg::default(),
                records: records.clone(),
                clusters: costop_adapters::KubeClusters::new(access, Default::default()),
                handoff: Default::default(),
                queue: Default::default(),
                upstream: Default::default(),
            };
            let h = Handler::new(RecWorld::new(world, rec.clone()), config.clone());
            warm_up(&h, &rec, instance, warm).await;
            handlers.push((Arc::new(h), rec));
        }
        print_init(n, warm, t_init);
        let start = t0.elapsed();
        (start, run_fleet(handlers, events, &nodes).await)
    } else {
        let mut handlers = Vec::new();
        for (instance, _) in &nodes {
            let rec = Recorder::new(t0);
            let h = cold_handler(&bed, &config, rec.clone()).await;
            warm_up(&h, &rec, instance, warm).await;
            handlers.push((Arc::new(h), rec));
        }
        print_init(n, warm, t_init);
        let start = t0.elapsed();
        (start, run_fleet(handlers, events, &nodes).await)
    };
    let ms = |d: Duration| d.saturating_sub(start).as_secs_f64() * 1e3;

    let failed: Vec<&Run> = runs.iter().filter(|r| r.result.is_err()).collect();
    let tainted = names
        .iter()
        .filter(|n| has_taint(&bed, n, &config.taint_keys.spot_interruption))
        .count();
    let mut cordon_at: Vec<f64> = runs
        .iter()
        .filter_map(|r| {
            r.calls
                .iter()
                .filter(|c| c.name == CORDON)
                .map(|c| c.end)
                .max()
        })
        .map(ms)
        .collect();
    let mut ttc: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.result.as_ref().ok()?.time_to_cordon_ms)
        .map(|x| x as f64)
        .collect();
    let mut issued_at: Vec<f64> = runs
        .iter()
        .filter_map(|r| {
            r.calls
                .iter()
                .filter(|c| c.name == "kube.evict")
                .map(|c| c.end)
                .max()
        })
        .map(ms)
        .collect();
    let mut all_issued: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.result.as_ref().ok()?.drain.as_ref())
        .map(|d| d.all_issued_ms as f64)
        .collect();
    let mut done_at: Vec<f64> = runs.iter().map(|r| ms(r.done)).collect();
    // From the cordon to the first eviction: the complete plan (once the pods and target groups
    // are in), then the drain's first slot; records and deregistrations run beside the drain.
    let mut gap: Vec<f64> = runs
        .iter()
        .filter_map(|r| {
            let cordon = r
                .calls
                .iter()
                .filter(|c| c.name == CORDON)
                .map(|c| c.end)
                .max()?;
            let first = r
                .calls
                .iter()
                .filter(|c| c.name == "kube.evict")
                .map(|c| c.start)
                .min()?;
            Some((first.saturating_sub(cordon)).as_secs_f64() * 1e3)
        })
        .collect();
    let aws_requests: usize = runs
        .iter()
        .flat_map(|r| r.calls.iter())
        .filter(|c| c.side == Side::Aws)
        .map(|c| c.requests)
        .sum();
    let kube_requests: usize = runs
        .iter()
        .flat_map(|r| r.calls.iter())
        .filter(|c| c.side == Side::Kube)
        .count();
    let mut trips: Vec<f64> = runs
        .iter()
        .filter_map(|r| critical_path(&r.calls))
        .map(|c| c.iter().map(|c| c.requests).sum::<usize>() as f64)
        .collect();
    let issued: usize = runs
        .iter()
        .filter_map(|r| r.result.as_ref().ok()?.drain.as_ref())
        .map(|d| d.evictions_issued)
        .sum();
    let remaining: usize = runs
        .iter()
        .filter_map(|r| r.result.as_ref().ok()?.drain.as_ref())
        .map(|d| d.remaining.len())
        .sum();
    let max = |v: &[f64]| v.iter().copied().fold(0.0f64, f64::max);

    println!(
        "  every node cordoned (common start → last cordon patch answered): {:.0} ms  (goal ≤ 1000 ms)",
        max(&cordon_at)
    );
    println!(
        "      per invocation, cordon answered at ms: {}",
        stats(&mut cordon_at)
    );
    println!(
        "      per invocation, report.time_to_cordon_ms: {}",
        stats(&mut ttc)
    );
    println!(
        "      sequential round trips to the cordon: {}",
        stats(&mut trips)
    );
    println!(
        "  every eviction issued (common start → last eviction accepted): {:.0} ms  (goal ≤ 5000 ms)",
        max(&issued_at)
    );
    println!(
        "      per invocation, cordon → first eviction (deregistration first; bookkeeping runs beside) ms: {}",
        stats(&mut gap)
    );
    println!(
        "      per invocation, last eviction at ms: {}",
        stats(&mut issued_at)
    );
    println!(
        "      per invocation, DrainReport.all_issued_ms: {}",
        stats(&mut all_issued)
    );
    println!(
        "  evictions issued {issued} / {}; pods remaining at the end {remaining}",
        n * PODS
    );
    println!(
        "  every handler done (drained, records written): {:.0} ms; per invocation: {}",
        max(&done_at),
        stats(&mut done_at)
    );
    println!(
        "  taint success: {tainted}/{n} nodes carry {} ({:.0} %); handler errors: {}",
        config.taint_keys.spot_interruption,
        tainted as f64 * 100.0 / n as f64,
        failed.len()
    );
    for r in failed.iter().take(5) {
        println!("      {}: {}", r.node, r.result.as_ref().err().unwrap());
    }

    // Where the time goes.
    let all: Vec<Call> = runs.iter().flat_map(|r| r.calls.iter().cloned()).collect();
    let busy = |side: Side, pre_cordon: bool| -> f64 {
        runs.iter()
            .flat_map(|r| {
                let cut = r
                    .calls
                    .iter()
                    .filter(|c| c.name == CORDON)
                    .map(|c| c.end)
                    .max()
                    .unwrap_or(Duration::MAX);
                r.calls
                    .iter()
                    .filter(move |c| c.side == side && (!pre_cordon || c.end <= cut))
                    .map(|c| c.ms())
                    .collect::<Vec<_>>()
            })
            .sum()
    };
    let wall = max(&done_at) / 1e3;
    println!(
        "  requests: AWS {aws_requests} ({:.0}/s over the {wall:.1} s run), Kubernetes {kube_requests} ({:.0}/s)",
        aws_requests as f64 / wall,
        kube_requests as f64 / wall
    );
    println!(
        "  time in calls, summed over invocations: AWS {:.1} s, Kubernetes {:.1} s (up to the cordon: AWS {:.1} s, Kubernetes {:.1} s)",
        busy(Side::Aws, false) / 1e3,
        busy(Side::Kube, false) / 1e3,
        busy(Side::Aws, true) / 1e3,
        busy(Side::Kube, true) / 1e3
    );
    // Critical path to the cordon, by side.
    let (mut aws_cp, mut kube_cp) = (Vec::new(), Vec::new());
    for r in &runs {
        if let Some(chain) = critical_path(&r.calls) {
            aws_cp.push(
                chain
                    .iter()
                    .filter(|c| c.side == Side::Aws)
                    .map(Call::ms)
                    .sum::<f64>(),
            );
            kube_cp.push(
                chain
                    .iter()
                    .filter(|c| c.side == Side::Kube)
                    .map(Call::ms)
                    .sum::<f64>(),
            );
        }
    }
    println!(
        "      critical path to the cordon, ms in AWS calls: {}",
        stats(&mut aws_cp)
    );
    println!(
        "      critical path to the cordon, ms in Kubernetes calls: {}",
        stats(&mut kube_cp)
    );
    println!("    per call (latency ms over all invocations):");
    print_calls(&all);
    if !in_memory {
        moto_throughput(&bed).await;
    }
    if let Some(worst) = runs.iter().max_by_key(|r| {
        r.calls
            .iter()
            .filter(|c| c.name == CORDON)
            .map(|c| c.end)
            .max()
    }) && let Some(chain) = critical_path(&worst.calls)
    {
        println!(
            "    slowest cordon ({}): {}",
            worst.node,
            show_chain(&chain, start)
        );
    }
}

/// moto's own ceiling on this machine: PutItem (what a timeline append is) one at a time and
/// with 50 in flight, straight from the SDK.
async fn moto_throughput(bed: &Bed) {
    use aws_sdk_dynamodb::types::AttributeValue;
    use futures::StreamExt;
    let ddb = bed.dynamodb();
    let table = bed.world().table.clone();
    for (n, inflight) in [(200usize, 1usize), (1000, 50)] {
        let t = Instant::now();
        let lat: Vec<f64> = futures::stream::iter(0..n)
            .map(|i| {
                let (ddb, table) = (ddb.clone(), table.clone());
                async move {
                    let t = Instant::now();
                    ddb.put_item()
                        .table_name(table)
                        .item("pk", AttributeValue::S(format!("BENCH#{inflight}#{i}")))
                        .item("sk", AttributeValue::S("X".into()))
                        .send()
                        .await
                        .expect("put item");
                    t.elapsed().as_secs_f64() * 1e3
                }
            })
            .buffer_unordered(inflight)
            .collect()
            .await;
        let secs = t.elapsed().as_secs_f64();
        let mut lat = lat;
        println!(
            "    moto alone: {n} PutItem, {inflight} in flight: {:.0} req/s; latency ms {}",
            n as f64 / secs,
            stats(&mut lat)
        );
    }
}

// ------------------------------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let get = |flag: &str| {
        args.iter()
            .position(|x| x == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|s| s.parse::<usize>().ok())
    };
    let part = get("--part");
    let nodes = get("--nodes");
    let warm = args.iter().any(|a| a == "--warm");
    let in_memory = args.iter().any(|a| a == "--aws-in-memory");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!(
            "costop interruption benchmark ({}{}; {} cores; profile {})",
            if quick { "quick" } else { "full" },
            if warm { ", part 3 warm" } else { "" },
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "optimized"
            }
        );
        if part.is_none_or(|p| p == 1) {
            part1(quick).await;
        }
        if part.is_none_or(|p| p == 2) {
            part2(quick).await;
        }
        if part.is_none_or(|p| p == 3) {
            part3(quick, nodes, warm, in_memory).await;
        }
    });
}
