//! The Redshift Data API operations (`X-Amz-Target: RedshiftData.<Op>`), epoch-second timestamps.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::knobs::Knobs;
use crate::pg::StoredRow;
use crate::state::Emulator;
use crate::statements::{is_final, leave_waiting, wait_until, NewStatement, Statement, SubStatement};
use crate::wire::AwsError;

const DEFAULT_IAM_USER: &str = "IAMR:DataRegistryRedshiftReader";
/// The process id every statement reports.
const REDSHIFT_PID: i64 = 1073;

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

/// WaitTimeSeconds, a long poll, on ExecuteStatement, BatchExecuteStatement, DescribeStatement,
/// GetStatementResult and GetStatementResultV2: "The number of seconds to wait for the SQL
/// statement to complete execution before returning the response. If the SQL statement does not
/// complete within the specified time, the response returns the current status. The maximum value
/// is 30 seconds." (https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_ExecuteStatement.html,
/// API_BatchExecuteStatement.html, API_DescribeStatement.html, API_GetStatementResult.html,
/// API_GetStatementResultV2.html). Over 30, under 0 or not an integer is a ValidationException,
/// worded as AWS words constraint failures; 0 is refused like 31 (the service model's range is
/// 1-30, see below). Not documented, assumed: a call
/// waits once, after its latency knob. One waiting request per statement at a time (see
/// `statements::WAITING_PER_STATEMENT`).
fn wait_time(input: &Value) -> Result<Option<Duration>, AwsError> {
    let Some(value) = input.get("WaitTimeSeconds").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let invalid = |constraint: &str| {
        AwsError::validation(format!(
            "1 validation error detected: Value '{value}' at 'waitTimeSeconds' failed to satisfy constraint: {constraint}"
        ))
    };
    match value.as_i64() {
        Some(n) if n > 30 => Err(invalid("Member must have value less than or equal to 30")),
        // The service model's minimum is 1 (botocore redshift-data/2019-12-20 service-2.json,
        // WaitTimeSeconds: min 1, max 30): a client that does not want to wait sends nothing.
        Some(n) if n < 1 => Err(invalid("Member must have value greater than or equal to 1")),
        Some(n) => Ok(Some(Duration::from_secs(n as u64))),
        None => Err(invalid("Member must be an integer")),
    }
}

/// ResultFormat on ExecuteStatement and BatchExecuteStatement: "The data format of the result of
/// the SQL statement. If no format is specified, the default is JSON."
/// (https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_ExecuteStatement.html,
/// API_BatchExecuteStatement.html). `None` when the request gives none.
fn result_format(input: &Value) -> Result<Option<&'static str>, AwsError> {
    match str_field(input, "ResultFormat") {
        None => Ok(None),
        Some("JSON") => Ok(Some("JSON")),
        Some("CSV") => Ok(Some("CSV")),
        Some(other) => Err(AwsError::validation(format!(
            "1 validation error detected: Value '{other}' at 'resultFormat' failed to satisfy constraint: \
             Member must satisfy enum value set: [JSON, CSV]"
        ))),
    }
}

