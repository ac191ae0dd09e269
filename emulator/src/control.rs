//! The emulator's state, and the control API tests and the demo use:
//!
//! - `GET  /_emulator/health`
//! - `POST /_emulator/warehouses` `{"target": "sales", "databases": [{"name": "dev", "sql": "..."}]}`
//!   replaces every database of a cluster or workgroup with fresh ones set up by fixture SQL;
//! - `PUT  /_emulator/targets/{target}/knobs` sets the knobs of [`Knobs`] for that target;
//! - `GET  /_emulator/targets/{target}/counters` returns calls per operation for that target,
//!   and `maxRunningStatements`, the most statements it ran at once;
//! - `POST /_emulator/workgroups` registers a Serverless workgroup (see `serverless.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::http::{text_reply, AwsError, Reply};
use crate::pg::Postgres;
use crate::serverless::Workgroup;
use crate::statements::Statements;

/// Behaviour of one cluster or workgroup, for tests and benchmarks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Knobs {
    /// Added to every call that concerns the target.
    pub latency_ms: u64,
    /// How long every statement runs before it touches PostgreSQL.
    pub statement_ms: u64,
    /// Statements whose SQL matches this regex run `slow_sql_ms` longer (a "hung" statement).
    pub slow_sql: Option<String>,
    pub slow_sql_ms: u64,
    /// Rows per GetStatementResult page (default 1000).
    pub page_size: Option<usize>,
    /// Share (0..1) of calls answered with ThrottlingException.
    pub throttle_rate: f64,
    /// The next N ExecuteStatement/BatchExecuteStatement calls fail with ActiveStatementsExceededException.
    pub active_statements_exceeded: u32,
    /// Statements whose SQL matches this regex end FAILED.
    pub fail_sql: Option<String>,
    /// Statements on this database end FAILED.
    pub fail_database: Option<String>,
    /// Every call is refused with AccessDeniedException.
    pub access_denied: bool,
    /// The database user of the IAM identity (default `IAMR:DataRegistryRedshiftReader`).
    pub iam_user: Option<String>,
    /// Secrets Manager ARN → database user, for SecretArn authentication.
    pub secrets: HashMap<String, String>,
}

#[derive(Default)]
pub struct TargetState {
    pub knobs: Knobs,
    pub counters: BTreeMap<String, u64>,
    pub running: Arc<Running>,
}

/// Statements of a target running at once: now and at the most, so tests can see parallelism.
#[derive(Default)]
pub struct Running {
    now: AtomicU64,
    max: AtomicU64,
}

impl Running {
    pub fn start(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }
    pub fn end(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Emulator {
    pub pg: Postgres,
    pub statements: Statements,
    pub targets: Mutex<HashMap<String, TargetState>>,
    pub workgroups: Mutex<Vec<Workgroup>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WarehouseSpec {
    target: String,
    databases: Vec<DatabaseSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseSpec {
    name: String,
    #[serde(default)]
    sql: String,
}

impl Emulator {
    pub fn new(pg: Postgres) -> Self {
        Self {
            pg,
            statements: Statements::default(),
            targets: Mutex::new(HashMap::new()),
            workgroups: Mutex::new(Vec::new()),
        }
    }

    pub fn running(&self, target: &str) -> Arc<Running> {
        self.targets.lock().unwrap().entry(target.to_string()).or_default().running.clone()
    }

    /// Counts the call, then applies the target's latency and call faults.
    pub async fn enter(&self, target: &str, operation: &str) -> Result<Knobs, AwsError> {
        let (knobs, active_exceeded) = {
            let mut targets = self.targets.lock().unwrap();
            let t = targets.entry(target.to_string()).or_default();
            *t.counters.entry(operation.to_string()).or_default() += 1;
            let starts_statement = matches!(operation, "ExecuteStatement" | "BatchExecuteStatement");
            let exceeded = starts_statement && t.knobs.active_statements_exceeded > 0;
            if exceeded {
                t.knobs.active_statements_exceeded -= 1;
            }
            (t.knobs.clone(), exceeded)
        };
        if knobs.latency_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(knobs.latency_ms)).await;
        }
        if knobs.access_denied {
            return Err(AwsError {
                status: 400,
                code: "AccessDeniedException",
                message: format!("User is not authorized to access {target}: not authorized to perform redshift:GetClusterCredentialsWithIAM"),
            });
        }
        if knobs.throttle_rate > 0.0 && fastrand::f64() < knobs.throttle_rate {
            return Err(AwsError { status: 400, code: "ThrottlingException", message: "Rate exceeded".into() });
        }
        if active_exceeded {
            return Err(AwsError {
                status: 400,
                code: "ActiveStatementsExceededException",
                message: "Active statements exceeded the allowed quota (200).".into(),
            });
        }
        Ok(knobs)
    }

    pub async fn control(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        let bad = |e: String| text_reply(StatusCode::BAD_REQUEST, json!({"error": e}).to_string());
        let parts: Vec<&str> = path.split('/').collect();
        match (method, parts.as_slice()) {
            ("GET", ["health"]) => text_reply(StatusCode::OK, "\"ok\"".into()),
            ("POST", ["warehouses"]) => {
                let spec: WarehouseSpec = match serde_json::from_slice(body) {
                    Ok(s) => s,
                    Err(e) => return bad(format!("warehouse spec: {e}")),
                };
                let databases: Vec<(String, String)> = spec.databases.into_iter().map(|d| (d.name, d.sql)).collect();
                match self.pg.create_warehouse(&spec.target, &databases).await {
                    Ok(()) => text_reply(StatusCode::OK, json!({"target": spec.target}).to_string()),
                    Err(e) => bad(e),
                }
            }
            ("PUT", ["targets", target, "knobs"]) => match serde_json::from_slice::<Knobs>(body) {
                Ok(knobs) => {
                    let invalid = [&knobs.fail_sql, &knobs.slow_sql]
                        .into_iter()
                        .flatten()
                        .find_map(|p| regex::Regex::new(p).err());
                    if let Some(e) = invalid {
                        return bad(format!("knob regex: {e}"));
                    }
                    self.targets.lock().unwrap().entry(target.to_string()).or_default().knobs = knobs;
                    text_reply(StatusCode::OK, "{}".into())
                }
                Err(e) => bad(format!("knobs: {e}")),
            },
            ("GET", ["targets", target, "counters"]) => {
                let mut counters = BTreeMap::new();
                if let Some(t) = self.targets.lock().unwrap().get(*target) {
                    counters = t.counters.clone();
                    counters.insert("maxRunningStatements".to_string(), t.running.max.load(Ordering::SeqCst));
                }
                text_reply(StatusCode::OK, serde_json::to_string(&counters).unwrap())
            }
            ("POST", ["workgroups"]) => match serde_json::from_slice::<Workgroup>(body) {
                Ok(w) => {
                    let mut all = self.workgroups.lock().unwrap();
                    all.retain(|x| !(x.region == w.region && x.workgroup_name == w.workgroup_name));
                    all.push(w);
                    text_reply(StatusCode::OK, "{}".into())
                }
                Err(e) => bad(format!("workgroup: {e}")),
            },
            _ => text_reply(
                StatusCode::NOT_FOUND,
                json!({"error": format!("no control route {method} /_emulator/{path}")}).to_string(),
            ),
        }
    }
}
