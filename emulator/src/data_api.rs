//! The Redshift Data API operations (`X-Amz-Target: RedshiftData.<Op>`), epoch-second timestamps.

use serde_json::{json, Value};

use crate::control::{Emulator, Knobs};
use crate::http::AwsError;
use crate::statements::{NewStatement, Statement, SubStatement};

const DEFAULT_IAM_USER: &str = "IAMR:DataRegistryRedshiftReader";

fn str_field<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

fn required<'a>(input: &'a Value, key: &str) -> Result<&'a str, AwsError> {
    str_field(input, key).ok_or_else(|| AwsError::validation(format!("{key} is required")))
}

/// The cluster or workgroup a request names: exactly one of the two.
fn target_of(input: &Value) -> Result<(String, bool), AwsError> {
    match (str_field(input, "ClusterIdentifier"), str_field(input, "WorkgroupName")) {
        (Some(c), None) => Ok((c.to_string(), false)),
        (None, Some(w)) => Ok((w.to_string(), true)),
        (Some(_), Some(_)) => Err(AwsError::validation("ClusterIdentifier and WorkgroupName are mutually exclusive")),
        (None, None) => Err(AwsError::validation("Either ClusterIdentifier or WorkgroupName is required")),
    }
}

/// The database user a request acts as, by the Data API's authentication modes.
fn user_of(input: &Value, knobs: &Knobs) -> Result<String, AwsError> {
    if let Some(user) = str_field(input, "DbUser") {
        return Ok(user.to_string());
    }
    if let Some(arn) = str_field(input, "SecretArn") {
        return knobs
            .secrets
            .get(arn)
            .cloned()
            .ok_or_else(|| AwsError::validation(format!("Secrets Manager could not find the secret {arn}")));
    }
    Ok(knobs.iam_user.clone().unwrap_or_else(|| DEFAULT_IAM_USER.to_string()))
}

