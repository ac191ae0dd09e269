//! Shared test support: the local AWS stack (moto, started by scripts/services.sh) and a
//! fault-injecting front for what moto cannot do (deny a role, refuse a region).
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod esm;
pub mod fault_front;
pub mod org;
pub mod organization;
pub mod reading;

use std::path::PathBuf;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use reading::{Recorded, Recorder};
use redshift_registry::aws::{S3Objects, StsPlatform};
use redshift_registry::config::{Config, DeploymentDefaults};
use redshift_registry::event::RunRequest;
use redshift_registry::report::Report;
use redshift_registry::run;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A service URL from the environment or from what scripts/services.sh wrote.
fn service_url(var: &str) -> String {
    if let Ok(url) = std::env::var(var) {
        return url;
    }
    let env = std::fs::read_to_string(repo_root().join(".run/services.env"))
        .expect("the local AWS stack is not running: run `make services` (or `make test`)");
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("export {var}=")))
        .unwrap_or_else(|| panic!("{var} in .run/services.env"))
        .to_string()
}

/// moto: STS, Redshift, S3.
pub fn moto_url() -> String {
    service_url("MOTO_URL")
}

/// The project's Data API and Serverless emulator.
pub fn emulator_url() -> String {
    service_url("EMULATOR_URL")
}

async fn emulator_call(method: hyper::Method, path: &str, body: serde_json::Value) -> serde_json::Value {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("{}/_emulator/{path}", emulator_url()))
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    let res = client.request(req).await.expect("the emulator answers");
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    assert!(status.is_success(), "emulator {path}: {status} {}", String::from_utf8_lossy(&bytes));
    serde_json::from_slice(&bytes).unwrap()
}

/// The account of the function's own credentials (`AKIATESTFUNCTION00`): moto's default account,
/// which the emulator's STS lookup gives for any key that is not an assumed role's.
pub const FUNCTION_ACCOUNT: &str = "123456789012";

/// Replaces the emulated databases of a cluster or workgroup of `account`; each runs its fixture
/// SQL as superuser.
pub async fn create_warehouse(account: &str, target: &str, databases: &[(&str, &str)]) {
    let databases: Vec<_> = databases.iter().map(|(name, sql)| serde_json::json!({"name": name, "sql": sql})).collect();
    let spec = serde_json::json!({"accountId": account, "target": target, "databases": databases});
    emulator_call(hyper::Method::POST, "warehouses", spec).await;
}

pub async fn set_knobs(account: &str, target: &str, knobs: serde_json::Value) {
    emulator_call(hyper::Method::PUT, &format!("accounts/{account}/targets/{target}/knobs"), knobs).await;
}

pub async fn counters(account: &str, target: &str) -> std::collections::BTreeMap<String, u64> {
    let path = format!("accounts/{account}/targets/{target}/counters");
    serde_json::from_value(emulator_call(hyper::Method::GET, &path, serde_json::Value::Null).await).unwrap()
}

pub async fn register_workgroup(account: &str, region: &str, name: &str, namespace: &str, db: &str) {
    emulator_call(
        hyper::Method::POST,
        "workgroups",
        serde_json::json!({"accountId": account, "region": region, "workgroupName": name, "namespaceName": namespace, "dbName": db}),
    )
    .await;
}

/// A 12-digit account id of this test process's own, so tests sharing one long-lived moto
/// never meet, in one run or across runs.
pub fn account_id(test: &str, n: u8) -> String {
    static SALT: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        nanos as u64 ^ u64::from(std::process::id())
    });
    let mut h: u64 = 1469598103934665603 ^ *SALT;
    for b in test.bytes().chain([n]) {
        h = (h ^ u64::from(b)).wrapping_mul(1099511628211);
    }
    format!("{:012}", h % 1_000_000_000_000)
}

/// A cluster or workgroup name of this test process's own: tests running side by side in one
/// account (the function's own, [`FUNCTION_ACCOUNT`]) must not share one.
pub fn unique(base: &str) -> String {
    format!("{base}-{}", &account_id(base, 9)[..6])
}

pub fn bucket_name(test: &str) -> String {
    format!("rr-{}-{}", test.replace('_', "-"), account_id(test, 0))
}

