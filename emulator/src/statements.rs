//! Statements: accepted at once, run in the background, described, paged, cancelled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use regex::Regex;
use tokio::sync::watch;

use crate::knobs::{Knobs, Running};
use crate::pg::{Postgres, ResultSet, Session};
use crate::wire::AwsError;

/// The Data API's limits on what the database returns
/// (https://docs.aws.amazon.com/redshift/latest/mgmt/data-api-troubleshooting.html).
const ROW_LIMIT_BYTES: u64 = 64 * 1024;
const RESULT_LIMIT_BYTES: u64 = 500 * 1024 * 1024;

pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[derive(Debug, Clone)]
pub struct SubStatement {
    pub sql: String,
    pub status: &'static str,
    pub error: Option<String>,
    pub result: ResultSet,
    pub updated_at: f64,
}

#[derive(Debug)]
pub struct Statement {
    pub id: String,
    pub account: String,
    pub target: String,
    pub is_workgroup: bool,
    pub database: String,
    pub user: String,
    /// A batch's ExecutionMode; `None` for ExecuteStatement.
    pub batch_mode: Option<&'static str>,
    pub created_at: f64,
    pub status: &'static str,
    pub error: Option<String>,
    pub updated_at: f64,
    pub subs: Vec<SubStatement>,
    /// The target's knobs when the statement was accepted.
    pub knobs: Knobs,
    /// The ResultFormat the statement was run with, `None` when the request gave none (JSON).
    pub result_format: Option<&'static str>,
    task: Option<tokio::task::AbortHandle>,
    /// Ticks on every change of the statement, for long polls (`WaitTimeSeconds`).
    changes: watch::Sender<()>,
    /// Requests with WaitTimeSeconds waiting on it now.
    waiting: usize,
}

impl Statement {
    /// FINISHED, FAILED or ABORTED: the statement (every SQL of a batch) ended.
    pub fn ended(&self) -> bool {
        is_final(self.status)
    }
}

pub fn is_final(status: &str) -> bool {
    matches!(status, "FINISHED" | "FAILED" | "ABORTED")
}

#[derive(Default)]
pub struct Statements {
    all: Mutex<HashMap<String, Arc<Mutex<Statement>>>>,
}

pub struct NewStatement {
    pub account: String,
    pub target: String,
    pub is_workgroup: bool,
    pub database: String,
    pub user: String,
    pub sqls: Vec<String>,
    pub params: Vec<(String, String)>,
    pub batch_mode: Option<&'static str>,
    pub result_format: Option<&'static str>,
}

impl Statements {
    pub fn get(&self, id: &str) -> Option<Arc<Mutex<Statement>>> {
        self.all.lock().unwrap().get(id).cloned()
    }

    /// Accepts a statement and runs it in the background.
    pub fn start(&self, pg: &Postgres, knobs: &Knobs, running: Arc<Running>, new: NewStatement) -> String {
        let id = format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            fastrand::u32(..),
            fastrand::u16(..),
            fastrand::u16(..),
            fastrand::u16(..),
            fastrand::u64(..) & 0xffff_ffff_ffff
        );
        let created = now();
        let statement = Arc::new(Mutex::new(Statement {
            id: id.clone(),
            account: new.account.clone(),
            target: new.target.clone(),
            is_workgroup: new.is_workgroup,
            database: new.database.clone(),
            user: new.user.clone(),
            batch_mode: new.batch_mode,
            created_at: created,
            status: "SUBMITTED",
            error: None,
            updated_at: created,
            subs: new
                .sqls
                .iter()
                .map(|sql| SubStatement {
                    sql: sql.clone(),
                    status: "SUBMITTED",
                    error: None,
                    result: ResultSet::default(),
                    updated_at: created,
                })
                .collect(),
            knobs: knobs.clone(),
            result_format: new.result_format,
            task: None,
            changes: watch::Sender::new(()),
            waiting: 0,
        }));
        self.all.lock().unwrap().insert(id.clone(), statement.clone());
        let task = tokio::spawn(execute(pg.clone(), knobs.clone(), running, statement.clone(), new));
        statement.lock().unwrap().task = Some(task.abort_handle());
        id
    }

    /// Cancels a running statement; false when it already ended.
    pub fn cancel(&self, statement: &Arc<Mutex<Statement>>) -> bool {
        let mut s = statement.lock().unwrap();
        if s.ended() {
            return false;
        }
        if let Some(task) = s.task.take() {
            task.abort();
        }
        s.status = "ABORTED";
        s.updated_at = now();
        for sub in &mut s.subs {
            if !matches!(sub.status, "FINISHED" | "FAILED") {
                sub.status = "ABORTED";
            }
        }
        s.changes.send_replace(());
        true
    }
}

