//! The simulator through the real `kubectl` binary: every test starts its own simulator,
//! writes a kubeconfig, and runs kubectl as a user would. Successful commands must not print
//! anything on stderr (no discovery or validation warnings).

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use kubesim::resources;
use serde_json::{Value, json};

const NODE: &str = "ip-10-0-1-10.ec2.internal";

/// A node and two pods (one running on it, one pending) in `default`.
fn small_cluster(env: &KubectlEnv) {
    let store = env.store();
    node(
        store,
        NODE,
        json!({"kubernetes.io/hostname": NODE, "node-role.kubernetes.io/worker": ""}),
    );
    pod(
        store,
        "default",
        "web-1",
        Some(NODE),
        json!({"app": "web"}),
        None,
        false,
    );
    ensure_running_blocking(store, "default", "web-1");
    let mut pending = json!({
        "metadata": {"name": "web-2", "labels": {"app": "web"}},
        // No scheduler picks this one up.
        "spec": {"schedulerName": "manual", "containers": [{"name": "app", "image": "nginx:1.27"}]},
    });
    pending["metadata"]["namespace"] = json!("default");
    store
        .create(&resources::PODS, Some("default"), pending)
        .expect("pending pod");
}

fn lines(s: &str) -> Vec<Vec<String>> {
    s.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn get_prints_json_yaml_and_wide_tables() {
    let env = KubectlEnv::new();
    small_cluster(&env);

    let out = env.ok(&["get", "pods"]);
    let rows = lines(&out);
    assert_eq!(rows[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(rows[1][..4], ["web-1", "1/1", "Running", "0"]);
    assert_eq!(rows[2][..4], ["web-2", "0/1", "Pending", "0"]);

    let out = env.ok(&["get", "pods", "-o", "wide"]);
    assert!(out.starts_with("NAME"), "{out}");
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("web-1") && l.contains(NODE)),
        "{out}"
    );

    let out = env.ok(&["get", "nodes", "-o", "wide"]);
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ]
    );
    let row = lines(&out)[1].clone();
    assert_eq!(row[..3], [NODE, "Ready", "worker"]);

    let json: Value =
        serde_json::from_str(&env.ok(&["get", "pods", "-o", "json"])).expect("json output");
    assert_eq!(json["kind"], "List");
    let items = json["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|i| i["kind"] == "Pod" && i["apiVersion"] == "v1")
    );

    let yaml = env.ok(&["get", "pod", "web-1", "-o", "yaml"]);
    let pod: Value = serde_yaml::from_str(&yaml).expect("yaml output");
    assert_eq!(
        (pod["kind"].as_str(), pod["spec"]["nodeName"].as_str()),
        (Some("Pod"), Some(NODE))
    );

    // All namespaces, other kinds, and the columns of the real printers.
    let out = env.ok(&["get", "pods", "-A"]);
    assert!(out.starts_with("NAMESPACE"), "{out}");
    let out = env.ok(&["get", "namespaces"]);
    assert!(
        lines(&out)
            .iter()
            .any(|r| r[..2] == ["kube-system", "Active"]),
        "{out}"
    );
    let out = env.ok(&["get", "priorityclasses"]);
    assert!(
        out.starts_with("NAME") && out.contains("PREEMPTIONPOLICY"),
        "{out}"
    );
}

