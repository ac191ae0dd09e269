//! PostgreSQL: the template with the Redshift catalog, warehouses made from it, and statements
//! run as a database user with Redshift's search path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config, NoTls, Row};

const TEMPLATE: &str = "redshift_template";
const CATALOG_SQL: &str = include_str!("../sql/redshift_catalog.sql");
/// Redshift's built-ins come before the user's schemas; pg_internal holds the emulated ones.
const SEARCH_PATH: &str = "SET search_path = pg_internal, pg_catalog, \"$user\", public";

/// (account, cluster or workgroup, database): one emulated database.
type DatabaseKey = (String, String, String);

#[derive(Clone)]
pub struct Postgres {
    base: Config,
    /// Each emulated database's PostgreSQL database, `rs_<n>`: short and unique whatever the
    /// lengths of the names (PostgreSQL keeps 63 bytes of a name).
    databases: Arc<Mutex<HashMap<DatabaseKey, String>>>,
    next: Arc<AtomicU64>,
}

/// One statement's result: column metadata, rows as Data API `Field`s, and their sizes.
#[derive(Debug, Clone, Default)]
pub struct ResultSet {
    pub has_result_set: bool,
    pub columns: Vec<Value>,
    pub rows: Vec<StoredRow>,
    /// Bytes of all rows, and of the widest one (see [`field_bytes`]).
    pub bytes: u64,
    pub widest_row_bytes: u64,
}

/// One stored result row: its Data API `Field`s as JSON text. Results live as long as their
/// statement, and a catalog of 100,000 tables is over a million rows: as text a field costs a few
/// bytes, as a JSON tree hundreds.
#[derive(Debug, Clone)]
pub struct StoredRow(Box<str>);

impl StoredRow {
    fn new(fields: &[Value]) -> Self {
        Self(serde_json::to_string(fields).expect("fields serialise").into())
    }

    pub fn fields(&self) -> Vec<Value> {
        serde_json::from_str(&self.0).expect("a row is stored as a JSON array")
    }
}

/// A connection to one emulated database acting as a database user, as a Data API session.
pub struct Session {
    client: Client,
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Postgres {
    /// Connects, drops the databases of an earlier run (whose state went with it), and
    /// (re)creates the template from the catalog SQL.
    pub async fn connect(conninfo: &str) -> Result<Self, String> {
        let base: Config = conninfo.parse().map_err(|e| format!("{e}"))?;
        let pg = Self { base, databases: Arc::default(), next: Arc::default() };
        let admin = pg.client("postgres").await?;
        let earlier = admin
            .query("SELECT datname FROM pg_database WHERE datname LIKE 'rs\\_%'", &[])
            .await
            .map_err(|e| e.to_string())?;
        let names = earlier.iter().map(|r| r.get::<_, String>(0)).chain([TEMPLATE.to_string()]);
        for name in names {
            drop_database(&admin, &name).await?;
        }
        admin.batch_execute(&format!("CREATE DATABASE {TEMPLATE}")).await.map_err(|e| e.to_string())?;
        let template = pg.client(TEMPLATE).await?;
        template.batch_execute(CATALOG_SQL).await.map_err(|e| format!("catalog SQL: {e}"))?;
        Ok(pg)
    }

    pub async fn client(&self, database: &str) -> Result<Client, String> {
        let mut config = self.base.clone();
        config.dbname(database);
        let (client, connection) = config.connect(NoTls).await.map_err(|e| match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        })?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Replaces every database of `target` in `account` with fresh ones, each set up by its
    /// fixture SQL run as the superuser. Each PostgreSQL database's comment names what it
    /// stands for, `<account>/<target>/<database>`, for the catalog SQL; its setting
    /// `redshift.database` holds the database's name again, for `current_database()`.
    pub async fn create_warehouse(
        &self,
        account: &str,
        target: &str,
        databases: &[(String, String)],
    ) -> Result<(), String> {
        let admin = self.client("postgres").await?;
        let existing: Vec<String> = {
            let mut all = self.databases.lock().unwrap();
            let keys: Vec<DatabaseKey> = all.keys().filter(|(a, t, _)| a == account && t == target).cloned().collect();
            keys.iter().filter_map(|k| all.remove(k)).collect()
        };
        for name in existing {
            drop_database(&admin, &name).await?;
        }
        for (database, sql) in databases {
            let name = format!("rs_{}", self.next.fetch_add(1, Ordering::SeqCst));
            create_database(&admin, &name).await?;
            let identity = format!("{account}/{target}/{database}");
            let (pg_name, identity_literal) = (quote_ident(&name), quote_literal(&identity));
            admin
                .batch_execute(&format!(
                    "COMMENT ON DATABASE {pg_name} IS {identity_literal}; \
                     ALTER DATABASE {pg_name} SET redshift.database = {}",
                    quote_literal(database)
                ))
                .await
                .map_err(|e| e.to_string())?;
            let key = (account.to_string(), target.to_string(), database.clone());
            self.databases.lock().unwrap().insert(key, name.clone());
            let client = self.client(&name).await?;
            client.batch_execute(sql).await.map_err(|e| format!("fixture SQL of {identity}: {}", db_message(&e)))?;
        }
        Ok(())
    }

    pub fn target_exists(&self, account: &str, target: &str) -> bool {
        self.databases.lock().unwrap().keys().any(|(a, t, _)| a == account && t == target)
    }

    /// A session on `database` of `target` in `account` as `user`, with Redshift's search path.
    pub async fn session(&self, account: &str, target: &str, database: &str, user: &str) -> Result<Session, String> {
        let key = (account.to_string(), target.to_string(), database.to_string());
        let name = self.databases.lock().unwrap().get(&key).cloned();
        let name = name.ok_or_else(|| format!("ERROR: database \"{database}\" does not exist"))?;
        let client = self.client(&name).await?;
        ensure_role(&client, user).await?;
        client
            .batch_execute(&format!("SET ROLE {}; {SEARCH_PATH}", quote_ident(user)))
            .await
            .map_err(|e| db_message(&e))?;
        Ok(Session { client })
    }
}

async fn drop_database(admin: &Client, name: &str) -> Result<(), String> {
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)))
        .await
        .map_err(|e| e.to_string())
}

