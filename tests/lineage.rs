//! Lineage over the Data API emulator and real PostgreSQL: the view SQL Redshift users write,
//! each view's exact upstream list, from the catalog's dependency records where Redshift keeps
//! them and from the parsed definition where it does not; and what reaches the manifests and
//! Backstage.

mod support;

use redshift_registry::aws::RedshiftData;
use redshift_registry::catalog::{Upstream, Via, WarehouseId};
use redshift_registry::ports::{DbAuth, Target};
use redshift_registry::read::ReadOptions;
use serde_json::json;
use support::reading::{read_whole, DatabaseCatalog, Outcome};
use support::*;

const READER: &str = "IAMR:DataRegistryRedshiftReader";

/// Tables in three schemas (one mixed-case), regular views of every shape (CTEs, subqueries,
/// unions, joins across schemas, a view over a view, one the reader may not see the definition
/// of), late-binding views over an external table, another database and an unqualified name,
/// materialized views over a table and over a materialized view, and a definition that does not
/// parse. Late-binding and materialized views carry the text Redshift gives in
/// information_schema.views (fixture_view_definitions); the reader owns the views whose
/// definitions it must see.
fn fixture() -> String {
    format!(
        r#"DO $$ BEGIN CREATE ROLE "{READER}"; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
CREATE SCHEMA sales; CREATE SCHEMA "CRM"; CREATE SCHEMA mart;
CREATE TABLE sales.orders (id int, customer_id int, amount numeric(18,2), day date);
CREATE TABLE sales.refunds (order_id int, amount numeric(18,2));
CREATE TABLE "CRM"."Customers" (id int, "Name" varchar(64));
CREATE TABLE public.regions (id int, name varchar(16));
CREATE VIEW mart.customer_totals AS
  WITH recent AS (SELECT * FROM sales.orders WHERE day > current_date - 7),
       totals AS (SELECT customer_id, sum(amount) AS total FROM recent GROUP BY 1)
  SELECT c."Name", t.total FROM totals t JOIN (SELECT * FROM "CRM"."Customers") c ON c.id = t.customer_id;
CREATE VIEW mart.money_moves AS SELECT id, amount FROM sales.orders UNION ALL SELECT order_id, -amount FROM sales.refunds;
CREATE VIEW mart.top_customers AS SELECT "Name" FROM mart.customer_totals WHERE total > 1000;
CREATE VIEW mart.hidden_definition AS SELECT o.id, r.name FROM sales.orders o CROSS JOIN public.regions r;
CREATE SCHEMA spectrum;
INSERT INTO pg_internal.fixture_external_schemas (schema_name) VALUES ('spectrum');
INSERT INTO pg_internal.fixture_external_tables (schema_name, table_name, location) VALUES ('spectrum', 'clicks', 's3://lake/clicks/');
INSERT INTO pg_internal.fixture_external_columns (schema_name, table_name, column_name, external_type, columnnum, part_key)
  VALUES ('spectrum', 'clicks', 'url', 'string', 1, 0);
CREATE VIEW mart.click_users AS SELECT; CREATE VIEW mart.region_names AS SELECT; CREATE VIEW mart.broken AS SELECT;
INSERT INTO pg_internal.fixture_late_binding_view_cols VALUES
  ('mart', 'click_users', 'url', 'varchar', 1), ('mart', 'region_names', 'name', 'varchar', 1), ('mart', 'broken', 'x', 'int', 1);
CREATE MATERIALIZED VIEW mart.daily AS SELECT day, sum(amount) AS total FROM sales.orders GROUP BY 1;
CREATE MATERIALIZED VIEW mart.weekly AS SELECT date_trunc('week', day) AS week, sum(total) AS total FROM mart.daily GROUP BY 1;
INSERT INTO pg_internal.fixture_view_definitions VALUES
  ('mart', 'click_users', 'create view mart.click_users as select c.url, u.name from spectrum.clicks c join lake.public.users u on u.id = c.user_id with no schema binding;'),
  ('mart', 'region_names', 'create view mart.region_names as select name from regions with no schema binding;'),
  ('mart', 'broken', 'create view mart.broken as select from where ( with no schema binding;'),
  ('mart', 'daily', 'CREATE MATERIALIZED VIEW mart.daily BACKUP NO DISTSTYLE KEY DISTKEY(day) SORTKEY(day) AUTO REFRESH YES AS SELECT day, SUM(amount) AS total FROM sales.orders GROUP BY 1;'),
  ('mart', 'weekly', 'CREATE MATERIALIZED VIEW mart.weekly AS SELECT DATE_TRUNC(''week'', day) AS week, SUM(total) AS total FROM mart.daily GROUP BY 1;');
ALTER VIEW mart.customer_totals OWNER TO "{READER}"; ALTER VIEW mart.money_moves OWNER TO "{READER}";
ALTER VIEW mart.top_customers OWNER TO "{READER}"; ALTER VIEW mart.click_users OWNER TO "{READER}";
ALTER VIEW mart.region_names OWNER TO "{READER}"; ALTER VIEW mart.broken OWNER TO "{READER}";
ALTER MATERIALIZED VIEW mart.daily OWNER TO "{READER}"; ALTER MATERIALIZED VIEW mart.weekly OWNER TO "{READER}";
GRANT USAGE ON SCHEMA sales, "CRM", mart, spectrum TO "{READER}";
GRANT SELECT ON ALL TABLES IN SCHEMA sales, "CRM", mart, public TO "{READER}";
"#
    )
}

