//! [`KubeCluster`] against a scripted API server: the real kube client builds and sends every
//! request, so these check paths, verbs, bodies and the mapping of real error responses. The
//! keeper's calls also run against kubesim in process, where a refused patch must leave a real
//! stored object untouched.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use costop_core::event::InstanceState;
use costop_core::facts::Lifecycle;
use costop_core::kube::{TaintEffect, Toleration};
use serde_json::{Value, json};

use super::*;
use crate::testutil::{Captured, Reply, Server};

const ID: &str = "i-0123456789abcdef0";

fn cluster(server: &Server) -> KubeCluster {
    crate::install_crypto_provider();
    let mut config = kube::Config::new(server.url.parse().unwrap());
    config.default_retry = false;
    KubeCluster::new(kube::Client::try_from(config).unwrap())
}

fn status(code: u16, reason: &str, message: &str) -> Reply {
    Reply::json(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message}),
    )
}

fn node(name: &str, instance: &str) -> Value {
    json!({"metadata": {"name": name, "resourceVersion": "5"}, "spec": {"providerID": format!("aws:///us-east-1a/{instance}")}})
}

fn instance() -> InstanceFacts {
    InstanceFacts {
        instance_id: ID.into(),
        state: InstanceState::Running,
        lifecycle: Lifecycle::Spot,
        instance_type: None,
        availability_zone: None,
        private_dns_name: Some("ip-10-0-1-23.ec2.internal".into()),
        private_ips: vec![],
        tags: Default::default(),
    }
}

fn evict_pod() -> EvictPod {
    EvictPod {
        namespace: "shop".into(),
        name: "web-1".into(),
        uid: "u-1".into(),
        after_rotation: false,
        grace_period_seconds: 30,
    }
}

fn targets(server: &Server) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect()
}

#[test]
fn kube_errors_map_to_port_errors() {
    let api = |code| kube::Error::Api(Status::failure("m", "r").with_code(code).boxed());
    let map = |e| port_error("op", || "thing".into(), e);
    assert!(matches!(map(api(409)), PortError::Conflict { op: "op" }));
    assert!(matches!(map(api(404)), PortError::NotFound { what, .. } if what == "thing"));
    for code in [429, 500, 503, 504] {
        assert!(
            matches!(map(api(code)), PortError::Transient { .. }),
            "{code}"
        );
    }
    for code in [400, 401, 403, 422] {
        assert!(
            matches!(map(api(code)), PortError::Permanent { .. }),
            "{code}"
        );
    }
    assert!(matches!(
        map(kube::Error::Service("connection reset".into())),
        PortError::Transient { .. }
    ));
    assert!(matches!(
        map(kube::Error::TlsRequired),
        PortError::Permanent { .. }
    ));
    // The source is the kube error itself, not a string.
    let PortError::Transient { source, .. } = map(api(503)) else {
        unreachable!()
    };
    assert!(source.downcast_ref::<kube::Error>().is_some());
}

