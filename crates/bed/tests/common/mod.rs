//! Helpers shared by the bed's integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use costop_bed::{Bed, Scenario};
use kubesim::resources;
use kubesim::store::ListOptions;
use serde_json::Value;

/// One spot node (with a label and a taint) in one zone, fast clock, no workloads.
pub const ONE_NODE: &str = r#"
name: one-node
cluster:
  name: link-test
  region: us-east-1
time_scale: 600
delays: {node_boot: 60, pod_start: 5, pod_stop: 5, node_monitor_grace: 40}
network:
  zones:
    - name: us-east-1a
node_groups:
  - name: spot
    capacity: spot
    instance_types: [m5.large]
    count: 1
    labels: {costop.io/pool: general}
    taints:
      - {key: dedicated, value: batch, effect: NoSchedule}
  - name: standby
    capacity: on-demand
    standby: true
    instance_types: [m5.large]
table:
  name: costop-interruptions
"#;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aws=warn".into()),
        )
        .try_init();
}

pub async fn one_node_bed() -> Bed {
    init_tracing();
    Bed::start(Scenario::from_yaml(ONE_NODE).expect("ONE_NODE is valid"))
        .await
        .expect("bed starts")
}

/// The Node backed by an instance, if any.
pub fn node_of(bed: &Bed, instance_id: &str) -> Option<Value> {
    bed.sim()
        .store()
        .list(&resources::NODES, None, &ListOptions::default())
        .0
        .into_iter()
        .find(|n| costop_bed::node_instance_id(n) == Some(instance_id))
}

pub fn has_taint(node: &Value, key: &str, effect: &str) -> bool {
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .is_some_and(|ts| ts.iter().any(|t| t["key"] == key && t["effect"] == effect))
}

pub fn label<'a>(node: &'a Value, key: &str) -> Option<&'a str> {
    node.pointer("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

/// Poll `f` every 50 ms until it returns `Some`, or panic with `what` and the last state.
pub async fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(state) if start.elapsed() > timeout => {
                panic!("timed out after {timeout:?} waiting for {what}; last state: {state}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Wait until the instance's node exists and its Ready condition is `ready`.
pub async fn wait_node_ready(bed: &Bed, id: &str, ready: bool, timeout: Duration) -> Value {
    wait_for(
        timeout,
        &format!("node of {id} Ready={ready}"),
        || match node_of(bed, id) {
            Some(n) if costop_bed::node_ready(&n) == ready => Ok(n),
            Some(n) => Err(format!(
                "node {} conditions {}",
                n["metadata"]["name"],
                n.pointer("/status/conditions").cloned().unwrap_or_default()
            )),
            None => Err("no node".into()),
        },
    )
    .await
}

pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks whether the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// One HTTP/1.1 request through the load balancer at `url` on a fresh connection (Host
/// `shop.example`): the status and the whole response, head and body.
pub async fn http(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the ALB accepts");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}
