//! The simulator through the `kube` crate, as costop uses it: CRUD, every patch type,
//! optimistic concurrency, Status errors, pod immutability, selectors, watches, eviction
//! against PodDisruptionBudgets, dry runs, graceful deletion, discovery and subresources.

mod common;

use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{
    Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::Status;
use kube::discovery::Discovery;
use kubesim::resources;
use serde_json::{Value, json};

fn pod_json(name: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
    }))
    .expect("valid pod")
}

/// The API error of a failed call.
#[track_caller]
fn api_err<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Box<Status> {
    match r {
        Err(kube::Error::Api(s)) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_created_read_listed_replaced_and_deleted() {
    let sim = start().await;
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));

    let created = pods
        .create(
            &PostParams::default(),
            &pod_json("web", json!({"app": "web"})),
        )
        .await
        .expect("create");
    let meta = &created.metadata;
    assert!(
        meta.uid.is_some() && meta.resource_version.is_some() && meta.creation_timestamp.is_some()
    );
    let status = created.status.as_ref().expect("status");
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    let spec = created.spec.as_ref().expect("spec");
    assert_eq!(spec.priority, Some(0));
    assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        assert!(
            tolerations.iter().any(|t| t.key.as_deref() == Some(key)
                && t.effect.as_deref() == Some("NoExecute")
                && t.toleration_seconds == Some(300)),
            "default toleration {key} missing: {tolerations:?}"
        );
    }

    let again = pods
        .create(&PostParams::default(), &pod_json("web", json!({})))
        .await;
    let e = api_err(again);
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(e.message, "pods \"web\" already exists");

    let got = pods.get("web").await.expect("get");
    assert_eq!(got.metadata.uid, created.metadata.uid);

    let list = pods.list(&ListParams::default()).await.expect("list");
    assert_eq!(
        list.items
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect::<Vec<_>>(),
        ["web"]
    );
    assert!(list.metadata.resource_version.is_some());
    // Cluster-wide listing sees it too.
    let all: Api<Pod> = Api::all(client(&sim));
    assert_eq!(
        all.list(&ListParams::default())
            .await
            .expect("list all")
            .items
            .len(),
        1
    );

    let mut changed = got.clone();
    changed
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("tier".into(), "front".into());
    let replaced = pods
        .replace("web", &PostParams::default(), &changed)
        .await
        .expect("replace");
    assert_eq!(
        replaced
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("tier"))
            .map(String::as_str),
        Some("front")
    );
    assert_ne!(
        replaced.metadata.resource_version,
        got.metadata.resource_version
    );

    // An unbound pod goes at once.
    pods.delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    let e = api_err(pods.get("web").await);
    assert_eq!(e.code, 404);
}

