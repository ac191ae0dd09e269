//! What real Redshift, the Data API and S3 do that the first reader got wrong (issue 8), each
//! taught to the emulator or the fault front first: optional catalog parts that fail or run
//! long, 64 KB rows, padded char columns, external schema kinds, `HasResultSet`, metadata
//! security, SVV_TABLE_INFO errors, the Lambda deadline, Serverless without permissions, busy
//! clusters and S3's 403 for a missing key.

mod support;

use std::time::{Duration, Instant};

use redshift_registry::aws::RedshiftData;
use redshift_registry::catalog::{DatasetKind, WarehouseId};
use redshift_registry::error::ErrorKind;
use redshift_registry::event::RunRequest;
use redshift_registry::outcome::MANIFESTS;
use redshift_registry::ports::{DbAuth, Target};
use redshift_registry::read::{ReadError, ReadOptions};
use redshift_registry::report::{Report, RunStatus, SkipCause, WarehouseState};
use serde_json::json;
use support::fault_front::{FaultFront, Rewrite};
use support::org::*;
use support::reading::{read_whole, DatabaseCatalog, Outcome as DatabaseOutcome};
use support::*;

fn options(extra: serde_json::Value) -> ReadOptions {
    let mut c = json!({"output": {"bucket": "b-b-b"}, "roleName": "R",
        "sources": [{"accountId": "111111111111", "regions": ["us-east-1"]}]});
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    ReadOptions::from_config(&config(c))
}

/// The reader with the function's own credentials, as tests/read.rs does.
async fn read(cluster: &str, options: &ReadOptions) -> Vec<DatabaseOutcome> {
    let api = RedshiftData::new(&function_config(&moto_url()).await);
    let target = Target { warehouse: WarehouseId::ClusterIdentifier(cluster.to_string()), auth: DbAuth::Iam };
    read_whole(&api, &target, "dev", options).await.expect("databases listed")
}

fn read_one(outcomes: Vec<DatabaseOutcome>) -> DatabaseCatalog {
    match outcomes.into_iter().next().expect("one database") {
        DatabaseOutcome::Read(db) => db,
        DatabaseOutcome::Failed { name, error, .. } => panic!("database {name} failed: {error}"),
    }
}

fn kinds(db: &DatabaseCatalog) -> Vec<(&str, &str, DatasetKind)> {
    db.datasets.iter().map(|d| (d.schema.as_str(), d.name.as_str(), d.kind)).collect()
}

fn has_note(db: &DatabaseCatalog, needle: &str) -> bool {
    db.notes.iter().any(|n| n.contains(needle))
}

const READER_SALES: &str = r#"DO $$ BEGIN CREATE ROLE "IAMR:DataRegistryRedshiftReader";
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
CREATE SCHEMA sales;
CREATE TABLE sales.orders (id integer NOT NULL, amount numeric(18,2));
GRANT USAGE ON SCHEMA sales TO "IAMR:DataRegistryRedshiftReader";
GRANT SELECT ON ALL TABLES IN SCHEMA sales TO "IAMR:DataRegistryRedshiftReader";
"#;

