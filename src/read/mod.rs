//! Stage 3: read every dataset's metadata through the Redshift Data API.
//!
//! Per warehouse: one statement lists the databases. Per local database: one
//! BatchExecuteStatement of fixed catalog statements plus one SVV_TABLE_INFO statement, whatever
//! the number of tables. Per datashare database: two statements. Statements are polled with
//! DescribeStatement (backoff from 50 ms to 1 s), results paged with GetStatementResult, and
//! sub-statements that returned no rows are not fetched at all.

pub mod assemble;
pub mod sql;

use std::future::Future;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use regex::Regex;
use tracing::{debug, info, warn, Instrument};

use crate::catalog::{DatabaseCatalog, DatabaseKind, WarehouseId};
use crate::config::{Config, NamePattern, Pattern};
use crate::error::{AwsError, ErrorKind};

/// How the Data API logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbAuth {
    /// The caller's IAM identity (`IAMR:<role>` in the database).
    Iam,
    DbUser(String),
    SecretArn(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub warehouse: WarehouseId,
    pub auth: DbAuth,
}

/// One value of a result row, as the Data API's `Field` union carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Long(i64),
    Double(f64),
    Text(String),
}

pub type Row = Vec<Cell>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Running,
    Finished,
    Failed(String),
    Aborted,
}

#[derive(Debug, Clone)]
pub struct StatementState {
    pub phase: Phase,
    /// Sub-statements of a batch: their ids and row counts.
    pub subs: Vec<(String, i64)>,
    /// Rows of a single statement; negative when unknown.
    pub rows: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Page {
    pub rows: Vec<Row>,
    pub next_token: Option<String>,
}

/// Port: the Data API of one account and region. One implementation keeps one identity for a
/// statement's whole life, since only that identity may describe, fetch or cancel it.
pub trait DataApi: Send + Sync {
    fn execute(
        &self,
        target: &Target,
        database: &str,
        sql: &str,
        params: &[(&str, &str)],
    ) -> impl Future<Output = Result<String, AwsError>> + Send;
    fn batch_execute(
        &self,
        target: &Target,
        database: &str,
        sqls: &[String],
    ) -> impl Future<Output = Result<String, AwsError>> + Send;
    fn describe(&self, id: &str) -> impl Future<Output = Result<StatementState, AwsError>> + Send;
    fn page(&self, id: &str, next_token: Option<String>) -> impl Future<Output = Result<Page, AwsError>> + Send;
    fn cancel(&self, id: &str) -> impl Future<Output = Result<(), AwsError>> + Send;
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("statement failed: {0}")]
    Failed(String),
    #[error("statement ran longer than {0} s and was cancelled")]
    TimedOut(u64),
    #[error("statement was aborted")]
    Aborted,
    #[error("not read before the Lambda deadline")]
    Deadline,
}

impl ReadError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Aws(e) => match e.kind {
                ErrorKind::AccessDenied => "accessDenied",
                ErrorKind::Throttled => "throttled",
                _ => "dataApi",
            },
            Self::Failed(_) => "statementFailed",
            Self::TimedOut(_) => "timedOut",
            Self::Aborted => "aborted",
            Self::Deadline => "deadline",
        }
    }

    pub fn hint(&self, warehouse: &WarehouseId) -> String {
        let name = warehouse.name();
        match self {
            Self::Aws(e) if e.kind == ErrorKind::AccessDenied => format!(
                "the assumed role may not use the Data API on {name}: allow redshift-data:* statements and \
                 redshift:GetClusterCredentialsWithIAM (or redshift-serverless:GetCredentials) in the reader policy"
            ),
            Self::Aws(e) if e.kind == ErrorKind::Throttled => {
                "the Data API throttled after retries; the next run reads this again".into()
            }
            Self::Aws(_) => format!("the Data API refused a call for {name}; see the message"),
            Self::Failed(m) if m.contains("permission denied") => {
                format!("the database user lacks a privilege on {name}; see the message")
            }
            Self::Failed(_) => "a catalog statement failed; nothing of this database was changed".into(),
            Self::TimedOut(_) => "raise limits.statementTimeoutSeconds, or read at a quieter time".into(),
            Self::Aborted => "the statement was cancelled outside this run".into(),
            Self::Deadline => "nothing of this database was changed; the next run reads it".into(),
        }
    }
}

