#!/usr/bin/env python3
"""Offline checks of costop's deployment artefacts. No AWS account, no network.

Run with the project venv (created by `cargo xtask setup` from tools/requirements.txt):

    .venv/bin/python infra/check.py                       # every check on the repo's files
    .venv/bin/python infra/check.py --only iam,event-rules
    .venv/bin/python infra/check.py --template /tmp/t.yaml --rbac /tmp/rbac.yaml --adapters-src /tmp/src

Checks (each prints PASS/FAIL with reasons; exit status 1 if any failed, 2 on bad usage):

  sam-validate   `sam validate --lint` on the SAM template (cfn-lint on SAM's own transform).
  sam-transform  the template through aws-sam-translator offline (a managed-policy loader that
                 knows no policies, a placeholder CodeUri), giving plain CloudFormation.
  cfn-lint       cfn-lint on that CloudFormation with the cfn-lint-serverless rules
                 (`-a cfn_lint_serverless.rules`); errors and warnings fail.
  iam            no wildcard or NotAction/NotResource in any policy; Resource "*" only for the
                 APIs that support no resource-level permissions (RESOURCE_STAR_ACTIONS); managed
                 policies only from ALLOWED_MANAGED_POLICIES; no Allow to Principal "*"; mutating
                 EC2 actions (MUTATING_EC2_ACTIONS) only with the Condition StringEquals
                 aws:ResourceTag/costop.io/standby "true" in every branch, tagging ones also with
                 aws:TagKeys limited to costop.io/standby-* and not Null; DynamoDB actions only on
                 this stack's tables and their indexes.
  iam-code       the AWS SDK calls in crates/adapters/src (`.describe_instances()...send()`) and the
                 actions the function roles allow are the same set (SDK_OPERATIONS maps calls to
                 actions; NOT_FOR_FUNCTIONS lists calls only other binaries make).
  event-rules    every rule names source and detail-type (or is a schedule) and its targets have
                 a retry policy and a DLQ whose queue policy lets that rule in; every sample in
                 events/ reaches, for each function that receives it (FUNCTIONS), exactly one rule
                 targeting that function, and no other function (EXPECTED_DELIVERY); each function
                 with a schedule has exactly one schedule rule with that expression; the rules are
                 exactly infra/event-rules.json (`costop rules --json`, kept equal to the
                 declaration in crates/core/src/rules.rs by a test of crates/core), which
                 `costop replay` delivers by.
  shape          what the deployment must be: arm64 provided.al2023 functions running the
                 binary FUNCTIONS names, each with a timeout covering its work (the interruption
                 function an ASG hook's deadline + 3 s, the keeper its standby watch + 30 s; at
                 most 900 s), async invoke config with an encrypted on-failure queue and an alarm
                 on it, the timeline table's keys/TTL/PITR/SSE/Retain, EKS access entries (one per
                 cluster slot for every role that calls eks:DescribeCluster, same conditions),
                 DryRun defaulting to true, outputs, the Rust CodeUri.
  samconfig      samconfig.toml builds this template (cached, parallel) and deploys the built one.
  config-env     every COSTOP_* variable the template sets is one costop reads, as listed in
                 infra/config-vars.json (`costop config --list --json`, kept equal to the
                 declaration in crates/core/src/config/vars.rs by a test of crates/cli).
  dashboard      the dashboard body is JSON and shows only metrics crates/core/src/metrics.rs defines
                 and shell code (crates other than core, functions/*, each function's CodeUri) emits.
  rbac           infra/k8s/rbac.yaml grants exactly the (resource, verb) pairs the Kubernetes code
                 in crates/adapters/src declares with `// rbac:` markers (see infra/k8s/README.md).
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"

# Parameter values the offline transform and the checks use (ClusterNames has no default).
CHECK_PARAMETERS = {"ClusterNames": "prod,staging"}

# Actions whose API has no resource-level permissions, so "Resource": "*" is what IAM requires.
# Only Describe* calls belong here; never a mutating action.
RESOURCE_STAR_ACTIONS = {
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceTypes",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeRules",
    "autoscaling:DescribeLifecycleHooks",
}

# AWS managed policies a costop role may carry (SAM attaches the first to every function role).
ALLOWED_MANAGED_POLICIES = {"service-role/AWSLambdaBasicExecutionRole"}

# Which rule each sample in events/ must reach, by longest file-stem prefix: the detail-type of
# the rule that must match (one per function that handles it, see FUNCTIONS), or None for "no
# rule may match" (costop must not be invoked). Malformed samples (`-malformed-` in the name)
# are skipped. A sample without an entry fails the check, so a new kind of event gets a
# decision here.
EXPECTED_DELIVERY: dict[str, str | None] = {
    "aws.ec2-spot-instance-interruption-warning": "EC2 Spot Instance Interruption Warning",
    "aws.ec2-instance-rebalance-recommendation": "EC2 Instance Rebalance Recommendation",
    "aws.ec2-instance-state-change-notification-stopping": "EC2 Instance State-change Notification",
    "aws.ec2-instance-state-change-notification-stopped": "EC2 Instance State-change Notification",
    "aws.ec2-instance-state-change-notification-shutting-down": "EC2 Instance State-change Notification",
    "aws.ec2-instance-state-change-notification-terminated": "EC2 Instance State-change Notification",
    "aws.ec2-instance-state-change-notification-pending": None,
    "aws.ec2-instance-state-change-notification-running": None,
    "aws.autoscaling-ec2-instance-terminate-lifecycle-action": "EC2 Instance-terminate Lifecycle Action",
    "aws.health-aws-health-event": "AWS Health Event",
    "aws.health-aws-health-event-rds-": None,
    "aws.ec2-ami-state-change": None,
    "aws.s3-": None,
    # A schedule rule's own event: delivered by the rule's ScheduleExpression, never by a pattern
    # (a pattern on it would fire for every schedule in the account).
    "aws.events-scheduled-event": "Scheduled Event",
}
SCHEDULED_EVENT = "Scheduled Event"

# Every function of the template, by logical id: the cargo binary it runs, the detail-types it
# must receive (each through exactly one rule targeting it; SCHEDULED_EVENT through a schedule
# rule with `schedule`), and what its Timeout must cover ("hook": an ASG hook's drain,
# COSTOP_ASG_HOOK_DEADLINE_SECONDS + the handler's 3 s reserve; "watch": the keeper's
# replacement watch, COSTOP_STANDBY_WATCH_SECONDS + 30 s). A function not listed fails `shape`
# and `event-rules`, so a new function gets a decision here.
FUNCTIONS: dict[str, dict[str, Any]] = {
    "InterruptionFunction": {
        "binary": "costop-interruption",
        "receives": {
            "EC2 Spot Instance Interruption Warning",
            "EC2 Instance Rebalance Recommendation",
            "EC2 Instance State-change Notification",
            "EC2 Instance-terminate Lifecycle Action",
            "AWS Health Event",
        },
        "timeout": "hook",
    },
    "KeeperFunction": {
        "binary": "costop-keeper",
        "receives": {
            "EC2 Spot Instance Interruption Warning",
            "EC2 Instance Rebalance Recommendation",
            SCHEDULED_EVENT,
        },
        "schedule": "rate(1 minute)",
        "timeout": "watch",
    },
    # An ALB Lambda target: invoked synchronously by the load balancer, by no rule.
    "FallbackFunction": {
        "binary": "costop-fallback",
        "receives": set(),
        "timeout": "forward",
    },
}
# Timeout rules: (variable, default if infra/config-vars.json does not list it, reserve in
# seconds).
TIMEOUT_RULES: dict[str, tuple[str, int, int]] = {
    "hook": ("COSTOP_ASG_HOOK_DEADLINE_SECONDS", 300, 3),
    "watch": ("COSTOP_STANDBY_WATCH_SECONDS", 240, 30),
    # The fallback holds a forward for its budget (milliseconds, rounded up to seconds) plus one
    # upstream attempt's timeout (5 s).
    "forward": ("COSTOP_FALLBACK_FORWARD_BUDGET_MS", 15000, 5),
}
# The stack's DynamoDB tables: the timeline and the fallback's queue; both are checked alike.
TABLES = {"TimelineTable", "QueueTable"}

# EC2 actions that change an instance (or its tags). A function may only be granted one with the
# Condition `StringEquals: {aws:ResourceTag/costop.io/standby: "true"}` (for RunInstances,
# aws:RequestTag/costop.io/standby also does: the instance does not exist yet), so the keeper can
# touch its standbys and nothing else. fnmatch patterns, matched both ways against the granted
# action (so `ec2:*` or `ec2:Modify*` count too).
MUTATING_EC2_ACTIONS = (
    "ec2:StartInstances",
    "ec2:StopInstances",
    "ec2:RebootInstances",
    "ec2:TerminateInstances",
    "ec2:RunInstances",
    "ec2:Modify*",
    "ec2:CreateTags",
    "ec2:DeleteTags",
)
STANDBY_TAG = "costop.io/standby"
# Tagging actions must also be limited to the keeper's own state tags: `ForAllValues:StringLike`
# (or StringEquals) on aws:TagKeys, every pattern under this prefix, plus `Null: {aws:TagKeys:
# "false"}` (a DeleteTags without keys deletes every tag and passes ForAllValues vacuously).
TAGGING_ACTIONS = ("ec2:CreateTags", "ec2:DeleteTags")
STANDBY_STATE_TAG_PREFIX = "costop.io/standby-"

# Kubernetes verbs a marker or a ClusterRole may name.
KUBE_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}

# kube-rs `Api<Kind>` -> (API group, resource) for the drift guard of the rbac check.
KIND_RESOURCES: dict[str, tuple[str, str]] = {
    "Node": ("", "nodes"),
    "Pod": ("", "pods"),
    "Namespace": ("", "namespaces"),
    "ConfigMap": ("", "configmaps"),
    "Event": ("", "events"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "Deployment": ("apps", "deployments"),
    "ReplicaSet": ("apps", "replicasets"),
    "StatefulSet": ("apps", "statefulsets"),
    "DaemonSet": ("apps", "daemonsets"),
    "Job": ("batch", "jobs"),
    "Lease": ("coordination.k8s.io", "leases"),
    "PriorityClass": ("scheduling.k8s.io", "priorityclasses"),
}


# ---------------------------------------------------------------------------------------------
# Plumbing
# ---------------------------------------------------------------------------------------------


class CheckError(Exception):
    """A check could not run (as opposed to finding problems)."""


class Context:
    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.template_path: Path = Path(args.template).resolve()
        self.rbac_path: Path = Path(args.rbac).resolve()
        self.adapters_src: Path = Path(args.adapters_src).resolve()
        self.events_dir: Path = Path(args.events).resolve()
        self.core_src: Path = Path(args.core_src).resolve()
        self.config_vars_path: Path = Path(args.config_vars).resolve()
        self.event_rules_path: Path = Path(args.event_rules).resolve()
        self.samconfig_path: Path = Path(args.samconfig).resolve()
        # Where metrics are emitted: every crate but the core (crates/app/src/keeper.rs is the
        # keeper's), and the functions (functions/keeper/src); `check_dashboard` adds each
        # template function's CodeUri, wherever it is.
        self.emitter_dirs: list[Path] = [
            p / "src" for p in sorted((ROOT / "crates").iterdir()) if p.is_dir() and p.name != "core"
        ] + [p / "src" for p in sorted((ROOT / "functions").iterdir()) if p.is_dir()]
        self.workdir = workdir
        self.bin_dir = Path(sys.executable).parent  # the venv's bin (not resolved: keep the venv)
        self._raw: dict | None = None
        self._config_vars: dict[str, dict[str, str]] | None = None
        self._cfn: dict | None = None
        self._cfn_error: str | None = None
        self.env = offline_env(workdir)

    @property
    def raw(self) -> dict:
        """The SAM template as written (intrinsics in long form)."""
        if self._raw is None:
            from samtranslator.yaml_helper import yaml_parse

            try:
                self._raw = yaml_parse(self.template_path.read_text())
            except Exception as e:  # noqa: BLE001 - any parse error is the finding
                raise CheckError(f"cannot parse {self.template_path}: {e}") from e
        return self._raw

    @property
    def cfn(self) -> dict:
        """The template after the SAM transform (plain CloudFormation)."""
        if self._cfn is None:
            if self._cfn_error is not None:
                raise CheckError(f"needs the SAM transform, which failed: {self._cfn_error}")
            try:
                self._cfn = sam_transform(self.raw)
            except CheckError as e:
                self._cfn_error = str(e)
                raise
            except Exception as e:  # noqa: BLE001
                self._cfn_error = f"{type(e).__name__}: {e}"
                raise CheckError(f"SAM transform failed: {self._cfn_error}") from e
        return self._cfn

    @property
    def config_vars(self) -> dict[str, dict[str, str]]:
        """The variables costop reads, by name: {name, group, default, doc, ...} each."""
        if self._config_vars is None:
            self._config_vars = load_config_vars(self.config_vars_path)
        return self._config_vars

    def cfn_path(self) -> Path:
        path = self.workdir / "transformed.json"
        if not path.exists():
            path.write_text(json.dumps(self.cfn, indent=1))
        return path

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(ROOT))
        except ValueError:
            return str(path)


def offline_env(workdir: Path) -> dict[str, str]:
    """Environment for the tools: a region, dummy credentials, no profile, no telemetry and no
    version check, so nothing tries to reach AWS (or anything else)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    app_dir = workdir / "sam-app-dir"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "metadata.json").write_text(
        json.dumps({"telemetryEnabled": False, "lastVersionCheck": time.time(), "installationId": "offline-check"})
    )
    env.update(
        {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "offline-check",
            "AWS_SECRET_ACCESS_KEY": "offline-check",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "SAM_CLI_TELEMETRY": "0",
            "__SAM_CLI_APP_DIR": str(app_dir),
        }
    )
    return env


