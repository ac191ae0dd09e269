//! The reader over the Data API emulator and real PostgreSQL fixtures: the exact model read for
//! every object type, names, types, comments, privileges, datashares, Serverless, filters,
//! parallel databases, and a call count independent of the number of tables.

mod support;

use redshift_registry::aws::RedshiftData;
use redshift_registry::catalog::{Column, DatabaseKind, Dataset, DatasetKind, WarehouseId};
use redshift_registry::event::RunRequest;
use redshift_registry::ports::{DbAuth, Target};
use redshift_registry::read::ReadOptions;
use redshift_registry::report::RunStatus;
use serde_json::json;
use support::reading::{read_whole, DatabaseCatalog, Outcome as DatabaseOutcome};
use support::*;

/// The IAM identity's database user; PostgreSQL roles are shared by every emulated database.
const READER: &str = "IAMR:DataRegistryRedshiftReader";
const CREATE_READER: &str = r#"DO $$ BEGIN CREATE ROLE "IAMR:DataRegistryRedshiftReader";
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;"#;

fn options(extra: serde_json::Value) -> ReadOptions {
    let mut c = json!({"output": {"bucket": "b-b-b"}, "roleName": "R", "sources": [{"accountId": "111111111111", "regions": ["us-east-1"]}]});
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    ReadOptions::from_config(&config(c))
}

async fn read(warehouse: WarehouseId, default_db: &str, options: &ReadOptions) -> Vec<DatabaseOutcome> {
    let base = function_config(&moto_url()).await;
    let api = RedshiftData::new(&base);
    read_whole(&api, &Target { warehouse, auth: DbAuth::Iam }, default_db, options).await.expect("databases listed")
}

fn read_ok(outcomes: Vec<DatabaseOutcome>) -> Vec<DatabaseCatalog> {
    outcomes
        .into_iter()
        .map(|o| match o {
            DatabaseOutcome::Read(c) => c,
            DatabaseOutcome::Failed { name, error, .. } => {
                panic!("database {name} failed: {error}")
            }
        })
        .collect()
}

fn dataset<'a>(db: &'a DatabaseCatalog, schema: &str, name: &str) -> &'a Dataset {
    db.datasets.iter().find(|d| d.schema == schema && d.name == name).unwrap_or_else(|| {
        panic!("{schema}.{name} not in {:?}", db.datasets.iter().map(|d| (&d.schema, &d.name)).collect::<Vec<_>>())
    })
}

fn col(name: &str, position: i32, data_type: &str, nullable: bool) -> Column {
    Column {
        name: name.into(),
        position,
        data_type: data_type.into(),
        nullable,
        default: None,
        dist_key: false,
        sort_key_position: None,
        encoding: Some("none".into()),
        description: None,
        partition_key: false,
    }
}

const SALES_FIXTURE: &str = r#"
CREATE SCHEMA sales;
CREATE TABLE sales.orders (
  id integer NOT NULL, amount numeric(18,2) DEFAULT 0, customer varchar(256), created_at timestamp,
  note text, flag boolean, qty smallint, big bigint, ratio double precision, r real, d date,
  c char(10), tz timestamptz);
COMMENT ON TABLE sales.orders IS 'All orders';
COMMENT ON COLUMN sales.orders.id IS 'Order id';
INSERT INTO pg_internal.fixture_column_attributes VALUES
  ('sales', 'orders', 'id', 'az64', true, 1), ('sales', 'orders', 'created_at', 'lzo', false, 2);
