//! How one statement is run through the Data API: started (a busy warehouse waited out), waited
//! for with long polls or backoff within its budget, its result paged; and how a failed one is
//! told apart (a lost connection a retry can fix, a refusal it cannot).

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::catalog::WarehouseId;
use crate::error::{AwsError, ErrorKind, Failure};
use crate::ports::{DataApi, Fetch, Phase, Row, Started, StatementState, Target};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("statement failed: {0}")]
    Failed(String),
    /// The connection went away mid-statement (a restart, resize or maintenance): a retry can
    /// read what this one could not.
    #[error("statement failed, its connection lost: {0}")]
    ConnectionLost(String),
    #[error("statement ran longer than {0} s and was cancelled")]
    TimedOut(u64),
    #[error("statement was aborted")]
    Aborted,
    #[error("not read before the Lambda deadline")]
    Deadline,
    #[error("the columns of {schema}.{table} did not arrive together, so the database was not sent whole")]
    Scattered { schema: String, table: String },
}

/// How a statement's error reads when its connection went away under it: libpq's wording when
/// the server end closes (a cluster rebooting, resizing, or in a maintenance window, which ends
/// running queries: AWS re:Post, rds-redshift-queries-maintenance-window). Compared in lower
/// case, at the start of a clause, so that a quoted name holding these words is not taken.
const CONNECTION_LOST: [&str; 7] = [
    "ssl syscall error",
    "server closed the connection unexpectedly",
    "terminating connection due to administrator command",
    "connection reset by peer",
    "could not receive data from server",
    "the connection is lost",
    "consuming input failed",
];

/// SQLSTATEs of a lost connection: the connection-exception class 08 and admin_shutdown
/// (PostgreSQL documentation, errcodes-appendix.html).
const LOST_SQLSTATES: [&str; 2] = ["08", "57p01"];

impl ReadError {
    /// A FAILED statement's error, told apart: a lost connection is transient, the rest are not.
    pub fn failed(message: &str) -> Self {
        if lost_connection(message) {
            Self::ConnectionLost(message.to_string())
        } else {
            Self::Failed(message.to_string())
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Aws(e) => match e.kind {
                ErrorKind::AccessDenied => "accessDenied",
                ErrorKind::Throttled => "throttled",
                _ => "dataApi",
            },
            Self::Failed(_) => "statementFailed",
            Self::ConnectionLost(_) => "connectionLost",
            Self::TimedOut(_) => "timedOut",
            Self::Aborted => "aborted",
            Self::Deadline => "deadline",
            Self::Scattered { .. } => "scattered",
        }
    }

    /// The error as the report shows it.
    pub fn failure(&self, warehouse: &WarehouseId) -> Failure {
        let (kind, code) = match self {
            Self::Aws(e) => (e.kind, e.code.clone()),
            Self::Deadline => (ErrorKind::Deadline, "Deadline".to_string()),
            Self::ConnectionLost(_) => (ErrorKind::Unreachable, self.kind().to_string()),
            other => (ErrorKind::Other, other.kind().to_string()),
        };
        Failure { kind, code, message: self.to_string(), hint: self.hint(warehouse) }
    }

    pub fn hint(&self, warehouse: &WarehouseId) -> String {
        let name = warehouse.name();
        match self {
            Self::Aws(e) if e.kind == ErrorKind::AccessDenied => format!(
                "the assumed role may not use the Data API on {name}: allow redshift-data:* statements and \
                 redshift:GetClusterCredentialsWithIAM (or redshift-serverless:GetCredentials) in the reader policy \
                 (README: The reader role lacks a permission)"
            ),
            Self::Aws(e) if e.kind == ErrorKind::Throttled => {
                "the Data API throttled after retries; the next run reads this again".into()
            }
            Self::Aws(_) => format!("the Data API refused a call for {name}; see the message"),
            Self::Failed(m) if m.contains("permission denied") => {
                format!("the database user lacks a privilege on {name}; see the message (README: A database user lacks a privilege)")
            }
            Self::Failed(_) => "a catalog statement failed; nothing of this database was changed".into(),
            Self::ConnectionLost(_) => format!(
                "{name} dropped the connection mid-statement (a reboot, resize or maintenance window); nothing of \
                 this database was changed: a fan-out shard is retried, a single run reads it next time"
            ),
            Self::TimedOut(_) => "raise limits.statementTimeoutSeconds, or read at a quieter time".into(),
            Self::Aborted => "the statement was cancelled outside this run".into(),
            Self::Deadline => {
                "nothing of this database was changed; the next run reads it (README: A run is cut by the deadline)"
                    .into()
            }
            Self::Scattered { .. } => {
                "the warehouse did not honour ORDER BY on svv_redshift_columns; previously published datasets \
                 of this database are kept"
                    .into()
            }
        }
    }
}