/// An anchored include/exclude filter over names.
#[derive(Debug, Clone, Default)]
pub struct NameFilter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    /// Include patterns that are plain names, so a missing one can be reported.
    pub literals: Vec<String>,
}

impl NameFilter {
    pub fn new(pattern: &Pattern) -> Self {
        let anchored = |ps: &[NamePattern]| ps.iter().map(|p| p.anchored.clone()).collect();
        Self {
            include: anchored(&pattern.include),
            exclude: anchored(&pattern.exclude),
            literals: pattern.include.iter().filter_map(NamePattern::literal).map(str::to_string).collect(),
        }
    }

    pub fn allows(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(name)))
            && !self.exclude.iter().any(|r| r.is_match(name))
    }
}

#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub pull_comments: bool,
    pub include_system_schemas: bool,
    pub databases: NameFilter,
    pub schemas: NameFilter,
    pub tables: NameFilter,
    pub statement_timeout: Duration,
    pub databases_per_warehouse: usize,
    /// No statement starts after this; running ones are cancelled at it.
    pub cutoff: Option<Instant>,
}

impl ReadOptions {
    pub fn from_config(config: &Config) -> Self {
        Self {
            pull_comments: config.pull_redshift_comments,
            include_system_schemas: config.include_system_schemas,
            databases: NameFilter::new(&config.filters.databases),
            schemas: NameFilter::new(&config.filters.schemas),
            tables: NameFilter::new(&config.filters.tables),
            statement_timeout: Duration::from_secs(config.limits.statement_timeout_seconds),
            databases_per_warehouse: config.limits.databases_per_warehouse,
            cutoff: None,
        }
    }

    /// The time a statement may run: the configured timeout, or less near the cutoff.
    fn timeout(&self) -> Result<Duration, ReadError> {
        match self.cutoff {
            None => Ok(self.statement_timeout),
            Some(cutoff) => match cutoff.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Ok(self.statement_timeout.min(left)),
                _ => Err(ReadError::Deadline),
            },
        }
    }
}

/// What became of one database.
#[derive(Debug, Clone)]
pub enum DatabaseOutcome {
    Read(DatabaseCatalog),
    Failed { name: String, kind: DatabaseKind, error: ReadError },
}

/// Databases Redshift creates for itself, never datasets of the registry.
const INTERNAL_DATABASES: [&str; 5] = ["template0", "template1", "padb_harvest", "sys:internal", "awsdatacatalog"];

/// Reads every database of a warehouse. Fails only when the databases cannot be listed; a
/// failing database is an outcome of its own and does not stop the others.
pub async fn read_warehouse<A: DataApi>(
    api: &A,
    target: &Target,
    default_database: &str,
    options: &ReadOptions,
) -> Result<Vec<DatabaseOutcome>, ReadError> {
    let rows = query(api, target, default_database, sql::DATABASES, &[], options.timeout()?).await?;
    let mut databases: Vec<(String, DatabaseKind)> = rows
        .iter()
        .filter_map(|r| {
            let name = r.first()?.text()?.to_string();
            let kind = match r.get(1)?.text()? {
                "local" => DatabaseKind::Local,
                "shared" => DatabaseKind::Shared,
                _ => return None,
            };
            Some((name, kind))
        })
        .filter(|(name, _)| !INTERNAL_DATABASES.contains(&name.as_str()) && options.databases.allows(name))
        .collect();
    databases.sort();
    info!(databases = databases.len(), "databases listed");
    let outcomes = stream::iter(databases)
        .map(|(name, kind)| {
            let span = tracing::info_span!("database", database = %name);
            async move {
                let read = match kind {
                    _ if options.timeout().is_err() => Err(ReadError::Deadline),
                    DatabaseKind::Local => read_local(api, target, &name, options).await,
                    DatabaseKind::Shared => read_shared(api, target, default_database, &name, options).await,
                };
                match read {
                    Ok(catalog) => {
                        info!(datasets = catalog.datasets.len(), "database read");
                        DatabaseOutcome::Read(catalog)
                    }
                    Err(error) => {
                        warn!(%error, "database not read");
                        DatabaseOutcome::Failed { name, kind, error }
                    }
                }
            }
            .instrument(span)
        })
        .buffered(options.databases_per_warehouse)
        .collect()
        .await;
    Ok(outcomes)
}