INSERT INTO pg_internal.fixture_table_stats VALUES ('sales', 'orders', 12, 3400);
CREATE VIEW sales.big_orders AS SELECT id, amount FROM sales.orders WHERE amount > 100;
COMMENT ON VIEW sales.big_orders IS 'Orders over 100';
-- information_schema.views shows a definition to the view's owner only.
ALTER VIEW sales.big_orders OWNER TO "IAMR:DataRegistryRedshiftReader";
-- A materialized view owned by someone else: SVV_MV_INFO hides it, its mv_tbl__ table does not.
CREATE MATERIALIZED VIEW sales.daily AS SELECT created_at::date AS day, sum(amount) AS total FROM sales.orders GROUP BY 1;
CREATE TABLE sales.mv_tbl__daily__0 (day date, total numeric(38,2));
-- A late-binding view: in pg_class, with no pg_attribute rows.
CREATE VIEW sales.recent AS SELECT;
INSERT INTO pg_internal.fixture_late_binding_view_cols VALUES
  ('sales', 'recent', 'id', 'integer', 1), ('sales', 'recent', 'customer', 'character varying(256)', 2);
CREATE SCHEMA spectrum;
INSERT INTO pg_internal.fixture_external_schemas (schema_name) VALUES ('spectrum');
INSERT INTO pg_internal.fixture_external_tables (schema_name, table_name, location) VALUES ('spectrum', 'clicks', 's3://lake/clicks/');
INSERT INTO pg_internal.fixture_external_columns (schema_name, table_name, column_name, external_type, columnnum, part_key, is_nullable)
  VALUES ('spectrum', 'clicks', 'url', 'string', 1, 0, 'true'), ('spectrum', 'clicks', 'dt', 'date', 2, 1, 'false');
GRANT USAGE ON SCHEMA sales, spectrum TO "IAMR:DataRegistryRedshiftReader";
GRANT SELECT ON ALL TABLES IN SCHEMA sales TO "IAMR:DataRegistryRedshiftReader";
GRANT SELECT ON pg_internal.svv_table_info TO "IAMR:DataRegistryRedshiftReader";
"#;

#[tokio::test(flavor = "multi_thread")]
async fn every_object_type_is_read_exactly() {
    let cluster = unique("objects");
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &format!("{CREATE_READER}{SALES_FIXTURE}"))]).await;
    let dbs = read_ok(
        read(WarehouseId::ClusterIdentifier(cluster), "dev", &options(json!({"pullRedshiftComments": true}))).await,
    );
    assert_eq!(dbs.len(), 1);
    let db = &dbs[0];
    assert_eq!((db.name.as_str(), db.kind), ("dev", DatabaseKind::Local));
    let names: Vec<(&str, &str, DatasetKind)> =
        db.datasets.iter().map(|d| (d.schema.as_str(), d.name.as_str(), d.kind)).collect();
    assert_eq!(
        names,
        vec![
            ("sales", "big_orders", DatasetKind::View),
            ("sales", "daily", DatasetKind::MaterializedView),
            ("sales", "orders", DatasetKind::Table),
            ("sales", "recent", DatasetKind::LateBindingView),
            ("spectrum", "clicks", DatasetKind::ExternalTable),
        ],
        "no mv_tbl__ internal table, no system schema"
    );

    let orders = dataset(db, "sales", "orders");
    assert_eq!(orders.owner.as_deref(), Some("postgres"));
    assert_eq!(orders.description.as_deref(), Some("All orders"));
    assert_eq!((orders.row_count, orders.size_mb), (Some(3400), Some(12)));
    assert_eq!(orders.view_definition, None);
    let mut expected = vec![
        Column {
            description: Some("Order id".into()),
            dist_key: true,
            sort_key_position: Some(1),
            encoding: Some("az64".into()),
            ..col("id", 1, "integer", false)
        },
        Column { default: Some("0".into()), ..col("amount", 2, "numeric(18,2)", true) },
        col("customer", 3, "character varying(256)", true),
        Column {
            sort_key_position: Some(2),
            encoding: Some("lzo".into()),
            ..col("created_at", 4, "timestamp without time zone", true)
        },
        col("note", 5, "text", true),
        col("flag", 6, "boolean", true),
        col("qty", 7, "smallint", true),
        col("big", 8, "bigint", true),
        col("ratio", 9, "double precision", true),
        col("r", 10, "real", true),
        col("d", 11, "date", true),
        col("c", 12, "character(10)", true),
        col("tz", 13, "timestamp with time zone", true),
    ];
    assert_eq!(orders.columns, expected);

    let view = dataset(db, "sales", "big_orders");
    assert_eq!(view.owner.as_deref(), Some(READER));
    assert_eq!(view.description.as_deref(), Some("Orders over 100"));
    assert!(view.view_definition.as_deref().unwrap().contains("FROM sales.orders"), "{:?}", view.view_definition);
    expected = vec![col("id", 1, "integer", true), col("amount", 2, "numeric(18,2)", true)];
    assert_eq!(view.columns, expected);
    assert_eq!(view.row_count, None, "views have no stats");

    let mv = dataset(db, "sales", "daily");
    assert_eq!(mv.columns, vec![col("day", 1, "date", true), col("total", 2, "numeric", true)]);
    assert_eq!(mv.view_definition, None, "owned by another user");

    let late = dataset(db, "sales", "recent");
    let late_col = |name: &str, position, ty: &str| Column { encoding: None, ..col(name, position, ty, true) };
    assert_eq!(late.columns, vec![late_col("id", 1, "integer"), late_col("customer", 2, "character varying(256)")]);

    let clicks = dataset(db, "spectrum", "clicks");
    assert_eq!(clicks.location.as_deref(), Some("s3://lake/clicks/"));
    assert_eq!(
        clicks.columns,
        vec![
            late_col("url", 1, "string"),
            Column { nullable: false, partition_key: true, ..late_col("dt", 2, "date") }
        ]
    );
    assert_eq!(
        db.notes,
        vec![format!(
            "view definitions of 2 views are hidden from user \"{READER}\": information_schema.views shows \
             a definition to the view's owner only; read as the owner or a superuser to include them"
        )]
    );
}