/// Whether an error message says the connection was lost: a known phrase opening a clause
/// (the message, a line, or what follows `ERROR:`, `FATAL:` or `[SQLState ..]`), or a
/// lost-connection SQLSTATE. Double-quoted text (names, values) is left out first.
fn lost_connection(message: &str) -> bool {
    let lower: String = message.to_ascii_lowercase().split('"').step_by(2).collect();
    let phrase = lower
        .split(['\n', ':', ']'])
        .map(str::trim_start)
        .any(|clause| CONNECTION_LOST.iter().any(|p| clause.starts_with(p)));
    let sqlstate = lower.split("sqlstate").skip(1).any(|rest| {
        let code = rest.trim_start_matches([' ', ':', '=']);
        LOST_SQLSTATES.iter().any(|s| code.starts_with(s))
    });
    phrase || sqlstate
}

/// How long a statement may run once started, and the cutoff no statement runs past, however
/// long it waited to start (a busy warehouse's backoff included).
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    pub timeout: Duration,
    pub cutoff: Option<Instant>,
    /// How the statement is waited for and fetched.
    pub fetch: Fetch,
}

impl Budget {
    /// When a statement started at `started` must end, and the error if it does not: a
    /// statement cut by the deadline is reported as such, not as slow.
    fn end(&self, started: Instant) -> (Instant, ReadError) {
        let by_timeout = started + self.timeout;
        match self.cutoff {
            Some(cutoff) if cutoff < by_timeout => (cutoff, ReadError::Deadline),
            _ => (by_timeout, ReadError::TimedOut(self.timeout.as_secs())),
        }
    }
}

/// Runs one statement and returns its rows, each turned by `each` (or left out) as its page
/// arrives, so that a large result is never kept raw.
pub(super) async fn query<A: DataApi, T>(
    api: &A,
    target: &Target,
    database: &str,
    sql: &str,
    params: &[(&str, &str)],
    budget: Budget,
    mut each: impl FnMut(Row) -> Option<T>,
) -> Result<Vec<T>, ReadError> {
    let (id, state) = run(api, target, database, sql, params, budget).await?;
    let mut pages = Pages::new(api, id, state.has_result_set, budget.fetch);
    let mut out = Vec::new();
    while let Some(rows) = pages.next().await? {
        out.extend(rows.into_iter().filter_map(&mut each));
    }
    Ok(out)
}

/// Starts one statement and waits for it to end, within its budget.
pub(super) async fn run<A: DataApi>(
    api: &A,
    target: &Target,
    database: &str,
    sql: &str,
    params: &[(&str, &str)],
    budget: Budget,
) -> Result<(String, StatementState), ReadError> {
    let started_at = Instant::now();
    let (ends, _) = budget.end(started_at);
    let fetch = Fetch { wait_seconds: long_poll(budget.fetch.wait_seconds, ends), ..budget.fetch };
    let started = start(|| api.execute(target, database, sql, params, fetch)).await?;
    match started.state {
        Some(state) => Ok((started.id, state)),
        None => wait(api, &started.id, budget, started_at).await.map(|state| (started.id, state)),
    }
}

/// Runs a batch and returns the rows of each of its statements.
pub(super) async fn run_batch<A: DataApi>(
    api: &A,
    target: &Target,
    database: &str,
    sqls: &[String],
    budget: Budget,
) -> Result<Vec<Vec<Row>>, ReadError> {
    let started_at = Instant::now();
    let Started { id, .. } = start(|| api.batch_execute(target, database, sqls, budget.fetch)).await?;
    let state = wait(api, &id, budget, started_at).await?;
    let mut results = Vec::with_capacity(state.subs.len());
    for (sub, has_result_set) in state.subs {
        results.push(Pages::new(api, sub, has_result_set, budget.fetch).all().await?);
    }
    Ok(results)
}

