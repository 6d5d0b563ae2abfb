//! The configuration's behaviour: defaults, parsing, errors, the startup line, and the
//! declaration's own consistency (names, docs table).

use super::*;

fn env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_env(pairs.iter().copied())
}

#[test]
fn no_variables_means_the_documented_defaults() {
    let c = env(&[]).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.taint_effect, TaintEffect::NoSchedule);
    assert_eq!(c.safety_margin_seconds, 15);
    assert_eq!(c.deadline_window_seconds, 120);
    assert!(!c.force_delete_at_deadline && !c.detach_from_asg && !c.out_of_service_on_terminated);
}

#[test]
fn every_documented_variable_is_read() {
    let c = env(&[
        ("COSTOP_TABLE", "t"),
        ("COSTOP_TAINT_EFFECT", "NoExecute"),
        ("COSTOP_TAINT_KEY_SPOT_INTERRUPTION", "example.com/spot"),
        ("COSTOP_DRAIN_CONCURRENCY", "4"),
        ("COSTOP_KUBE_QPS", "12.5"),
        ("COSTOP_KUBE_BURST", "20"),
        ("COSTOP_GRACE_CAP_SECONDS", "30"),
        ("COSTOP_SAFETY_MARGIN_SECONDS", "10"),
        ("COSTOP_DEADLINE_WINDOW_SECONDS", "110"),
        ("COSTOP_DRY_RUN", "yes"),
        ("COSTOP_REQUIRE_MANAGED_TAG", "1"),
        ("COSTOP_CLUSTER_ALLOW_LIST", " prod , ,staging"),
        ("COSTOP_FORCE_DELETE_AT_DEADLINE", "TRUE"),
        ("COSTOP_DETACH_FROM_ASG", "on"),
        ("COSTOP_ASG_HOOK_FAILED_DRAIN_RESULT", "abandon"),
        ("COSTOP_OUT_OF_SERVICE_ON_TERMINATED", "true"),
        ("COSTOP_TIMELINE_TTL_DAYS", "7"),
        ("COSTOP_LOG_LEVEL", "debug"),
        ("PATH", "/bin"),
    ])
    .unwrap();
    assert_eq!(c.table_name, "t");
    assert_eq!(c.taint_effect, TaintEffect::NoExecute);
    assert_eq!(
        c.taint_keys.for_kind(EventKind::SpotInterruption),
        "example.com/spot"
    );
    assert_eq!(
        c.taint_keys.for_kind(EventKind::ScheduledMaintenance),
        constants::TAINT_SCHEDULED_MAINTENANCE
    );
    assert_eq!((c.drain_concurrency, c.kube_burst), (4, 20));
    assert!((c.kube_qps - 12.5).abs() < f32::EPSILON);
    assert_eq!(
        (
            c.grace_cap_seconds,
            c.safety_margin_seconds,
            c.deadline_window_seconds
        ),
        (30, 10, 110)
    );
    assert!(c.dry_run && c.require_managed_tag && c.force_delete_at_deadline);
    assert!(c.detach_from_asg && c.out_of_service_on_terminated);
    assert_eq!(c.asg_hook_failed_drain_result, FailedDrainResult::Abandon);
    assert_eq!(c.cluster_allow_list, vec!["prod", "staging"]);
    assert_eq!(c.timeline_ttl_days, 7);
    assert_eq!(c.log_level, "debug");
}

#[test]
fn a_bad_value_names_the_variable() {
    for (var, value) in [
        ("COSTOP_TAINT_EFFECT", "PreferNoSchedule"),
        ("COSTOP_TAINT_EFFECT", "noschedule"),
        ("COSTOP_DRAIN_CONCURRENCY", "0"),
        ("COSTOP_DRAIN_CONCURRENCY", "many"),
        ("COSTOP_KUBE_QPS", "-1"),
        ("COSTOP_KUBE_QPS", "fast"),
        ("COSTOP_DRY_RUN", "maybe"),
        ("COSTOP_SAFETY_MARGIN_SECONDS", "120"),
        ("COSTOP_TAINT_KEY_SCHEDULED_MAINTENANCE", "Not A Key"),
        ("COSTOP_EVICTION_BACKOFF_MAX_MS", "10"),
    ] {
        let err = env(&[(var, value)]).unwrap_err();
        assert_eq!(err.var(), var, "{var}={value}");
        assert!(err.to_string().starts_with(var), "{err}");
    }
}

