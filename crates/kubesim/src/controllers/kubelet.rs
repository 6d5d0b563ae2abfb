//! The kubelet stand-in for every node: a pod bound to a Ready node shows `ContainerCreating`
//! at once (startTime, hostIP, Initialized) and becomes Running and Ready (podIP, container
//! statuses, all conditions True) `pod_start_seconds` later. A pod being deleted on a Ready
//! node is removed after `min(deletionGracePeriodSeconds, preStop sleep + pod_stop_seconds)`
//! (grace 0 or a pod that never ran: at once). Nodes that are NotReady or gone run nothing: their pods neither
//! start nor finish terminating, as with a real kubelet that is down. When a node comes back,
//! pods still bound to it (marked NotReady by the node lifecycle controller) become Ready
//! again after the start delay.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::At;
use super::informer::{Change, Informer, Key};
use super::{ControllerConfig, Loop, Timers};
use crate::clock::Clock;
use crate::network::Ipv4Cidr;
use crate::resources::{NODES, PODS, ResourceDef};

/// The longest preStop sleep of a pod's containers: `lifecycle.preStop.sleep.seconds`, or an
/// `exec` hook whose command is `sleep N` (also through `sh -c`). Other hooks count as instant.
pub fn pre_stop_seconds(pod: &Value) -> f64 {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let hook = &c["lifecycle"]["preStop"];
            if let Some(s) = hook["sleep"]["seconds"].as_f64() {
                return s;
            }
            let words: Vec<&str> = hook["exec"]["command"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .flat_map(str::split_whitespace)
                .collect();
            words
                .windows(2)
                .find(|w| w[0] == "sleep")
                .and_then(|w| w[1].parse().ok())
                .unwrap_or(0.0)
        })
        .fold(0.0, f64::max)
}

pub struct Kubelet {
    start_secs: f64,
    stop_secs: f64,
    dirty: BTreeSet<Key>,
    timers: Timers<Key>,
    /// Pods (by key) whose containers are starting: uid and when they will be up.
    starting: HashMap<Key, (String, Instant)>,
    /// Pods being stopped: uid and when they will be gone.
    stopping: HashMap<Key, (String, Instant)>,
    /// Node readiness as last seen, to react to transitions only.
    node_ready: HashMap<String, bool>,
    pod_network: Ipv4Cidr,
    /// The last pod IP handed out, as an offset from the network's address.
    next_ip: u64,
}

impl Kubelet {
    pub fn new(cfg: &ControllerConfig) -> Self {
        Self {
            start_secs: cfg.pod_start_seconds.max(0.0),
            stop_secs: cfg.pod_stop_seconds.max(0.0),
            dirty: BTreeSet::new(),
            timers: Timers::default(),
            starting: HashMap::new(),
            stopping: HashMap::new(),
            node_ready: HashMap::new(),
            pod_network: cfg.pod_network,
            next_ip: 0,
        }
    }

    /// Pod IPs come from the configured network in turn, skipping network and
    /// broadcast-looking addresses.
    fn alloc_ip(&mut self) -> String {
        let first = u64::from(self.pod_network.first_usable());
        loop {
            self.next_ip = self.next_ip % self.pod_network.usable() + 1;
            let ip = Ipv4Addr::from((first + self.next_ip - 1) as u32);
            if !matches!(ip.octets()[3], 0 | 255) {
                return ip.to_string();
            }
        }
    }
}

impl Loop for Kubelet {
    const NAME: &'static str = "kubelet";