/// Starts a statement, backing off while the warehouse has too many active statements or
/// sessions (jittered, from 250 ms doubling to 8 s, 8 tries). Other errors are not retried here:
/// the SDK already retried throttling and 5xx.
async fn start<F, Fut>(mut call: F) -> Result<Started, ReadError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Started, AwsError>>,
{
    let mut delay = Duration::from_millis(250);
    let mut tries = 1;
    loop {
        match call().await {
            Err(e) if is_busy(&e) && tries < 8 => {
                debug!(error = %e, "warehouse busy, backing off");
                tokio::time::sleep(delay.mul_f64(0.5 + fastrand::f64())).await;
                delay = (delay * 2).min(Duration::from_secs(8));
                tries += 1;
            }
            other => return Ok(other?),
        }
    }
}

fn is_busy(e: &AwsError) -> bool {
    matches!(e.code.as_str(), "ActiveStatementsExceededException" | "ActiveSessionsExceededException")
}

/// The `WaitTimeSeconds` of a call made now: the configured wait, never past `ends` (whole
/// seconds, so 0, a short poll, in the last second).
fn long_poll(configured: u8, ends: Instant) -> u8 {
    let left = ends.saturating_duration_since(Instant::now()).as_secs();
    configured.min(left.min(30) as u8)
}

