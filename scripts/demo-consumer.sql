-- Account 222222222222's sales cluster consumes a datashare of account 111111111111's sales
-- cluster: a consumer database (SVV_REDSHIFT_DATABASES type 'shared') whose tables keep the
-- producer's names. The reader has USAGE on the datashare, so SVV_DATASHARES shows it the producer.
INSERT INTO pg_internal.fixture_shared_databases VALUES
  ('sales_from_hq', 'admin', '111111111111', 'a1b2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d', 'sales_hq', '{IAMR:DataRegistryRedshiftReader}');
INSERT INTO pg_internal.fixture_shared_tables VALUES
  ('sales_from_hq', 'sales', 'orders', 'TABLE', 'Orders of the HQ sales cluster', 'admin'),
  ('sales_from_hq', 'sales', 'customers', 'TABLE', NULL, 'admin');
INSERT INTO pg_internal.fixture_shared_columns (database_name, schema_name, table_name, column_name, ordinal_position, data_type, is_nullable)
  VALUES ('sales_from_hq', 'sales', 'orders', 'order_id', 1, 'bigint', 'NO'),
         ('sales_from_hq', 'sales', 'orders', 'amount', 2, 'numeric(18,2)', 'YES'),
         ('sales_from_hq', 'sales', 'customers', 'customer_id', 1, 'integer', 'NO');
