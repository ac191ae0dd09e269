//! Stage 3: read every dataset's metadata through the Redshift Data API.
//!
//! Per warehouse: one statement lists the databases, one reads SVV_DATASHARES. Per local database: eight statements at
//! once, whatever the number of tables: the two essential ones (tables, columns), whose failure
//! fails the database, and six optional ones (visibility counts, late-binding columns,
//! materialized views, external objects, view definitions, table stats), whose failure or
//! slowness degrades to a note. A BatchExecuteStatement runs its statements serially in one
//! transaction and fails whole (Management Guide data-api.html), so only statements that share a
//! fate ride in one batch. Per datashare database: two statements. Statements are waited for
//! with long polls (`WaitTimeSeconds` on ExecuteStatement and DescribeStatement; or, with
//! `dataApi.waitTimeSeconds` 0, DescribeStatement with backoff from 50 ms to 1 s), results paged
//! with GetStatementResult (GetStatementResultV2 for CSV), and statements without a result set
//! are not fetched.
//!
//! Memory stays flat: the columns statement, the one whose rows grow with tables x columns, is
//! read last, page by page, and each dataset is sent to the outputs as soon as its columns are
//! all in; the other statements' rows are kept per database only until it is assembled.

pub mod assemble;
pub mod lineage;
pub mod sql;

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use regex::Regex;
use tokio::sync::mpsc::Sender;
use tracing::{debug, info, warn, Instrument};

use crate::catalog::{DatabaseCatalog, DatabaseKind, Dataset, NamespaceRecord, ReadEvent, Sharing, WarehouseId};
use crate::config::{Config, NamePattern, Pattern};
use crate::error::{AwsError, ErrorKind, Failure};
use crate::ports::{DataApi, Fetch, NamespaceDirectory, Phase, Row, Started, StatementState, Target};

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
    pub fetch: Fetch,
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
            fetch: config.data_api.fetch(),
        }
    }

    /// The bounds of a statement about to start; none once the cutoff has passed.
    fn budget(&self) -> Result<Budget, ReadError> {
        match self.cutoff {
            Some(cutoff) if Instant::now() >= cutoff => Err(ReadError::Deadline),
            cutoff => Ok(Budget { timeout: self.statement_timeout, cutoff, fetch: self.fetch }),
        }
    }
}

/// How long a statement may run once started, and the cutoff no statement runs past, however
/// long it waited to start (a busy warehouse's backoff included).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
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

/// What became of one database.
#[derive(Debug, Clone)]
pub enum DatabaseOutcome {
    Read(DatabaseCatalog),
    Failed { name: String, kind: DatabaseKind, error: ReadError },
}

/// Databases Redshift creates for itself, never datasets of the registry.
const INTERNAL_DATABASES: [&str; 5] = ["template0", "template1", "padb_harvest", "sys:internal", "awsdatacatalog"];

/// Reads every database of a warehouse, sending each dataset to `out` as soon as it is read and
/// each database's end after its datasets. Fails only when the databases cannot be listed; a
/// failing database is an outcome of its own and does not stop the others.
pub async fn read_warehouse<A: DataApi, N: NamespaceDirectory>(
    api: &A,
    namespaces: &N,
    target: &Target,
    default_database: &str,
    options: &ReadOptions,
    out: &Sender<ReadEvent>,
) -> Result<WarehouseRead, ReadError> {
    let rows = query(api, target, default_database, sql::DATABASES, &[], options.budget()?, Some).await?;
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
    // Boxed: in a debug build this future's state, held inline, overflows a test thread's stack.
    let mut datashares = Box::pin(datashares(api, target, default_database, options)).await;
    match &mut datashares {
        Ok(d) => {
            locate_producers(d, &databases, namespaces).await;
            if let Some(sharing) = d.sharing.take() {
                send(out, ReadEvent::Sharing(sharing)).await;
            }
        }
        Err(error) => warn!(%error, "datashares not read"),
    }
    let producers = &datashares;
    let outcomes = stream::iter(databases)
        .map(|(name, kind)| {
            let span = tracing::info_span!("database", database = %name);
            async move {
                let read = match kind {
                    _ if options.budget().is_err() => Err(ReadError::Deadline),
                    DatabaseKind::Local => read_local(api, target, &name, options, out).await,
                    DatabaseKind::Shared => {
                        let producer = producers.as_ref().map(|d| d.inbound.get(&name));
                        read_shared(api, target, default_database, &name, producer, options, out).await
                    }
                };
                let (event, outcome) = match read {
                    Ok(catalog) => {
                        info!(datasets = catalog.datasets, "database read");
                        (ReadEvent::DatabaseRead(catalog.clone()), DatabaseOutcome::Read(catalog))
                    }
                    Err(error) => {
                        warn!(%error, "database not read");
                        (ReadEvent::DatabaseFailed(name.clone()), DatabaseOutcome::Failed { name, kind, error })
                    }
                };
                send(out, event).await;
                outcome
            }
            .instrument(span)
        })
        .buffered(options.databases_per_warehouse)
        .collect()
        .await;
    Ok(WarehouseRead { databases: outcomes, sharing_unread: datashares.is_err() })
}