#[tokio::test]
async fn node_for_falls_back_to_the_provider_id_and_remembers_the_name() {
    let server = Server::start(|r: &Captured| match r.target.as_str() {
        "/api/v1/nodes/ip-10-0-1-23.ec2.internal" => status(404, "NotFound", "nodes not found"),
        "/api/v1/nodes?&limit=500" | "/api/v1/nodes?limit=500" => Reply::json(
            200,
            json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {"continue": "c1"}, "items": [node("other", "i-0aaaaaaaaaaaaaaaa")]}),
        ),
        t if t.contains("continue=c1") => Reply::json(
            200,
            json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": [node("custom-name", ID)]}),
        ),
        "/api/v1/nodes/custom-name" => Reply::json(200, node("custom-name", ID)),
        t => panic!("unexpected {t}"),
    })
    .await;
    let kube = cluster(&server);
    let found = kube.node_for(&instance()).await.unwrap().unwrap();
    assert_eq!(found.name, "custom-name");
    assert_eq!(found.resource_version.as_deref(), Some("5"));
    assert_eq!(server.requests().len(), 3, "{:?}", targets(&server));
    // Warm: the cached name is fetched directly, no list.
    let again = kube.clone().node_for(&instance()).await.unwrap().unwrap();
    assert_eq!(again.name, "custom-name");
    assert_eq!(
        targets(&server).last().unwrap(),
        "GET /api/v1/nodes/custom-name"
    );
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn the_node_index_is_refreshed_from_a_paged_list_only_when_it_is_older_than_asked() {
    let server = Server::start(|r: &Captured| match r.target.as_str() {
        t if t.contains("continue=c1") => Reply::json(
            200,
            json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": [node("custom-name", ID)]}),
        ),
        t if t.starts_with("/api/v1/nodes?") => Reply::json(
            200,
            json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {"continue": "c1"}, "items": [node("other", "i-0aaaaaaaaaaaaaaaa")]}),
        ),
        t => panic!("unexpected {t}"),
    })
    .await;
    let kube = cluster(&server);
    assert_eq!(kube.known_node_name(ID), None);
    assert!(
        kube.refresh_node_index(Duration::from_secs(300))
            .await
            .unwrap()
    );
    assert_eq!(server.requests().len(), 2, "{:?}", targets(&server));
    // Every node of every page is known, through any clone of the client.
    assert_eq!(
        kube.clone().known_node_name(ID).as_deref(),
        Some("custom-name")
    );
    assert_eq!(
        kube.known_node_name("i-0aaaaaaaaaaaaaaaa").as_deref(),
        Some("other")
    );
    // Fresh enough: no request.
    assert!(
        !kube
            .refresh_node_index(Duration::from_secs(300))
            .await
            .unwrap()
    );
    assert_eq!(server.requests().len(), 2);
    // Too old for the caller: listed again.
    assert!(kube.refresh_node_index(Duration::ZERO).await.unwrap());
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn a_node_named_like_the_instance_but_backed_by_another_is_not_taken() {
    let server = Server::start(|r: &Captured| {
        if r.target == "/api/v1/nodes/ip-10-0-1-23.ec2.internal" {
            Reply::json(
                200,
                node("ip-10-0-1-23.ec2.internal", "i-0bbbbbbbbbbbbbbbb"),
            )
        } else {
            Reply::json(
                200,
                json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": []}),
            )
        }
    })
    .await;
    assert_eq!(cluster(&server).node_for(&instance()).await.unwrap(), None);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn pods_are_listed_by_node_across_namespaces() {
    let server = Server::start(|_: &Captured| {
        Reply::json(
            200,
            json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
                {"metadata": {"name": "a", "namespace": "x", "uid": "1"}, "spec": {"containers": []}, "status": {"phase": "Running"}}
            ]}),
        )
    })
    .await;
    let pods = cluster(&server).pods_on("n1").await.unwrap();
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].namespace, "x");
    let target = &server.requests()[0].target;
    assert!(target.starts_with("/api/v1/pods?"), "{target}");
    assert!(
        target.contains("fieldSelector=spec.nodeName%3Dn1"),
        "{target}"
    );
}

#[tokio::test]
async fn cordon_is_one_merge_patch_and_a_moved_resource_version_is_a_conflict() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let server = Server::start(move |_: &Captured| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::json(200, node("n1", ID))
        } else {
            status(
                409,
                "Conflict",
                "Operation cannot be fulfilled on nodes \"n1\": the object has been modified",
            )
        }
    })
    .await;
    let kube = cluster(&server);
    let action = CordonAndTaint {
        node: "n1".into(),
        cordon: true,
        taint: Taint::new("costop.io/spot-interruption", None, TaintEffect::NoSchedule),
        taints_after: vec![Taint::new(
            "costop.io/spot-interruption",
            None,
            TaintEffect::NoSchedule,
        )],
        exclude_from_lb_label: true,
        annotations: Default::default(),
        resource_version: Some("5".into()),
    };
    kube.cordon_and_taint(&action).await.unwrap();
    let req = &server.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.target.as_str()),
        ("PATCH", "/api/v1/nodes/n1?")
    );
    assert_eq!(req.headers["content-type"], "application/merge-patch+json");
    assert_eq!(req.json(), convert::cordon_patch(&action));
    assert!(matches!(
        kube.cordon_and_taint(&action).await,
        Err(PortError::Conflict { .. })
    ));
    assert!(matches!(
        kube.set_taints("n1", &[], Some("5")).await,
        Err(PortError::Conflict { .. })
    ));
    assert_eq!(
        server.requests()[2].json(),
        json!({"metadata": {"resourceVersion": "5"}, "spec": {"taints": []}})
    );
    let clear = RestoreNode {
        node: "n1".into(),
        unschedulable: false,
        taints_after: Vec::new(),
        remove_labels: Vec::new(),
        remove_annotations: Vec::new(),
        resource_version: Some("5".into()),
    };
    assert!(matches!(
        kube.restore_node(&clear).await,
        Err(PortError::Conflict { .. })
    ));
    let req = &server.requests()[3];
    assert_eq!(
        (req.method.as_str(), req.target.as_str()),
        ("PATCH", "/api/v1/nodes/n1?")
    );
    assert_eq!(req.json(), convert::restore_patch(&clear));
}

