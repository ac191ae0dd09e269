//! The Redshift Data API adapter.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_redshiftdata::types::{
    Field, QueryRecords, ResultFormatString, SqlParameter, StatementStatusString, StatusString,
};

use super::sdk_error::aws_error;
use crate::catalog::WarehouseId;
use crate::error::AwsError;
use crate::ports::{Cell, DataApi, DbAuth, Fetch, Page, Phase, ResultFormat, Row, Started, StatementState, Target};

/// One client per assumed role and region: the identity that starts a statement is the only
/// one that may describe, fetch or cancel it. Calls are paced under the Data API's per-account
/// and region rates (ExecuteStatement 30/s, DescribeStatement 100/s, GetStatementResult 20/s),
/// so that a wide run does not throttle itself.
pub struct RedshiftData {
    client: aws_sdk_redshiftdata::Client,
    starts: Pacer,
    polls: Pacer,
    fetches: Pacer,
}

impl RedshiftData {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_redshiftdata::Client::new(config),
            starts: Pacer::per_second(25),
            polls: Pacer::per_second(80),
            fetches: Pacer::per_second(18),
        }
    }
}

/// Spaces calls at least `interval` apart.
struct Pacer {
    next: tokio::sync::Mutex<Instant>,
    interval: Duration,
}

impl Pacer {
    fn per_second(n: u32) -> Self {
        Self { next: tokio::sync::Mutex::new(Instant::now()), interval: Duration::from_secs(1) / n }
    }

    async fn wait(&self) {
        let mut next = self.next.lock().await;
        let now = Instant::now();
        if *next > now {
            tokio::time::sleep_until((*next).into()).await;
        }
        *next = (*next).max(now) + self.interval;
    }
}

macro_rules! with_target {
    ($builder:expr, $target:expr) => {{
        let b = $builder;
        let b = match &$target.warehouse {
            WarehouseId::ClusterIdentifier(id) => b.cluster_identifier(id),
            WarehouseId::WorkgroupName(name) => b.workgroup_name(name),
        };
        match &$target.auth {
            DbAuth::Iam => b,
            DbAuth::DbUser(user) => b.db_user(user),
            DbAuth::SecretArn(arn) => b.secret_arn(arn),
        }
    }};
}

fn cell(field: &Field) -> Cell {
    match field {
        Field::BooleanValue(b) => Cell::Bool(*b),
        Field::LongValue(n) => Cell::Long(*n),
        Field::DoubleValue(d) => Cell::Double(*d),
        Field::StringValue(s) => Cell::Text(s.clone()),
        _ => Cell::Null,
    }
}

fn phase(status: Option<&StatusString>, error: Option<&str>) -> Phase {
    match status {
        Some(StatusString::Finished) => Phase::Finished,
        Some(StatusString::Failed) => Phase::Failed(error.unwrap_or("no error message").to_string()),
        Some(StatusString::Aborted) => Phase::Aborted,
        _ => Phase::Running,
    }
}

/// `WaitTimeSeconds`, sent only when long polls are on (`dataApi.waitTimeSeconds` 0 polls with
/// DescribeStatement instead, for endpoints that do not hold a request).
fn wait_time(seconds: u8) -> Option<i32> {
    (seconds > 0).then_some(i32::from(seconds))
}

/// `ResultFormat`, sent only for CSV: JSON is the Data API's default.
fn result_format(format: ResultFormat) -> Option<ResultFormatString> {
    (format == ResultFormat::Csv).then_some(ResultFormatString::Csv)
}

/// The rows of GetStatementResultV2's `CSVRecords` (RFC 4180, no header line). AWS does not
/// document how NULL is written: an empty unquoted field is read as NULL and `""` as the empty
/// string, which is what tells them apart in CSV at all.
pub(super) fn csv_rows(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut row: Row = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut in_quotes, mut at_start) = (false, false, true);
    let mut chars = text.chars().peekable();
    let end_field = |row: &mut Row, field: &mut String, quoted: bool| {
        let value = std::mem::take(field);
        row.push(if value.is_empty() && !quoted { Cell::Null } else { Cell::Text(value) });
    };
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' if in_quotes => in_quotes = false,
            '"' if field.is_empty() && !quoted => (quoted, in_quotes) = (true, true),
            ',' if !in_quotes => {
                end_field(&mut row, &mut field, quoted);
                quoted = false;
            }
            '\r' if !in_quotes && chars.peek() == Some(&'\n') => {}
            '\n' if !in_quotes => {
                end_field(&mut row, &mut field, quoted);
                rows.push(std::mem::take(&mut row));
                (quoted, at_start) = (false, true);
                continue;
            }
            c => field.push(c),
        }
        at_start = false;
    }
    if !at_start {
        end_field(&mut row, &mut field, quoted);
        rows.push(row);
    }
    rows
}

/// A statement's state from a waited ExecuteStatement: only a finished one, since a failed one
/// carries no error message there (DescribeStatement has it).
fn finished_state(status: Option<&StatementStatusString>, has_result_set: Option<bool>) -> Option<StatementState> {
    matches!(status, Some(StatementStatusString::Finished)).then(|| StatementState {
        phase: Phase::Finished,
        subs: Vec::new(),
        has_result_set: has_result_set.unwrap_or(true),
    })
}

