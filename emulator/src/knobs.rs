//! What a test sets on a cluster or workgroup (its knobs) and what the emulator keeps of it
//! (counters, statements running). A leaf.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Deserialize;

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
    /// The most statements that ran at once.
    pub fn max(&self) -> u64 {
        self.max.load(Ordering::SeqCst)
    }
}
