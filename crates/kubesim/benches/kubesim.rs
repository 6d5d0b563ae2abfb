//! kubesim at scale: 200 nodes × 30 pods. Measures start-up (nodes Ready and every pod Running),
//! listing the pods of one node over HTTP (`fieldSelector=spec.nodeName`, as costop and kubectl
//! drain do), and evictions per second through the Eviction API.
//!
//! Run: `cargo bench -p kubesim --bench kubesim` (add `-- --nodes 50 --pods-per-node 30` to
//! shrink). Prints one line per figure; BENCHMARKS.md records them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, EvictParams, ListParams};
use kubesim::nodes::{InstanceFacts, InstanceState};
use kubesim::resources;
use kubesim::store::ListOptions;
use kubesim::{SimConfig, Simulator};
use serde_json::json;

struct Args {
    nodes: usize,
    pods_per_node: usize,
    lists: usize,
    evictions: usize,
}

fn args() -> Args {
    let mut a = Args {
        nodes: 200,
        pods_per_node: 30,
        lists: 200,
        evictions: 1000,
    };
    let v: Vec<String> = std::env::args().collect();
    let get = |flag: &str| {
        v.iter()
            .position(|x| x == flag)
            .and_then(|i| v.get(i + 1))
            .and_then(|s| s.parse().ok())
    };
    if let Some(n) = get("--nodes") {
        a.nodes = n;
    }
    if let Some(n) = get("--pods-per-node") {
        a.pods_per_node = n;
    }
    if let Some(n) = get("--lists") {
        a.lists = n;
    }
    if let Some(n) = get("--evictions") {
        a.evictions = n;
    }
    a
}

fn instance(i: usize) -> InstanceFacts {
    let (b, c) = (i / 250, i % 250 + 1);
    InstanceFacts {
        instance_id: format!("i-{i:017x}"),
        state: InstanceState::Running,
        private_dns_name: format!("ip-10-0-{b}-{c}.ec2.internal"),
        private_ip: Some(format!("10.0.{b}.{c}")),
        availability_zone: if i.is_multiple_of(2) {
            "us-east-1a".into()
        } else {
            "us-east-1b".into()
        },
        region: "us-east-1".into(),
        instance_type: "m5.8xlarge".into(),
        vcpus: 32,
        memory_mib: 131_072,
        max_pods: 234,
        spot: true,
        nodegroup: Some("bench".into()),
        labels: BTreeMap::new(),
        taints: Vec::new(),
    }
}

fn count_running(sim: &Simulator) -> usize {
    let (pods, _) = sim
        .store()
        .list(&resources::PODS, None, &ListOptions::default());
    pods.iter()
        .filter(|p| p.pointer("/status/phase").and_then(|v| v.as_str()) == Some("Running"))
        .count()
}

fn count_ready_nodes(sim: &Simulator) -> usize {
    let (nodes, _) = sim
        .store()
        .list(&resources::NODES, None, &ListOptions::default());
    nodes
        .iter()
        .filter(|n| {
            n.pointer("/status/conditions")
                .and_then(|c| c.as_array())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
        .count()
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        if t0.elapsed() > timeout {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let a = args();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let total = a.nodes * a.pods_per_node;
    let t0 = Instant::now();
    let sim = Simulator::start(SimConfig {
        time_scale: 1000.0,
        node_boot_seconds: 0.0,
        pod_start_seconds: 0.0,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    sim.observe_instances((0..a.nodes).map(instance).collect());
    wait_for("nodes Ready", Duration::from_secs(120), || {
        count_ready_nodes(&sim) == a.nodes
    })
    .await;
    let nodes_ready = t0.elapsed();
    // One Deployment per 100 pods, each pod small enough that 30 fit on a node.
    let per_deploy = 100;
    let deployments = total.div_ceil(per_deploy);
    for d in 0..deployments {
        let replicas = per_deploy.min(total - d * per_deploy);
        let name = format!("app-{d}");
        sim.apply_object(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "nginx",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}}
        }))
        .expect("deployment created");
    }
    wait_for("every pod Running", Duration::from_secs(600), || {
        count_running(&sim) >= total
    })
    .await;
    let all_running = t0.elapsed();
    println!(
        "startup: {} nodes Ready in {:.2?}; {} pods Running in {:.2?}",
        a.nodes, nodes_ready, total, all_running
    );

    let config = kube::Config::new(sim.url().parse().expect("url"));
    let client = kube::Client::try_from(config).expect("client");
    let pods: Api<Pod> = Api::all(client.clone());

    // List pods by node.
    let mut lat = Vec::with_capacity(a.lists);
    let t = Instant::now();
    for i in 0..a.lists {
        let node = instance(i % a.nodes).private_dns_name;
        let s = Instant::now();
        let l = pods
            .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await
            .expect("list");
        lat.push(s.elapsed());
        assert!(!l.items.is_empty(), "node {node} has pods");
    }
    let wall = t.elapsed();
    lat.sort();
    println!(
        "list pods by node: {} lists in {:.2?} ({:.0}/s), p50 {:.2?}, p99 {:.2?}",
        a.lists,
        wall,
        a.lists as f64 / wall.as_secs_f64(),
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );

    // Evictions per second: evict pods of the first nodes, 32 in flight.
    let (victims, _) = sim
        .store()
        .list(&resources::PODS, Some("default"), &ListOptions::default());
    let victims: Vec<String> = victims
        .iter()
        .take(a.evictions)
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let ns_pods: Api<Pod> = Api::namespaced(client, "default");
    let t = Instant::now();
    use futures::StreamExt;
    let ok = futures::stream::iter(victims.iter())
        .map(|name| {
            let api = ns_pods.clone();
            async move { api.evict(name, &EvictParams::default()).await.is_ok() }
        })
        .buffer_unordered(32)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    let wall = t.elapsed();
    println!(
        "evictions: {ok}/{} accepted in {:.2?} ({:.0}/s)",
        victims.len(),
        wall,
        ok as f64 / wall.as_secs_f64()
    );
    sim.shutdown();
}