/// Requests with WaitTimeSeconds waiting on one statement at once. One more is refused with
/// ActiveWaitingRequestsExceededException, "The number of active requests with WaitTimeSeconds for
/// the same SQL statement exceeds the limit", an error of DescribeStatement, GetStatementResult
/// and GetStatementResultV2 (their Errors in the API reference, API_DescribeStatement.html,
/// API_GetStatementResult.html, API_GetStatementResultV2.html; HTTP 400 in the service model,
/// aws-sdk-redshiftdata 1.126). Not documented, assumed: the limit is 1, and ExecuteStatement's
/// own wait holds a place too, and a batch's `id:n` sub-statements share the batch's place.
const WAITING_PER_STATEMENT: usize = 1;

/// A long poll's place on its statement, given back when the poll ends however it ends.
struct WaitingRequest(Arc<Mutex<Statement>>);

impl WaitingRequest {
    fn take(statement: &Arc<Mutex<Statement>>) -> Result<Self, AwsError> {
        let mut s = statement.lock().unwrap();
        if s.waiting >= WAITING_PER_STATEMENT {
            return Err(AwsError {
                status: 400,
                code: "ActiveWaitingRequestsExceededException",
                message: format!(
                    "The number of active requests with WaitTimeSeconds for the same SQL statement exceeds the limit: {}",
                    s.id
                ),
            });
        }
        s.waiting += 1;
        Ok(Self(statement.clone()))
    }
}

impl Drop for WaitingRequest {
    fn drop(&mut self) {
        // Not `unwrap`: a panic in a drop during unwinding would abort the emulator.
        self.0.lock().unwrap_or_else(|e| e.into_inner()).waiting -= 1;
    }
}

/// A long poll: waits until `done` or `wait` has passed, holding a place on the statement.
pub async fn wait_until(
    statement: &Arc<Mutex<Statement>>,
    wait: Duration,
    done: impl Fn(&Statement) -> bool,
) -> Result<(), AwsError> {
    let _place = WaitingRequest::take(statement)?;
    wait_for(statement, wait, done).await;
    Ok(())
}

/// A long poll whose answer never reaches the client: it holds its place in the background.
pub fn leave_waiting(
    statement: Arc<Mutex<Statement>>,
    wait: Duration,
    done: impl Fn(&Statement) -> bool + Send + 'static,
) -> Result<(), AwsError> {
    let place = WaitingRequest::take(&statement)?;
    tokio::spawn(async move {
        wait_for(&statement, wait, done).await;
        drop(place);
    });
    Ok(())
}

/// Waits up to `wait` until `done` holds for the statement, returning as soon as it does. No
/// spinning: it sleeps on the statement's change signal, which every status change ticks.
async fn wait_for(statement: &Arc<Mutex<Statement>>, wait: Duration, done: impl Fn(&Statement) -> bool) {
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribed before the first look, so a change between the look and the sleep still wakes it.
    let mut changes = statement.lock().unwrap().changes.subscribe();
    loop {
        let finished = done(&statement.lock().unwrap());
        if finished {
            return;
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            // The deadline passed (or the statement is gone): answer with what there is now.
            _ => return,
        }
    }
}

async fn execute(
    pg: Postgres,
    knobs: Knobs,
    running: Arc<Running>,
    statement: Arc<Mutex<Statement>>,
    new: NewStatement,
) {
    running.start();
    // Ends the count however the task ends, cancellation included.
    struct Ended(Arc<Running>);
    impl Drop for Ended {
        fn drop(&mut self) {
            self.0.end();
        }
    }
    let _ended = Ended(running);
    update(&statement, |s| s.status = "STARTED");
    match pg.session(&new.account, &new.target, &new.database, &new.user).await {
        Ok(session) => run_serially(&session, &knobs, &statement, &new).await,
        Err(e) => fail_batch(&statement, 0, e),
    }
}

