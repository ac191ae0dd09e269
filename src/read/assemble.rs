//! Rows of the catalog statements → the catalog model, with the visibility notes. A database
//! is assembled in two steps: every statement but the columns one gives a [`Pending`] database
//! (each dataset built but for its columns, every note written), then the columns statement's
//! rows stream through it and each dataset leaves, complete, as soon as its last column has come.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::mem::take;
use std::sync::Arc;

use super::lineage;
use super::options::ReadOptions;
use super::sql::{self, visibility, MV_INTERNAL};
use super::statement::ReadError;
use crate::catalog::{
    Column, DatabaseCatalog, DatabaseKind, Dataset, DatasetKind, NamespaceRecord, Unconfirmed, Upstream,
};
use crate::ports::Row;

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

/// Who shares a consumer database: the producer's account and namespace, its datashare, and
/// the warehouse that holds the namespace when the registry has published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Producer {
    pub account_id: String,
    pub namespace: String,
    pub share: String,
    pub holder: Option<NamespaceRecord>,
}

type Key = (String, String);

fn text(row: &Row, i: usize) -> Option<String> {
    row.get(i).and_then(|c| c.text()).map(str::to_string)
}

fn key(row: &Row, schema: usize, table: usize) -> Option<Key> {
    Some((text(row, schema)?, text(row, table)?))
}

/// Quotes an identifier for the GRANT statements the notes suggest.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The database user as notes name it, quoted as a GRANT takes it; a placeholder when it is
/// unknown (CURRENT_USER comes with the visibility batch, which may have failed).
fn grantee(user: &str) -> String {
    if user.is_empty() {
        "<the reader's database user>".to_string()
    } else {
        quote_ident(user)
    }
}

/// A column of SVV_REDSHIFT_COLUMNS: schema, table, column, position, type, default, nullable,
/// encoding, distkey, sortkey, remarks.
fn redshift_column(row: &Row, pull_comments: bool) -> Option<(Key, Column)> {
    let sort = row.get(9).and_then(|c| c.long()).unwrap_or(0) as i32;
    Some((
        key(row, 0, 1)?,
        Column {
            name: text(row, 2)?,
            position: row.get(3)?.long()? as i32,
            data_type: text(row, 4)?,
            default: text(row, 5),
            nullable: row.get(6).and_then(|c| c.flag()).unwrap_or(true),
            encoding: text(row, 7),
            dist_key: row.get(8).and_then(|c| c.flag()).unwrap_or(false),
            sort_key_position: (sort != 0).then_some(sort),
            description: if pull_comments { text(row, 10).filter(|d| !d.is_empty()) } else { None },
            partition_key: false,
        },
    ))
}

/// A row of SVV_REDSHIFT_TABLES (schema, table, type, owner, remarks) as a dataset without
/// columns; taken page by page, so the raw rows of a large database are never all kept.
pub(crate) fn redshift_dataset(row: &Row, pull_comments: bool) -> Option<Dataset> {
    let kind = match text(row, 2)?.as_str() {
        "VIEW" => DatasetKind::View,
        _ => DatasetKind::Table,
    };
    Some(Dataset {
        owner: text(row, 3),
        description: if pull_comments { text(row, 4).filter(|d| !d.is_empty()) } else { None },
        ..Dataset::named(text(row, 0)?, text(row, 1)?, kind)
    })
}

fn keep(options: &ReadOptions, database: &str, schema: &str, table: &str) -> bool {
    (options.include_system_schemas || !sql::is_system_schema(schema))
        && options.schemas.allows(schema)
        && options.tables.allows(&format!("{database}.{schema}.{table}"))
}

/// A database whose datasets wait for the columns statement's rows.
pub(crate) struct Pending {
    pub name: Arc<str>,
    kind: DatabaseKind,
    pull_comments: bool,
    /// Datasets not yet sent, by schema and name.
    waiting: HashMap<Key, Dataset>,
    /// The table whose column rows are arriving: the only rows held.
    current: Option<(Key, Vec<Column>)>,
    /// Tables whose column rows have ended, as 64-bit hashes: a table met again means the rows
    /// were not grouped by table, which would have sent it without some of its columns.
    done: HashSet<u64, BuildHasherDefault<DefaultHasher>>,
    notes: Vec<String>,
    unconfirmed: Unconfirmed,
    sent: usize,
}

/// The columns statement did not deliver a table's rows together.
#[derive(Debug)]
pub(crate) struct Scattered(pub Key);