class NoManagedPolicies:
    """Managed-policy loader for the offline transform: knows no policy names, so a template
    naming a managed policy in `Policies` fails the transform instead of calling IAM."""

    def load(self) -> dict[str, str]:
        return {}


def sam_transform(raw: dict) -> dict:
    from samtranslator.translator.transform import transform

    template = copy.deepcopy(raw)
    for res in template.get("Resources", {}).values():
        if isinstance(res, dict) and res.get("Type") == "AWS::Serverless::Function":
            props = res.setdefault("Properties", {})
            if isinstance(props.get("CodeUri"), str) and not props["CodeUri"].startswith("s3://"):
                # What `sam package` would put there; the local path is checked by `shape`.
                props["CodeUri"] = "s3://costop-offline-check/code.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    try:
        return transform(template, dict(CHECK_PARAMETERS), NoManagedPolicies())
    except Exception as e:
        causes = getattr(e, "causes", None)
        if causes:
            raise CheckError("; ".join(str(c) for c in causes)) from e
        raise


def branches(node: Any) -> Iterator[Any]:
    """Every concrete alternative of a value: both sides of Fn::If, nothing for AWS::NoValue."""
    if isinstance(node, dict) and len(node) == 1:
        (key, val), = node.items()
        if key == "Fn::If" and isinstance(val, list) and len(val) == 3:
            yield from branches(val[1])
            yield from branches(val[2])
            return
        if key == "Ref" and val == "AWS::NoValue":
            return
    yield node


def as_list(value: Any) -> list:
    out: list = []
    for v in branches(value):
        if isinstance(v, list):
            for item in v:
                out.extend(branches(item))
        else:
            out.append(v)
    return out


def resources(cfn: dict, *types: str) -> Iterator[tuple[str, dict]]:
    for lid, res in cfn.get("Resources", {}).items():
        if isinstance(res, dict) and (not types or res.get("Type") in types):
            yield lid, res


def ref_target(value: Any) -> str | None:
    """The logical id a Ref/GetAtt points at, if any."""
    if isinstance(value, dict) and len(value) == 1:
        (key, val), = value.items()
        if key == "Ref" and isinstance(val, str):
            return val
        if key == "Fn::GetAtt":
            if isinstance(val, list) and val:
                return val[0]
            if isinstance(val, str):
                return val.split(".")[0]
    return None


# ---------------------------------------------------------------------------------------------
# Checks: each returns a list of problems (empty = pass) and may print notes.
# ---------------------------------------------------------------------------------------------

Notes = list[str]


def check_sam_validate(ctx: Context, notes: Notes) -> list[str]:
    sam = ctx.bin_dir / "sam"
    if not sam.exists():
        raise CheckError(f"{sam} not found: run `cargo xtask setup` (pip install -r tools/requirements.txt)")
    cmd = [str(sam), "validate", "--lint", "--template-file", str(ctx.template_path), "--region", REGION]
    proc = subprocess.run(cmd, env=ctx.env, cwd=ctx.workdir, capture_output=True, text=True, timeout=300)
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        return [f"`sam validate --lint` exited {proc.returncode}:\n{indent(out)}"]
    notes.append(out.splitlines()[-1] if out else "valid")
    return []


def check_sam_transform(ctx: Context, notes: Notes) -> list[str]:
    try:
        cfn = ctx.cfn
    except CheckError as e:
        return [str(e)]
    notes.append(f"{len(cfn.get('Resources', {}))} CloudFormation resources (ClusterNames={CHECK_PARAMETERS['ClusterNames']})")
    return []


def check_cfn_lint(ctx: Context, notes: Notes) -> list[str]:
    path = ctx.cfn_path()
    exe = ctx.bin_dir / "cfn-lint"
    cmd = [str(exe), "-a", "cfn_lint_serverless.rules", "--regions", REGION, "--format", "parseable", "--", str(path)]
    proc = subprocess.run(cmd, env=ctx.env, cwd=ctx.workdir, capture_output=True, text=True, timeout=300)
    # cfn-lint's exit code is a bit mask: 2 errors, 4 warnings, 8 informational.
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if l.strip()]
    if proc.returncode & ~8:
        return [f"cfn-lint (with cfn-lint-serverless) exited {proc.returncode}:"] + [
            "  " + l.replace(str(path), "transformed.json") for l in lines
        ]
    notes.extend(l.replace(str(path), "transformed.json") for l in lines)  # informational only
    return []


