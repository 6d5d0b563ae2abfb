//! Services, EndpointSlices, Ingresses and namespace deletion through the `kube` crate and the
//! real `kubectl`: ClusterIP and node port allocation, slices following pods, the tables
//! `kubectl get` prints, and `kubectl delete -f` of a manifest that lists its namespace first.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::Status;
use kubesim::SimConfig;
use kubesim::resources;
use kubesim::store::{EventType, ListOptions};
use serde_json::{Value, json};

const NODE: &str = "ip-10-0-1-10.ec2.internal";
const ZONE: &str = "us-east-1a";

fn api_err<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Box<Status> {
    match r {
        Err(kube::Error::Api(s)) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

fn node_port_service(name: &str, node_port: Option<i64>) -> Service {
    let mut port = json!({"name": "http", "port": 80, "targetPort": "http"});
    if let Some(np) = node_port {
        port["nodePort"] = json!(np);
    }
    from(
        json!({"metadata": {"name": name}, "spec": {"type": "NodePort", "selector": {"app": name}, "ports": [port]}}),
    )
}

/// Slower pod stops and namespace cleanup than the tests' default, so that the
/// intermediate states stay long enough to be looked at.
fn slow_teardown() -> SimConfig {
    SimConfig {
        pod_stop_seconds: 50.0,
        namespace_cleanup_delay_seconds: 50.0,
        ..sim_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_port_service_gets_a_cluster_ip_node_ports_and_the_api_server_defaults() {
    let sim = start().await;
    let svcs: Api<Service> = Api::default_namespaced(client(&sim));
    let created = svcs
        .create(&PostParams::default(), &node_port_service("web", None))
        .await
        .expect("created");
    let v = serde_json::to_value(&created).expect("json");
    let spec = &v["spec"];
    let ip: std::net::Ipv4Addr = spec["clusterIP"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("an IPv4 cluster IP");
    assert_eq!(ip.octets()[..2], [10, 100], "{ip}");
    assert_eq!(spec["clusterIPs"], json!([ip.to_string()]));
    assert_eq!(
        (
            spec["ipFamilies"].clone(),
            spec["ipFamilyPolicy"].clone(),
            spec["sessionAffinity"].clone(),
            spec["internalTrafficPolicy"].clone(),
            spec["externalTrafficPolicy"].clone(),
        ),
        (
            json!(["IPv4"]),
            json!("SingleStack"),
            json!("None"),
            json!("Cluster"),
            json!("Cluster")
        )
    );
    let port = &spec["ports"][0];
    assert_eq!(
        (port["protocol"].clone(), port["targetPort"].clone()),
        (json!("TCP"), json!("http"))
    );
    let np = port["nodePort"].as_i64().expect("a node port");
    assert!((30000..=32767).contains(&np), "{np}");

    // A plain ClusterIP service gets no node port; a headless one no address.
    let plain = svcs
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "plain"}, "spec": {"ports": [{"port": 8080}]}})),
        )
        .await
        .expect("created");
    let plain = serde_json::to_value(&plain).expect("json");
    assert_eq!(
        plain["spec"]["ports"][0],
        json!({"port": 8080, "protocol": "TCP", "targetPort": 8080})
    );
    assert_ne!(plain["spec"]["clusterIP"], spec["clusterIP"]);
    let headless = svcs
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "selector": {"app": "db"}}})),
        )
        .await
        .expect("created");
    assert_eq!(
        serde_json::to_value(&headless).expect("json")["spec"]["clusterIPs"],
        json!(["None"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_node_port_or_cluster_ip_is_refused_and_freed_by_deleting_its_holder() {
    let sim = start().await;
    let svcs: Api<Service> = Api::default_namespaced(client(&sim));
    let first = svcs
        .create(&PostParams::default(), &node_port_service("a", Some(30080)))
        .await
        .expect("created");
    let e = api_err(
        svcs.create(&PostParams::default(), &node_port_service("b", Some(30080)))
            .await,
    );
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (
            422,
            "Invalid",
            "Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        )
    );
    let e = api_err(
        svcs.create(&PostParams::default(), &node_port_service("c", Some(20000)))
            .await,
    );
    assert_eq!(
        e.message,
        "Service \"c\" is invalid: spec.ports[0].nodePort: Invalid value: 20000: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );

    let taken_ip = first.spec.and_then(|s| s.cluster_ip).expect("cluster IP");
    let mut same_ip = node_port_service("d", None);
    if let Some(s) = same_ip.spec.as_mut() {
        s.cluster_ip = Some(taken_ip.clone());
    }
    let e = api_err(svcs.create(&PostParams::default(), &same_ip).await);
    assert_eq!(
        e.message,
        format!(
            "Service \"d\" is invalid: spec.clusterIPs: Invalid value: []string{{\"{taken_ip}\"}}: failed to allocate IP {taken_ip}: provided IP is already allocated"
        )
    );
    let mut outside = node_port_service("e", None);
    if let Some(s) = outside.spec.as_mut() {
        s.cluster_ip = Some("10.0.0.10".into());
    }
    let e = api_err(svcs.create(&PostParams::default(), &outside).await);
    assert_eq!(
        e.message,
        "Service \"e\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.0.0.10\"}: failed to allocate IP 10.0.0.10: the provided IP (10.0.0.10) is not in the valid range. The range of valid IPs is 10.100.0.0/16"
    );

    svcs.delete("a", &DeleteParams::default())
        .await
        .expect("deleted");
    let b = svcs
        .create(&PostParams::default(), &node_port_service("b", Some(30080)))
        .await
        .expect("the port is free again");
    // Turning it into a ClusterIP service gives the port back as well.
    svcs.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
    )
    .await
    .expect("type changed");
    let after = svcs.get("b").await.expect("get");
    assert_eq!(
        after
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .map(|p| p[0].node_port),
        Some(None)
    );
    assert_eq!(
        after.spec.and_then(|s| s.cluster_ip),
        b.spec.and_then(|s| s.cluster_ip),
        "the cluster IP stays"
    );
    svcs.create(&PostParams::default(), &node_port_service("f", Some(30080)))
        .await
        .expect("the port is free after the type change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_load_balancer_gets_a_health_check_node_port() {
    let sim = start().await;
    let svcs: Api<Service> = Api::default_namespaced(client(&sim));
    let lb = svcs
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                          "selector": {"app": "web"}, "ports": [{"port": 443, "targetPort": 8443}]}})),
        )
        .await
        .expect("created");
    let spec = lb.spec.expect("spec");
    let hc = spec.health_check_node_port.expect("health check port");
    let np = spec
        .ports
        .as_ref()
        .and_then(|p| p[0].node_port)
        .expect("node port");
    assert!((30000..=32767).contains(&hc) && hc != np, "{hc} {np}");
    assert_eq!(spec.allocate_load_balancer_node_ports, Some(true));
}