async fn read_local<A: DataApi>(
    api: &A,
    target: &Target,
    database: &str,
    options: &ReadOptions,
) -> Result<DatabaseCatalog, ReadError> {
    let timeout = options.timeout()?;
    let batch = sql::local_batch(options.include_system_schemas);
    let (results, stats) = tokio::join!(
        run_batch(api, target, database, &batch, timeout),
        query(api, target, database, sql::TABLE_STATS, &[], timeout)
    );
    let stats = stats.inspect_err(|e| debug!(error = %e, "svv_table_info not readable")).ok();
    Ok(assemble::local_database(database, &results?, stats.as_deref(), options))
}

async fn read_shared<A: DataApi>(
    api: &A,
    target: &Target,
    connected: &str,
    database: &str,
    options: &ReadOptions,
) -> Result<DatabaseCatalog, ReadError> {
    let timeout = options.timeout()?;
    let params = [("database", database)];
    let (tables, columns) = tokio::join!(
        query(api, target, connected, sql::SHARED_TABLES, &params, timeout),
        query(api, target, connected, sql::SHARED_COLUMNS, &params, timeout)
    );
    Ok(assemble::shared_database(database, &tables?, &columns?, options))
}

/// Runs one statement and returns all its rows.
pub async fn query<A: DataApi>(
    api: &A,
    target: &Target,
    database: &str,
    sql: &str,
    params: &[(&str, &str)],
    timeout: Duration,
) -> Result<Vec<Row>, ReadError> {
    let id = start(|| api.execute(target, database, sql, params)).await?;
    let state = wait(api, &id, timeout).await?;
    if state.rows == 0 {
        return Ok(Vec::new());
    }
    all_rows(api, &id).await
}

/// Runs a batch and returns the rows of each of its statements.
pub async fn run_batch<A: DataApi>(
    api: &A,
    target: &Target,
    database: &str,
    sqls: &[String],
    timeout: Duration,
) -> Result<Vec<Vec<Row>>, ReadError> {
    let id = start(|| api.batch_execute(target, database, sqls)).await?;
    let state = wait(api, &id, timeout).await?;
    let mut results = Vec::with_capacity(state.subs.len());
    for (sub, rows) in &state.subs {
        results.push(if *rows == 0 { Vec::new() } else { all_rows(api, sub).await? });
    }
    Ok(results)
}

/// Starts a statement, backing off while the warehouse has too many active statements or
/// sessions (jittered, from 250 ms doubling to 8 s, 8 tries). Other errors are not retried here:
/// the SDK already retried throttling and 5xx.
async fn start<F, Fut>(mut call: F) -> Result<String, ReadError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<String, AwsError>>,
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

/// Polls until the statement ends; cancels it past `timeout`.
async fn wait<A: DataApi>(api: &A, id: &str, timeout: Duration) -> Result<StatementState, ReadError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let state = api.describe(id).await?;
        match &state.phase {
            Phase::Finished => return Ok(state),
            Phase::Failed(message) => return Err(ReadError::Failed(message.clone())),
            Phase::Aborted => return Err(ReadError::Aborted),
            Phase::Running if started.elapsed() >= timeout => {
                if let Err(e) = api.cancel(id).await {
                    warn!(error = %e, "could not cancel a timed-out statement");
                }
                return Err(ReadError::TimedOut(timeout.as_secs()));
            }
            Phase::Running => {}
        }
        tokio::time::sleep(delay.min(timeout.saturating_sub(started.elapsed()))).await;
        delay = (delay * 3 / 2).min(Duration::from_secs(1));
    }
}

async fn all_rows<A: DataApi>(api: &A, id: &str) -> Result<Vec<Row>, ReadError> {
    let mut rows = Vec::new();
    let mut token = None;
    loop {
        let page = api.page(id, token).await?;
        rows.extend(page.rows);
        match page.next_token {
            Some(t) => token = Some(t),
            None => return Ok(rows),
        }
    }
}

impl Cell {
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn long(&self) -> Option<i64> {
        match self {
            Self::Long(n) => Some(*n),
            Self::Double(d) => Some(*d as i64),
            Self::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Booleans come as booleans, or as text (`YES`, `true`, `t`) from views that print them.
    pub fn flag(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            Self::Long(n) => Some(*n != 0),
            Self::Text(s) => match s.to_ascii_lowercase().as_str() {
                "yes" | "true" | "t" | "y" | "1" => Some(true),
                "no" | "false" | "f" | "n" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }
}