async fn read_database(cluster: &str) -> DatabaseCatalog {
    let config = config(json!({"output": {"bucket": "b-b-b"}, "roleName": "R",
                               "sources": [{"accountId": "111111111111", "regions": ["us-east-1"]}]}));
    let api = RedshiftData::new(&function_config(&moto_url()).await);
    let target = Target { warehouse: WarehouseId::ClusterIdentifier(cluster.into()), auth: DbAuth::Iam };
    let outcomes = read_whole(&api, &target, "dev", &ReadOptions::from_config(&config)).await.expect("listed");
    match outcomes.into_iter().next() {
        Some(Outcome::Read(db)) => db,
        other => panic!("{other:?}"),
    }
}

fn upstream_of(db: &DatabaseCatalog, schema: &str, name: &str) -> Vec<(String, Via)> {
    let d =
        db.datasets.iter().find(|d| d.schema == schema && d.name == name).unwrap_or_else(|| panic!("{schema}.{name}"));
    d.upstream.iter().map(|u| (u.name.clone().or(u.s3.clone()).unwrap(), u.via)).collect()
}

fn each(names: &[&str], via: Via) -> Vec<(String, Via)> {
    names.iter().map(|n| (n.to_string(), via)).collect()
}

/// As the real Backstage packages read the entities: the ref of the entity titled `upstream`,
/// and what the one titled `dataset` depends on. No entity is invalid.
fn backstage_link(org: &support::org::Org, upstream: &str, dataset: &str) -> (String, Vec<String>) {
    let read = org.backstage_reads("registry/backstage/");
    assert_eq!(read["invalid"], json!([]));
    let entities = read["entities"].as_array().unwrap();
    let by_title = |t: &str| {
        entities.iter().find(|e| e["entity"]["metadata"]["title"] == t).unwrap_or_else(|| panic!("{t}"))["entity"]
            .clone()
    };
    let reference = format!("resource:default/{}", by_title(upstream)["metadata"]["name"].as_str().unwrap());
    (reference, serde_json::from_value(by_title(dataset)["spec"]["dependsOn"].clone()).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn each_view_has_exactly_the_upstreams_it_reads() {
    let cluster = unique("lineage");
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &fixture())]).await;
    let db = read_database(&cluster).await;
    let catalog = Via::Catalog;
    let definition = Via::Definition;

    // Regular views: Redshift's dependency records; CTE names and subquery aliases are none.
    assert_eq!(upstream_of(&db, "mart", "customer_totals"), each(&["dev.CRM.Customers", "dev.sales.orders"], catalog));
    assert_eq!(upstream_of(&db, "mart", "money_moves"), each(&["dev.sales.orders", "dev.sales.refunds"], catalog));
    assert_eq!(upstream_of(&db, "mart", "top_customers"), each(&["dev.mart.customer_totals"], catalog));
    // Its definition is the owner's alone; the dependency records are everyone's.
    assert!(db.datasets.iter().any(|d| d.name == "hidden_definition" && d.view_definition.is_none()));
    assert_eq!(
        upstream_of(&db, "mart", "hidden_definition"),
        each(&["dev.public.regions", "dev.sales.orders"], catalog)
    );

    // Late-binding views: parsed; another database's name as written; unqualified through public.
    assert_eq!(
        upstream_of(&db, "mart", "click_users"),
        each(&["dev.spectrum.clicks", "lake.public.users"], definition)
    );
    assert_eq!(upstream_of(&db, "mart", "region_names"), each(&["dev.public.regions"], definition));
    // Materialized views, past BACKUP/DISTKEY/SORTKEY/AUTO REFRESH, and over one another.
    assert_eq!(upstream_of(&db, "mart", "daily"), each(&["dev.sales.orders"], definition));
    assert_eq!(upstream_of(&db, "mart", "weekly"), each(&["dev.mart.daily"], definition));
    // An external table reads its location.
    let clicks = db.datasets.iter().find(|d| d.name == "clicks").unwrap();
    assert_eq!(clicks.upstream, vec![Upstream::s3("s3://lake/clicks/")]);

    // What does not parse has no upstream, and says so; tables have none.
    assert_eq!(upstream_of(&db, "mart", "broken"), vec![]);
    let notes = db.notes.join("\n");
    assert!(
        notes.contains("the definitions of 1 views in database dev could not be parsed")
            && notes.contains("mart.broken"),
        "{notes}"
    );
    assert_eq!(upstream_of(&db, "sales", "orders"), vec![]);
}