/// The conditions of the endpoints of `svc`'s slices: `(ready, serving, terminating)`.
fn states(slices: &[EndpointSlice]) -> Vec<(bool, bool, bool)> {
    slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .map(|e| {
            let c = e.conditions.clone().unwrap_or_default();
            (
                c.ready.unwrap_or(false),
                c.serving.unwrap_or(false),
                c.terminating.unwrap_or(false),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_follow_a_pod_becoming_ready_terminating_and_gone() {
    let sim = start_with(slow_teardown()).await;
    node(
        sim.store(),
        NODE,
        json!({"kubernetes.io/hostname": NODE, "topology.kubernetes.io/zone": ZONE}),
    );
    let c = client(&sim);
    let svcs: Api<Service> = Api::default_namespaced(c.clone());
    let slices: Api<EndpointSlice> = Api::default_namespaced(c.clone());
    let pods: Api<Pod> = Api::default_namespaced(c);
    let svc = svcs
        .create(&PostParams::default(), &node_port_service("web", None))
        .await
        .expect("service");

    let mut watch = slices
        .watch(
            &WatchParams::default()
                .labels("kubernetes.io/service-name=web")
                .timeout(30),
            "0",
        )
        .await
        .expect("watch")
        .boxed();
    pods.create(
        &PostParams::default(),
        &from(json!({"metadata": {"name": "web-1", "labels": {"app": "web"}},
                     "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "nginx:1.27",
                              "ports": [{"name": "http", "containerPort": 8080}]}]}})),
    )
    .await
    .expect("pod");

    // Every state the watch shows, deduplicated, until the pod is gone again.
    let mut current: std::collections::BTreeMap<String, EndpointSlice> = Default::default();
    let mut seen: Vec<Vec<(bool, bool, bool)>> = Vec::new();
    let mut deleted_pod = false;
    let mut checked_ready_slice = false;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), watch.try_next())
            .await
            .expect("a slice change in time")
            .expect("watch ok")
            .expect("watch open");
        match ev {
            WatchEvent::Added(s) | WatchEvent::Modified(s) => {
                current.insert(s.metadata.name.clone().unwrap_or_default(), s);
            }
            WatchEvent::Deleted(s) => {
                current.remove(&s.metadata.name.clone().unwrap_or_default());
            }
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
        let all: Vec<EndpointSlice> = current.values().cloned().collect();
        let st = states(&all);
        if seen.last() != Some(&st) {
            seen.push(st.clone());
        }
        if st == [(true, true, false)] && !checked_ready_slice {
            checked_ready_slice = true;
            let slice = &all[0];
            let labels = slice.metadata.labels.clone().unwrap_or_default();
            assert_eq!(
                (
                    labels.get("kubernetes.io/service-name").map(String::as_str),
                    labels
                        .get("endpointslice.kubernetes.io/managed-by")
                        .map(String::as_str),
                ),
                (Some("web"), Some("endpointslice-controller.k8s.io"))
            );
            let owner = &slice.metadata.owner_references.clone().unwrap_or_default()[0];
            assert_eq!(
                (owner.kind.as_str(), Some(&owner.uid)),
                ("Service", svc.metadata.uid.as_ref())
            );
            assert_eq!(slice.address_type, "IPv4");
            let port = &slice.ports.clone().unwrap_or_default()[0];
            assert_eq!(
                (port.name.as_deref(), port.port),
                (Some("http"), Some(8080))
            );
            let ep = &slice.endpoints[0];
            assert_eq!(
                (
                    ep.node_name.as_deref(),
                    ep.zone.as_deref(),
                    ep.target_ref.as_ref().and_then(|r| r.name.as_deref())
                ),
                (Some(NODE), Some(ZONE), Some("web-1"))
            );
            assert!(ep.addresses[0].starts_with("10.64."), "{:?}", ep.addresses);
        }
        if st == [(true, true, false)] && !deleted_pod {
            deleted_pod = true;
            pods.delete("web-1", &DeleteParams::default())
                .await
                .expect("graceful delete");
        }
        if deleted_pod && st.is_empty() {
            break;
        }
    }
    assert_eq!(
        seen,
        vec![
            vec![],
            vec![(true, true, false)],
            vec![(false, true, true)],
            vec![],
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_service_collects_its_slices() {
    let sim = start().await;
    let svcs: Api<Service> = Api::default_namespaced(client(&sim));
    svcs.create(&PostParams::default(), &node_port_service("web", None))
        .await
        .expect("service");
    let store = sim.store().clone();
    let count = move || {
        store
            .list(
                &resources::ENDPOINTSLICES,
                Some("default"),
                &ListOptions::default(),
            )
            .0
            .len()
    };
    for _ in 0..200 {
        if count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(count(), 1, "the service's empty slice");
    svcs.delete("web", &DeleteParams::default())
        .await
        .expect("deleted");
    for _ in 0..200 {
        if count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the slice outlived its service");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminating_namespace_refuses_new_content_and_goes_once_empty() {
    let sim = start_with(slow_teardown()).await;
    node(sim.store(), NODE, json!({"kubernetes.io/hostname": NODE}));
    let c = client(&sim);
    let nss: Api<Namespace> = Api::all(c.clone());
    let created = nss
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "shop"}})),
        )
        .await
        .expect("namespace");
    assert_eq!(
        created.spec.and_then(|s| s.finalizers),
        Some(vec!["kubernetes".to_string()])
    );
    let pods: Api<Pod> = Api::namespaced(c.clone(), "shop");
    pods.create(
        &PostParams::default(),
        &from(json!({"metadata": {"name": "web-1"}, "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "nginx:1.27"}]}})),
    )
    .await
    .expect("pod");
    ensure_running(sim.store(), "shop", "web-1").await;

    nss.delete("shop", &DeleteParams::default())
        .await
        .expect("delete accepted");
    let ns = nss.get("shop").await.expect("still there while emptied");
    assert!(ns.metadata.deletion_timestamp.is_some());
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );

    let cms: Api<ConfigMap> = Api::namespaced(c, "shop");
    let e = api_err(
        cms.create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "late"}})),
        )
        .await,
    );
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (
            403,
            "Forbidden",
            "configmaps \"late\" is forbidden: unable to create new content in namespace shop because it is being terminated"
        )
    );

    // The pod terminates gracefully (not removed outright), then the namespace goes.
    let mut saw_terminating_pod = false;
    for _ in 0..500 {
        match pods.get_opt("web-1").await.expect("get pod") {
            Some(p) if p.metadata.deletion_timestamp.is_some() => saw_terminating_pod = true,
            _ => {}
        }
        if nss.get_opt("shop").await.expect("get ns").is_none() {
            assert!(saw_terminating_pod, "the pod was deleted gracefully");
            assert!(pods.get_opt("web-1").await.expect("get pod").is_none());
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the namespace was never removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingresses_get_the_default_class_and_a_writable_status() {
    let sim = start().await;
    let c = client(&sim);
    let classes: Api<IngressClass> = Api::all(c.clone());
    classes
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "alb", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                         "spec": {"controller": "ingress.k8s.aws/alb"}})),
        )
        .await
        .expect("class");
    let ings: Api<Ingress> = Api::default_namespaced(c);
    let ing = ings
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "shop"}, "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})),
        )
        .await
        .expect("ingress");
    assert_eq!(
        ing.spec.and_then(|s| s.ingress_class_name).as_deref(),
        Some("alb")
    );

    let e = api_err(
        ings.create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "bad"}, "spec": {"rules": [{"http": {"paths": [
                {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})),
        )
        .await,
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            422,
            // k8s-openapi sends the required `pathType` as "" when left out, which the real
            // server refuses as an unsupported value.
            "Ingress.networking.k8s.io \"bad\" is invalid: spec.rules[0].http.paths[0].pathType: Unsupported value: \"\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\""
        )
    );

    let status = json!({"status": {"loadBalancer": {"ingress": [{"hostname": "k8s-shop-1234.elb.amazonaws.com"}]}}});
    ings.patch_status("shop", &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("status written");
    // A main-resource write keeps the status.
    ings.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"labels": {"team": "a"}}, "status": {"loadBalancer": {}}}),
        ),
    )
    .await
    .expect("labelled");
    let got = ings.get("shop").await.expect("get");
    let lb = got
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|l| l.ingress)
        .unwrap_or_default();
    assert_eq!(
        lb[0].hostname.as_deref(),
        Some("k8s-shop-1234.elb.amazonaws.com")
    );
}

