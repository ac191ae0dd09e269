//! The catalog statements. Every one is fixed text: no catalog name is ever pasted in. Local
//! databases are read connected to themselves, filtered by `current_database()`; datashare
//! databases through a `:database` parameter. Each statement names the AWS page (Database
//! Developer Guide, docs.aws.amazon.com/redshift/latest/dg/) of every catalog object it reads.
//!
//! Scope matters: SVV_REDSHIFT_* and SVV_ALL_* cover every database of the cluster, so they are
//! filtered to one; information_schema, pg_catalog, SVV_TABLE_INFO and
//! PG_GET_LATE_BINDING_VIEW_COLS cover the connected database only, which is why a local
//! database is read connected to itself.

use std::sync::LazyLock;

use regex::Regex;

/// Redshift's internal table behind materialized view `<mv>`: `mv_tbl__<mv>__<n>`.
pub(crate) static MV_INTERNAL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^mv_tbl__(.+)__[0-9]+$").unwrap());

/// The materialized view whose internal table `table` is (`mv_tbl__{name}__0`), if it is one.
pub(crate) fn materialized_view_of(table: &str) -> Option<String> {
    MV_INTERNAL.captures(table).map(|c| c[1].to_string())
}

/// Schemas Redshift keeps for itself; left out unless `includeSystemSchemas`.
pub(crate) const SYSTEM_SCHEMAS: [&str; 7] =
    ["pg_catalog", "information_schema", "pg_internal", "pg_auto_copy", "pg_automv", "catalog_history", "pg_toast"];
/// Prefixes of per-session system schemas.
pub(crate) const SYSTEM_SCHEMA_PREFIXES: [&str; 2] = ["pg_temp_", "pg_toast_temp_"];