/// BatchExecuteStatement (https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_BatchExecuteStatement.html):
/// "The SQL statements run serially in the order of the array", so the knobs' time adds up per
/// SQL. TRANSACTION (the default, and a single statement) runs them as one transaction whose
/// first failure rolls all back; AUTO_COMMIT commits each alone, "and a failure of one
/// statement does not affect the others".
async fn run_serially(session: &Session, knobs: &Knobs, statement: &Arc<Mutex<Statement>>, new: &NewStatement) {
    let transaction = new.batch_mode != Some("AUTO_COMMIT");
    if transaction {
        if let Err(e) = session.execute("BEGIN").await {
            return fail_batch(statement, 0, e);
        }
    }
    for (i, sql) in new.sqls.iter().enumerate() {
        update(statement, |s| s.subs[i].status = "STARTED");
        tokio::time::sleep(Duration::from_millis(statement_ms(knobs, sql))).await;
        let outcome = match injected_failure(knobs, &new.database, sql) {
            Some(e) => Err(e),
            None => session.query(sql, &new.params).await.and_then(|r| within_limits(r, knobs)),
        };
        match outcome {
            Err(e) if transaction => {
                let _ = session.execute("ROLLBACK").await;
                return fail_batch(statement, i, e);
            }
            outcome => end_sub(statement, i, outcome),
        }
    }
    if transaction {
        if let Err(e) = session.execute("COMMIT").await {
            return fail_batch(statement, new.sqls.len() - 1, e);
        }
    }
    end_statement(statement);
}

/// How long one SQL runs before it touches PostgreSQL.
fn statement_ms(knobs: &Knobs, sql: &str) -> u64 {
    let slow = knobs.slow_sql.as_deref().is_some_and(|p| Regex::new(p).expect("validated when set").is_match(sql));
    knobs.statement_ms + if slow { knobs.slow_sql_ms } else { 0 }
}

fn injected_failure(knobs: &Knobs, database: &str, sql: &str) -> Option<String> {
    if knobs.connections_lost > 0 {
        return Some("SSL SYSCALL error: EOF detected".to_string());
    }
    if knobs.fail_database.as_deref() == Some(database) {
        return Some(format!("ERROR: injected failure for database {database}"));
    }
    let re = Regex::new(knobs.fail_sql.as_deref()?).expect("validated when set");
    re.is_match(sql).then(|| "ERROR: injected failure for this SQL".to_string())
}

/// The Data API's size limits, with the messages its troubleshooting page names; a row's size
/// is the sum of its fields' bytes (see `pg::field_bytes`).
fn within_limits(result: ResultSet, knobs: &Knobs) -> Result<ResultSet, String> {
    if result.widest_row_bytes > ROW_LIMIT_BYTES {
        return Err(format!(
            "Packet for query is too large: a row of {} bytes; the Data API size limit is 64 KB per row",
            result.widest_row_bytes
        ));
    }
    let limit = knobs.max_result_bytes.unwrap_or(RESULT_LIMIT_BYTES);
    if result.bytes > limit {
        return Err(format!(
            "Database response exceeded size limit: {} bytes; the Data API limit is {limit} bytes",
            result.bytes
        ));
    }
    Ok(result)
}

/// Changes a statement unless it was cancelled meanwhile.
fn update(statement: &Arc<Mutex<Statement>>, change: impl FnOnce(&mut Statement)) {
    let mut s = statement.lock().unwrap();
    if s.status != "ABORTED" {
        change(&mut s);
        s.updated_at = now();
        s.changes.send_replace(());
    }
}

fn end_sub(statement: &Arc<Mutex<Statement>>, i: usize, outcome: Result<ResultSet, String>) {
    update(statement, |s| {
        let sub = &mut s.subs[i];
        sub.updated_at = now();
        match outcome {
            Ok(result) => (sub.status, sub.result) = ("FINISHED", result),
            Err(e) => (sub.status, sub.error) = ("FAILED", Some(e)),
        }
    });
}

/// The sub-statement `i` failed in a transaction: the ones after it never run.
fn fail_batch(statement: &Arc<Mutex<Statement>>, i: usize, error: String) {
    end_sub(statement, i, Err(error));
    update(statement, |s| {
        for sub in &mut s.subs[i + 1..] {
            (sub.status, sub.updated_at) = ("ABORTED", now());
        }
    });
    end_statement(statement);
}

/// The statement's status once every sub-statement ended: FAILED with the first failure if any
/// failed. For AUTO_COMMIT this is inferred; the API reference does not say.
fn end_statement(statement: &Arc<Mutex<Statement>>) {
    update(statement, |s| {
        s.error = s.subs.iter().find_map(|sub| sub.error.clone());
        s.status = if s.error.is_some() { "FAILED" } else { "FINISHED" };
    });
}