async fn create_database(admin: &Client, name: &str) -> Result<(), String> {
    // Concurrent CREATE DATABASE from one template can collide; a retry settles it.
    let mut attempt = 0;
    loop {
        match admin.batch_execute(&format!("CREATE DATABASE {} TEMPLATE {TEMPLATE}", quote_ident(name))).await {
            Ok(()) => return Ok(()),
            Err(_) if attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(format!("creating {name}: {e}")),
        }
    }
}

impl Session {
    /// A statement without a result: BEGIN, COMMIT, ROLLBACK.
    pub async fn execute(&self, sql: &str) -> Result<(), String> {
        self.client.batch_execute(sql).await.map_err(|e| db_message(&e))
    }

    /// One SQL statement with the Data API's named parameters.
    pub async fn query(&self, sql: &str, params: &[(String, String)]) -> Result<ResultSet, String> {
        let (text, values) = bind_parameters(sql, params)?;
        let statement = self.client.prepare(&text).await.map_err(|e| db_message(&e))?;
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
        let rows = self.client.query(&statement, &refs).await.map_err(|e| db_message(&e))?;
        let columns = statement.columns();
        let mut set = ResultSet {
            has_result_set: !columns.is_empty(),
            columns: columns.iter().map(|c| column_metadata(c.name(), c.type_())).collect(),
            rows: Vec::with_capacity(rows.len()),
            ..ResultSet::default()
        };
        for row in &rows {
            let fields = record(row)?;
            let bytes = fields.iter().map(field_bytes).sum();
            set.bytes += bytes;
            set.widest_row_bytes = set.widest_row_bytes.max(bytes);
            set.rows.push(StoredRow::new(&fields));
        }
        Ok(set)
    }
}

/// Redshift creates an `IAMR:` user on first connect; PostgreSQL roles are made here the same way.
async fn ensure_role(client: &Client, user: &str) -> Result<(), String> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
        .await
        .map_err(|e| db_message(&e))?
        .is_some();
    if !exists {
        if let Err(e) = client.batch_execute(&format!("CREATE ROLE {}", quote_ident(user))).await {
            // A concurrent statement may have created it meanwhile.
            if !db_message(&e).contains("already exists") {
                return Err(db_message(&e));
            }
        }
    }
    Ok(())
}

pub fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("ERROR: {}", db.message()),
        None => e.to_string(),
    }
}