/// External schemas of every documented kind (r_SVV_EXTERNAL_SCHEMAS.html), one of them broken
/// when `broken` is set, as a Glue database whose IAM role was removed.
fn external_fixture(broken: bool) -> String {
    let failure =
        if broken { "'ERROR: Not authorized to get credentials of role arn:aws:iam::1:role/gone'" } else { "NULL" };
    format!(
        r#"{READER_SALES}
CREATE SCHEMA lake; CREATE SCHEMA fed_pg; CREATE SCHEMA my_fed; CREATE SCHEMA stream; CREATE SCHEMA other_db; CREATE SCHEMA old_lake;
INSERT INTO pg_internal.fixture_external_schemas (schema_name, eskind, failure) VALUES
  ('lake', 1, NULL), ('fed_pg', 3, NULL), ('my_fed', 8, NULL), ('stream', 9, NULL), ('other_db', 4, NULL),
  ('old_lake', 2, {failure});
INSERT INTO pg_internal.fixture_external_tables (schema_name, table_name, tabletype, location) VALUES
  ('lake', 'clicks', 'TABLE', 's3://lake/clicks/'), ('lake', 'daily_clicks', 'VIEW', NULL),
  ('fed_pg', 'customers', 'TABLE', NULL), ('my_fed', 'orders_v', 'VIEW', NULL),
  ('stream', 'events', 'TABLE', NULL), ('other_db', 'orders', 'TABLE', NULL),
  ('old_lake', 'archive', 'TABLE', 's3://lake/archive/');
INSERT INTO pg_internal.fixture_external_columns (schema_name, table_name, column_name, external_type, columnnum)
  VALUES ('lake', 'clicks', 'url', 'string', 1), ('old_lake', 'archive', 'id', 'int', 1);
GRANT USAGE ON SCHEMA lake, fed_pg, my_fed, stream, other_db, old_lake TO "IAMR:DataRegistryRedshiftReader";
"#
    )
}

/// External objects get their truthful type from their schema's kind and their tabletype; a
/// schema over another local database is not listed twice.
#[tokio::test(flavor = "multi_thread")]
async fn external_objects_get_truthful_types() {
    let cluster = unique("extkinds");
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &external_fixture(false))]).await;
    let db = read_one(read(&cluster, &options(json!({}))).await);
    assert_eq!(
        kinds(&db),
        vec![
            ("fed_pg", "customers", DatasetKind::FederatedTable),
            ("lake", "clicks", DatasetKind::ExternalTable),
            ("lake", "daily_clicks", DatasetKind::ExternalView),
            ("my_fed", "orders_v", DatasetKind::FederatedView),
            ("old_lake", "archive", DatasetKind::ExternalTable),
            ("sales", "orders", DatasetKind::Table),
            ("stream", "events", DatasetKind::StreamingSource),
        ]
    );
    assert!(db.notes.iter().all(|n| n.contains("svv_table_info")), "only the stats GRANT: {:?}", db.notes);
}

/// A broken external schema costs only its own tables: the database is read, the other external
/// schemas too, and the note names the schema and the error. The old single batch failed the
/// whole database.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_external_schema_costs_only_itself() {
    let cluster = unique("extbroken");
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &external_fixture(true))]).await;
    let db = read_one(read(&cluster, &options(json!({}))).await);
    let names: Vec<&str> = db.datasets.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, vec!["customers", "clicks", "daily_clicks", "orders_v", "orders", "events"]);
    assert!(has_note(&db, "external schema \"old_lake\" not read (statementFailed)"), "{:?}", db.notes);
    assert!(has_note(&db, "Not authorized to get credentials"), "{:?}", db.notes);
}

/// When external objects fail, their previously published datasets are kept, not removed; the
/// rest of the database is published as read.
#[tokio::test(flavor = "multi_thread")]
async fn unread_external_tables_are_kept_in_the_registry() {
    let org = org("fc_extkeep").await;
    let cluster = unique("extkeep");
    org.cluster(&cluster, &[("dev", &external_fixture(false))]).await;
    let first = org.run(&org.moto, &RunRequest::default()).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:#?}");
    let before: Vec<String> = org.index(&cluster).await.datasets.into_iter().map(|e| e.name).collect();
    assert!(before.contains(&"dev.old_lake.archive".to_string()), "{before:?}");

    create_warehouse(&org.account, &cluster, &[("dev", &external_fixture(true))]).await;
    let second = org.run(&org.moto, &RunRequest::default()).await;
    assert_eq!(second.status, RunStatus::Succeeded, "a degraded part is a note, not a failure: {second:#?}");
    let after: Vec<String> = org.index(&cluster).await.datasets.into_iter().map(|e| e.name).collect();
    assert_eq!(after, before, "the broken schema's table is kept");
    let publish = second.accounts[0].regions[0].warehouses[0].published(MANIFESTS).unwrap();
    assert_eq!((publish.kept, publish.removed), (1, 0));
}