/// What became of a warehouse's databases, and whether what it shares is known.
#[derive(Debug)]
pub struct WarehouseRead {
    pub databases: Vec<DatabaseOutcome>,
    pub sharing_unread: bool,
}

/// Sends to the outputs; once they have stopped listening, what is read goes nowhere.
async fn send(out: &Sender<ReadEvent>, event: ReadEvent) {
    if out.send(event).await.is_err() {
        debug!("the outputs stopped listening");
    }
}

/// The results of a local database's statements but the columns one: the essential tables,
/// and the optional ones each with its own success or failure.
pub(crate) struct LocalResults {
    /// Datasets of SVV_REDSHIFT_TABLES, without their columns yet.
    pub tables: Vec<Dataset>,
    pub visibility: Result<Vec<Vec<Row>>, ReadError>,
    pub late_binding: Result<Vec<Row>, ReadError>,
    pub materialized_views: Result<Vec<Row>, ReadError>,
    pub external: ExternalRead,
    pub definitions: Result<Vec<Row>, ReadError>,
    pub stats: Result<Vec<Row>, ReadError>,
    pub metadata_security: Result<Vec<Row>, ReadError>,
    /// View -> relation pairs the catalog records (lineage).
    pub dependencies: Result<Vec<Row>, ReadError>,
}

/// External tables and columns, and the external schemas that could not be read.
#[derive(Default)]
pub(crate) struct ExternalRead {
    pub tables: Vec<Row>,
    pub columns: Vec<Row>,
    /// `None`: the whole read failed and no schema could be read alone.
    pub failed: Vec<(Option<String>, ReadError)>,
}

async fn read_local<A: DataApi>(
    api: &A,
    target: &Target,
    database: &str,
    options: &ReadOptions,
    out: &Sender<ReadEvent>,
) -> Result<DatabaseCatalog, ReadError> {
    let b = options.budget()?;
    let sys = options.include_system_schemas;
    let one = |sql: String| async move { query(api, target, database, &sql, &[], b, Some).await };
    let batch = |sqls: Vec<String>| async move { run_batch(api, target, database, &sqls, b).await };
    // The columns statement runs with the others but is fetched last, as it is consumed.
    let columns = async { run(api, target, database, &sql::columns(sys), &[], b).await };
    let dataset = |row: Row| assemble::redshift_dataset(&row, options.pull_comments);
    let tables_sql = sql::tables(sys);
    let tables = query(api, target, database, &tables_sql, &[], b, dataset);
    let (
        tables,
        columns,
        visibility,
        late_binding,
        materialized_views,
        external,
        definitions,
        stats,
        security,
        dependencies,
    ) = tokio::join!(
        tables,
        columns,
        batch(sql::visibility_batch(sys)),
        one(sql::LATE_BINDING_COLUMNS.to_string()),
        one(sql::MATERIALIZED_VIEWS.to_string()),
        batch(sql::external_batch()),
        one(sql::view_definitions(sys)),
        one(sql::TABLE_STATS.to_string()),
        one(sql::METADATA_SECURITY.to_string()),
        one(sql::view_dependencies(sys)),
    );
    let (tables, columns) = (tables?, columns?);
    // A part cut by the deadline would publish a degraded database (views without definitions,
    // kinds guessed) that no retry fixes: the whole database waits for the next run instead.
    // The external batch is not among them for a lost connection: it falls back to one
    // statement per schema, each on a new session.
    let parts = [
        visibility.as_ref().err(),
        late_binding.as_ref().err(),
        materialized_views.as_ref().err(),
        definitions.as_ref().err(),
        stats.as_ref().err(),
        security.as_ref().err(),
        dependencies.as_ref().err(),
    ];
    if parts.iter().chain([&external.as_ref().err()]).any(|e| matches!(e, Some(ReadError::Deadline))) {
        return Err(ReadError::Deadline);
    }
    // So would a part whose connection was lost, and a retry can read it whole.
    if let Some(lost) = parts.into_iter().flatten().find(|e| matches!(e, ReadError::ConnectionLost(_))) {
        return Err(lost.clone());
    }
    let external = match external {
        Ok(mut results) => {
            let mut take = |i: usize| results.get_mut(i).map(std::mem::take).unwrap_or_default();
            ExternalRead {
                tables: take(sql::external::TABLES),
                columns: take(sql::external::COLUMNS),
                failed: Vec::new(),
            }
        }
        Err(error) => external_by_schema(api, target, database, visibility.as_ref().ok(), error, options).await,
    };
    let results = LocalResults {
        tables,
        visibility,
        late_binding,
        materialized_views,
        external,
        definitions,
        stats,
        metadata_security: security,
        dependencies,
    };
    let pending = assemble::local_database(database, results, options);
    stream_columns(api, columns, pending, b.fetch, out).await
}