/// The function's own credentials: moto accepts any.
pub async fn base_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("AKIATESTFUNCTION00", "function-secret", None, None, "test"))
        .load()
        .await
}

/// SDK config acting in `account` (moto keys assumed-role credentials to the role's account).
pub async fn account_config(endpoint: &str, account: &str, region: &str) -> SdkConfig {
    assumed_config(&base_config(endpoint).await, account, region).await.expect("moto AssumeRole")
}

/// `base` acting in `account` through the role `Seeder`; the emulator, which asks moto, sees
/// the same account.
pub async fn assumed_config(base: &SdkConfig, account: &str, region: &str) -> Result<SdkConfig, String> {
    let sts = aws_sdk_sts::Client::new(base);
    let role = format!("arn:aws:iam::{account}:role/Seeder");
    let out = sts.assume_role().role_arn(role).role_session_name("seed").send().await.map_err(|e| format!("{e:?}"))?;
    let c = out.credentials().ok_or("no credentials")?;
    Ok(base
        .to_builder()
        .region(Region::new(region.to_string()))
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "seed",
        )))
        .build())
}

pub struct ClusterSeed<'a> {
    pub id: &'a str,
    pub node_type: &'a str,
    pub db_name: &'a str,
    pub tags: &'a [(&'a str, &'a str)],
}

/// A cluster in moto's control plane, and its (empty) databases in the emulator.
pub async fn create_cluster(endpoint: &str, account: &str, region: &str, seed: ClusterSeed<'_>) {
    let (id, db) = (seed.id, seed.db_name);
    try_create_cluster(endpoint, account, region, seed).await.expect("moto CreateCluster");
    create_warehouse(account, id, &[(db, "")]).await;
}

async fn try_create_cluster(
    endpoint: &str,
    account: &str,
    region: &str,
    seed: ClusterSeed<'_>,
) -> Result<(), aws_sdk_redshift::error::SdkError<aws_sdk_redshift::operation::create_cluster::CreateClusterError>> {
    let client = aws_sdk_redshift::Client::new(&account_config(endpoint, account, region).await);
    client
        .create_cluster()
        .cluster_identifier(seed.id)
        .node_type(seed.node_type)
        .db_name(seed.db_name)
        .master_username("admin")
        .master_user_password("Passw0rd!")
        .cluster_type("single-node")
        .set_tags(Some(
            seed.tags.iter().map(|(k, v)| aws_sdk_redshift::types::Tag::builder().key(*k).value(*v).build()).collect(),
        ))
        .send()
        .await
        .map(|_| ())
}

pub async fn pause_cluster(endpoint: &str, account: &str, region: &str, id: &str) {
    let client = aws_sdk_redshift::Client::new(&account_config(endpoint, account, region).await);
    client.pause_cluster().cluster_identifier(id).send().await.expect("moto PauseCluster");
}

pub async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let base = base_config(endpoint).await;
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&base).force_path_style(true).build())
}

pub async fn create_bucket(endpoint: &str, bucket: &str) {
    s3_client(endpoint).await.create_bucket().bucket(bucket).send().await.expect("moto CreateBucket");
}