/// Long polls and CSV change how a catalog travels, never what it says: every object type of the
/// fixture reads the same through JSON with long polls (the default), CSV, and short polls; each
/// way makes the calls it should.
#[tokio::test(flavor = "multi_thread")]
async fn csv_and_short_polls_read_the_same_catalog_as_the_default() {
    let sql = format!("{CREATE_READER}{SALES_FIXTURE}");
    let ways = [json!({}), json!({"dataApi": {"resultFormat": "CSV"}}), json!({"dataApi": {"waitTimeSeconds": 0}})];
    let mut read_ways = Vec::new();
    for (i, way) in ways.into_iter().enumerate() {
        let cluster = unique(&format!("ways{i}"));
        create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &sql)]).await;
        set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"statementMs": 300})).await;
        let mut extra = json!({"pullRedshiftComments": true});
        extra.as_object_mut().unwrap().extend(way.as_object().unwrap().clone());
        let dbs = read_ok(read(WarehouseId::ClusterIdentifier(cluster.clone()), "dev", &options(extra)).await);
        read_ways.push((dbs, counters(FUNCTION_ACCOUNT, &cluster).await));
    }
    let [(json, long), (csv, csv_calls), (short, short_calls)] = &read_ways[..] else { unreachable!() };
    assert_eq!(json[0].datasets.len(), 5);
    assert_eq!((csv, short), (json, json), "the same catalog every way");
    let count = |c: &std::collections::BTreeMap<String, u64>, op: &str| c.get(op).copied().unwrap_or(0);
    assert_eq!(count(csv_calls, "GetStatementResult"), 0, "CSV is fetched with V2 only: {csv_calls:?}");
    assert_eq!(count(csv_calls, "GetStatementResultV2"), count(long, "GetStatementResult"));
    // A 300 ms statement is seen finished by its waited ExecuteStatement or by one long poll;
    // short polls ask again and again.
    assert!(count(long, "DescribeStatement") <= 4, "long polls: {long:?}");
    assert!(count(short_calls, "DescribeStatement") >= 3 * count(long, "DescribeStatement").max(1), "{short_calls:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn comments_are_left_out_unless_asked_for() {
    let cluster = unique("nocomments");
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &format!("{CREATE_READER}{SALES_FIXTURE}"))]).await;
    let dbs = read_ok(read(WarehouseId::ClusterIdentifier(cluster), "dev", &options(json!({}))).await);
    for d in &dbs[0].datasets {
        assert_eq!(d.description, None, "{}", d.name);
        assert!(d.columns.iter().all(|c| c.description.is_none()), "{}", d.name);
    }
    assert_eq!(dataset(&dbs[0], "sales", "orders").columns.len(), 13);
}