/// Pages through the columns statement, sending each dataset as soon as its columns are in.
async fn stream_columns<A: DataApi>(
    api: &A,
    (id, state): (String, StatementState),
    mut pending: assemble::Pending,
    fetch: Fetch,
    out: &Sender<ReadEvent>,
) -> Result<DatabaseCatalog, ReadError> {
    let dataset = |pending: &assemble::Pending, dataset| ReadEvent::Dataset { database: pending.name.clone(), dataset };
    let mut pages = Pages::new(api, id, state.has_result_set, fetch);
    while let Some(rows) = pages.next().await? {
        for row in rows {
            let complete = pending
                .column(&row)
                .map_err(|assemble::Scattered((schema, table))| ReadError::Scattered { schema, table })?;
            if let Some(d) = complete {
                send(out, dataset(&pending, d)).await;
            }
        }
    }
    for d in pending.rest() {
        send(out, dataset(&pending, d)).await;
    }
    Ok(pending.catalog())
}

/// After the external batch failed: one schema at a time, so a broken schema costs only itself.
/// Not when the failure was time (a retry would only take more) or the schemas are unknown.
async fn external_by_schema<A: DataApi>(
    api: &A,
    target: &Target,
    database: &str,
    visibility: Option<&Vec<Vec<Row>>>,
    error: ReadError,
    options: &ReadOptions,
) -> ExternalRead {
    let schemas: Vec<String> = match (visibility, &error) {
        (Some(v), ReadError::Failed(_)) => assemble::external_schema_names(v),
        _ => return ExternalRead { failed: vec![(None, error)], ..ExternalRead::default() },
    };
    warn!(%error, schemas = schemas.len(), "external objects failed; reading them one schema at a time");
    let [tables_sql, columns_sql] = sql::external_of_schema();
    let reads = stream::iter(schemas)
        .map(|schema| {
            let (tables_sql, columns_sql) = (&tables_sql, &columns_sql);
            async move {
                let budget = match options.budget() {
                    Ok(b) => b,
                    Err(e) => return (schema, Err(e)),
                };
                let params = [("schema", schema.as_str())];
                let (tables, columns) = tokio::join!(
                    query(api, target, database, tables_sql, &params, budget, Some),
                    query(api, target, database, columns_sql, &params, budget, Some)
                );
                let read = tables.and_then(|t| Ok((t, columns?)));
                (schema, read)
            }
        })
        .buffered(options.databases_per_warehouse)
        .collect::<Vec<_>>()
        .await;
    let mut out = ExternalRead::default();
    for (schema, read) in reads {
        match read {
            Ok((tables, columns)) => {
                out.tables.extend(tables);
                out.columns.extend(columns);
            }
            Err(e) => out.failed.push((Some(schema), e)),
        }
    }
    out
}

/// What SVV_DATASHARES shows of a warehouse's datashares, both ways.
#[derive(Debug, Default)]
struct Datashares {
    /// Consumer database -> its producer.
    inbound: HashMap<String, Producer>,
    sharing: Option<Sharing>,
}