#[tokio::test]
async fn eviction_outcomes_follow_the_status_code() {
    let replies = vec![
        Reply::json(
            201,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}),
        ),
        Reply::json(
            429,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 429, "reason": "TooManyRequests",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "details": {"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget web needs 1 healthy pods and has 1 currently"}]}}),
        ),
        status(404, "NotFound", "pods \"web-1\" not found"),
        status(
            409,
            "Conflict",
            "Operation cannot be fulfilled on pods \"web-1\": Precondition failed: UID in precondition: u-1, UID in object meta: u-2",
        ),
        status(409, "Conflict", "the object has been modified"),
        status(403, "Forbidden", "forbidden"),
        status(500, "InternalError", "etcd"),
    ];
    let server = Server::scripted(replies, Server::unexpected).await;
    let kube = cluster(&server);
    let pod = evict_pod();
    assert_eq!(kube.evict(&pod).await.unwrap(), EvictOutcome::Accepted);
    let EvictOutcome::Blocked { message } = kube.evict(&pod).await.unwrap() else {
        panic!("not blocked")
    };
    assert!(
        message.contains("disruption budget web needs 1"),
        "{message}"
    );
    assert_eq!(kube.evict(&pod).await.unwrap(), EvictOutcome::Gone);
    assert_eq!(kube.evict(&pod).await.unwrap(), EvictOutcome::Gone);
    assert!(matches!(
        kube.evict(&pod).await,
        Err(PortError::Conflict { .. })
    ));
    assert!(matches!(
        kube.evict(&pod).await,
        Err(PortError::Permanent { .. })
    ));
    assert!(matches!(
        kube.evict(&pod).await,
        Err(PortError::Transient { .. })
    ));
    let req = &server.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.target.as_str()),
        ("POST", "/api/v1/namespaces/shop/pods/web-1/eviction?")
    );
    assert_eq!(req.json(), convert::eviction_body(&pod));
}

#[tokio::test]
async fn force_delete_tolerates_gone_pods() {
    let replies = vec![
        Reply::json(
            200,
            json!({"metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1"}}),
        ),
        status(404, "NotFound", "gone"),
        status(
            409,
            "Conflict",
            "Precondition failed: UID in precondition: u-1, UID in object meta: u-2",
        ),
        status(403, "Forbidden", "no"),
    ];
    let server = Server::scripted(replies, Server::unexpected).await;
    let kube = cluster(&server);
    let pod = evict_pod();
    kube.force_delete(&pod).await.unwrap();
    kube.force_delete(&pod).await.unwrap();
    kube.force_delete(&pod).await.unwrap();
    assert!(matches!(
        kube.force_delete(&pod).await,
        Err(PortError::Permanent { .. })
    ));
    let del = &server.requests()[3];
    assert_eq!(del.method, "DELETE");
    assert_eq!(
        del.json(),
        json!({"gracePeriodSeconds": 0, "preconditions": {"uid": "u-1"}})
    );
}