#[tokio::test(flavor = "multi_thread")]
async fn quoted_mixed_case_and_unicode_names_come_back_as_stored() {
    let cluster = unique("names");
    let sql = format!(
        r#"{CREATE_READER}
        CREATE SCHEMA "Sales Team";
        CREATE TABLE "Sales Team"."Order ""Lines""" ("Line ID" int, "prix_€" numeric(10,2), "ünïcødé ✓" varchar(10));
        CREATE TABLE "Sales Team"."{long}" (x int);
        GRANT USAGE ON SCHEMA "Sales Team" TO "{READER}";
        GRANT SELECT ON ALL TABLES IN SCHEMA "Sales Team" TO "{READER}";"#,
        // PostgreSQL keeps 63 bytes of a name (Redshift 127): the longest a local table can be here.
        long = "é".repeat(31) + "x"
    );
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &sql)]).await;
    let dbs = read_ok(read(WarehouseId::ClusterIdentifier(cluster), "dev", &options(json!({}))).await);
    let lines = dataset(&dbs[0], "Sales Team", "Order \"Lines\"");
    let names: Vec<&str> = lines.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["Line ID", "prix_€", "ünïcødé ✓"]);
    let long = "é".repeat(31) + "x";
    assert_eq!(long.len(), 63);
    dataset(&dbs[0], "Sales Team", &long);
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_user_cannot_see_is_reported_with_the_grant() {
    let cluster = unique("hidden");
    let sql = format!(
        r#"{CREATE_READER}
        CREATE SCHEMA finance; CREATE TABLE finance.ledger (id int); CREATE TABLE finance.budget (id int);
        CREATE SCHEMA hr; CREATE TABLE hr.people (id int); CREATE TABLE hr.salaries (id int);
        GRANT USAGE ON SCHEMA hr TO "{READER}"; GRANT SELECT ON hr.people TO "{READER}";
        CREATE SCHEMA "Ops"; CREATE TABLE "Ops".jobs (id int); GRANT USAGE ON SCHEMA "Ops" TO "{READER}";"#
    );
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &sql)]).await;
    let opts = options(json!({"filters": {"schemas": {"include": ["finance", "hr", "Ops", "missing"]}}}));
    let dbs = read_ok(read(WarehouseId::ClusterIdentifier(cluster), "dev", &opts).await);
    let db = &dbs[0];
    let names: Vec<String> = db.datasets.iter().map(|d| format!("{}.{}", d.schema, d.name)).collect();
    assert_eq!(names, vec!["hr.people"]);
    let notes = db.notes.join("\n");
    assert!(notes.contains(&format!(
        "schema \"finance\" in database dev: 2 relations, but user \"{READER}\" has no USAGE on the schema, so none is in the registry; \
         to add them: GRANT USAGE ON SCHEMA \"finance\" TO \"{READER}\"; GRANT SELECT ON ALL TABLES IN SCHEMA \"finance\" TO \"{READER}\";"
    )), "{notes}");
    assert!(
        notes.contains(&format!("schema \"hr\" in database dev: user \"{READER}\" can see 1 of 2 relations")),
        "{notes}"
    );
    assert!(
        notes.contains(&format!("schema \"Ops\" in database dev: user \"{READER}\" can see 0 of 1 relations")),
        "{notes}"
    );
    assert!(
        notes.contains("schema \"missing\" named in filters.schemas.include does not exist in database dev"),
        "{notes}"
    );
    assert!(
        notes.contains("row counts and sizes unavailable")
            && notes.contains(&format!("GRANT SELECT ON svv_table_info TO \"{READER}\"")),
        "{notes}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn datashare_consumer_databases_are_read_through_the_svv_views() {
    let cluster = unique("consumer");
    let long = "t".repeat(127);
    let sql = format!(
        r#"{CREATE_READER}
        INSERT INTO pg_internal.fixture_shared_databases VALUES ('sales_share', 'admin', '222222222222', 'ns-1');
        INSERT INTO pg_internal.fixture_shared_tables VALUES
          ('sales_share', 'public', 'orders', 'TABLE', 'Shared orders', 'producer'),
          ('sales_share', 'public', '{long}', 'TABLE', NULL, 'producer');
        INSERT INTO pg_internal.fixture_shared_columns (database_name, schema_name, table_name, column_name, ordinal_position, data_type, is_nullable) VALUES
          ('sales_share', 'public', 'orders', 'total', 2, 'numeric(12,2)', 'YES'),
          ('sales_share', 'public', 'orders', 'id', 1, 'integer', 'NO');"#
    );
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &sql)]).await;
    let dbs = read_ok(
        read(WarehouseId::ClusterIdentifier(cluster), "dev", &options(json!({"pullRedshiftComments": true}))).await,
    );
    assert_eq!(
        dbs.iter().map(|d| (d.name.as_str(), d.kind)).collect::<Vec<_>>(),
        vec![("dev", DatabaseKind::Local), ("sales_share", DatabaseKind::Shared)]
    );
    let shared = &dbs[1];
    let orders = dataset(shared, "public", "orders");
    assert_eq!(orders.description.as_deref(), Some("Shared orders"));
    assert_eq!(orders.columns, vec![col("id", 1, "integer", false), col("total", 2, "numeric(12,2)", true)]);
    assert_eq!(dataset(shared, "public", &long).name.len(), 127, "Redshift's 127-byte names");
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_pick_databases_schemas_and_tables() {
    let cluster = unique("filters");
    let sql = format!(
        r#"{CREATE_READER}
        CREATE SCHEMA a; CREATE SCHEMA b; CREATE SCHEMA tmp_x;
        CREATE TABLE a.keep (id int); CREATE TABLE a.skip_me (id int); CREATE TABLE b.other (id int); CREATE TABLE tmp_x.t (id int);
        GRANT USAGE ON SCHEMA a, b, tmp_x TO "{READER}"; GRANT SELECT ON ALL TABLES IN SCHEMA a, b, tmp_x TO "{READER}";"#
    );
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &sql), ("staging", &sql), ("other", "")]).await;
    let opts = options(json!({"filters": {
        "databases": {"include": ["dev|staging"], "exclude": ["staging"]},
        "schemas": {"exclude": ["tmp_.*"]},
        "tables": {"exclude": ["dev\\.a\\.skip_.*"]}
    }}));
    let dbs = read_ok(read(WarehouseId::ClusterIdentifier(cluster), "dev", &opts).await);
    assert_eq!(dbs.len(), 1);
    let names: Vec<String> = dbs[0].datasets.iter().map(|d| format!("{}.{}", d.schema, d.name)).collect();
    assert_eq!(names, vec!["a.keep", "b.other"]);

    // System schemas appear only when asked for.
    let cluster = unique("system");
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", CREATE_READER)]).await;
    let plain = read_ok(read(WarehouseId::ClusterIdentifier(cluster.clone()), "dev", &options(json!({}))).await);
    assert!(plain[0].datasets.is_empty());
    let system = read_ok(
        read(WarehouseId::ClusterIdentifier(cluster), "dev", &options(json!({"includeSystemSchemas": true}))).await,
    );
    assert!(system[0].datasets.iter().any(|d| d.schema == "pg_catalog" && d.name == "pg_class"));
}