// ------------------------------------------------------------------------------------------
// kubectl
// ------------------------------------------------------------------------------------------

const SHOP: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: app, image: "nginx:1.27", ports: [{name: http, containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: shop}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {mode: fast}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  ingressClassName: alb
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"#;

/// A node in a zone, the shop manifest applied, and its two pods ready in the slices.
fn shop(env: &KubectlEnv) -> std::path::PathBuf {
    node(
        env.store(),
        NODE,
        json!({"kubernetes.io/hostname": NODE, "topology.kubernetes.io/zone": ZONE}),
    );
    let path = env.kubeconfig.with_file_name("shop.yaml");
    std::fs::write(&path, SHOP).expect("manifest written");
    env.ok(&["apply", "-f", path.to_str().unwrap_or_default()]);
    let store = env.store().clone();
    wait_for("two ready endpoints", Duration::from_secs(10), || {
        let (slices, _) = store.list(
            &resources::ENDPOINTSLICES,
            Some("shop"),
            &ListOptions::default(),
        );
        let ready = slices
            .iter()
            .filter(|s| {
                s.pointer("/metadata/labels/kubernetes.io~1service-name") == Some(&json!("web"))
            })
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["conditions"]["ready"] == true)
            .count();
        (ready == 2).then_some(())
    });
    path
}