def policy_documents(cfn: dict) -> Iterator[tuple[str, dict, bool]]:
    """(where, policy document, is_resource_policy) for every policy in the template."""
    for lid, res in resources(cfn):
        props = res.get("Properties", {}) or {}
        typ = res.get("Type")
        if typ == "AWS::IAM::Role":
            for pol in as_list(props.get("Policies", [])):
                if isinstance(pol, dict):
                    yield f"{lid} policy {pol.get('PolicyName', '?')}", pol.get("PolicyDocument", {}), False
        elif typ in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
            yield lid, props.get("PolicyDocument", {}), False
        elif typ in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::Lambda::LayerVersionPermission"):
            yield lid, props.get("PolicyDocument", {}), True


def check_iam(ctx: Context, notes: Notes) -> list[str]:
    cfn = ctx.cfn
    problems: list[str] = []
    count = 0
    for where, doc, is_resource_policy in policy_documents(cfn):
        for i, stmt in enumerate(as_list((doc or {}).get("Statement", []))):
            if not isinstance(stmt, dict):
                continue
            count += 1
            label = f"{where} statement {stmt.get('Sid', i)}"
            for key in ("NotAction", "NotResource", "NotPrincipal"):
                if key in stmt:
                    problems.append(f"{label}: uses {key}")
            actions = [a for a in as_list(stmt.get("Action", [])) if a is not None]
            for a in actions:
                if not isinstance(a, str):
                    problems.append(f"{label}: action {a!r} is not a literal")
                elif "*" in a or "?" in a:
                    problems.append(f"{label}: wildcard action {a!r}")
            effect = stmt.get("Effect")
            if effect == "Allow" and is_resource_policy:
                for p in as_list(stmt.get("Principal", {})):
                    if p == "*" or (isinstance(p, dict) and "*" in as_list(p.get("AWS", []))):
                        problems.append(f"{label}: allows Principal '*'")
            if effect == "Allow" and not is_resource_policy:
                if "*" in as_list(stmt.get("Resource", [])):
                    for a in actions:
                        if isinstance(a, str) and a not in RESOURCE_STAR_ACTIONS:
                            problems.append(
                                f"{label}: {a} on Resource '*' (only {sorted(RESOURCE_STAR_ACTIONS)} may be; "
                                "scope it to this stack's resources)"
                            )
                str_actions = [a for a in actions if isinstance(a, str)]
                # Mutating EC2 calls: only on costop standbys (every branch of the Condition).
                for a in (a for a in str_actions if matches_any(a, MUTATING_EC2_ACTIONS)):
                    for cond in condition_branches(stmt.get("Condition")):
                        problems.extend(f"{label}: {p}" for p in standby_condition_problems(a, cond))
                # DynamoDB: this stack's tables and their indexes, nothing else.
                if any(a.lower().startswith("dynamodb:") for a in str_actions):
                    tables = {lid for lid, _ in resources(cfn, "AWS::DynamoDB::Table")}
                    for r in as_list(stmt.get("Resource", [])):
                        if r != "*" and not is_table_resource(r, tables):
                            problems.append(
                                f"{label}: DynamoDB actions on {json.dumps(r)}: only this stack's tables "
                                "(!GetAtt <table>.Arn) and their indexes (!Sub \"${<table>.Arn}/index/<name>\")"
                            )
    for lid, res in resources(cfn, "AWS::IAM::Role"):
        for arn in as_list(res.get("Properties", {}).get("ManagedPolicyArns", [])):
            text = arn if isinstance(arn, str) else json.dumps(arn)
            if not any(text.endswith(":policy/" + name) for name in ALLOWED_MANAGED_POLICIES):
                problems.append(f"{lid}: managed policy {text} (allowed: {sorted(ALLOWED_MANAGED_POLICIES)})")
    notes.append(f"{count} policy statements checked")
    return problems


def matches_any(action: str, patterns: tuple[str, ...]) -> bool:
    """Whether `action` is one of `patterns`, or a wildcard action that covers one of them."""
    a = action.lower()
    return any(fnmatch.fnmatchcase(a, p.lower()) or fnmatch.fnmatchcase(p.lower(), a) for p in patterns)


def condition_branches(node: Any) -> Iterator[dict]:
    """Every concrete Condition block of a statement: both sides of Fn::If, {} for no condition
    (absent or AWS::NoValue), so an unconditioned branch is never skipped."""
    if isinstance(node, dict) and len(node) == 1:
        (key, val), = node.items()
        if key == "Fn::If" and isinstance(val, list) and len(val) == 3:
            yield from condition_branches(val[1])
            yield from condition_branches(val[2])
            return
        if key == "Ref" and val == "AWS::NoValue":
            yield {}
            return
    yield node if isinstance(node, dict) else {}


def condition_value(cond: dict, operator: str, key: str) -> Any:
    """The value of condition key `key` under `operator` (keys compared case-insensitively, as
    IAM does), or None."""
    block = cond.get(operator)
    if not isinstance(block, dict):
        return None
    for k, v in block.items():
        if isinstance(k, str) and k.lower() == key.lower():
            return v
    return None


def standby_condition_problems(action: str, cond: dict) -> list[str]:
    """What one concrete Condition block lacks for a mutating EC2 action (empty: nothing)."""
    problems: list[str] = []
    tag_keys = [f"aws:ResourceTag/{STANDBY_TAG}"]
    if fnmatch.fnmatchcase("ec2:runinstances", action.lower()):
        tag_keys.append(f"aws:RequestTag/{STANDBY_TAG}")
    if not any(as_list(condition_value(cond, "StringEquals", k)) == ["true"] for k in tag_keys):
        problems.append(
            f'{action} is granted without the Condition StringEquals {tag_keys[0]}: "true" '
            "(a function may change costop standbys only, see MUTATING_EC2_ACTIONS in infra/check.py)"
        )
    if matches_any(action, TAGGING_ACTIONS):
        keys = None
        for op in ("ForAllValues:StringLike", "ForAllValues:StringEquals"):
            value = condition_value(cond, op, "aws:TagKeys")
            if value is not None:
                keys = as_list(value)
        if not keys or not all(
            isinstance(k, str) and k.startswith(STANDBY_STATE_TAG_PREFIX) and len(k) > len(STANDBY_STATE_TAG_PREFIX)
            for k in keys
        ):
            problems.append(
                f"{action} is granted without ForAllValues:StringLike aws:TagKeys limited to "
                f"{STANDBY_STATE_TAG_PREFIX}* (the keeper's own state tags; got {keys!r})"
            )
        if as_list(condition_value(cond, "Null", "aws:TagKeys")) not in (["false"], [False]):
            problems.append(
                f'{action} is granted without Null aws:TagKeys: "false" (a request without tag keys '
                "passes ForAllValues, and a DeleteTags without keys deletes every tag)"
            )
    return problems


TABLE_INDEX_SUB_RE = re.compile(r"^\$\{([A-Za-z0-9]+)\.Arn\}/index/[A-Za-z0-9_.-]+$")


def is_table_resource(resource: Any, tables: set[str]) -> bool:
    """`!GetAtt <table>.Arn` or `!Sub "${<table>.Arn}/index/<name>"` for a table of the template."""
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        att = resource["Fn::GetAtt"]
        att = att if isinstance(att, list) else str(att).split(".", 1)
        return len(att) == 2 and att[0] in tables and att[1] == "Arn"
    if isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), str):
        m = TABLE_INDEX_SUB_RE.match(resource["Fn::Sub"])
        return bool(m) and m.group(1) in tables
    return False


def event_samples(events_dir: Path) -> list[tuple[str, dict]]:
    samples = []
    for path in sorted(events_dir.glob("*.json")):
        if "-malformed-" in path.stem:
            continue
        samples.append((path.stem, json.loads(path.read_text())))
    return samples


def expected_for(stem: str) -> tuple[bool, str | None]:
    best = None
    for prefix in EXPECTED_DELIVERY:
        if stem.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    if best is None:
        return False, None
    return True, EXPECTED_DELIVERY[best]