impl Pending {
    fn new(name: &str, kind: DatabaseKind, options: &ReadOptions, datasets: Vec<Dataset>) -> Self {
        Self {
            name: name.into(),
            kind,
            pull_comments: options.pull_comments,
            // The names move into the key, so that they are not kept twice.
            waiting: datasets.into_iter().map(|mut d| ((take(&mut d.schema), take(&mut d.name)), d)).collect(),
            current: None,
            done: HashSet::default(),
            notes: Vec::new(),
            unconfirmed: Unconfirmed::Nothing,
            sent: 0,
        }
    }

    /// Takes one row of the columns statement; returns the dataset it completed, if any. Rows
    /// of one table are contiguous (the statement orders them), so a new table means the one
    /// before has all its columns.
    pub(crate) fn column(&mut self, row: &Row) -> Result<Option<Dataset>, Scattered> {
        let Some((key, column)) = redshift_column(row, self.pull_comments) else { return Ok(None) };
        if let Some((current, columns)) = &mut self.current {
            if *current == key {
                columns.push(column);
                return Ok(None);
            }
        }
        if !self.done.insert(self.done.hasher().hash_one(&key)) {
            return Err(Scattered(key));
        }
        let finished = self.current.replace((key, vec![column]));
        Ok(finished.and_then(|(key, columns)| self.complete(&key, columns)))
    }

    /// The dataset of `key` with these columns, unless it has its own (late-binding views,
    /// external objects) or is not one of this database's datasets (filtered out, internal).
    fn complete(&mut self, key: &Key, columns: Vec<Column>) -> Option<Dataset> {
        let mut d = self.take_waiting(key)?;
        let listed = matches!(
            d.kind,
            DatasetKind::Table | DatasetKind::View | DatasetKind::MaterializedView | DatasetKind::LateBindingView
        );
        if listed && d.columns.is_empty() {
            d.columns = columns;
        }
        Some(self.send(d))
    }

    fn take_waiting(&mut self, key: &Key) -> Option<Dataset> {
        let ((schema, name), d) = self.waiting.remove_entry(key)?;
        Some(Dataset { schema, name, ..d })
    }

    fn send(&mut self, mut d: Dataset) -> Dataset {
        d.columns.sort_by(|a, b| a.position.cmp(&b.position).then_with(|| a.name.cmp(&b.name)));
        self.sent += 1;
        d
    }

    /// Once the columns statement is read: the last table, then the datasets that had no
    /// column rows, sorted.
    pub(crate) fn rest(&mut self) -> Vec<Dataset> {
        let last = self.current.take().and_then(|(key, columns)| self.complete(&key, columns));
        let mut others: Vec<Dataset> =
            self.waiting.drain().map(|((schema, name), d)| Dataset { schema, name, ..d }).collect();
        others.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        let others: Vec<Dataset> = others.into_iter().map(|d| self.send(d)).collect();
        last.into_iter().chain(others).collect()
    }

    /// The database as the report and the commit see it, once every dataset is sent.
    pub(crate) fn catalog(self) -> DatabaseCatalog {
        DatabaseCatalog {
            name: self.name.to_string(),
            kind: self.kind,
            datasets: self.sent,
            notes: self.notes,
            unconfirmed: self.unconfirmed,
        }
    }

    /// Rows held now: the columns of the one table being read.
    #[cfg(test)]
    pub(crate) fn held_rows(&self) -> usize {
        self.current.as_ref().map_or(0, |(_, c)| c.len())
    }
}

/// `char(n)` columns come back space-padded (SVV_MV_INFO's names are char(128),
/// r_SVV_MV_INFO.html). A name that really ends in spaces cannot be told from padding there.
fn padded_key(row: &Row) -> Option<Key> {
    let trim = |i| text(row, i).map(|t| t.trim_end_matches(' ').to_string());
    Some((trim(0)?, trim(1)?))
}

/// The rows of an optional part, or none with a note saying what is missing and why.
fn optional<'a>(part: &'a Result<Vec<Row>, ReadError>, what: &str, notes: &mut Vec<String>) -> &'a [Row] {
    match part {
        Ok(rows) => rows,
        Err(e) => {
            notes.push(format!("{what} not read ({}): {e}", e.kind()));
            &[]
        }
    }
}