/// A failing late-binding function or a failing SVV_TABLE_INFO degrades to a note with the
/// error; only a permission error asks for a GRANT.
#[tokio::test(flavor = "multi_thread")]
async fn optional_statements_fail_alone_with_their_error() {
    let cluster = unique("optfail");
    let fixture = format!(
        "{READER_SALES}GRANT SELECT ON pg_internal.svv_table_info TO \"IAMR:DataRegistryRedshiftReader\";
         CREATE VIEW sales.recent AS SELECT;
         GRANT SELECT ON sales.recent TO \"IAMR:DataRegistryRedshiftReader\";
         INSERT INTO pg_internal.fixture_late_binding_view_cols VALUES ('sales', 'recent', 'id', 'integer', 1);"
    );
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &fixture)]).await;
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"failSql": "pg_get_late_binding_view_cols|svv_table_info"})).await;
    let db = read_one(read(&cluster, &options(json!({}))).await);
    assert_eq!(kinds(&db), vec![("sales", "orders", DatasetKind::Table), ("sales", "recent", DatasetKind::View)]);
    assert_eq!(db.datasets[0].columns.len(), 2, "essentials read");
    assert!(has_note(&db, "columns of late-binding views not read (statementFailed)"), "{:?}", db.notes);
    assert!(has_note(&db, "row counts and sizes not read (statementFailed): svv_table_info"), "{:?}", db.notes);
    assert!(!has_note(&db, "GRANT SELECT ON svv_table_info"), "not a permission problem: {:?}", db.notes);
}

/// A view definition longer than a 64 KB row arrives in chunks and whole: read in one row, it
/// would pass the Data API's row limit and fail the database with it.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_view_definition_is_read_whole() {
    let cluster = unique("longview");
    let literal = "é".repeat(40_000);
    let fixture = format!(
        "{READER_SALES}CREATE VIEW sales.long AS SELECT '{literal}'::varchar AS s;
         ALTER VIEW sales.long OWNER TO \"IAMR:DataRegistryRedshiftReader\";"
    );
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &fixture)]).await;
    let db = read_one(read(&cluster, &options(json!({}))).await);
    let view = db.datasets.iter().find(|d| d.name == "long").expect("the view");
    let definition = view.view_definition.as_deref().expect("a definition");
    assert!(definition.contains(&literal), "{} characters", definition.chars().count());
}

/// SVV_MV_INFO's names are char(128) and arrive space-padded: a materialized view the user owns,
/// with no internal table to betray it, is still recognised.
#[tokio::test(flavor = "multi_thread")]
async fn padded_materialized_view_names_match() {
    let cluster = unique("mvpad");
    let fixture = format!(
        "{READER_SALES}CREATE MATERIALIZED VIEW sales.totals AS SELECT sum(amount) AS total FROM sales.orders;
         ALTER MATERIALIZED VIEW sales.totals OWNER TO \"IAMR:DataRegistryRedshiftReader\";"
    );
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &fixture)]).await;
    let db = read_one(read(&cluster, &options(json!({}))).await);
    assert_eq!(
        kinds(&db),
        vec![("sales", "orders", DatasetKind::Table), ("sales", "totals", DatasetKind::MaterializedView)]
    );
}

/// Results are fetched when DescribeStatement says `HasResultSet`, whatever `ResultRows` says.
#[tokio::test(flavor = "multi_thread")]
async fn rows_are_fetched_by_has_result_set() {
    let cluster = unique("resultrows");
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", READER_SALES)]).await;
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"resultRowsZero": true})).await;
    let db = read_one(read(&cluster, &options(json!({}))).await);
    assert_eq!(kinds(&db), vec![("sales", "orders", DatasetKind::Table)]);
    assert_eq!(db.datasets[0].columns.len(), 2);
}

