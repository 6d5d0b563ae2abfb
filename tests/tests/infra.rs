//! The deployment artefacts pass the offline checks of `infra/check.py`, and the checks catch
//! what they are there to catch.
//!
//! `infra/check.py` runs `sam validate --lint`, the SAM transform with aws-sam-translator,
//! cfn-lint with the cfn-lint-serverless rules, and costop's own IAM, EventBridge-rule, RBAC,
//! config and dashboard checks, all without an AWS account or network. It needs the project
//! venv (`.venv`, created by `cargo xtask setup` from `tools/requirements.txt`; `cargo xtask test`
//! runs that first). Each negative test breaks a scratch copy on purpose and expects exactly the
//! check that guards that property to fail.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repo")
        .to_path_buf()
}

struct Outcome {
    success: bool,
    output: String,
}

impl Outcome {
    /// The names of the checks that printed `FAIL <name>`.
    fn failed_checks(&self) -> Vec<&str> {
        self.output
            .lines()
            .filter_map(|l| l.strip_prefix("FAIL "))
            .map(|rest| rest.split_whitespace().next().unwrap_or(""))
            .collect()
    }
}

/// Runs `infra/check.py` with the venv's Python.
fn run_checks<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let root = repo_root();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `cargo xtask setup` (or `cargo xtask test`), which installs tools/requirements.txt",
        python.display()
    );
    let out = Command::new(&python)
        .arg(root.join("infra/check.py"))
        .args(args)
        .current_dir(&root)
        .output()
        .expect("cannot run infra/check.py");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Outcome {
        success: out.status.success(),
        output,
    }
}

/// A scratch copy of `infra/template.yaml` with `edit` applied, laid out like the repo
/// (`<tmp>/infra/template.yaml`, `<tmp>/functions` → the real crates) so that everything but the
/// deliberate breakage still passes.
fn broken_template(edit: impl FnOnce(String) -> String) -> (tempfile::TempDir, PathBuf) {
    let root = repo_root();
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("infra")).expect("mkdir infra");
    std::os::unix::fs::symlink(root.join("functions"), dir.path().join("functions"))
        .expect("symlink functions");
    let original = fs::read_to_string(root.join("infra/template.yaml")).expect("read template");
    let edited = edit(original.clone());
    assert_ne!(
        edited, original,
        "the edit did not change the template: update this test"
    );
    let path = dir.path().join("infra/template.yaml");
    fs::write(&path, edited).expect("write template");
    (dir, path)
}

#[test]
fn the_template_passes_every_offline_check() {
    let run = run_checks(std::iter::empty::<&str>());
    assert!(run.success, "infra/check.py failed:\n{}", run.output);
    for check in [
        "sam-validate",
        "sam-transform",
        "cfn-lint",
        "iam",
        "event-rules",
        "rbac",
    ] {
        assert!(
            run.output.contains(&format!("PASS {check}")),
            "no PASS for {check}:\n{}",
            run.output
        );
    }
}

#[test]
fn a_template_with_a_wildcard_action_fails_the_checks() {
    // `ec2:Describe*` is the classic shortcut: not `ec2:*`, so cfn-lint-serverless' star rule
    // lets it through; costop's own IAM check must not.
    let (_dir, template) =
        broken_template(|t| t.replacen("- ec2:DescribeInstances\n", "- ec2:Describe*\n", 1));
    let run = run_checks([OsStr::new("--template"), template.as_os_str()]);
    assert!(!run.success, "a wildcard action passed:\n{}", run.output);
    assert_eq!(run.failed_checks(), ["iam"], "{}", run.output);
    assert!(
        run.output.contains("wildcard action 'ec2:Describe*'"),
        "{}",
        run.output
    );
}