/// Late-binding views' columns by view: PG_GET_LATE_BINDING_VIEW_COLS rows.
fn late_binding_columns(rows: &[Row]) -> HashMap<Key, Vec<Column>> {
    let mut by_view: HashMap<Key, Vec<Column>> = HashMap::new();
    for r in rows {
        let (Some(k), Some(name), Some(ty), Some(pos)) =
            (key(r, 0, 1), text(r, 2), text(r, 3), r.get(4).and_then(|c| c.long()))
        else {
            continue;
        };
        by_view.entry(k).or_default().push(Column::plain(name, pos as i32, ty));
    }
    by_view
}

/// View definitions from their chunks (schema, view, part, text, full length), with the views
/// whose definition was cut at [`sql::DEFINITION_CHUNKS`] chunks.
fn view_definitions(rows: &[Row]) -> (HashMap<Key, String>, usize) {
    let mut parts: BTreeMap<(Key, i64), (String, i64)> = BTreeMap::new();
    for r in rows {
        let (Some(k), Some(part), Some(chunk)) = (key(r, 0, 1), r.get(2).and_then(|c| c.long()), text(r, 3)) else {
            continue;
        };
        let length = r.get(4).and_then(|c| c.long()).unwrap_or(0);
        parts.insert((k, part), (chunk, length));
    }
    let mut definitions: HashMap<Key, String> = HashMap::new();
    let mut lengths: HashMap<Key, i64> = HashMap::new();
    for ((k, _), (chunk, length)) in parts {
        definitions.entry(k.clone()).or_default().push_str(&chunk);
        lengths.insert(k, length);
    }
    let cut = definitions.iter().filter(|(k, d)| (d.chars().count() as i64) < lengths[*k]).count();
    (definitions, cut)
}

/// The note for SVV_TABLE_INFO: a refusal is a missing GRANT; anything else is an error.
fn stats_note(stats: &Result<Vec<Row>, ReadError>, user: &str) -> Option<String> {
    let u = grantee(user);
    match stats {
        Ok(_) => None,
        Err(ReadError::Failed(m)) if m.contains("permission denied") => Some(format!(
            "row counts and sizes unavailable: user {u} may not read svv_table_info; to add them: \
             GRANT SELECT ON svv_table_info TO {u};"
        )),
        Err(e) => Some(format!("row counts and sizes not read ({}): svv_table_info: {e}", e.kind())),
    }
}

