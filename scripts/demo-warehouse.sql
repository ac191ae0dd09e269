-- A small sample warehouse for `make demo`, loaded into each demo database as the superuser.
DO $$ BEGIN CREATE ROLE "IAMR:DataRegistryRedshiftReader";
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;

CREATE SCHEMA sales;
CREATE TABLE sales.orders (
  order_id bigint NOT NULL, customer_id integer NOT NULL, amount numeric(18,2) DEFAULT 0,
  status varchar(16), ordered_at timestamp);
COMMENT ON TABLE sales.orders IS 'One row per order';
COMMENT ON COLUMN sales.orders.amount IS 'Order total in EUR';
INSERT INTO pg_internal.fixture_column_attributes VALUES
  ('sales', 'orders', 'customer_id', 'az64', true, 0), ('sales', 'orders', 'ordered_at', 'az64', false, 1);
INSERT INTO pg_internal.fixture_table_stats VALUES ('sales', 'orders', 42, 1250000);
CREATE TABLE sales.customers (customer_id integer NOT NULL, name varchar(256), country char(2));
CREATE VIEW sales.big_orders AS SELECT order_id, amount FROM sales.orders WHERE amount > 1000;
CREATE MATERIALIZED VIEW sales.daily_revenue AS
  SELECT ordered_at::date AS day, sum(amount) AS revenue FROM sales.orders GROUP BY 1;
CREATE TABLE sales.mv_tbl__daily_revenue__0 (day date, revenue numeric(38,2));
CREATE VIEW sales.recent_orders AS SELECT;
INSERT INTO pg_internal.fixture_late_binding_view_cols VALUES
  ('sales', 'recent_orders', 'order_id', 'bigint', 1), ('sales', 'recent_orders', 'ordered_at', 'timestamp without time zone', 2);
CREATE VIEW sales.top_orders AS SELECT o.order_id, c.name, o.amount FROM sales.big_orders o
  JOIN sales.orders USING (order_id) JOIN sales.customers c USING (customer_id);
-- What information_schema.views gives for a late-binding and a materialized view (their owner
-- sees it: the reader owns these two), from which their lineage is parsed.
INSERT INTO pg_internal.fixture_view_definitions VALUES
  ('sales', 'recent_orders', 'create view sales.recent_orders as select order_id, ordered_at from sales.orders where ordered_at > getdate() - interval ''7 days'' with no schema binding;'),
  ('sales', 'daily_revenue', 'CREATE MATERIALIZED VIEW sales.daily_revenue AUTO REFRESH YES AS SELECT ordered_at::date AS day, SUM(amount) AS revenue FROM sales.orders GROUP BY 1;');
ALTER VIEW sales.recent_orders OWNER TO "IAMR:DataRegistryRedshiftReader";
ALTER MATERIALIZED VIEW sales.daily_revenue OWNER TO "IAMR:DataRegistryRedshiftReader";

CREATE SCHEMA lake;
INSERT INTO pg_internal.fixture_external_schemas (schema_name) VALUES ('lake');
INSERT INTO pg_internal.fixture_external_tables (schema_name, table_name, location) VALUES ('lake', 'clickstream', 's3://demo-lake/clickstream/');
INSERT INTO pg_internal.fixture_external_columns (schema_name, table_name, column_name, external_type, columnnum, part_key)
  VALUES ('lake', 'clickstream', 'url', 'string', 1, 0), ('lake', 'clickstream', 'dt', 'date', 2, 1);

-- A schema the reader was never granted: the report says so, with the GRANT.
CREATE SCHEMA finance;
CREATE TABLE finance.ledger (entry_id bigint, amount numeric(18,2));

GRANT USAGE ON SCHEMA sales, lake TO "IAMR:DataRegistryRedshiftReader";
GRANT SELECT ON ALL TABLES IN SCHEMA sales TO "IAMR:DataRegistryRedshiftReader";
GRANT SELECT ON pg_internal.svv_table_info TO "IAMR:DataRegistryRedshiftReader";