#[tokio::test]
async fn nodes_and_unbound_pods_are_listed_page_by_page() {
    let server = Server::start(|r: &Captured| {
        let list = |kind: &str, cont: Value, items: Value| {
            Reply::json(200, json!({"kind": kind, "apiVersion": "v1", "metadata": cont, "items": items}))
        };
        let pod = |name: &str| json!({"metadata": {"name": name, "namespace": "x", "uid": name, "resourceVersion": "3"}, "spec": {"containers": []}});
        match r.target.as_str() {
            t if t.starts_with("/api/v1/nodes?") && t.contains("continue=n2") => list("NodeList", json!({}), json!([node("b", "i-0bbbbbbbbbbbbbbbb")])),
            t if t.starts_with("/api/v1/nodes?") => list("NodeList", json!({"continue": "n2"}), json!([node("a", ID)])),
            t if t.starts_with("/api/v1/pods?") && t.contains("continue=p2") => list("PodList", json!({}), json!([pod("q")])),
            t if t.starts_with("/api/v1/pods?") => list("PodList", json!({"continue": "p2"}), json!([pod("p")])),
            t => panic!("unexpected {t}"),
        }
    })
    .await;
    let kube = cluster(&server);
    let nodes = kube.nodes().await.unwrap();
    let names: Vec<_> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    // A full list refreshes the instance → node index as well.
    assert_eq!(kube.known_node_name(ID).as_deref(), Some("a"));
    let pods = kube.unbound_pods().await.unwrap();
    let names: Vec<_> = pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["p", "q"]);
    assert_eq!(pods[0].resource_version.as_deref(), Some("3"));
    let targets = targets(&server);
    assert_eq!(targets.len(), 4, "{targets:?}");
    assert!(targets[0].contains("limit=500"), "{targets:?}");
    assert!(targets[2].starts_with("GET /api/v1/pods?"), "{targets:?}");
    assert!(
        targets[2].contains("fieldSelector=spec.nodeName%3D&")
            || targets[2].ends_with("fieldSelector=spec.nodeName%3D"),
        "{targets:?}"
    );
    assert!(targets[2].contains("limit=500"), "{targets:?}");
}

#[tokio::test]
async fn a_refused_toleration_patch_is_false_and_other_errors_are_classified() {
    let replies = vec![
        Reply::json(
            200,
            json!({"metadata": {"name": "web-2", "namespace": "shop", "uid": "u-2"}}),
        ),
        status(404, "NotFound", "pods \"web-2\" not found"),
        status(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        ),
        status(409, "Conflict", "the object has been modified"),
        status(403, "Forbidden", "forbidden"),
        status(503, "ServiceUnavailable", "etcd"),
    ];
    let server = Server::scripted(replies, Server::unexpected).await;
    let kube = cluster(&server);
    let patch = toleration_patch("u-2", Some("12"));
    assert!(kube.tolerate(&patch).await.unwrap());
    assert!(!kube.tolerate(&patch).await.unwrap());
    assert!(!kube.tolerate(&patch).await.unwrap());
    assert!(!kube.tolerate(&patch).await.unwrap());
    assert!(matches!(
        kube.tolerate(&patch).await,
        Err(PortError::Permanent { .. })
    ));
    assert!(matches!(
        kube.tolerate(&patch).await,
        Err(PortError::Transient { .. })
    ));
    let req = &server.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.target.as_str()),
        ("PATCH", "/api/v1/namespaces/shop/pods/web-2")
    );
    assert_eq!(req.headers["content-type"], "application/json-patch+json");
    assert_eq!(req.json(), convert::toleration_patch(&patch));
}

// ---------------------------------------------------------------------------------------------
// Against kubesim.
// ---------------------------------------------------------------------------------------------

/// A fresh simulator (no instances, so no node comes or goes on its own) and a client for it.
async fn sim() -> (kubesim::Simulator, KubeCluster) {
    let sim = kubesim::Simulator::start(kubesim::SimConfig::default())
        .await
        .unwrap();
    crate::install_crypto_provider();
    let mut config = kube::Config::new(sim.url().parse().unwrap());
    config.default_retry = false;
    let kube = KubeCluster::new(kube::Client::try_from(config).unwrap());
    (sim, kube)
}

fn sim_node(sim: &kubesim::Simulator, name: &str, instance: &str, ready: Option<&str>) {
    let mut node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "spec": {"providerID": format!("aws:///us-east-1a/{instance}")},
    });
    if let Some(status) = ready {
        node["status"] = json!({"conditions": [{"type": "Ready", "status": status}]});
    }
    sim.apply_object(node).unwrap();
}