/// A local database from the results of its statements but the columns one.
pub(crate) fn local_database(name: &str, r: LocalResults, options: &ReadOptions) -> Pending {
    let mut notes = Vec::new();
    let empty = Vec::new();
    let visibility = match &r.visibility {
        Ok(v) => Some(v),
        Err(e) => {
            notes.push(format!(
                "visibility not read ({}): {e}; objects hidden from the user are not counted and no GRANT is suggested",
                e.kind()
            ));
            None
        }
    };
    let result = |i: usize| visibility.and_then(|v| v.get(i)).unwrap_or(&empty);
    let user = result(visibility::USER).first().and_then(|r| text(r, 0)).unwrap_or_default();

    // Materialized views: those SVV_MV_INFO shows (the user's own), and any view with an
    // internal mv_tbl__ table, which pg_class shows whoever owns it.
    let relations: Vec<Key> = result(visibility::RELATIONS).iter().filter_map(|r| key(r, 0, 1)).collect();
    let mv_rows = optional(&r.materialized_views, "materialized views (svv_mv_info)", &mut notes);
    let mut materialized: BTreeSet<Key> = mv_rows.iter().filter_map(padded_key).collect();
    for (schema, table) in &relations {
        if let Some(c) = MV_INTERNAL.captures(table) {
            materialized.insert((schema.clone(), c[1].to_string()));
        }
    }
    let mut late_binding = late_binding_columns(optional(&r.late_binding, "columns of late-binding views", &mut notes));
    let (definitions, cut) = view_definitions(optional(&r.definitions, "view definitions", &mut notes));
    let stats_rows = r.stats.as_deref().unwrap_or_default();
    let stats_by_table: HashMap<Key, (Option<i64>, Option<i64>)> = stats_rows
        .iter()
        .filter_map(|r| Some((key(r, 0, 1)?, (r.get(3).and_then(|c| c.long()), r.get(2).and_then(|c| c.long())))))
        .collect();

    let mut datasets = Vec::new();
    let mut visible_per_schema: BTreeMap<String, usize> = BTreeMap::new();
    let mut known = lineage::Relations::default();
    for mut d in r.tables {
        known.insert(&d.schema, &d.name);
        if MV_INTERNAL.is_match(&d.name) {
            continue;
        }
        *visible_per_schema.entry(d.schema.clone()).or_default() += 1;
        if !keep(options, name, &d.schema, &d.name) {
            continue;
        }
        let k = (d.schema.clone(), d.name.clone());
        if d.kind == DatasetKind::View {
            d.view_definition = definitions.get(&k).cloned();
            if materialized.contains(&k) {
                d.kind = DatasetKind::MaterializedView;
            } else if let Some(cols) = late_binding.remove(&k) {
                d.kind = DatasetKind::LateBindingView;
                d.columns = cols;
            }
        }
        if let Some((rows, size)) = stats_by_table.get(&k) {
            d.row_count = *rows;
            d.size_mb = *size;
        }
        datasets.push(d);
    }
    // External objects are typed by their schema's kind, which the visibility batch reads:
    // without it they are not guessed at but kept as published.
    let unconfirmed = match visibility {
        Some(v) => {
            let kinds = external_schema_kinds(result(visibility::EXTERNAL_SCHEMAS));
            datasets.extend(external_tables(name, &r.external, &kinds, options, &mut notes));
            external_notes(&r.external, Some(external_schema_names(v)), &mut notes)
        }
        None => untyped_external(&r.external, &mut notes),
    };

    if r.definitions.is_ok() {
        notes.extend(definition_notes(&datasets, cut, &user));
    }
    datasets.iter().filter(|d| d.location.is_some()).for_each(|d| known.insert(&d.schema, &d.name));
    notes.extend(lineage::attach(name, &mut datasets, &r.dependencies, &known));
    let metadata_security = r.metadata_security.as_ref().ok().and_then(|rows| rows.first()).and_then(|r| text(r, 0));
    match metadata_security.as_deref() {
        Some("on" | "true" | "t" | "1") => notes.push(metadata_security_note(name, &user)),
        _ if visibility.is_some() => notes.extend(visibility_notes(
            name,
            &user,
            result(visibility::SCHEMAS),
            result(visibility::NAMESPACES),
            &relations,
            &visible_per_schema,
            options,
        )),
        _ => {}
    }
    notes.extend(stats_note(&r.stats, &user));
    let mut pending = Pending::new(name, DatabaseKind::Local, options, datasets);
    (pending.notes, pending.unconfirmed) = (notes, unconfirmed);
    pending
}

fn definition_notes(datasets: &[Dataset], cut: usize, user: &str) -> Vec<String> {
    let hidden = datasets
        .iter()
        .filter(|d| {
            let view =
                matches!(d.kind, DatasetKind::View | DatasetKind::MaterializedView | DatasetKind::LateBindingView);
            view && d.view_definition.is_none()
        })
        .count();
    let mut notes = Vec::new();
    if hidden > 0 {
        notes.push(format!(
            "view definitions of {hidden} views are hidden from user {}: information_schema.views shows \
             a definition to the view's owner only; read as the owner or a superuser to include them",
            grantee(user)
        ));
    }
    if cut > 0 {
        notes.push(format!(
            "view definitions of {cut} views are longer than {} characters and were cut there",
            sql::DEFINITION_CHUNK * sql::DEFINITION_CHUNKS
        ));
    }
    notes
}

fn metadata_security_note(database: &str, user: &str) -> String {
    let u = grantee(user);
    format!(
        "metadata_security is on in this warehouse: pg_class and pg_namespace show user {u} only what it may \
         access, so objects hidden from it in database {database} cannot be counted and no GRANT can name them; \
         to count them: CREATE ROLE registry_catalog; GRANT ACCESS CATALOG TO ROLE registry_catalog; \
         GRANT ROLE registry_catalog TO {u};"
    )
}

/// External schema → eskind, from SVV_EXTERNAL_SCHEMAS (r_SVV_EXTERNAL_SCHEMAS.html).
fn external_schema_kinds(rows: &[Row]) -> HashMap<String, i64> {
    rows.iter().filter_map(|r| Some((text(r, 0)?, r.get(1)?.long()?))).collect()
}

/// The external schemas of the visibility batch's results.
pub(crate) fn external_schema_names(visibility: &[Vec<Row>]) -> Vec<String> {
    let rows = visibility.get(visibility::EXTERNAL_SCHEMAS).map(Vec::as_slice).unwrap_or_default();
    let mut names: Vec<String> = rows.iter().filter_map(|r| text(r, 0)).collect();
    names.sort();
    names.dedup();
    names
}