fn parameters(input: &Value) -> Vec<(String, String)> {
    input
        .get("Parameters")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| Some((str_field(p, "name")?.to_string(), str_field(p, "value")?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `id` or `id:n` (the n-th statement of a batch).
fn split_id(id: &str) -> (&str, Option<usize>) {
    match id.rsplit_once(':') {
        Some((base, n)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => (base, n.parse().ok()),
        _ => (id, None),
    }
}

/// BatchExecuteStatement's ExecutionMode: TRANSACTION (the default) or AUTO_COMMIT
/// (https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_BatchExecuteStatement.html).
fn execution_mode(input: &Value) -> Result<&'static str, AwsError> {
    match str_field(input, "ExecutionMode") {
        None | Some("TRANSACTION") => Ok("TRANSACTION"),
        Some("AUTO_COMMIT") => Ok("AUTO_COMMIT"),
        Some(other) => Err(AwsError::validation(format!("ExecutionMode {other} is not TRANSACTION or AUTO_COMMIT"))),
    }
}

/// ResultRows of a (sub-)statement: its row count, or 0 under the `resultRowsZero` knob.
fn result_rows(s: &Statement, sub: &SubStatement) -> i64 {
    if s.knobs.result_rows_zero && sub.result.has_result_set {
        0
    } else {
        sub.result.rows.len() as i64
    }
}

fn string_of(field: &Value) -> Option<String> {
    field.get("stringValue").and_then(Value::as_str).map(str::to_string)
}

impl Emulator {
    pub async fn data_api(&self, op: &str, account: &str, input: &Value) -> Result<Value, AwsError> {
        match op {
            "ExecuteStatement" | "BatchExecuteStatement" => self.execute(op, account, input).await,
            "DescribeStatement" => self.describe(account, input).await,
            "GetStatementResult" => self.result(account, input).await,
            "CancelStatement" => self.cancel(account, input).await,
            "ListDatabases" | "ListSchemas" | "ListTables" | "DescribeTable" => self.catalog(op, account, input).await,
            _ => {
                Err(AwsError { status: 400, code: "UnknownOperationException", message: format!("RedshiftData.{op}") })
            }
        }
    }

    async fn execute(&self, op: &str, account: &str, input: &Value) -> Result<Value, AwsError> {
        let (target, is_workgroup) = target_of(input)?;
        let knobs = self.enter(account, &target, op).await?;
        let database = required(input, "Database")?.to_string();
        let sqls: Vec<String> = if op == "BatchExecuteStatement" {
            let sqls: Vec<String> = input
                .get("Sqls")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            if sqls.is_empty() || sqls.len() > 40 {
                return Err(AwsError::validation("Sqls must hold 1 to 40 statements"));
            }
            if input.get("Parameters").is_some() {
                return Err(AwsError::validation("BatchExecuteStatement does not take Parameters"));
            }
            sqls
        } else {
            vec![required(input, "Sql")?.to_string()]
        };
        if sqls.iter().any(|s| s.len() > 100 * 1024) {
            return Err(AwsError::validation("SQL text is limited to 100 KB"));
        }
        let batch_mode = if op == "BatchExecuteStatement" { Some(execution_mode(input)?) } else { None };
        let user = user_of(input, &knobs)?;
        if !self.pg.target_exists(account, &target) {
            let what = if is_workgroup { "Workgroup" } else { "Cluster" };
            return Err(AwsError::validation(format!("{what} {target} not found")));
        }
        let id = self.statements.start(
            &self.pg,
            &knobs,
            self.running(account, &target),
            NewStatement {
                account: account.to_string(),
                target: target.clone(),
                is_workgroup,
                database: database.clone(),
                user: user.clone(),
                sqls,
                params: parameters(input),
                batch_mode,
            },
        );
        let created = self.statements.get(&id).unwrap().lock().unwrap().created_at;
        let mut out = json!({"Id": id, "Database": database, "CreatedAt": created});
        out[if is_workgroup { "WorkgroupName" } else { "ClusterIdentifier" }] = json!(target);
        if str_field(input, "DbUser").is_some() {
            out["DbUser"] = json!(user);
        }
        Ok(out)
    }

    /// The statement an id names in the caller's account, after counting the call against its target.
    async fn statement_for(
        &self,
        op: &str,
        account: &str,
        input: &Value,
    ) -> Result<(std::sync::Arc<std::sync::Mutex<Statement>>, Option<usize>), AwsError> {
        let raw = required(input, "Id")?;
        let (base, sub) = split_id(raw);
        let statement = self
            .statements
            .get(base)
            .filter(|s| s.lock().unwrap().account == account)
            .ok_or_else(|| AwsError::not_found(format!("Query does not exist: {raw}")))?;
        let target = statement.lock().unwrap().target.clone();
        self.enter(account, &target, op).await?;
        Ok((statement, sub))
    }

    async fn describe(&self, account: &str, input: &Value) -> Result<Value, AwsError> {
        let (statement, sub) = self.statement_for("DescribeStatement", account, input).await?;
        let s = statement.lock().unwrap();
        let duration = |updated: f64| ((updated - s.created_at) * 1e9) as i64;
        if let Some(n) = sub {
            let one = s.subs.get(n.wrapping_sub(1)).ok_or_else(|| AwsError::not_found("no such sub-statement"))?;
            return Ok(json!({
                "Id": format!("{}:{n}", s.id), "Status": one.status, "QueryString": one.sql,
                "CreatedAt": s.created_at, "UpdatedAt": one.updated_at, "Duration": duration(one.updated_at),
                "HasResultSet": one.result.has_result_set, "ResultRows": result_rows(&s, one),
                "ResultSize": one.result.bytes, "Database": s.database, "Error": one.error,
            }));
        }
        let first = &s.subs[0];
        let mut out = json!({
            "Id": s.id, "Status": s.status, "CreatedAt": s.created_at, "UpdatedAt": s.updated_at,
            "Duration": duration(s.updated_at), "Database": s.database, "DbUser": s.user,
            "RedshiftPid": 1073, "RedshiftQueryId": 0, "IsBatchStatement": s.batch_mode.is_some(),
        });
        out[if s.is_workgroup { "WorkgroupName" } else { "ClusterIdentifier" }] = json!(s.target);
        if let Some(e) = &s.error {
            out["Error"] = json!(e);
        }
        if let Some(mode) = s.batch_mode {
            out["ExecutionMode"] = json!(mode);
            out["HasResultSet"] = json!(s.subs.iter().any(|x| x.result.has_result_set));
            out["ResultRows"] = json!(-1);
            out["ResultSize"] = json!(-1);
            out["SubStatements"] = s
                .subs
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    let mut sub = json!({
                        "Id": format!("{}:{}", s.id, i + 1), "Status": x.status, "QueryString": x.sql,
                        "CreatedAt": s.created_at, "UpdatedAt": x.updated_at, "Duration": duration(x.updated_at),
                        "HasResultSet": x.result.has_result_set, "ResultRows": result_rows(&s, x),
                        "ResultSize": x.result.bytes,
                        "RedshiftQueryId": 0,
                    });
                    if let Some(e) = &x.error {
                        sub["Error"] = json!(e);
                    }
                    sub
                })
                .collect();
        } else {
            out["QueryString"] = json!(first.sql);
            out["HasResultSet"] = json!(first.result.has_result_set);
            out["ResultRows"] = json!(if first.result.has_result_set { result_rows(&s, first) } else { -1 });
            out["ResultSize"] = json!(first.result.bytes);
        }
        Ok(out)
    }

    async fn result(&self, account: &str, input: &Value) -> Result<Value, AwsError> {
        let (statement, sub) = self.statement_for("GetStatementResult", account, input).await?;
        let s = statement.lock().unwrap();
        let index = match (s.batch_mode.is_some(), sub) {
            (true, None) => {
                return Err(AwsError::validation("Use the Id of a sub-statement (<id>:<n>) to get a batch's results"))
            }
            (_, Some(n)) => n.wrapping_sub(1),
            (false, None) => 0,
        };
        let one = s.subs.get(index).ok_or_else(|| AwsError::not_found("no such sub-statement"))?;
        if one.status != "FINISHED" {
            return Err(AwsError::validation(format!(
                "Query does not have result. Please check query status with DescribeStatement (status {}).",
                one.status
            )));
        }
        if !one.result.has_result_set {
            return Err(AwsError::not_found("Query does not have result set"));
        }
        let offset: usize = match str_field(input, "NextToken") {
            Some(t) => t.parse().map_err(|_| AwsError::validation("invalid NextToken"))?,
            None => 0,
        };
        let rows = &one.result.rows;
        let end = (offset + s.knobs.page_size.unwrap_or(1000).max(1)).min(rows.len());
        let mut out = json!({
            "Records": rows.get(offset..end).unwrap_or_default(),
            "ColumnMetadata": one.result.columns,
            "TotalNumRows": rows.len(),
        });
        if end < rows.len() {
            out["NextToken"] = json!(end.to_string());
        }
        Ok(out)
    }

    async fn cancel(&self, account: &str, input: &Value) -> Result<Value, AwsError> {
        let (statement, _) = self.statement_for("CancelStatement", account, input).await?;
        if !self.statements.cancel(&statement) {
            let status = statement.lock().unwrap().status;
            return Err(AwsError::validation(format!("Could not cancel a query that is already in {status} state")));
        }
        Ok(json!({"Status": true}))
    }

    /// ListDatabases, ListSchemas, ListTables and DescribeTable, answered from the same catalog
    /// views the SQL path reads, as the request's database user.
    async fn catalog(&self, op: &str, account: &str, input: &Value) -> Result<Value, AwsError> {
        let (target, _) = target_of(input)?;
        let knobs = self.enter(account, &target, op).await?;
        let user = user_of(input, &knobs)?;
        let database = required(input, "Database")?.to_string();
        let connected = str_field(input, "ConnectedDatabase").unwrap_or(&database).to_string();
        let like = |key: &str| str_field(input, key).unwrap_or("%").to_string();
        let mut params = vec![("db".to_string(), database.clone())];
        let sql = match op {
            "ListDatabases" => "SELECT database_name FROM svv_redshift_databases ORDER BY 1",
            "ListSchemas" => {
                params.push(("s".into(), like("SchemaPattern")));
                "SELECT schema_name FROM svv_all_schemas WHERE database_name = :db AND schema_name LIKE :s ORDER BY 1"
            }
            "ListTables" => {
                params.push(("s".into(), like("SchemaPattern")));
                params.push(("t".into(), like("TablePattern")));
                "SELECT table_name, schema_name, table_type FROM svv_redshift_tables \
                 WHERE database_name = :db AND schema_name LIKE :s AND table_name LIKE :t ORDER BY 2, 1"
            }
            _ => {
                params.push(("s".into(), str_field(input, "Schema").unwrap_or("public").to_string()));
                params.push(("t".into(), required(input, "Table")?.to_string()));
                "SELECT column_name, data_type, is_nullable, column_default, schema_name, table_name \
                 FROM svv_redshift_columns WHERE database_name = :db AND schema_name = :s AND table_name = :t \
                 ORDER BY ordinal_position"
            }
        };
        let connect_to = if op == "ListDatabases" { &database } else { &connected };
        let connection_error = |message| AwsError { status: 500, code: "DatabaseConnectionException", message };
        let session = self.pg.session(account, &target, connect_to, &user).await.map_err(connection_error)?;
        let rows = session.query(sql, &params).await.map_err(connection_error)?.rows;
        let offset: usize = str_field(input, "NextToken").and_then(|t| t.parse().ok()).unwrap_or(0);
        let max = input.get("MaxResults").and_then(Value::as_u64).map(|m| m as usize).unwrap_or(1000).max(1);
        let end = (offset + max).min(rows.len());
        let page = rows.get(offset..end).unwrap_or_default();
        let col = |r: &Vec<Value>, i: usize| r.get(i).and_then(string_of);
        let mut out = match op {
            "ListDatabases" => {
                json!({"Databases": page.iter().filter_map(|r| col(r, 0)).collect::<Vec<_>>()})
            }
            "ListSchemas" => {
                json!({"Schemas": page.iter().filter_map(|r| col(r, 0)).collect::<Vec<_>>()})
            }
            "ListTables" => {
                json!({"Tables": page.iter().map(|r| json!({"name": col(r, 0), "schema": col(r, 1), "type": col(r, 2)})).collect::<Vec<_>>()})
            }
            _ => json!({
                "TableName": str_field(input, "Table"),
                "ColumnList": page.iter().map(|r| json!({
                    "name": col(r, 0), "typeName": col(r, 1),
                    "nullable": i32::from(col(r, 2).as_deref() == Some("YES")),
                    "columnDefault": col(r, 3), "schemaName": col(r, 4), "tableName": col(r, 5),
                })).collect::<Vec<_>>(),
            }),
        };
        if end < rows.len() {
            out["NextToken"] = json!(end.to_string());
        }
        Ok(out)
    }
}