/// A pod no scheduler will bind (`schedulerName` names none), so it stays as written, unless
/// `node` binds it.
fn sim_pod(sim: &kubesim::Simulator, namespace: &str, name: &str, node: Option<&str>) -> Value {
    let mut spec = json!({
        "schedulerName": "nobody",
        "containers": [{"name": "c", "image": "busybox"}],
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
    });
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    sim.apply_object(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": {"a": "b"}},
        "spec": spec,
    }))
    .unwrap()
}

fn standby_toleration() -> Toleration {
    Toleration {
        key: Some("costop.io/standby".into()),
        operator: Some("Equal".into()),
        value: Some("true".into()),
        effect: Some(TaintEffect::NoSchedule),
        toleration_seconds: None,
    }
}

fn toleration_patch(uid: &str, resource_version: Option<&str>) -> TolerationPatch {
    TolerationPatch {
        namespace: "shop".into(),
        name: "web-2".into(),
        uid: uid.into(),
        resource_version: resource_version.map(str::to_owned),
        tolerations_after: vec![standby_toleration()],
        annotations_after: [("costop.io/standby-for".to_owned(), "x1".to_owned())].into(),
        interruption_id: "x1".into(),
        owner_kind: "ReplicaSet".into(),
        owner_name: "web-abc".into(),
    }
}

/// The patch the keeper would send for `pod`, as read by [`Kube::unbound_pods`].
fn toleration_patch_for(pod: &PodFacts) -> TolerationPatch {
    let mut tolerations_after = pod.tolerations.clone();
    tolerations_after.push(standby_toleration());
    let mut annotations_after = pod.annotations.clone();
    annotations_after.insert("costop.io/standby-for".into(), "x1".into());
    TolerationPatch {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        uid: pod.uid.clone(),
        resource_version: pod.resource_version.clone(),
        tolerations_after,
        annotations_after,
        ..toleration_patch(&pod.uid, None)
    }
}

async fn stored_pod(kube: &KubeCluster, namespace: &str, name: &str) -> Option<Pod> {
    kube.pod_api(namespace).get_opt(name).await.unwrap()
}

#[tokio::test]
async fn nodes_lists_every_node_with_its_readiness_and_creation_time() {
    let (sim, kube) = sim().await;
    sim_node(&sim, "ready", ID, Some("True"));
    sim_node(&sim, "not-ready", "i-0aaaaaaaaaaaaaaaa", Some("False"));
    sim_node(&sim, "registering", "i-0bbbbbbbbbbbbbbbb", None);
    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(5);
    let mut nodes = kube.nodes().await.unwrap();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let seen: Vec<_> = nodes.iter().map(|n| (n.name.as_str(), n.ready)).collect();
    assert_eq!(
        seen,
        [
            ("not-ready", Some(false)),
            ("ready", Some(true)),
            ("registering", None)
        ]
    );
    for n in &nodes {
        assert!(n.created_at.is_some_and(|t| t > before), "{n:?}");
        assert!(n.resource_version.is_some(), "{n:?}");
    }
    assert_eq!(kube.known_node_name(ID).as_deref(), Some("ready"));
}

#[tokio::test]
async fn unbound_pods_are_the_pods_of_every_namespace_not_yet_on_a_node() {
    let (sim, kube) = sim().await;
    sim.apply_object(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    )
    .unwrap();
    sim_node(&sim, "n1", ID, Some("True"));
    sim_pod(&sim, "default", "pending-a", None);
    sim_pod(&sim, "shop", "pending-b", None);
    sim_pod(&sim, "shop", "bound", Some("n1"));
    let mut pods = kube.unbound_pods().await.unwrap();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<_> = pods
        .iter()
        .map(|p| (p.namespace.as_str(), p.name.as_str()))
        .collect();
    assert_eq!(names, [("default", "pending-a"), ("shop", "pending-b")]);
    assert!(
        pods.iter()
            .all(|p| p.created_at.is_some() && p.resource_version.is_some() && !p.uid.is_empty())
    );
}