#[test]
fn get_of_a_missing_pod_is_not_found() {
    let env = KubectlEnv::new();
    let out = env.kubectl(&["get", "pod", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error from server (NotFound): pods \"nope\" not found"
    );
    let out = env.kubectl(&["delete", "deployment", "nope"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error from server (NotFound): deployments.apps \"nope\" not found"
    );
}

#[test]
fn describe_shows_nodes_and_pods() {
    let env = KubectlEnv::new();
    small_cluster(&env);
    let out = env.ok(&["describe", "node", NODE]);
    assert!(
        out.contains(&format!("Name:               {NODE}")),
        "{out}"
    );
    assert!(
        out.contains("Non-terminated Pods:          (1 in total)"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("default") && l.contains("web-1") && l.contains("100m")),
        "{out}"
    );

    let out = env.ok(&["describe", "pod", "web-1"]);
    assert!(out.contains("Status:           Running"), "{out}");
    assert!(out.contains(&format!("Node:             {NODE}")), "{out}");
    assert!(
        out.contains("QoS Class:                    Burstable"),
        "{out}"
    );
    assert!(
        out.contains("node.kubernetes.io/not-ready:NoExecute op=Exists for 300s"),
        "{out}"
    );
}

#[test]
fn label_taint_and_cordon_change_the_node() {
    let env = KubectlEnv::new();
    small_cluster(&env);
    let node = |env: &KubectlEnv| {
        env.store()
            .get(&resources::NODES, None, NODE)
            .expect("node")
    };

    assert_eq!(
        env.ok(&["label", "node", NODE, "costop.io/pool=general"])
            .trim(),
        format!("node/{NODE} labeled")
    );
    assert_eq!(
        node(&env)["metadata"]["labels"]["costop.io/pool"],
        "general"
    );
    env.ok(&["label", "node", NODE, "costop.io/pool-"]);
    assert!(
        node(&env)["metadata"]["labels"]
            .get("costop.io/pool")
            .is_none()
    );

    assert_eq!(
        env.ok(&["taint", "node", NODE, "dedicated=batch:NoSchedule"])
            .trim(),
        format!("node/{NODE} tainted")
    );
    let taints = node(&env)["spec"]["taints"].clone();
    assert!(
        taints
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["key"] == "dedicated"
                && t["value"] == "batch"
                && t["effect"] == "NoSchedule"),
        "{taints}"
    );
    assert_eq!(
        env.ok(&["taint", "node", NODE, "dedicated=batch:NoSchedule-"])
            .trim(),
        format!("node/{NODE} untainted")
    );
    let taints = node(&env)["spec"]["taints"].clone();
    assert!(
        !taints
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["key"] == "dedicated"),
        "{taints}"
    );

    assert_eq!(
        env.ok(&["cordon", NODE]).trim(),
        format!("node/{NODE} cordoned")
    );
    let out = env.ok(&["get", "nodes"]);
    assert_eq!(lines(&out)[1][..2], [NODE, "Ready,SchedulingDisabled"]);
    assert_eq!(
        env.ok(&["uncordon", NODE]).trim(),
        format!("node/{NODE} uncordoned")
    );
    let out = env.ok(&["get", "nodes"]);
    assert_eq!(lines(&out)[1][..2], [NODE, "Ready"]);
}

#[test]
fn patch_applies_strategic_merge_and_json_patches() {
    let env = KubectlEnv::new();
    small_cluster(&env);
    env.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: \"1\"}\n",
    );
    let data = |env: &KubectlEnv| {
        env.store()
            .get(&resources::CONFIGMAPS, Some("default"), "cfg")
            .expect("cm")["data"]
            .clone()
    };

    assert_eq!(
        env.ok(&["patch", "configmap", "cfg", "-p", r#"{"data":{"b":"2"}}"#])
            .trim(),
        "configmap/cfg patched"
    );
    assert_eq!(data(&env), json!({"a": "1", "b": "2"}));
    env.ok(&[
        "patch",
        "configmap",
        "cfg",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"a":null}}"#,
    ]);
    assert_eq!(data(&env), json!({"b": "2"}));
    env.ok(&[
        "patch",
        "configmap",
        "cfg",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/data/b","value":"3"}]"#,
    ]);
    assert_eq!(data(&env), json!({"b": "3"}));

    // A pod's spec is immutable: kubectl shows the server's 422.
    let out = env.kubectl(&[
        "patch",
        "pod",
        "web-1",
        "-p",
        r#"{"spec":{"restartPolicy":"Never"}}"#,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("The Pod \"web-1\" is invalid: spec: Forbidden: pod updates may not change fields other than"), "{err}");
}

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx:1.27
"#;

#[test]
fn apply_creates_then_updates_with_server_side_validation() {
    let env = KubectlEnv::new();
    assert_eq!(
        env.ok_stdin(&["apply", "-f", "-"], DEPLOYMENT).trim(),
        "deployment.apps/web created"
    );
    let d = env
        .store()
        .get(&resources::DEPLOYMENTS, Some("default"), "web")
        .expect("deployment");
    assert_eq!(d["spec"]["replicas"], 2);
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );

    let changed = DEPLOYMENT
        .replace("replicas: 2", "replicas: 3")
        .replace("nginx:1.27", "nginx:1.28");
    assert_eq!(
        env.ok_stdin(&["apply", "-f", "-"], &changed).trim(),
        "deployment.apps/web configured"
    );
    let d = env
        .store()
        .get(&resources::DEPLOYMENTS, Some("default"), "web")
        .expect("deployment");
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.28"
    );
    assert_eq!(
        env.ok_stdin(&["apply", "-f", "-"], &changed).trim(),
        "deployment.apps/web unchanged"
    );

    // Server-side apply and a dry run work too.
    let ssa = changed.replace("replicas: 3", "replicas: 4");
    assert_eq!(
        env.ok_stdin(&["apply", "--server-side", "-f", "-"], &ssa)
            .trim(),
        "deployment.apps/web serverside-applied"
    );
    let dry = changed.replace("replicas: 3", "replicas: 9");
    env.ok_stdin(&["apply", "--dry-run=server", "-f", "-"], &dry);
    let d = env
        .store()
        .get(&resources::DEPLOYMENTS, Some("default"), "web")
        .expect("deployment");
    assert_eq!(d["spec"]["replicas"], 4);
}

