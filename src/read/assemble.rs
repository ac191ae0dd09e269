//! Rows of the catalog statements → the catalog model, with the visibility notes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

use regex::Regex;

use super::sql::{self, local};
use super::{ReadOptions, Row};
use crate::catalog::{Column, DatabaseCatalog, DatabaseKind, Dataset, DatasetKind};

/// Redshift's internal table behind materialized view `<mv>`: `mv_tbl__<mv>__<n>`.
static MV_INTERNAL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^mv_tbl__(.+)__[0-9]+$").unwrap());

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

fn columns_by_table(rows: &[Row], pull_comments: bool) -> HashMap<Key, Vec<Column>> {
    let mut by_table: HashMap<Key, Vec<Column>> = HashMap::new();
    for (k, c) in rows.iter().filter_map(|r| redshift_column(r, pull_comments)) {
        by_table.entry(k).or_default().push(c);
    }
    by_table
}

/// A row of SVV_REDSHIFT_TABLES: schema, table, type, owner, remarks.
fn redshift_dataset(row: &Row, pull_comments: bool) -> Option<Dataset> {
    let kind = match text(row, 2)?.as_str() {
        "VIEW" => DatasetKind::View,
        _ => DatasetKind::Table,
    };
    Some(Dataset {
        schema: text(row, 0)?,
        name: text(row, 1)?,
        kind,
        owner: text(row, 3),
        description: if pull_comments { text(row, 4).filter(|d| !d.is_empty()) } else { None },
        view_definition: None,
        location: None,
        row_count: None,
        size_mb: None,
        columns: Vec::new(),
    })
}

fn keep(options: &ReadOptions, database: &str, schema: &str, table: &str) -> bool {
    (options.include_system_schemas || !sql::is_system_schema(schema))
        && options.schemas.allows(schema)
        && options.tables.allows(&format!("{database}.{schema}.{table}"))
}

fn finish(name: &str, kind: DatabaseKind, mut datasets: Vec<Dataset>, notes: Vec<String>) -> DatabaseCatalog {
    for d in &mut datasets {
        d.columns.sort_by(|a, b| a.position.cmp(&b.position).then_with(|| a.name.cmp(&b.name)));
    }
    datasets.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    DatabaseCatalog { name: name.to_string(), kind, datasets, notes }
}