/// A JSON patch (RFC 6902) of ConfigMap `name` in `default`, sent as raw HTTP (kube's typed
/// JSON patch needs a crate feature this workspace does not enable).
async fn json_patch(
    sim: &kubesim::Simulator,
    name: &str,
    ops: Value,
) -> Result<ConfigMap, kube::Error> {
    let req = axum::http::Request::builder()
        .method("PATCH")
        .uri(format!("/api/v1/namespaces/default/configmaps/{name}"))
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(&ops).expect("ops"))
        .expect("request");
    client(sim).request::<ConfigMap>(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_patch_type_applies() {
    let sim = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&sim));
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}}))
            .expect("cm"),
    )
    .await
    .expect("create");

    let pp = PatchParams::default();
    let cm = cms
        .patch("cfg", &pp, &Patch::Strategic(json!({"data": {"b": "2"}})))
        .await
        .expect("strategic");
    assert_eq!(cm.data.as_ref().map(|d| d.len()), Some(2));
    let cm = cms
        .patch("cfg", &pp, &Patch::Merge(json!({"data": {"a": null}})))
        .await
        .expect("merge");
    assert_eq!(cm.data.as_ref().and_then(|d| d.get("a")), None);
    let cm: ConfigMap = json_patch(
        &sim,
        "cfg",
        json!([{"op": "add", "path": "/data/c", "value": "3"}]),
    )
    .await
    .expect("json");
    assert_eq!(
        cm.data
            .as_ref()
            .and_then(|d| d.get("c"))
            .map(String::as_str),
        Some("3")
    );

    // Server-side apply updates an existing object and creates a missing one.
    let apply = PatchParams::apply("kubesim-test").force();
    let cm = cms
        .patch("cfg", &apply, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"d": "4"}})))
        .await
        .expect("apply");
    assert_eq!(
        cm.data
            .as_ref()
            .and_then(|d| d.get("d"))
            .map(String::as_str),
        Some("4")
    );
    let created = cms
        .patch("fresh", &apply, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fresh"}, "data": {"x": "y"}})))
        .await
        .expect("apply creates");
    assert!(created.metadata.uid.is_some());

    // A JSON patch whose test fails is a 422; a patch of a missing object is a 404.
    let bad = json_patch(
        &sim,
        "cfg",
        json!([{"op": "test", "path": "/data/c", "value": "nope"}]),
    )
    .await;
    assert_eq!(api_err(bad).code, 422);
    assert_eq!(
        api_err(
            cms.patch("missing", &pp, &Patch::Merge(json!({"data": {}})))
                .await
        )
        .code,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_with_a_stale_resource_version_is_a_conflict() {
    let sim = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&sim));
    let first = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"v": "1"}}))
                .expect("cm"),
        )
        .await
        .expect("create");
    let mut newer = first.clone();
    newer.data = Some([("v".to_string(), "2".to_string())].into());
    cms.replace("cfg", &PostParams::default(), &newer)
        .await
        .expect("first replace");

    let mut stale = first;
    stale.data = Some([("v".to_string(), "3".to_string())].into());
    let e = api_err(cms.replace("cfg", &PostParams::default(), &stale).await);
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        e.message,
        "Operation cannot be fulfilled on configmaps \"cfg\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert_eq!(
        cms.get("cfg")
            .await
            .expect("get")
            .data
            .and_then(|d| d.get("v").cloned())
            .as_deref(),
        Some("2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_objects_are_a_404_with_a_status_body() {
    let sim = start().await;
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let e = api_err(pods.get("nope").await);
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (404, "NotFound", "pods \"nope\" not found")
    );
    let details = e.details.expect("details");
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("nope", "pods")
    );

    let deploys: Api<Deployment> = Api::default_namespaced(client(&sim));
    let e = api_err(deploys.get("nope").await);
    assert_eq!(e.message, "deployments.apps \"nope\" not found");

    // Creating in a namespace that does not exist.
    let elsewhere: Api<Pod> = Api::namespaced(client(&sim), "ghost");
    let e = api_err(
        elsewhere
            .create(&PostParams::default(), &pod_json("p", json!({})))
            .await,
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "namespaces \"ghost\" not found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_spec_is_immutable_except_added_tolerations() {
    let sim = start().await;
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    pods.create(&PostParams::default(), &pod_json("p", json!({})))
        .await
        .expect("create");
    let pp = PatchParams::default();

    let e = api_err(
        pods.patch(
            "p",
            &pp,
            &Patch::Strategic(json!({"spec": {"restartPolicy": "Never"}})),
        )
        .await,
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(
        e.message.starts_with("Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
        "{}",
        e.message
    );

    // nodeName moves only through the binding subresource.
    let e = api_err(
        pods.patch("p", &pp, &Patch::Merge(json!({"spec": {"nodeName": "n1"}})))
            .await,
    );
    assert_eq!(e.code, 422);

    // Adding a toleration is accepted (tolerations are replaced wholesale by a strategic patch).
    let mut tols = pods
        .get("p")
        .await
        .expect("get")
        .spec
        .and_then(|s| s.tolerations)
        .unwrap_or_default();
    let before = tols.len();
    tols.push(
        serde_json::from_value(
            json!({"key": "costop.io/draining", "operator": "Exists", "effect": "NoSchedule"}),
        )
        .expect("toleration"),
    );
    let patched = pods
        .patch(
            "p",
            &pp,
            &Patch::Strategic(json!({"spec": {"tolerations": tols}})),
        )
        .await
        .expect("add toleration");
    assert_eq!(
        patched.spec.and_then(|s| s.tolerations).map(|t| t.len()),
        Some(before + 1)
    );

    // Removing it again is not.
    let e = api_err(
        pods.patch(
            "p",
            &pp,
            &Patch::Strategic(json!({"spec": {"tolerations": tols[..before].to_vec()}})),
        )
        .await,
    );
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        "Pod \"p\" is invalid: spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
    );

    // Images may change.
    let patched = pods
        .patch(
            "p",
            &pp,
            &Patch::Strategic(
                json!({"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}}),
            ),
        )
        .await
        .expect("image change");
    assert_eq!(
        patched.spec.map(|s| s.containers[0].image.clone()),
        Some(Some("nginx:1.28".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_and_field_selectors_filter_lists() {
    let sim = start().await;
    let store = sim.store();
    node(store, "n1", json!({}));
    node(store, "n2", json!({}));
    pod(
        store,
        "default",
        "a",
        Some("n1"),
        json!({"app": "web"}),
        None,
        false,
    );
    pod(
        store,
        "default",
        "b",
        Some("n2"),
        json!({"app": "web", "tier": "front"}),
        None,
        false,
    );
    pod(
        store,
        "default",
        "c",
        Some("n1"),
        json!({"app": "db"}),
        None,
        false,
    );
    ensure_running(store, "default", "a").await;
    ensure_running(store, "default", "b").await;
    store
        .modify(&resources::PODS, Some("default"), "c", |p| {
            p["status"]["phase"] = json!("Succeeded");
            Ok(())
        })
        .expect("c finished");

    let pods: Api<Pod> = Api::all(client(&sim));
    let names = |l: kube::core::ObjectList<Pod>| {
        let mut n: Vec<String> = l
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(
            pods.list(&ListParams::default().labels("app=web"))
                .await
                .expect("list")
        ),
        ["a", "b"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().labels("app=web,!tier"))
                .await
                .expect("list")
        ),
        ["a"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().labels("app in (db,cache)"))
                .await
                .expect("list")
        ),
        ["c"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().fields("spec.nodeName=n1"))
                .await
                .expect("list")
        ),
        ["a", "c"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .expect("list")
        ),
        ["b"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().fields("spec.nodeName=n1,status.phase!=Running"))
                .await
                .expect("list")
        ),
        ["c"]
    );
    assert_eq!(
        names(
            pods.list(
                &ListParams::default()
                    .fields("status.phase=Running")
                    .labels("app")
            )
            .await
            .expect("list")
        ),
        ["a", "b"]
    );
    let e = api_err(
        pods.list(&ListParams::default().fields("spec.bogus=1"))
            .await,
    );
    assert_eq!(e.code, 400);
    let e = api_err(pods.list(&ListParams::default().labels("app in (")).await);
    assert_eq!(e.code, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_changes_in_order_and_resumes_from_a_resource_version() {
    let sim = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&sim));
    let list = cms.list(&ListParams::default()).await.expect("list");
    let rv = list.metadata.resource_version.expect("list rv");

    let stream = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .expect("watch");
    let mut stream = stream.boxed();
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "w"}, "data": {"v": "1"}})).expect("cm");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let modified = cms
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": "2"}})),
        )
        .await
        .expect("patch");
    cms.delete("w", &DeleteParams::default())
        .await
        .expect("delete");

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .expect("event in time")
            .expect("ok")
            .expect("open");
        match ev {
            WatchEvent::Added(c) => seen.push(("ADDED", c.data.and_then(|d| d.get("v").cloned()))),
            WatchEvent::Modified(c) => {
                seen.push(("MODIFIED", c.data.and_then(|d| d.get("v").cloned())))
            }
            WatchEvent::Deleted(c) => {
                seen.push(("DELETED", c.data.and_then(|d| d.get("v").cloned())))
            }
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    let v = |s: &str| Some(s.to_string());
    assert_eq!(
        seen,
        [("ADDED", v("1")), ("MODIFIED", v("2")), ("DELETED", v("2"))]
    );

    // Resuming after the MODIFIED event replays only the DELETED one.
    let after = modified.metadata.resource_version.expect("rv");
    let mut resumed = cms
        .watch(&WatchParams::default().timeout(5), &after)
        .await
        .expect("watch")
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(5), resumed.try_next())
        .await
        .expect("in time")
        .expect("ok")
        .expect("open");
    assert!(matches!(ev, WatchEvent::Deleted(_)), "{ev:?}");

    // Watching from "0" starts with the current state; bookmarks carry a resourceVersion.
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create again");
    let mut fresh = cms
        .watch(&WatchParams::default().timeout(5), "0")
        .await
        .expect("watch")
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(5), fresh.try_next())
        .await
        .expect("in time")
        .expect("ok")
        .expect("open");
    assert!(
        matches!(ev, WatchEvent::Added(ref c) if c.metadata.name.as_deref() == Some("w")),
        "{ev:?}"
    );

    // A streaming list: the current state, then a bookmark marking its end.
    let mut streaming = cms
        .watch(&WatchParams::streaming_lists().timeout(5), "")
        .await
        .expect("watch")
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(5), streaming.try_next())
        .await
        .expect("in time")
        .expect("ok")
        .expect("open");
    assert!(
        matches!(ev, WatchEvent::Added(ref c) if c.metadata.name.as_deref() == Some("w")),
        "{ev:?}"
    );
    let ev = tokio::time::timeout(Duration::from_secs(5), streaming.try_next())
        .await
        .expect("in time")
        .expect("ok")
        .expect("open");
    match ev {
        WatchEvent::Bookmark(b) => {
            assert_eq!(
                b.metadata
                    .annotations
                    .get("k8s.io/initial-events-end")
                    .map(String::as_str),
                Some("true")
            );
            assert!(b.metadata.resource_version.parse::<u64>().is_ok());
        }
        other => panic!("expected the initial-events-end bookmark, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_compacted_resource_version_gets_410_gone() {
    let sim = start().await;
    let store = sim.store().clone();
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&sim));
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "c"}})).expect("cm"),
    )
    .await
    .expect("create");
    let old = store.current_rv();
    // Push the old version out of the watch history (it keeps the last 100 000 events).
    store
        .transaction(|tx| {
            for i in 0..100_050 {
                tx.modify(&resources::CONFIGMAPS, Some("default"), "c", |o| {
                    o["data"] = json!({"i": i.to_string()});
                    Ok(())
                })?;
            }
            Ok(())
        })
        .expect("churn");
    let mut stream = cms
        .watch(&WatchParams::default().timeout(5), &old.to_string())
        .await
        .expect("watch")
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .expect("in time")
        .expect("ok")
        .expect("open");
    match ev {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_respects_the_disruption_budget() {
    let sim = start().await;
    let store = sim.store().clone();
    node(&store, "n1", json!({}));
    for name in ["db-0", "db-1"] {
        pod(
            &store,
            "default",
            name,
            Some("n1"),
            json!({"app": "db"}),
            None,
            false,
        );
        ensure_running(&store, "default", name).await;
    }
    let pdbs: Api<PodDisruptionBudget> = Api::default_namespaced(client(&sim));
    pdbs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "db"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "db"}}}})).expect("pdb"),
    )
    .await
    .expect("pdb created");
    let s = store.clone();
    tokio::task::spawn_blocking(move || settle_pdb(&s, "default", "db", 0, 2, 2, 2))
        .await
        .expect("settled");

    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let e = api_err(pods.evict("db-0", &EvictParams::default()).await);
    assert_eq!((e.code, e.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(
        e.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let causes = e.details.expect("details").causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason, "DisruptionBudget");
    assert_eq!(
        causes[0].message,
        "The disruption budget db needs 2 healthy pods and has 2 currently"
    );
    assert!(
        pods.get("db-0")
            .await
            .expect("still there")
            .metadata
            .deletion_timestamp
            .is_none()
    );

    // Loosen the budget: one disruption allowed.
    pdbs.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"minAvailable": 1}})),
    )
    .await
    .expect("loosen");
    let s = store.clone();
    tokio::task::spawn_blocking(move || settle_pdb(&s, "default", "db", 1, 2, 1, 2))
        .await
        .expect("settled");

    let status = pods
        .evict("db-0", &EvictParams::default())
        .await
        .expect("evicted");
    assert!(status.is_success());
    // Gracefully deleting (or, with a fast kubelet, already gone).
    if let Some(p) = pods.get_opt("db-0").await.expect("get") {
        assert!(p.metadata.deletion_timestamp.is_some());
        let conds = p.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(
            conds
                .iter()
                .any(|c| c.type_ == "DisruptionTarget" && c.status == "True"),
            "{conds:?}"
        );
    }
    let pdb = pdbs.get("db").await.expect("pdb");
    assert_eq!(pdb.status.expect("status").disruptions_allowed, 0);

    // The budget is spent again: the second pod stays.
    let e = api_err(pods.evict("db-1", &EvictParams::default()).await);
    assert_eq!(e.code, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_not_running_are_evicted_without_consuming_budget() {
    let sim = start().await;
    let store = sim.store().clone();
    // Unbound, so Pending: the disruption has already happened.
    pod(
        &store,
        "default",
        "pending",
        None,
        json!({"app": "db"}),
        None,
        false,
    );
    pdb(&store, "default", "db", json!({"app": "db"}), 5, 0, 0, 1);
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    assert!(
        pods.evict("pending", &EvictParams::default())
            .await
            .expect("evicted")
            .is_success()
    );
    assert!(pods.get_opt("pending").await.expect("get").is_none());

    // Two PDBs over one pod is a 500, as on the real server.
    node(&store, "n1", json!({}));
    pod(
        &store,
        "default",
        "db-0",
        Some("n1"),
        json!({"app": "db"}),
        None,
        false,
    );
    ensure_running(&store, "default", "db-0").await;
    pdb(&store, "default", "db2", json!({"app": "db"}), 0, 1, 1, 1);
    let e = api_err(pods.evict("db-0", &EvictParams::default()).await);
    assert_eq!(e.code, 500);
    assert_eq!(
        e.message,
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );

    // A missing pod is a 404.
    assert_eq!(
        api_err(pods.evict("ghost", &EvictParams::default()).await).code,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_change_nothing() {
    let sim = start().await;
    let store = sim.store().clone();
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&sim));
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"v": "1"}}))
            .expect("cm");
    let rv_before = store.current_rv();
    let out = cms.create(&dry, &cm).await.expect("dry create");
    assert_eq!(out.metadata.name.as_deref(), Some("cfg"));
    assert!(cms.get_opt("cfg").await.expect("get").is_none());
    assert_eq!(store.current_rv(), rv_before);

    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let patched = cms
        .patch(
            "cfg",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"data": {"v": "2"}})),
        )
        .await
        .expect("dry patch");
    assert_eq!(
        patched.data.and_then(|d| d.get("v").cloned()).as_deref(),
        Some("2")
    );
    assert_eq!(
        cms.get("cfg")
            .await
            .expect("get")
            .data
            .and_then(|d| d.get("v").cloned())
            .as_deref(),
        Some("1")
    );

    cms.delete(
        "cfg",
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .expect("dry delete");
    assert!(cms.get_opt("cfg").await.expect("get").is_some());

    // A dry-run eviction passes the budget check but evicts nothing.
    node(&store, "n1", json!({}));
    pod(
        &store,
        "default",
        "p",
        Some("n1"),
        json!({"app": "x"}),
        None,
        false,
    );
    ensure_running(&store, "default", "p").await;
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    // (kube sends EvictParams::delete_options as `delete_options`, which API servers ignore, so
    // the dry run goes in the query.)
    let ep = EvictParams {
        post_options: PostParams {
            dry_run: true,
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(
        pods.evict("p", &ep)
            .await
            .expect("dry eviction")
            .is_success()
    );
    assert!(
        pods.get("p")
            .await
            .expect("still there")
            .metadata
            .deletion_timestamp
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_bound_pod_is_graceful() {
    let sim = start().await;
    let store = sim.store().clone();
    node(&store, "n1", json!({}));
    let mut p = pod_json("p", json!({}));
    if let Some(spec) = p.spec.as_mut() {
        spec.node_name = Some("n1".into());
        spec.termination_grace_period_seconds = Some(3000);
    }
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    pods.create(&PostParams::default(), &p)
        .await
        .expect("create");
    ensure_running(&store, "default", "p").await;

    let deleted = pods
        .delete("p", &DeleteParams::default())
        .await
        .expect("delete");
    let obj = deleted
        .left()
        .expect("the pod comes back while it terminates");
    assert!(obj.metadata.deletion_timestamp.is_some());
    assert_eq!(obj.metadata.deletion_grace_period_seconds, Some(3000));
    // A shorter grace period on a second delete wins; 0 removes it at once.
    pods.delete(
        "p",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .expect("force delete");
    assert!(pods.get_opt("p").await.expect("get").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_resources_and_subresources_both_ways() {
    let sim = start().await;
    for aggregated in [false, true] {
        let d = Discovery::new(client(&sim));
        let d = if aggregated {
            d.run_aggregated().await
        } else {
            d.run().await
        }
        .expect("discovery");
        let (pods, caps) = d
            .groups()
            .flat_map(|g| g.recommended_resources())
            .find(|(r, _)| r.plural == "pods" && r.group.is_empty())
            .expect("pods discovered");
        assert_eq!(pods.kind, "Pod");
        assert!(
            caps.subresources
                .iter()
                .any(|(r, _)| r.plural == "eviction"),
            "{:?}",
            caps.subresources
        );
        assert!(d.has_group("policy") && d.has_group("apps") && d.has_group("coordination.k8s.io"));
    }
    let v = client(&sim).apiserver_version().await.expect("version");
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "33"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_status_and_metadata_endpoints_work() {
    let sim = start().await;
    let deploys: Api<Deployment> = Api::default_namespaced(client(&sim));
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}},
    }))
    .expect("deployment");
    deploys
        .create(&PostParams::default(), &d)
        .await
        .expect("create");
    let scale = deploys.get_scale("web").await.expect("scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));
    assert_eq!(
        scale.status.map(|s| s.selector),
        Some(Some("app=web".into()))
    );
    let scale = deploys
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("patch scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(5));
    assert_eq!(
        deploys
            .get("web")
            .await
            .expect("get")
            .spec
            .and_then(|s| s.replicas),
        Some(5)
    );

    // A selector that does not match the template is a 422.
    let mut bad = d.clone();
    bad.metadata.name = Some("bad".into());
    if let Some(spec) = bad.spec.as_mut() {
        spec.selector.match_labels = Some([("app".to_string(), "other".to_string())].into());
    }
    assert_eq!(
        api_err(deploys.create(&PostParams::default(), &bad).await).code,
        422
    );

    // The status subresource writes status only.
    let nodes: Api<Node> = Api::all(client(&sim));
    node(sim.store(), "n1", json!({}));
    let patched = nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"capacity": {"pods": "110"}}, "spec": {"unschedulable": true}}),
            ),
        )
        .await
        .expect("patch status");
    assert_eq!(
        patched
            .status
            .and_then(|s| s.capacity)
            .and_then(|c| c.get("pods").cloned())
            .map(|q| q.0),
        Some("110".into())
    );
    assert_ne!(patched.spec.and_then(|s| s.unschedulable), Some(true));

    // Metadata-only lists.
    let metas = nodes
        .list_metadata(&ListParams::default())
        .await
        .expect("metadata list");
    assert_eq!(metas.items.len(), 1);
    assert_eq!(metas.items[0].metadata.name.as_deref(), Some("n1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_assigns_a_pending_pod_once() {
    let sim = start().await;
    node(sim.store(), "n1", json!({}));
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let mut p = pod_json("p", json!({}));
    if let Some(s) = p.spec.as_mut() {
        // Keep the scheduler away: this test binds the pod itself.
        s.scheduler_name = Some("manual".into());
    }
    pods.create(&PostParams::default(), &p)
        .await
        .expect("create");
    let binding = |node: &str| json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    let status: Status = pods
        .create_subresource("binding", "p", &PostParams::default(), &binding("n1"))
        .await
        .expect("bound");
    assert!(status.is_success());
    let p = pods.get("p").await.expect("get");
    assert_eq!(p.spec.and_then(|s| s.node_name).as_deref(), Some("n1"));
    assert!(
        p.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
    );

    let e = api_err(
        pods.create_subresource::<Value, Status>(
            "binding",
            "p",
            &PostParams::default(),
            &binding("n2"),
        )
        .await,
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            409,
            "Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"n1\""
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_priority_comes_from_its_priority_class() {
    let sim = start().await;
    let pcs: Api<PriorityClass> = Api::all(client(&sim));
    pcs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "batch"}, "value": 1000})).expect("pc"),
    )
    .await
    .expect("pc created");
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let mut p = pod_json("p", json!({}));
    if let Some(s) = p.spec.as_mut() {
        s.priority_class_name = Some("batch".into());
    }
    let created = pods
        .create(&PostParams::default(), &p)
        .await
        .expect("create");
    assert_eq!(created.spec.as_ref().and_then(|s| s.priority), Some(1000));
    assert_eq!(
        created
            .spec
            .as_ref()
            .and_then(|s| s.preemption_policy.clone())
            .as_deref(),
        Some("PreemptLowerPriority")
    );

    let mut q = pod_json("q", json!({}));
    if let Some(s) = q.spec.as_mut() {
        s.priority_class_name = Some("missing".into());
    }
    let e = api_err(pods.create(&PostParams::default(), &q).await);
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        "pods \"q\" is forbidden: no PriorityClass with name missing was found"
    );

    // A global default applies to pods without a class.
    pcs.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "default-prio"}, "value": 7, "globalDefault": true}),
        )
        .expect("pc"),
    )
    .await
    .expect("default pc");
    let created = pods
        .create(&PostParams::default(), &pod_json("r", json!({})))
        .await
        .expect("create");
    assert_eq!(created.spec.as_ref().and_then(|s| s.priority), Some(7));
    assert_eq!(
        created
            .spec
            .as_ref()
            .and_then(|s| s.priority_class_name.clone())
            .as_deref(),
        Some("default-prio")
    );
    let e = api_err(
        pcs.create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "second"}, "value": 8, "globalDefault": true}),
            )
            .expect("pc"),
        )
        .await,
    );
    assert_eq!(e.code, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_watch_reports_objects_entering_and_leaving_it() {
    let sim = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&sim));
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c", "labels": {"role": "a"}}}))
            .expect("cm");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let rv = cms
        .list(&ListParams::default().labels("role=b"))
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut w = cms
        .watch(&WatchParams::default().labels("role=b").timeout(5), &rv)
        .await
        .expect("watch")
        .boxed();
    cms.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"role": "b"}}})),
    )
    .await
    .expect("enter");
    cms.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"role": "c"}}})),
    )
    .await
    .expect("leave");
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(5), w.try_next())
            .await
            .expect("in time")
            .expect("ok")
            .expect("open")
        {
            WatchEvent::Added(_) => kinds.push("ADDED"),
            WatchEvent::Modified(_) => kinds.push("MODIFIED"),
            WatchEvent::Deleted(_) => kinds.push("DELETED"),
            _ => {}
        }
    }
    assert_eq!(kinds, ["ADDED", "DELETED"]);
}
