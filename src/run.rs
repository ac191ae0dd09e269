//! The whole invocation: payload → request → config → plan, then per account and region the
//! warehouses, each in one trip: read → published by every output → reported, its catalog
//! dropped as soon as the outputs are done. Then the region's sweep, then the report. Plain Rust
//! over the ports; `aws` holds their adapters.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use tokio::sync::mpsc;
use tracing::{info, warn, Instrument};

use crate::catalog::{Warehouse, WarehouseCatalog, WarehouseId};
use crate::config::Config;
use crate::error::Failure;
use crate::event::{RunRequest, Scope};
use crate::outputs::{Outputs, RunContext};
use crate::plan::{self, AccountPlan, RegionPlan, ScopeError, Selection};
use crate::ports::{
    AccountSession, Condition, DataApi, DbAuth, NamespaceDirectory, ObjectStore, Output, Platform, Target,
};
use crate::read::{self, DatabaseOutcome, ReadOptions};
use crate::report::{
    self, AccountReport, DatabaseReport, OrganizationReport, RegionMode, RegionReport, Report, RunStatus, Visited,
    WarehouseReport, WarehouseState,
};

/// Runs a validated request with the config's outputs, and writes the report.
pub async fn run<P: Platform, S: ObjectStore>(
    platform: &P,
    store: &S,
    config: &Config,
    request: &RunRequest,
    run_id: String,
) -> Result<Report, ScopeError> {
    let (plans, organizations) = plan_run(platform, config, &request.scope, &run_id).await?;
    let committed_at = now_rfc3339();
    let outputs = Outputs::new(store, config, RunContext::of(config, request, &run_id, &committed_at));
    let planned = Planned { run_id: run_id.clone(), plans, organizations };
    let mut report = visit(platform, &outputs, config, request, planned).await;
    if !request.dry_run {
        write_report(store, config, &mut report).await;
    }
    info!(status = ?report.status, counts = ?report.counts, "run finished");
    Ok(report)
}

/// Writes the report to `{prefix}runs/{runId}.json`; a run whose report cannot be written is
/// not a success, since the registry cannot see its outcome.
async fn write_report<S: ObjectStore>(store: &S, config: &Config, report: &mut Report) {
    let key = config.layout().run_key(&report.run_id);
    let body = serde_json::to_vec_pretty(&*report).expect("the report serialises");
    match store.put(&config.output.bucket, &key, body, "application/json", Condition::Any).await {
        Ok(()) => report.report_key = Some(key),
        Err(e) => {
            warn!(error = %e, "could not write the run report");
            report.report_error = Some(e.to_string());
            if report.status == RunStatus::Succeeded {
                report.status = RunStatus::Partial;
            }
        }
    }
}

/// Plans the request, then sends each warehouse on its trip to `outputs`; returns the report
/// (not written).
pub async fn execute<P: Platform, O: Output + NamespaceDirectory>(
    platform: &P,
    outputs: &O,
    config: &Config,
    request: &RunRequest,
    run_id: String,
) -> Result<Report, ScopeError> {
    let (plans, organizations) = plan_run(platform, config, &request.scope, &run_id).await?;
    Ok(visit(platform, outputs, config, request, Planned { run_id, plans, organizations }).await)
}

/// What a run visits: the explicit sources, and the accounts each organization source lists
/// now (so accounts joining or leaving are picked up by the next run), with how each listing went.
pub(crate) async fn plan_run<P: Platform>(
    platform: &P,
    config: &Config,
    scope: &Scope,
    run_id: &str,
) -> Result<(Vec<AccountPlan>, Vec<OrganizationReport>), ScopeError> {
    let listed = plan::list_organizations(platform, config, &session_name(run_id)).await;
    let plans = plan::plan(config, scope, &listed)?;
    let organizations = listed
        .iter()
        .map(|o| OrganizationReport {
            role_arn: o.org.role_arn.clone(),
            accounts: o.accounts.as_ref().map_or(0, Vec::len),
            error: o.accounts.as_ref().err().map(|e| {
                warn!(error = %e, role = o.org.role_arn, "organization not listed");
                Failure::new(e, report::organization_hint(e, &o.org.role_arn))
            }),
        })
        .collect();
    Ok((plans, organizations))
}

