use serde_json::{Value, json};

use super::*;

const FALLBACK: &str = "arn:tg/fallback";
const WEB: &str = "arn:tg/web";
const API: &str = "arn:tg/api";
const ACTION: &str = "alb.ingress.kubernetes.io/actions.costop-shift-web-80";

fn w(arn: &str, weight: u32) -> WeightedGroup {
    WeightedGroup {
        target_group_arn: arn.into(),
        weight,
    }
}

fn rule(hosts: &[&str], paths: &[&str], forward: Vec<WeightedGroup>) -> RuleFacts {
    RuleFacts {
        arn: "arn:rule/1".into(),
        listener_arn: "arn:listener".into(),
        is_default: false,
        forward,
        ingress: Some("shop/front".into()),
        hosts: hosts.iter().map(|s| (*s).to_owned()).collect(),
        paths: paths.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// An Ingress with a host's paths (`/api` Prefix → api:80, `/` Prefix → web:80, `/exact`
/// Exact → web:http, `/legacy*` → the `split` action) and a default backend on home:80.
fn ingress(annotations: Option<Value>) -> Value {
    let mut i = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"namespace": "shop", "name": "front", "resourceVersion": "7"},
        "spec": {
            "ingressClassName": "alb",
            "defaultBackend": {"service": {"name": "home", "port": {"number": 80}}},
            "rules": [
                {"host": "shop.example", "http": {"paths": [
                    {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}},
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                ]}},
                {"http": {"paths": [
                    {"path": "/exact", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
                    {"path": "/legacy*", "pathType": "ImplementationSpecific", "backend": {"service": {"name": "split", "port": {"name": "use-annotation"}}}},
                ]}},
            ],
        },
    });
    if let Some(a) = annotations {
        i["metadata"]["annotations"] = a;
    }
    i
}

fn split_action() -> String {
    json!({"type": "forward", "forwardConfig": {
        "targetGroups": [
            {"serviceName": "web", "servicePort": 80, "weight": 80},
            {"serviceName": "api", "servicePort": "http", "weight": 20},
        ],
        "targetGroupStickinessConfig": {"enabled": false},
    }})
    .to_string()
}

fn annotated() -> Value {
    ingress(Some(json!({
        "alb.ingress.kubernetes.io/actions.split": split_action(),
        "kubernetes.io/description": "kept",
    })))
}

fn apply(doc: &Value, patch: &Value) -> Result<Value, json_patch::PatchError> {
    let mut out = doc.clone();
    let ops: json_patch::Patch = serde_json::from_value(patch.clone()).expect("a JSON Patch");
    json_patch::patch(&mut out, &ops)?;
    Ok(out)
}

fn action_of(doc: &Value, key: &str) -> Value {
    serde_json::from_str(
        doc["metadata"]["annotations"][key]
            .as_str()
            .expect("annotation"),
    )
    .expect("JSON")
}

#[test]
fn each_rule_is_found_at_the_path_the_controller_made_it_from() {
    let i = ingress(None);
    let cases: [(&[&str], &[&str], bool, &str); 5] = [
        (
            &["shop.example"],
            &["/api", "/api/*"],
            false,
            "/spec/rules/0/http/paths/0/backend",
        ),
        (
            &["shop.example"],
            &["/*"],
            false,
            "/spec/rules/0/http/paths/1/backend",
        ),
        (
            &[],
            &["/exact"],
            false,
            "/spec/rules/1/http/paths/0/backend",
        ),
        (&[], &["/*"], false, "/spec/defaultBackend"),
        // The controller proper makes the default backend the listener's default action.
        (&[], &[], true, "/spec/defaultBackend"),
    ];
    for (hosts, paths, is_default, at) in cases {
        let mut r = rule(hosts, paths, vec![w(WEB, 1)]);
        r.is_default = is_default;
        let part = locate(&r, &i, "c").unwrap_or_else(|e| panic!("{paths:?}: {e}"));
        assert_eq!(part.backend_at, at, "{hosts:?} {paths:?}");
        assert_eq!(
            (part.namespace.as_str(), part.name.as_str()),
            ("shop", "front")
        );
    }
}

