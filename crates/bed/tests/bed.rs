//! Whole beds: the default scenario end to end, seeding through moto, and clean shutdown.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, InstanceLifecycleType, InstanceStateName};
use common::*;
use costop_bed::{Bed, Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_bed_seeds_ec2_autoscaling_elbv2_and_dynamodb() {
    init_tracing();
    let bed = Bed::start(Scenario::default_scenario()).await.unwrap();
    let w = bed.world();
    let ec2 = bed.ec2();
    let out = ec2
        .describe_instances()
        .filters(
            Filter::builder()
                .name("tag:eks:cluster-name")
                .values("costop-dev")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let instances: Vec<_> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .collect();
    assert_eq!(instances.len(), 6, "3 spot + 1 on-demand + 2 standbys");
    let tag = |i: &aws_sdk_ec2::types::Instance, k: &str| {
        i.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    for i in &instances {
        let id = i.instance_id().unwrap();
        let spot = i.instance_lifecycle() == Some(&InstanceLifecycleType::Spot);
        let state = i.state().and_then(|s| s.name()).unwrap();
        assert_eq!(
            tag(i, "kubernetes.io/cluster/costop-dev").as_deref(),
            Some("owned"),
            "{id}"
        );
        if tag(i, "costop.io/standby").is_some() {
            assert!(!spot);
            assert_eq!(state, &InstanceStateName::Stopped, "standbys are stopped");
            assert_eq!(
                tag(
                    i,
                    "k8s.io/cluster-autoscaler/node-template/taint/costop.io/standby"
                )
                .as_deref(),
                Some("true:NoSchedule")
            );
            assert_eq!(tag(i, "costop.io/managed").as_deref(), Some("true"));
        } else {
            assert_eq!(state, &InstanceStateName::Running);
            let ng = tag(i, "eks:nodegroup-name").unwrap();
            assert_eq!(spot, ng == "spot-general", "{id} in {ng}");
            assert_eq!(
                tag(i, "aws:autoscaling:groupName"),
                Some(format!("eks-costop-dev-{ng}"))
            );
        }
    }
    let mut standby_zones: Vec<_> = w.standbys().keys().cloned().collect();
    standby_zones.sort();
    assert_eq!(
        standby_zones,
        ["us-east-1a", "us-east-1b"],
        "one standby per zone"
    );
    let spot_zones: std::collections::BTreeSet<_> = w.node_groups["spot-general"]
        .instances
        .iter()
        .map(|i| i.availability_zone.clone())
        .collect();
    assert_eq!(spot_zones.len(), 2, "spot nodes spread over both zones");

    let asg = bed
        .autoscaling()
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("eks-costop-dev-spot-general")
        .send()
        .await
        .unwrap();
    assert_eq!(asg.auto_scaling_groups()[0].instances().len(), 3);

    let elb = bed.elbv2();
    let web = &w.target_groups["costop-dev-web"];
    let health = elb
        .describe_target_health()
        .target_group_arn(web)
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.target_health_descriptions().len(),
        4,
        "spot + system instances registered"
    );
    let api = &w.target_groups["costop-dev-api"];
    let health = elb
        .describe_target_health()
        .target_group_arn(api)
        .send()
        .await
        .unwrap();
    let ips: Vec<_> = health
        .target_health_descriptions()
        .iter()
        .filter_map(|d| d.target()?.id())
        .collect();
    assert_eq!(ips.len(), 3);
    assert!(
        ips.iter().all(|ip| ip.starts_with("10.0.")),
        "ip targets: {ips:?}"
    );
    assert!(w.listener_arn.is_some());

    let table = bed
        .dynamodb()
        .describe_table()
        .table_name("costop-interruptions")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = table
        .table()
        .unwrap()
        .key_schema()
        .iter()
        .map(|k| k.attribute_name().to_string())
        .collect();
    assert_eq!(keys, ["pk", "sk"]);
    let ttl = bed
        .dynamodb()
        .describe_time_to_live()
        .table_name("costop-interruptions")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|t| t.attribute_name()),
        Some("ttl")
    );

    let env: std::collections::HashMap<_, _> = bed.env().into_iter().collect();
    assert_eq!(env["AWS_ENDPOINT_URL"], bed.endpoint_url());
    assert_eq!(
        env["AWS_ENDPOINT_URL_DYNAMODB"],
        bed.dynamodb_endpoint_url()
    );
    assert_eq!(env["AWS_ENDPOINT_URL_AUTO_SCALING"], bed.front().url());
    assert_ne!(bed.front().url(), bed.endpoint_url());
    assert_eq!(env["COSTOP_TABLE"], "costop-interruptions");
    assert!(std::path::Path::new(&env["KUBECONFIG"]).is_file());
    serde_json::to_string(w).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_bed_comes_up_with_ready_nodes_and_running_pods() {
    init_tracing();
    let mut scenario = Scenario::default_scenario();
    scenario.time_scale = 100.0;
    let started = Instant::now();
    let bed = Bed::start(scenario).await.unwrap();
    bed.wait_ready(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "default bed ready in {:.1} s (start {:?})",
        started.elapsed().as_secs_f64(),
        bed.timings()
    );
    for id in bed.world().running_instance_ids() {
        assert!(node_of(&bed, &id).is_some_and(|n| costop_bed::node_ready(&n)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_bed_stops_both_motos() {
    let bed = one_node_bed().await;
    let motos = [
        (bed.moto().pid(), bed.moto().addr()),
        (bed.dynamodb_moto().pid(), bed.dynamodb_moto().addr()),
    ];
    assert_ne!(motos[0].0, motos[1].0, "DynamoDB has its own process");
    assert!(motos.iter().all(|(pid, _)| pid_alive(*pid)));
    drop(bed);
    for (pid, addr) in motos {
        assert!(
            !pid_alive(pid),
            "moto (pid {pid}) is gone once the bed is dropped"
        );
        assert!(
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
            "nothing listens on {addr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_motos_can_be_reset() {
    let bed = one_node_bed().await;
    bed.reset_aws().await.unwrap();
    let out = bed
        .ec2()
        .describe_vpcs()
        .filters(
            Filter::builder()
                .name("vpc-id")
                .values(&bed.world().vpc_id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        out.vpcs().is_empty(),
        "the seeded VPC is gone after a reset"
    );
    let tables = bed.dynamodb().list_tables().send().await.unwrap();
    assert!(
        tables.table_names().is_empty(),
        "the seeded tables are gone after a reset: {:?}",
        tables.table_names()
    );
}

/// Start the standalone binary, read its `KEY=VALUE` lines until `COSTOP_TABLE`.
fn start_binary() -> (
    std::process::Child,
    std::collections::HashMap<String, String>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_costop-bed"))
        .args(["--wait", "0", "--time-scale", "200"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut env = std::collections::HashMap::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        let (k, v) = line.split_once('=').expect("KEY=VALUE");
        env.insert(k.to_string(), v.trim_matches('\'').to_string());
        if k == "COSTOP_TABLE" {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, env)
}

fn moto_port_closes(endpoint: &str, within: Duration) -> bool {
    let addr: std::net::SocketAddr = endpoint.trim_start_matches("http://").parse().unwrap();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn the_standalone_bed_prints_its_environment_and_stops_on_sigterm() {
    let (mut child, env) = start_binary();
    for k in [
        "KUBECONFIG",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_AUTO_SCALING",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "COSTOP_TABLE",
    ] {
        assert!(env.contains_key(k), "{k} missing from {env:?}");
    }
    let kubeconfig = std::fs::read_to_string(&env["KUBECONFIG"]).unwrap();
    assert!(
        kubeconfig.contains("server: http://127.0.0.1:"),
        "{kubeconfig}"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(moto_port_closes(
        &env["AWS_ENDPOINT_URL"],
        Duration::from_secs(5)
    ));
    assert!(moto_port_closes(
        &env["AWS_ENDPOINT_URL_DYNAMODB"],
        Duration::from_secs(5)
    ));
    assert!(
        moto_port_closes(
            &env["AWS_ENDPOINT_URL_AUTO_SCALING"],
            Duration::from_secs(5)
        ),
        "the AWS front stops with the bed"
    );
    assert!(
        !std::path::Path::new(&env["KUBECONFIG"]).exists(),
        "the temp dir is removed"
    );
}

#[test]
fn a_killed_bed_process_leaves_no_moto_behind() {
    let (mut child, env) = start_binary();
    child.kill().unwrap(); // SIGKILL: no destructor runs; PR_SET_PDEATHSIG must take moto down.
    child.wait().unwrap();
    for k in ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"] {
        assert!(
            moto_port_closes(&env[k], Duration::from_secs(5)),
            "{k}'s moto outlived its parent"
        );
    }
    // A SIGKILLed process cannot remove its temp dir; do it for it.
    if let Some(dir) = std::path::Path::new(&env["KUBECONFIG"]).parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
