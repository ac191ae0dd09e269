//! The function as Lambda runs it: the binary under `cargo lambda watch` (the Runtime API),
//! invoked with `aws lambda invoke`; and the same binary outside Lambda (`--event FILE`, stdin).
//! Endpoints reach it only through the standard AWS_ENDPOINT_URL_<SERVICE> variables, and the
//! config through REGISTRY_CONFIG_URI pointing at S3. Each test works in an account of its own,
//! never in the demo's (111111111111, 222222222222), so `make demo` after `make test` shows
//! only the demo organisation.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

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

/// A cluster in the test's own `account`, named in the config.
async fn seed(moto: &str, bucket: &str, account: &str, cluster: &str) -> String {
    ensure_bucket(moto, bucket).await;
    ensure_cluster(
        moto,
        account,
        "us-east-1",
        ClusterSeed { id: cluster, node_type: "ra3.xlplus", db_name: "dev", tags: &[("env", "test")] },
    )
    .await;
    let config = json!({
        "output": {"bucket": bucket, "prefix": "registry/"},
        "roleName": "DataRegistryRedshiftReader",
        "sources": [{"accountId": account, "clusters": [{"region": "us-east-1", "clusterIdentifier": cluster}]}]
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

/// events/manual.json, narrowed to `account` instead of the demo's account it names.
fn manual_event_for(account: &str) -> std::path::PathBuf {
    let mut event: Value =
        serde_json::from_slice(&std::fs::read(repo_root().join("events/manual.json")).unwrap()).unwrap();
    event["accounts"] = json!([account]);
    let path = tempdir_file(&format!("manual-{account}.json"));
    std::fs::write(&path, event.to_string()).unwrap();
    path
}

/// The metrics records (lines with `_aws`) in some output.
fn emf_records(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_lambda_invoke_against_cargo_lambda_watch() {
    let moto = moto_url();
    let bucket = "rr-lambda-invoke";
    let account = account_id("lambda_invoke", 1);
    let config_uri = seed(&moto, bucket, &account, "invoke-lambda").await;
    let port = free_port();

    // The function's stdout, where its metrics record goes.
    let stdout_path = tempdir_file("lambda-stdout.log");
    let mut cmd = Command::new("cargo");
    cmd.args(["lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
        .current_dir(repo_root())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(Stdio::null());
    function_env(&mut cmd, &moto, &config_uri);
    // As the template's LogLevel may be: the record must still reach the log.
    cmd.env("AWS_LAMBDA_LOG_LEVEL", "WARN");
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

    // The README's dry-run line, as a user pastes it.
    let dry = readme_invoke(port);
    assert_eq!((dry["dryRun"].as_bool(), dry["status"].as_str()), (Some(true), Some("succeeded")), "{dry:#}");

    let report = aws_lambda_invoke(port, &manual_event_for(&account), "lambda-out.json");
    assert_eq!(report["trigger"], "manual");
    assert_eq!(report["status"], "succeeded", "{report:#}");
    assert_eq!(report["scope"]["accounts"], json!([account]));
    assert_eq!(cluster_ids(&report), vec!["invoke-lambda".to_string()], "{report:#}");
    assert_eq!(report["counts"]["databases"], 1, "{report:#}");
    let key = report["reportKey"].as_str().expect("report written");
    let stored: Value = serde_json::from_slice(&get_object(&moto, bucket, key).await).unwrap();
    assert_eq!(stored["runId"], report["runId"]);

    // The run's metrics record is on the function's stdout, tagged at the configured level.
    let started = Instant::now();
    let record = loop {
        let out = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        if let Some(r) = emf_records(&out).into_iter().find(|r| r["RunId"] == report["runId"]) {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no metrics record on stdout:\n{out}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(record["_aws"]["CloudWatchMetrics"][0]["Namespace"], "RedshiftRegistry", "{record}");
    assert_eq!(record["level"], "WARN", "{record}");
    assert_eq!(record["Status"], "succeeded", "{record}");
    assert_eq!(record["RunsNotSucceeded"], json!(0), "{record}");
    assert_eq!(record["Databases"], json!(1), "{record}");

    // events/sqs.json, its shard pointed at this account, of a run whose plan the planner wrote:
    // a batch response, no item failed, and the shard's report where the summary will look.
    let mut event: Value =
        serde_json::from_slice(&std::fs::read(repo_root().join("events/sqs.json")).unwrap()).unwrap();
    let mut shard: Value = serde_json::from_str(event["Records"][0]["body"].as_str().unwrap()).unwrap();
    // Planned now, after the manual run above: an older run's shard would yield to it.
    shard["runId"] = json!(redshift_registry::run_id::RunId::new().to_string());
    let body = shard.to_string().replace("111111111111", &account);
    event["Records"][0]["body"] = json!(body);
    let shard: Value = serde_json::from_str(&body).unwrap();
    let plan = json!({
        "apiVersion": "redshift-registry/v1", "kind": "RunPlan", "runId": shard["runId"],
        "startedAt": "2026-11-27T07:00:00Z", "trigger": "scheduled", "dryRun": false,
        "shards": [{"shardId": shard["shardId"], "accountId": account, "region": "us-east-1"}]
    });
    let plan_key = format!("registry/runs/{}/plan.json", shard["runId"].as_str().unwrap());
    put_object(&moto, bucket, &plan_key, plan.to_string().into_bytes()).await;
    let sqs_event = tempdir_file("sqs-event.json");
    std::fs::write(&sqs_event, event.to_string()).unwrap();
    let batch = aws_lambda_invoke(port, &sqs_event, "lambda-sqs-out.json");
    assert_eq!(batch, json!({"batchItemFailures": []}));
    let key = format!("runs/{}/shards/{}.json", shard["runId"].as_str().unwrap(), shard["shardId"].as_str().unwrap());
    let keys = list_keys(&moto, bucket, "").await;
    let written = keys.iter().find(|k| k.ends_with(&key)).unwrap_or_else(|| panic!("{key} not in {keys:?}"));
    let shard_report: Value = serde_json::from_slice(&get_object(&moto, bucket, written).await).unwrap();
    assert_eq!(shard_report["report"]["status"], "succeeded", "{shard_report:#}");
    assert_eq!(cluster_ids(&shard_report["report"]), vec!["invoke-lambda".to_string()]);

    // A malformed payload is a function error with its type and message.
    let (status, error) = post(port, r#"{"dryRun": "yes"}"#).await;
    assert_ne!(status, 200);
    assert_eq!(error["errorType"], "InvalidEvent");
    assert!(error["errorMessage"].as_str().unwrap().contains("expected a boolean"), "{error}");
}

/// `aws lambda invoke` of the function under `cargo lambda watch` on `port`: its response.
fn aws_lambda_invoke(port: u16, payload: &std::path::Path, out_name: &str) -> Value {
    let out = tempdir_file(out_name);
    let status = Command::new("aws")
        .env("PATH", path_with_venv())
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .args(["lambda", "invoke", "--endpoint-url", &format!("http://127.0.0.1:{port}"), "--no-sign-request"])
        .args(["--cli-read-timeout", "300", "--function-name", "redshift-registry"])
        .args(["--payload", &format!("fileb://{}", payload.display())])
        .arg(&out)
        .status()
        .expect("aws cli (scripts/install.sh installs it)");
    assert!(status.success(), "aws lambda invoke failed");
    serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
}

/// README step 7's `aws lambda invoke` line, run from the repository as written there, with the
/// local endpoint added and the function name and output file filled in.
fn readme_invoke(port: u16) -> Value {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let line =
        readme.lines().find(|l| l.starts_with("aws lambda invoke --function-name")).expect("README's invoke line");
    let out = tempdir_file("readme-out.json");
    let words: Vec<String> = line
        .replace("<FunctionName output>", "redshift-registry")
        .split_whitespace()
        .map(|w| if w == "out.json" { out.display().to_string() } else { w.to_string() })
        .collect();
    let status = Command::new(&words[0])
        .args(&words[1..])
        .args(["--endpoint-url", &format!("http://127.0.0.1:{port}"), "--no-sign-request"])
        .current_dir(repo_root())
        .env("PATH", path_with_venv())
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .status()
        .expect("aws cli (scripts/install.sh installs it)");
    assert!(status.success(), "{line}");
    serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
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
    let account = account_id("cli_invoke", 1);
    let config_uri = seed(&moto, bucket, &account, "invoke-cli").await;
    let bin = env!("CARGO_BIN_EXE_redshift-registry");

    let mut cmd = Command::new(bin);
    cmd.args(["--event", &format!("{}/events/scheduled.json", repo_root().display())]);
    function_env(&mut cmd, &moto, &config_uri);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is the report, and only the report");
    assert_eq!(report["trigger"], "scheduled");
    assert_eq!(cluster_ids(&report), vec!["invoke-cli".to_string()], "{report:#}");
    // stderr: the log, without colours when redirected, and the summary for a person.
    assert!(!stderr.contains("\x1b["), "escape codes in a redirected log:\n{stderr}");
    let run_id = report["runId"].as_str().unwrap();
    assert!(stderr.contains(&format!("run {run_id}: succeeded\n")), "{stderr}");
    assert!(
        stderr.contains(&format!("  account {account} us-east-1: 1 warehouse, 0 datasets, 0 written\n")),
        "{stderr}"
    );
    assert!(stderr.contains("no failures"), "{stderr}");
    assert!(emf_records(&stderr).is_empty(), "metrics only with REGISTRY_EMF=1:\n{stderr}");

    // REGISTRY_EMF=1: the metrics record follows the summary on stderr; stdout is still the report.
    let mut cmd = Command::new(bin);
    cmd.args(["--event", &format!("{}/events/scheduled.json", repo_root().display())]);
    function_env(&mut cmd, &moto, &config_uri);
    let out = cmd.env("REGISTRY_EMF", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is the report, and only the report");
    let records = emf_records(&stderr);
    assert_eq!(records.len(), 1, "{stderr}");
    assert_eq!(records[0]["RunId"], report["runId"]);
    assert_eq!(records[0]["Function"], "redshift-registry");

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
