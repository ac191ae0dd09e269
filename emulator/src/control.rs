//! The emulator's state, and the control API tests and the demo use. Everything belongs to an
//! AWS account, as on AWS: a request acts in the account of its access key (`accounts.rs`), and
//! sees only that account's clusters, workgroups, knobs and counters.
//!
//! - `GET  /_emulator/health`
//! - `POST /_emulator/warehouses`
//!   `{"accountId": "111111111111", "target": "sales", "databases": [{"name": "dev", "sql": "..."}]}`
//!   replaces every database of a cluster or workgroup of that account with fresh ones set up by
//!   fixture SQL;
//! - `PUT  /_emulator/accounts/{account}/targets/{target}/knobs` sets the knobs of [`Knobs`] for
//!   that target; Serverless calls count and take knobs under target `serverless:{region}`;
//! - `GET  /_emulator/accounts/{account}/targets/{target}/counters` returns calls per operation
//!   for that target, `<Operation>Bytes`, the bytes of the response bodies sent for those calls
//!   (errors included), `maxRunningStatements`, the most statements it ran at once, and, by
//!   error code, long polls it refused;
//! - `POST /_emulator/workgroups` registers a Serverless workgroup of an account (see `serverless.rs`).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hyper::body::Body;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::accounts::Accounts;
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
    /// How long each SQL (of a statement, or of a batch, serially) runs before it touches PostgreSQL.
    pub statement_ms: u64,
    /// SQLs matching this regex run `slow_sql_ms` longer (a "hung" statement).
    pub slow_sql: Option<String>,
    pub slow_sql_ms: u64,
    /// Rows per GetStatementResult and GetStatementResultV2 page (default 1000).
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
    /// Results over this many bytes fail as the Data API's 500 MB limit makes them (default 500 MB).
    pub max_result_bytes: Option<u64>,
    /// DescribeStatement reports ResultRows 0 for statements with a result set, rows still
    /// fetchable: ResultRows is known to be unreliable (0 after COPY,
    /// https://github.com/aws/aws-sdk/issues/356); HasResultSet is the documented signal
    /// (https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_DescribeStatement.html).
    pub result_rows_zero: bool,
    /// The next N long polls (DescribeStatement, GetStatementResult or GetStatementResultV2 with
    /// WaitTimeSeconds) answer InternalServerException (HTTP 500) at once while their wait goes
    /// on at the service, holding its place: a request the client saw fail (a dropped
    /// connection, a 5xx on the way) that the service still serves. The SDKs retry a 500.
    pub long_polls_left_waiting: u32,
    /// The next N statements (ExecuteStatement/BatchExecuteStatement) lose their connection
    /// mid-statement and end FAILED, as when the cluster reboots, resizes or enters its
    /// maintenance window, which ends running queries (AWS re:Post,
    /// knowledge-center/rds-redshift-queries-maintenance-window). The Data API passes the
    /// database's error text through DescribeStatement's `Error` (API reference,
    /// API_DescribeStatement.html); libpq words a connection closed under it "SSL SYSCALL error:
    /// EOF detected", which Redshift drivers report with SQLSTATE 08S01. In the knobs a
    /// statement is started with, 1 marks that statement.
    pub connections_lost: u32,
}

fn key(account: &str, target: &str) -> (String, String) {
    (account.to_string(), target.to_string())
}

/// A counted call, what [`Emulator::enter`] counted it as.
struct Counted {
    target: (String, String),
    operation: String,
}