#[tokio::test(flavor = "multi_thread")]
async fn three_databases_are_read_in_parallel() {
    let cluster = unique("parallel");
    let sql = format!("{CREATE_READER} CREATE TABLE public.t (id int); GRANT SELECT ON public.t TO \"{READER}\";");
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("one", &sql), ("two", &sql), ("three", &sql)]).await;
    // Statements take a while, so overlapping ones are seen by the emulator.
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"statementMs": 300})).await;
    let dbs = read_ok(read(WarehouseId::ClusterIdentifier(cluster.clone()), "one", &options(json!({}))).await);
    assert_eq!(dbs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), vec!["one", "three", "two"]);
    assert!(dbs.iter().all(|d| d.datasets.len() == 1));
    let c = counters(FUNCTION_ACCOUNT, &cluster).await;
    // Three batches and three SVV_TABLE_INFO statements overlap.
    assert!(c["maxRunningStatements"] >= 3, "{c:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_tables_cost_no_more_calls_than_two_plus_result_pages() {
    let (small, big) = (unique("small"), unique("big"));
    let tables = |n: usize| {
        format!(
            r#"{CREATE_READER}
            DO $$ BEGIN FOR i IN 1..{n} LOOP
              EXECUTE format('CREATE TABLE public.t_%s (id int NOT NULL, name varchar(64))', i);
            END LOOP; END $$;
            GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{READER}";"#
        )
    };
    create_warehouse(FUNCTION_ACCOUNT, &small, &[("dev", &tables(2))]).await;
    create_warehouse(FUNCTION_ACCOUNT, &big, &[("dev", &tables(2000))]).await;
    let mut read_tables = Vec::new();
    for cluster in [&small, &big] {
        let dbs = read_ok(read(WarehouseId::ClusterIdentifier(cluster.clone()), "dev", &options(json!({}))).await);
        read_tables.push(dbs[0].datasets.len());
    }
    assert_eq!(read_tables, vec![2, 2000]);
    let (s, b) = (counters(FUNCTION_ACCOUNT, &small).await, counters(FUNCTION_ACCOUNT, &big).await);
    for op in ["ExecuteStatement", "BatchExecuteStatement"] {
        assert_eq!(s.get(op), b.get(op), "{op}: small {s:?}, big {b:?}");
    }
    // Statements start the same; only pages grow: 2,000 tables, 4,000 columns, 2,000
    // relations at 1,000 rows a page are at most 2 + 4 + 2 more pages.
    assert!(b["GetStatementResult"] <= s["GetStatementResult"] + 8, "small {s:?}, big {b:?}");
}

