//! The whole invocation: payload → request → config → plan → discovery per account and region →
//! report. Plain Rust over the ports below; `aws` holds their adapters.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use serde_json::Value;
use tracing::{info, warn, Instrument};

use crate::catalog::{WarehouseCatalog, WarehouseId};
use crate::config::{Config, ConfigError, ConfigSource, DeploymentDefaults};
use crate::error::{AwsError, Failure};
use crate::event::{self, EventError, RunRequest};
use crate::manifest::Layout;
use crate::plan::{self, AccountPlan, RegionPlan, ScopeError, Selection, Warehouse, WarehouseDirectory};
use crate::publish::{PublishReport, Publisher};
use crate::read::{self, DataApi, DatabaseOutcome, DbAuth, ReadOptions, Target};
use crate::report::{
    self, AccountReport, Counts, DatabaseReport, RegionReport, Report, RunStatus, WarehouseReport, WarehouseState,
};

/// Warehouses whose snapshots are written at once (each with its own bound on writes).
const PUBLISH_CONCURRENCY: usize = 4;

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

/// Port: one assumed role, opening the control plane and the Data API of each region.
pub trait AccountSession: Send + Sync {
    type Directory: WarehouseDirectory;
    type Data: DataApi;
    fn directory(&self, region: &str) -> Self::Directory;
    fn data_api(&self, region: &str) -> Self::Data;
}