    fn kinds(&self) -> Vec<&'static ResourceDef> {
        vec![&NODES, &PODS]
    }

    fn observe(&mut self, inf: &Informer, ch: &Change) {
        if ch.is(&NODES) {
            let name = super::name(ch.object()).to_string();
            let ready = ch.new.as_deref().is_some_and(super::node_ready);
            if self.node_ready.insert(name.clone(), ready) != Some(ready) {
                self.dirty.extend(
                    inf.pods_on(&name)
                        .map(|p| (super::namespace(p).to_string(), super::name(p).to_string())),
                );
            }
            if ch.new.is_none() {
                self.node_ready.remove(&name);
            }
            return;
        }
        let o = ch.object();
        let key = (super::namespace(o).to_string(), super::name(o).to_string());
        if ch.new.is_none() {
            self.starting.remove(&key);
            self.stopping.remove(&key);
            return;
        }
        if ch
            .new
            .as_deref()
            .is_some_and(|p| super::pod_node(p).is_some())
        {
            self.dirty.insert(key);
        }
    }

    fn mark_all(&mut self, inf: &Informer) {
        self.node_ready = inf
            .iter(&NODES)
            .map(|(_, n)| (super::name(n).to_string(), super::node_ready(n)))
            .collect();
        let keys: Vec<Key> = inf
            .nodes_with_pods()
            .flat_map(|n| inf.pods_on(n))
            .map(|p| (super::namespace(p).to_string(), super::name(p).to_string()))
            .collect();
        self.dirty.extend(keys);
    }

    fn work(&mut self, inf: &Informer) -> bool {
        for k in self.timers.due() {
            self.dirty.insert(k);
        }
        let mut n = 0;
        while let Some(key) = self.dirty.pop_first() {
            self.sync(inf, &key);
            n += 1;
            if n >= 2000 {
                return true;
            }
        }
        false
    }

    fn deadline(&self) -> Option<Instant> {
        self.timers.next()
    }
}

impl Kubelet {
    fn sync(&mut self, inf: &Informer, key: &Key) {
        let Some(pod) = inf.get_key(&PODS, key).cloned() else {
            self.starting.remove(key);
            self.stopping.remove(key);
            return;
        };
        let Some(node_name) = super::pod_node(&pod) else {
            return;
        };
        let uid = super::uid(&pod).to_string();
        let node = inf.get(&NODES, "", node_name);
        let node_up = node.is_some_and(|n| super::node_ready(n));
        if !node_up {
            // The kubelet is down: nothing starts or finishes; pending timers are dropped.
            self.starting.remove(key);
            self.stopping.remove(key);
            return;
        }
        let clock = *inf.store().clock();
        let now = Instant::now();
        if super::is_terminating(&pod) {
            self.starting.remove(key);
            let due = match self.stopping.get(key) {
                Some((u, at)) if *u == uid => *at,
                _ => {
                    let grace = pod
                        .at("/metadata/deletionGracePeriodSeconds")
                        .and_then(Value::as_i64)
                        .unwrap_or(30)
                        .max(0) as f64;
                    // Containers that never ran have nothing to stop. Those that did run their
                    // preStop hook first, then get SIGTERM and take `stop_secs` to exit; the
                    // grace period bounds it all ("the grace period … includes the time to
                    // execute the preStop hook",
                    // https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination).
                    let ran = super::phase(&pod) == "Running";
                    let secs = if ran {
                        grace.min(pre_stop_seconds(&pod) + self.stop_secs)
                    } else {
                        0.0
                    };
                    let at = now + clock.real_secs(secs);
                    self.stopping.insert(key.clone(), (uid.clone(), at));
                    at
                }
            };
            if due > now {
                self.timers.at(due, key.clone());
                return;
            }
            self.stopping.remove(key);
            super::write(inf.store(), "kubelet pod removal", |tx| {
                let cur = tx.get(&PODS, Some(&key.0), &key.1)?;
                if super::uid(&cur) == uid && super::is_terminating(&cur) {
                    tx.remove(&PODS, Some(&key.0), &key.1)?;
                }
                Ok(())
            });
            return;
        }
        if super::is_terminal(&pod) {
            return;
        }
        let running = super::phase(&pod) == "Running";
        if running && super::pod_ready(&pod) {
            self.starting.remove(key);
            return;
        }
        let host_ip = node
            .and_then(|n| n.at("/status/addresses"))
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get("type").and_then(Value::as_str) == Some("InternalIP"))
            })
            .and_then(|x| x.get("address"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match self.starting.get(key) {
            Some((u, at)) if *u == uid => {
                if *at > now {
                    self.timers.at(*at, key.clone());
                    return;
                }
                self.starting.remove(key);
                let host_network = pod
                    .at("/spec/hostNetwork")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let pod_ip = match super::s(&pod, "/status/podIP") {
                    Some(ip) if !ip.is_empty() => ip.to_string(),
                    _ if host_network => host_ip.clone(),
                    _ => self.alloc_ip(),
                };
                super::write(inf.store(), "kubelet pod start", |tx| {
                    tx.modify(&PODS, Some(&key.0), &key.1, |o| {
                        // Decided on a cached copy: re-check, a finished pod never starts again.
                        if super::uid(o) == uid
                            && !super::is_terminating(o)
                            && !super::is_terminal(o)
                            && super::pod_node(o).is_some()
                        {
                            set_running(o, &host_ip, &pod_ip);
                        }
                        Ok(())
                    })
                });
            }
            _ => {
                let at = now + clock.real_secs(self.start_secs);
                self.starting.insert(key.clone(), (uid.clone(), at));
                self.timers.at(at, key.clone());
                if !running {
                    super::write(inf.store(), "kubelet pod creating", |tx| {
                        tx.modify(&PODS, Some(&key.0), &key.1, |o| {
                            if super::uid(o) == uid
                                && !super::is_terminating(o)
                                && !super::is_terminal(o)
                            {
                                set_creating(o, &host_ip);
                            }
                            Ok(())
                        })?;
                        Ok(())
                    });
                }
            }
        }
    }
}