/// Notes for external objects not read, and what their failure leaves unconfirmed.
fn external_notes(external: &ExternalRead, schemas: Option<Vec<String>>, notes: &mut Vec<String>) -> Unconfirmed {
    let mut unconfirmed = BTreeSet::new();
    for (schema, e) in &external.failed {
        match schema {
            Some(s) => {
                notes.push(format!(
                    "external schema {} not read ({}): {e}; its previously published tables are kept",
                    quote_ident(s),
                    e.kind()
                ));
                unconfirmed.insert(s.clone());
            }
            None => {
                notes.push(format!(
                    "external objects not read ({}): {e}; previously published external tables are kept",
                    e.kind()
                ));
                match &schemas {
                    Some(names) => unconfirmed.extend(names.iter().cloned()),
                    None => return Unconfirmed::Everything,
                }
            }
        }
    }
    if unconfirmed.is_empty() {
        Unconfirmed::Nothing
    } else {
        Unconfirmed::Schemas(unconfirmed)
    }
}

/// External objects read while their schemas' kinds were not: what they leave unconfirmed.
fn untyped_external(external: &ExternalRead, notes: &mut Vec<String>) -> Unconfirmed {
    let schemas: BTreeSet<String> = external.tables.iter().filter_map(|r| text(r, 0)).collect();
    if !external.failed.is_empty() {
        return external_notes(external, None, notes);
    }
    if !schemas.is_empty() {
        notes.push(format!(
            "{} external schemas not typed (their kinds are read with the visibility statements); \
             their previously published tables are kept",
            schemas.len()
        ));
        return Unconfirmed::Schemas(schemas);
    }
    Unconfirmed::Nothing
}

/// What an external object is, by its schema's eskind and its tabletype
/// (r_SVV_EXTERNAL_SCHEMAS.html, r_SVV_EXTERNAL_TABLES.html); `None` for objects that are not
/// datasets of this database (system schemas, and schemas over another local Redshift database,
/// whose tables that database lists itself).
fn external_kind(eskind: Option<i64>, tabletype: &str) -> Option<DatasetKind> {
    let view = matches!(tabletype.trim(), "VIEW" | "MATERIALIZED VIEW");
    Some(match (eskind, view) {
        (Some(3 | 8), false) => DatasetKind::FederatedTable,
        (Some(3 | 8), true) => DatasetKind::FederatedView,
        (Some(9 | 10), _) => DatasetKind::StreamingSource,
        (Some(5), _) => DatasetKind::RemoteRedshiftTable,
        (Some(4 | 6), _) => return None,
        (_, true) => DatasetKind::ExternalView,
        // Glue Data Catalog (1), Hive metastore (2), or a kind not documented yet.
        (_, false) => DatasetKind::ExternalTable,
    })
}

fn external_tables(
    database: &str,
    external: &ExternalRead,
    kinds: &HashMap<String, i64>,
    options: &ReadOptions,
    notes: &mut Vec<String>,
) -> Vec<Dataset> {
    let mut cols: HashMap<Key, Vec<Column>> = HashMap::new();
    for r in &external.columns {
        let (Some(k), Some(name), Some(ty), Some(pos)) =
            (key(r, 0, 1), text(r, 2), text(r, 3), r.get(4).and_then(|c| c.long()))
        else {
            continue;
        };
        if let Some(length) = r.get(7).and_then(|c| c.long()).filter(|l| *l > sql::EXTERNAL_TYPE_CHARS) {
            notes.push(format!(
                "the type of external column {}.{}.{name} is {length} characters, more than a Data API row can \
                 carry: its first {} are published",
                k.0,
                k.1,
                sql::EXTERNAL_TYPE_CHARS
            ));
        }
        cols.entry(k).or_default().push(Column {
            nullable: r.get(5).and_then(|c| c.flag()).unwrap_or(true),
            partition_key: r.get(6).and_then(|c| c.long()).unwrap_or(0) > 0,
            ..Column::plain(name, pos as i32, ty)
        });
    }
    external
        .tables
        .iter()
        .filter_map(|r| {
            let (schema, name) = key(r, 0, 1)?;
            let kind = external_kind(kinds.get(&schema).copied(), &text(r, 2).unwrap_or_default())?;
            let location = text(r, 3).filter(|l| !l.trim().is_empty());
            // Federated and other non-S3 schemas have locations of their own: only S3 is lineage.
            let upstream = location.iter().filter(|l| l.starts_with("s3://")).map(|l| Upstream::s3(l)).collect();
            // Redshift has no COMMENT on external tables, nor an owner in SVV_EXTERNAL_TABLES.
            keep(options, database, &schema, &name).then(|| Dataset {
                columns: cols.remove(&(schema.clone(), name.clone())).unwrap_or_default(),
                location,
                upstream,
                ..Dataset::named(schema, name, kind)
            })
        })
        .collect()
}