#[test]
fn a_service_backend_moves_onto_a_weighted_action_and_back_exactly() {
    let before = ingress(None);
    let r = rule(&["shop.example"], &["/*"], vec![w(WEB, 1)]);
    let part = locate(&r, &before, "c").unwrap();
    assert_eq!(part.action, "costop-shift-web-80");
    let weights = [w(WEB, 75), w(FALLBACK, 25)];
    let patch = part
        .patch(&before, IngressTarget::Shifted(&weights))
        .unwrap()
        .expect("a change");
    // No annotations yet: the map is added whole, guarded by the resourceVersion.
    assert_eq!(
        patch[0],
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": "7"})
    );
    let shifted = apply(&before, &patch).unwrap();
    let backend = &shifted["spec"]["rules"][0]["http"]["paths"][1]["backend"];
    assert_eq!(
        *backend,
        json!({"service": {"name": "costop-shift-web-80", "port": {"name": "use-annotation"}}})
    );
    assert_eq!(
        action_of(&shifted, ACTION),
        json!({"type": "forward", "forwardConfig": {"targetGroups": [
            {"serviceName": "web", "servicePort": 80, "weight": 75},
            {"targetGroupARN": FALLBACK, "weight": 25},
        ]}})
    );
    // Nothing else moved.
    assert_eq!(
        shifted["spec"]["defaultBackend"],
        before["spec"]["defaultBackend"]
    );

    // Adjusted: only the weights change.
    let adjusted = [w(WEB, 90), w(FALLBACK, 10)];
    let patch = part
        .patch(&shifted, IngressTarget::Shifted(&adjusted))
        .unwrap()
        .unwrap();
    let ops: Vec<&str> = patch
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["test", "replace"]);
    let shifted = apply(&shifted, &patch).unwrap();
    assert_eq!(
        action_of(&shifted, ACTION)["forwardConfig"]["targetGroups"][1]["weight"],
        10
    );

    // Restored: the Ingress as it was, annotations included (it had none).
    let undo = part
        .patch(&shifted, IngressTarget::Original)
        .unwrap()
        .unwrap();
    assert_eq!(apply(&shifted, &undo).unwrap(), before);
    assert_eq!(part.patch(&before, IngressTarget::Original).unwrap(), None);
}

#[test]
fn a_named_service_port_stays_a_name_and_other_annotations_stay() {
    let before = annotated();
    let r = rule(&[], &["/exact"], vec![w(WEB, 1)]);
    let part = locate(&r, &before, "c").unwrap();
    assert_eq!(part.action, "costop-shift-web-http");
    let shifted = apply(
        &before,
        &part
            .patch(
                &before,
                IngressTarget::Shifted(&[w(WEB, 50), w(FALLBACK, 50)]),
            )
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        action_of(
            &shifted,
            "alb.ingress.kubernetes.io/actions.costop-shift-web-http"
        )["forwardConfig"]["targetGroups"][0],
        json!({"serviceName": "web", "servicePort": "http", "weight": 50})
    );
    assert_eq!(
        shifted["metadata"]["annotations"]["kubernetes.io/description"],
        "kept"
    );
    let undo = part
        .patch(&shifted, IngressTarget::Original)
        .unwrap()
        .unwrap();
    assert_eq!(apply(&shifted, &undo).unwrap(), before);
}