def check_event_rules(ctx: Context, notes: Notes) -> list[str]:
    from moto.events.models import EventPattern

    cfn = ctx.cfn
    problems: list[str] = []
    functions = {lid for lid, _ in resources(cfn, "AWS::Lambda::Function")}
    queues = {lid for lid, _ in resources(cfn, "AWS::SQS::Queue")}
    rules: dict[str, tuple[dict, Any]] = {}
    schedules: dict[str, Any] = {}  # schedule rule -> ScheduleExpression
    targets: dict[str, set[str]] = {}  # rule -> the functions it invokes
    dlq_users: dict[str, set[str]] = {}  # queue -> the rules that use it as their DLQ
    for lid, res in resources(cfn, "AWS::Events::Rule"):
        props = res.get("Properties", {})
        targets[lid] = set()
        for t in props.get("Targets", []) or []:
            tid = t.get("Id", "?")
            fn = ref_target(t.get("Arn"))
            if fn not in functions:
                problems.append(f"{lid} target {tid}: not a function of this template")
            else:
                targets[lid].add(fn)
            rp = t.get("RetryPolicy") or {}
            if not {"MaximumEventAgeInSeconds", "MaximumRetryAttempts"} <= set(rp):
                problems.append(f"{lid} target {tid}: RetryPolicy needs MaximumEventAgeInSeconds and MaximumRetryAttempts")
            dlq = ref_target((t.get("DeadLetterConfig") or {}).get("Arn"))
            if dlq not in queues:
                problems.append(f"{lid} target {tid}: DeadLetterConfig.Arn must be an SQS queue of this template")
            else:
                dlq_users.setdefault(dlq, set()).add(lid)
        pattern = props.get("EventPattern")
        if pattern is None:
            if "ScheduleExpression" not in props:
                problems.append(f"{lid}: neither EventPattern nor ScheduleExpression")
            else:
                schedules[lid] = props["ScheduleExpression"]
                states = [s for s in branches(props.get("State", "ENABLED"))]
                if not set(states) <= {"ENABLED", "DISABLED"} or "ENABLED" not in states:
                    problems.append(f"{lid}: State {props.get('State')!r} is never ENABLED (or not ENABLED/DISABLED)")
            continue
        if not isinstance(pattern, dict):
            problems.append(f"{lid}: EventPattern is not a literal object")
            continue
        for key in ("source", "detail-type"):
            vals = pattern.get(key)
            if not (isinstance(vals, list) and vals and all(isinstance(v, str) for v in vals)):
                problems.append(f"{lid}: EventPattern must list exact `{key}` values (got {vals!r})")
        try:
            matcher = EventPattern.load(json.dumps(pattern))
        except Exception as e:  # noqa: BLE001
            problems.append(f"{lid}: invalid EventPattern: {e}")
            continue
        rules[lid] = (pattern, matcher)
    if not rules:
        problems.append("no EventBridge rules with an EventPattern")

    # Which function must receive what (FUNCTIONS); a function without an entry is a finding.
    receives: dict[str, set[str]] = {}
    for fn in sorted(functions):
        spec = FUNCTIONS.get(fn)
        if spec is None:
            problems.append(f"{fn}: no entry in FUNCTIONS (infra/check.py): say which events it receives")
            continue
        receives[fn] = set(spec["receives"])

    used: set[str] = set()
    samples = event_samples(ctx.events_dir)
    for stem, event in samples:
        known, want = expected_for(stem)
        matched = [lid for lid, (_, m) in rules.items() if m.matches_event(event)]
        used.update(matched)
        if not known:
            problems.append(
                f"events/{stem}.json: no delivery expectation; add its prefix to EXPECTED_DELIVERY in infra/check.py"
            )
            continue
        if want is None:
            if matched:
                problems.append(f"events/{stem}.json must not invoke costop but matches {matched}")
            continue
        if want == SCHEDULED_EVENT:
            # Delivered by schedule rules (checked below); a pattern matching it would invoke costop
            # for every schedule of every service in the account.
            if matched:
                problems.append(f"events/{stem}.json is a schedule's own event: no pattern rule may match it, matches {matched}")
            continue
        if not any(want in r for r in receives.values()):
            problems.append(f"events/{stem}.json: no function in FUNCTIONS receives {want!r}")
        for fn, wanted in sorted(receives.items()):
            mine = [lid for lid in matched if fn in targets.get(lid, set())]
            if want not in wanted:
                if mine:
                    problems.append(f"events/{stem}.json must not reach {fn} (it does not receive {want!r}), matches {mine}")
                continue
            if len(mine) != 1:
                problems.append(
                    f"events/{stem}.json must match exactly one rule targeting {fn} (the {want!r} one), matches {mine or 'none'}"
                )
                continue
            if want not in rules[mine[0]][0].get("detail-type", []):
                problems.append(f"events/{stem}.json reaches {fn} through {mine[0]}, not through the {want!r} rule")
    for lid in rules:
        if lid not in used:
            problems.append(f"{lid}: no sample in events/ matches it (add one, or the pattern is broken)")

    # Schedules: exactly one per function that receives SCHEDULED_EVENT, with its expression.
    for fn, wanted in sorted(receives.items()):
        mine = sorted(lid for lid in schedules if fn in targets.get(lid, set()))
        expr = FUNCTIONS[fn].get("schedule")
        if SCHEDULED_EVENT not in wanted:
            if mine:
                problems.append(f"{fn}: schedule rule(s) {mine} target it, but FUNCTIONS gives it no schedule")
            continue
        if len(mine) != 1:
            problems.append(f"{fn}: want exactly one schedule rule ({expr}) targeting it, found {mine or 'none'}")
        elif schedules[mine[0]] != expr:
            problems.append(f"{mine[0]}: ScheduleExpression {schedules[mine[0]]!r}, want {expr!r} for {fn}")

    # A rule's DLQ must let the rule in: EventBridge sends undeliverable events with the rule as
    # aws:SourceArn, and a queue policy that does not name it drops them silently.
    allowed: dict[str, set[str] | None] = {}
    for _, res in resources(cfn, "AWS::SQS::QueuePolicy"):
        props = res.get("Properties", {})
        for stmt in as_list((props.get("PolicyDocument") or {}).get("Statement", [])):
            if not isinstance(stmt, dict) or stmt.get("Effect") != "Allow":
                continue
            services = [s for p in as_list(stmt.get("Principal", {})) if isinstance(p, dict) for s in as_list(p.get("Service", []))]
            if "events.amazonaws.com" not in services or "sqs:SendMessage" not in as_list(stmt.get("Action", [])):
                continue
            sources = None
            for cond in condition_branches(stmt.get("Condition")):
                arns = condition_value(cond, "ArnEquals", "aws:SourceArn") or condition_value(cond, "ArnLike", "aws:SourceArn")
                if arns is not None:
                    sources = (sources or set()) | {ref_target(a) for a in as_list(arns)}
            for q in as_list(props.get("Queues", [])):
                qid = ref_target(q)
                if sources is None:
                    allowed[qid] = None  # any rule (the iam check does not like that either)
                elif allowed.get(qid, set()) is not None:
                    allowed[qid] = allowed.get(qid, set()) | sources
    for q, users in sorted(dlq_users.items()):
        if q not in allowed:
            problems.append(f"{q}: DLQ of {sorted(users)} but no queue policy lets events.amazonaws.com send to it")
            continue
        if allowed[q] is None:
            continue
        for lid in sorted(users - allowed[q]):
            problems.append(f"{lid}: its DLQ {q} does not allow it (add !GetAtt {lid}.Arn to the queue policy's aws:SourceArn)")

    problems += same_rules_as_declared(ctx, rules, schedules, targets)

    notes.append(
        f"{len(rules)} pattern rules, {len(schedules)} schedule(s), {len(samples)} samples replayed from "
        f"{ctx.rel(ctx.events_dir)} per function ({', '.join(sorted(receives))})"
    )
    return problems


def same_rules_as_declared(
    ctx: Context, rules: dict[str, tuple[dict, Any]], schedules: dict[str, Any], targets: dict[str, set[str]]
) -> list[str]:
    """The template's rules are exactly infra/event-rules.json's: SAM names a function's rule
    `<function logical id><event name>`; same target, same pattern or schedule."""
    try:
        declared = json.loads(ctx.event_rules_path.read_text())
    except (OSError, ValueError) as e:
        return [f"{ctx.rel(ctx.event_rules_path)}: unreadable ({e}); regenerate it with `costop rules --json`"]
    by_binary = {spec["binary"]: fn for fn, spec in FUNCTIONS.items()}
    problems: list[str] = []
    seen: set[str] = set()
    for r in declared:
        fn = by_binary.get(r.get("function"))
        if fn is None:
            problems.append(f"{ctx.rel(ctx.event_rules_path)}: rule {r.get('name')} of unknown function {r.get('function')!r}")
            continue
        lid = fn + r.get("name", "")
        seen.add(lid)
        if fn not in targets.get(lid, set()):
            problems.append(f"{lid}: declared in {ctx.rel(ctx.event_rules_path)} but no such rule targets {fn}")
        elif "pattern" in r and (lid not in rules or rules[lid][0] != r["pattern"]):
            got = rules[lid][0] if lid in rules else None
            problems.append(f"{lid}: pattern {got!r} differs from the declared {r['pattern']!r}")
        elif "schedule" in r and schedules.get(lid) != r["schedule"]:
            problems.append(f"{lid}: schedule {schedules.get(lid)!r} differs from the declared {r['schedule']!r}")
    for lid in sorted((set(rules) | set(schedules)) - seen):
        problems.append(f"{lid}: not in {ctx.rel(ctx.event_rules_path)} (declare it in crates/core/src/rules.rs)")
    return problems