/// The STS session name of a run's roles, so CloudTrail in each account shows which run it was.
fn session_name(run_id: &str) -> String {
    format!("redshift-registry-{run_id}")
}

/// What a run visits: its accounts and regions, and how its organizations were listed.
pub(crate) struct Planned {
    pub(crate) run_id: String,
    pub(crate) plans: Vec<AccountPlan>,
    pub(crate) organizations: Vec<OrganizationReport>,
}

/// Sends each warehouse of a planned run on its trip to `outputs`; returns the summarised
/// report (built by `Report::new`), for a whole run and for a shard.
pub(crate) async fn visit<P: Platform, O: Output + NamespaceDirectory>(
    platform: &P,
    outputs: &O,
    config: &Config,
    request: &RunRequest,
    planned: Planned,
) -> Report {
    let Planned { run_id, plans, organizations } = planned;
    let started_at = now_rfc3339();
    info!(run_id, accounts = plans.len(), dry_run = request.dry_run, "run started");
    // New work stops `deadlineReserveSeconds` before the deadline (at most a quarter of the time
    // left, for short timeouts), leaving time to commit what was read and to write the report.
    let cutoff = request.deadline.map(|deadline| {
        let left = deadline.saturating_duration_since(Instant::now());
        deadline - Duration::from_secs(config.limits.deadline_reserve_seconds).min(left / 4)
    });
    let visit = Visit {
        session_name: session_name(&run_id),
        external_id: config.external_id.clone(),
        options: ReadOptions { cutoff, ..ReadOptions::from_config(config) },
        warehouses_per_region: config.limits.warehouses_per_region,
        // A run narrowed to some clusters sees only those: it cannot tell what is gone.
        sweep: request.scope.clusters.is_empty(),
        outputs,
    };
    let accounts: Vec<AccountReport> = stream::iter(&plans)
        .map(|account| {
            let span = tracing::info_span!("account", run_id, account_id = %account.account_id);
            visit.account(platform, account).instrument(span)
        })
        .buffered(config.limits.accounts_in_parallel)
        .collect()
        .await;

    Report::new(Visited {
        run_id,
        started_at,
        ended_at: now_rfc3339(),
        trigger: request.trigger,
        dry_run: request.dry_run,
        scope: request.scope.clone(),
        accounts,
        organizations,
        shards: Vec::new(),
    })
}

/// What every account visit shares.
struct Visit<'a, O> {
    session_name: String,
    external_id: Option<String>,
    options: ReadOptions,
    warehouses_per_region: usize,
    sweep: bool,
    outputs: &'a O,
}