#[test]
fn empty_values_take_the_default() {
    assert_eq!(
        env(&[("COSTOP_DRAIN_CONCURRENCY", " ")])
            .unwrap()
            .drain_concurrency,
        16
    );
}

#[test]
fn the_allow_list_admits_any_cluster_when_empty() {
    let any = Config::default();
    assert!(any.allows_cluster("whatever"));
    let only = env(&[("COSTOP_CLUSTER_ALLOW_LIST", "prod")]).unwrap();
    assert!(only.allows_cluster("prod") && !only.allows_cluster("staging"));
}

#[test]
fn display_prints_one_line() {
    let line = Config::default().to_string();
    assert!(!line.contains('\n'));
    assert!(
        line.starts_with("table=costop timeline_ttl_days=30 "),
        "{line}"
    );
}

#[test]
fn every_variable_is_declared_once_with_the_prefix_a_doc_and_a_distinct_log_key() {
    let mut seen = std::collections::BTreeSet::new();
    for var in VARS {
        assert!(var.name.starts_with(PREFIX), "{}", var.name);
        assert!(!var.doc.is_empty(), "{} has no doc", var.name);
        assert!(seen.insert(var.key()), "{} declared twice", var.name);
    }
    assert_eq!(KNOWN_VARS.len(), VARS.len());
}

#[test]
fn the_variables_of_a_group_are_listed_together() {
    let mut done = Vec::new();
    for pair in VARS.windows(2) {
        if pair[0].group != pair[1].group {
            done.push(pair[0].group);
            assert!(
                !done.contains(&pair[1].group),
                "{} is apart from its group",
                pair[1].name
            );
        }
    }
}

#[test]
fn every_default_reads_back_as_the_default() {
    let defaults: Vec<(&str, String)> = VARS.iter().map(|v| (v.name, v.default_value())).collect();
    assert_eq!(Config::from_env(defaults).unwrap(), Config::default());
}

#[test]
fn every_value_reads_back_as_itself() {
    let c = env(&[
        ("COSTOP_TAINT_EFFECT", "NoExecute"),
        ("COSTOP_KUBE_QPS", "12.5"),
        ("COSTOP_CLUSTER_ALLOW_LIST", "prod, staging"),
        ("COSTOP_EVICTION_BACKOFF_MAX_MS", "9000"),
        ("COSTOP_DRY_RUN", "on"),
        ("COSTOP_ASG_HOOK_FAILED_DRAIN_RESULT", "Default"),
    ])
    .unwrap();
    let shown: Vec<(&str, String)> = VARS.iter().map(|v| (v.name, v.value(&c))).collect();
    assert_eq!(Config::from_env(shown).unwrap(), c);
}

#[test]
fn display_has_every_variable_by_its_key() {
    let line = env(&[("COSTOP_CLUSTER_ALLOW_LIST", "prod,staging")])
        .unwrap()
        .to_string();
    let keys: Vec<&str> = line
        .split(' ')
        .map(|pair| pair.split_once('=').map_or(pair, |(k, _)| k))
        .collect();
    let want: Vec<String> = VARS.iter().map(Var::key).collect();
    assert_eq!(keys, want);
    assert!(line.contains(" cluster_allow_list=prod,staging "), "{line}");
    assert!(line.contains(" eviction_backoff_base_ms=250 eviction_backoff_max_ms=5000 "));
}

