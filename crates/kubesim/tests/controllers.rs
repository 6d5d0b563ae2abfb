//! The control loops and the EC2 node link, driven through the store (no HTTP): workloads,
//! scheduling, preemption, PDB status, taints, garbage collection and EC2-backed nodes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kubesim::controllers::{self, ControllerConfig};
use kubesim::nodes::{InstanceFacts, InstanceState, NodeLink, NodeLinkConfig, TaintSpec};
use kubesim::resources::{self, ResourceDef};
use kubesim::store::{DeleteOptions, EventType, ListOptions};
use kubesim::{Clock, Store, admission};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

// ------------------------------------------------------------------------------------------
// Harness
// ------------------------------------------------------------------------------------------

/// A store with the usual namespaces and every control loop running; loops stop on drop.
struct Cluster {
    store: Arc<Store>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn new_store(scale: f64) -> Arc<Store> {
    let store = Arc::new(Store::new(Clock::new(scale).unwrap()));
    for ns in ["default", "kube-system", "kube-node-lease"] {
        store
            .create(
                &resources::NAMESPACES,
                None,
                json!({"metadata": {"name": ns}}),
            )
            .unwrap();
    }
    store
}

fn cluster_with(scale: f64, cfg: ControllerConfig) -> Cluster {
    let store = new_store(scale);
    let tasks = controllers::spawn_all(store.clone(), cfg);
    Cluster { store, tasks }
}

/// Time scale 100: a 2 s pod start takes 20 ms.
fn cluster() -> Cluster {
    cluster_with(100.0, ControllerConfig::default())
}

/// A Ready node as a kubelet would register it.
fn node(name: &str, cpu: &str, memory: &str, pods: u32) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": pods.to_string()},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods.to_string()},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
        },
    })
}

fn add_node(c: &Cluster, n: Value) {
    c.store.create(&resources::NODES, None, n).unwrap();
}

fn container(cpu: &str, memory: &str) -> Value {
    json!({"name": "app", "image": "nginx:1.27", "resources": {"requests": {"cpu": cpu, "memory": memory}}})
}

fn deployment(name: &str, replicas: i64, pod_spec: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    })
}

fn simple_spec() -> Value {
    json!({"containers": [container("100m", "64Mi")]})
}

fn create(c: &Cluster, r: &'static ResourceDef, obj: Value) -> Value {
    c.store.create(r, Some("default"), obj).unwrap()
}

fn pods(c: &Cluster) -> Vec<Value> {
    c.store
        .list(&resources::PODS, Some("default"), &ListOptions::default())
        .0
}

fn pods_of(c: &Cluster, app: &str) -> Vec<Value> {
    pods(c)
        .into_iter()
        .filter(|p| p.pointer("/metadata/labels/app").and_then(Value::as_str) == Some(app))
        .collect()
}

fn get(c: &Cluster, r: &'static ResourceDef, ns: Option<&str>, name: &str) -> Option<Value> {
    c.store.get(r, ns, name).ok()
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn name(v: &Value) -> &str {
    s(v, "/metadata/name")
}

fn terminating(p: &Value) -> bool {
    p.pointer("/metadata/deletionTimestamp").is_some()
}

fn ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
        })
}

fn running_ready(p: &Value) -> bool {
    s(p, "/status/phase") == "Running" && ready(p) && !terminating(p)
}

fn condition<'a>(v: &'a Value, ty: &str) -> Option<&'a Value> {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| s(c, "/type") == ty)
}

fn taint_keys(n: &Value) -> Vec<String> {
    n.pointer("/spec/taints")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .map(|t| format!("{}:{}", s(t, "/key"), s(t, "/effect")))
                .collect()
        })
        .unwrap_or_default()
}

/// Poll `f` until it returns `Some` (every 5 ms, up to 10 s real).
async fn eventually<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll(what, Duration::from_millis(5), Duration::from_secs(10), f).await
}

async fn poll<T>(
    what: &str,
    every: Duration,
    limit: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(every).await;
    }
}

async fn eventually_true(what: &str, mut f: impl FnMut() -> bool) {
    eventually(what, || f().then_some(())).await
}

/// `n` pods of `app` Running and Ready.
async fn running(c: &Cluster, app: &str, n: usize) -> Vec<Value> {
    eventually(&format!("{n} running pods of {app}"), || {
        let ps: Vec<Value> = pods_of(c, app).into_iter().filter(running_ready).collect();
        (ps.len() == n).then_some(ps)
    })
    .await
}