/// What the user cannot see, and the GRANT that would fix it.
fn visibility_notes(
    database: &str,
    user: &str,
    schemas: &[Row],
    namespaces: &[Row],
    relations: &[Key],
    visible_per_schema: &BTreeMap<String, usize>,
    options: &ReadOptions,
) -> Vec<String> {
    let u = grantee(user);
    let usable: BTreeSet<String> = schemas.iter().filter_map(|r| text(r, 0)).collect();
    let existing: BTreeSet<String> = namespaces.iter().filter_map(|r| text(r, 0)).collect();
    let mut existing_per_schema: BTreeMap<&str, usize> = BTreeMap::new();
    for (schema, table) in relations {
        if !MV_INTERNAL.is_match(table) {
            *existing_per_schema.entry(schema).or_default() += 1;
        }
    }
    let mut notes = Vec::new();
    for (schema, total) in &existing_per_schema {
        if !options.schemas.allows(schema) {
            continue;
        }
        let visible = visible_per_schema.get(*schema).copied().unwrap_or(0);
        let s = quote_ident(schema);
        if !usable.contains(*schema) {
            notes.push(format!(
                "schema {s} in database {database}: {total} relations, but user {u} has no USAGE on the schema, so none is in the registry; \
                 to add them: GRANT USAGE ON SCHEMA {s} TO {u}; GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {u};"
            ));
        } else if visible < *total {
            notes.push(format!(
                "schema {s} in database {database}: user {u} can see {visible} of {total} relations; \
                 to add the others: GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {u}; and for future ones: \
                 ALTER DEFAULT PRIVILEGES FOR USER <owner> IN SCHEMA {s} GRANT SELECT ON TABLES TO {u};"
            ));
        }
    }
    for named in &options.schemas.literals {
        let s = quote_ident(named);
        if !existing.contains(named) {
            notes.push(format!("schema {s} named in filters.schemas.include does not exist in database {database}"));
        } else if !usable.contains(named) && !existing_per_schema.contains_key(named.as_str()) {
            notes.push(format!(
                "schema {s} named in filters.schemas.include is not visible to user {u} in database {database}; \
                 GRANT USAGE ON SCHEMA {s} TO {u};"
            ));
        }
    }
    notes
}

/// A datashare consumer database from its SVV_REDSHIFT_TABLES datasets; its columns stream in
/// next. Each dataset reads the producer's object of the same schema and name (a consumer
/// database keeps the producer's names: consumer-cluster-admin.html).
pub(crate) fn shared_database(
    name: &str,
    tables: Vec<Dataset>,
    producer: Result<Option<&Producer>, &ReadError>,
    options: &ReadOptions,
) -> Pending {
    let upstream = |d: &Dataset| {
        let p = producer.ok().flatten()?;
        let shared = Upstream::shared(&p.account_id, &p.namespace, &d.schema, &d.name);
        Some(match &p.holder {
            Some(holder) => shared.held_by(holder, holder.shares.get(&p.share).map(String::as_str)),
            None => shared,
        })
    };
    let datasets = tables
        .into_iter()
        .filter(|d| !MV_INTERNAL.is_match(&d.name) && keep(options, name, &d.schema, &d.name))
        .map(|d| Dataset { upstream: upstream(&d).into_iter().collect(), ..d })
        .collect();
    let mut pending = Pending::new(name, DatabaseKind::Shared, options, datasets);
    if let Some(note) = producer_note(name, producer) {
        pending.notes.push(note);
    }
    pending
}