async fn datashares<A: DataApi>(
    api: &A,
    target: &Target,
    connected: &str,
    options: &ReadOptions,
) -> Result<Datashares, ReadError> {
    let rows = query(api, target, connected, sql::DATASHARES, &[], options.budget()?, Some).await?;
    let text = |r: &Row, i: usize| r.get(i).and_then(|c| c.text()).map(|t| t.trim().to_string());
    let mut out = Datashares::default();
    for r in &rows {
        let (Some(kind), Some(share)) = (text(r, 0), text(r, 1)) else { continue };
        match (kind.as_str(), text(r, 2), text(r, 3), text(r, 4), text(r, 5)) {
            ("INBOUND", Some(consumer), _, Some(account_id), Some(namespace)) => {
                let producer = Producer { account_id, namespace, share, holder: None };
                out.inbound.insert(consumer, producer);
            }
            ("OUTBOUND", _, Some(source), _, Some(namespace)) => {
                let sharing = out.sharing.get_or_insert_with(|| Sharing { namespace, shares: Default::default() });
                sharing.shares.insert(share, source);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Who shares a consumer database: the producer's account and namespace, its datashare, and
/// the warehouse that holds the namespace when the registry has published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Producer {
    pub account_id: String,
    pub namespace: String,
    pub share: String,
    pub holder: Option<NamespaceRecord>,
}

/// Finds the warehouse of each producer a consumer database to be read has, one lookup per
/// namespace however many databases it shares; a record of another account is not that producer's.
async fn locate_producers<N: NamespaceDirectory>(
    d: &mut Datashares,
    databases: &[(String, DatabaseKind)],
    namespaces: &N,
) {
    let mut holders: HashMap<String, Option<NamespaceRecord>> = HashMap::new();
    for (_, producer) in d.inbound.iter_mut().filter(|(db, _)| databases.iter().any(|(name, _)| name == *db)) {
        if !holders.contains_key(&producer.namespace) {
            // Boxed: the S3 read behind `namespaces` is a large future in an already large one.
            let holder = Box::pin(namespaces.holder(&producer.namespace)).await;
            holders.insert(producer.namespace.clone(), holder);
        }
        producer.holder = holders[&producer.namespace].clone().filter(|h| h.account_id == producer.account_id);
    }
}

/// `producer`: none when the database's datashare is not listed; an error when SVV_DATASHARES
/// could not be read (the user lacks ALTER or USAGE on the datashare).
async fn read_shared<A: DataApi>(
    api: &A,
    target: &Target,
    connected: &str,
    database: &str,
    producer: Result<Option<&Producer>, &ReadError>,
    options: &ReadOptions,
    out: &Sender<ReadEvent>,
) -> Result<DatabaseCatalog, ReadError> {
    let budget = options.budget()?;
    let params = [("database", database)];
    let (tables, columns) = tokio::join!(
        query(api, target, connected, sql::SHARED_TABLES, &params, budget, |row| {
            assemble::redshift_dataset(&row, options.pull_comments)
        }),
        run(api, target, connected, sql::SHARED_COLUMNS, &params, budget)
    );
    let pending = assemble::shared_database(database, tables?, producer, options);
    stream_columns(api, columns?, pending, budget.fetch, out).await
}

/// Runs one statement and returns its rows, each turned by `each` (or left out) as its page
/// arrives, so that a large result is never kept raw.
async fn query<A: DataApi, T>(
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
async fn run<A: DataApi>(
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
pub(crate) async fn run_batch<A: DataApi>(
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
struct Pages<'a, A> {
    api: &'a A,
    id: String,
    token: Option<String>,
    more: bool,
    fetch: Fetch,
}

impl<'a, A: DataApi> Pages<'a, A> {
    fn new(api: &'a A, id: String, has_result_set: bool, fetch: Fetch) -> Self {
        Self { api, id, token: None, more: has_result_set, fetch }
    }

    async fn next(&mut self) -> Result<Option<Vec<Row>>, ReadError> {
        if !self.more {
            return Ok(None);
        }
        let page = self.api.page(&self.id, self.token.take(), self.fetch.format).await?;
        self.token = page.next_token;
        self.more = self.token.is_some();
        Ok(Some(page.rows))
    }

    async fn all(mut self) -> Result<Vec<Row>, ReadError> {
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
        for lost in [
            "SSL SYSCALL error: EOF detected",
            "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally",
            "FATAL: terminating connection due to administrator command",
            "[SQLState 08S01] could not receive data from server: Connection reset by peer",
            "ERROR: the cluster is restarting (SQLSTATE 57P01)",
        ] {
            let error = ReadError::failed(lost);
            assert!(matches!(error, ReadError::ConnectionLost(_)), "{lost}");
            assert_eq!(error.failure(&WarehouseId::ClusterIdentifier("c".into())).kind, ErrorKind::Unreachable);
        }
        for refused in [
            "ERROR: permission denied for relation svv_table_info",
            "ERROR: syntax error at or near \"x\"",
            "ERROR: relation \"public.ssl syscall error: x\" does not exist",
            "ERROR: column \"server closed the connection unexpectedly\" does not exist",
            "ERROR: invalid input syntax for integer: \"SQLSTATE 08000\"",
        ] {
            let error = ReadError::failed(refused);
            assert!(matches!(error, ReadError::Failed(_)), "{refused}");
            assert_eq!(error.failure(&WarehouseId::ClusterIdentifier("c".into())).kind, ErrorKind::Other);
        }
    }
}
