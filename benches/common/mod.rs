//! What the benches share: the local stack (moto, the Data API emulator), seeding warehouses in
//! both, the release binary run as a child process whose peak RSS wait4 reads, and the stack's
//! own CPU time.
#![allow(dead_code)] // each bench uses a different part of this module

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use serde_json::{json, Value};

// The tests' view of the local stack: where its services are and where the repository is.
#[path = "../../tests/support/mod.rs"]
mod support;
pub use support::{emulator_url, moto_url, repo_root};

pub const READER: &str = "IAMR:DataRegistryRedshiftReader";
/// The function's own key: moto's default account, as in the tests.
pub const FUNCTION_KEY: (&str, &str) = ("AKIATESTFUNCTION00", "function-secret");

pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The release binary: `var` when set, else target/release/redshift-registry (`make bench` and
/// `make bench-org` build it first).
pub fn release_binary(var: &str) -> PathBuf {
    let binary =
        std::env::var(var).map(PathBuf::from).unwrap_or_else(|_| repo_root().join("target/release/redshift-registry"));
    assert!(binary.exists(), "{} missing: cargo build --release --bin redshift-registry", binary.display());
    binary
}

pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The function's own credentials, against moto.
pub async fn base_config(moto: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(moto)
        .credentials_provider(Credentials::new(FUNCTION_KEY.0, FUNCTION_KEY.1, None, None, "bench"))
        .load()
        .await
}

pub fn s3_client(base: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(base).force_path_style(true).build())
}

/// A call to the emulator's control API (`/_emulator/{path}`): the answer's JSON.
pub async fn emulator_call(emulator: &str, method: hyper::Method, path: &str, body: Value) -> Result<Value, String> {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let body = if body.is_null() { String::new() } else { body.to_string() };
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("{emulator}/_emulator/{path}"))
        .body(Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let res = client.request(req).await.map_err(|e| e.to_string())?;
    let status = res.status();
    let bytes = res.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    if !status.is_success() {
        return Err(format!("{status} {}", String::from_utf8_lossy(&bytes)));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("{path}: {e}"))
}

/// Sets the emulator's knobs of a cluster (replacing the ones it had).
pub async fn set_knobs(emulator: &str, account: &str, cluster: &str, knobs: Value) -> Result<(), String> {
    let path = format!("accounts/{account}/targets/{cluster}/knobs");
    emulator_call(emulator, hyper::Method::PUT, &path, knobs).await.map(drop)
}

/// The emulator's counters of a cluster since it started: calls per operation,
/// `<Operation>Bytes` where it counts them, and `maxRunningStatements`.
pub async fn counters(emulator: &str, account: &str, cluster: &str) -> Result<BTreeMap<String, u64>, String> {
    let path = format!("accounts/{account}/targets/{cluster}/counters");
    let value = emulator_call(emulator, hyper::Method::GET, &path, Value::Null).await?;
    let map = value.as_object().ok_or_else(|| format!("counters of {cluster}: {value}"))?;
    Ok(map.iter().filter_map(|(k, v)| Some((k.clone(), v.as_u64()?))).collect())
}

/// A cluster in moto's control plane, in `account`; one made by an earlier run is kept.
pub async fn register_cluster(base: &SdkConfig, account: &str, region: &str, cluster: &str) -> Result<(), String> {
    let conf = support::assumed_config(base, account, region).await?;
    let created = aws_sdk_redshift::Client::new(&conf)
        .create_cluster()
        .cluster_identifier(cluster)
        .node_type("ra3.xlplus")
        .db_name("dev")
        .master_username("admin")
        .master_user_password("Passw0rd!")
        .cluster_type("single-node")
        .tags(aws_sdk_redshift::types::Tag::builder().key("team").value("data").build())
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_cluster_already_exists_fault()) => Ok(()),
        Err(e) => Err(format!("CreateCluster: {e:?}")),
    }
}