#[test]
fn a_template_with_a_broken_rule_pattern_fails_the_checks() {
    // A typo in a detail-type: valid CloudFormation, a rule that never fires.
    let (_dir, template) = broken_template(|t| {
        t.replacen(
            "detail-type: [EC2 Spot Instance Interruption Warning]",
            "detail-type: [EC2 Spot Instance Interruption Warnings]",
            1,
        )
    });
    let run = run_checks([OsStr::new("--template"), template.as_os_str()]);
    assert!(
        !run.success,
        "a rule that never fires passed:\n{}",
        run.output
    );
    assert_eq!(run.failed_checks(), ["event-rules"], "{}", run.output);
    // The keeper's own Spot warning rule still matches: only the interruption function misses it.
    assert!(
        run.output.contains(
            "aws.ec2-spot-instance-interruption-warning-terminate.json must match exactly one rule targeting InterruptionFunction"
        ),
        "{}",
        run.output
    );
    assert!(
        !run.output.contains("targeting KeeperFunction"),
        "{}",
        run.output
    );

    // The state-change rule without its state filter: it would fire for every pending/running.
    let (_dir, template) = broken_template(|t| {
        t.replacen(
            "              detail:\n                state: [stopping, stopped, shutting-down, terminated]\n",
            "",
            1,
        )
    });
    let run = run_checks([
        OsStr::new("--only"),
        OsStr::new("event-rules"),
        OsStr::new("--template"),
        template.as_os_str(),
    ]);
    assert!(
        !run.success,
        "an unfiltered state-change rule passed:\n{}",
        run.output
    );
    assert!(
        run.output.contains(
            "aws.ec2-instance-state-change-notification-running.json must not invoke costop"
        ),
        "{}",
        run.output
    );
}

#[test]
fn a_template_granting_standby_actions_without_the_tag_condition_fails_the_checks() {
    // The keeper's start/stop/retype without `aws:ResourceTag/costop.io/standby: "true"`: valid
    // IAM, scoped to instance ARNs, and it would let the keeper start, stop or retype any instance
    // in the account.
    let (_dir, template) = broken_template(|t| {
        t.replacen(
            "              Condition:\n                StringEquals:\n                  aws:ResourceTag/costop.io/standby: \"true\"\n            - Sid: TagStandbyInstances\n",
            "            - Sid: TagStandbyInstances\n",
            1,
        )
    });
    let run = run_checks([OsStr::new("--template"), template.as_os_str()]);
    assert!(
        !run.success,
        "mutating EC2 actions without the standby tag condition passed:\n{}",
        run.output
    );
    assert_eq!(run.failed_checks(), ["iam"], "{}", run.output);
    for action in [
        "ec2:StartInstances",
        "ec2:StopInstances",
        "ec2:ModifyInstanceAttribute",
    ] {
        assert!(
            run.output.contains(&format!(
                "statement ManageStandbyInstances: {action} is granted without the Condition StringEquals aws:ResourceTag/costop.io/standby: \"true\""
            )),
            "{action}:\n{}",
            run.output
        );
    }

    // Tagging without the tag-key limit: the keeper could then write or delete any tag of a
    // standby, its own `costop.io/standby` marker included.
    let (_dir, template) = broken_template(|t| {
        t.replacen(
            "                ForAllValues:StringLike:\n                  aws:TagKeys: [\"costop.io/standby-*\"]\n",
            "",
            1,
        )
    });
    let run = run_checks([
        OsStr::new("--only"),
        OsStr::new("iam"),
        OsStr::new("--template"),
        template.as_os_str(),
    ]);
    assert!(
        !run.success,
        "tagging without the aws:TagKeys limit passed:\n{}",
        run.output
    );
    assert!(
        run.output
            .contains("ec2:DeleteTags is granted without ForAllValues:StringLike aws:TagKeys limited to costop.io/standby-*"),
        "{}",
        run.output
    );
}

#[test]
fn a_keeper_timeout_shorter_than_its_watch_or_a_rule_its_dlq_refuses_fails_the_checks() {
    // The keeper watches for replacement pods for COSTOP_STANDBY_WATCH_SECONDS (240 s) after a
    // Spot warning: a timeout that does not cover it plus 30 s cuts the watch short.
    let (_dir, template) = broken_template(|t| {
        t.replacen(
            "      Timeout: 300\n      Environment:\n        Variables:\n          COSTOP_STANDBY_POOL_SIZE",
            "      Timeout: 240\n      Environment:\n        Variables:\n          COSTOP_STANDBY_POOL_SIZE",
            1,
        )
    });
    let run = run_checks([
        OsStr::new("--only"),
        OsStr::new("shape"),
        OsStr::new("--template"),
        template.as_os_str(),
    ]);
    assert!(
        !run.success,
        "a keeper timeout inside its watch window passed:\n{}",
        run.output
    );
    assert!(
        run.output
            .contains("KeeperFunction: Timeout 240 must cover the standby watch window"),
        "{}",
        run.output
    );

    // The tick's rule left out of the EventBridge DLQ's policy: undeliverable ticks would be
    // dropped instead of parked and alarmed on.
    let (_dir, template) = broken_template(|t| {
        t.replacen(
            "                  - !GetAtt KeeperFunctionPoolTick.Arn\n",
            "",
            1,
        )
    });
    let run = run_checks([
        OsStr::new("--only"),
        OsStr::new("event-rules"),
        OsStr::new("--template"),
        template.as_os_str(),
    ]);
    assert!(
        !run.success,
        "a rule its DLQ refuses passed:\n{}",
        run.output
    );
    assert!(
        run.output.contains(
            "KeeperFunctionPoolTick: its DLQ EventBridgeDeadLetterQueue does not allow it"
        ),
        "{}",
        run.output
    );
}