/// Waits until the statement ends, with long polls when configured, else polls with backoff;
/// cancels it past its budget.
async fn wait<A: DataApi>(api: &A, id: &str, budget: Budget, started_at: Instant) -> Result<StatementState, ReadError> {
    let (ends, exceeded) = budget.end(started_at);
    let mut delay = Duration::from_millis(50);
    let mut long_polls = true;
    loop {
        let wait_seconds = if long_polls { long_poll(budget.fetch.wait_seconds, ends) } else { 0 };
        let asked = Instant::now();
        let state = match api.describe(id, wait_seconds).await {
            // The service takes one long poll per statement at a time. This one was refused
            // because an earlier one of ours still waits there: its answer was lost and the SDK
            // retried. The statement is still running; short polls from here on.
            Err(e) if e.code == "ActiveWaitingRequestsExceededException" => {
                debug!(id, "a lost long poll still waits on the statement; polling without waiting");
                long_polls = false;
                StatementState { phase: Phase::Running, subs: Vec::new(), has_result_set: true }
            }
            other => other?,
        };
        match &state.phase {
            Phase::Finished => return Ok(state),
            Phase::Failed(message) => return Err(ReadError::failed(message)),
            Phase::Aborted => return Err(ReadError::Aborted),
            Phase::Running if Instant::now() >= ends => {
                if let Err(e) = api.cancel(id).await {
                    warn!(error = %e, "could not cancel a timed-out statement");
                }
                return Err(exceeded);
            }
            // A long poll answers "running" only once its wait is over; one answered at once
            // was a short poll (an endpoint without WaitTimeSeconds, or no wait asked), so it
            // backs off as such.
            Phase::Running if wait_seconds > 0 && asked.elapsed() >= Duration::from_secs(wait_seconds.into()) / 2 => {}
            Phase::Running => {
                tokio::time::sleep(delay.min(ends.saturating_duration_since(Instant::now()))).await;
                delay = (delay * 3 / 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// A finished statement's result, one page at a time: no page is kept once consumed.
pub(super) struct Pages<'a, A> {
    api: &'a A,
    id: String,
    token: Option<String>,
    more: bool,
    fetch: Fetch,
}

impl<'a, A: DataApi> Pages<'a, A> {
    pub(super) fn new(api: &'a A, id: String, has_result_set: bool, fetch: Fetch) -> Self {
        Self { api, id, token: None, more: has_result_set, fetch }
    }

    pub(super) async fn next(&mut self) -> Result<Option<Vec<Row>>, ReadError> {
        if !self.more {
            return Ok(None);
        }
        let page = self.api.page(&self.id, self.token.take(), self.fetch.format).await?;
        self.token = page.next_token;
        self.more = self.token.is_some();
        Ok(Some(page.rows))
    }

    pub(super) async fn all(mut self) -> Result<Vec<Row>, ReadError> {
        let mut rows = Vec::new();
        while let Some(page) = self.next().await? {
            rows.extend(page);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lost connection is transient (the shard is retried); a refusal or an SQL error is not.
    #[test]
    fn a_lost_connection_is_told_from_a_failed_statement() {
        let lost = [
            "SSL SYSCALL error: EOF detected",
            "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally",
            "FATAL: terminating connection due to administrator command",
            "[SQLState 08S01] could not receive data from server: Connection reset by peer",
            "ERROR: the cluster is restarting (SQLSTATE 57P01)",
        ];
        let refused = [
            "ERROR: permission denied for relation svv_table_info",
            "ERROR: syntax error at or near \"x\"",
            "ERROR: relation \"public.ssl syscall error: x\" does not exist",
            "ERROR: column \"server closed the connection unexpectedly\" does not exist",
            "ERROR: invalid input syntax for integer: \"SQLSTATE 08000\"",
        ];
        let warehouse = WarehouseId::ClusterIdentifier("c".into());
        for (messages, kind) in [(lost, ErrorKind::Unreachable), (refused, ErrorKind::Other)] {
            for message in messages {
                let error = ReadError::failed(message);
                assert_eq!(matches!(error, ReadError::ConnectionLost(_)), kind == ErrorKind::Unreachable, "{message}");
                assert_eq!(error.failure(&warehouse).kind, kind, "{message}");
            }
        }
    }

    /// The runner over a scripted Data API: pages, a busy warehouse, failures, timeouts.
    mod runner {
        use super::*;
        use crate::ports::{Cell, ResultFormat};
        use crate::testing::{Script, ScriptedDataApi};

        const SQL: &str = "SELECT 1";

        fn api(polls: u32, end: Result<Vec<Vec<Row>>, String>) -> ScriptedDataApi {
            ScriptedDataApi::new([(SQL, Script { polls, end })])
        }

        fn budget(timeout: Duration, cutoff: Option<Instant>) -> Budget {
            Budget { timeout, cutoff, fetch: Fetch { wait_seconds: 0, format: ResultFormat::Json } }
        }

        async fn query_all(api: &ScriptedDataApi, budget: Budget) -> Result<Vec<Row>, ReadError> {
            let target =
                Target { warehouse: WarehouseId::ClusterIdentifier("c".into()), auth: crate::ports::DbAuth::Iam };
            query(api, &target, "dev", SQL, &[], budget, Some).await
        }

        fn row(n: i64) -> Row {
            vec![Cell::Long(n)]
        }

        #[tokio::test]
        async fn a_result_is_read_page_by_page_once_the_statement_ends() {
            let api = api(2, Ok(vec![vec![row(1), row(2)], vec![row(3)]]));
            let rows = query_all(&api, budget(Duration::from_secs(5), None)).await.unwrap();
            assert_eq!(rows, [row(1), row(2), row(3)]);
        }

        #[tokio::test]
        async fn a_busy_warehouse_is_waited_out() {
            let api = api(0, Ok(vec![vec![row(1)]]));
            *api.busy.lock().unwrap() = 2;
            let rows = query_all(&api, budget(Duration::from_secs(5), None)).await.unwrap();
            assert_eq!((rows, *api.busy.lock().unwrap()), (vec![row(1)], 0));
        }

        #[tokio::test]
        async fn a_failed_statement_says_whether_a_retry_can_help() {
            let lost = api(1, Err("SSL SYSCALL error: EOF detected".into()));
            let error = query_all(&lost, budget(Duration::from_secs(5), None)).await.unwrap_err();
            assert!(matches!(error, ReadError::ConnectionLost(_)), "{error:?}");
            let denied = api(0, Err("ERROR: permission denied for relation svv_table_info".into()));
            let error = query_all(&denied, budget(Duration::from_secs(5), None)).await.unwrap_err();
            assert!(matches!(error, ReadError::Failed(_)), "{error:?}");
        }

        /// A statement still running at its timeout is cancelled and reported as slow; at the
        /// invocation's cutoff, as cut by the deadline.
        #[tokio::test]
        async fn a_statement_past_its_budget_is_cancelled() {
            let slow = api(u32::MAX, Ok(vec![]));
            let error = query_all(&slow, budget(Duration::from_millis(300), None)).await.unwrap_err();
            assert_eq!(error, ReadError::TimedOut(0));
            assert_eq!(*slow.cancelled.lock().unwrap(), ["0"]);

            let cut = api(u32::MAX, Ok(vec![]));
            let cutoff = Instant::now() + Duration::from_millis(300);
            let error = query_all(&cut, budget(Duration::from_secs(60), Some(cutoff))).await.unwrap_err();
            assert_eq!(error, ReadError::Deadline);
            assert_eq!(*cut.cancelled.lock().unwrap(), ["0"]);
        }
    }
}