fn columns(header: &str) -> Vec<&str> {
    header
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn kubectl_get_shows_services_endpointslices_and_ingresses_like_a_real_server() {
    let env = KubectlEnv::new();
    shop(&env);

    let out = env.ok(&["get", "svc,endpointslices,ingress", "-A"]);
    let tables: Vec<&str> = out.split("\n\n").filter(|t| !t.trim().is_empty()).collect();
    assert_eq!(tables.len(), 3, "{out}");
    let header = |t: &str| columns(t.lines().next().unwrap_or_default()).join(" ");
    assert_eq!(
        header(tables[0]),
        "NAMESPACE NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE",
        "{out}"
    );
    assert_eq!(
        header(tables[1]),
        "NAMESPACE NAME ADDRESSTYPE PORTS ENDPOINTS AGE",
        "{out}"
    );
    assert_eq!(
        header(tables[2]),
        "NAMESPACE NAME CLASS HOSTS ADDRESS PORTS AGE",
        "{out}"
    );

    let row = |t: &str, name: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .find(|r| r.get(1).is_some_and(|n| n == name))
            .unwrap_or_else(|| panic!("no row {name} in\n{t}"))
    };
    let web = row(tables[0], "service/web");
    let svc = env
        .store()
        .get(&resources::SERVICES, Some("shop"), "web")
        .expect("svc");
    let np = svc["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .expect("node port");
    assert_eq!(
        web[2..6],
        [
            "NodePort".to_string(),
            svc["spec"]["clusterIP"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            "<none>".into(),
            format!("80:{np}/TCP")
        ]
    );
    assert_eq!(row(tables[0], "service/web-lb")[4], "<pending>");

    let slice_rows: Vec<Vec<String>> = tables[1]
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    let web_slice = slice_rows
        .iter()
        .find(|r| {
            r[1].starts_with("endpointslice.discovery.k8s.io/web-") && !r[1].contains("web-lb")
        })
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(web_slice[2..4], ["IPv4", "8080"]);
    let addrs: Vec<&str> = web_slice[4].split(',').collect();
    assert!(
        addrs.len() == 2 && addrs.iter().all(|a| a.starts_with("10.64.")),
        "{out}"
    );

    let ing = row(tables[2], "ingress.networking.k8s.io/web");
    assert_eq!(ing[2..5], ["alb", "shop.example.com", "80"]);

    let wide = env.ok(&["get", "svc", "-n", "shop", "-o", "wide"]);
    let mut lines = wide.lines();
    assert_eq!(
        columns(lines.next().unwrap_or_default()),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR"
        ]
    );
    assert!(lines.all(|l| l.trim_end().ends_with("app=web")), "{wide}");
}

#[test]
fn kubectl_delete_of_a_namespace_first_manifest_succeeds_and_the_namespace_goes_after_its_contents()
{
    let env = KubectlEnv::with_config(SimConfig {
        namespace_cleanup_delay_seconds: 100.0,
        ..sim_config()
    });
    let path = shop(&env);

    // Record the order of deletions as a watcher of the store sees them.
    let deleted: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut rx = env.store().subscribe();
    let log = deleted.clone();
    env.spawn(async move {
        while let Ok(ev) = rx.recv().await {
            if ev.kind == EventType::Deleted
                && (ev.namespace() == Some("shop") || ev.resource.kind == "Namespace")
                && let Ok(mut l) = log.lock()
            {
                l.push((ev.resource.kind.to_string(), ev.name().to_string()));
            }
        }
    });

    let out = env.ok(&["delete", "-f", path.to_str().unwrap_or_default()]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "namespace \"shop\" deleted",
            "deployment.apps \"web\" deleted",
            "service \"web\" deleted",
            "service \"web-lb\" deleted",
            "configmap \"settings\" deleted",
            "ingress.networking.k8s.io \"web\" deleted",
        ]
    );
    // kubectl waited for the namespace to be gone.
    assert!(
        env.store()
            .get(&resources::NAMESPACES, None, "shop")
            .is_err()
    );
    for r in [
        &resources::PODS,
        &resources::ENDPOINTSLICES,
        &resources::REPLICASETS,
    ] {
        assert!(
            env.store()
                .list(r, Some("shop"), &ListOptions::default())
                .0
                .is_empty(),
            "{} left in shop",
            r.plural
        );
    }
    let order = deleted.lock().map(|l| l.clone()).unwrap_or_default();
    let ns_at = order
        .iter()
        .position(|(k, n)| k == "Namespace" && n == "shop")
        .unwrap_or_else(|| panic!("no namespace deletion in {order:?}"));
    assert_eq!(ns_at, order.len() - 1, "the namespace goes last: {order:?}");
    assert_eq!(
        order.iter().filter(|(k, _)| k == "Pod").count(),
        2,
        "{order:?}"
    );
}
