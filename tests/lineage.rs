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