/// The same warehouse through a whole run: manifests carry `upstream` (valid against the
/// manifest schema), Backstage relates each view to its upstream datasets' entities (read back
/// by the real Backstage packages), OpenLineage events pass the OpenLineage client, and a
/// second run writes nothing new, byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn lineage_reaches_manifests_backstage_and_openlineage() {
    let org = support::org::org("lineage_out").await;
    let cluster = unique("lineage-out");
    create_cluster(
        &org.moto,
        &org.account,
        "us-east-1",
        ClusterSeed { id: &cluster, node_type: "ra3.xlplus", db_name: "dev", tags: &[] },
    )
    .await;
    create_warehouse(&org.account, &cluster, &[("dev", &fixture())]).await;
    let config = org.config(json!({"outputs": {"backstage": {"owner": "group:default/data"}, "openlineage": {}}}));
    let first = run_against(&org.moto, &config, &Default::default()).await;
    assert_eq!(first.status, redshift_registry::report::RunStatus::Succeeded, "{first:#?}");

    let key = |t: &str| format!("registry/datasets/{}/us-east-1/cluster/{cluster}/dev/mart/{t}.json", org.account);
    let manifest: serde_json::Value =
        serde_json::from_slice(&get_object(&org.moto, &org.bucket, &key("weekly")).await).unwrap();
    assert_eq!(
        manifest["upstream"],
        json!([{"name": "dev.mart.daily", "database": "dev", "schema": "mart", "table": "daily", "via": "definition"}])
    );
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("schema/dataset-manifest.v1.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for (key, bytes) in org.objects("registry/datasets/").await {
        let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(
            validator.is_valid(&m),
            "{key}: {:?}",
            validator.iter_errors(&m).map(|e| e.to_string()).collect::<Vec<_>>()
        );
    }

    let (daily, depends) = backstage_link(&org, "dev.mart.daily", "dev.mart.weekly");
    assert!(depends.contains(&daily), "weekly depends on daily's entity, which Backstage read: {depends:?}");
    assert_eq!(depends.len(), 2, "its warehouse and daily: {depends:?}");

    let events = org.objects("registry/openlineage/").await;
    assert_eq!(events.len(), 1, "one file for database dev: {:?}", events.keys());
    let (path, bytes) = events.iter().next().unwrap();
    let lines: Vec<serde_json::Value> =
        bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
    let jobs: Vec<&str> = lines.iter().map(|e| e["job"]["name"].as_str().unwrap()).collect();
    assert_eq!(
        jobs,
        [
            "dev.mart.click_users",
            "dev.mart.customer_totals",
            "dev.mart.daily",
            "dev.mart.hidden_definition",
            "dev.mart.money_moves",
            "dev.mart.region_names",
            "dev.mart.top_customers",
            "dev.mart.weekly",
            "dev.spectrum.clicks"
        ]
    );
    let namespace = format!("redshift://{cluster}.us-east-1:5439");
    assert_eq!(
        lines[2]["inputs"],
        json!([{"namespace": namespace, "name": "dev.sales.orders", "facets": {}, "inputFacets": {}}])
    );
    assert_eq!(lines[8]["inputs"][0]["namespace"], "s3://lake");
    let file = std::env::temp_dir().join(format!("rr-openlineage-{}.ndjson", std::process::id()));
    std::fs::write(&file, bytes).unwrap();
    let checked = std::process::Command::new(repo_root().join(".venv-openlineage/bin/python"))
        .arg(repo_root().join("tests/openlineage/validate.py"))
        .arg(&file)
        .output()
        .expect("the OpenLineage client (scripts/install.sh installs it)");
    assert!(checked.status.success(), "{path}: {}", String::from_utf8_lossy(&checked.stderr));
    assert_eq!(String::from_utf8_lossy(&checked.stdout).trim(), "9");

    let before = org.objects("registry/").await;
    let second = run_against(&org.moto, &config, &Default::default()).await;
    assert_eq!(second.counts.datasets_written, 0, "{second:#?}");
    let after = org.objects("registry/").await;
    let outputs = |all: &std::collections::BTreeMap<String, Vec<u8>>| -> std::collections::BTreeMap<String, Vec<u8>> {
        all.iter()
            .filter(|(k, _)| !k.contains("/index/") && !k.contains("/runs/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(outputs(&after), outputs(&before), "byte-identical, OpenLineage events included");
}

/// A datashare consumer database's tables read the producer's objects of the same names: the
/// producer's account and namespace come from SVV_DATASHARES, which shows a datashare only to
/// those with ALTER or USAGE on it; without that, no upstream and a note.
#[tokio::test(flavor = "multi_thread")]
async fn a_datashare_consumers_tables_read_the_producers() {
    let cluster = unique("consumer-lineage");
    let shared = |users: &str| {
        format!(
            r#"DO $$ BEGIN CREATE ROLE "{READER}"; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
            INSERT INTO pg_internal.fixture_shared_databases VALUES ('sales_share', 'admin', '222222222222', 'ns-1', 'sales', '{users}');
            INSERT INTO pg_internal.fixture_shared_tables VALUES ('sales_share', 'public', 'orders', 'TABLE', NULL, 'producer');
            INSERT INTO pg_internal.fixture_shared_columns (database_name, schema_name, table_name, column_name, ordinal_position, data_type)
              VALUES ('sales_share', 'public', 'orders', 'id', 1, 'integer');"#
        )
    };
    let read_shared = |cluster: String| async move {
        let config = config(json!({"output": {"bucket": "b-b-b"}, "roleName": "R",
                                   "sources": [{"accountId": "111111111111", "regions": ["us-east-1"]}]}));
        let api = RedshiftData::new(&function_config(&moto_url()).await);
        let target = Target { warehouse: WarehouseId::ClusterIdentifier(cluster), auth: DbAuth::Iam };
        let outcomes = read_whole(&api, &target, "dev", &ReadOptions::from_config(&config)).await.expect("listed");
        outcomes
            .into_iter()
            .find_map(|o| match o {
                Outcome::Read(db) if db.name == "sales_share" => Some(db),
                _ => None,
            })
            .expect("the consumer database read")
    };

    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &shared(&format!("{{{READER}}}")))]).await;
    let db = read_shared(cluster.clone()).await;
    let orders = &db.datasets[0].upstream;
    assert_eq!(orders, &vec![Upstream::shared("222222222222", "ns-1", "public", "orders")]);
    assert_eq!(
        serde_json::to_value(&orders[0]).unwrap(),
        json!({"schema": "public", "table": "orders", "warehouse": {"accountId": "222222222222", "namespace": "ns-1"}, "via": "datashare"})
    );

    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &shared("{}"))]).await;
    let db = read_shared(cluster).await;
    assert!(db.datasets[0].upstream.is_empty());
    assert!(db.notes.iter().any(|n| n.contains("in no INBOUND datashare the user can see")), "{:?}", db.notes);
}