/// With metadata_security on, pg_class hides what the user may not see, so the hidden counts
/// read zero: the note says so instead of going quiet.
#[tokio::test(flavor = "multi_thread")]
async fn metadata_security_is_detected() {
    let cluster = unique("mdsec");
    let fixture = format!(
        "{READER_SALES}CREATE SCHEMA finance; CREATE TABLE finance.salaries (id int);
         INSERT INTO pg_internal.fixture_settings VALUES ('metadata_security', 'true');"
    );
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &fixture)]).await;
    let db = read_one(read(&cluster, &options(json!({}))).await);
    assert!(has_note(&db, "metadata_security is on"), "{:?}", db.notes);
    assert!(has_note(&db, "GRANT ACCESS CATALOG TO ROLE"), "{:?}", db.notes);
}

/// A statement cut at the Lambda deadline is reported as `deadline`, not as a slow statement.
#[tokio::test(flavor = "multi_thread")]
async fn a_statement_cut_by_the_deadline_is_not_a_timeout() {
    let cluster = unique("deadline");
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", READER_SALES)]).await;
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"slowSql": "svv_redshift_columns", "slowSqlMs": 20000})).await;
    let options = ReadOptions { cutoff: Some(Instant::now() + Duration::from_secs(3)), ..options(json!({})) };
    match read(&cluster, &options).await.into_iter().next().expect("one database") {
        DatabaseOutcome::Failed { error, .. } => assert_eq!(error, ReadError::Deadline),
        DatabaseOutcome::Read(db) => panic!("read past the deadline: {db:?}"),
    }

    // An optional part cut by the deadline too: no degraded database is published, it waits.
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"slowSql": "information_schema.views", "slowSqlMs": 20000})).await;
    let options = ReadOptions { cutoff: Some(Instant::now() + Duration::from_secs(3)), ..options };
    match read(&cluster, &options).await.into_iter().next().expect("one database") {
        DatabaseOutcome::Failed { error, .. } => assert_eq!(error, ReadError::Deadline),
        DatabaseOutcome::Read(db) => panic!("published without its view definitions: {:?}", db.notes),
    }
}

fn only_warehouse(report: &Report) -> &redshift_registry::report::WarehouseReport {
    report.accounts[0].regions[0].warehouses.first().unwrap_or_else(|| panic!("no warehouse: {report:#?}"))
}

/// A reader role without the Serverless actions keeps its clusters read; the workgroups that
/// could not be listed are not taken for absent, and the run is not partial for it.
#[tokio::test(flavor = "multi_thread")]
async fn serverless_denied_keeps_clusters_and_workgroups() {
    let org = org("fc_sls").await;
    let cluster = unique("slscl");
    let workgroup = unique("slswg");
    org.cluster(&cluster, &[("dev", &fixture(&["orders"]))]).await;
    register_workgroup(&org.account, "us-east-1", &workgroup, &format!("{workgroup}-ns"), "dev").await;
    create_warehouse(&org.account, &workgroup, &[("dev", &fixture(&["events"]))]).await;
    let first = org.run(&org.moto, &RunRequest::default()).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:#?}");
    let workgroup_index = format!("registry/index/{}/us-east-1/workgroup/{workgroup}.json", org.account);
    assert!(org.objects(&workgroup_index).await.contains_key(&workgroup_index));

    set_knobs(&org.account, "serverless:us-east-1", json!({"accessDenied": true})).await;
    let second = org.run(&org.moto, &RunRequest::default()).await;
    assert_eq!(second.status, RunStatus::Succeeded, "no workgroup is named: {second:#?}");
    let region = &second.accounts[0].regions[0];
    assert_eq!(region.error, None);
    assert_eq!(region.warehouses.len(), 1, "the cluster is read");
    assert_eq!(region.warehouses[0].id.name(), cluster);
    assert_eq!(region.workgroups_error.as_ref().map(|e| e.kind), Some(ErrorKind::AccessDenied));
    assert!(region.removed_warehouses.is_empty());
    assert!(org.objects(&workgroup_index).await.contains_key(&workgroup_index), "the workgroup's snapshot stays");
}