pub async fn get_object(endpoint: &str, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3_client(endpoint).await.get_object().bucket(bucket).key(key).send().await.expect("GetObject");
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

pub async fn list_keys(endpoint: &str, bucket: &str, prefix: &str) -> Vec<String> {
    let s3 = s3_client(endpoint).await;
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    let mut keys = Vec::new();
    while let Some(page) = pages.next().await {
        keys.extend(page.expect("ListObjectsV2").contents().iter().filter_map(|o| o.key().map(str::to_string)));
    }
    keys
}

pub fn config(json: serde_json::Value) -> Config {
    Config::parse(&json.to_string(), &DeploymentDefaults::default()).expect("a valid test config")
}

/// Points this test process at the local stack through the standard variables, as a deployed
/// function would be: `AWS_ENDPOINT_URL` for STS, Redshift and S3 (moto, or a fault front before
/// it), the Data API and Serverless ones at the emulator. Each test runs in its own process
/// (nextest), so setting the environment here touches no other test.
pub async fn function_config(endpoint: &str) -> SdkConfig {
    let emulator = emulator_url();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ENDPOINT_URL_REDSHIFT_DATA", emulator.as_str()),
        ("AWS_ENDPOINT_URL_REDSHIFT_SERVERLESS", emulator.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIATESTFUNCTION00"),
        ("AWS_SECRET_ACCESS_KEY", "function-secret"),
        ("AWS_REGION", "us-east-1"),
    ] {
        std::env::set_var(k, v);
    }
    std::env::remove_var("AWS_SESSION_TOKEN");
    std::env::remove_var("AWS_PROFILE");
    redshift_registry::aws::load_base_config().await
}

/// Runs the function's logic in-process against `endpoint` with real SDK clients.
pub async fn run_against(endpoint: &str, config: &Config, request: &RunRequest) -> Report {
    let base = function_config(endpoint).await;
    let platform = StsPlatform::new(base.clone());
    let store = S3Objects::new(&base, true);
    run::run(&platform, &store, config, request, redshift_registry::run_id::RunId::new().to_string())
        .await
        .expect("the run starts")
}

/// Discovery and reading only: the report, and the catalogs the outputs would have been given.
pub async fn gather_against(endpoint: &str, config: &Config, request: &RunRequest) -> (Report, Vec<Recorded>) {
    let base = function_config(endpoint).await;
    let platform = StsPlatform::new(base);
    let recorder = Recorder::default();
    let report = run::execute(&platform, &recorder, config, request, format!("test-{}", std::process::id()))
        .await
        .expect("the run starts");
    (report, recorder.catalogs.into_inner().unwrap())
}

/// Creates the cluster unless this account already has it (the demo and these tests share
/// account 111111111111 of a long-lived moto).
pub async fn ensure_cluster(endpoint: &str, account: &str, region: &str, seed: ClusterSeed<'_>) {
    let (id, db) = (seed.id, seed.db_name);
    create_warehouse(account, id, &[(db, "")]).await;
    if let Err(e) = try_create_cluster(endpoint, account, region, seed).await {
        assert!(e.as_service_error().is_some_and(|e| e.is_cluster_already_exists_fault()), "moto CreateCluster: {e:?}");
    }
}

pub async fn ensure_bucket(endpoint: &str, bucket: &str) {
    // Created by a concurrent test or an earlier run: either way it is there.
    let _ = s3_client(endpoint).await.create_bucket().bucket(bucket).send().await;
    s3_client(endpoint).await.head_bucket().bucket(bucket).send().await.expect("bucket exists");
}

pub async fn delete_object(endpoint: &str, bucket: &str, key: &str) {
    s3_client(endpoint).await.delete_object().bucket(bucket).key(key).send().await.expect("DeleteObject");
}

pub async fn put_object(endpoint: &str, bucket: &str, key: &str, body: Vec<u8>) {
    s3_client(endpoint).await.put_object().bucket(bucket).key(key).body(body.into()).send().await.expect("PutObject");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The tools scripts/install.sh put in the project's virtualenv come first on PATH.
pub fn path_with_venv() -> String {
    let venv = std::env::var("REGISTRY_VENV").map(PathBuf::from).unwrap_or_else(|_| repo_root().join(".venv"));
    format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default())
}

pub async fn delete_cluster(endpoint: &str, account: &str, region: &str, id: &str) {
    let client = aws_sdk_redshift::Client::new(&account_config(endpoint, account, region).await);
    client
        .delete_cluster()
        .cluster_identifier(id)
        .skip_final_cluster_snapshot(true)
        .send()
        .await
        .expect("moto DeleteCluster");
}

/// Every object under `prefix` with its bytes.
pub async fn snapshot(endpoint: &str, bucket: &str, prefix: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut all = std::collections::BTreeMap::new();
    for key in list_keys(endpoint, bucket, prefix).await {
        let bytes = get_object(endpoint, bucket, &key).await;
        all.insert(key, bytes);
    }
    all
}

pub async fn resume_cluster(endpoint: &str, account: &str, region: &str, id: &str) {
    let client = aws_sdk_redshift::Client::new(&account_config(endpoint, account, region).await);
    client.resume_cluster().cluster_identifier(id).send().await.expect("moto ResumeCluster");
}