#[test]
fn an_existing_action_gets_its_weights_rewritten_and_its_other_settings_kept() {
    let before = annotated();
    let r = rule(&[], &["/legacy*"], vec![w(WEB, 80), w(API, 20)]);
    let part = locate(&r, &before, "c").unwrap();
    assert_eq!(part.action, "split");
    assert_eq!(part.action_before.as_deref(), Some(split_action().as_str()));
    let weights = [w(WEB, 60), w(API, 20), w(FALLBACK, 20)];
    let patch = part
        .patch(&before, IngressTarget::Shifted(&weights))
        .unwrap()
        .unwrap();
    // The backend already uses the action: only the annotation changes, guarded by its value.
    assert_eq!(patch.as_array().unwrap().len(), 2);
    assert_eq!(patch[0]["op"], "test");
    assert_eq!(patch[0]["value"], split_action());
    let shifted = apply(&before, &patch).unwrap();
    let key = "alb.ingress.kubernetes.io/actions.split";
    assert_eq!(
        action_of(&shifted, key),
        json!({"type": "forward", "forwardConfig": {
            "targetGroups": [
                {"serviceName": "web", "servicePort": 80, "weight": 60},
                {"serviceName": "api", "servicePort": "http", "weight": 20},
                {"targetGroupARN": FALLBACK, "weight": 20},
            ],
            "targetGroupStickinessConfig": {"enabled": false},
        }})
    );
    let undo = part
        .patch(&shifted, IngressTarget::Original)
        .unwrap()
        .unwrap();
    assert_eq!(apply(&shifted, &undo).unwrap(), before);
}

#[test]
fn a_patch_fails_whole_when_a_value_it_replaces_moved_since_the_read() {
    let before = annotated();
    let r = rule(&[], &["/legacy*"], vec![w(WEB, 80), w(API, 20)]);
    let part = locate(&r, &before, "c").unwrap();
    let patch = part
        .patch(
            &before,
            IngressTarget::Shifted(&[w(WEB, 60), w(API, 20), w(FALLBACK, 20)]),
        )
        .unwrap()
        .unwrap();
    let mut edited = before.clone();
    edited["metadata"]["annotations"]["alb.ingress.kubernetes.io/actions.split"] = json!(
        r#"{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"web","servicePort":80,"weight":1}]}}"#
    );
    assert!(apply(&edited, &patch).is_err());

    let before = ingress(None);
    let r = rule(&["shop.example"], &["/*"], vec![w(WEB, 1)]);
    let part = locate(&r, &before, "c").unwrap();
    let patch = part
        .patch(
            &before,
            IngressTarget::Shifted(&[w(WEB, 75), w(FALLBACK, 25)]),
        )
        .unwrap()
        .unwrap();
    let mut moved = before.clone();
    moved["metadata"]["resourceVersion"] = json!("8");
    moved["metadata"]["annotations"] = json!({"someone": "else"});
    assert!(apply(&moved, &patch).is_err());
}

#[test]
fn bad_input_is_a_typed_error_and_no_patch() {
    let i = annotated();
    let no_path = rule(&["other.example"], &["/*"], vec![w(WEB, 1)]);
    assert!(matches!(
        locate(&no_path, &i, "c"),
        Err(IngressShiftError::NoSuchPath { .. })
    ));
    // The rule forwards to one group; its path's action names two.
    let out_of_step = rule(&[], &["/legacy*"], vec![w(WEB, 1)]);
    assert!(matches!(
        locate(&out_of_step, &i, "c"),
        Err(IngressShiftError::OutOfStep { .. })
    ));
    // The action is not there, or not JSON.
    let mut broken = i.clone();
    broken["metadata"]["annotations"]["alb.ingress.kubernetes.io/actions.split"] = json!("{");
    let r = rule(&[], &["/legacy*"], vec![w(WEB, 80), w(API, 20)]);
    assert!(matches!(
        locate(&r, &broken, "c"),
        Err(IngressShiftError::BadAction { .. })
    ));
    // An action two paths use.
    let mut shared = i.clone();
    shared["spec"]["rules"][1]["http"]["paths"][0]["backend"] =
        json!({"service": {"name": "split", "port": {"name": "use-annotation"}}});
    assert!(matches!(
        locate(&r, &shared, "c"),
        Err(IngressShiftError::SharedAction { .. })
    ));
    // Two paths making the same conditions.
    let mut twice = i.clone();
    let dup = twice["spec"]["rules"][1]["http"]["paths"][0].clone();
    twice["spec"]["rules"][1]["http"]["paths"]
        .as_array_mut()
        .unwrap()
        .push(dup);
    assert!(matches!(
        locate(&rule(&[], &["/exact"], vec![w(WEB, 1)]), &twice, "c"),
        Err(IngressShiftError::Ambiguous { count: 2, .. })
    ));
    // The rule's Ingress was not read.
    assert!(matches!(
        crate::shift::ingress_part(&no_path, &[], "c"),
        Err(IngressShiftError::NotRead { .. })
    ));
}