fn evict(c: &Cluster, pod: &str) -> Result<(), kubesim::ApiError> {
    c.store.transaction(|tx| {
        admission::evict(tx, "default", pod, &json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": "default"}}))
    })
}

fn modify(
    c: &Cluster,
    r: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    f: impl FnOnce(&mut Value),
) {
    c.store
        .modify(r, ns, name, |o| {
            f(o);
            Ok(())
        })
        .unwrap();
}

// ------------------------------------------------------------------------------------------
// Workloads
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_creates_its_replicaset_and_pods_which_become_running() {
    let c = cluster();
    add_node(&c, node("n1", "4", "8Gi", 110));
    add_node(&c, node("n2", "4", "8Gi", 110));
    create(
        &c,
        &resources::DEPLOYMENTS,
        deployment("web", 3, simple_spec()),
    );

    let ps = running(&c, "web", 3).await;
    let (rss, _) = c.store.list(
        &resources::REPLICASETS,
        Some("default"),
        &ListOptions::default(),
    );
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let hash = s(rs, "/metadata/labels/pod-template-hash");
    assert!(!hash.is_empty());
    assert_eq!(name(rs), format!("web-{hash}"));
    assert_eq!(s(rs, "/metadata/ownerReferences/0/kind"), "Deployment");
    for p in &ps {
        assert!(name(p).starts_with(&format!("web-{hash}-")), "{}", name(p));
        assert_eq!(s(p, "/metadata/ownerReferences/0/name"), name(rs));
        assert_eq!(
            p.pointer("/metadata/ownerReferences/0/controller"),
            Some(&json!(true))
        );
        assert_eq!(s(p, "/metadata/labels/pod-template-hash"), hash);
        assert!(!s(p, "/status/podIP").is_empty());
        assert!(!s(p, "/status/hostIP").is_empty());
        assert!(!s(p, "/status/startTime").is_empty());
        assert!(!s(p, "/status/containerStatuses/0/state/running/startedAt").is_empty());
        for ty in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            assert_eq!(
                condition(p, ty).map(|c| s(c, "/status")),
                Some("True"),
                "{ty}"
            );
        }
    }
    // Least-allocated scoring spreads the pods.
    let on_n1 = ps.iter().filter(|p| s(p, "/spec/nodeName") == "n1").count();
    assert!(on_n1 == 1 || on_n1 == 2, "pods spread over both nodes");

    let d = eventually("deployment status", || {
        let d = get(&c, &resources::DEPLOYMENTS, Some("default"), "web")?;
        (i(&d, "/status/availableReplicas") == 3 && i(&d, "/status/updatedReplicas") == 3)
            .then_some(d)
    })
    .await;
    assert_eq!(i(&d, "/status/replicas"), 3);
    assert_eq!(i(&d, "/status/readyReplicas"), 3);
    assert_eq!(
        i(&d, "/status/observedGeneration"),
        i(&d, "/metadata/generation")
    );
    assert_eq!(
        condition(&d, "Available").map(|c| s(c, "/status")),
        Some("True")
    );
    let progressing = condition(&d, "Progressing").unwrap();
    assert_eq!(s(progressing, "/reason"), "NewReplicaSetAvailable");
    assert_eq!(
        s(
            &d,
            "/metadata/annotations/deployment.kubernetes.io~1revision"
        ),
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_change_rolls_out_a_new_replicaset_and_scales_the_old_one_down() {
    let c = cluster();
    add_node(&c, node("n1", "8", "16Gi", 110));
    create(
        &c,
        &resources::DEPLOYMENTS,
        deployment("web", 4, simple_spec()),
    );
    running(&c, "web", 4).await;
    modify(&c, &resources::DEPLOYMENTS, Some("default"), "web", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    });
    eventually_true("rollout complete", || {
        let ps: Vec<Value> = pods_of(&c, "web")
            .into_iter()
            .filter(|p| !terminating(p))
            .collect();
        let d = get(&c, &resources::DEPLOYMENTS, Some("default"), "web").unwrap();
        ps.len() == 4
            && ps
                .iter()
                .all(|p| running_ready(p) && s(p, "/spec/containers/0/image") == "nginx:1.28")
            && i(&d, "/status/updatedReplicas") == 4
            && i(&d, "/status/availableReplicas") == 4
            && i(&d, "/status/replicas") == 4
    })
    .await;
    let (rss, _) = c.store.list(
        &resources::REPLICASETS,
        Some("default"),
        &ListOptions::default(),
    );
    assert_eq!(rss.len(), 2);
    let old = rss
        .iter()
        .find(|r| {
            s(
                r,
                "/metadata/annotations/deployment.kubernetes.io~1revision",
            ) == "1"
        })
        .unwrap();
    assert_eq!(i(old, "/spec/replicas"), 0);
    let d = get(&c, &resources::DEPLOYMENTS, Some("default"), "web").unwrap();
    assert_eq!(
        s(
            &d,
            "/metadata/annotations/deployment.kubernetes.io~1revision"
        ),
        "2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_deployment_pod_is_replaced_by_a_pending_pod_at_once() {
    // Pods take 60 simulated seconds (0.6 s real) to stop, so the replacement must appear
    // while the evicted pod is still terminating.
    let c = cluster_with(
        100.0,
        ControllerConfig {
            pod_stop_seconds: 60.0,
            ..ControllerConfig::default()
        },
    );
    add_node(&c, node("n1", "4", "8Gi", 110));
    create(
        &c,
        &resources::DEPLOYMENTS,
        deployment("web", 3, simple_spec()),
    );
    let ps = running(&c, "web", 3).await;
    let victim = name(&ps[0]).to_string();

    let t0 = std::time::Instant::now();
    evict(&c, &victim).unwrap();
    let replacement = eventually("a replacement pod", || {
        pods_of(&c, "web")
            .into_iter()
            .find(|p| !ps.iter().any(|o| name(o) == name(p)))
    })
    .await;
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(300),
        "replacement took {took:?}"
    );
    let old =
        get(&c, &resources::PODS, Some("default"), &victim).expect("evicted pod still terminating");
    assert!(terminating(&old));
    assert!(!terminating(&replacement));
    assert_eq!(
        pods_of(&c, "web")
            .iter()
            .filter(|p| !terminating(p))
            .count(),
        3
    );
    // It is then scheduled and started while the old one finishes.
    running(&c, "web", 3).await;
    eventually_true("evicted pod gone", || {
        get(&c, &resources::PODS, Some("default"), &victim).is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_a_replicaset_down_deletes_pending_pods_first() {
    let c = cluster();
    add_node(&c, node("n1", "1", "8Gi", 110));
    // 4 × 300m on a 1-CPU node: 3 run, 1 stays Pending.
    create(
        &c,
        &resources::DEPLOYMENTS,
        deployment("web", 4, json!({"containers": [container("300m", "64Mi")]})),
    );
    running(&c, "web", 3).await;
    modify(&c, &resources::DEPLOYMENTS, Some("default"), "web", |d| {
        d["spec"]["replicas"] = json!(3)
    });
    eventually_true("pending pod removed", || {
        let ps = pods_of(&c, "web");
        ps.len() == 3 && ps.iter().all(running_ready)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_puts_one_pod_on_each_eligible_node() {
    let c = cluster();
    let mut linux = node("linux", "2", "4Gi", 110);
    linux["metadata"]["labels"]["kubernetes.io/os"] = json!("linux");
    let mut cordoned = node("cordoned", "2", "4Gi", 110);
    cordoned["metadata"]["labels"]["kubernetes.io/os"] = json!("linux");
    cordoned["spec"]["unschedulable"] = json!(true);
    let mut tainted = node("tainted", "2", "4Gi", 110);
    tainted["metadata"]["labels"]["kubernetes.io/os"] = json!("linux");
    tainted["spec"]["taints"] =
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
    let mut windows = node("windows", "2", "4Gi", 110);
    windows["metadata"]["labels"]["kubernetes.io/os"] = json!("windows");
    for n in [linux, cordoned, tainted, windows] {
        add_node(&c, n);
    }
    create(
        &c,
        &resources::DAEMONSETS,
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [container("50m", "32Mi")]},
                },
            },
        }),
    );
    let ps = running(&c, "agent", 2).await;
    let mut nodes: Vec<&str> = ps.iter().map(|p| s(p, "/spec/nodeName")).collect();
    nodes.sort();
    assert_eq!(nodes, ["cordoned", "linux"]);
    for p in &ps {
        let tols: Vec<String> = p
            .pointer("/spec/tolerations")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|t| format!("{}:{}", s(t, "/key"), s(t, "/effect")))
            .collect();
        for want in [
            "node.kubernetes.io/not-ready:NoExecute",
            "node.kubernetes.io/unreachable:NoExecute",
            "node.kubernetes.io/unschedulable:NoSchedule",
            "node.kubernetes.io/disk-pressure:NoSchedule",
        ] {
            assert!(
                tols.iter().any(|t| t == want),
                "missing toleration {want}: {tols:?}"
            );
        }
        let field = p.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0").unwrap();
        assert_eq!(s(field, "/key"), "metadata.name");
        assert_eq!(s(field, "/values/0"), s(p, "/spec/nodeName"));
    }
    let ds = eventually("daemonset status", || {
        let ds = get(&c, &resources::DAEMONSETS, Some("default"), "agent")?;
        (i(&ds, "/status/numberReady") == 2).then_some(ds)
    })
    .await;
    assert_eq!(i(&ds, "/status/desiredNumberScheduled"), 2);
    assert_eq!(i(&ds, "/status/currentNumberScheduled"), 2);
    assert_eq!(i(&ds, "/status/numberMisscheduled"), 0);

    // A new eligible node gets its pod; a deleted node's pod goes.
    let mut n3 = node("linux-2", "2", "4Gi", 110);
    n3["metadata"]["labels"]["kubernetes.io/os"] = json!("linux");
    add_node(&c, n3);
    running(&c, "agent", 3).await;
    c.store
        .transaction(|tx| tx.remove(&resources::NODES, None, "linux"))
        .unwrap();
    eventually_true("pod of deleted node gone", || {
        let ps = pods_of(&c, "agent");
        ps.len() == 2 && ps.iter().all(|p| s(p, "/spec/nodeName") != "linux")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_pods_are_created_in_order() {
    let c = cluster();
    add_node(&c, node("n1", "4", "8Gi", 110));
    let mut rx = c.store.subscribe();
    create(
        &c,
        &resources::STATEFULSETS,
        json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {
                "replicas": 3,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": simple_spec()},
            },
        }),
    );
    let ps = running(&c, "db", 3).await;
    let mut names: Vec<&str> = ps.iter().map(name).collect();
    names.sort();
    assert_eq!(names, ["db-0", "db-1", "db-2"]);
    assert_eq!(s(&ps[0], "/spec/subdomain"), "db");
    // Each pod was created only after its predecessor was Running and Ready.
    let mut ready_at: BTreeMap<String, usize> = BTreeMap::new();
    let mut added_at: BTreeMap<String, usize> = BTreeMap::new();
    let mut n = 0;
    while let Ok(ev) = rx.try_recv() {
        n += 1;
        if ev.resource.kind != "Pod" {
            continue;
        }
        let pname = ev.name().to_string();
        if ev.kind == EventType::Added {
            added_at.entry(pname.clone()).or_insert(n);
        }
        if running_ready(&ev.object) {
            ready_at.entry(pname).or_insert(n);
        }
    }
    assert!(
        ready_at["db-0"] < added_at["db-1"],
        "db-1 created before db-0 was ready"
    );
    assert!(
        ready_at["db-1"] < added_at["db-2"],
        "db-2 created before db-1 was ready"
    );

    // A deleted pod comes back with the same name.
    let uid = s(&ps[0], "/metadata/uid").to_string();
    let db1 = ps.iter().find(|p| name(p) == "db-1").unwrap();
    let uid1 = s(db1, "/metadata/uid").to_string();
    c.store
        .delete(
            &resources::PODS,
            Some("default"),
            "db-1",
            &DeleteOptions::default(),
        )
        .unwrap();
    eventually_true("db-1 recreated", || {
        get(&c, &resources::PODS, Some("default"), "db-1")
            .is_some_and(|p| s(&p, "/metadata/uid") != uid1 && running_ready(&p))
    })
    .await;
    assert!(!uid.is_empty());

    // Scale down removes the highest ordinal.
    modify(&c, &resources::STATEFULSETS, Some("default"), "db", |o| {
        o["spec"]["replicas"] = json!(1)
    });
    eventually_true("scaled down to db-0", || {
        let ps = pods_of(&c, "db");
        ps.len() == 1 && name(&ps[0]) == "db-0"
    })
    .await;
    let sts = eventually("sts status", || {
        let s = get(&c, &resources::STATEFULSETS, Some("default"), "db")?;
        (i(&s, "/status/replicas") == 1).then_some(s)
    })
    .await;
    assert_eq!(i(&sts, "/status/readyReplicas"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parallel_statefulset_creates_all_pods_at_once() {
    let c = cluster_with(
        100.0,
        ControllerConfig {
            pod_start_seconds: 60.0,
            ..ControllerConfig::default()
        },
    );
    add_node(&c, node("n1", "4", "8Gi", 110));
    create(
        &c,
        &resources::STATEFULSETS,
        json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "cache", "namespace": "default"},
            "spec": {
                "replicas": 3,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": {"app": "cache"}},
                "template": {"metadata": {"labels": {"app": "cache"}}, "spec": simple_spec()},
            },
        }),
    );
    // All three exist while none is Ready yet (pods take 0.6 s to start).
    eventually_true("3 pods before any is ready", || {
        let ps = pods_of(&c, "cache");
        ps.len() == 3 && ps.iter().all(|p| !ready(p))
    })
    .await;
    running(&c, "cache", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreate_deployment_replaces_all_pods_after_the_old_ones_are_gone() {
    let c = cluster_with(
        100.0,
        ControllerConfig {
            pod_stop_seconds: 20.0,
            ..ControllerConfig::default()
        },
    );
    add_node(&c, node("n1", "4", "8Gi", 110));
    let mut d = deployment("web", 2, simple_spec());
    d["spec"]["strategy"] = json!({"type": "Recreate"});
    create(&c, &resources::DEPLOYMENTS, d);
    running(&c, "web", 2).await;
    let mut rx = c.store.subscribe();
    modify(&c, &resources::DEPLOYMENTS, Some("default"), "web", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    });
    eventually_true("new pods running", || {
        let ps = pods_of(&c, "web");
        ps.len() == 2
            && ps
                .iter()
                .all(|p| running_ready(p) && s(p, "/spec/containers/0/image") == "nginx:1.28")
    })
    .await;
    // No new pod was created while an old one still existed.
    let mut old_alive = 2;
    while let Ok(ev) = rx.try_recv() {
        if ev.resource.kind != "Pod" {
            continue;
        }
        let image = s(&ev.object, "/spec/containers/0/image");
        match ev.kind {
            EventType::Deleted if image == "nginx:1.27" => old_alive -= 1,
            EventType::Added if image == "nginx:1.28" => assert_eq!(
                old_alive, 0,
                "new pod created before the old ones were gone"
            ),
            _ => {}
        }
    }
}

// ------------------------------------------------------------------------------------------
// Scheduling
// ------------------------------------------------------------------------------------------

fn pending_message(c: &Cluster, pod: &str) -> Option<String> {
    let p = get(c, &resources::PODS, Some("default"), pod)?;
    let cond = condition(&p, "PodScheduled")?;
    (s(cond, "/status") == "False" && s(cond, "/reason") == "Unschedulable")
        .then(|| s(cond, "/message").to_string())
}

fn pod(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": name}}, "spec": spec})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_do_not_land_on_a_cordoned_node() {
    let c = cluster();
    let mut cordoned = node("cordoned", "4", "8Gi", 110);
    cordoned["spec"]["unschedulable"] = json!(true);
    add_node(&c, cordoned);
    create(&c, &resources::PODS, pod("lonely", simple_spec()));
    let msg = eventually("unschedulable", || pending_message(&c, "lonely")).await;
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
    // The lifecycle controller shows the cordon as a taint, like a real cluster.
    eventually_true("unschedulable taint", || {
        taint_keys(&get(&c, &resources::NODES, None, "cordoned").unwrap())
            .contains(&"node.kubernetes.io/unschedulable:NoSchedule".to_string())
    })
    .await;
    let events = c
        .store
        .list(&resources::EVENTS, Some("default"), &ListOptions::default())
        .0;
    assert!(
        events
            .iter()
            .any(|e| s(e, "/reason") == "FailedScheduling"
                && s(e, "/involvedObject/name") == "lonely")
    );

    add_node(&c, node("open", "4", "8Gi", 110));
    create(
        &c,
        &resources::DEPLOYMENTS,
        deployment("web", 4, simple_spec()),
    );
    let ps = running(&c, "web", 4).await;
    assert!(ps.iter().all(|p| s(p, "/spec/nodeName") == "open"));
    eventually_true("lonely bound", || {
        get(&c, &resources::PODS, Some("default"), "lonely")
            .is_some_and(|p| s(&p, "/spec/nodeName") == "open")
    })
    .await;
    let events = c
        .store
        .list(&resources::EVENTS, Some("default"), &ListOptions::default())
        .0;
    assert!(events.iter().any(|e| s(e, "/reason") == "Scheduled"
        && s(e, "/message") == "Successfully assigned default/lonely to open"));

    // Uncordon: new pods may land there again.
    modify(&c, &resources::NODES, None, "cordoned", |n| {
        n["spec"]["unschedulable"] = json!(false)
    });
    eventually_true("taint removed", || {
        taint_keys(&get(&c, &resources::NODES, None, "cordoned").unwrap()).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_needs_a_toleration_for_a_tainted_node() {
    let c = cluster();
    let mut n = node("spot-1", "4", "8Gi", 110);
    n["spec"]["taints"] =
        json!([{"key": "costop.io/spot-interruption", "value": "true", "effect": "NoSchedule"}]);
    add_node(&c, n);
    create(&c, &resources::PODS, pod("p", simple_spec()));
    let msg = eventually("unschedulable", || pending_message(&c, "p")).await;
    assert!(msg.starts_with("0/1 nodes are available: 1 node(s) had untolerated taint {costop.io/spot-interruption: true}."), "{msg}");
    // Adding a toleration (allowed on a pod) makes it schedulable at once.
    let t0 = std::time::Instant::now();
    c.store
        .transaction(|tx| {
            let mut p = tx.get(&resources::PODS, Some("default"), "p")?;
            p["spec"]["tolerations"].as_array_mut().unwrap().push(json!({"key": "costop.io/spot-interruption", "operator": "Exists", "effect": "NoSchedule"}));
            tx.update(&resources::PODS, Some("default"), "p", p)
        })
        .unwrap();
    eventually_true("bound", || {
        get(&c, &resources::PODS, Some("default"), "p")
            .is_some_and(|p| s(&p, "/spec/nodeName") == "spot-1")
    })
    .await;
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "took {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tolerating_pod_lands_on_the_standby_and_others_do_not() {
    let c = cluster();
    let mut spot = node("spot", "4", "8Gi", 110);
    spot["spec"]["unschedulable"] = json!(true);
    spot["spec"]["taints"] =
        json!([{"key": "costop.io/spot-interruption", "value": "true", "effect": "NoSchedule"}]);
    add_node(&c, spot);
    let mut standby = node("standby", "4", "8Gi", 110);
    standby["spec"]["taints"] =
        json!([{"key": "costop.io/standby", "value": "true", "effect": "NoSchedule"}]);
    add_node(&c, standby);
    let tolerate =
        json!([{"key": "costop.io/standby", "operator": "Exists", "effect": "NoSchedule"}]);
    create(
        &c,
        &resources::PODS,
        pod(
            "tolerant",
            json!({"containers": [container("100m", "64Mi")], "tolerations": tolerate}),
        ),
    );
    create(&c, &resources::PODS, pod("plain", simple_spec()));
    eventually_true("tolerant runs on standby", || {
        get(&c, &resources::PODS, Some("default"), "tolerant")
            .is_some_and(|p| s(&p, "/spec/nodeName") == "standby" && running_ready(&p))
    })
    .await;
    let msg = eventually("plain unschedulable", || pending_message(&c, "plain")).await;
    assert!(msg.contains("1 node(s) were unschedulable"), "{msg}");
    assert!(
        msg.contains("1 node(s) had untolerated taint {costop.io/standby: true}"),
        "{msg}"
    );
    assert!(
        get(&c, &resources::PODS, Some("default"), "plain")
            .unwrap()
            .pointer("/spec/nodeName")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_selector_and_required_affinity_are_honoured() {
    let c = cluster();
    for (n, zone, ty) in [
        ("a", "us-east-1a", "m5.large"),
        ("b", "us-east-1b", "m5.large"),
        ("c", "us-east-1b", "c5.xlarge"),
    ] {
        let mut nd = node(n, "4", "8Gi", 110);
        nd["metadata"]["labels"]["topology.kubernetes.io/zone"] = json!(zone);
        nd["metadata"]["labels"]["node.kubernetes.io/instance-type"] = json!(ty);
        add_node(&c, nd);
    }
    create(
        &c,
        &resources::PODS,
        pod(
            "by-selector",
            json!({"containers": [container("100m", "64Mi")], "nodeSelector": {"topology.kubernetes.io/zone": "us-east-1a"}}),
        ),
    );
    create(
        &c,
        &resources::PODS,
        pod(
            "by-affinity",
            json!({"containers": [container("100m", "64Mi")], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [
                    {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1b"]},
                    {"key": "node.kubernetes.io/instance-type", "operator": "NotIn", "values": ["m5.large"]}
                ]}
            ]}}}}),
        ),
    );
    create(
        &c,
        &resources::PODS,
        pod(
            "by-name",
            json!({"containers": [container("100m", "64Mi")], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}
            ]}}}}),
        ),
    );
    create(
        &c,
        &resources::PODS,
        pod(
            "nowhere",
            json!({"containers": [container("100m", "64Mi")], "nodeSelector": {"gpu": "true"}}),
        ),
    );
    for (p, n) in [("by-selector", "a"), ("by-affinity", "c"), ("by-name", "b")] {
        eventually_true(&format!("{p} on {n}"), || {
            get(&c, &resources::PODS, Some("default"), p)
                .is_some_and(|x| s(&x, "/spec/nodeName") == n)
        })
        .await;
    }
    let msg = eventually("nowhere unschedulable", || pending_message(&c, "nowhere")).await;
    assert!(
        msg.starts_with(
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
        ),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_requests_limit_pods_per_node() {
    let c = cluster();
    for n in ["n1", "n2"] {
        let mut nd = node(n, "1930m", "7Gi", 110);
        nd["metadata"]["labels"]["pool"] = json!("cpu");
        add_node(&c, nd);
    }
    // 500m each: 3 fit per node (1500m), the 7th and 8th do not.
    create(
        &c,
        &resources::DEPLOYMENTS,
        deployment(
            "cpu",
            8,
            json!({"nodeSelector": {"pool": "cpu"}, "containers": [container("500m", "100Mi")]}),
        ),
    );
    let ps = running(&c, "cpu", 6).await;
    for n in ["n1", "n2"] {
        assert_eq!(ps.iter().filter(|p| s(p, "/spec/nodeName") == n).count(), 3);
    }
    let pending: Vec<Value> = eventually("2 unschedulable", || {
        let ps: Vec<Value> = pods_of(&c, "cpu")
            .into_iter()
            .filter(|p| pending_message(&c, name(p)).is_some())
            .collect();
        (ps.len() == 2).then_some(ps)
    })
    .await;
    let msg = pending_message(&c, name(&pending[0])).unwrap();
    assert!(
        msg.starts_with("0/2 nodes are available: 2 Insufficient cpu."),
        "{msg}"
    );
    assert!(
        msg.ends_with(
            "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
        ),
        "{msg}"
    );

    // Memory and pod count limit too.
    add_node(&c, node("small", "8", "1Gi", 2));
    create(
        &c,
        &resources::DEPLOYMENTS,
        deployment(
            "mem",
            2,
            json!({"nodeSelector": {"kubernetes.io/hostname": "small"}, "containers": [container("10m", "600Mi")]}),
        ),
    );
    running(&c, "mem", 1).await;
    let msg = eventually("mem unschedulable", || {
        pods_of(&c, "mem")
            .iter()
            .find_map(|p| pending_message(&c, name(p)))
    })
    .await;
    assert!(msg.contains("1 Insufficient memory"), "{msg}");
    create(
        &c,
        &resources::DEPLOYMENTS,
        deployment(
            "tiny",
            2,
            json!({"nodeSelector": {"kubernetes.io/hostname": "small"}, "containers": [container("1m", "1Mi")]}),
        ),
    );
    running(&c, "tiny", 1).await;
    let msg = eventually("too many pods", || {
        pods_of(&c, "tiny")
            .iter()
            .find_map(|p| pending_message(&c, name(p)))
    })
    .await;
    assert!(msg.contains("Too many pods"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_priority_pod_preempts_placeholder_pods() {
    let c = cluster();
    c.store
        .create(
            &resources::PRIORITYCLASSES,
            None,
            json!({"metadata": {"name": "placeholder"}, "value": -10, "preemptionPolicy": "Never"}),
        )
        .unwrap();
    c.store
        .create(
            &resources::PRIORITYCLASSES,
            None,
            json!({"metadata": {"name": "critical"}, "value": 1000}),
        )
        .unwrap();
    add_node(&c, node("standby", "2", "8Gi", 110));
    let mut ph = deployment(
        "placeholder",
        4,
        json!({"priorityClassName": "placeholder", "terminationGracePeriodSeconds": 0, "containers": [container("500m", "64Mi")]}),
    );
    ph["spec"]["template"]["spec"]["priorityClassName"] = json!("placeholder");
    create(&c, &resources::DEPLOYMENTS, ph);
    running(&c, "placeholder", 4).await;

    create(
        &c,
        &resources::PODS,
        pod(
            "important",
            json!({"priorityClassName": "critical", "containers": [container("1", "64Mi")]}),
        ),
    );
    let p = eventually("important runs", || {
        get(&c, &resources::PODS, Some("default"), "important").filter(running_ready)
    })
    .await;
    assert_eq!(s(&p, "/spec/nodeName"), "standby");
    // Two placeholders made room; their replacements wait (they cannot preempt: Never).
    eventually_true("2 placeholders running, 2 pending", || {
        let ps: Vec<Value> = pods_of(&c, "placeholder")
            .into_iter()
            .filter(|p| !terminating(p))
            .collect();
        ps.len() == 4
            && ps.iter().filter(|p| running_ready(p)).count() == 2
            && ps
                .iter()
                .filter(|p| p.pointer("/spec/nodeName").is_none())
                .count()
                == 2
    })
    .await;
    let pending = pods_of(&c, "placeholder")
        .into_iter()
        .find(|p| p.pointer("/spec/nodeName").is_none())
        .unwrap();
    let msg = eventually("placeholder unschedulable", || {
        pending_message(&c, name(&pending))
    })
    .await;
    assert!(
        msg.ends_with("preemption: not eligible due to preemptionPolicy=Never."),
        "{msg}"
    );
    let events = c
        .store
        .list(&resources::EVENTS, Some("default"), &ListOptions::default())
        .0;
    assert_eq!(
        events
            .iter()
            .filter(|e| s(e, "/reason") == "Preempted")
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_with_preemption_policy_never_waits() {
    let c = cluster();
    c.store
        .create(
            &resources::PRIORITYCLASSES,
            None,
            json!({"metadata": {"name": "low"}, "value": -10}),
        )
        .unwrap();
    c.store
        .create(&resources::PRIORITYCLASSES, None, json!({"metadata": {"name": "high-polite"}, "value": 1000, "preemptionPolicy": "Never"}))
        .unwrap();
    add_node(&c, node("n1", "1", "8Gi", 110));
    create(
        &c,
        &resources::DEPLOYMENTS,
        deployment(
            "low",
            2,
            json!({"priorityClassName": "low", "containers": [container("500m", "64Mi")]}),
        ),
    );
    running(&c, "low", 2).await;
    create(
        &c,
        &resources::PODS,
        pod(
            "polite",
            json!({"priorityClassName": "high-polite", "containers": [container("500m", "64Mi")]}),
        ),
    );
    let msg = eventually("polite unschedulable", || pending_message(&c, "polite")).await;
    assert!(msg.contains("Insufficient cpu"), "{msg}");
    assert_eq!(running(&c, "low", 2).await.len(), 2);
}

// ------------------------------------------------------------------------------------------
// PodDisruptionBudgets, taints, garbage collection
// ------------------------------------------------------------------------------------------

fn pdb(name: &str, app: &str, field: &str, value: Value) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": app}}, field: value},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdb_status_counts_healthy_pods_and_allowed_disruptions() {
    let c = cluster_with(
        100.0,
        ControllerConfig {
            pod_stop_seconds: 60.0,
            ..ControllerConfig::default()
        },
    );
    add_node(&c, node("n1", "8", "16Gi", 110));
    create(
        &c,
        &resources::DEPLOYMENTS,
        deployment("web", 4, simple_spec()),
    );
    create(
        &c,
        &resources::DEPLOYMENTS,
        deployment("api", 4, simple_spec()),
    );
    create(
        &c,
        &resources::PODDISRUPTIONBUDGETS,
        pdb("web-min", "web", "minAvailable", json!(3)),
    );
    create(
        &c,
        &resources::PODDISRUPTIONBUDGETS,
        pdb("web-max", "api", "maxUnavailable", json!("50%")),
    );
    let ps = running(&c, "web", 4).await;
    running(&c, "api", 4).await;
    let status = |n: &str| {
        get(&c, &resources::PODDISRUPTIONBUDGETS, Some("default"), n)
            .and_then(|p| p.get("status").cloned())
    };
    eventually_true("pdb status", || {
        status("web-min")
            .is_some_and(|s| i(&s, "/currentHealthy") == 4 && i(&s, "/disruptionsAllowed") == 1)
            && status("web-max").is_some_and(|s| i(&s, "/disruptionsAllowed") == 2)
    })
    .await;
    let min = status("web-min").unwrap();
    assert_eq!(
        (i(&min, "/desiredHealthy"), i(&min, "/expectedPods")),
        (3, 4)
    );
    let max = status("web-max").unwrap();
    assert_eq!(
        (
            i(&max, "/desiredHealthy"),
            i(&max, "/expectedPods"),
            i(&max, "/currentHealthy")
        ),
        (2, 4, 4)
    );
    let pdb_obj = get(
        &c,
        &resources::PODDISRUPTIONBUDGETS,
        Some("default"),
        "web-min",
    )
    .unwrap();
    assert_eq!(i(&pdb_obj, "/status/observedGeneration"), 1);
    assert_eq!(
        condition(&pdb_obj, "DisruptionAllowed").map(|c| s(c, "/status")),
        Some("True")
    );

    // One eviction spends web-min's budget; the next is refused while the first pod
    // terminates and its replacement starts.
    evict(&c, name(&ps[0])).unwrap();
    let err = evict(&c, name(&ps[1])).unwrap_err();
    assert_eq!(err.code, 429);
    eventually_true("budget spent", || {
        status("web-min")
            .is_some_and(|s| i(&s, "/disruptionsAllowed") == 0 && i(&s, "/currentHealthy") == 3)
    })
    .await;
    // Once the replacement is Ready the budget is back.
    eventually_true("budget back", || {
        status("web-min")
            .is_some_and(|s| i(&s, "/disruptionsAllowed") == 1 && i(&s, "/currentHealthy") == 4)
    })
    .await;
    assert!(status("web-min").unwrap().get("disruptedPods").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disrupted_pod_entry_expires_when_the_pod_is_not_deleted() {
    // Timeout of 120 simulated seconds = 0.12 s real at scale 1000.
    let c = cluster_with(1000.0, ControllerConfig::default());
    add_node(&c, node("n1", "8", "16Gi", 110));
    create(
        &c,
        &resources::DEPLOYMENTS,
        deployment("web", 2, simple_spec()),
    );
    create(
        &c,
        &resources::PODDISRUPTIONBUDGETS,
        pdb("web", "web", "minAvailable", json!(1)),
    );
    let ps = running(&c, "web", 2).await;
    let status = || {
        get(&c, &resources::PODDISRUPTIONBUDGETS, Some("default"), "web")
            .and_then(|p| p.get("status").cloned())
    };
    eventually_true("allowed 1", || {
        status().is_some_and(|s| i(&s, "/disruptionsAllowed") == 1)
    })
    .await;
    // Record a disruption without deleting the pod, as an eviction that failed half way.
    let pod = name(&ps[0]).to_string();
    modify(
        &c,
        &resources::PODDISRUPTIONBUDGETS,
        Some("default"),
        "web",
        |p| {
            p["status"]["disruptedPods"] = json!({pod.clone(): Clock::now_rfc3339()});
            p["status"]["disruptionsAllowed"] = json!(0);
        },
    );
    eventually_true("entry expired and budget back", || {
        status().is_some_and(|s| {
            s.get("disruptedPods").is_none()
                && i(&s, "/disruptionsAllowed") == 1
                && i(&s, "/currentHealthy") == 2
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noexecute_taint_evicts_intolerant_pods() {
    let c = cluster();
    add_node(&c, node("n1", "8", "16Gi", 110));
    create(&c, &resources::PODS, pod("intolerant", simple_spec()));
    let tol = |secs: Option<i64>| {
        let mut t = json!({"key": "costop.io/spot-interruption", "operator": "Exists", "effect": "NoExecute"});
        if let Some(s) = secs {
            t["tolerationSeconds"] = json!(s);
        }
        json!({"containers": [container("100m", "64Mi")], "tolerations": [t]})
    };
    create(&c, &resources::PODS, pod("patient", tol(Some(60))));
    create(&c, &resources::PODS, pod("forever", tol(None)));
    for p in ["intolerant", "patient", "forever"] {
        eventually_true(p, || {
            get(&c, &resources::PODS, Some("default"), p).is_some_and(|x| running_ready(&x))
        })
        .await;
    }
    modify(&c, &resources::NODES, None, "n1", |n| {
        n["spec"]["taints"] =
            json!([{"key": "costop.io/spot-interruption", "value": "true", "effect": "NoExecute"}]);
    });
    let t0 = std::time::Instant::now();
    let p = eventually("intolerant evicted", || {
        get(&c, &resources::PODS, Some("default"), "intolerant").filter(terminating)
    })
    .await;
    assert_eq!(
        condition(&p, "DisruptionTarget").map(|c| s(c, "/reason")),
        Some("DeletionByTaintManager")
    );
    // 60 simulated seconds = 0.6 s real.
    eventually_true("patient evicted", || {
        get(&c, &resources::PODS, Some("default"), "patient").is_none_or(|p| terminating(&p))
    })
    .await;
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "tolerationSeconds not honoured: {:?}",
        t0.elapsed()
    );
    eventually_true("both gone", || {
        get(&c, &resources::PODS, Some("default"), "patient").is_none()
            && get(&c, &resources::PODS, Some("default"), "intolerant").is_none()
    })
    .await;
    assert!(
        get(&c, &resources::PODS, Some("default"), "forever").is_some_and(|p| !terminating(&p))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_deployment_collects_its_replicasets_and_pods() {
    let c = cluster_with(
        100.0,
        ControllerConfig {
            pod_stop_seconds: 0.0,
            ..ControllerConfig::default()
        },
    );
    add_node(&c, node("n1", "8", "16Gi", 110));
    create(
        &c,
        &resources::DEPLOYMENTS,
        deployment("web", 2, simple_spec()),
    );
    running(&c, "web", 2).await;
    c.store
        .delete(
            &resources::DEPLOYMENTS,
            Some("default"),
            "web",
            &DeleteOptions::default(),
        )
        .unwrap();
    eventually_true("all gone", || {
        c.store
            .list(
                &resources::REPLICASETS,
                Some("default"),
                &ListOptions::default(),
            )
            .0
            .is_empty()
            && pods_of(&c, "web").is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_a_deleted_node_are_collected() {
    let c = cluster();
    add_node(&c, node("n1", "8", "16Gi", 110));
    create(&c, &resources::PODS, pod("p", simple_spec()));
    eventually_true("running", || {
        get(&c, &resources::PODS, Some("default"), "p").is_some_and(|p| running_ready(&p))
    })
    .await;
    c.store
        .transaction(|tx| tx.remove(&resources::NODES, None, "n1"))
        .unwrap();
    eventually_true("pod gone", || {
        get(&c, &resources::PODS, Some("default"), "p").is_none()
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// EC2-backed nodes
// ------------------------------------------------------------------------------------------

fn instance(id: &str, state: InstanceState, ty: &str) -> InstanceFacts {
    let n: u32 = id.bytes().map(u32::from).sum::<u32>() % 250;
    InstanceFacts {
        instance_id: id.into(),
        state,
        private_dns_name: format!("ip-10-0-1-{n}.ec2.internal"),
        private_ip: Some(format!("10.0.1.{n}")),
        availability_zone: "us-east-1a".into(),
        region: "us-east-1".into(),
        instance_type: ty.into(),
        vcpus: if ty.ends_with("xlarge") { 4 } else { 2 },
        memory_mib: if ty.ends_with("xlarge") { 16384 } else { 8192 },
        max_pods: if ty.ends_with("xlarge") { 58 } else { 29 },
        spot: true,
        nodegroup: Some("spot-a".into()),
        labels: BTreeMap::from([("team".to_string(), "payments".to_string())]),
        taints: vec![TaintSpec {
            key: "dedicated".into(),
            value: "payments".into(),
            effect: "NoSchedule".into(),
        }],
    }
}

struct Linked {
    c: Cluster,
    link: Arc<NodeLink>,
    _task: JoinHandle<()>,
}

impl Drop for Linked {
    fn drop(&mut self) {
        self._task.abort();
    }
}

/// Scale 100: boot 30 s → 0.3 s, NotReady after 10 s → 0.1 s.
fn linked(scale: f64) -> Linked {
    let c = cluster_with(scale, ControllerConfig::default());
    let link = Arc::new(NodeLink::new(
        c.store.clone(),
        NodeLinkConfig {
            boot_seconds: 30.0,
            not_ready_seconds: 10.0,
            ..NodeLinkConfig::default()
        },
    ));
    let task = link.clone().spawn();
    Linked {
        c,
        link,
        _task: task,
    }
}

fn node_named(c: &Cluster, name: &str) -> Option<Value> {
    get(c, &resources::NODES, None, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_instance_becomes_a_ready_node_after_the_boot_delay() {
    let l = linked(100.0);
    let f = instance("i-0abc", InstanceState::Running, "m5.large");
    let dns = f.private_dns_name.clone();
    let t0 = std::time::Instant::now();
    l.link.observe(vec![f]);
    let n = eventually("node registered", || node_named(&l.c, &dns)).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(280),
        "registered before the boot delay: {:?}",
        t0.elapsed()
    );
    assert_eq!(
        condition(&n, "Ready").map(|c| s(c, "/status")),
        Some("True")
    );
    assert_eq!(s(&n, "/spec/providerID"), "aws:///us-east-1a/i-0abc");
    for (k, v) in [
        ("kubernetes.io/hostname", dns.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("node.kubernetes.io/instance-type", "m5.large"),
        ("topology.kubernetes.io/zone", "us-east-1a"),
        ("topology.kubernetes.io/region", "us-east-1"),
        ("eks.amazonaws.com/capacityType", "SPOT"),
        ("eks.amazonaws.com/nodegroup", "spot-a"),
        ("team", "payments"),
    ] {
        assert_eq!(
            n.pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str),
            Some(v),
            "label {k}"
        );
    }
    assert_eq!(taint_keys(&n), ["dedicated:NoSchedule"]);
    assert_eq!(s(&n, "/status/capacity/cpu"), "2");
    assert_eq!(s(&n, "/status/capacity/memory"), "8388608Ki");
    assert_eq!(s(&n, "/status/capacity/pods"), "29");
    assert_eq!(s(&n, "/status/allocatable/cpu"), "1930m");
    assert!(s(&n, "/status/nodeInfo/kubeletVersion").starts_with("v1.33."));
    assert_eq!(s(&n, "/status/nodeInfo/architecture"), "amd64");
    let addrs: Vec<&str> = n
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .map(|a| s(a, "/type"))
        .collect();
    assert_eq!(addrs, ["InternalIP", "InternalDNS", "Hostname"]);
    let lease = get(&l.c, &resources::LEASES, Some("kube-node-lease"), &dns).expect("lease");
    assert_eq!(s(&lease, "/spec/holderIdentity"), dns);
    assert_eq!(
        s(&lease, "/metadata/ownerReferences/0/uid"),
        s(&n, "/metadata/uid")
    );

    // A graviton type runs arm64; a pod lands on the new node.
    create(
        &l.c,
        &resources::PODS,
        pod(
            "p",
            json!({"containers": [container("100m", "64Mi")], "tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
        ),
    );
    eventually_true("pod running on the node", || {
        get(&l.c, &resources::PODS, Some("default"), "p")
            .is_some_and(|p| running_ready(&p) && s(&p, "/spec/nodeName") == dns)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_instance_leaves_a_notready_node_with_the_shutdown_taint() {
    let l = linked(100.0);
    let f = instance("i-0stop", InstanceState::Running, "m5.large");
    let dns = f.private_dns_name.clone();
    l.link.observe(vec![f.clone()]);
    eventually("node ready", || {
        node_named(&l.c, &dns)
            .filter(|n| condition(n, "Ready").is_some_and(|c| s(c, "/status") == "True"))
    })
    .await;
    create(
        &l.c,
        &resources::PODS,
        pod(
            "p",
            json!({"containers": [container("100m", "64Mi")], "tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
        ),
    );
    eventually_true("pod running", || {
        get(&l.c, &resources::PODS, Some("default"), "p").is_some_and(|p| running_ready(&p))
    })
    .await;

    l.link.observe(vec![InstanceFacts {
        state: InstanceState::Stopped,
        ..f
    }]);
    let n = eventually("node not ready with taints", || {
        node_named(&l.c, &dns).filter(|n| {
            let t = taint_keys(n);
            t.contains(&"node.cloudprovider.kubernetes.io/shutdown:NoSchedule".to_string())
                && t.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string())
                && t.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string())
        })
    })
    .await;
    let cond = condition(&n, "Ready").unwrap();
    assert_eq!(s(cond, "/status"), "Unknown");
    assert_eq!(s(cond, "/message"), "Kubelet stopped posting node status.");
    assert!(taint_keys(&n).contains(&"dedicated:NoSchedule".to_string()));
    // Its pod is no longer Ready, but it stays bound (its default 300 s toleration runs).
    let p = eventually("pod marked not ready", || {
        get(&l.c, &resources::PODS, Some("default"), "p").filter(|p| !ready(p))
    })
    .await;
    assert!(!terminating(&p));
    // The Node object is kept.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(node_named(&l.c, &dns).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_on_a_stopped_instance_are_evicted_when_their_default_toleration_runs_out() {
    // Scale 1000: 300 s of default toleration = 0.3 s real.
    let l = linked(1000.0);
    let f = instance("i-0evict", InstanceState::Running, "m5.large");
    l.link.observe(vec![f.clone()]);
    let dns = f.private_dns_name.clone();
    eventually("node", || node_named(&l.c, &dns)).await;
    create(
        &l.c,
        &resources::DEPLOYMENTS,
        deployment(
            "web",
            2,
            json!({"containers": [container("100m", "64Mi")], "tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
        ),
    );
    running(&l.c, "web", 2).await;
    l.link.observe(vec![InstanceFacts {
        state: InstanceState::Stopped,
        ..f
    }]);
    eventually_true("pods marked for deletion and replacements pending", || {
        let ps = pods_of(&l.c, "web");
        ps.iter().filter(|p| terminating(p)).count() == 2
            && ps.iter().filter(|p| !terminating(p)).count() == 2
    })
    .await;
    // The kubelet is down, so they stay Terminating (as on a real cluster) while the node exists.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        pods_of(&l.c, "web")
            .iter()
            .filter(|p| terminating(p))
            .count(),
        2
    );
    // The out-of-service taint lets pod GC finish them.
    modify(&l.c, &resources::NODES, None, &dns, |n| {
        n["spec"]["taints"].as_array_mut().unwrap().push(json!({"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}));
    });
    eventually_true("terminating pods force deleted", || {
        pods_of(&l.c, "web").iter().all(|p| !terminating(p))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_instance_keeps_labels_and_taints_and_takes_its_new_type() {
    let l = linked(100.0);
    let f = instance("i-0re", InstanceState::Running, "m5.large");
    let dns = f.private_dns_name.clone();
    l.link.observe(vec![f.clone()]);
    eventually("node", || node_named(&l.c, &dns)).await;
    // costop (or a user) labels and taints the node while it runs.
    modify(&l.c, &resources::NODES, None, &dns, |n| {
        n["metadata"]["labels"]["costop.io/standby"] = json!("true");
        n["spec"]["taints"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "costop.io/standby", "value": "true", "effect": "NoSchedule"}));
    });
    l.link.observe(vec![InstanceFacts {
        state: InstanceState::Stopped,
        ..f.clone()
    }]);
    eventually_true("not ready", || {
        node_named(&l.c, &dns)
            .is_some_and(|n| condition(&n, "Ready").is_some_and(|c| s(c, "/status") == "Unknown"))
    })
    .await;
    // Started again as a bigger type.
    let mut bigger = instance("i-0re", InstanceState::Running, "m5.xlarge");
    bigger.labels.clear();
    l.link.observe(vec![bigger]);
    let n = eventually("ready again", || {
        node_named(&l.c, &dns).filter(|n| {
            condition(n, "Ready").is_some_and(|c| s(c, "/status") == "True")
                && taint_keys(n).len() == 2
        })
    })
    .await;
    assert_eq!(
        s(&n, "/metadata/labels/node.kubernetes.io~1instance-type"),
        "m5.xlarge"
    );
    assert_eq!(s(&n, "/metadata/labels/costop.io~1standby"), "true");
    assert_eq!(s(&n, "/metadata/labels/team"), "payments");
    assert_eq!(s(&n, "/status/capacity/cpu"), "4");
    assert_eq!(s(&n, "/status/capacity/pods"), "58");
    let mut taints = taint_keys(&n);
    taints.sort();
    assert_eq!(
        taints,
        ["costop.io/standby:NoSchedule", "dedicated:NoSchedule"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_instance_removes_its_node() {
    let l = linked(100.0);
    let a = instance("i-0aaa", InstanceState::Running, "m5.large");
    let b = instance("i-0bbb", InstanceState::Running, "m5.large");
    l.link.observe(vec![a.clone(), b.clone()]);
    eventually_true("two nodes", || {
        node_named(&l.c, &a.private_dns_name).is_some()
            && node_named(&l.c, &b.private_dns_name).is_some()
    })
    .await;
    create(
        &l.c,
        &resources::PODS,
        pod(
            "p",
            json!({"nodeSelector": {"kubernetes.io/hostname": a.private_dns_name}, "containers": [container("100m", "64Mi")], "tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
        ),
    );
    eventually_true("pod running", || {
        get(&l.c, &resources::PODS, Some("default"), "p").is_some_and(|p| running_ready(&p))
    })
    .await;
    l.link.observe(vec![
        InstanceFacts {
            state: InstanceState::Terminated,
            ..a.clone()
        },
        b.clone(),
    ]);
    eventually_true("node a gone", || {
        node_named(&l.c, &a.private_dns_name).is_none()
    })
    .await;
    assert!(
        get(
            &l.c,
            &resources::LEASES,
            Some("kube-node-lease"),
            &a.private_dns_name
        )
        .is_none()
    );
    eventually_true("its pod gone", || {
        get(&l.c, &resources::PODS, Some("default"), "p").is_none()
    })
    .await;
    // Vanishing from the snapshot counts as terminated too.
    l.link.observe(vec![]);
    eventually_true("node b gone", || {
        node_named(&l.c, &b.private_dns_name).is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_turns_instances_into_nodes_that_run_workloads() {
    let sim = kubesim::Simulator::start(kubesim::SimConfig {
        time_scale: 100.0,
        node_boot_seconds: 10.0,
        pod_start_seconds: 1.0,
        pod_stop_seconds: 1.0,
        node_monitor_grace_seconds: 5.0,
        ..kubesim::SimConfig::default()
    })
    .await
    .unwrap();
    let mut f = instance("i-0sim", InstanceState::Running, "m6g.large");
    f.taints.clear();
    sim.observe_instances(vec![f.clone()]);
    let store = sim.store().clone();
    let n = eventually("node", || {
        store.get(&resources::NODES, None, &f.private_dns_name).ok()
    })
    .await;
    assert_eq!(s(&n, "/metadata/labels/kubernetes.io~1arch"), "arm64");
    sim.apply_yaml(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: app, image: nginx}]}\n",
    )
    .unwrap();
    eventually_true("2 running", || {
        store
            .list(&resources::PODS, Some("default"), &ListOptions::default())
            .0
            .iter()
            .filter(|p| running_ready(p))
            .count()
            == 2
    })
    .await;
    sim.observe_instances(vec![InstanceFacts {
        state: InstanceState::Stopped,
        ..f.clone()
    }]);
    eventually_true("node not ready", || {
        store
            .get(&resources::NODES, None, &f.private_dns_name)
            .is_ok_and(|n| condition(&n, "Ready").is_some_and(|c| s(c, "/status") == "Unknown"))
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// Scale
// ------------------------------------------------------------------------------------------

/// 200 nodes × 30 pods (40 nodes in debug builds, which are ~10× slower): everything settles,
/// the store then goes quiet (no busy loops), and a drained node's pods are replaced, bound and
/// running elsewhere within a fraction of a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_pods_on_hundreds_of_nodes_settle_go_quiet_and_drain_fast() {
    let nodes = if cfg!(debug_assertions) { 40 } else { 200 };
    let total = nodes * 30;
    let c = cluster();
    for n in 0..nodes {
        add_node(&c, node(&format!("n{n:03}"), "4", "16Gi", 58));
    }
    let t0 = std::time::Instant::now();
    for d in 0..20 {
        create(
            &c,
            &resources::DEPLOYMENTS,
            deployment(
                &format!("app{d:02}"),
                total as i64 / 20,
                json!({"containers": [container("100m", "128Mi")]}),
            ),
        );
    }
    // Listing thousands of pods is itself work: poll slowly.
    poll(
        &format!("{total} pods running"),
        Duration::from_millis(200),
        Duration::from_secs(60),
        || (pods(&c).iter().filter(|p| running_ready(p)).count() == total).then_some(()),
    )
    .await;
    eprintln!(
        "{total} pods on {nodes} nodes running after {:?}",
        t0.elapsed()
    );
    // Quiet: once statuses have caught up, nothing keeps writing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rv = c.store.current_rv();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        c.store.current_rv() - rv < 10,
        "store still busy: {} writes in 0.5 s",
        c.store.current_rv() - rv
    );

    // Drain one node through evictions; watch the replacements start elsewhere.
    let on_node: Vec<String> = pods(&c)
        .iter()
        .filter(|p| s(p, "/spec/nodeName") == "n000")
        .map(|p| name(p).to_string())
        .collect();
    assert!(!on_node.is_empty());
    modify(&c, &resources::NODES, None, "n000", |n| {
        n["spec"]["unschedulable"] = json!(true)
    });
    let before: std::collections::HashSet<String> =
        pods(&c).iter().map(|p| name(p).to_string()).collect();
    let mut rx = c.store.subscribe();
    let t1 = std::time::Instant::now();
    for p in &on_node {
        evict(&c, p).unwrap();
    }
    eprintln!("{} evictions took {:?}", on_node.len(), t1.elapsed());
    let mut bound = std::collections::HashSet::new();
    let mut up = std::collections::HashSet::new();
    let mut bound_after = Duration::ZERO;
    while up.len() < on_node.len() {
        let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("replacements too slow")
            .unwrap();
        if ev.resource.kind != "Pod" || before.contains(ev.name()) {
            continue;
        }
        assert_ne!(s(&ev.object, "/spec/nodeName"), "n000");
        if !s(&ev.object, "/spec/nodeName").is_empty() && bound.insert(ev.name().to_string()) {
            if bound.len() == 1 {
                eprintln!("first replacement bound after {:?}", t1.elapsed());
            }
            if bound.len() == on_node.len() {
                bound_after = t1.elapsed();
            }
        }
        if running_ready(&ev.object) {
            up.insert(ev.name().to_string());
        }
    }
    let running_after = t1.elapsed();
    eprintln!(
        "drained {} pods: replacements bound after {bound_after:?}, running after {running_after:?}",
        on_node.len()
    );
    assert!(
        running_after < Duration::from_secs(2),
        "drain too slow: {running_after:?}"
    );
}