impl DataApi for RedshiftData {
    async fn execute(
        &self,
        target: &Target,
        database: &str,
        sql: &str,
        params: &[(&str, &str)],
        fetch: Fetch,
    ) -> Result<Started, AwsError> {
        let parameters: Vec<SqlParameter> = params
            .iter()
            .map(|(n, v)| SqlParameter::builder().name(*n).value(*v).build().expect("name and value are set"))
            .collect();
        self.starts.wait().await;
        let out = with_target!(self.client.execute_statement(), target)
            .database(database)
            .sql(sql)
            .set_parameters((!parameters.is_empty()).then_some(parameters))
            .set_wait_time_seconds(wait_time(fetch.wait_seconds))
            .set_result_format(result_format(fetch.format))
            .send()
            .await
            .map_err(|e| aws_error("redshift-data:ExecuteStatement", e))?;
        let state = finished_state(out.status(), out.has_result_set());
        Ok(Started { id: out.id().unwrap_or_default().to_string(), state })
    }

    /// Not waited: a batch's sub-statements (and whether each has a result set) are known from
    /// DescribeStatement only, so that call is the one that waits.
    async fn batch_execute(
        &self,
        target: &Target,
        database: &str,
        sqls: &[String],
        fetch: Fetch,
    ) -> Result<Started, AwsError> {
        self.starts.wait().await;
        let out = with_target!(self.client.batch_execute_statement(), target)
            .database(database)
            .set_sqls(Some(sqls.to_vec()))
            .set_result_format(result_format(fetch.format))
            .send()
            .await
            .map_err(|e| aws_error("redshift-data:BatchExecuteStatement", e))?;
        Ok(Started { id: out.id().unwrap_or_default().to_string(), state: None })
    }

    async fn describe(&self, id: &str, wait_seconds: u8) -> Result<StatementState, AwsError> {
        self.polls.wait().await;
        let out = self
            .client
            .describe_statement()
            .id(id)
            .set_wait_time_seconds(wait_time(wait_seconds))
            .send()
            .await
            .map_err(|e| aws_error("redshift-data:DescribeStatement", e))?;
        // A missing HasResultSet is read as "has one": fetching an empty result costs one call,
        // skipping a real one loses data.
        let mut state = StatementState {
            phase: phase(out.status(), out.error()),
            subs: Vec::new(),
            has_result_set: out.has_result_set().unwrap_or(true),
        };
        for sub in out.sub_statements() {
            if let Some(StatementStatusString::Failed) = sub.status() {
                state.phase = Phase::Failed(sub.error().unwrap_or("no error message").to_string());
            }
            state.subs.push((sub.id().to_string(), sub.has_result_set().unwrap_or(true)));
        }
        Ok(state)
    }

    async fn page(&self, id: &str, next_token: Option<String>, format: ResultFormat) -> Result<Page, AwsError> {
        self.fetches.wait().await;
        match format {
            ResultFormat::Json => self.json_page(id, next_token).await,
            ResultFormat::Csv => self.csv_page(id, next_token).await,
        }
    }

    async fn cancel(&self, id: &str) -> Result<(), AwsError> {
        self.client
            .cancel_statement()
            .id(id)
            .send()
            .await
            .map_err(|e| aws_error("redshift-data:CancelStatement", e))?;
        Ok(())
    }
}

impl RedshiftData {
    async fn json_page(&self, id: &str, next_token: Option<String>) -> Result<Page, AwsError> {
        let out = self
            .client
            .get_statement_result()
            .id(id)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| aws_error("redshift-data:GetStatementResult", e))?;
        Ok(Page {
            rows: out.records().iter().map(|r| r.iter().map(cell).collect()).collect(),
            next_token: out.next_token().map(str::to_string),
        })
    }

    async fn csv_page(&self, id: &str, next_token: Option<String>) -> Result<Page, AwsError> {
        let out = self
            .client
            .get_statement_result_v2()
            .id(id)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| aws_error("redshift-data:GetStatementResultV2", e))?;
        let rows = out
            .records()
            .iter()
            .flat_map(|r| match r {
                QueryRecords::CsvRecords(text) => csv_rows(text),
                _ => Vec::new(),
            })
            .collect();
        Ok(Page { rows, next_token: out.next_token().map(str::to_string) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }

    #[test]
    fn csv_tells_null_from_empty_and_keeps_quoted_commas_quotes_and_newlines() {
        let rows = csv_rows("a,,\"\",\"x,\"\"y\"\"\nz\",42\r\nb,true,f,,\n");
        assert_eq!(
            rows,
            vec![
                vec![text("a"), Cell::Null, text(""), text("x,\"y\"\nz"), text("42")],
                vec![text("b"), text("true"), text("f"), Cell::Null, Cell::Null],
            ]
        );
        assert_eq!(csv_rows(""), Vec::<Row>::new());
        assert_eq!(csv_rows("only"), vec![vec![text("only")]]);
    }
}
