//! No credential, session token or secret value reaches the logs or the report: a full run of
//! the binary at debug level, with every secret it handles known to the test, then a grep.

mod support;

use std::process::Command;

use serde_json::json;
use support::fault_front::FaultFront;
use support::*;

fn between<'a>(text: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    text.split(open).skip(1).filter_map(|rest| rest.split(close).next()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_run_logs_and_reports_no_secret() {
    let moto = moto_url();
    let account = account_id("secrets", 1);
    let bucket = bucket_name("secrets");
    create_bucket(&moto, &bucket).await;
    let (iam, named) = (unique("iam"), unique("bysecret"));
    for id in [&iam, &named] {
        create_cluster(
            &moto,
            &account,
            "us-east-1",
            ClusterSeed { id, node_type: "ra3.xlplus", db_name: "dev", tags: &[] },
        )
        .await;
    }
    let secret_arn = format!("arn:aws:secretsmanager:us-east-1:{account}:secret:registry-reader-AbCdEf");
    set_knobs(&account, &named, json!({"secrets": {secret_arn.clone(): "registry_reader"}})).await;
    // STS goes through the front, which keeps moto's answers: the assumed roles' secrets.
    let front = FaultFront::start(&moto, vec![]).await;
    let config = json!({
        "output": {"bucket": bucket}, "roleName": "Reader", "externalId": "ext-id-not-secret",
        "sources": [{"accountId": account, "clusters": [
            {"region": "us-east-1", "clusterIdentifier": iam},
            {"region": "us-east-1", "clusterIdentifier": named, "secretArn": secret_arn}
        ]}]
    });
    let (function_secret, function_token) = ("function-SECRET-4f9a1c", "function-SESSION-TOKEN-77be02");
    let out = Command::new(env!("CARGO_BIN_EXE_redshift-registry"))
        .args(["--event", &format!("{}/events/scheduled.json", repo_root().display())])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "debug")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_ACCESS_KEY_ID", "AKIAFUNCTIONKEY00001")
        .env("AWS_SECRET_ACCESS_KEY", function_secret)
        .env("AWS_SESSION_TOKEN", function_token)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &moto)
        .env("AWS_ENDPOINT_URL_STS", &front.url)
        .env("AWS_ENDPOINT_URL_REDSHIFT_DATA", emulator_url())
        .env("AWS_ENDPOINT_URL_REDSHIFT_SERVERLESS", emulator_url())
        .env("REGISTRY_S3_FORCE_PATH_STYLE", "true")
        .env("REGISTRY_CONFIG", config.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("the report");
    assert_eq!(report["status"], "succeeded", "{report:#}");
    assert!(stderr.lines().count() > 20, "debug logs were captured");
    let stored = String::from_utf8(get_object(&moto, &bucket, report["reportKey"].as_str().unwrap()).await).unwrap();

    let responses: String =
        front.seen().iter().filter(|s| s.action == "AssumeRole").map(|s| s.response.clone()).collect();
    let mut secrets: Vec<String> = vec![function_secret.into(), function_token.into()];
    for (open, close) in [("<SecretAccessKey>", "</SecretAccessKey>"), ("<SessionToken>", "</SessionToken>")] {
        secrets.extend(between(&responses, open, close).into_iter().map(str::to_string));
    }
    assert_eq!(secrets.len(), 2 + 2, "the assumed role's secret and token were captured");
    for secret in &secrets {
        assert!(secret.len() >= 16);
        for (name, text) in [("logs", &stderr), ("report", &stdout), ("stored report", &stored)] {
            assert!(!text.contains(secret.as_str()), "a secret value appears in the {name}");
        }
    }
}