def check_shape(ctx: Context, notes: Notes) -> list[str]:
    raw, cfn = ctx.raw, ctx.cfn
    problems: list[str] = []
    res_all = cfn.get("Resources", {})

    # Rust functions: CodeUri is a cargo package with the named binary.
    for lid, res in resources(raw, "AWS::Serverless::Function"):
        meta = res.get("Metadata", {}) or {}
        if meta.get("BuildMethod") != "rust-cargolambda":
            problems.append(f"{lid}: Metadata.BuildMethod must be rust-cargolambda")
            continue
        code_uri = (res.get("Properties", {}) or {}).get("CodeUri")
        binary = (meta.get("BuildProperties") or {}).get("Binary")
        if not isinstance(code_uri, str):
            problems.append(f"{lid}: CodeUri must be a local path to the cargo package")
            continue
        manifest = (ctx.template_path.parent / code_uri / "Cargo.toml").resolve()
        if not manifest.exists():
            problems.append(f"{lid}: CodeUri {code_uri} has no Cargo.toml ({manifest})")
            continue
        bins = cargo_binaries(manifest)
        if binary not in bins:
            problems.append(f"{lid}: BuildProperties.Binary {binary!r} is not a binary of {ctx.rel(manifest)} ({sorted(bins)})")
        spec = FUNCTIONS.get(lid)
        if spec is None:
            problems.append(f"{lid}: no entry in FUNCTIONS (infra/check.py): say what it runs and receives")
        elif binary != spec["binary"]:
            problems.append(f"{lid}: BuildProperties.Binary {binary!r}, FUNCTIONS says {spec['binary']!r}")

    functions = dict(resources(cfn, "AWS::Lambda::Function"))
    if not functions:
        problems.append("no Lambda functions")
    for lid, res in functions.items():
        p = res.get("Properties", {})
        if p.get("Runtime") != "provided.al2023":
            problems.append(f"{lid}: Runtime {p.get('Runtime')!r}, want provided.al2023")
        if p.get("Architectures") != ["arm64"]:
            problems.append(f"{lid}: Architectures {p.get('Architectures')!r}, want [arm64]")
        if p.get("Handler") != "bootstrap":
            problems.append(f"{lid}: Handler {p.get('Handler')!r}, want bootstrap")
        if not isinstance(p.get("MemorySize"), int):
            problems.append(f"{lid}: MemorySize must be explicit")
        # The interruption handler stops 3 s before the invocation's deadline; an ASG hook's
        # drain may run up to the hook deadline, so the timeout must cover it (a Spot drain ends
        # at 120 s anyway). The keeper watches for replacement pods for the watch window after
        # a Spot warning: its timeout covers that plus 30 s (event delay, lease, start).
        timeout = p.get("Timeout")
        env = p.get("Environment", {}).get("Variables", {})
        rule = (FUNCTIONS.get(lid) or {}).get("timeout", "hook")
        var, fallback, reserve = TIMEOUT_RULES[rule]
        value = env.get(var, config_default(ctx.config_vars, var, fallback))
        if not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
            problems.append(f"{lid}: {var} must be a literal number (the Timeout is checked against it), got {value!r}")
            continue
        value = int(value)
        if var.endswith("_MS"):
            value = -(-value // 1000)
        if not isinstance(timeout, int) or not value + reserve <= timeout <= 900:
            what = {
                "hook": "the ASG hook deadline",
                "watch": "the standby watch window",
                "forward": "the forward budget",
            }[rule]
            problems.append(
                f"{lid}: Timeout {timeout!r} must cover {what} ({var}={value} s) plus {reserve} s, "
                "and be at most 900 s"
            )

    # Async invocation: every function EventBridge invokes has an invoke config with a
    # short max age, few retries and an encrypted, alarmed on-failure queue.
    async_fns = {
        ref_target(r["Properties"].get("FunctionName"))
        for _, r in resources(cfn, "AWS::Lambda::Permission")
        if r["Properties"].get("Principal") == "events.amazonaws.com"
    }
    configs = {ref_target(r["Properties"].get("FunctionName")): r["Properties"] for _, r in resources(cfn, "AWS::Lambda::EventInvokeConfig")}
    alarmed_queues = {
        ref_target(d.get("Value"))
        for _, r in resources(cfn, "AWS::CloudWatch::Alarm")
        if r["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
        for d in r["Properties"].get("Dimensions", [])
        if d.get("Name") == "QueueName"
    }
    for fn in sorted(f for f in async_fns if f):
        cfg = configs.get(fn)
        if cfg is None:
            problems.append(f"{fn}: invoked by EventBridge but has no EventInvokeConfig")
            continue
        age, retries = cfg.get("MaximumEventAgeInSeconds"), cfg.get("MaximumRetryAttempts")
        if not isinstance(age, int) or not 60 <= age <= 180:
            problems.append(f"{fn}: EventInvokeConfig MaximumEventAgeInSeconds {age!r}, want 60..180")
        if not isinstance(retries, int) or retries > 2:
            problems.append(f"{fn}: EventInvokeConfig MaximumRetryAttempts {retries!r}, want 0..2")
        dest = ref_target(((cfg.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"))
        if dest is None or res_all.get(dest, {}).get("Type") != "AWS::SQS::Queue":
            problems.append(f"{fn}: on-failure destination must be an SQS queue of this template")
    rule_dlqs = {
        ref_target((t.get("DeadLetterConfig") or {}).get("Arn"))
        for _, r in resources(cfn, "AWS::Events::Rule")
        for t in r["Properties"].get("Targets", []) or []
    }
    dlqs = {
        ref_target(((c.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")) for c in configs.values()
    } | rule_dlqs
    for lid, res in resources(cfn, "AWS::SQS::Queue"):
        p = res.get("Properties", {})
        if not (p.get("SqsManagedSseEnabled") is True or p.get("KmsMasterKeyId")):
            problems.append(f"{lid}: queue without server-side encryption")
        if lid in dlqs and lid not in alarmed_queues:
            problems.append(f"{lid}: dead-letter queue without an ApproximateNumberOfMessagesVisible alarm")

    # The timeline and queue tables.
    tables = dict(resources(cfn, "AWS::DynamoDB::Table"))
    if set(tables) != TABLES:
        problems.append(f"expected the DynamoDB tables {sorted(TABLES)}, found {sorted(tables)}")
    for lid, res in tables.items():
        p = res.get("Properties", {})
        if p.get("BillingMode") != "PAY_PER_REQUEST":
            problems.append(f"{lid}: BillingMode must be PAY_PER_REQUEST")
        keys = {k["AttributeName"]: k["KeyType"] for k in p.get("KeySchema", [])}
        types = {a["AttributeName"]: a["AttributeType"] for a in p.get("AttributeDefinitions", [])}
        if keys != {"pk": "HASH", "sk": "RANGE"} or types.get("pk") != "S" or types.get("sk") != "S":
            problems.append(f"{lid}: key must be pk (S) HASH + sk (S) RANGE, got {keys} {types}")
        ttl = p.get("TimeToLiveSpecification") or {}
        if ttl.get("AttributeName") != "ttl" or ttl.get("Enabled") is not True:
            problems.append(f"{lid}: TTL must be enabled on attribute `ttl`")
        if (p.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled") is not True:
            problems.append(f"{lid}: point-in-time recovery must be enabled")
        if (p.get("SSESpecification") or {}).get("SSEEnabled") is not True:
            problems.append(f"{lid}: SSESpecification.SSEEnabled must be true")
        for attr in ("DeletionPolicy", "UpdateReplacePolicy"):
            if res.get(attr) != "Retain":
                problems.append(f"{lid}: {attr} must be Retain")

    # EKS access entries.
    entries = dict(resources(cfn, "AWS::EKS::AccessEntry"))
    if not entries:
        problems.append("no AWS::EKS::AccessEntry")
    for lid, res in entries.items():
        p = res.get("Properties", {})
        if p.get("Type") != "STANDARD":
            problems.append(f"{lid}: Type must be STANDARD")
        if p.get("AccessPolicies"):
            problems.append(f"{lid}: no access policies: RBAC (infra/k8s/rbac.yaml) is the only grant")
        if p.get("KubernetesGroups") != ["costop"]:
            problems.append(f"{lid}: KubernetesGroups must be [costop] (the group rbac.yaml binds)")
    # Every function role that reaches a cluster (eks:DescribeCluster) has an entry in each
    # cluster slot, under the same Condition as the other roles' entry for that slot.
    slot_conditions: dict[str, set[str]] = {}
    for role in sorted(roles_allowing(cfn, "eks:DescribeCluster")):
        slots: dict[str, list[str]] = {}
        for lid, res in entries.items():
            if ref_target(res.get("Properties", {}).get("PrincipalArn")) == role:
                slot = json.dumps(res["Properties"].get("ClusterName"), sort_keys=True)
                slots.setdefault(slot, []).append(lid)
                slot_conditions.setdefault(slot, set()).add(str(res.get("Condition")))
        for i in range(3):
            slot = json.dumps({"Fn::Select": [i, {"Ref": "ClusterNames"}]}, sort_keys=True)
            if len(slots.get(slot, [])) != 1:
                problems.append(
                    f"{role}: calls eks:DescribeCluster, so it needs exactly one AWS::EKS::AccessEntry for "
                    f"cluster {i + 1} (!Select [{i}, !Ref ClusterNames]); found {slots.get(slot, [])}"
                )
    for slot, conds in sorted(slot_conditions.items()):
        if len(conds) > 1:
            problems.append(f"access entries for {slot} differ in Condition: {sorted(conds)} (keep the same pattern)")

    params = cfn.get("Parameters", {})
    if (params.get("DryRun") or {}).get("Default") != "true":
        problems.append("parameter DryRun must default to \"true\" (the first week is a dry run)")

    # Outputs: every function and role ARN, the table, the DLQ URLs, the dashboard.
    outputs = cfn.get("Outputs", {})
    out_refs = {json.dumps(o.get("Value"), sort_keys=True) for o in outputs.values()}
    wanted = [json.dumps({"Fn::GetAtt": [f, "Arn"]}) for f in functions]
    wanted += [json.dumps(r["Properties"]["Role"], sort_keys=True) for r in functions.values() if "Role" in r["Properties"]]
    wanted += [json.dumps({"Ref": t}) for t in tables]
    wanted += [json.dumps({"Ref": q}) for q in sorted(q for q in dlqs if q)]
    for w in wanted:
        if w not in out_refs:
            problems.append(f"no output with value {w}")
    if not any("DashboardUrl" == k for k in outputs):
        problems.append("no DashboardUrl output")
    notes.append(f"{len(functions)} function(s), {len(entries)} access entr{'y' if len(entries) == 1 else 'ies'}")
    return problems


def roles_allowing(cfn: dict, action: str) -> set[str]:
    """The IAM roles whose identity policies allow `action` (any branch)."""
    out: set[str] = set()
    for lid, res in resources(cfn, "AWS::IAM::Role"):
        for pol in as_list(res.get("Properties", {}).get("Policies", [])):
            for stmt in as_list(((pol or {}).get("PolicyDocument") or {}).get("Statement", [])):
                if isinstance(stmt, dict) and stmt.get("Effect") == "Allow" and action in as_list(stmt.get("Action", [])):
                    out.add(lid)
    return out


def load_config_vars(path: Path) -> dict[str, dict[str, str]]:
    """infra/config-vars.json (the output of `costop config --list --json`), by variable name."""
    try:
        listed = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckError(f"cannot read the variables costop reads from {path}: {e}") from e
    fields = ("name", "group", "default", "doc")
    if not isinstance(listed, list) or not all(
        isinstance(v, dict) and all(isinstance(v.get(f), str) for f in fields) for v in listed
    ):
        raise CheckError(f"{path}: want a JSON array of objects with string {', '.join(fields)}")
    return {v["name"]: v for v in listed}


def config_default(config_vars: dict[str, dict[str, str]], var: str, fallback: int) -> Any:
    """A variable's default as costop lists it, or `fallback` if it is not listed."""
    listed = config_vars.get(var)
    return listed["default"] if listed is not None else fallback


def cargo_binaries(manifest: Path) -> set[str]:
    data = tomllib.loads(manifest.read_text())
    bins = {b["name"] for b in data.get("bin", []) if "name" in b}
    if (manifest.parent / "src/main.rs").exists() and data.get("package", {}).get("autobins", True) is not False:
        bins.add(data.get("package", {}).get("name", ""))
    return bins


def check_samconfig(ctx: Context, notes: Notes) -> list[str]:
    path = ctx.samconfig_path
    if not path.exists():
        return [f"{ctx.rel(path)} not found"]
    cfg = tomllib.loads(path.read_text()).get("default", {})
    problems: list[str] = []

    def params(cmd: str) -> dict:
        return (cfg.get(cmd) or {}).get("parameters") or {}

    build = params("build")
    tf = build.get("template_file")
    if not tf:
        problems.append("[default.build.parameters] template_file is not set")
    elif not (path.parent / tf).exists():
        problems.append(f"[default.build.parameters] template_file {tf!r} does not exist")
    elif (path.parent / tf).resolve() != (ROOT / "infra/template.yaml").resolve():
        problems.append(f"[default.build.parameters] template_file {tf!r} is not infra/template.yaml")
    for key in ("cached", "parallel"):
        if build.get(key) is not True:
            problems.append(f"[default.build.parameters] {key} must be true")
    deploy = params("deploy")
    if deploy.get("stack_name") != "costop":
        problems.append("[default.deploy.parameters] stack_name must be costop")
    caps = deploy.get("capabilities")
    caps = caps.split() if isinstance(caps, str) else (caps or [])
    if "CAPABILITY_IAM" not in caps:
        problems.append("[default.deploy.parameters] capabilities must include CAPABILITY_IAM")
    for key in ("confirm_changeset", "resolve_s3"):
        if deploy.get(key) is not True:
            problems.append(f"[default.deploy.parameters] {key} must be true")
    # deploy/package/local commands must use the BUILT template (.aws-sam/build/template.yaml,
    # their default); a template_file there would upload the Rust sources instead of bootstrap.
    for cmd in ("global", "deploy", "package", "local_invoke", "local_start_lambda"):
        if "template_file" in params(cmd) or "template" in params(cmd):
            problems.append(f"[default.{cmd}.parameters] must not set template_file: it would bypass the built template")
    return problems


def check_config_env(ctx: Context, notes: Notes) -> list[str]:
    known = set(ctx.config_vars)
    listing = ctx.rel(ctx.config_vars_path)
    problems: list[str] = []
    required = {"COSTOP_TABLE", "COSTOP_DRY_RUN", "COSTOP_CLUSTER_ALLOW_LIST"}
    for lid, res in resources(ctx.cfn, "AWS::Lambda::Function"):
        env = ((res["Properties"].get("Environment") or {}).get("Variables")) or {}
        for var in env:
            if var.startswith("COSTOP_") and var not in known:
                problems.append(f"{lid}: {var} is not a variable costop reads ({listing}); costop ignores it")
        for var in sorted(required - set(env)):
            problems.append(f"{lid}: {var} is not set")
    notes.append(f"{len(known)} variables known to costop ({listing})")
    return problems


def metric_constants(metrics_rs: Path) -> tuple[dict[str, str], set[str]]:
    """({metric name: const name}, {dimension names}) from crates/core/src/metrics.rs."""
    consts = dict(re.findall(r'pub const ([A-Z0-9_]+): &str = "([^"]+)";', metrics_rs.read_text()))
    dims = {v for k, v in consts.items() if k.startswith("DIM_")}
    metrics = {v: k for k, v in consts.items() if not k.startswith("DIM_")}
    return metrics, dims


def emitted_metrics(defined: dict[str, str], emitter_dirs: list[Path]) -> set[str]:
    """The defined metrics that shell code (outside crates/core, tests excluded) refers to, by
    constant (`m::TIME_TO_CORDON_MS`) or by name."""
    found: set[str] = set()
    for d in emitter_dirs:
        for path in sorted(d.rglob("*.rs")) if d.exists() else []:
            if is_test_file(path, d):
                continue
            code = re.sub(r"//[^\n]*", "", strip_inline_tests(path.read_text()))
            for name, const in defined.items():
                if re.search(rf"\b{const}\b", code) or f'"{name}"' in code:
                    found.add(name)
    return found


SEARCH_RE = re.compile(r"SEARCH\('\{([^}]*)\}\s*([^']*)'")


def check_dashboard(ctx: Context, notes: Notes) -> list[str]:
    metrics_rs = ctx.core_src / "metrics.rs"
    if not metrics_rs.exists():
        raise CheckError(f"{metrics_rs} not found")
    defined, dims = metric_constants(metrics_rs)
    emitter_dirs = list(ctx.emitter_dirs)
    for _, res in resources(ctx.raw, "AWS::Serverless::Function"):
        code_uri = (res.get("Properties", {}) or {}).get("CodeUri")
        if isinstance(code_uri, str):
            src = (ctx.template_path.parent / code_uri / "src").resolve()
            if src not in (d.resolve() for d in emitter_dirs):
                emitter_dirs.append(src)
    emitted = emitted_metrics(defined, emitter_dirs)
    cfn = ctx.cfn
    namespace = (cfn.get("Parameters", {}).get("MetricsNamespace") or {}).get("Default")
    problems: list[str] = []
    boards = dict(resources(cfn, "AWS::CloudWatch::Dashboard"))
    if not boards:
        return ["no AWS::CloudWatch::Dashboard"]
    shown: set[str] = set()
    for lid, res in boards.items():
        body = res["Properties"].get("DashboardBody")
        if isinstance(body, dict) and "Fn::Sub" in body:
            body = body["Fn::Sub"]
            body = body[0] if isinstance(body, list) else body
        if not isinstance(body, str):
            problems.append(f"{lid}: DashboardBody must be a string or Fn::Sub of one")
            continue
        text = re.sub(r"\$\{MetricsNamespace\}", namespace or "NAMESPACE", body)
        text = re.sub(r"\$\{[^}!]+\}", "x", text)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            problems.append(f"{lid}: DashboardBody is not JSON after substitution: {e}")
            continue
        for w in doc.get("widgets", []):
            if w.get("type") != "metric":
                continue
            title = w.get("properties", {}).get("title", "?")
            for m in w.get("properties", {}).get("metrics", []):
                expr = m[0].get("expression") if m and isinstance(m[0], dict) else None
                if expr is not None:
                    for schema, term in SEARCH_RE.findall(expr):
                        parts = [s.strip().strip('"') for s in schema.split(",")]
                        names = re.findall(r'MetricName\s*=\s*"([^"]+)"', term)
                        if parts[0] != namespace:
                            problems.append(f"{lid} '{title}': SEARCH namespace {parts[0]!r}, want ${{MetricsNamespace}} ({namespace})")
                            continue
                        if not names:
                            problems.append(f"{lid} '{title}': SEARCH without MetricName=\"...\"")
                        for n in names:
                            shown.add(n)
                            problems.extend(metric_problem(lid, title, n, defined, emitted))
                        for d in parts[1:]:
                            if d not in dims:
                                problems.append(f"{lid} '{title}': dimension {d!r} is not defined in crates/core/src/metrics.rs")
                elif m and isinstance(m[0], str) and m[0] == namespace:
                    shown.add(m[1])
                    problems.extend(metric_problem(lid, title, m[1], defined, emitted))
                elif m and isinstance(m[0], str) and not m[0].startswith("AWS/") and m[0] != ".":
                    problems.append(f"{lid} '{title}': unknown namespace {m[0]!r}")
    missing = sorted(emitted - shown)
    notes.append(f"shows {sorted(shown)}" + (f"; emitted but not shown: {missing}" if missing else ""))
    return problems


def metric_problem(lid: str, title: str, name: str, defined: dict[str, str], emitted: set[str]) -> list[str]:
    if name not in defined:
        return [f"{lid} '{title}': metric {name!r} is not defined in crates/core/src/metrics.rs"]
    if name not in emitted:
        return [f"{lid} '{title}': metric {name!r} ({defined[name]}) is defined but no shell code emits it"]
    return []


# AWS SDK for Rust operations (fluent method name) -> IAM action, for the services costop
# calls. A call is `.<op>()` followed in the same statement by `.send()`.
SDK_OPERATIONS: dict[str, str] = {
    # EC2
    "describe_instances": "ec2:DescribeInstances",
    "describe_instance_types": "ec2:DescribeInstanceTypes",
    "start_instances": "ec2:StartInstances",
    "stop_instances": "ec2:StopInstances",
    "modify_instance_attribute": "ec2:ModifyInstanceAttribute",
    "run_instances": "ec2:RunInstances",
    "create_tags": "ec2:CreateTags",
    "delete_tags": "ec2:DeleteTags",
    "terminate_instances": "ec2:TerminateInstances",
    "reboot_instances": "ec2:RebootInstances",
    "create_launch_template": "ec2:CreateLaunchTemplate",
    "create_launch_template_version": "ec2:CreateLaunchTemplateVersion",
    "describe_launch_templates": "ec2:DescribeLaunchTemplates",
    "describe_launch_template_versions": "ec2:DescribeLaunchTemplateVersions",
    # ELBv2
    "describe_target_groups": "elasticloadbalancing:DescribeTargetGroups",
    "describe_target_health": "elasticloadbalancing:DescribeTargetHealth",
    "describe_tags": "elasticloadbalancing:DescribeTags",
    "describe_load_balancers": "elasticloadbalancing:DescribeLoadBalancers",
    "describe_listeners": "elasticloadbalancing:DescribeListeners",
    "describe_rules": "elasticloadbalancing:DescribeRules",
    "modify_rule": "elasticloadbalancing:ModifyRule",
    "modify_listener": "elasticloadbalancing:ModifyListener",
    "deregister_targets": "elasticloadbalancing:DeregisterTargets",
    "register_targets": "elasticloadbalancing:RegisterTargets",
    # Auto Scaling
    "complete_lifecycle_action": "autoscaling:CompleteLifecycleAction",
    "record_lifecycle_action_heartbeat": "autoscaling:RecordLifecycleActionHeartbeat",
    "describe_lifecycle_hooks": "autoscaling:DescribeLifecycleHooks",
    "detach_instances": "autoscaling:DetachInstances",
    "describe_auto_scaling_groups": "autoscaling:DescribeAutoScalingGroups",
    "describe_auto_scaling_instances": "autoscaling:DescribeAutoScalingInstances",
    # EKS
    "describe_cluster": "eks:DescribeCluster",
    # Lambda
    "invoke": "lambda:InvokeFunction",
    # DynamoDB
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "batch_get_item": "dynamodb:BatchGetItem",
    "batch_write_item": "dynamodb:BatchWriteItem",
    "transact_get_items": "dynamodb:GetItem",
    "transact_write_items": "dynamodb:PutItem",  # plus the per-item actions it contains
    "condition_check_item": "dynamodb:ConditionCheckItem",
}
# Actions the adapters call that no Lambda role needs: they serve other binaries (the CLI,
# with the operator's credentials). Each entry says who calls it; keep the list short.
NOT_FOR_FUNCTIONS: dict[str, str] = {}
SDK_CALL_RE = re.compile(r"\.([a-z][a-z0-9_]*)\(\)")


def scan_sdk_calls(src: Path) -> dict[str, list[str]]:
    """IAM action -> [file:line] for every AWS SDK call in src/**/*.rs (tests excluded)."""
    used: dict[str, list[str]] = {}
    for path in sorted(src.rglob("*.rs")) if src.exists() else []:
        if is_test_file(path, src):
            continue
        code = re.sub(r"//[^\n]*", "", strip_inline_tests(path.read_text()))
        rel = str(path.relative_to(src.parent))
        for m in SDK_CALL_RE.finditer(code):
            action = SDK_OPERATIONS.get(m.group(1))
            if action is None:
                continue
            statement = code[m.end(): m.end() + 2000].split(";", 1)[0]
            if ".send()" not in statement:
                continue
            line = code.count("\n", 0, m.start()) + 1
            used.setdefault(action, []).append(f"{rel}:{line}")
    return used


def granted_actions(cfn: dict) -> set[str]:
    """Every action some Lambda role's identity policy allows (any branch of any Fn::If)."""
    out: set[str] = set()
    for where, doc, is_resource_policy in policy_documents(cfn):
        if is_resource_policy:
            continue
        for stmt in as_list((doc or {}).get("Statement", [])):
            if isinstance(stmt, dict) and stmt.get("Effect") == "Allow":
                out.update(a for a in as_list(stmt.get("Action", [])) if isinstance(a, str))
    return out


def check_iam_code(ctx: Context, notes: Notes) -> list[str]:
    used = scan_sdk_calls(ctx.adapters_src)
    if not used:
        notes.append(f"no AWS SDK calls in {ctx.rel(ctx.adapters_src)}: nothing to compare")
        return []
    granted = granted_actions(ctx.cfn)

    def allowed(action: str) -> bool:  # wildcards are the `iam` check's business, not this one's
        return any(fnmatch.fnmatchcase(action.lower(), g.lower()) for g in granted)

    problems: list[str] = []
    exempt: list[str] = []
    for action, where in sorted(used.items()):
        if allowed(action):
            continue
        if action in NOT_FOR_FUNCTIONS:
            exempt.append(action)
            continue
        problems.append(f"used but not granted: {action} (at {', '.join(where)}): add it to the function's Policies, scoped")
    # Granted but never called: an unused permission (only for the services costop reaches
    # through the SDK; the logs and the on-failure queue are Lambda's, not the code's).
    services = {v.split(":")[0] for v in SDK_OPERATIONS.values()}
    for g in sorted(granted):
        if g.split(":")[0] in services and not any(fnmatch.fnmatchcase(a.lower(), g.lower()) for a in used):
            problems.append(f"granted but not used: {g} (no SDK call in {ctx.rel(ctx.adapters_src)}): remove it")
    if not problems:
        notes.append(f"{len(used) - len(exempt)} SDK actions used, all granted, none granted unused")
    if exempt:
        notes.append(f"not granted on purpose (NOT_FOR_FUNCTIONS): {', '.join(exempt)}")
    return problems


# ---------------------------------------------------------------------------------------------
# RBAC
# ---------------------------------------------------------------------------------------------

# A marker is a line comment whose text starts with `rbac:`: `// rbac: pods/eviction create`,
# alone on its line or after code. Only the line's first comment counts, so prose that quotes
# the syntax (`//! each call carries an `// rbac: ...` marker`) is not a marker.
COMMENT_START_RE = re.compile(r"(?:^|(?<=[\s;,(){}]))//[/!]?")
API_KIND_RE = re.compile(r"\bApi\s*(?:::)?\s*<\s*([A-Za-z_][A-Za-z0-9_:]*)\s*>")
KUBE_USE_RE = re.compile(r"\bkube::|\buse\s+kube\b|\bApi\s*(?:::)?\s*<")

Grant = tuple[str, str, str]  # (api group, resource[/subresource], verb)


def parse_resource_spec(spec: str) -> tuple[str, str]:
    """kubectl notation: `nodes`, `pods/eviction`, `poddisruptionbudgets.policy`,
    `deployments.apps/scale` -> (group, resource[/subresource])."""
    base, _, sub = spec.partition("/")
    resource, _, group = base.partition(".")
    if group == "core":
        group = ""
    return group, resource + (f"/{sub}" if sub else "")


def show(g: Grant) -> str:
    group, resource, verb = g
    base, _, sub = resource.partition("/")
    name = base + (f".{group}" if group else "") + (f"/{sub}" if sub else "")
    return f"{verb} {name}"


def scan_adapters(src: Path) -> tuple[dict[Grant, list[str]], list[str], bool]:
    """Markers in src/**/*.rs -> ({grant: [file:line]}, problems, kube code present)."""
    used: dict[Grant, list[str]] = {}
    problems: list[str] = []
    present = False
    files = sorted(src.rglob("*.rs")) if src.exists() else []
    for path in files:
        if is_test_file(path, src):
            continue  # tests call fakes, not the cluster
        text = strip_inline_tests(path.read_text())
        rel = str(path.relative_to(src.parent)) if src.parent in path.parents else str(path)
        file_grants: set[Grant] = set()
        for n, line in enumerate(text.splitlines(), 1):
            c = COMMENT_START_RE.search(line)
            if not c or not line[c.end():].lstrip().startswith("rbac:"):
                continue
            present = True
            body = line[c.end():].lstrip()[len("rbac:"):]
            tokens = [t for t in re.split(r"[\s,]+", body) if t]
            if len(tokens) < 2 or not re.fullmatch(r"[a-z0-9.-]+(/[a-z]+)?", tokens[0]):
                problems.append(f"{rel}:{n}: bad marker {line.strip()!r}; want `// rbac: <resource>[.<group>][/<sub>] <verb>...`")
                continue
            group, resource = parse_resource_spec(tokens[0])
            for verb in tokens[1:]:
                if verb not in KUBE_VERBS:
                    problems.append(f"{rel}:{n}: unknown verb {verb!r} (one of {sorted(KUBE_VERBS)})")
                    continue
                g = (group, resource, verb)
                file_grants.add(g)
                used.setdefault(g, []).append(f"{rel}:{n}")
        code = re.sub(r"//.*", "", text)  # markers and comments do not count as usage
        if KUBE_USE_RE.search(code):
            present = True
        # Drift guard: a kind used through Api<K> needs a marker for its resource in that file.
        for kind_path in sorted(set(API_KIND_RE.findall(code))):
            kind = kind_path.split("::")[-1]
            if kind not in KIND_RESOURCES:
                if re.fullmatch(r"[A-Z]", kind) or kind in ("K", "T", "Self"):
                    continue  # a generic parameter: the caller's file carries the marker
                problems.append(f"{rel}: Api<{kind}> has no known RBAC resource; add it to KIND_RESOURCES in infra/check.py")
                continue
            group, resource = KIND_RESOURCES[kind]
            if not any(g[0] == group and g[1].split("/")[0] == resource for g in file_grants):
                spec = resource + (f".{group}" if group else "")
                problems.append(f"{rel}: uses Api<{kind}> but declares no `// rbac: {spec} <verb>...` marker")
        evicts = re.search(r"\.evict\s*\(", code) or re.search(r"create_subresource\b[^;]*?\"eviction\"", code, re.S)
        if evicts and ("", "pods/eviction", "create") not in file_grants:
            problems.append(f"{rel}: evicts pods but declares no `// rbac: pods/eviction create` marker")
    return used, problems, present


def is_test_file(path: Path, src: Path) -> bool:
    parts = path.relative_to(src).parts
    return any(p in ("tests", "testutil", "test_support") for p in parts[:-1]) or path.stem in (
        "tests", "test", "testutil", "test_support"
    )


def strip_inline_tests(text: str) -> str:
    """Drop an inline `#[cfg(test)] mod x { ... }` (by convention the end of the file)."""
    m = re.search(r"^\s*#\[cfg\(test\)\]\s*\n\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{", text, re.M)
    return text[: m.start()] if m else text


def load_rbac(path: Path) -> tuple[set[Grant], list[str], str | None]:
    import yaml

    problems: list[str] = []
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    roles = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ClusterRole"}
    bindings = [d for d in docs if d.get("kind") == "ClusterRoleBinding"]
    other = [d.get("kind") for d in docs if d.get("kind") not in ("ClusterRole", "ClusterRoleBinding")]
    if other:
        problems.append(f"unexpected kinds {other} (only ClusterRole and ClusterRoleBinding)")
    if list(roles) != ["costop"]:
        problems.append(f"want exactly one ClusterRole named costop, found {sorted(roles)}")
    group = None
    if len(bindings) != 1:
        problems.append(f"want exactly one ClusterRoleBinding, found {len(bindings)}")
    for b in bindings:
        ref = b.get("roleRef", {})
        if ref.get("kind") != "ClusterRole" or ref.get("name") not in roles:
            problems.append(f"ClusterRoleBinding {b['metadata']['name']}: roleRef must be ClusterRole costop")
        subjects = b.get("subjects", [])
        if [(s.get("kind"), s.get("name")) for s in subjects] != [("Group", "costop")]:
            problems.append(f"ClusterRoleBinding {b['metadata']['name']}: subjects must be exactly Group costop (the access entries' group)")
        else:
            group = "costop"
    granted: set[Grant] = set()
    for name, role in roles.items():
        if role.get("aggregationRule"):
            problems.append(f"ClusterRole {name}: no aggregationRule")
        for i, rule in enumerate(role.get("rules") or []):
            where = f"ClusterRole {name} rule {i}"
            if rule.get("nonResourceURLs"):
                problems.append(f"{where}: no nonResourceURLs")
            if rule.get("resourceNames"):
                problems.append(f"{where}: resourceNames are not supported by the check")
            for key in ("apiGroups", "resources", "verbs"):
                vals = rule.get(key) or []
                if not vals:
                    problems.append(f"{where}: empty {key}")
                if "*" in vals:
                    problems.append(f"{where}: wildcard in {key}")
            for verb in rule.get("verbs") or []:
                if verb not in KUBE_VERBS:
                    problems.append(f"{where}: unknown verb {verb!r}")
            for g in rule.get("apiGroups") or []:
                for r in rule.get("resources") or []:
                    for v in rule.get("verbs") or []:
                        granted.add((g, r, v))
    return granted, problems, group


def check_rbac(ctx: Context, notes: Notes) -> list[str]:
    if not ctx.rbac_path.exists():
        return [f"{ctx.rbac_path} not found"]
    granted, problems, _group = load_rbac(ctx.rbac_path)
    used, scan_problems, present = scan_adapters(ctx.adapters_src)
    problems += scan_problems
    if not present:
        notes.append(
            f"no Kubernetes code in {ctx.rel(ctx.adapters_src)} (no `// rbac:` markers, no kube:: use): "
            f"rbac.yaml structure checked, its {len(granted)} grants not compared with code"
        )
        return problems
    for g in sorted(set(used) - granted):
        problems.append(f"used but not granted: {show(g)} (at {', '.join(used[g])})")
    for g in sorted(granted - set(used)):
        problems.append(f"granted but not used: {show(g)} (no `// rbac:` marker in {ctx.rel(ctx.adapters_src)})")
    notes.append(f"{len(granted)} grants == {len(used)} declared uses" if not problems else "")
    return problems


# ---------------------------------------------------------------------------------------------

CHECKS: list[tuple[str, Callable[[Context, Notes], list[str]]]] = [
    ("sam-validate", check_sam_validate),
    ("sam-transform", check_sam_transform),
    ("cfn-lint", check_cfn_lint),
    ("iam", check_iam),
    ("iam-code", check_iam_code),
    ("event-rules", check_event_rules),
    ("shape", check_shape),
    ("samconfig", check_samconfig),
    ("config-env", check_config_env),
    ("dashboard", check_dashboard),
    ("rbac", check_rbac),
]


def indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + l for l in text.splitlines())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", default=str(ROOT / "infra/template.yaml"), help="SAM template (default: infra/template.yaml)")
    ap.add_argument("--rbac", default=str(ROOT / "infra/k8s/rbac.yaml"), help="RBAC manifest (default: infra/k8s/rbac.yaml)")
    ap.add_argument("--adapters-src", default=str(ROOT / "crates/adapters/src"), help="Kubernetes code to scan for `// rbac:` markers")
    ap.add_argument("--events", default=str(ROOT / "events"), help="sample events replayed against the rules")
    ap.add_argument("--core-src", default=str(ROOT / "crates/core/src"), help="where metrics.rs lives")
    ap.add_argument(
        "--config-vars",
        default=str(ROOT / "infra/config-vars.json"),
        help="the variables costop reads (default: infra/config-vars.json, from `costop config --list --json`)",
    )
    ap.add_argument(
        "--event-rules",
        default=str(ROOT / "infra/event-rules.json"),
        help="the rules costop replays by (default: infra/event-rules.json, from `costop rules --json`)",
    )
    ap.add_argument("--samconfig", default=str(ROOT / "samconfig.toml"), help="samconfig.toml to check")
    ap.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(n for n, _ in CHECKS)}")
    args = ap.parse_args(argv)

    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - {n for n, _ in CHECKS}
    if unknown:
        ap.error(f"unknown check(s) {sorted(unknown)}")
    selected = [(n, f) for n, f in CHECKS if not only or n in only]

    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="costop-infra-check-") as tmp:
        ctx = Context(args, Path(tmp))
        print(f"costop infra checks: template {ctx.rel(ctx.template_path)}, rbac {ctx.rel(ctx.rbac_path)}, "
              f"kube code {ctx.rel(ctx.adapters_src)}", flush=True)
        for name, fn in selected:
            notes: Notes = []
            start = time.monotonic()
            try:
                problems = fn(ctx, notes)
            except CheckError as e:
                problems = [str(e)]
            except Exception as e:  # noqa: BLE001 - report, keep going
                problems = [f"check crashed: {type(e).__name__}: {e}"]
            took = time.monotonic() - start
            notes = [n for n in notes if n]
            if problems:
                failed += 1
                print(f"FAIL {name} ({took:.1f}s)")
                for p in problems:
                    print(indent(p, "  - ") if "\n" not in p else "  - " + p)
            else:
                passed += 1
                print(f"PASS {name} ({took:.1f}s)" + (f": {notes[0]}" if notes else ""))
                notes = notes[1:]
            for n in notes:
                print(f"       {n}")
            sys.stdout.flush()
    print(f"infra: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