fn containers(pod: &Value, field: &str) -> Vec<Value> {
    pod.at(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn image_of(c: &Value) -> String {
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    if image.contains('/') || image.is_empty() {
        image.to_string()
    } else {
        format!("docker.io/library/{image}")
    }
}

/// The QoS class the API server derives (only set if admission has not).
fn qos_class(pod: &Value) -> &'static str {
    let cs = containers(pod, "containers");
    let mut any = false;
    let mut guaranteed = !cs.is_empty();
    for c in &cs {
        let r = c.get("resources");
        for k in ["cpu", "memory"] {
            let req = r.and_then(|r| r.at(&format!("/requests/{k}")));
            let lim = r.and_then(|r| r.at(&format!("/limits/{k}")));
            any |= req.is_some() || lim.is_some();
            if lim.is_none() || req.is_some_and(|q| Some(q) != lim) {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn set_common(o: &mut Value, host_ip: &str) {
    if super::s(o, "/status/startTime").is_none() {
        super::put(o, &["status", "startTime"], json!(Clock::now_rfc3339()));
    }
    if !host_ip.is_empty() {
        super::put(o, &["status", "hostIP"], json!(host_ip));
        super::put(o, &["status", "hostIPs"], json!([{"ip": host_ip}]));
    }
    if o.at("/status/qosClass").is_none() {
        let q = qos_class(o);
        super::put(o, &["status", "qosClass"], json!(q));
    }
}

fn set_creating(o: &mut Value, host_ip: &str) {
    super::put(o, &["status", "phase"], json!("Pending"));
    set_common(o, host_ip);
    let none = json!({"lastProbeTime": null});
    super::set_condition(
        o,
        "PodReadyToStartContainers",
        "False",
        None,
        None,
        none.clone(),
    );
    super::set_condition(o, "Initialized", "True", None, None, none.clone());
    let names: Vec<String> = containers(o, "containers")
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let msg = format!("containers with unready status: [{}]", names.join(" "));
    super::set_condition(
        o,
        "Ready",
        "False",
        Some("ContainersNotReady"),
        Some(&msg),
        none.clone(),
    );
    super::set_condition(
        o,
        "ContainersReady",
        "False",
        Some("ContainersNotReady"),
        Some(&msg),
        none,
    );
    let statuses: Vec<Value> = containers(o, "containers")
        .iter()
        .map(|c| {
            json!({
                "name": c.get("name").cloned().unwrap_or(json!("")),
                "image": c.get("image").cloned().unwrap_or(json!("")),
                "imageID": "",
                "ready": false,
                "started": false,
                "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}},
                "lastState": {},
            })
        })
        .collect();
    super::put(o, &["status", "containerStatuses"], json!(statuses));
}

/// The status of a container the kubelet has started (`state`: running, or an init container
/// that completed), with fresh image and container ids.
fn started_status(c: &Value, started: bool, state: &Value) -> Value {
    let id =
        || uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string();
    json!({
        "name": c.get("name").cloned().unwrap_or(json!("")),
        "image": c.get("image").cloned().unwrap_or(json!("")),
        "imageID": format!("{}@sha256:{}", image_of(c), id()),
        "containerID": format!("containerd://{}", id()),
        "ready": true,
        "started": started,
        "restartCount": 0,
        "state": state,
        "lastState": {},
    })
}

fn set_running(o: &mut Value, host_ip: &str, pod_ip: &str) {
    let now = Clock::now_rfc3339();
    super::put(o, &["status", "phase"], json!("Running"));
    set_common(o, host_ip);
    super::put(o, &["status", "podIP"], json!(pod_ip));
    super::put(o, &["status", "podIPs"], json!([{"ip": pod_ip}]));
    let none = json!({"lastProbeTime": null});
    for ty in [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
    ] {
        super::set_condition(o, ty, "True", None, None, none.clone());
    }
    let running = json!({"running": {"startedAt": now}});
    let statuses: Vec<Value> = containers(o, "containers")
        .iter()
        .map(|c| started_status(c, true, &running))
        .collect();
    super::put(o, &["status", "containerStatuses"], json!(statuses));
    let completed = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}});
    let inits: Vec<Value> = containers(o, "initContainers")
        .iter()
        .map(|c| started_status(c, false, &completed))
        .collect();
    if !inits.is_empty() {
        super::put(o, &["status", "initContainerStatuses"], json!(inits));
    }
}

#[cfg(test)]
mod pre_stop_tests {
    use super::pre_stop_seconds;
    use serde_json::json;

    #[test]
    fn the_longest_pre_stop_sleep_of_the_containers_counts() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "lifecycle": {"preStop": {"sleep": {"seconds": 20}}}},
            {"name": "b", "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "sleep 25"]}}}},
            {"name": "c"}
        ]}});
        assert_eq!(pre_stop_seconds(&pod), 25.0);
        assert_eq!(
            pre_stop_seconds(&json!({"spec": {"containers": [{"name": "c"}]}})),
            0.0
        );
    }
}

#[cfg(test)]
mod pod_ip_tests {
    use super::{ControllerConfig, Kubelet};

    #[test]
    fn pod_ips_come_from_the_configured_network_in_turn_skipping_0_and_255() {
        let mut k = Kubelet::new(&ControllerConfig {
            pod_network: "10.70.0.0/24".parse().expect("cidr"),
            ..ControllerConfig::default()
        });
        let ips: Vec<String> = (0..256).map(|_| k.alloc_ip()).collect();
        assert_eq!(ips[0], "10.70.0.1");
        assert_eq!(ips[253], "10.70.0.254");
        // 254 usable addresses, then round again: never .0 or .255, never outside the range.
        assert_eq!(ips[254], "10.70.0.1");
        assert!(ips.iter().all(|ip| ip.starts_with("10.70.0.")));
        assert_eq!(
            Kubelet::new(&ControllerConfig::default()).alloc_ip(),
            "10.64.0.1"
        );
    }
}