#[test]
fn create_generators_work_although_kubectl_sends_protobuf() {
    let env = KubectlEnv::new();
    assert_eq!(
        env.ok(&["create", "namespace", "team-a"]).trim(),
        "namespace/team-a created"
    );
    assert_eq!(
        env.ok(&[
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=1",
            "-n",
            "team-a"
        ])
        .trim(),
        "configmap/cfg created"
    );
    env.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=3",
        "--port=80",
        "-n",
        "team-a",
    ]);
    env.ok(&[
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--max-unavailable=50%",
        "-n",
        "team-a",
    ]);
    env.ok(&[
        "create",
        "priorityclass",
        "batch",
        "--value=1000",
        "--preemption-policy=Never",
    ]);
    env.ok(&[
        "create",
        "service",
        "nodeport",
        "web",
        "--tcp=80:8080",
        "--node-port=30080",
        "-n",
        "team-a",
    ]);
    let store = env.store();
    let get = |r, ns: Option<&str>, name: &str| store.get(r, ns, name).expect("created");
    assert_eq!(
        get(&resources::CONFIGMAPS, Some("team-a"), "cfg")["data"],
        json!({"a": "1"})
    );
    let d = get(&resources::DEPLOYMENTS, Some("team-a"), "web");
    assert_eq!(
        (
            d["spec"]["replicas"].clone(),
            d["spec"]["selector"]["matchLabels"]["app"].clone()
        ),
        (json!(3), json!("web"))
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    assert_eq!(
        get(&resources::PODDISRUPTIONBUDGETS, Some("team-a"), "web")["spec"]["maxUnavailable"],
        "50%"
    );
    let pc = get(&resources::PRIORITYCLASSES, None, "batch");
    assert_eq!(
        (pc["value"].clone(), pc["preemptionPolicy"].clone()),
        (json!(1000), json!("Never"))
    );
    let svc = get(&resources::SERVICES, Some("team-a"), "web");
    assert_eq!(
        svc["spec"]["ports"][0],
        json!({"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080})
    );

    // Deleting the namespace takes its contents along.
    assert_eq!(
        env.ok(&["delete", "namespace", "team-a"]).trim(),
        "namespace \"team-a\" deleted"
    );
    assert!(
        store
            .get(&resources::CONFIGMAPS, Some("team-a"), "cfg")
            .is_err()
    );
    let out = env.kubectl(&["delete", "namespace", "default"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error from server (Forbidden): namespaces \"default\" is forbidden: this namespace may not be deleted"
    );
}

#[test]
fn delete_removes_objects() {
    let env = KubectlEnv::new();
    small_cluster(&env);
    let _reaper = env.spawn(reap_terminated_pods(env.store().clone()));
    assert_eq!(
        env.ok(&["delete", "pod", "web-2"]).trim(),
        "pod \"web-2\" deleted"
    );
    // A running pod terminates gracefully; kubectl waits until it is gone.
    assert_eq!(
        env.ok(&["delete", "pod", "web-1", "--timeout=20s"]).trim(),
        "pod \"web-1\" deleted"
    );
    assert!(
        env.store()
            .get(&resources::PODS, Some("default"), "web-1")
            .is_err()
    );
    env.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n",
    );
    assert_eq!(
        env.ok(&["delete", "configmap", "cfg"]).trim(),
        "configmap \"cfg\" deleted"
    );
}

#[test]
fn get_watch_streams_changes() {
    let env = KubectlEnv::new();
    small_cluster(&env);
    let mut child = env
        .command(&["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl get -w starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a line from kubectl get -w")
    };
    assert!(next().starts_with("NAME"));
    let mut initial = vec![next(), next()];
    initial.sort();
    assert!(
        initial[0].starts_with("web-1") && initial[1].starts_with("web-2"),
        "{initial:?}"
    );

    // A change shows up as a new row.
    env.store()
        .modify(&resources::PODS, Some("default"), "web-2", |p| {
            p["status"]["reason"] = json!("Evicted");
            Ok(())
        })
        .expect("modify");
    let row = next();
    assert!(row.starts_with("web-2") && row.contains("Evicted"), "{row}");
    env.store()
        .transaction(|tx| tx.remove(&resources::PODS, Some("default"), "web-2"))
        .expect("remove");
    assert!(next().starts_with("web-2"));

    let _ = child.kill();
    let _ = child.wait();
}

/// A ReplicaSet-owned pod, a DaemonSet pod and a PDB on one node; returns the pods' names.
fn drain_fixture(env: &KubectlEnv) -> (String, String) {
    let store = env.store();
    node(store, NODE, json!({"kubernetes.io/hostname": NODE}));
    let template = |app: &str| json!({"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}});
    let rs = store
        .create(
            &resources::REPLICASETS,
            Some("default"),
            json!({"metadata": {"name": "web-5d8f"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": template("web")}}),
        )
        .expect("replicaset");
    let ds = store
        .create(
            &resources::DAEMONSETS,
            Some("default"),
            json!({"metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent")}}),
        )
        .expect("daemonset");
    let web = owned_pod(store, "default", &rs, NODE, json!({"app": "web"}));
    let agent = owned_pod(store, "default", &ds, NODE, json!({"app": "agent"}));
    // minAvailable 1 of 1 healthy: no disruption allowed.
    store
        .create(
            &resources::PODDISRUPTIONBUDGETS,
            Some("default"),
            json!({"metadata": {"name": "web"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}),
        )
        .expect("pdb");
    settle_pdb(store, "default", "web", 0, 1, 1, 1);
    (web, agent)
}

#[test]
fn drain_is_blocked_by_a_pdb_then_allowed() {
    let env = KubectlEnv::new();
    let (web, agent) = drain_fixture(&env);
    let _reaper = env.spawn(reap_terminated_pods(env.store().clone()));

    let out = env.kubectl(&["drain", NODE, "--ignore-daemonsets", "--timeout=3s"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "drain should fail:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("node/{NODE} cordoned")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("evicting pod default/{web}")),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "error when evicting pods/\"{web}\" -n \"default\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget."
        )),
        "{stderr}"
    );
    assert!(
        env.store()
            .get(&resources::PODS, Some("default"), &web)
            .is_ok()
    );

    // Loosen the budget; the next drain evicts the pod and waits until it is gone.
    env.ok(&[
        "patch",
        "pdb",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"minAvailable":0}}"#,
    ]);
    settle_pdb(env.store(), "default", "web", 1, 1, 0, 1);
    let out = env.kubectl(&["drain", NODE, "--ignore-daemonsets", "--timeout=30s"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "drain should pass:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(&format!("pod/{web} evicted")), "{stdout}");
    assert!(stdout.contains(&format!("node/{NODE} drained")), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "Warning: ignoring DaemonSet-managed Pods: default/{agent}"
        )),
        "{stderr}"
    );
    assert!(
        env.store()
            .get(&resources::PODS, Some("default"), &web)
            .is_err()
    );
    assert!(
        env.store()
            .get(&resources::PODS, Some("default"), &agent)
            .is_ok()
    );
}
