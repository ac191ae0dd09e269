-- Account 111111111111's sales cluster makes the datashare sales_hq of its database dev, which
-- account 222222222222's sales cluster consumes (scripts/demo-consumer.sql). The reader may alter
-- it, so SVV_DATASHARES shows it the OUTBOUND row: the source database and the cluster's namespace.
INSERT INTO pg_internal.fixture_outbound_shares VALUES
  ('sales_hq', 'dev', '111111111111', 'a1b2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d', '{IAMR:DataRegistryRedshiftReader}');