/// A local database from the results of [`sql::local_batch`] and, when readable, SVV_TABLE_INFO.
pub fn local_database(
    name: &str,
    results: &[Vec<Row>],
    stats: Option<&[Row]>,
    options: &ReadOptions,
) -> DatabaseCatalog {
    let empty = Vec::new();
    let result = |i: usize| results.get(i).unwrap_or(&empty);
    let user = result(local::USER).first().and_then(|r| text(r, 0)).unwrap_or_default();

    // Materialized views: those SVV_MV_INFO shows (the user's own), and any view with an
    // internal mv_tbl__ table, which pg_class shows whoever owns it.
    let relations: Vec<Key> = result(local::RELATIONS).iter().filter_map(|r| key(r, 0, 1)).collect();
    let mut materialized: BTreeSet<Key> =
        result(local::MATERIALIZED_VIEWS).iter().filter_map(|r| key(r, 0, 1)).collect();
    for (schema, table) in &relations {
        if let Some(c) = MV_INTERNAL.captures(table) {
            materialized.insert((schema.clone(), c[1].to_string()));
        }
    }
    let mut late_binding: HashMap<Key, Vec<Column>> = HashMap::new();
    for r in result(local::LATE_BINDING_COLUMNS) {
        let (Some(k), Some(col), Some(ty), Some(pos)) =
            (key(r, 0, 1), text(r, 2), text(r, 3), r.get(4).and_then(|c| c.long()))
        else {
            continue;
        };
        late_binding.entry(k).or_default().push(Column {
            name: col,
            position: pos as i32,
            data_type: ty,
            nullable: true,
            default: None,
            dist_key: false,
            sort_key_position: None,
            encoding: None,
            description: None,
            partition_key: false,
        });
    }
    let mut columns = columns_by_table(result(local::COLUMNS), options.pull_comments);
    let definitions: HashMap<Key, String> =
        result(local::VIEW_DEFINITIONS).iter().filter_map(|r| Some((key(r, 0, 1)?, text(r, 2)?))).collect();
    let stats_by_table: HashMap<Key, (Option<i64>, Option<i64>)> = stats
        .unwrap_or_default()
        .iter()
        .filter_map(|r| Some((key(r, 0, 1)?, (r.get(3).and_then(|c| c.long()), r.get(2).and_then(|c| c.long())))))
        .collect();

    let mut datasets = Vec::new();
    let mut visible_per_schema: BTreeMap<String, usize> = BTreeMap::new();
    for row in result(local::TABLES) {
        let Some(mut d) = redshift_dataset(row, options.pull_comments) else {
            continue;
        };
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
        if d.columns.is_empty() {
            d.columns = columns.remove(&k).unwrap_or_default();
        }
        if let Some((rows, size)) = stats_by_table.get(&k) {
            d.row_count = *rows;
            d.size_mb = *size;
        }
        datasets.push(d);
    }
    datasets.extend(external_tables(name, result(local::EXTERNAL_TABLES), result(local::EXTERNAL_COLUMNS), options));

    let hidden_definitions = datasets
        .iter()
        .filter(|d| matches!(d.kind, DatasetKind::View | DatasetKind::MaterializedView) && d.view_definition.is_none())
        .count();
    let mut notes = visibility_notes(
        name,
        &user,
        result(local::SCHEMAS),
        result(local::NAMESPACES),
        &relations,
        &visible_per_schema,
        options,
    );
    if hidden_definitions > 0 {
        notes.push(format!(
            "view definitions of {hidden_definitions} views are hidden from user {}: information_schema.views shows \
             a definition to the view's owner only; read as the owner or a superuser to include them",
            quote_ident(&user)
        ));
    }
    if stats.is_none() {
        notes.push(format!(
            "row counts and sizes unavailable: user {} may not read svv_table_info; to add them: GRANT SELECT ON svv_table_info TO {};",
            quote_ident(&user),
            quote_ident(&user)
        ));
    }
    finish(name, DatabaseKind::Local, datasets, notes)
}

fn external_tables(database: &str, tables: &[Row], columns: &[Row], options: &ReadOptions) -> Vec<Dataset> {
    let mut cols: HashMap<Key, Vec<Column>> = HashMap::new();
    for r in columns {
        let (Some(k), Some(name), Some(ty), Some(pos)) =
            (key(r, 0, 1), text(r, 2), text(r, 3), r.get(4).and_then(|c| c.long()))
        else {
            continue;
        };
        cols.entry(k).or_default().push(Column {
            name,
            position: pos as i32,
            data_type: ty,
            nullable: r.get(5).and_then(|c| c.flag()).unwrap_or(true),
            default: None,
            dist_key: false,
            sort_key_position: None,
            encoding: None,
            description: None,
            partition_key: r.get(6).and_then(|c| c.long()).unwrap_or(0) > 0,
        });
    }
    tables
        .iter()
        .filter_map(|r| {
            let (schema, name) = key(r, 0, 1)?;
            keep(options, database, &schema, &name).then(|| Dataset {
                columns: cols.remove(&(schema.clone(), name.clone())).unwrap_or_default(),
                schema,
                name,
                kind: DatasetKind::ExternalTable,
                owner: None,
                // Redshift has no COMMENT on external tables.
                description: None,
                view_definition: None,
                location: text(r, 2),
                row_count: None,
                size_mb: None,
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
    let u = quote_ident(user);
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

/// A datashare consumer database from SVV_REDSHIFT_TABLES and SVV_REDSHIFT_COLUMNS rows.
pub fn shared_database(name: &str, tables: &[Row], columns: &[Row], options: &ReadOptions) -> DatabaseCatalog {
    let mut columns = columns_by_table(columns, options.pull_comments);
    let datasets = tables
        .iter()
        .filter_map(|r| redshift_dataset(r, options.pull_comments))
        .filter(|d| !MV_INTERNAL.is_match(&d.name) && keep(options, name, &d.schema, &d.name))
        .map(|mut d| {
            d.columns = columns.remove(&(d.schema.clone(), d.name.clone())).unwrap_or_default();
            d
        })
        .collect();
    finish(name, DatabaseKind::Shared, datasets, Vec::new())
}
