//! The whole invocation: payload → request → config → plan → discovery per account and region →
//! report. Plain Rust over the ports below; `aws` holds their adapters.

use std::collections::BTreeSet;
use std::future::Future;

use futures::{stream, StreamExt};
use serde_json::Value;
use tracing::{info, warn, Instrument};

use crate::config::{Config, ConfigError, ConfigSource, DeploymentDefaults};
use crate::error::{AwsError, Failure};
use crate::event::{self, EventError, RunRequest};
use crate::plan::{self, AccountPlan, ClusterDirectory, RegionPlan, ScopeError, Selection};
use crate::report::{self, AccountReport, ClusterReport, Counts, RegionReport, Report, RunStatus};

/// Accounts visited at once. Each account's regions run together under it.
const ACCOUNT_CONCURRENCY: usize = 8;

/// Port: credentials in the organisation's accounts.
pub trait Platform: Send + Sync {
    type Account: AccountSession;
    /// Assumes the account's role; a failure here is the whole account's.
    fn assume_role(
        &self,
        account: &AccountPlan,
        external_id: Option<&str>,
        session_name: &str,
    ) -> impl Future<Output = Result<Self::Account, AwsError>> + Send;
}

/// Port: one assumed role, opening the control plane of each region.
pub trait AccountSession: Send + Sync {
    type Directory: ClusterDirectory;
    fn directory(&self, region: &str) -> Self::Directory;
}

/// Port: the object store the config may come from and the report goes to.
pub trait ObjectStore: Send + Sync {
    fn get(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Vec<u8>, AwsError>> + Send;
    fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// Why an invocation could not run at all. Everything else ends up in the report.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not read the config from {uri}: {error}")]
    ConfigUnreadable { uri: String, error: String },
    #[error(transparent)]
    Scope(#[from] ScopeError),
}

impl InvocationError {
    /// The Lambda `errorType` for this failure.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Event(_) => "InvalidEvent",
            Self::Config(_) | Self::ConfigUnreadable { .. } => "InvalidConfig",
            Self::Scope(_) => "InvalidScope",
        }
    }
}

/// Reads the config from where the environment says.
pub async fn load_config<S: ObjectStore>(
    store: &S,
    source: &ConfigSource,
    defaults: &DeploymentDefaults,
) -> Result<Config, InvocationError> {
    let text =
        match source {
            ConfigSource::Inline(text) => text.clone(),
            ConfigSource::File(path) => tokio::fs::read_to_string(path).await.map_err(|e| {
                InvocationError::ConfigUnreadable {
                    uri: path.clone(),
                    error: e.to_string(),
                }
            })?,
            ConfigSource::S3 { bucket, key } => {
                let bytes = store.get(bucket, key).await.map_err(|e| {
                    InvocationError::ConfigUnreadable {
                        uri: format!("s3://{bucket}/{key}"),
                        error: e.to_string(),
                    }
                })?;
                String::from_utf8(bytes).map_err(|_| InvocationError::ConfigUnreadable {
                    uri: format!("s3://{bucket}/{key}"),
                    error: "not UTF-8 text".into(),
                })?
            }
        };
    Ok(Config::parse(&text, defaults)?)
}

/// Handles one invocation payload end to end.
pub async fn invoke<P: Platform, S: ObjectStore>(
    platform: &P,
    store: &S,
    payload: &Value,
    config_source: Result<ConfigSource, ConfigError>,
    defaults: &DeploymentDefaults,
) -> Result<Report, InvocationError> {
    let request = event::parse(payload)?;
    let config = load_config(store, &config_source?, defaults).await?;
    execute(platform, store, &config, &request, new_run_id()).await
}

