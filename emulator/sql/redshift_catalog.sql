-- The Redshift catalog objects redshift-registry reads, for PostgreSQL 15. Installed into the
-- template every emulated database is created from. Column names and types follow the AWS
-- Database Developer Guide pages named next to each object.
--
-- Everything lives in schema pg_internal, which is a system schema on Redshift too. Sessions
-- run with search_path = pg_internal, pg_catalog, "$user", public, so these names resolve
-- before PostgreSQL's own, as Redshift's built-ins would.
--
-- Where PostgreSQL has the data, the objects read its catalog, so CREATE TABLE, COMMENT ON and
-- GRANT in a fixture are what the reader sees. Where it has none (external tables, late-binding
-- view columns, datashares, dist/sort keys, encodings, table stats), fixture tables named
-- pg_internal.fixture_* hold it; fixtures insert into them as the superuser.

SET allow_system_table_mods = on;
CREATE SCHEMA pg_internal;
GRANT USAGE ON SCHEMA pg_internal TO PUBLIC;

-- Each PostgreSQL database's comment says which emulated database it is:
-- '<account>/<cluster or workgroup>/<database>' (see pg.rs).
CREATE FUNCTION pg_internal.identity(datname name) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT shobj_description(d.oid, 'pg_database') FROM pg_catalog.pg_database d WHERE d.datname = $1 $$;
CREATE FUNCTION pg_internal.warehouse_of(identity text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT substring($1 FROM '^[^/]*/[^/]*/') $$;
CREATE FUNCTION pg_internal.database_of(identity text) RETURNS varchar LANGUAGE sql IMMUTABLE AS
$$ SELECT substring($1 FROM '^[^/]*/[^/]*/(.*)$')::varchar $$;
-- The catalog views call current_database() once or twice per row: from the comment (a lookup
-- and a regex, about 13 us) it cost 16 s of a 300,000-column SVV_REDSHIFT_COLUMNS read, far
-- above the statement time the emulator is set to model; so the name is also a setting of the
-- database (pg.rs), read per row for next to nothing.
CREATE FUNCTION pg_internal.current_database() RETURNS varchar LANGUAGE sql STABLE AS
$$ SELECT current_setting('redshift.database')::varchar $$;
CREATE FUNCTION pg_internal.current_target() RETURNS text LANGUAGE sql STABLE AS
$$ SELECT split_part(pg_internal.identity(pg_catalog.current_database()), '/', 2) $$;

-- Regular users see only objects they have some privilege on (Redshift: "Visibility of data in
-- system tables and views"); superusers see everything.
CREATE FUNCTION pg_internal.visible(rel oid) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT has_schema_privilege(c.relnamespace, 'USAGE')
     AND has_table_privilege(rel, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')
  FROM pg_catalog.pg_class c WHERE c.oid = rel
$$;

CREATE TABLE pg_internal.fixture_column_attributes (
  schema_name text, table_name text, column_name text,
  encoding text, distkey boolean DEFAULT false, sortkey int DEFAULT 0,
  PRIMARY KEY (schema_name, table_name, column_name));
CREATE TABLE pg_internal.fixture_late_binding_view_cols (
  view_schema text, view_name text, col_name text, col_type text, col_num int);
-- eskind: 1 data catalog (Glue), 2 Hive metastore, 3 federated PostgreSQL, 4 local Redshift
-- database, 5 remote Redshift database, 6 system table schema, 8 remote MySQL, 9 Kinesis data
-- stream, 10 MSK stream (r_SVV_EXTERNAL_SCHEMAS.html). failure: NULL for a schema whose catalog
-- can be read, else the error a query over its tables or columns fails with.
CREATE TABLE pg_internal.fixture_external_schemas (
  schema_name text PRIMARY KEY, eskind smallint DEFAULT 1, esowner int DEFAULT 100, esoptions text,
  failure text, external_database text);
-- tabletype: "Some values are TABLE, VIEW, MATERIALIZED VIEW, or ' ' empty string"
-- (r_SVV_EXTERNAL_TABLES.html).
CREATE TABLE pg_internal.fixture_external_tables (
  schema_name text, table_name text, tabletype text DEFAULT 'TABLE', location text,
  input_format text, output_format text, serialization_lib text, serde_parameters text,
  compressed int DEFAULT 0, parameters text);
-- is_nullable: 'true', 'false' or ' ' (r_SVV_EXTERNAL_COLUMNS.html).
CREATE TABLE pg_internal.fixture_external_columns (
  schema_name text, table_name text, column_name text, external_type text, columnnum int,
  part_key int DEFAULT 0, is_nullable text DEFAULT 'true');
CREATE TABLE pg_internal.fixture_shared_databases (
  database_name text PRIMARY KEY, database_owner text, producer_account text, producer_namespace text,
  share_name text, share_users text[] DEFAULT '{}');
-- The datashares this warehouse makes (CREATE DATASHARE in source_database): its OUTBOUND rows.
CREATE TABLE pg_internal.fixture_outbound_shares (
  share_name text PRIMARY KEY, source_database text, producer_account text, producer_namespace text,
  share_users text[] DEFAULT '{}');
CREATE TABLE pg_internal.fixture_shared_tables (
  database_name text, schema_name text, table_name text, table_type text DEFAULT 'TABLE',
  remarks text, table_owner text);
CREATE TABLE pg_internal.fixture_shared_columns (
  database_name text, schema_name text, table_name text, column_name text, ordinal_position int,
  data_type text, column_default text, is_nullable text DEFAULT 'YES', encoding text DEFAULT 'none',
  distkey boolean DEFAULT false, sortkey int DEFAULT 0, remarks text);
CREATE TABLE pg_internal.fixture_table_stats (
  schema_name text, table_name text, size_mb bigint, tbl_rows bigint,
  PRIMARY KEY (schema_name, table_name));
-- System settings ALTER SYSTEM would set (r_ALTER_SYSTEM.html), e.g. ('metadata_security', 'true').
CREATE TABLE pg_internal.fixture_settings (name text PRIMARY KEY, value text);
GRANT SELECT ON pg_internal.fixture_settings TO PUBLIC;

-- SVV_REDSHIFT_DATABASES (https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_REDSHIFT_DATABASES.html):
-- every database of the cluster, local ones from pg_database, datashare consumers from fixtures.
CREATE VIEW pg_internal.svv_redshift_databases AS
SELECT pg_internal.database_of(pg_internal.identity(d.datname))::varchar(128) AS database_name,
       pg_get_userbyid(d.datdba)::varchar(128) AS database_owner,
       'local'::varchar(128) AS database_type,
       array_to_string(d.datacl, ',')::varchar(128) AS database_acl,
       NULL::varchar(128) AS database_options
  FROM pg_catalog.pg_database d
 WHERE pg_internal.warehouse_of(pg_internal.identity(d.datname))
       = pg_internal.warehouse_of(pg_internal.identity(pg_catalog.current_database()))
UNION ALL
SELECT database_name, database_owner, 'shared', NULL, NULL FROM pg_internal.fixture_shared_databases;

-- SVV_ALL_SCHEMAS (https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_ALL_SCHEMAS.html).
CREATE VIEW pg_internal.svv_all_schemas AS
SELECT pg_internal.current_database()::varchar(128) AS database_name,
       n.nspname::varchar(128) AS schema_name,
       n.nspowner::int AS schema_owner,
       (CASE WHEN e.schema_name IS NULL THEN 'local' ELSE 'external' END)::varchar(16) AS schema_type,
       array_to_string(n.nspacl, ',')::varchar(128) AS schema_acl,
       NULL::varchar(128) AS source_database,
       NULL::varchar(128) AS schema_option
  FROM pg_catalog.pg_namespace n
  LEFT JOIN pg_internal.fixture_external_schemas e ON e.schema_name = n.nspname
 WHERE has_schema_privilege(n.oid, 'USAGE')
UNION ALL
SELECT DISTINCT database_name, schema_name, 100, 'shared', NULL, NULL, NULL FROM pg_internal.fixture_shared_tables;

-- SVV_REDSHIFT_SCHEMAS (https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_REDSHIFT_SCHEMAS.html).
CREATE VIEW pg_internal.svv_redshift_schemas AS
SELECT database_name, schema_name, schema_owner, schema_type, schema_acl, schema_option
  FROM pg_internal.svv_all_schemas WHERE schema_type <> 'external';

-- SVV_REDSHIFT_TABLES (https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_REDSHIFT_TABLES.html).
-- Redshift stores a materialized view as a view; PostgreSQL's matviews are shown as VIEW too.
CREATE VIEW pg_internal.svv_redshift_tables AS
SELECT pg_internal.current_database()::varchar(128) AS database_name,
       n.nspname::varchar(128) AS schema_name,
       c.relname::varchar(128) AS table_name,
       (CASE WHEN c.relkind IN ('v', 'm') THEN 'VIEW' ELSE 'TABLE' END)::varchar(128) AS table_type,
       array_to_string(c.relacl, ',')::varchar(128) AS table_acl,
       obj_description(c.oid, 'pg_class')::varchar(128) AS remarks,
       pg_get_userbyid(c.relowner)::varchar(128) AS table_owner
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm') AND pg_internal.visible(c.oid)
UNION ALL
SELECT database_name, schema_name, table_name, table_type, NULL, remarks, table_owner
  FROM pg_internal.fixture_shared_tables;

-- SVV_REDSHIFT_COLUMNS (https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_REDSHIFT_COLUMNS.html).
-- Late-binding views have no pg_attribute rows, so no columns here, as on Redshift.
CREATE VIEW pg_internal.svv_redshift_columns AS
SELECT pg_internal.current_database()::varchar(128) AS database_name,
       n.nspname::varchar(128) AS schema_name,
       c.relname::varchar(128) AS table_name,
       a.attname::varchar(128) AS column_name,
       a.attnum::int AS ordinal_position,
       -- Documented varchar(32), which fits Redshift's type names; PostgreSQL's can be longer
       -- (schema-qualified user-defined types, arrays) and a cast to varchar(32) would cut them.
       format_type(a.atttypid, a.atttypmod)::varchar(128) AS data_type,
       pg_get_expr(d.adbin, d.adrelid)::varchar(4000) AS column_default,
       (CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END)::varchar(3) AS is_nullable,
       COALESCE(ca.encoding, 'none')::varchar(128) AS encoding,
       COALESCE(ca.distkey, false) AS distkey,
       COALESCE(ca.sortkey, 0)::int AS sortkey,
       array_to_string(a.attacl, ',')::varchar(128) AS column_acl,
       col_description(c.oid, a.attnum)::varchar(256) AS remarks
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  LEFT JOIN pg_internal.fixture_column_attributes ca
         ON ca.schema_name = n.nspname AND ca.table_name = c.relname AND ca.column_name = a.attname
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm') AND pg_internal.visible(c.oid)
UNION ALL
SELECT database_name, schema_name, table_name, column_name, ordinal_position, data_type, column_default,
       is_nullable, encoding, distkey, sortkey, NULL, remarks
  FROM pg_internal.fixture_shared_columns;

-- PG_GET_LATE_BINDING_VIEW_COLS (https://docs.aws.amazon.com/redshift/latest/dg/PG_GET_LATE_BINDING_VIEW_COLS.html):
-- called with a column definition list, as on Redshift. A fixture creates each late-binding view
-- as a zero-column placeholder view (so pg_class has it and pg_attribute does not) and lists its
-- columns in fixture_late_binding_view_cols.
CREATE FUNCTION pg_internal.pg_get_late_binding_view_cols() RETURNS SETOF record LANGUAGE sql STABLE AS $$
  SELECT l.view_schema::name, l.view_name::name, l.col_name::name, l.col_type::varchar, l.col_num::int
    FROM pg_internal.fixture_late_binding_view_cols l
    JOIN pg_catalog.pg_namespace n ON n.nspname = l.view_schema
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = l.view_name
   WHERE pg_internal.visible(c.oid)
$$;

-- INFORMATION_SCHEMA.VIEWS as Redshift fills it: a definition only for the view's owner
-- (PostgreSQL's rule, which Redshift keeps); a late-binding view's definition is the CREATE VIEW
-- ... WITH NO SCHEMA BINDING statement as written (r_CREATE_VIEW.html; its placeholder here has
-- none), and materialized views are listed too, with their CREATE MATERIALIZED VIEW statement
-- (Redshift stores them as views; pg_get_viewdef returns that DDL). A fixture gives the text of
-- either in fixture_view_definitions; a materialized view without one gets its statement
-- rebuilt from PostgreSQL's definition.
CREATE TABLE pg_internal.fixture_view_definitions (
  view_schema text, view_name text, definition text, PRIMARY KEY (view_schema, view_name));
GRANT SELECT ON pg_internal.fixture_view_definitions TO PUBLIC;
ALTER VIEW information_schema.views RENAME TO postgres_views;
CREATE VIEW information_schema.views AS
SELECT v.table_catalog, v.table_schema, v.table_name,
       (CASE WHEN v.view_definition IS NULL THEN NULL ELSE COALESCE(f.definition, v.view_definition) END)
         ::information_schema.character_data AS view_definition,
       v.check_option, v.is_updatable, v.is_insertable_into, v.is_trigger_updatable, v.is_trigger_deletable,
       v.is_trigger_insertable_into
  FROM information_schema.postgres_views v
  LEFT JOIN pg_internal.fixture_view_definitions f ON f.view_schema = v.table_schema AND f.view_name = v.table_name
UNION ALL
SELECT pg_catalog.current_database()::information_schema.sql_identifier, n.nspname::information_schema.sql_identifier,
       c.relname::information_schema.sql_identifier,
       (CASE WHEN pg_catalog.pg_has_role(c.relowner, 'USAGE')
             THEN COALESCE(f.definition, 'CREATE MATERIALIZED VIEW ' || quote_ident(n.nspname) || '.'
                                         || quote_ident(c.relname) || ' AS' || pg_catalog.pg_get_viewdef(c.oid))
        END)::information_schema.character_data,
       'NONE'::information_schema.character_data, 'NO'::information_schema.yes_or_no,
       'NO'::information_schema.yes_or_no, 'NO'::information_schema.yes_or_no, 'NO'::information_schema.yes_or_no,
       'NO'::information_schema.yes_or_no
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_internal.fixture_view_definitions f ON f.view_schema = n.nspname AND f.view_name = c.relname
 WHERE c.relkind = 'm'
   AND (pg_catalog.pg_has_role(c.relowner, 'USAGE')
        OR pg_catalog.has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'));
GRANT SELECT ON information_schema.views TO PUBLIC;

-- SVV_DATASHARES (https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_DATASHARES.html): the
-- consumer's INBOUND rows and the producer's OUTBOUND ones. Visible to "superusers, datashare
-- owners, users with ALTER or USAGE permissions on a datashare"; share_users names who has those
-- here. An INBOUND row's source_database is empty on the consumer; an OUTBOUND row has it (the
-- page's example: source_database 'dev', share_type OUTBOUND), its producer_account and
-- producer_namespace being the warehouse's own, and no consumer_database. share_owner is an
-- integer, a usesysid to join with SVL_USER_INFO (the page's usage notes).
CREATE VIEW pg_internal.svv_datashares AS
SELECT COALESCE(s.share_name, s.database_name)::varchar(128) AS share_name, 0::int AS share_id,
       100::int AS share_owner, NULL::varchar(128) AS source_database,
       s.database_name::varchar(128) AS consumer_database, 'INBOUND'::varchar(8) AS share_type,
       NULL::timestamp AS createdate, false AS is_publicaccessible, NULL::varchar(256) AS share_acl,
       s.producer_account::varchar(16) AS producer_account, s.producer_namespace::varchar(64) AS producer_namespace,
       NULL::varchar(64) AS managed_by
  FROM pg_internal.fixture_shared_databases s
 WHERE current_user = ANY (s.share_users)
    OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
UNION ALL
SELECT o.share_name::varchar(128), 0, 100, o.source_database::varchar(128), NULL::varchar(128),
       'OUTBOUND'::varchar(8), NULL::timestamp, false, NULL::varchar(256), o.producer_account::varchar(16),
       o.producer_namespace::varchar(64), NULL::varchar(64)
  FROM pg_internal.fixture_outbound_shares o
 WHERE current_user = ANY (o.share_users)
    OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user);
GRANT SELECT ON pg_internal.svv_datashares TO PUBLIC;

-- SVV_MV_INFO (https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_MV_INFO.html): regular users
-- see their own materialized views only.
-- Its names are char(128), so they come back padded with spaces, as PostgreSQL's bpchar does.
CREATE VIEW pg_internal.svv_mv_info AS
SELECT pg_internal.current_database()::char(128) AS database_name,
       m.schemaname::char(128) AS schema_name,
       m.matviewowner::char(128) AS user_name,
       m.matviewname::char(128) AS name,
       'f'::char(1) AS is_stale,
       1::int AS state,
       'f'::char(1) AS autorefresh,
       'f'::char(1) AS autorewrite
  FROM pg_catalog.pg_matviews m
 WHERE m.matviewowner = current_user
    OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user);

-- SVV_EXTERNAL_SCHEMAS (https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_EXTERNAL_SCHEMAS.html):
-- the external schemas of the connected database; databasename is "the name of the external
-- database" (the Glue or Hive database, the federated database), not the Redshift one.
CREATE VIEW pg_internal.svv_external_schemas AS
SELECT n.oid AS esoid, e.eskind AS eskind, e.schema_name::name AS schemaname,
       e.esowner::int AS esowner, COALESCE(e.external_database, e.schema_name)::text AS databasename,
       e.esoptions AS esoptions
  FROM pg_internal.fixture_external_schemas e JOIN pg_catalog.pg_namespace n ON n.nspname = e.schema_name
 WHERE has_schema_privilege(n.oid, 'USAGE');

-- Redshift reads an external schema's catalog with the IAM role it names
-- (https://docs.aws.amazon.com/redshift/latest/dg/c-spectrum-iam-policies.html); when it cannot
-- (the role was removed), a query that reaches that schema's tables fails with the catalog's
-- error. Costly, so PostgreSQL checks it after a query's cheaper filters: rows of other schemas
-- filtered out first never raise.
CREATE FUNCTION pg_internal.external_catalog_readable(failure text) RETURNS boolean LANGUAGE plpgsql
STABLE COST 1000000 AS $$
BEGIN
  IF failure IS NOT NULL THEN
    RAISE EXCEPTION '%', failure;
  END IF;
  RETURN true;
END $$;

-- SVV_EXTERNAL_TABLES (https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_EXTERNAL_TABLES.html).
CREATE VIEW pg_internal.svv_external_tables AS
SELECT pg_internal.current_database()::text AS redshift_database_name,
       t.schema_name AS schemaname, t.table_name AS tablename, t.tabletype, t.location,
       t.input_format, t.output_format, t.serialization_lib, t.serde_parameters,
       t.compressed::int AS compressed, t.parameters
  FROM pg_internal.fixture_external_tables t JOIN pg_catalog.pg_namespace n ON n.nspname = t.schema_name
  LEFT JOIN pg_internal.fixture_external_schemas e ON e.schema_name = t.schema_name
 WHERE has_schema_privilege(n.oid, 'USAGE') AND pg_internal.external_catalog_readable(e.failure);

-- SVV_EXTERNAL_COLUMNS (https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_EXTERNAL_COLUMNS.html).
CREATE VIEW pg_internal.svv_external_columns AS
SELECT pg_internal.current_database()::text AS redshift_database_name,
       c.schema_name AS schemaname, c.table_name AS tablename, c.column_name AS columnname,
       c.external_type, c.columnnum::int AS columnnum, c.part_key::int AS part_key, c.is_nullable
  FROM pg_internal.fixture_external_columns c JOIN pg_catalog.pg_namespace n ON n.nspname = c.schema_name
  LEFT JOIN pg_internal.fixture_external_schemas e ON e.schema_name = c.schema_name
 WHERE has_schema_privilege(n.oid, 'USAGE') AND pg_internal.external_catalog_readable(e.failure);

-- SVV_TABLE_INFO (https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_TABLE_INFO.html): current
-- database only; superusers, or users granted SELECT on it.
CREATE VIEW pg_internal.svv_table_info AS
SELECT pg_internal.current_database()::text AS "database",
       n.nspname::text AS "schema",
       c.oid::int AS table_id,
       c.relname::text AS "table",
       'Y'::char(1) AS encoded,
       'AUTO(EVEN)'::varchar(128) AS diststyle,
       NULL::varchar(128) AS sortkey1,
       COALESCE(s.size_mb, ceil(pg_total_relation_size(c.oid) / 1048576.0))::bigint AS size,
       COALESCE(s.tbl_rows, GREATEST(c.reltuples, 0))::bigint AS tbl_rows,
       COALESCE(s.tbl_rows, GREATEST(c.reltuples, 0))::bigint AS estimated_visible_rows,
       0::int AS stats_off,
       0::int AS unsorted
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_internal.fixture_table_stats s ON s.schema_name = n.nspname AND s.table_name = c.relname
 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_internal')
   AND n.nspname NOT LIKE 'pg\_toast%' AND pg_internal.visible(c.oid);

-- Metadata security (https://docs.aws.amazon.com/redshift/latest/dg/t_metadata_security.html):
-- once ALTER SYSTEM SET metadata_security = true, users see the metadata of objects they were
-- granted access to, own, or that are public; superusers see all. It filters the pg_catalog
-- tables too, so unqualified pg_class and pg_namespace (pg_internal comes first on the search
-- path) show only accessible schemas and relations. ACCESS CATALOG is not modelled.
CREATE FUNCTION pg_internal.metadata_security() RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT EXISTS (SELECT 1 FROM pg_internal.fixture_settings WHERE name = 'metadata_security' AND value = 'true') $$;
CREATE VIEW pg_internal.pg_namespace AS
SELECT * FROM pg_catalog.pg_namespace n
 WHERE NOT pg_internal.metadata_security() OR has_schema_privilege(n.oid, 'USAGE,CREATE');
CREATE VIEW pg_internal.pg_class AS
SELECT * FROM pg_catalog.pg_class c
 WHERE NOT pg_internal.metadata_security()
    OR (has_schema_privilege(c.relnamespace, 'USAGE')
        AND has_table_privilege(c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER'));
-- pg_settings with the metadata_security row, 'on' or 'off'. UNCONFIRMED: AWS does not document
-- that Redshift lists metadata_security in pg_settings.
CREATE VIEW pg_internal.pg_settings AS
SELECT * FROM pg_catalog.pg_settings
UNION ALL
SELECT 'metadata_security', CASE WHEN pg_internal.metadata_security() THEN 'on' ELSE 'off' END, NULL,
       'Connections and Authentication', 'Metadata security', NULL, 'superuser', 'bool', 'default', NULL,
       NULL, NULL, 'off', NULL, NULL, NULL, false;

GRANT SELECT ON pg_internal.pg_namespace, pg_internal.pg_class, pg_internal.pg_settings TO PUBLIC;
GRANT SELECT ON pg_internal.svv_redshift_databases, pg_internal.svv_all_schemas, pg_internal.svv_redshift_schemas,
  pg_internal.svv_redshift_tables, pg_internal.svv_redshift_columns, pg_internal.svv_mv_info,
  pg_internal.svv_external_schemas, pg_internal.svv_external_tables, pg_internal.svv_external_columns TO PUBLIC;
REVOKE ALL ON pg_internal.svv_table_info FROM PUBLIC;
-- pg_get_late_binding_view_cols() runs as its caller, whose privileges decide what it shows.
GRANT SELECT ON pg_internal.fixture_late_binding_view_cols TO PUBLIC;
-- Redshift users cannot create objects in public unless granted; neither here.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
