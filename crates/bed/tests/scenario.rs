//! Scenario files parse, validate, and fail with messages that say what is wrong and where.

use costop_bed::Scenario;
use costop_bed::scenario::{Capacity, ScenarioError, builtin};

#[test]
fn the_default_scenario_parses_and_validates() {
    let s = Scenario::from_yaml(builtin::DEFAULT).expect("default.yaml is valid");
    assert_eq!(s.network.zones.len(), 2);
    let spot: u32 = s
        .node_groups
        .iter()
        .filter(|g| g.capacity == Capacity::Spot)
        .map(|g| s.count_of(g))
        .sum();
    let on_demand: u32 = s
        .node_groups
        .iter()
        .filter(|g| g.capacity == Capacity::OnDemand && !g.standby)
        .map(|g| s.count_of(g))
        .sum();
    let standby: Vec<_> = s.node_groups.iter().filter(|g| g.standby).collect();
    assert_eq!(
        (spot, on_demand),
        (3, 1),
        "3 spot nodes and 1 on-demand node"
    );
    assert_eq!(standby.len(), 1);
    assert_eq!(s.count_of(standby[0]), 2, "one standby per zone by default");
    let (_, taints) = s.registration_of(standby[0]);
    assert!(
        taints
            .iter()
            .any(|t| t.key == "costop.io/standby" && t.value == "true" && t.effect == "NoSchedule")
    );

    let objects = s.manifest_objects().unwrap();
    let kinds: Vec<String> = objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "Deployment/web",
        "PodDisruptionBudget/web",
        "Deployment/api",
        "PodDisruptionBudget/api",
        "Deployment/worker",
        "DaemonSet/node-agent",
        "PriorityClass/costop-headroom",
        "Deployment/headroom",
    ] {
        assert!(
            kinds.iter().any(|k| k == want),
            "{want} missing from {kinds:?}"
        );
    }
    assert_eq!(s.table.partition_key, "pk");
    assert_eq!(s.table.sort_key, "sk");
    assert_eq!(s.table.ttl_attribute, "ttl");
}

#[test]
fn every_shipped_scenario_file_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            Scenario::from_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 3);
    let large = Scenario::builtin("large").unwrap();
    let nodes: u32 = large
        .node_groups
        .iter()
        .filter(|g| !g.standby)
        .map(|g| large.count_of(g))
        .sum();
    assert_eq!(nodes, 200);
}

#[test]
fn a_scenario_with_an_unknown_field_is_rejected_clearly() {
    let yaml = builtin::DEFAULT.replace("    count: 3\n", "    count: 3\n    spot_price: 0.1\n");
    assert_ne!(yaml, builtin::DEFAULT);
    let err = Scenario::from_yaml(&yaml).unwrap_err();
    assert!(matches!(err, ScenarioError::Parse { .. }), "{err:?}");
    let msg = format!("{err}");
    assert!(msg.contains("unknown field `spot_price`"), "{msg}");
    assert!(
        msg.contains("expected one of") && msg.contains("instance_types"),
        "lists the known fields: {msg}"
    );
    assert!(msg.contains("line "), "says where: {msg}");
}

#[test]
fn invalid_counts_zones_and_references_are_all_reported() {
    let yaml = builtin::DEFAULT
        .replace("    count: 3\n", "    count: 0\n")
        .replace("    zones: [us-east-1a]\n", "    zones: [us-west-2a]\n")
        .replace(
            "node_groups: [spot-general, system]",
            "node_groups: [spot-general, nope]",
        );
    let err = Scenario::from_yaml(&yaml).unwrap_err();
    let msg = format!("{err}");
    assert!(
        msg.contains("node_groups[0] (spot-general): count must be at least 1"),
        "{msg}"
    );
    assert!(
        msg.contains(
            "zone `us-west-2a` is not one of the scenario's zones (us-east-1a, us-east-1b)"
        ),
        "{msg}"
    );
    assert!(msg.contains("node group `nope` does not exist"), "{msg}");

    let bad_zone = builtin::DEFAULT.replace("    - name: us-east-1b\n", "    - name: eu-west-1b\n");
    let msg = format!("{}", Scenario::from_yaml(&bad_zone).unwrap_err());
    assert!(
        msg.contains("`eu-west-1b` is not an availability zone of us-east-1"),
        "{msg}"
    );

    let bad_kind = builtin::DEFAULT.replace("kind: DaemonSet", "kind: CronJob");
    let msg = format!("{}", Scenario::from_yaml(&bad_kind).unwrap_err());
    assert!(
        msg.contains("kubesim does not serve apps/v1 CronJob"),
        "{msg}"
    );
}

#[test]
fn a_scenario_argument_names_a_built_in_or_a_file_and_an_unknown_name_lists_the_built_ins() {
    let demo = Scenario::named_or_file("demo").expect("the built-in demo");
    assert_eq!(demo.name, "demo");
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/demo.yaml");
    let from_file = Scenario::named_or_file(file.to_str().unwrap()).expect("the demo file");
    assert_eq!(from_file, demo, "the built-in is the file");

    let err = Scenario::named_or_file("nope").unwrap_err();
    assert!(matches!(err, ScenarioError::Unknown { .. }), "{err:?}");
    let msg = err.to_string();
    for (name, _) in builtin::ALL {
        assert!(msg.contains(name), "lists `{name}`: {msg}");
    }

    let err = Scenario::named_or_file("missing/nope.yaml").unwrap_err();
    assert!(matches!(err, ScenarioError::Read { .. }), "{err:?}");
}