#[tokio::test]
async fn tolerate_adds_the_toleration_and_annotation_to_the_pod_it_read() {
    let (sim, kube) = sim().await;
    sim.apply_object(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    )
    .unwrap();
    sim_pod(&sim, "shop", "web-2", None);
    let pod = kube.unbound_pods().await.unwrap().remove(0);
    let patch = toleration_patch_for(&pod);
    assert!(kube.tolerate(&patch).await.unwrap());
    let after = convert::pod_facts(&stored_pod(&kube, "shop", "web-2").await.unwrap());
    assert_eq!(after.tolerations, patch.tolerations_after);
    assert!(after.tolerations.contains(&standby_toleration()));
    assert_eq!(after.annotations["costop.io/standby-for"], "x1");
    assert_eq!(after.annotations["a"], "b", "existing annotations kept");
    assert_eq!(after.uid, pod.uid);
}

#[tokio::test]
async fn tolerate_is_false_and_changes_nothing_for_another_uid_a_moved_pod_or_a_missing_one() {
    let (sim, kube) = sim().await;
    sim.apply_object(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    )
    .unwrap();
    sim_pod(&sim, "shop", "web-2", None);
    let pod = kube.unbound_pods().await.unwrap().remove(0);
    let before = serde_json::to_value(stored_pod(&kube, "shop", "web-2").await.unwrap()).unwrap();

    let successor = TolerationPatch {
        uid: "another-uid".into(),
        ..toleration_patch_for(&pod)
    };
    assert!(
        !kube.tolerate(&successor).await.unwrap(),
        "a same-named successor is not touched"
    );
    let stale = TolerationPatch {
        resource_version: Some("1".into()),
        ..toleration_patch_for(&pod)
    };
    assert!(
        !kube.tolerate(&stale).await.unwrap(),
        "a pod changed since it was read is left alone"
    );
    let after = serde_json::to_value(stored_pod(&kube, "shop", "web-2").await.unwrap()).unwrap();
    assert_eq!(after, before);

    let missing = TolerationPatch {
        name: "gone".into(),
        ..toleration_patch_for(&pod)
    };
    assert!(!kube.tolerate(&missing).await.unwrap());
    assert!(stored_pod(&kube, "shop", "gone").await.is_none());
}

#[tokio::test]
async fn set_unschedulable_cordons_and_uncordons_the_node() {
    let (sim, kube) = sim().await;
    sim_node(&sim, "n1", ID, Some("True"));
    kube.set_unschedulable("n1", true).await.unwrap();
    assert!(kube.node("n1").await.unwrap().unwrap().unschedulable);
    kube.set_unschedulable("n1", false).await.unwrap();
    assert!(!kube.node("n1").await.unwrap().unwrap().unschedulable);
    assert!(matches!(
        kube.set_unschedulable("nope", true).await,
        Err(PortError::NotFound { .. })
    ));
}

#[tokio::test]
async fn an_ingress_is_read_and_patched_and_a_failed_test_is_a_conflict_that_changes_nothing() {
    let (sim, kube) = sim().await;
    sim.apply_object(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    )
    .unwrap();
    sim.apply_object(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "front", "namespace": "shop", "annotations": {"a": "b"}},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
    }))
    .unwrap();
    assert_eq!(kube.ingress("shop", "gone").await.unwrap(), None);
    let read = kube
        .ingress("shop", "front")
        .await
        .unwrap()
        .expect("the Ingress");
    assert_eq!(read["spec"]["defaultBackend"]["service"]["name"], "web");

    kube.patch_ingress(
        "shop",
        "front",
        &json!([
            {"op": "test", "path": "/metadata/annotations/a", "value": "b"},
            {"op": "replace", "path": "/metadata/annotations/a", "value": "c"},
        ]),
    )
    .await
    .unwrap();
    let patched = kube.ingress("shop", "front").await.unwrap().unwrap();
    assert_eq!(patched["metadata"]["annotations"]["a"], "c");

    // The same patch again: its `test` fails, the Ingress stays as it is.
    let refused = kube
        .patch_ingress(
            "shop",
            "front",
            &json!([
                {"op": "test", "path": "/metadata/annotations/a", "value": "b"},
                {"op": "replace", "path": "/metadata/annotations/a", "value": "d"},
            ]),
        )
        .await;
    assert!(
        matches!(refused, Err(PortError::Conflict { .. })),
        "{refused:?}"
    );
    let after = kube.ingress("shop", "front").await.unwrap().unwrap();
    assert_eq!(after, patched);
    assert!(matches!(
        kube.patch_ingress("shop", "gone", &json!([])).await,
        Err(PortError::NotFound { .. })
    ));
}
