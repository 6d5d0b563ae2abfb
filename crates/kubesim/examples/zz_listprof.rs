// Temporary profiling helper (to be removed).
use std::time::Instant;
use kubesim::resources;
use kubesim::store::{ListOptions, Store};
use kubesim::selectors::FieldSelector;
use kubesim::clock::Clock;
use serde_json::json;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let store = Store::new(Clock::default());
    store.create(&resources::NAMESPACES, None, json!({"metadata": {"name": "default"}})).unwrap();
    for n in 0..200 {
        store.create(&resources::NODES, None, json!({"metadata": {"name": format!("n{n}")}})).unwrap();
    }
    for i in 0..6000 {
        let mut p = json!({"metadata": {"name": format!("p{i}"), "labels": {"app": format!("a{}", i / 100)}}, "spec": {"nodeName": format!("n{}", i % 200), "containers": [{"name": "c", "image": "nginx:1.27", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}});
        p["metadata"]["namespace"] = json!("default");
        store.create(&resources::PODS, Some("default"), p).unwrap();
    }
    let fs = FieldSelector::parse(&resources::PODS, "spec.nodeName=n7").unwrap();
    let opts = ListOptions { label: None, field: Some(fs) };
    let t = Instant::now();
    for _ in 0..100 { let (items, _) = store.list(&resources::PODS, None, &opts); assert_eq!(items.len(), 30); }
    println!("store.list by node: {:?}/op", t.elapsed() / 100);
    let t = Instant::now();
    for _ in 0..100 { let (items, _) = store.list(&resources::PODS, None, &ListOptions::default()); assert_eq!(items.len(), 6000); }
    println!("store.list all: {:?}/op", t.elapsed() / 100);
    let (items, _) = store.list(&resources::PODS, None, &ListOptions::default());
    let t = Instant::now();
    let mut n = 0;
    for _ in 0..10 { n += items.iter().filter(|p| opts.matches(p)).count(); }
    println!("matches over 6000: {:?}/op ({n})", t.elapsed() / 10);
    let t = Instant::now();
    for _ in 0..10 { n += items.iter().filter(|p| p.pointer("/spec/nodeName").and_then(|v| v.as_str()) == Some("n7")).count(); }
    println!("pointer over 6000: {:?}/op ({n})", t.elapsed() / 10);
    let t = Instant::now();
    for _ in 0..10 { n += items.iter().filter(|p| p.get("spec").and_then(|s| s.get("nodeName")).and_then(|v| v.as_str()) == Some("n7")).count(); }
    println!("get over 6000: {:?}/op ({n})", t.elapsed() / 10);
    let t = Instant::now();
    for _ in 0..20 { let v = serde_json::to_vec(&items).unwrap(); assert!(v.len() > 10); }
    println!("serialize 6000: {:?}/op", t.elapsed() / 20);
    // HTTP
    let app = kubesim::api::router(kubesim::api::ApiState { store: std::sync::Arc::new(store) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = kube::Client::try_from(kube::Config::new(format!("http://{addr}").parse().unwrap())).unwrap();
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::all(client.clone());
    let t = Instant::now();
    for i in 0..100 { let l = pods.list(&kube::api::ListParams::default().fields(&format!("spec.nodeName=n{}", i % 200))).await.unwrap(); assert_eq!(l.items.len(), 30); }
    println!("http list by node (typed): {:?}/op", t.elapsed() / 100);
    let t = Instant::now();
    for _ in 0..5 { let l = pods.list(&kube::api::ListParams::default()).await.unwrap(); assert_eq!(l.items.len(), 6000); }
    println!("http list all (typed): {:?}/op", t.elapsed() / 5);
}