pub(crate) fn is_system_schema(name: &str) -> bool {
    SYSTEM_SCHEMAS.contains(&name) || SYSTEM_SCHEMA_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The SQL predicate of [`is_system_schema`], negated; built from the constants above only.
fn not_system(column: &str, include_system: bool) -> String {
    if include_system {
        return "TRUE".to_string();
    }
    let names: Vec<String> = SYSTEM_SCHEMAS.iter().map(|n| format!("'{n}'")).collect();
    let prefixes: Vec<String> =
        SYSTEM_SCHEMA_PREFIXES.iter().map(|p| format!("left({column}, {}) <> '{p}'", p.len())).collect();
    format!("{column} NOT IN ({}) AND {}", names.join(", "), prefixes.join(" AND "))
}

/// SVV_REDSHIFT_DATABASES (r_SVV_REDSHIFT_DATABASES.html): every database of the warehouse,
/// `local` or `shared` (datashare consumer).
pub(crate) const DATABASES: &str =
    "SELECT database_name, database_type FROM svv_redshift_databases ORDER BY database_name";

/// SVV_REDSHIFT_TABLES (r_SVV_REDSHIFT_TABLES.html): tables and views the user can see. Essential:
/// without it the database is not read.
pub fn tables(include_system: bool) -> String {
    format!(
        "SELECT schema_name, table_name, table_type, table_owner, remarks FROM svv_redshift_tables \
         WHERE database_name = current_database() AND {}",
        not_system("schema_name", include_system)
    )
}

/// SVV_REDSHIFT_COLUMNS (r_SVV_REDSHIFT_COLUMNS.html): columns with type as Redshift prints it,
/// default, nullability, encoding, dist key, sort key position, comment. Essential. Ordered by
/// table, so that a table's columns arrive together and it can leave as soon as they have.
pub fn columns(include_system: bool) -> String {
    format!(
        "SELECT schema_name, table_name, column_name, ordinal_position, data_type, column_default, \
         is_nullable, encoding, distkey, sortkey, remarks FROM svv_redshift_columns \
         WHERE database_name = current_database() AND {} ORDER BY schema_name, table_name",
        not_system("schema_name", include_system)
    )
}

/// What the user may see against what exists, as one BatchExecuteStatement: cheap catalog reads
/// that succeed or fail together (a batch is one transaction, Management Guide data-api.html).
/// Optional: without them the hidden counts, GRANT hints and external schema kinds are missing.
/// Their order is the [`visibility`] order.
pub(crate) fn visibility_batch(include_system: bool) -> Vec<String> {
    let s = |c: &str| not_system(c, include_system);
    vec![
        // CURRENT_USER (r_CURRENT_USER.html): the database user, for the GRANTs in notes.
        "SELECT current_user::varchar".to_string(),
        // SVV_ALL_SCHEMAS (r_SVV_ALL_SCHEMAS.html): schemas this user may use, local and external.
        format!(
            "SELECT schema_name, schema_type FROM svv_all_schemas \
             WHERE database_name = current_database() AND {}",
            s("schema_name")
        ),
        // PG_NAMESPACE (PostgreSQL system catalog, listed in c_join_PG.html): every schema,
        // visible or not, to tell "hidden" from "absent".
        format!("SELECT nspname::varchar FROM pg_namespace WHERE {}", s("nspname")),
        // PG_CLASS, PG_NAMESPACE (c_join_PG.html): every relation, privileges or not, to count
        // what the user cannot see and to find materialized views' internal mv_tbl__ tables.
        format!(
            "SELECT n.nspname::varchar, c.relname::varchar FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'v', 'm', 'p') AND {}",
            s("n.nspname")
        ),
        // SVV_EXTERNAL_SCHEMAS (r_SVV_EXTERNAL_SCHEMAS.html): the external schemas of the connected
        // database and their kind (eskind), which tells a Glue table from a federated one. Its
        // `databasename` is the external database's name, so it is not a filter here.
        "SELECT schemaname::varchar, eskind FROM svv_external_schemas".to_string(),
    ]
}

/// PG_SETTINGS: whether metadata security is on (t_metadata_security.html), which filters
/// pg_class and pg_namespace too, so that hidden objects cannot be counted. UNCONFIRMED that
/// Redshift lists `metadata_security` in pg_settings (no AWS page names pg_settings), so it runs
/// on its own, outside the visibility batch: no row, or a failure, reads as "unknown" and costs
/// only the metadata-security note.
pub(crate) const METADATA_SECURITY: &str = "SELECT setting::varchar FROM pg_settings WHERE name = 'metadata_security'";

/// Indexes into the results of [`visibility_batch`].
pub mod visibility {
    pub(crate) const USER: usize = 0;
    pub(crate) const SCHEMAS: usize = 1;
    pub(crate) const NAMESPACES: usize = 2;
    pub(crate) const RELATIONS: usize = 3;
    pub(crate) const EXTERNAL_SCHEMAS: usize = 4;
}

/// PG_GET_LATE_BINDING_VIEW_COLS (PG_GET_LATE_BINDING_VIEW_COLS.html): late-binding views have no
/// pg_attribute rows; this is where their columns are. It can fail on one broken view: optional.
pub(crate) const LATE_BINDING_COLUMNS: &str = "SELECT view_schema::varchar, view_name::varchar, col_name::varchar, \
     col_type::varchar, col_num FROM pg_get_late_binding_view_cols() \
     cols(view_schema name, view_name name, col_name name, col_type varchar, col_num int)";

/// SVV_MV_INFO (r_SVV_MV_INFO.html): materialized views (stored as views). `schema_name` and
/// `name` are char(128), space-padded: trimmed before matching.
pub(crate) const MATERIALIZED_VIEWS: &str =
    "SELECT schema_name, name FROM svv_mv_info WHERE database_name = current_database()";

const EXTERNAL_TABLES: &str = "SELECT schemaname, tablename, tabletype, location FROM svv_external_tables \
     WHERE redshift_database_name = current_database()";
/// `external_type` is text (r_SVV_EXTERNAL_COLUMNS.html), and a nested Glue type (a struct of
/// arrays of structs...) can pass the Data API's 64 KB per row, which fails the whole statement
/// (Management Guide, data-api-troubleshooting.html): it travels cut to [`EXTERNAL_TYPE_CHARS`]
/// characters (at most 32,000 bytes of UTF-8), with its whole length to tell a cut one.
const EXTERNAL_COLUMNS: &str = "SELECT schemaname, tablename, columnname, substring(external_type, 1, 8000), \
     columnnum, is_nullable, part_key, length(external_type) FROM svv_external_columns \
     WHERE redshift_database_name = current_database()";

/// Characters of an external column's type read; a longer one is cut, with a note.
pub(crate) const EXTERNAL_TYPE_CHARS: i64 = 8_000;

/// External objects as one BatchExecuteStatement: SVV_EXTERNAL_TABLES (r_SVV_EXTERNAL_TABLES.html),
/// which lists Spectrum, federated and streaming objects alike with their `tabletype`, and
/// SVV_EXTERNAL_COLUMNS (r_SVV_EXTERNAL_COLUMNS.html). They reach outside the warehouse (Glue, a
/// Hive metastore, a federated database) and may be slow or fail: optional, on their own. The
/// order is [`external`]'s.
pub(crate) fn external_batch() -> Vec<String> {
    vec![EXTERNAL_TABLES.to_string(), EXTERNAL_COLUMNS.to_string()]
}

/// The same two statements for one external schema (`:schema`), run when the whole batch failed,
/// so that one broken schema (a Glue database whose IAM role was removed) costs only its own
/// tables.
pub(crate) fn external_of_schema() -> [String; 2] {
    [format!("{EXTERNAL_TABLES} AND schemaname = :schema"), format!("{EXTERNAL_COLUMNS} AND schemaname = :schema")]
}

/// Indexes into the results of [`external_batch`].
pub mod external {
    pub const TABLES: usize = 0;
    pub(crate) const COLUMNS: usize = 1;
}

/// Characters of a view definition per result row. The Data API refuses a row over 64 KB and
/// fails the whole statement (Management Guide data-api.html); 8,000 characters are at most
/// 32,000 bytes of UTF-8, so a long definition travels as several rows and costs nothing else.
pub(crate) const DEFINITION_CHUNK: usize = 8_000;
/// Chunks read per view: definitions past 64 x 8,000 characters are cut, with a note.
pub(crate) const DEFINITION_CHUNKS: usize = 64;

/// information_schema.views (PostgreSQL's information schema, which Redshift keeps): view
/// definitions of the connected database, in chunks of [`DEFINITION_CHUNK`] characters, with the
/// whole length to tell a cut definition. Optional.
pub(crate) fn view_definitions(include_system: bool) -> String {
    format!(
        "SELECT v.table_schema::varchar, v.table_name::varchar, p.part, \
         substring(v.view_definition, p.part * {DEFINITION_CHUNK} + 1, {DEFINITION_CHUNK})::varchar, \
         length(v.view_definition) \
         FROM information_schema.views v \
         CROSS JOIN (SELECT generate_series(0, {}) AS part) p \
         WHERE v.view_definition IS NOT NULL AND length(v.view_definition) > p.part * {DEFINITION_CHUNK} AND {}",
        DEFINITION_CHUNKS - 1,
        not_system("v.table_schema", include_system)
    )
}

/// The relations each regular view of the connected database reads: its pg_rewrite rule's
/// pg_depend rows, the join of AWS's admin view v_view_dependency (amazon-redshift-utils,
/// src/AdminViews/v_view_dependency.sql), which Redshift keeps for regular views only
/// (r_CREATE_VIEW.html: late-binding views have none). The PostgreSQL catalog tables are open
/// to every user (c_intro_catalog_views.html). Optional: lineage then comes from definitions.
pub(crate) fn view_dependencies(include_system: bool) -> String {
    format!(
        "SELECT DISTINCT vn.nspname::varchar, v.relname::varchar, rn.nspname::varchar, r.relname::varchar \
         FROM pg_rewrite w \
         JOIN pg_class v ON v.oid = w.ev_class AND v.relkind = 'v' \
         JOIN pg_namespace vn ON vn.oid = v.relnamespace \
         JOIN pg_depend d ON d.objid = w.oid \
         JOIN pg_class r ON r.oid = d.refobjid AND r.oid <> v.oid \
         JOIN pg_namespace rn ON rn.oid = r.relnamespace \
         WHERE {}",
        not_system("vn.nspname", include_system)
    )
}

/// SVV_TABLE_INFO (r_SVV_TABLE_INFO.html): row counts and sizes of the connected database. Only
/// superusers, or users granted SELECT on it, may read it, so it runs on its own: a refusal
/// leaves the rest of the database read.
pub(crate) const TABLE_STATS: &str = "SELECT \"schema\", \"table\", size, tbl_rows FROM svv_table_info";

/// SVV_DATASHARES (r_SVV_DATASHARES.html): the datashares a warehouse makes (OUTBOUND rows:
/// the source database of each, and the warehouse's own namespace as producer_namespace) and
/// the producer of each consumer database (INBOUND rows). Only superusers, share owners and
/// users with ALTER or USAGE on a datashare see its row.
pub(crate) const DATASHARES: &str =
    "SELECT share_type, share_name, consumer_database, source_database, producer_account, \
     producer_namespace FROM svv_datashares WHERE share_type IN ('INBOUND', 'OUTBOUND')";

/// SVV_REDSHIFT_TABLES (r_SVV_REDSHIFT_TABLES.html) of a datashare consumer database.
pub(crate) const SHARED_TABLES: &str = "SELECT schema_name, table_name, table_type, table_owner, remarks \
                                 FROM svv_redshift_tables WHERE database_name = :database";

/// SVV_REDSHIFT_COLUMNS (r_SVV_REDSHIFT_COLUMNS.html) of a datashare consumer database, ordered
/// by table like [`columns`].
pub(crate) const SHARED_COLUMNS: &str = "SELECT schema_name, table_name, column_name, ordinal_position, data_type, \
                                  column_default, is_nullable, encoding, distkey, sortkey, remarks \
                                  FROM svv_redshift_columns WHERE database_name = :database \
                                  ORDER BY schema_name, table_name";
