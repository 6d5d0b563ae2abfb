//! `cargo lambda deploy` as docs/deploy.md offers it: new code for a function the SAM stack
//! created, run for real against moto's Lambda API. The function exists as the stack made it
//! (arm64, memory, timeout, environment, role); deploying a new build by its ARN (the stack's
//! output) replaces the code and leaves the stack's configuration alone.
//!
//! The stack's side is set up with the venv's boto3 (the workspace has no IAM or Lambda SDK, and
//! needs none); cargo-lambda is the venv's, as in `cargo xtask test`.

use std::path::PathBuf;
use std::process::Command;

use costop_bed::Moto;
use serde_json::Value;

fn venv_bin(tool: &str) -> PathBuf {
    costop_bed::moto::venv_dir().join("bin").join(tool)
}

/// Run the venv's python on `script` against moto; its stdout as JSON.
fn python(moto: &Moto, script: &str) -> Value {
    let out = Command::new(venv_bin("python"))
        .args(["-c", script, &moto.endpoint_url()])
        .envs(credentials())
        .output()
        .expect("run the venv's python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

/// moto accepts any credentials; none may come from the machine.
fn credentials() -> [(&'static str, &'static str); 4] {
    [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_CONFIG_FILE", "/dev/null"),
    ]
}

/// The keeper as the stack creates it (infra/template.yaml: arm64, 512 MB, 300 s).
const CREATE: &str = r#"
import boto3, io, json, sys, zipfile
url = sys.argv[1]
iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1")
role = iam.create_role(RoleName="costop-KeeperFunctionRole", AssumeRolePolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}))["Role"]["Arn"]
code = io.BytesIO()
with zipfile.ZipFile(code, "w") as z:
    z.writestr("bootstrap", "the stack's first build")
fn = boto3.client("lambda", endpoint_url=url, region_name="us-east-1").create_function(
    FunctionName="costop-KeeperFunction-1A2B3C", Runtime="provided.al2023", Handler="bootstrap",
    Role=role, Code={"ZipFile": code.getvalue()}, Architectures=["arm64"], MemorySize=512,
    Timeout=300, Environment={"Variables": {"COSTOP_CLUSTERS": "prod", "COSTOP_STANDBY_WATCH_SECONDS": "240"}})
print(json.dumps(fn, default=str))
"#;

const DESCRIBE: &str = r#"
import boto3, json, sys
fn = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1").get_function_configuration(
    FunctionName="costop-KeeperFunction-1A2B3C")
print(json.dumps(fn, default=str))
"#;

/// What the stack owns and a code update must not touch.
const STACK_OWNED: [&str; 7] = [
    "Role",
    "Runtime",
    "Handler",
    "MemorySize",
    "Timeout",
    "Environment",
    "Architectures",
];

#[test]
fn cargo_lambda_deploy_replaces_the_code_of_a_stack_function_and_keeps_its_configuration() {
    let moto = Moto::start().expect("moto starts");
    let before = python(&moto, CREATE);
    let arn = before["FunctionArn"].as_str().expect("an ARN").to_string();

    // A new build: any executable will do for the API (cargo-lambda zips it as `bootstrap`);
    // a real one is `target/lambda/costop-keeper/bootstrap` from `cargo lambda build --arm64`.
    let dir = tempfile::tempdir().expect("temp dir");
    let binary = dir.path().join("bootstrap");
    std::fs::copy("/bin/true", &binary).expect("an executable to deploy");
    let out = Command::new(venv_bin("cargo-lambda"))
        .args(["lambda", "deploy", "--endpoint-url", &moto.endpoint_url()])
        .args(["--region", "us-east-1", "--binary-path"])
        .arg(&binary)
        .arg(&arn)
        .envs(credentials())
        .output()
        .expect("run cargo lambda deploy");
    assert!(
        out.status.success(),
        "cargo lambda deploy failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let after = python(&moto, DESCRIBE);
    assert_ne!(
        after["CodeSha256"], before["CodeSha256"],
        "the code was replaced"
    );
    for key in STACK_OWNED {
        assert_eq!(
            after[key], before[key],
            "{key} is the stack's and stays as it was"
        );
    }
}