/// What keeps memory flat, seen from outside: datasets leave for the outputs while the columns
/// statement is still being paged. With 20-row pages, 60 tables x 6 columns are 18 pages of
/// columns, and the first dataset arrives when at most two of them have been fetched.
#[tokio::test(flavor = "multi_thread")]
async fn datasets_leave_before_the_columns_are_all_fetched() {
    let cluster = unique("streamed");
    let sql = format!(
        r#"{CREATE_READER}
        DO $$ BEGIN FOR i IN 1..60 LOOP
          EXECUTE format('CREATE TABLE public.t_%s (a int, b int, c int, d int, e int, f int)', i);
        END LOOP; END $$;
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{READER}";"#
    );
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &sql)]).await;
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"pageSize": 20})).await;
    let api = RedshiftData::new(&function_config(&moto_url()).await);
    let target = Target { warehouse: WarehouseId::ClusterIdentifier(cluster.clone()), auth: DbAuth::Iam };
    let options = options(json!({}));
    let (sender, mut receiver) = tokio::sync::mpsc::channel(1);
    let reading = async {
        let sender = sender;
        redshift_registry::read::read_warehouse(
            &api,
            &std::collections::HashMap::new(),
            &target,
            "dev",
            &options,
            &sender,
        )
        .await
    };
    let consuming = async {
        let (mut fetched_at_first, mut datasets) = (None, 0);
        while let Some(event) = receiver.recv().await {
            if let redshift_registry::catalog::ReadEvent::Dataset { .. } = event {
                datasets += 1;
                if fetched_at_first.is_none() {
                    fetched_at_first = Some(counters(FUNCTION_ACCOUNT, &cluster).await["GetStatementResult"]);
                }
            }
        }
        (fetched_at_first.expect("a dataset"), datasets)
    };
    let (read, (fetched_at_first, datasets)) = tokio::join!(reading, consuming);
    assert!(matches!(read.unwrap().databases[..], [redshift_registry::read::DatabaseOutcome::Read(_)]));
    assert_eq!(datasets, 60);
    let fetched = counters(FUNCTION_ACCOUNT, &cluster).await["GetStatementResult"];
    assert!(fetched >= fetched_at_first + 16, "first dataset after {fetched_at_first} of {fetched} pages");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_serverless_workgroup_is_discovered_and_read() {
    let moto = moto_url();
    let acct = account_id("serverless", 1);
    let (wg, named) = (unique("analytics"), unique("named-wg"));
    for name in [&wg, &named] {
        register_workgroup(&acct, "eu-central-1", name, &format!("ns-{name}"), "warehouse").await;
        let sql = format!(
            "{CREATE_READER} CREATE TABLE public.events (id bigint); GRANT SELECT ON public.events TO \"{READER}\";"
        );
        create_warehouse(&acct, name, &[("warehouse", &sql)]).await;
    }
    let cfg = config(json!({
        "output": {"bucket": "unused-bucket"}, "roleName": "Reader",
        "sources": [{"accountId": acct, "regions": ["eu-central-1"]}]
    }));
    let (report, catalogs) = gather_against(&moto, &cfg, &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    let mine: Vec<_> = catalogs.iter().filter(|c| c.warehouse == WarehouseId::WorkgroupName(wg.clone())).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].databases[0].name, "warehouse", "the namespace's database");
    assert_eq!(mine[0].databases[0].datasets[0].name, "events");

    // Option 2 names a workgroup.
    let cfg = config(json!({
        "output": {"bucket": "unused-bucket"}, "roleName": "Reader",
        "sources": [{"accountId": acct, "workgroups": [{"region": "eu-central-1", "workgroupName": named}, {"region": "eu-central-1", "workgroupName": "nope-wg"}]}]
    }));
    let (report, catalogs) = gather_against(&moto, &cfg, &RunRequest::default()).await;
    let ids: Vec<_> = catalogs.iter().map(|c| c.warehouse.clone()).collect();
    assert_eq!(ids, vec![WarehouseId::WorkgroupName(named.clone())]);
    let region = &report.accounts[0].regions[0];
    assert_eq!(
        region.warehouses.last().unwrap().reason.as_deref().map(|r| r.contains("no workgroup \"nope-wg\"")),
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_database_does_not_stop_the_others() {
    let cluster = unique("onefails");
    let sql = format!("{CREATE_READER} CREATE TABLE public.t (id int); GRANT SELECT ON public.t TO \"{READER}\";");
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("good", &sql), ("bad", &sql)]).await;
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"failDatabase": "bad"})).await;
    let outcomes = read(WarehouseId::ClusterIdentifier(cluster), "good", &options(json!({}))).await;
    let summary: Vec<(String, bool)> = outcomes
        .iter()
        .map(|o| match o {
            DatabaseOutcome::Read(c) => (c.name.clone(), true),
            DatabaseOutcome::Failed { name, .. } => (name.clone(), false),
        })
        .collect();
    assert_eq!(summary, vec![("bad".to_string(), false), ("good".to_string(), true)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_db_user_sees_what_that_user_may_see() {
    let cluster = unique("dbuser");
    let sql = format!(
        r#"{CREATE_READER}
        DO $$ BEGIN CREATE ROLE registry_reader; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
        CREATE SCHEMA a; CREATE TABLE a.for_iam (id int); CREATE TABLE a.for_named (id int);
        GRANT USAGE ON SCHEMA a TO "{READER}", registry_reader;
        GRANT SELECT ON a.for_iam TO "{READER}"; GRANT SELECT ON a.for_named TO registry_reader;"#
    );
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &sql)]).await;
    let base = function_config(&moto_url()).await;
    let api = RedshiftData::new(&base);
    for (auth, expected) in [(DbAuth::Iam, "for_iam"), (DbAuth::DbUser("registry_reader".into()), "for_named")] {
        let target = Target { warehouse: WarehouseId::ClusterIdentifier(cluster.clone()), auth };
        let dbs = read_ok(read_whole(&api, &target, "dev", &options(json!({}))).await.unwrap());
        let names: Vec<&str> = dbs[0].datasets.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, vec![expected]);
    }
}