/// Every (api group, resource, verb) a ClusterRole document grants.
fn grants(rbac: &str) -> Vec<(String, String, String)> {
    use serde::Deserialize as _;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(rbac) {
        let doc = serde_yaml::Value::deserialize(doc).expect("rbac.yaml is YAML");
        if doc["kind"] != "ClusterRole" {
            continue;
        }
        for rule in doc["rules"].as_sequence().expect("rules") {
            let strings = |key: &str| -> Vec<String> {
                rule[key]
                    .as_sequence()
                    .expect(key)
                    .iter()
                    .map(|v| v.as_str().expect(key).to_owned())
                    .collect()
            };
            for group in strings("apiGroups") {
                for resource in strings("resources") {
                    for verb in strings("verbs") {
                        out.push((group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn rbac_that_grants_an_unused_verb_fails_the_check() {
    let root = repo_root();
    let rbac = fs::read_to_string(root.join("infra/k8s/rbac.yaml")).expect("read rbac.yaml");
    let granted = grants(&rbac);
    assert!(!granted.is_empty(), "rbac.yaml grants nothing");

    // Kubernetes code that declares exactly what rbac.yaml grants, one marker per call site,
    // in the notation infra/k8s/README.md documents (`resource[.group][/subresource] verb`).
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    fs::create_dir(&src).expect("mkdir src");
    let mut code = String::from(
        "//! Fixture: every call site carries its `// rbac:` marker.\n\nfn calls() {\n",
    );
    for (group, resource, verb) in &granted {
        let (base, sub) = resource
            .split_once('/')
            .map_or((resource.as_str(), None), |(b, s)| (b, Some(s)));
        let spec = format!(
            "{base}{}{}",
            if group.is_empty() {
                String::new()
            } else {
                format!(".{group}")
            },
            sub.map(|s| format!("/{s}")).unwrap_or_default()
        );
        code.push_str(&format!("    // rbac: {spec} {verb}\n    call();\n"));
    }
    code.push_str("}\n");
    fs::write(src.join("cluster.rs"), code).expect("write fixture");

    let exact = run_checks([
        OsStr::new("--only"),
        OsStr::new("rbac"),
        OsStr::new("--adapters-src"),
        src.as_os_str(),
    ]);
    assert!(
        exact.success,
        "rbac.yaml should match code that uses exactly what it grants:\n{}",
        exact.output
    );

    // The same role with one more verb on its first rule.
    let (group, resource, _) = &granted[0];
    let extra = [
        "watch",
        "update",
        "deletecollection",
        "create",
        "delete",
        "patch",
        "list",
        "get",
    ]
    .into_iter()
    .find(|v| {
        !granted
            .iter()
            .any(|(g, r, gv)| g == group && r == resource && gv == v)
    })
    .expect("a verb the first rule does not grant");
    let mut docs: Vec<serde_yaml::Value> = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&rbac) {
        use serde::Deserialize as _;
        let mut doc = serde_yaml::Value::deserialize(doc).expect("rbac.yaml is YAML");
        if doc["kind"] == "ClusterRole" {
            doc["rules"][0]["verbs"]
                .as_sequence_mut()
                .expect("verbs")
                .push(extra.into());
        }
        docs.push(doc);
    }
    let widened: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml::to_string(d).expect("yaml"))
        .collect();
    let widened_path = dir.path().join("rbac.yaml");
    fs::write(&widened_path, widened.join("---\n")).expect("write rbac");

    let run = run_checks([
        OsStr::new("--only"),
        OsStr::new("rbac"),
        OsStr::new("--adapters-src"),
        src.as_os_str(),
        OsStr::new("--rbac"),
        widened_path.as_os_str(),
    ]);
    assert!(
        !run.success,
        "a verb granted but never used passed:\n{}",
        run.output
    );
    let base = resource.split('/').next().unwrap_or(resource);
    assert!(
        run.output
            .contains(&format!("granted but not used: {extra} {base}")),
        "{}",
        run.output
    );
}