#[test]
fn the_rules_across_variables_hold_whichever_variable_is_set() {
    let err = env(&[("COSTOP_DEADLINE_WINDOW_SECONDS", "15")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "COSTOP_SAFETY_MARGIN_SECONDS=\"15\" is invalid: must be less than the deadline window \
         (15 s), or nothing could be drained"
    );
    let err = env(&[("COSTOP_EVICTION_BACKOFF_BASE_MS", "6000")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "COSTOP_EVICTION_BACKOFF_MAX_MS=\"5000\" is invalid: must be at least \
         COSTOP_EVICTION_BACKOFF_BASE_MS (6000)"
    );
}

#[test]
fn out_of_range_and_malformed_values_say_why() {
    for (var, value, message) in [
        (
            "COSTOP_DRAIN_CONCURRENCY",
            "0",
            "COSTOP_DRAIN_CONCURRENCY=\"0\" is invalid: must be between 1 and 1000",
        ),
        (
            "COSTOP_STANDBY_POOL_SIZE",
            "-1",
            "COSTOP_STANDBY_POOL_SIZE=\"-1\" is not an integer",
        ),
        (
            "COSTOP_GRACE_CAP_SECONDS",
            "86401",
            "COSTOP_GRACE_CAP_SECONDS=\"86401\" is invalid: must be between 1 and 86400",
        ),
        (
            "COSTOP_KUBE_QPS",
            "inf",
            "COSTOP_KUBE_QPS=\"inf\" is invalid: must be a positive number",
        ),
        (
            "COSTOP_KUBE_QPS",
            "fast",
            "COSTOP_KUBE_QPS=\"fast\" is not a number",
        ),
        (
            "COSTOP_DRY_RUN",
            "maybe",
            "COSTOP_DRY_RUN=\"maybe\" is invalid: expected true/false, 1/0, yes/no or on/off",
        ),
        (
            "COSTOP_TAINT_EFFECT",
            "PreferNoSchedule",
            "COSTOP_TAINT_EFFECT=\"PreferNoSchedule\" is invalid: expected NoSchedule or NoExecute",
        ),
        (
            "COSTOP_TAINT_KEY_STANDBY",
            "Not A Key",
            "COSTOP_TAINT_KEY_STANDBY=\"Not A Key\" is invalid: not a Kubernetes qualified name \
             (e.g. example.com/my-taint)",
        ),
        (
            "COSTOP_ASG_HOOK_FAILED_DRAIN_RESULT",
            "ROLLBACK",
            "COSTOP_ASG_HOOK_FAILED_DRAIN_RESULT=\"ROLLBACK\" is invalid: expected CONTINUE, \
             ABANDON or DEFAULT",
        ),
    ] {
        assert_eq!(env(&[(var, value)]).unwrap_err().to_string(), message);
    }
}

#[test]
fn the_docs_table_is_the_declaration() {
    let checked_in = include_str!("variables.md");
    assert!(
        checked_in == markdown(),
        "crates/core/src/config/variables.md differs from the declaration in config/vars.rs; \
         regenerate it with\n  cargo run -q -p costop-cli -- config --list --markdown \
         > crates/core/src/config/variables.md"
    );
}

#[test]
fn the_fallback_routes_are_validated_at_start_naming_the_bad_entry() {
    let c = env(&[
        (
            "COSTOP_FALLBACK_ROUTES",
            r#"[{"prefix": "/orders", "queue_safe": true, "json": true}]"#,
        ),
        ("COSTOP_FALLBACK_DEFAULT_POLICY", "reject"),
        (
            "COSTOP_FALLBACK_UPSTREAM",
            "http://internal-shop.local:8080/",
        ),
    ])
    .unwrap();
    assert_eq!(c.fallback_routes.specs().len(), 1);
    assert_eq!(
        c.fallback_default_policy,
        crate::fallback::DefaultPolicy::Reject
    );
    assert_eq!(c.fallback_upstream, "http://internal-shop.local:8080");
    let e = env(&[(
        "COSTOP_FALLBACK_ROUTES",
        r#"[{"prefix": "/a"}, {"method": "POST", "prefix": "orders"}]"#,
    )])
    .unwrap_err();
    assert_eq!(e.var(), "COSTOP_FALLBACK_ROUTES");
    assert!(e.to_string().contains("route 1 (POST orders)"), "{e}");
    for (var, value) in [
        ("COSTOP_FALLBACK_UPSTREAM", "https://internal:443"),
        ("COSTOP_FALLBACK_UPSTREAM", "http://"),
        ("COSTOP_FALLBACK_DEFAULT_POLICY", "queue"),
        ("COSTOP_FALLBACK_BACKOFF_MAX_MS", "10"),
        ("COSTOP_REPLAY_RATE", "0"),
    ] {
        assert_eq!(
            env(&[(var, value)]).unwrap_err().var(),
            var,
            "{var}={value}"
        );
    }
}
