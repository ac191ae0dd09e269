//! The function as Lambda runs it: the binary under `cargo lambda watch` (the Runtime API),
//! invoked with `aws lambda invoke`; and the same binary outside Lambda (`--event FILE`, stdin).
//! Endpoints reach it only through the standard AWS_ENDPOINT_URL_<SERVICE> variables, and the
//! config through REGISTRY_CONFIG_URI pointing at S3.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const ACCOUNT: &str = "111111111111"; // the account events/manual.json names

/// Environment of the function: per-service endpoints, no global one.
fn function_env(cmd: &mut Command, moto: &str, config_uri: &str) {
    cmd.env_clear()
        .env("PATH", path_with_venv())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("AWS_ENDPOINT_URL_STS", moto)
        .env("AWS_ENDPOINT_URL_REDSHIFT", moto)
        .env("AWS_ENDPOINT_URL_S3", moto)
        .env("AWS_ENDPOINT_URL_REDSHIFT_DATA", emulator_url())
        .env("AWS_ENDPOINT_URL_REDSHIFT_SERVERLESS", emulator_url())
        .env("AWS_ACCESS_KEY_ID", "AKIAFUNCTIONROLE0001")
        .env("AWS_SECRET_ACCESS_KEY", "function-secret-value")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("REGISTRY_S3_FORCE_PATH_STYLE", "true")
        .env("REGISTRY_CONFIG_URI", config_uri);
}

/// A cluster of the test's own in ACCOUNT (which the demo shares), named in the config.
async fn seed(moto: &str, bucket: &str, cluster: &str) -> String {
    ensure_bucket(moto, bucket).await;
    ensure_cluster(
        moto,
        ACCOUNT,
        "us-east-1",
        ClusterSeed { id: cluster, node_type: "ra3.xlplus", db_name: "dev", tags: &[("env", "test")] },
    )
    .await;
    let config = json!({
        "output": {"bucket": bucket, "prefix": "registry/"},
        "roleName": "DataRegistryRedshiftReader",
        "sources": [{"accountId": ACCOUNT, "clusters": [{"region": "us-east-1", "clusterIdentifier": cluster}]}]
    });
    put_object(moto, bucket, "config/registry.json", config.to_string().into_bytes()).await;
    format!("s3://{bucket}/config/registry.json")
}

fn cluster_ids(report: &Value) -> Vec<String> {
    report["accounts"][0]["regions"][0]["warehouses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["clusterIdentifier"].as_str().unwrap().to_string())
        .collect()
}

struct Watch(Child);

impl Drop for Watch {
    fn drop(&mut self) {
        // cargo lambda runs cargo and the function as children: end the whole group.
        let _ = Command::new("kill").arg("--").arg(format!("-{}", self.0.id())).status();
        let _ = self.0.wait();
    }
}

async fn post(port: u16, body: &str) -> (u16, Value) {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req =
        hyper::Request::post(format!("http://127.0.0.1:{port}/2015-03-31/functions/redshift-registry/invocations"))
            .body(Full::new(bytes::Bytes::from(body.to_string())))
            .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_lambda_invoke_against_cargo_lambda_watch() {
    let moto = moto_url();
    let bucket = "rr-lambda-invoke";
    let config_uri = seed(&moto, bucket, "invoke-lambda").await;
    let port = free_port();

    let mut cmd = Command::new("cargo");
    cmd.args(["lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
        .current_dir(repo_root())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    function_env(&mut cmd, &moto, &config_uri);
    cmd.env(
        "CARGO_HOME",
        std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap())),
    );
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let _watch = Watch(cmd.spawn().expect("cargo lambda (scripts/install.sh installs it)"));
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(120), "cargo lambda watch did not listen");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let out = tempdir_file("lambda-out.json");
    let status = Command::new("aws")
        .env("PATH", path_with_venv())
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .args(["lambda", "invoke", "--endpoint-url", &format!("http://127.0.0.1:{port}"), "--no-sign-request"])
        .args(["--cli-read-timeout", "300", "--function-name", "redshift-registry"])
        .args(["--payload", &format!("fileb://{}/events/manual.json", repo_root().display())])
        .arg(&out)
        .status()
        .expect("aws cli (scripts/install.sh installs it)");
    assert!(status.success(), "aws lambda invoke failed");
    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(report["trigger"], "manual");
    assert_eq!(report["status"], "succeeded", "{report:#}");
    assert_eq!(report["scope"]["accounts"], json!([ACCOUNT]));
    assert_eq!(cluster_ids(&report), vec!["invoke-lambda".to_string()], "{report:#}");
    assert_eq!(report["counts"]["databases"], 1, "{report:#}");
    let key = report["reportKey"].as_str().expect("report written");
    let stored: Value = serde_json::from_slice(&get_object(&moto, bucket, key).await).unwrap();
    assert_eq!(stored["runId"], report["runId"]);

    // A malformed payload is a function error with its type and message.
    let (status, error) = post(port, r#"{"dryRun": "yes"}"#).await;
    assert_ne!(status, 200);
    assert_eq!(error["errorType"], "InvalidEvent");
    assert!(error["errorMessage"].as_str().unwrap().contains("expected a boolean"), "{error}");
}

fn tempdir_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rr-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_runs_one_invocation_outside_lambda() {
    let moto = moto_url();
    let bucket = "rr-cli-invoke";
    let config_uri = seed(&moto, bucket, "invoke-cli").await;
    let bin = env!("CARGO_BIN_EXE_redshift-registry");

    let mut cmd = Command::new(bin);
    cmd.args(["--event", &format!("{}/events/scheduled.json", repo_root().display())]);
    function_env(&mut cmd, &moto, &config_uri);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is the report");
    assert_eq!(report["trigger"], "scheduled");
    assert_eq!(cluster_ids(&report), vec!["invoke-cli".to_string()], "{report:#}");

    // The event on stdin; a bad one exits 1 and says why on stderr.
    let mut cmd = Command::new(bin);
    function_env(&mut cmd, &moto, &config_uri);
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"source": "aws.events", "detail-type": "Object Created", "detail": {}}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a scheduled event"), "{stderr}");
    assert!(out.stdout.is_empty());

    // A broken config URI is refused with the variable named.
    let mut cmd = Command::new(bin);
    function_env(&mut cmd, &moto, "s3://only-bucket");
    let out = cmd.arg("--event").arg(format!("{}/events/scheduled.json", repo_root().display())).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("REGISTRY_CONFIG_URI: \"s3://only-bucket\" is not of the form s3://bucket/key"));
}