impl<O: Output + NamespaceDirectory> Visit<'_, O> {
    fn out_of_time(&self) -> bool {
        self.options.cutoff.is_some_and(|c| Instant::now() >= c)
    }

    async fn account<P: Platform>(&self, platform: &P, account: &AccountPlan) -> AccountReport {
        let mut out = AccountReport {
            account_id: account.account_id.clone(),
            role_arn: account.role_arn.clone(),
            error: None,
            regions: Vec::new(),
        };
        if self.out_of_time() {
            out.error = Some(Failure::deadline("account"));
            return out;
        }
        let session =
            match platform.assume_role(&account.role_arn, self.external_id.as_deref(), &self.session_name).await {
                Ok(session) => session,
                Err(e) => {
                    warn!(error = %e, "account skipped: role not assumed");
                    out.error =
                        Some(Failure::new(&e, report::account_hint(&e, &account.account_id, &account.role_arn)));
                    return out;
                }
            };
        out.regions = futures::future::join_all(account.regions.iter().map(|region| {
            let span = tracing::info_span!("region", region = %region.region);
            self.region(&session, &account.account_id, region).instrument(span)
        }))
        .await;
        out
    }

    async fn region<A: AccountSession>(&self, session: &A, account_id: &str, region: &RegionPlan) -> RegionReport {
        let mut out = RegionReport {
            region: region.region.clone(),
            mode: match region.selection {
                Selection::Discover { .. } => RegionMode::Discover,
                Selection::Named { .. } => RegionMode::Named,
            },
            error: None,
            workgroups_error: None,
            warehouses: Vec::new(),
            removed_warehouses: Vec::new(),
            removal_error: None,
        };
        if self.out_of_time() {
            out.error = Some(Failure::deadline("region"));
            return out;
        }
        let found = match plan::discover(&session.directory(&region.region), &region.selection).await {
            Ok(found) => found,
            Err(e) => {
                warn!(error = %e, "region skipped");
                out.error = Some(Failure::new(&e, report::region_hint(&e, account_id, &region.region)));
                return out;
            }
        };
        if let Some(e) = &found.workgroups_error {
            warn!(error = %e, "Serverless workgroups not listed; clusters are read");
            out.workgroups_error = Some(Failure::new(e, report::workgroups_hint(e, account_id, &region.region)));
        }
        let api = session.data_api(&region.region);
        out.warehouses = stream::iter(found.warehouses)
            .map(|(warehouse, auth)| {
                let span = tracing::info_span!("warehouse", warehouse = %warehouse.id().name());
                self.warehouse(&api, account_id, &region.region, warehouse, auth).instrument(span)
            })
            .buffered(self.warehouses_per_region)
            .collect()
            .await;
        for id in found.missing {
            warn!(warehouse = %id.name(), "named warehouse does not exist");
            out.warehouses.push(WarehouseReport::missing(id, account_id, &region.region));
        }
        if self.sweep {
            let present: BTreeSet<WarehouseId> =
                out.warehouses.iter().filter(|w| w.state != WarehouseState::Missing).map(|w| w.id.clone()).collect();
            let listed = out.workgroups_error.is_none();
            match self.outputs.sweep(account_id, &region.region, &present, listed).await {
                Ok(removed) => out.removed_warehouses = removed,
                Err(e) => out.removal_error = Some(format!("absent warehouses could not be removed: {e}")),
            }
        }
        out
    }

    /// One warehouse's trip: read, published, reported.
    async fn warehouse<D: DataApi>(
        &self,
        api: &D,
        account_id: &str,
        region: &str,
        warehouse: Warehouse,
        auth: DbAuth,
    ) -> WarehouseReport {
        let mut out = WarehouseReport::found(warehouse.clone());
        if let Some(reason) = &out.reason {
            info!(reason, "warehouse skipped");
            return out;
        }
        let id: WarehouseId = warehouse.id();
        let target = Target { warehouse: id.clone(), auth };
        let mut catalog = WarehouseCatalog {
            account_id: account_id.to_string(),
            region: region.to_string(),
            warehouse: id.clone(),
            arn: warehouse.arn(account_id, region),
            labels: warehouse.tags(),
            databases: Vec::new(),
            unread_databases: Vec::new(),
            sharing_unread: false,
        };
        // The reader sends each dataset as it is read; the outputs write it meanwhile. The
        // channel's bound is how far reading may run ahead of writing.
        let (sender, receiver) = mpsc::channel(READ_AHEAD);
        let reading = async {
            let sender = sender; // dropped when the read ends, which ends the outputs' stream
            read::read_warehouse(api, self.outputs, &target, warehouse.default_database(), &self.options, &sender).await
        };
        let (outcomes, publishing) = tokio::join!(reading, self.outputs.publish(&catalog, receiver));
        let outcomes = match outcomes {
            Ok(read) => {
                catalog.sharing_unread = read.sharing_unread;
                read.databases
            }
            Err(e) => {
                warn!(error = %e, "databases not listed");
                out.error = Some(e.failure(&id));
                out.skip_if_busy(&warehouse);
                return out;
            }
        };
        for outcome in outcomes {
            match outcome {
                DatabaseOutcome::Read(db) => {
                    out.databases.push(DatabaseReport::read(&db));
                    catalog.databases.push(db);
                }
                DatabaseOutcome::Failed { name, kind, error } => {
                    out.databases.push(DatabaseReport::failed(&name, kind, error.failure(&id)));
                    catalog.unread_databases.push(name);
                }
            }
        }
        if !out.skip_if_busy(&warehouse) {
            out.publish = self.outputs.commit(publishing, &catalog).await;
        }
        out
    }
}

/// Datasets the reader may send ahead of the writes: enough to keep `s3WritesInParallel` busy,
/// few enough that memory does not grow with the warehouse.
const READ_AHEAD: usize = 256;

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formats every UTC time")
}