#[test]
fn an_ingress_someone_else_changed_since_the_shift_is_left_alone() {
    let before = ingress(None);
    let r = rule(&["shop.example"], &["/*"], vec![w(WEB, 1)]);
    let part = locate(&r, &before, "c").unwrap();
    let shifted = apply(
        &before,
        &part
            .patch(
                &before,
                IngressTarget::Shifted(&[w(WEB, 75), w(FALLBACK, 25)]),
            )
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let mut repointed = shifted.clone();
    repointed["spec"]["rules"][0]["http"]["paths"][1]["backend"] =
        json!({"service": {"name": "web-v2", "port": {"number": 80}}});
    assert!(matches!(
        part.patch(&repointed, IngressTarget::Original),
        Err(IngressShiftError::Changed { .. })
    ));
    let mut rewritten = shifted;
    rewritten["metadata"]["annotations"][ACTION] = json!(
        r#"{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"other","servicePort":80}]}}"#
    );
    assert!(matches!(
        part.patch(&rewritten, IngressTarget::Original),
        Err(IngressShiftError::Changed { .. })
    ));
}

#[test]
fn action_names_are_dns_labels_unique_to_their_path() {
    assert_eq!(
        action_name("Web_App", &json!("HTTP.alt"), None),
        "costop-shift-web-app-http-alt"
    );
    let long = "a".repeat(80);
    let name = action_name(&long, &json!(8080), Some(3));
    assert!(name.len() <= 63 && name.ends_with("-3"), "{name}");
    // Two paths naming web:80: each gets its own action.
    let mut i = ingress(None);
    i["spec"]["rules"][1]["http"]["paths"]
        .as_array_mut()
        .unwrap()
        .push(json!({"path": "/again", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"number": 80}}}}));
    let a = locate(&rule(&["shop.example"], &["/*"], vec![w(WEB, 1)]), &i, "c").unwrap();
    let b = locate(&rule(&[], &["/again"], vec![w(WEB, 1)]), &i, "c").unwrap();
    assert_ne!(a.action, b.action);
    assert!(a.action.starts_with("costop-shift-web-80-"), "{}", a.action);
}

#[test]
fn a_lease_with_an_ingress_part_reads_back_and_old_leases_still_read() {
    use chrono::Utc;
    let part = locate(
        &rule(&["shop.example"], &["/*"], vec![w(WEB, 1)]),
        &ingress(None),
        "c",
    )
    .unwrap();
    let lease = crate::shift::ShiftLease {
        rule_arn: "arn:rule/1".into(),
        listener_arn: "arn:listener".into(),
        is_default: false,
        before: vec![w(WEB, 1)],
        applied: vec![w(WEB, 75), w(FALLBACK, 25)],
        fallback_target_group: FALLBACK.into(),
        factor: 1.0,
        groups: Vec::new(),
        interruption_id: "i-1".into(),
        hold_until: Utc::now(),
        restore_by: Utc::now(),
        whole_since: None,
        ingress: Some(Box::new(part)),
    };
    let item = crate::shift::shift_lease_item(&lease).unwrap();
    assert_eq!(crate::shift::shift_lease_from_item(&item).unwrap(), lease);
    let mut old: Value = serde_json::to_value(&lease).unwrap();
    old.as_object_mut().unwrap().remove("ingress");
    let read: crate::shift::ShiftLease = serde_json::from_value(old).unwrap();
    assert_eq!(read.ingress, None);
}