/// Data API named parameters (`:name`) become PostgreSQL positional ones; values are strings,
/// as the Data API sends them. Quoted text, identifiers and `::` casts are left alone.
pub fn bind_parameters(sql: &str, params: &[(String, String)]) -> Result<(String, Vec<String>), String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut values: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
                i += 1;
                continue;
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
                i += 1;
                continue;
            }
            None => {}
        }
        let is_param = c == ':'
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic() || *n == '_')
            && (i == 0 || chars[i - 1] != ':');
        if is_param {
            let start = i + 1;
            let mut end = start;
            while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
                end += 1;
            }
            let name: String = chars[start..end].iter().collect();
            let value = params
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("ERROR: no value for parameter :{name}"))?;
            let position = match names.iter().position(|n| *n == name) {
                Some(p) => p + 1,
                None => {
                    names.push(name);
                    values.push(value);
                    values.len()
                }
            };
            out.push_str(&format!("${position}"));
            i = end;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok((out, values))
}

/// A field's size as the database sends it: a string's UTF-8 bytes, 8 for a number, 1 for a
/// boolean, 0 for NULL.
fn field_bytes(field: &Value) -> u64 {
    match field.get("stringValue").and_then(Value::as_str) {
        Some(s) => s.len() as u64,
        None if field.get("booleanValue").is_some() => 1,
        None if field.get("isNull").is_some() => 0,
        None => 8,
    }
}

fn column_metadata(name: &str, ty: &Type) -> Value {
    let type_name = match *ty {
        Type::VARCHAR | Type::TEXT | Type::NAME => "varchar",
        Type::BPCHAR | Type::CHAR => "bpchar",
        _ => ty.name(),
    };
    json!({
        "name": name, "label": name, "typeName": type_name, "nullable": 1,
        "isCaseSensitive": matches!(*ty, Type::VARCHAR | Type::TEXT | Type::NAME | Type::BPCHAR),
        "isSigned": matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8 | Type::FLOAT4 | Type::FLOAT8),
        "isCurrency": false, "precision": 0, "scale": 0, "length": 0,
        "schemaName": "", "tableName": ""
    })
}

/// One row as Data API `Field`s: a union with exactly one key.
fn record(row: &Row) -> Result<Vec<Value>, String> {
    let mut fields = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let field = match *ty {
            Type::BOOL => row.try_get::<_, Option<bool>>(i).map(|v| v.map(|b| json!({"booleanValue": b}))),
            Type::INT2 => row.try_get::<_, Option<i16>>(i).map(|v| v.map(|n| json!({"longValue": n}))),
            Type::INT4 => row.try_get::<_, Option<i32>>(i).map(|v| v.map(|n| json!({"longValue": n}))),
            Type::INT8 => row.try_get::<_, Option<i64>>(i).map(|v| v.map(|n| json!({"longValue": n}))),
            Type::OID => row.try_get::<_, Option<u32>>(i).map(|v| v.map(|n| json!({"longValue": n}))),
            Type::FLOAT4 => row.try_get::<_, Option<f32>>(i).map(|v| v.map(|n| json!({"doubleValue": n}))),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(i).map(|v| v.map(|n| json!({"doubleValue": n}))),
            Type::CHAR => row
                .try_get::<_, Option<i8>>(i)
                .map(|v| v.map(|n| json!({"stringValue": (n as u8 as char).to_string()}))),
            _ => row.try_get::<_, Option<String>>(i).map(|v| v.map(|s| json!({"stringValue": s}))),
        }
        .map_err(|_| {
            format!(
                "ERROR: the emulator cannot return column {:?} of type {}; cast it to varchar",
                column.name(),
                ty.name()
            )
        })?;
        fields.push(field.unwrap_or_else(|| json!({"isNull": true})));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::bind_parameters;

    #[test]
    fn named_parameters_become_positional() {
        let params = vec![("db".to_string(), "dev".to_string()), ("s".to_string(), "x".to_string())];
        let (sql, values) =
            bind_parameters("SELECT ':db', a::text FROM t WHERE d = :db AND s = :s OR d2 = :db", &params).unwrap();
        assert_eq!(sql, "SELECT ':db', a::text FROM t WHERE d = $1 AND s = $2 OR d2 = $1");
        assert_eq!(values, vec!["dev", "x"]);
        assert!(bind_parameters("SELECT :missing", &params).unwrap_err().contains(":missing"));
    }
}