/// The ClusterAvailabilityStatus moto does not send, added by the fault front.
fn availability(value: &'static str) -> Rewrite {
    Rewrite::body("redshift", "DescribeClusters", "<ClusterStatus>available</ClusterStatus>", value)
}

const MODIFYING: &str =
    "<ClusterStatus>available</ClusterStatus><ClusterAvailabilityStatus>Modifying</ClusterAvailabilityStatus>";

/// A cluster whose availability is Modifying is intermittently available: it is tried, and read
/// when it answers; when its read fails it is skipped as busy, the run is not partial, and none
/// of its manifests goes.
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_cluster_is_tried_and_skipped_only_if_its_read_fails() {
    let org = org("fc_busy").await;
    let cluster = unique("busy");
    org.cluster(&cluster, &[("dev", &fixture(&["orders", "customers"]))]).await;
    let front = FaultFront::start_rewriting(&org.moto, vec![availability(MODIFYING)]).await;

    let read = org.run(&front.url, &RunRequest::default()).await;
    assert_eq!(read.status, RunStatus::Succeeded, "{read:#?}");
    assert_eq!(only_warehouse(&read).state, WarehouseState::Available);
    let before = org.index(&cluster).await.datasets;
    assert_eq!(before.len(), 3);

    set_knobs(&org.account, &cluster, json!({"failDatabase": "dev"})).await;
    let failed = org.run(&front.url, &RunRequest::default()).await;
    assert_eq!(failed.status, RunStatus::Succeeded, "busy is a state: {failed:#?}");
    let w = only_warehouse(&failed);
    assert_eq!((w.state, w.skipped), (WarehouseState::Skipped, Some(SkipCause::Busy)));
    assert!(w.reason.as_deref().unwrap().contains("Modifying"), "{:?}", w.reason);
    assert!(w.error.is_some(), "the error is kept: {w:?}");
    assert!(w.publish.is_empty());
    assert_eq!(org.index(&cluster).await.datasets, before, "nothing removed");
}

/// Without an unconditioned s3:ListBucket, S3 answers a missing key with 403 (GetObject API
/// reference): a first run must still commit, and a real refusal must still be reported.
#[tokio::test(flavor = "multi_thread")]
async fn s3_403_for_a_missing_index_is_a_first_run() {
    let org = org("fc_s3403").await;
    let cluster = unique("s3403");
    org.cluster(&cluster, &[("dev", &fixture(&["orders"]))]).await;
    let hides_missing = FaultFront::start_rewriting(&org.moto, vec![Rewrite::missing_key_as_403()]).await;
    let first = org.run(&hides_missing.url, &RunRequest::default()).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:#?}");
    assert!(only_warehouse(&first).published(MANIFESTS).unwrap().committed);
    assert!(
        hides_missing.seen().iter().any(|s| s.action == "GET" && s.status == 403),
        "the front did answer 403 for the missing index"
    );

    let index = format!("registry/index/{}/us-east-1/cluster/{cluster}.json", org.account);
    let denies = FaultFront::start_rewriting(&org.moto, vec![Rewrite::error_on_get(&index, 403, "AccessDenied")]).await;
    let denied = org.run(&denies.url, &RunRequest::default()).await;
    assert_eq!(denied.status, RunStatus::Partial);
    let error = only_warehouse(&denied).published(MANIFESTS).unwrap().error.clone().unwrap();
    assert!(error.contains("AccessDenied"), "{error}");
    assert_eq!(org.index(&cluster).await.datasets.len(), 2, "nothing written or removed");
}