/// What a consumer database's upstreams lack, and why.
fn producer_note(name: &str, producer: Result<Option<&Producer>, &ReadError>) -> Option<String> {
    let p = match producer {
        Err(e) => {
            return Some(format!(
                "datashare producer not read ({}): {e}; its tables have no upstream: SVV_DATASHARES shows a \
                 datashare to superusers, its owner and users with ALTER or USAGE on it",
                e.kind()
            ))
        }
        Ok(None) => {
            return Some(format!(
                "database {name} is in no INBOUND datashare the user can see; its tables have no upstream"
            ))
        }
        Ok(Some(p)) => p,
    };
    let (account, namespace, share) = (&p.account_id, &p.namespace, &p.share);
    match &p.holder {
        None => Some(format!(
            "the producer of datashare {share} (account {account}, namespace {namespace}) has not been published by \
             this registry; its tables' upstreams name that account and namespace only until a run reads the \
             producer warehouse (docs/lineage.md)"
        )),
        Some(h) if !h.shares.contains_key(share) => Some(format!(
            "the producer warehouse {} does not show datashare {share} to the registry's database user, so the \
             database it is made from is unknown: GRANT ALTER ON DATASHARE {share} to that user there, or read the \
             producer as a superuser (docs/lineage.md)",
            h.warehouse.name()
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ports::{Cell, Fetch, ResultFormat};
    use crate::read::NameFilter;

    fn options() -> ReadOptions {
        ReadOptions {
            pull_comments: false,
            include_system_schemas: false,
            databases: NameFilter::default(),
            schemas: NameFilter::default(),
            tables: NameFilter::default(),
            statement_timeout: Duration::from_secs(1),
            databases_per_warehouse: 1,
            cutoff: None,
            fetch: Fetch { wait_seconds: 0, format: ResultFormat::Json },
        }
    }

    fn text(s: &str) -> Cell {
        Cell::Text(s.into())
    }

    fn tables(names: &[&str]) -> Vec<Dataset> {
        let row = |name: &str| vec![text("s"), text(name), text("TABLE"), text("owner"), Cell::Null];
        names.iter().filter_map(|n| redshift_dataset(&row(n), false)).collect()
    }

    fn column(table: &str, name: &str, position: i64) -> Row {
        let mut row = vec![text("s"), text(table), text(name), Cell::Long(position), text("integer")];
        row.extend([Cell::Null, text("YES"), text("az64"), Cell::Bool(false), Cell::Long(0), Cell::Null]);
        row
    }

    fn names(d: &Dataset) -> Vec<&str> {
        d.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// The structure that keeps memory flat: while the columns statement streams in, the rows
    /// held are those of the one table being read, and a table leaves, whole, when the next
    /// table's rows begin.
    #[test]
    fn a_table_leaves_whole_when_the_next_begins_and_only_its_rows_are_held() {
        let mut db = shared_database("dev", tables(&["a", "b", "c"]), Ok(None), &options());
        assert!(db.column(&column("a", "a2", 2)).unwrap().is_none());
        assert!(db.column(&column("a", "a1", 1)).unwrap().is_none());
        assert_eq!(db.held_rows(), 2);

        let a = db.column(&column("b", "b1", 1)).unwrap().expect("a is complete once b begins");
        assert_eq!((a.name.as_str(), names(&a)), ("a", vec!["a1", "a2"]), "columns sorted by position");
        assert_eq!(db.held_rows(), 1, "a's rows are gone");

        let rest = db.rest();
        assert_eq!(rest.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["b", "c"], "b, then c without columns");
        assert_eq!(db.held_rows(), 0);
        assert_eq!(db.catalog().datasets, 3);
    }

    /// Without the visibility batch the user is unknown: no GRANT names an empty user.
    #[test]
    fn a_grant_hint_without_a_known_user_names_a_placeholder() {
        let refused = Err(ReadError::Failed("permission denied for relation svv_table_info".into()));
        let note = stats_note(&refused, "").expect("a note");
        assert!(note.ends_with("TO <the reader's database user>;"), "{note}");
        assert!(stats_note(&refused, "IAMR:r").unwrap().ends_with("TO \"IAMR:r\";"));
    }

    /// Rows of a table that come back after another table's would send it without them.
    #[test]
    fn a_table_met_again_is_an_error_not_a_dataset_missing_columns() {
        let mut db = shared_database("dev", tables(&["a", "b"]), Ok(None), &options());
        db.column(&column("a", "a1", 1)).unwrap();
        db.column(&column("b", "b1", 1)).unwrap();
        let Err(Scattered(key)) = db.column(&column("a", "a2", 2)) else { panic!("a met again went unnoticed") };
        assert_eq!(key, ("s".to_string(), "a".to_string()));
    }
}
