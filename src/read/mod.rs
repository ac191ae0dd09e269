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
mod options;
pub mod sql;
mod statement;

pub use options::{NameFilter, ReadOptions};
pub use statement::ReadError;

use std::collections::HashMap;

use futures::{stream, StreamExt};
use tokio::sync::mpsc::Sender;
use tracing::{debug, info, warn, Instrument};

use assemble::{ExternalRead, LocalResults, Producer};
use statement::{query, run, run_batch, Pages};

use crate::catalog::{DatabaseCatalog, DatabaseKind, NamespaceRecord, ReadEvent, Sharing};
use crate::ports::{DataApi, Fetch, NamespaceDirectory, Row, StatementState, Target};

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
