//! The Redshift Data API adapter.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_redshiftdata::types::{Field, SqlParameter, StatementStatusString, StatusString};

use super::aws_error;
use crate::catalog::WarehouseId;
use crate::error::AwsError;
use crate::ports::{Cell, DataApi, DbAuth, Page, Phase, StatementState, Target};

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

impl DataApi for RedshiftData {
    async fn execute(
        &self,
        target: &Target,
        database: &str,
        sql: &str,
        params: &[(&str, &str)],
    ) -> Result<String, AwsError> {
        let parameters: Vec<SqlParameter> = params
            .iter()
            .map(|(n, v)| SqlParameter::builder().name(*n).value(*v).build().expect("name and value are set"))
            .collect();
        self.starts.wait().await;
        let out = with_target!(self.client.execute_statement(), target)
            .database(database)
            .sql(sql)
            .set_parameters((!parameters.is_empty()).then_some(parameters))
            .send()
            .await
            .map_err(|e| aws_error("redshift-data:ExecuteStatement", e))?;
        Ok(out.id().unwrap_or_default().to_string())
    }

    async fn batch_execute(&self, target: &Target, database: &str, sqls: &[String]) -> Result<String, AwsError> {
        self.starts.wait().await;
        let out = with_target!(self.client.batch_execute_statement(), target)
            .database(database)
            .set_sqls(Some(sqls.to_vec()))
            .send()
            .await
            .map_err(|e| aws_error("redshift-data:BatchExecuteStatement", e))?;
        Ok(out.id().unwrap_or_default().to_string())
    }

    async fn describe(&self, id: &str) -> Result<StatementState, AwsError> {
        self.polls.wait().await;
        let out = self
            .client
            .describe_statement()
            .id(id)
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

    async fn page(&self, id: &str, next_token: Option<String>) -> Result<Page, AwsError> {
        self.fetches.wait().await;
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