/// Runs a validated request: discovery over every planned account and region, then the report.
pub async fn execute<P: Platform, S: ObjectStore>(
    platform: &P,
    store: &S,
    config: &Config,
    request: &RunRequest,
    run_id: String,
) -> Result<Report, InvocationError> {
    let started_at = now_rfc3339();
    let plans = plan::plan(config, &request.scope)?;
    info!(
        run_id,
        accounts = plans.len(),
        dry_run = request.dry_run,
        "run started"
    );
    let session_name = format!("redshift-registry-{run_id}");
    let external_id = config.external_id.as_deref();

    let accounts: Vec<AccountReport> = stream::iter(&plans)
        .map(|account| {
            let span = tracing::info_span!("account", account_id = %account.account_id);
            visit_account(platform, account, external_id, &session_name).instrument(span)
        })
        .buffered(ACCOUNT_CONCURRENCY)
        .collect()
        .await;

    let found: BTreeSet<&str> = accounts
        .iter()
        .flat_map(|a| a.regions.iter().flat_map(|r| r.clusters.iter()))
        .map(|c| c.cluster_identifier.as_str())
        .collect();
    let clusters_not_found = request
        .scope
        .clusters
        .iter()
        .filter(|c| !found.contains(c.as_str()))
        .cloned()
        .collect();

    let mut report = Report {
        run_id,
        started_at,
        ended_at: String::new(),
        status: RunStatus::Succeeded,
        trigger: request.trigger,
        dry_run: request.dry_run,
        scope: request.scope.clone(),
        counts: Counts::default(),
        clusters_not_found,
        accounts,
        report_key: None,
        report_error: None,
    };
    report.summarise();
    report.ended_at = now_rfc3339();
    if !request.dry_run {
        let key = format!("{}runs/{}.json", config.output.prefix, report.run_id);
        let body = serde_json::to_vec_pretty(&report).expect("the report serialises");
        match store
            .put(&config.output.bucket, &key, body, "application/json")
            .await
        {
            Ok(()) => report.report_key = Some(key),
            Err(e) => {
                warn!(error = %e, "could not write the run report");
                report.report_error = Some(e.to_string());
                // The registry cannot see this run's outcome: not a success.
                if report.status == RunStatus::Succeeded {
                    report.status = RunStatus::Partial;
                }
            }
        }
    }
    info!(status = ?report.status, counts = ?report.counts, "run finished");
    Ok(report)
}

async fn visit_account<P: Platform>(
    platform: &P,
    account: &AccountPlan,
    external_id: Option<&str>,
    session_name: &str,
) -> AccountReport {
    let mut out = AccountReport {
        account_id: account.account_id.clone(),
        role_arn: account.role_arn.clone(),
        error: None,
        regions: Vec::new(),
    };
    let session = match platform
        .assume_role(account, external_id, session_name)
        .await
    {
        Ok(session) => session,
        Err(e) => {
            warn!(error = %e, "account skipped: role not assumed");
            out.error = Some(Failure::new(
                &e,
                report::account_hint(&e, &account.account_id, &account.role_arn),
            ));
            return out;
        }
    };
    out.regions = futures::future::join_all(account.regions.iter().map(|region| {
        let span = tracing::info_span!("region", region = %region.region);
        visit_region(&session, &account.account_id, region).instrument(span)
    }))
    .await;
    out
}

async fn visit_region<A: AccountSession>(
    session: &A,
    account_id: &str,
    region: &RegionPlan,
) -> RegionReport {
    let mut out = RegionReport {
        region: region.region.clone(),
        mode: match region.selection {
            Selection::Discover { .. } => "discover",
            Selection::Named(_) => "named",
        },
        error: None,
        clusters: Vec::new(),
    };
    match plan::discover(&session.directory(&region.region), &region.selection).await {
        Ok(found) => {
            for cluster in found.clusters {
                let c = ClusterReport::found(cluster);
                match &c.reason {
                    Some(reason) => {
                        info!(cluster = %c.cluster_identifier, reason, "cluster skipped")
                    }
                    None => info!(cluster = %c.cluster_identifier, "cluster found"),
                }
                out.clusters.push(c);
            }
            for id in found.missing {
                warn!(cluster = %id, "named cluster does not exist");
                out.clusters
                    .push(ClusterReport::missing(id, account_id, &region.region));
            }
        }
        Err(e) => {
            warn!(error = %e, "region skipped");
            out.error = Some(Failure::new(
                &e,
                report::region_hint(&e, account_id, &region.region),
            ));
        }
    }
    out
}

/// Sortable and unique: `20261126T171502Z-1a2b3c4d`.
fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .expect("a fixed format");
    format!("{stamp}-{:08x}", fastrand::u32(..))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formats every UTC time")
}