/// A datashare between two warehouses, through whole runs: the producer's run publishes its
/// namespace record (its OUTBOUND datashares' source databases); a consumer's run after it
/// names the producer warehouse and dataset, so manifests, Backstage (read back by the real
/// packages) and OpenLineage link the two. Runs after that change nothing, byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn a_datashare_links_the_consumer_to_the_producer_warehouse() {
    let org = support::org::org("datashare_link").await;
    let (producer, consumer) = (unique("producer"), unique("consumer"));
    let namespace = format!("ns-{producer}");
    for id in [&producer, &consumer] {
        let seed = ClusterSeed { id, node_type: "ra3.xlplus", db_name: "dev", tags: &[] };
        create_cluster(&org.moto, &org.account, "us-east-1", seed).await;
    }
    let role = format!(
        r#"DO $$ BEGIN CREATE ROLE "{READER}"; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;"#
    );
    let producer_sql = format!(
        r#"{role} CREATE SCHEMA sales; CREATE TABLE sales.orders (id int);
        GRANT USAGE ON SCHEMA sales TO "{READER}"; GRANT SELECT ON sales.orders TO "{READER}";
        INSERT INTO pg_internal.fixture_outbound_shares VALUES ('sales_share', 'dev', '{a}', '{namespace}', '{{{READER}}}');"#,
        a = org.account
    );
    let consumer_sql = format!(
        r#"{role} INSERT INTO pg_internal.fixture_shared_databases VALUES ('sales_in', 'admin', '{a}', '{namespace}', 'sales_share', '{{{READER}}}');
        INSERT INTO pg_internal.fixture_shared_tables VALUES ('sales_in', 'sales', 'orders', 'TABLE', NULL, 'admin');
        INSERT INTO pg_internal.fixture_shared_columns (database_name, schema_name, table_name, column_name, ordinal_position, data_type)
          VALUES ('sales_in', 'sales', 'orders', 'id', 1, 'integer');"#,
        a = org.account
    );
    create_warehouse(&org.account, &producer, &[("dev", &producer_sql)]).await;
    create_warehouse(&org.account, &consumer, &[("dev", &consumer_sql)]).await;
    let config = org.config(json!({"outputs": {"backstage": {"owner": "group:default/data"}, "openlineage": {}}}));
    for _ in 0..2 {
        let report = run_against(&org.moto, &config, &Default::default()).await;
        assert_eq!(report.status, redshift_registry::report::RunStatus::Succeeded, "{report:#?}");
    }

    let record: serde_json::Value = serde_json::from_slice(
        &get_object(&org.moto, &org.bucket, &format!("registry/namespaces/{namespace}.json")).await,
    )
    .unwrap();
    assert_eq!(
        record,
        json!({"apiVersion": "redshift-registry/v1", "kind": "Namespace", "namespace": namespace,
               "accountId": org.account, "region": "us-east-1", "clusterIdentifier": producer,
               "shares": {"sales_share": "dev"}})
    );
    let key = format!("registry/datasets/{}/us-east-1/cluster/{consumer}/sales_in/sales/orders.json", org.account);
    let manifest: serde_json::Value = serde_json::from_slice(&get_object(&org.moto, &org.bucket, &key).await).unwrap();
    assert_eq!(
        manifest["upstream"],
        json!([{"name": "dev.sales.orders", "database": "dev", "schema": "sales", "table": "orders",
                "warehouse": {"accountId": org.account, "namespace": namespace, "region": "us-east-1",
                              "clusterIdentifier": producer},
                "via": "datashare"}])
    );

    let (produced, depends) = backstage_link(&org, "dev.sales.orders", "sales_in.sales.orders");
    assert!(depends.contains(&produced), "the consumer's orders depend on the producer's: {depends:?}");

    let events = org.objects(&format!("registry/openlineage/{}/us-east-1/cluster/{consumer}/", org.account)).await;
    let (_, bytes) = events.iter().next().expect("the consumer's events");
    let event: serde_json::Value = serde_json::from_slice(bytes.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(
        event["inputs"],
        json!([{"namespace": format!("redshift://{producer}.us-east-1:5439"), "name": "dev.sales.orders",
                "facets": {}, "inputFacets": {}}])
    );

    let before = org.objects("registry/").await;
    run_against(&org.moto, &config, &Default::default()).await;
    let after = org.objects("registry/").await;
    let outputs = |all: &std::collections::BTreeMap<String, Vec<u8>>| -> Vec<(String, Vec<u8>)> {
        all.iter()
            .filter(|(k, _)| !k.contains("/index/") && !k.contains("/runs/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(outputs(&after), outputs(&before), "byte-identical once the producer is known");
}