/// Port: the object store the config may come from and everything goes to.
pub trait ObjectStore: Send + Sync {
    /// Every key under `prefix`, all pages.
    fn list(&self, bucket: &str, prefix: &str) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
    fn delete(&self, bucket: &str, keys: &[String]) -> impl Future<Output = Result<(), AwsError>> + Send;
    fn get(&self, bucket: &str, key: &str) -> impl Future<Output = Result<Vec<u8>, AwsError>> + Send;
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
    let text = match source {
        ConfigSource::Inline(text) => text.clone(),
        ConfigSource::File(path) => tokio::fs::read_to_string(path)
            .await
            .map_err(|e| InvocationError::ConfigUnreadable { uri: path.clone(), error: e.to_string() })?,
        ConfigSource::S3 { bucket, key } => {
            let bytes = store.get(bucket, key).await.map_err(|e| InvocationError::ConfigUnreadable {
                uri: format!("s3://{bucket}/{key}"),
                error: e.to_string(),
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
    deadline: Option<Instant>,
) -> Result<Report, InvocationError> {
    let request = RunRequest { deadline, ..event::parse(payload)? };
    let config = load_config(store, &config_source?, defaults).await?;
    execute(platform, store, &config, &request, new_run_id()).await
}

/// What a run found: the report (not yet summarised or written) and the catalogs read.
pub struct RunOutcome {
    pub report: Report,
    pub catalogs: Vec<WarehouseCatalog>,
}

/// Runs a validated request end to end and writes the report (unless a dry run).
pub async fn execute<P: Platform, S: ObjectStore>(
    platform: &P,
    store: &S,
    config: &Config,
    request: &RunRequest,
    run_id: String,
) -> Result<Report, InvocationError> {
    let RunOutcome { mut report, catalogs } = gather(platform, config, request, run_id).await?;
    publish(store, config, request, &mut report, &catalogs).await;
    report.summarise();
    report.ended_at = now_rfc3339();
    if !request.dry_run {
        let key = Layout { prefix: config.output.prefix.clone() }.run_key(&report.run_id);
        let body = serde_json::to_vec_pretty(&report).expect("the report serialises");
        match store.put(&config.output.bucket, &key, body, "application/json").await {
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

/// Writes each warehouse's snapshot, then removes the warehouses that fully discovered regions
/// no longer have (not in a run narrowed to some clusters, which sees only those).
async fn publish<S: ObjectStore>(
    store: &S,
    config: &Config,
    request: &RunRequest,
    report: &mut Report,
    catalogs: &[WarehouseCatalog],
) {
    let layout = Layout { prefix: config.output.prefix.clone() };
    let committed_at = now_rfc3339();
    let publisher = Publisher {
        store,
        bucket: &config.output.bucket,
        layout: &layout,
        run_id: &report.run_id,
        committed_at: &committed_at,
        dry_run: request.dry_run,
        writes_in_parallel: config.limits.s3_writes_in_parallel,
    };
    let published: Vec<PublishReport> = stream::iter(catalogs)
        .map(|c| {
            let span = tracing::info_span!("publish", account_id = %c.account_id, region = %c.region, warehouse = %c.warehouse.name());
            publisher.warehouse(c).instrument(span)
        })
        .buffered(PUBLISH_CONCURRENCY)
        .collect()
        .await;
    let mut by_warehouse: BTreeMap<(String, String, WarehouseId), PublishReport> = catalogs
        .iter()
        .zip(published)
        .map(|(c, p)| ((c.account_id.clone(), c.region.clone(), c.warehouse.clone()), p))
        .collect();
    for account in &mut report.accounts {
        for region in &mut account.regions {
            for w in &mut region.warehouses {
                w.publish = by_warehouse.remove(&(account.account_id.clone(), region.region.clone(), w.id.clone()));
            }
            if region.error.is_some() || !request.scope.clusters.is_empty() {
                continue;
            }
            let present: BTreeSet<WarehouseId> =
                region.warehouses.iter().filter(|w| w.state != WarehouseState::Missing).map(|w| w.id.clone()).collect();
            let workgroups_listed = region.workgroups_error.is_none();
            match publisher.remove_absent(&account.account_id, &region.region, &present, workgroups_listed).await {
                Ok(removed) => region.removed_warehouses = removed,
                Err(e) => region.removal_error = Some(format!("absent warehouses could not be removed: {e}")),
            }
        }
    }
}

/// Discovers every planned account and region and reads every available warehouse.
pub async fn gather<P: Platform>(
    platform: &P,
    config: &Config,
    request: &RunRequest,
    run_id: String,
) -> Result<RunOutcome, InvocationError> {
    let started_at = now_rfc3339();
    let plans = plan::plan(config, &request.scope)?;
    info!(run_id, accounts = plans.len(), dry_run = request.dry_run, "run started");
    // New work stops `deadlineReserveSeconds` before the deadline (at most a quarter of the time
    // left, for short timeouts), leaving time to commit what was read and to write the report.
    let cutoff = request.deadline.map(|deadline| {
        let left = deadline.saturating_duration_since(Instant::now());
        deadline - Duration::from_secs(config.limits.deadline_reserve_seconds).min(left / 4)
    });
    let visit = Visit {
        session_name: format!("redshift-registry-{run_id}"),
        external_id: config.external_id.clone(),
        options: ReadOptions { cutoff, ..ReadOptions::from_config(config) },
        warehouses_per_region: config.limits.warehouses_per_region,
    };

    let visited: Vec<(AccountReport, Vec<WarehouseCatalog>)> = stream::iter(&plans)
        .map(|account| {
            let span = tracing::info_span!("account", account_id = %account.account_id);
            visit.account(platform, account).instrument(span)
        })
        .buffered(config.limits.accounts_in_parallel)
        .collect()
        .await;
    let (accounts, catalogs): (Vec<_>, Vec<_>) = visited.into_iter().unzip();

    let found: BTreeSet<&str> = accounts
        .iter()
        .flat_map(|a| a.regions.iter().flat_map(|r| r.warehouses.iter()))
        .filter(|w| w.state != WarehouseState::Missing)
        .map(|w| w.id.name())
        .collect();
    let clusters_not_found = request.scope.clusters.iter().filter(|c| !found.contains(c.as_str())).cloned().collect();

    let report = Report {
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
    Ok(RunOutcome { report, catalogs: catalogs.into_iter().flatten().collect() })
}

/// What every account visit shares.
struct Visit {
    session_name: String,
    external_id: Option<String>,
    options: ReadOptions,
    warehouses_per_region: usize,
}

impl Visit {
    fn out_of_time(&self) -> bool {
        self.options.cutoff.is_some_and(|c| Instant::now() >= c)
    }

    async fn account<P: Platform>(
        &self,
        platform: &P,
        account: &AccountPlan,
    ) -> (AccountReport, Vec<WarehouseCatalog>) {
        let mut out = AccountReport {
            account_id: account.account_id.clone(),
            role_arn: account.role_arn.clone(),
            error: None,
            regions: Vec::new(),
        };
        if self.out_of_time() {
            out.error = Some(Failure::deadline("account"));
            return (out, Vec::new());
        }
        let session = match platform.assume_role(account, self.external_id.as_deref(), &self.session_name).await {
            Ok(session) => session,
            Err(e) => {
                warn!(error = %e, "account skipped: role not assumed");
                out.error = Some(Failure::new(&e, report::account_hint(&e, &account.account_id, &account.role_arn)));
                return (out, Vec::new());
            }
        };
        let regions = futures::future::join_all(account.regions.iter().map(|region| {
            let span = tracing::info_span!("region", region = %region.region);
            self.region(&session, &account.account_id, region).instrument(span)
        }))
        .await;
        let mut catalogs = Vec::new();
        for (report, found) in regions {
            out.regions.push(report);
            catalogs.extend(found);
        }
        (out, catalogs)
    }

    async fn region<A: AccountSession>(
        &self,
        session: &A,
        account_id: &str,
        region: &RegionPlan,
    ) -> (RegionReport, Vec<WarehouseCatalog>) {
        let mut out = RegionReport {
            region: region.region.clone(),
            mode: match region.selection {
                Selection::Discover { .. } => "discover",
                Selection::Named { .. } => "named",
            },
            error: None,
            workgroups_error: None,
            warehouses: Vec::new(),
            removed_warehouses: Vec::new(),
            removal_error: None,
        };
        if self.out_of_time() {
            out.error = Some(Failure::deadline("region"));
            return (out, Vec::new());
        }
        let found = match plan::discover(&session.directory(&region.region), &region.selection).await {
            Ok(found) => found,
            Err(e) => {
                warn!(error = %e, "region skipped");
                out.error = Some(Failure::new(&e, report::region_hint(&e, account_id, &region.region)));
                return (out, Vec::new());
            }
        };
        if let Some(e) = &found.workgroups_error {
            warn!(error = %e, "Serverless workgroups not listed; clusters are read");
            out.workgroups_error = Some(Failure::new(e, report::workgroups_hint(e, account_id, &region.region)));
        }
        let api = session.data_api(&region.region);
        let read: Vec<(WarehouseReport, Option<WarehouseCatalog>)> = stream::iter(found.warehouses)
            .map(|(warehouse, auth)| {
                let span = tracing::info_span!("warehouse", warehouse = %warehouse.id().name());
                self.warehouse(&api, account_id, &region.region, warehouse, auth).instrument(span)
            })
            .buffered(self.warehouses_per_region)
            .collect()
            .await;
        let mut catalogs = Vec::new();
        for (report, catalog) in read {
            out.warehouses.push(report);
            catalogs.extend(catalog);
        }
        for id in found.missing {
            warn!(warehouse = %id.name(), "named warehouse does not exist");
            out.warehouses.push(WarehouseReport::missing(id, account_id, &region.region));
        }
        (out, catalogs)
    }

    async fn warehouse<D: DataApi>(
        &self,
        api: &D,
        account_id: &str,
        region: &str,
        warehouse: Warehouse,
        auth: DbAuth,
    ) -> (WarehouseReport, Option<WarehouseCatalog>) {
        let mut out = WarehouseReport::found(warehouse.clone());
        if let Some(reason) = &out.reason {
            info!(reason, "warehouse skipped");
            return (out, None);
        }
        let id: WarehouseId = warehouse.id();
        let target = Target { warehouse: id.clone(), auth };
        let outcomes = match read::read_warehouse(api, &target, warehouse.default_database(), &self.options).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                warn!(error = %e, "databases not listed");
                out.error = Some(Failure::from_read(&e, &id));
                out.skip_if_busy(&warehouse);
                return (out, None);
            }
        };
        let mut catalog = WarehouseCatalog {
            account_id: account_id.to_string(),
            region: region.to_string(),
            warehouse: id.clone(),
            labels: warehouse.tags(),
            databases: Vec::new(),
            unread_databases: Vec::new(),
        };
        for outcome in outcomes {
            match outcome {
                DatabaseOutcome::Read(db) => {
                    out.databases.push(DatabaseReport {
                        name: db.name.clone(),
                        kind: db.kind,
                        datasets: db.datasets.len(),
                        error: None,
                        notes: db.notes.clone(),
                    });
                    catalog.databases.push(db);
                }
                DatabaseOutcome::Failed { name, kind, error } => {
                    out.databases.push(DatabaseReport {
                        name: name.clone(),
                        kind,
                        datasets: 0,
                        error: Some(Failure::from_read(&error, &id)),
                        notes: Vec::new(),
                    });
                    catalog.unread_databases.push(name);
                }
            }
        }
        if out.skip_if_busy(&warehouse) {
            return (out, None);
        }
        (out, Some(catalog))
    }
}

/// Sortable and unique: `20261126T171502Z-1a2b3c4d`.
fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"))
        .expect("a fixed format");
    format!("{stamp}-{:08x}", fastrand::u32(..))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formats every UTC time")
}
