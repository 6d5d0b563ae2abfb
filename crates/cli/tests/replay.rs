//! `costop replay` and `costop timeline` as a user runs them: the real binary, pointed at the
//! local bed through the standard environment (`AWS_ENDPOINT_URL`, `KUBECONFIG`, …).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use costop_bed::Bed;
use kubesim::resources;
use kubesim::store::ListOptions;
use serde_json::{Value, json};

fn events_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

async fn bed() -> Bed {
    let mut scenario = costop_bed::Scenario::default_scenario();
    scenario.time_scale = 50.0;
    let bed = Bed::start(scenario).await.expect("bed starts");
    bed.wait_ready(Duration::from_secs(180))
        .await
        .expect("bed settles");
    bed
}

fn costop(bed: &Bed, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_costop"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in bed.env() {
        cmd.env(k, v);
    }
    cmd.output().expect("costop runs")
}

fn spot_node(bed: &Bed) -> (String, String) {
    let (nodes, _) = bed
        .sim()
        .store()
        .list(&resources::NODES, None, &ListOptions::default());
    nodes
        .iter()
        .find(|n| {
            n.pointer("/metadata/labels/eks.amazonaws.com~1capacityType")
                .and_then(Value::as_str)
                == Some("SPOT")
        })
        .map(|n| {
            (
                costop_bed::node_instance_id(n).unwrap().to_string(),
                n["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .expect("a spot node")
}

/// The captured Spot warning, re-addressed to `instance` and dated now, in a temp file.
fn warning_file(dir: &Path, instance: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(
        events_dir().join("aws.ec2-spot-instance-interruption-warning-terminate.json"),
    )
    .unwrap();
    let mut ev: Value = serde_json::from_str(&text).unwrap();
    ev["id"] = json!(uuid::Uuid::new_v4().to_string());
    ev["time"] = json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
    ev["detail"]["instance-id"] = json!(instance);
    ev["resources"] = json!([format!(
        "arn:aws:ec2:us-east-1:123456789012:instance/{instance}"
    )]);
    let path = dir.join("warning.json");
    std::fs::write(&path, ev.to_string()).unwrap();
    path
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn unschedulable(bed: &Bed, node: &str) -> bool {
    let n = bed
        .sim()
        .store()
        .get(&resources::NODES, None, node)
        .unwrap();
    n.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_handles_a_spot_warning_and_the_timeline_reads_it_back() {
    let bed = bed().await;
    let dir = tempfile::tempdir().unwrap();
    let (instance, node) = spot_node(&bed);
    let file = warning_file(dir.path(), &instance);
    let out = tokio::task::block_in_place(|| {
        costop(
            &bed,
            &["replay", "--watch-seconds", "2", file.to_str().unwrap()],
        )
    });
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("cordoned and tainted"), "{stdout}");
    assert!(unschedulable(&bed, &node));
    let id = stdout
        .split_whitespace()
        .skip_while(|w| *w != "interruption")
        .nth(1)
        .map(|w| w.trim_end_matches(',').to_string())
        .expect("the interruption id is printed");
    let out = tokio::task::block_in_place(|| costop(&bed, &["timeline", &id]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let timeline = text(&out.stdout);
    for step in ["RECEIVED", "CORDONED", "DEREGISTERED", "DRAINED"] {
        assert!(timeline.contains(step), "{step} in {timeline}");
    }
    let out = tokio::task::block_in_place(|| costop(&bed, &["timeline", "--instance", &instance]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_dry_run_prints_the_plan_and_changes_nothing() {
    let bed = bed().await;
    let dir = tempfile::tempdir().unwrap();
    let (instance, node) = spot_node(&bed);
    let file = warning_file(dir.path(), &instance);
    let out = tokio::task::block_in_place(|| {
        costop(&bed, &["replay", "--dry-run", file.to_str().unwrap()])
    });
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("dry run") && stdout.contains(&format!("cordon {node}")),
        "{stdout}"
    );
    assert!(!unschedulable(&bed, &node));
    let items = bed
        .dynamodb()
        .scan()
        .table_name(&bed.world().table)
        .send()
        .await
        .unwrap();
    assert_eq!(items.count(), 0, "nothing recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_a_malformed_event_exits_2_with_a_clear_message_and_changes_nothing() {
    let bed = bed().await;
    for file in [
        "aws.ec2-spot-instance-interruption-warning-malformed-missing-detail.json",
        "aws.ec2-spot-instance-interruption-warning-malformed-bad-json.json",
    ] {
        let path = events_dir().join(file);
        let out = tokio::task::block_in_place(|| costop(&bed, &["replay", path.to_str().unwrap()]));
        assert_eq!(out.status.code(), Some(2), "{file}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("malformed") || stderr.contains("not valid JSON"),
            "{stderr}"
        );
    }
    let items = bed
        .dynamodb()
        .scan()
        .table_name(&bed.world().table)
        .send()
        .await
        .unwrap();
    assert_eq!(items.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_a_foreign_event_exits_0_and_says_it_was_ignored() {
    let bed = bed().await;
    let path = events_dir().join("aws.s3-object-created.json");
    let out = tokio::task::block_in_place(|| costop(&bed, &["replay", path.to_str().unwrap()]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("ignored"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_delivers_a_spot_warning_to_both_functions_aimed_and_dated_from_the_command_line() {
    let bed = bed().await;
    let (instance, node) = spot_node(&bed);
    let sample = events_dir().join("aws.ec2-spot-instance-interruption-warning-terminate.json");
    let out = tokio::task::block_in_place(|| {
        costop(
            &bed,
            &[
                "replay",
                sample.to_str().unwrap(),
                "--instance",
                &instance,
                "--now",
                "--watch-seconds",
                "2",
                "--json",
            ],
        )
    });
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let deliveries: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let functions: Vec<&str> = deliveries
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["function"].as_str().unwrap())
        .collect();
    assert_eq!(functions, ["costop-interruption", "costop-keeper"]);
    let interruption = &deliveries[0]["outcome"]["instances"][0];
    assert_eq!(interruption["instance_id"], instance.as_str());
    assert_eq!(interruption["decision"]["decision"], "act");
    assert!(
        unschedulable(&bed, &node),
        "the aimed instance's node is cordoned"
    );
    let keeper = &deliveries[1]["outcome"];
    assert_eq!(keeper["trigger"], "standby", "{keeper}");
    assert_eq!(keeper["decision"]["decision"], "act", "{keeper}");
    assert_eq!(keeper["decision"]["spot_instance"], instance.as_str());
    assert_eq!(keeper["report"]["started"], true, "{keeper}");

    // --function picks one: the keeper alone runs. Re-dated, the warning is a new interruption,
    // and the zone's one standby already serves the first, so the keeper says why none starts.
    let out = tokio::task::block_in_place(|| {
        costop(
            &bed,
            &[
                "replay",
                sample.to_str().unwrap(),
                "--instance",
                &instance,
                "--now",
                "--function",
                "costop-keeper",
                "--watch-seconds",
                "1",
            ],
        )
    });
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("costop-keeper:"), "{stdout}");
    assert!(!stdout.contains("costop-interruption:"), "{stdout}");
    assert!(stdout.contains("no standby"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_aimed_at_something_that_is_not_an_instance_id_exits_2_and_changes_nothing() {
    let bed = bed().await;
    let (_, node) = spot_node(&bed);
    let sample = events_dir().join("aws.ec2-spot-instance-interruption-warning-terminate.json");
    for bad in [node.as_str(), "i-123", "I-0123456789ABCDEF0", ""] {
        let out = tokio::task::block_in_place(|| {
            costop(
                &bed,
                &["replay", sample.to_str().unwrap(), "--instance", bad],
            )
        });
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("is not an EC2 instance id"), "{stderr}");
    }
    // An event that names no instance cannot be aimed at one.
    let tick = events_dir().join("aws.events-scheduled-event.json");
    let out = tokio::task::block_in_place(|| {
        costop(
            &bed,
            &[
                "replay",
                tick.to_str().unwrap(),
                "--instance",
                "i-0123456789abcdef0",
            ],
        )
    });
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("names no EC2 instance"));
    assert!(!unschedulable(&bed, &node));
    let items = bed
        .dynamodb()
        .scan()
        .table_name(&bed.world().table)
        .send()
        .await
        .unwrap();
    assert_eq!(items.count(), 0, "nothing recorded");
}