/// pg_settings is read on its own (no AWS page says Redshift lists metadata_security there):
/// when it fails, the visibility notes and their GRANTs are still there.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_pg_settings_costs_only_its_note() {
    let cluster = unique("nosettings");
    let sql = format!(
        r#"{CREATE_READER} CREATE SCHEMA finance; CREATE TABLE finance.ledger (id int);
        CREATE TABLE public.t (id int); GRANT SELECT ON public.t TO "{READER}";"#
    );
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &sql)]).await;
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"failSql": "pg_settings"})).await;
    let dbs = read_ok(read(WarehouseId::ClusterIdentifier(cluster), "dev", &options(json!({}))).await);
    let notes = dbs[0].notes.join("\n");
    assert!(
        notes.contains(&format!("GRANT USAGE ON SCHEMA \"finance\" TO \"{READER}\"")),
        "the hidden schema is still reported: {notes}"
    );
    dataset(&dbs[0], "public", "t");
}

/// A nested Glue type can pass the Data API's 64 KB per row: it is cut with a note, and costs
/// neither its table nor the other external tables.
#[tokio::test(flavor = "multi_thread")]
async fn an_over_long_external_column_type_costs_only_its_column() {
    let cluster = unique("longtype");
    let nested = format!("struct<{}>", (0..9_000).map(|i| format!("f{i}:int")).collect::<Vec<_>>().join(","));
    let sql = format!(
        r#"{CREATE_READER}
        CREATE SCHEMA lake; GRANT USAGE ON SCHEMA lake TO "{READER}";
        INSERT INTO pg_internal.fixture_external_schemas (schema_name) VALUES ('lake');
        INSERT INTO pg_internal.fixture_external_tables (schema_name, table_name, location) VALUES
          ('lake', 'events', 's3://lake/events/'), ('lake', 'clicks', 's3://lake/clicks/');
        INSERT INTO pg_internal.fixture_external_columns (schema_name, table_name, column_name, external_type, columnnum) VALUES
          ('lake', 'events', 'id', 'bigint', 1), ('lake', 'events', 'payload', '{nested}', 2),
          ('lake', 'clicks', 'url', 'string', 1);"#
    );
    assert!(nested.len() > 64 * 1024);
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &sql)]).await;
    let dbs = read_ok(read(WarehouseId::ClusterIdentifier(cluster), "dev", &options(json!({}))).await);
    let events = dataset(&dbs[0], "lake", "events");
    assert_eq!(events.columns.len(), 2);
    assert_eq!(events.columns[1].data_type, nested[..8_000]);
    assert_eq!(dataset(&dbs[0], "lake", "clicks").columns[0].data_type, "string");
    let notes = dbs[0].notes.join("\n");
    assert!(notes.contains(&format!("external column lake.events.payload is {} characters", nested.len())), "{notes}");
}