/// The emulator's databases of a cluster: replaces what it had with one database `dev` set up by
/// `sql` (as superuser).
pub async fn create_warehouse(emulator: &str, account: &str, cluster: &str, sql: &str) -> Result<(), String> {
    let spec = json!({"accountId": account, "target": cluster, "databases": [{"name": "dev", "sql": sql}]});
    let mut attempt = 0;
    loop {
        match emulator_call(emulator, hyper::Method::POST, "warehouses", spec.clone()).await {
            Ok(_) => return Ok(()),
            Err(_) if attempt < 3 => attempt += 1,
            Err(e) => return Err(format!("emulator warehouse {cluster} of {account}: {e}")),
        }
    }
}

/// One warehouse: a cluster in moto's control plane (in the account, through AssumeRole) and its
/// database in the emulator.
pub async fn seed_warehouse(
    base: &SdkConfig,
    emulator: &str,
    account: &str,
    region: &str,
    cluster: &str,
    sql: &str,
) -> Result<(), String> {
    register_cluster(base, account, region, cluster).await?;
    create_warehouse(emulator, account, cluster, sql).await
}

/// One SQL through the emulator's Data API on database `dev` of a cluster, as the reader would
/// run it (IAM identity of `account`): the first row's fields as text.
pub async fn data_api_row(
    base: &SdkConfig,
    emulator: &str,
    account: &str,
    cluster: &str,
    sql: &str,
) -> Result<Vec<String>, String> {
    use aws_sdk_redshiftdata::error::ProvideErrorMetadata;
    use aws_sdk_redshiftdata::types::{Field, StatusString};
    let conf = support::assumed_config(base, account, "us-east-1").await?;
    let api = aws_sdk_redshiftdata::Client::from_conf(
        aws_sdk_redshiftdata::config::Builder::from(&conf).endpoint_url(emulator).build(),
    );
    fn err<E: ProvideErrorMetadata + std::error::Error>(e: &E) -> String {
        match (e.code(), e.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => aws_sdk_redshiftdata::error::DisplayErrorContext(e).to_string(),
        }
    }
    let id = api
        .execute_statement()
        .cluster_identifier(cluster)
        .database("dev")
        .sql(sql)
        .send()
        .await
        .map_err(|e| err(&e))?
        .id
        .ok_or("ExecuteStatement: no Id")?;
    let until = Instant::now() + Duration::from_secs(600);
    loop {
        let d = api.describe_statement().id(&id).send().await.map_err(|e| err(&e))?;
        match d.status() {
            Some(StatusString::Finished) => break,
            Some(StatusString::Failed | StatusString::Aborted) => {
                return Err(d.error().unwrap_or("failed").to_string())
            }
            _ if Instant::now() > until => return Err("no answer in 10 minutes".into()),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let out = api.get_statement_result().id(&id).send().await.map_err(|e| err(&e))?;
    let row = out.records().first().ok_or("no row")?;
    Ok(row
        .iter()
        .map(|f| match f {
            Field::LongValue(n) => n.to_string(),
            Field::StringValue(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .collect())
}

/// Deletes every object of a bucket, then the bucket: moto keeps every object in memory.
pub async fn delete_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    let mut token = None;
    loop {
        let page = s3.list_objects_v2().bucket(bucket).set_continuation_token(token).send().await.expect("list");
        let ids: Vec<_> = page
            .contents()
            .iter()
            .filter_map(|o| aws_sdk_s3::types::ObjectIdentifier::builder().key(o.key()?).build().ok())
            .collect();
        if !ids.is_empty() {
            let delete = aws_sdk_s3::types::Delete::builder().set_objects(Some(ids)).build().unwrap();
            s3.delete_objects().bucket(bucket).delete(delete).send().await.expect("DeleteObjects");
        }
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let _ = s3.delete_bucket().bucket(bucket).send().await;
}

/// How the function is run: the binary and its environment, as a deployed function has them
/// (the endpoints of the local stack in the standard variables), and where its stderr goes.
pub struct Function {
    pub binary: PathBuf,
    pub env: Vec<(&'static str, String)>,
    pub log: File,
}

impl Function {
    /// The binary with the config at `config` (REGISTRY_CONFIG_URI), its stderr appended to `log`.
    pub fn new(binary: PathBuf, moto: &str, emulator: &str, config: &Path, log: &Path) -> Self {
        Self {
            binary,
            env: vec![
                ("PATH", std::env::var("PATH").unwrap_or_default()),
                ("HOME", std::env::var("HOME").unwrap_or_default()),
                ("AWS_ENDPOINT_URL", moto.to_string()),
                ("AWS_ENDPOINT_URL_REDSHIFT_DATA", emulator.to_string()),
                ("AWS_ENDPOINT_URL_REDSHIFT_SERVERLESS", emulator.to_string()),
                ("AWS_ACCESS_KEY_ID", FUNCTION_KEY.0.into()),
                ("AWS_SECRET_ACCESS_KEY", FUNCTION_KEY.1.into()),
                ("AWS_REGION", "us-east-1".into()),
                ("AWS_DEFAULT_REGION", "us-east-1".into()),
                ("REGISTRY_S3_FORCE_PATH_STYLE", "true".into()),
                ("REGISTRY_CONFIG_URI", config.display().to_string()),
            ],
            log: std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file"),
        }
    }

    /// Runs the binary on `event`, its stdout to `stdout`, and reaps it with wait4 to read its
    /// peak RSS. Blocking: call from spawn_blocking.
    pub fn run(&self, event: &Path, stdout: &Path) -> ChildRun {
        let started = Instant::now();
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--event")
            .arg(event)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(File::create(stdout).expect("stdout file"))
            .stderr(self.log.try_clone().expect("log file"));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{}: {e}", self.binary.display()));
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: rusage is plain data; wait4 fills it for our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            if r == pid {
                break;
            }
            let err = std::io::Error::last_os_error();
            assert_eq!(err.raw_os_error(), Some(libc::EINTR), "wait4: {err}");
        }
        drop(child); // reaped above
        let exit = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -libc::WTERMSIG(status) };
        let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
        let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
        ChildRun { wall: started.elapsed(), exit, cpu, peak_rss_kib: usage.ru_maxrss as u64 }
    }
}

/// One child process: wall time, exit code, and from wait4 its CPU time (user + system) and peak
/// RSS (KiB).
pub struct ChildRun {
    pub wall: Duration,
    pub exit: i32,
    pub cpu: Duration,
    pub peak_rss_kib: u64,
}

/// CPU seconds (user + system) of a process of the local stack, from /proc.
fn cpu_seconds(service: &str) -> Option<f64> {
    let pid = std::fs::read_to_string(repo_root().join(format!(".run/{service}.pid"))).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
}

/// Resident memory (MiB) of a process of the local stack, from /proc.
pub fn rss_mib(service: &str) -> Option<f64> {
    let pid = std::fs::read_to_string(repo_root().join(format!(".run/{service}.pid"))).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).ok()?;
    let kib: u64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
    Some(mib(kib))
}

/// CPU seconds of moto and of the emulator (not PostgreSQL), when their pid files are there.
pub struct StackCpu(pub Option<f64>, pub Option<f64>);

impl StackCpu {
    pub fn now() -> Self {
        Self(cpu_seconds("moto"), cpu_seconds("emulator"))
    }

    pub fn since(&self, start: &Self) -> String {
        let d = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| format!("{:.1} s", a - b)).unwrap_or("?".into());
        format!("moto {}, emulator {}", d(self.0, start.0), d(self.1, start.1))
    }

    pub fn moto(&self, start: &Self) -> Option<f64> {
        self.0.zip(start.0).map(|(a, b)| a - b)
    }

    pub fn emulator(&self, start: &Self) -> Option<f64> {
        self.1.zip(start.1).map(|(a, b)| a - b)
    }
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