/// Whether a long poll on a statement (`sub: None`) or on one SQL of a batch (`id:n`) is over.
fn ended(s: &Statement, sub: Option<usize>) -> bool {
    match sub {
        None => s.ended(),
        // A sub-statement that does not exist: nothing to wait for; the call then says so.
        Some(n) => s.subs.get(n.wrapping_sub(1)).is_none_or(|x| is_final(x.status)),
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
            "GetStatementResult" => self.result(account, input, false).await,
            "GetStatementResultV2" => self.result(account, input, true).await,
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
        let format = result_format(input)?;
        let wait = wait_time(input)?;
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
                result_format: format,
            },
        );
        let statement = self.statements.get(&id).unwrap();
        let created = statement.lock().unwrap().created_at;
        let mut out = json!({"Id": id, "Database": database, "CreatedAt": created});
        out[if is_workgroup { "WorkgroupName" } else { "ClusterIdentifier" }] = json!(target);
        if str_field(input, "DbUser").is_some() {
            out["DbUser"] = json!(user);
        }
        if let Some(wait) = wait {
            // A batch waits for all its SQLs ("wait for all SQL statements in the batch to
            // complete execution", API_BatchExecuteStatement.html), then both answer with the
            // Status, RedshiftPid and HasResultSet their responses carry
            // (https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_ExecuteStatement.html).
            // Not documented, assumed: Status and RedshiftPid come whenever WaitTimeSeconds is
            // given, HasResultSet only once the statement ended (FINISHED, FAILED or ABORTED), as
            // DescribeStatement would then give it (true if any SQL of a batch has a result set).
            // A new statement: no other request waits on it yet.
            wait_until(&statement, wait, |s| s.ended()).await?;
            let s = statement.lock().unwrap();
            out["Status"] = json!(s.status);
            out["RedshiftPid"] = json!(REDSHIFT_PID);
            if s.ended() {
                out["HasResultSet"] = json!(s.subs.iter().any(|x| x.result.has_result_set));
            }
        }
        Ok(out)
    }

    /// A long poll of DescribeStatement or GetStatementResult(V2) on a statement (`sub: None`) or
    /// one SQL of a batch, unless the target's `longPollsLeftWaiting` knob makes it one whose
    /// answer is lost.
    async fn long_poll(
        &self,
        account: &str,
        statement: &Arc<Mutex<Statement>>,
        sub: Option<usize>,
        wait: Duration,
    ) -> Result<(), AwsError> {
        let target = statement.lock().unwrap().target.clone();
        let polled = if self.leaves_long_poll_waiting(account, &target) {
            // Status and words of InternalServerException in the service model (aws-sdk-redshiftdata).
            leave_waiting(statement.clone(), wait, move |s| ended(s, sub)).and(Err(AwsError {
                status: 500,
                code: "InternalServerException",
                message: "The Amazon Redshift Data API operation failed due to invalid input.".into(),
            }))
        } else {
            wait_until(statement, wait, |s| ended(s, sub)).await
        };
        if let Err(e) = &polled {
            self.count(account, &target, e.code);
        }
        polled
    }

    /// The statement an id names in the caller's account, after counting the call against its target.
    async fn statement_for(
        &self,
        op: &str,
        account: &str,
        input: &Value,
    ) -> Result<(Arc<Mutex<Statement>>, Option<usize>), AwsError> {
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
        let wait = wait_time(input)?;
        let (statement, sub) = self.statement_for("DescribeStatement", account, input).await?;
        if let Some(wait) = wait {
            // "The number of seconds to wait for the SQL statement to complete execution before
            // returning the description" (https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_DescribeStatement.html);
            // for `id:n`, that SQL of the batch.
            self.long_poll(account, &statement, sub, wait).await?;
        }
        let s = statement.lock().unwrap();
        let duration = |updated: f64| ((updated - s.created_at) * 1e9) as i64;
        if let Some(n) = sub {
            let one = s.subs.get(n.wrapping_sub(1)).ok_or_else(|| AwsError::not_found("no such sub-statement"))?;
            let mut out = json!({
                "Id": format!("{}:{n}", s.id), "Status": one.status, "QueryString": one.sql,
                "CreatedAt": s.created_at, "UpdatedAt": one.updated_at, "Duration": duration(one.updated_at),
                "HasResultSet": one.result.has_result_set, "ResultRows": result_rows(&s, one),
                "ResultSize": one.result.bytes, "Database": s.database, "Error": one.error,
            });
            if let Some(format) = s.result_format {
                out["ResultFormat"] = json!(format);
            }
            return Ok(out);
        }
        let first = &s.subs[0];
        let mut out = json!({
            "Id": s.id, "Status": s.status, "CreatedAt": s.created_at, "UpdatedAt": s.updated_at,
            "Duration": duration(s.updated_at), "Database": s.database, "DbUser": s.user,
            "RedshiftPid": REDSHIFT_PID, "RedshiftQueryId": 0, "IsBatchStatement": s.batch_mode.is_some(),
        });
        out[if s.is_workgroup { "WorkgroupName" } else { "ClusterIdentifier" }] = json!(s.target);
        // DescribeStatement's ResultFormat, "The data format of the result of the SQL statement"
        // (https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_DescribeStatement.html).
        // Not documented, assumed: given only when the statement was run with a ResultFormat, so a
        // client that never sets one sees the response it always saw.
        if let Some(format) = s.result_format {
            out["ResultFormat"] = json!(format);
        }
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

    /// GetStatementResult (`csv` false) and GetStatementResultV2 (`csv` true).
    ///
    /// GetStatementResult "Fetches the temporarily cached result of an SQL statement in JSON
    /// format. The ExecuteStatement or BatchExecuteStatement operation that ran the SQL statement
    /// must have specified ResultFormat as JSON, or let the format default to JSON"
    /// (https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_GetStatementResult.html);
    /// GetStatementResultV2 fetches it "in CSV format. The ExecuteStatement or
    /// BatchExecuteStatement operation that ran the SQL statement must have specified ResultFormat
    /// as CSV" (https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_GetStatementResultV2.html).
    /// What AWS answers otherwise is not documented; assumed: a ValidationException, at once
    /// (before any WaitTimeSeconds wait). V2 pages as GetStatementResult does (same `pageSize`
    /// knob, NextToken, TotalNumRows, ColumnMetadata), one `{"CSVRecords": text}` per page holding
    /// that page's rows (see `csv.rs`; an empty page is `Records: []`, also an assumption), and
    /// `ResultFormat: "CSV"`. The 64 KB row and result size limits are the JSON ones, measured on
    /// the same field bytes (whether AWS measures CSV text instead is not documented).
    async fn result(&self, account: &str, input: &Value, csv: bool) -> Result<Value, AwsError> {
        let op = if csv { "GetStatementResultV2" } else { "GetStatementResult" };
        let wait = wait_time(input)?;
        let (statement, sub) = self.statement_for(op, account, input).await?;
        {
            let s = statement.lock().unwrap();
            if s.batch_mode.is_some() && sub.is_none() {
                return Err(AwsError::validation("Use the Id of a sub-statement (<id>:<n>) to get a batch's results"));
            }
            match (s.result_format == Some("CSV"), csv) {
                (true, false) => {
                    return Err(AwsError::validation(
                        "The statement was run with ResultFormat CSV: fetch its result with GetStatementResultV2",
                    ))
                }
                (false, true) => {
                    return Err(AwsError::validation(
                        "The statement was run with ResultFormat JSON: fetch its result with GetStatementResult",
                    ))
                }
                _ => {}
            }
        }
        if let Some(wait) = wait {
            // "The number of seconds to wait for the SQL statement to complete execution before
            // returning the result" (API_GetStatementResult.html, API_GetStatementResultV2.html);
            // still running after it, the answer is the one for an unfinished statement below.
            self.long_poll(account, &statement, sub, wait).await?;
        }
        let s = statement.lock().unwrap();
        let index = sub.map_or(0, |n| n.wrapping_sub(1));
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
        let page: Vec<Vec<Value>> = rows.get(offset..end).unwrap_or_default().iter().map(StoredRow::fields).collect();
        let records = match csv {
            false => json!(page),
            true if page.is_empty() => json!([]),
            true => json!([{"CSVRecords": crate::csv::records(&page)}]),
        };
        let mut out = json!({
            "Records": records,
            "ColumnMetadata": one.result.columns,
            "TotalNumRows": rows.len(),
        });
        if csv {
            out["ResultFormat"] = json!("CSV");
        }
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
        let page: Vec<Vec<Value>> = rows.get(offset..end).unwrap_or_default().iter().map(StoredRow::fields).collect();
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