tokio::task_local! {
    /// The call the current request was counted as, so its response's bytes count there too.
    static COUNTED: RefCell<Option<Counted>>;
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
    pub accounts: Accounts,
    pub statements: Statements,
    /// By (account, cluster or workgroup).
    pub targets: Mutex<HashMap<(String, String), TargetState>>,
    pub workgroups: Mutex<Vec<Workgroup>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WarehouseSpec {
    account_id: String,
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
    pub fn new(pg: Postgres, accounts: Accounts) -> Self {
        Self {
            pg,
            accounts,
            statements: Statements::default(),
            targets: Mutex::new(HashMap::new()),
            workgroups: Mutex::new(Vec::new()),
        }
    }

    pub fn running(&self, account: &str, target: &str) -> Arc<Running> {
        self.targets.lock().unwrap().entry(key(account, target)).or_default().running.clone()
    }

    /// Counts the call, then applies the target's latency and call faults.
    pub async fn enter(&self, account: &str, target: &str, operation: &str) -> Result<Knobs, AwsError> {
        let (knobs, active_exceeded) = {
            let mut targets = self.targets.lock().unwrap();
            let t = targets.entry(key(account, target)).or_default();
            *t.counters.entry(operation.to_string()).or_default() += 1;
            // Outside `count_bytes` (no request) there is nothing to remember.
            let _ = COUNTED.try_with(|c| {
                *c.borrow_mut() = Some(Counted { target: key(account, target), operation: operation.to_string() })
            });
            let starts_statement = matches!(operation, "ExecuteStatement" | "BatchExecuteStatement");
            let exceeded = starts_statement && t.knobs.active_statements_exceeded > 0;
            if exceeded {
                t.knobs.active_statements_exceeded -= 1;
            }
            let loses_connection = starts_statement && !exceeded && t.knobs.connections_lost > 0;
            t.knobs.connections_lost -= u32::from(loses_connection);
            let knobs = Knobs { connections_lost: u32::from(loses_connection), ..t.knobs.clone() };
            (knobs, exceeded)
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

    /// Counts a refused long poll under its error code, so that tests see it was refused.
    pub fn count(&self, account: &str, target: &str, code: &str) {
        let mut targets = self.targets.lock().unwrap();
        *targets.entry(key(account, target)).or_default().counters.entry(code.to_string()).or_default() += 1;
    }

    /// Whether this long poll is one of the target's `long_polls_left_waiting`.
    pub fn leaves_long_poll_waiting(&self, account: &str, target: &str) -> bool {
        let mut targets = self.targets.lock().unwrap();
        let knobs = &mut targets.entry(key(account, target)).or_default().knobs;
        let left = knobs.long_polls_left_waiting > 0;
        knobs.long_polls_left_waiting = knobs.long_polls_left_waiting.saturating_sub(1);
        left
    }

    /// Answers one AWS call, then adds the bytes of its response body to `<Operation>Bytes` of the
    /// target it was counted against (calls refused before that, such as an unknown statement id,
    /// count nowhere).
    pub async fn count_bytes(&self, call: impl Future<Output = Reply>) -> Reply {
        let (reply, counted) = COUNTED
            .scope(RefCell::new(None), async {
                let reply = call.await;
                (reply, COUNTED.with(|c| c.borrow_mut().take()))
            })
            .await;
        if let Some(Counted { target, operation }) = counted {
            let bytes = reply.body().size_hint().exact().unwrap_or_default();
            let mut targets = self.targets.lock().unwrap();
            *targets.entry(target).or_default().counters.entry(format!("{operation}Bytes")).or_default() += bytes;
        }
        reply
    }

    pub async fn control(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        let parts: Vec<&str> = path.split('/').collect();
        let outcome = match (method, parts.as_slice()) {
            ("GET", ["health"]) => Ok("\"ok\"".to_string()),
            ("POST", ["warehouses"]) => self.create_warehouse(body).await,
            ("PUT", ["accounts", account, "targets", target, "knobs"]) => self.set_knobs(account, target, body),
            ("GET", ["accounts", account, "targets", target, "counters"]) => Ok(self.counters(account, target)),
            ("POST", ["workgroups"]) => self.register_workgroup(body),
            _ => {
                let error = format!("no control route {method} /_emulator/{path}");
                return text_reply(StatusCode::NOT_FOUND, json!({ "error": error }).to_string());
            }
        };
        match outcome {
            Ok(text) => text_reply(StatusCode::OK, text),
            Err(e) => text_reply(StatusCode::BAD_REQUEST, json!({ "error": e }).to_string()),
        }
    }

    async fn create_warehouse(&self, body: &[u8]) -> Result<String, String> {
        let spec: WarehouseSpec = serde_json::from_slice(body).map_err(|e| format!("warehouse spec: {e}"))?;
        let databases: Vec<(String, String)> = spec.databases.into_iter().map(|d| (d.name, d.sql)).collect();
        self.pg.create_warehouse(&spec.account_id, &spec.target, &databases).await?;
        Ok(json!({"target": spec.target}).to_string())
    }

    fn set_knobs(&self, account: &str, target: &str, body: &[u8]) -> Result<String, String> {
        let knobs: Knobs = serde_json::from_slice(body).map_err(|e| format!("knobs: {e}"))?;
        if let Some(e) =
            [&knobs.fail_sql, &knobs.slow_sql].into_iter().flatten().find_map(|p| regex::Regex::new(p).err())
        {
            return Err(format!("knob regex: {e}"));
        }
        self.targets.lock().unwrap().entry(key(account, target)).or_default().knobs = knobs;
        Ok("{}".into())
    }

    fn counters(&self, account: &str, target: &str) -> String {
        let mut counters = BTreeMap::new();
        if let Some(t) = self.targets.lock().unwrap().get(&key(account, target)) {
            counters = t.counters.clone();
            counters.insert("maxRunningStatements".to_string(), t.running.max.load(Ordering::SeqCst));
        }
        serde_json::to_string(&counters).unwrap()
    }

    fn register_workgroup(&self, body: &[u8]) -> Result<String, String> {
        let w: Workgroup = serde_json::from_slice(body).map_err(|e| format!("workgroup: {e}"))?;
        let mut all = self.workgroups.lock().unwrap();
        all.retain(|x| (&x.account_id, &x.region, &x.workgroup_name) != (&w.account_id, &w.region, &w.workgroup_name));
        all.push(w);
        Ok("{}".into())
    }
}
