//! Fan-out: a run split into shards, one per (account, region), each carried by an SQS message
//! and run by an invocation of its own (Lambda's SQS event source mapping), plus the run's one
//! summary. Keys, under `output.prefix`:
//!
//! - `runs/{runId}/plan.json`: every shard of the run, written before any message is sent;
//! - `runs/{runId}/shards/{shardId}.json`: each shard's report, rewritten at every attempt;
//! - `runs/{runId}.json`: the summary, written by the shard that completes the plan, and on
//!   request (`{"summaryOf": runId}`), with every planned shard's state, unfinished ones too.
//!
//! A shard is the same trip as a single run's, narrowed to one account and region: shards never
//! share a warehouse, so they never race on an index, and Data API limits (per account and
//! region) are never shared either.

use std::collections::BTreeMap;
use std::time::Instant;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::{stream, StreamExt};
use serde::{Deserialize, Serialize};
use tracing::{info, warn, Instrument};

use crate::config::Config;
use crate::error::{AwsError, ErrorKind, Failure};
use crate::event::{is_run_id, RunRequest, Scope, Trigger};
use crate::manifest::Layout;
use crate::plan::{AccountPlan, RegionPlan};
use crate::ports::{ObjectStore, Platform, ShardQueue};
use crate::publish::API_VERSION;
use crate::report::{self, AccountReport, OrganizationReport, Report, RunStatus, ShardState, ShardStatus};
use crate::run;

/// Shard reports read at once when a summary is built.
const READS_IN_PARALLEL: usize = 32;

/// The body of one shard's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardMessage {
    pub api_version: String,
    pub kind: String,
    pub run_id: String,
    pub shard_id: String,
    pub dry_run: bool,
    pub account: ShardAccount,
    pub region: RegionPlan,
    /// The warehouses a narrowed run named: such a shard sees only those, so it removes nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardAccount {
    pub account_id: String,
    pub role_arn: String,
}

/// `runs/{runId}/plan.json`: what a fanned-out run set out to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunPlan {
    pub api_version: String,
    pub kind: String,
    pub run_id: String,
    pub started_at: String,
    pub trigger: Trigger,
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Scope::is_full")]
    pub scope: Scope,
    pub shards: Vec<PlannedShard>,
    /// How each organization source's listing went.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<OrganizationReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlannedShard {
    pub shard_id: String,
    pub account_id: String,
    pub region: String,
}

/// `runs/{runId}/shards/{shardId}.json`: one attempt of one shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardReport {
    pub shard_id: String,
    pub attempt: u32,
    /// The attempt failed in a way a retry can fix, and was handed back to the queue.
    pub retrying: bool,
    /// What to do when retries alone will not do (a shard too large for one invocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    pub report: Report,
}

/// What the planner returns once the shards are on their way.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dispatched {
    pub run_id: String,
    pub status: &'static str,
    pub shards: usize,
    pub plan_key: String,
    pub summary_key: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<OrganizationReport>,
}

fn plan_key(layout: &Layout, run_id: &str) -> String {
    format!("{}runs/{run_id}/plan.json", layout.prefix)
}

fn shard_key(layout: &Layout, run_id: &str, shard_id: &str) -> String {
    format!("{}runs/{run_id}/shards/{shard_id}.json", layout.prefix)
}

/// One message per (account, region), in plan order.
pub fn shards(plans: &[AccountPlan], run_id: &str, request: &RunRequest) -> Vec<ShardMessage> {
    plans
        .iter()
        .flat_map(|a| {
            a.regions.iter().map(|r| ShardMessage {
                api_version: API_VERSION.into(),
                kind: "Shard".into(),
                run_id: run_id.into(),
                shard_id: format!("{}-{}", a.account_id, r.region),
                dry_run: request.dry_run,
                account: ShardAccount { account_id: a.account_id.clone(), role_arn: a.role_arn.clone() },
                region: r.clone(),
                clusters: request.scope.clusters.iter().cloned().collect(),
            })
        })
        .collect()
}

/// Writes the plan, then sends its shards (a dry run too: it writes only under `runs/`).
pub async fn dispatch<S: ObjectStore, Q: ShardQueue>(
    store: &S,
    queue: &Q,
    config: &Config,
    request: &RunRequest,
    run_id: String,
    plans: &[AccountPlan],
    organizations: Vec<OrganizationReport>,
) -> Result<Dispatched, AwsError> {
    let layout = Layout { prefix: config.output.prefix.clone() };
    let messages = shards(plans, &run_id, request);
    let plan = RunPlan {
        api_version: API_VERSION.into(),
        kind: "RunPlan".into(),
        run_id: run_id.clone(),
        started_at: run::now_rfc3339(),
        trigger: request.trigger,
        dry_run: request.dry_run,
        scope: request.scope.clone(),
        shards: messages
            .iter()
            .map(|m| PlannedShard {
                shard_id: m.shard_id.clone(),
                account_id: m.account.account_id.clone(),
                region: m.region.region.clone(),
            })
            .collect(),
        organizations,
    };
    let key = plan_key(&layout, &run_id);
    store
        .put(
            &config.output.bucket,
            &key,
            serde_json::to_vec_pretty(&plan).expect("a plan serialises"),
            "application/json",
        )
        .await?;
    let bodies = messages.iter().map(|m| serde_json::to_string(m).expect("a message serialises")).collect();
    let queue_url = config.execution.queue_url.as_deref().expect("fan-out has a queue (validated)");
    queue.send(queue_url, bodies).await?;
    info!(run_id, shards = messages.len(), "shards dispatched");
    Ok(Dispatched {
        summary_key: layout.run_key(&run_id),
        run_id,
        status: "dispatched",
        shards: messages.len(),
        plan_key: key,
        organizations: plan.organizations,
    })
}

/// Runs every shard of an SQS event; those a retry can fix are reported back as batch item
/// failures, so SQS redelivers them alone (and moves them to the dead-letter queue after
/// `maxReceiveCount` deliveries).
pub async fn handle<P: Platform, S: ObjectStore>(
    platform: &P,
    store: &S,
    config: &Config,
    event: &SqsEvent,
    deadline: Option<Instant>,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in &event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("shard", message_id = %id);
        if !shard(platform, store, config, record, deadline).instrument(span).await {
            response.batch_item_failures.push(BatchItemFailure { item_identifier: id });
        }
    }
    response
}

/// One delivery of one shard; false when it should be retried.
async fn shard<P: Platform, S: ObjectStore>(
    platform: &P,
    store: &S,
    config: &Config,
    record: &SqsMessage,
    deadline: Option<Instant>,
) -> bool {
    let message: ShardMessage = match serde_json::from_str(record.body.as_deref().unwrap_or_default()) {
        Ok(m) if is_shard(&m) => m,
        other => {
            // Not a shard of ours: no retry can fix it; it is dropped, and said so.
            warn!(error = ?other.err(), "message is not a shard; dropped");
            return true;
        }
    };
    let attempt = record.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1);
    let report = run_shard(platform, store, config, &message, deadline).await;
    let retrying = retryable(&report);
    let hint = out_of_time(&report).then(|| too_large_hint(&message));
    let layout = Layout { prefix: config.output.prefix.clone() };
    let written = ShardReport { shard_id: message.shard_id.clone(), attempt, retrying, hint, report };
    let body = serde_json::to_vec_pretty(&written).expect("a shard report serialises");
    let key = shard_key(&layout, &message.run_id, &message.shard_id);
    if let Err(e) = store.put(&config.output.bucket, &key, body, "application/json").await {
        warn!(error = %e, "the shard report could not be written; retrying the shard");
        return false;
    }
    info!(shard = message.shard_id, attempt, retrying, status = ?written.report.status, "shard done");
    // A last attempt that fails goes to the dead-letter queue: the summary must still come.
    if !retrying || attempt >= config.execution.max_receive_count {
        if let Err(e) = summarise_if_complete(store, config, &message.run_id).await {
            warn!(error = %e, "the run summary could not be written");
        }
    }
    !retrying
}

/// The trip of one account and region, as a run of its own.
pub async fn run_shard<P: Platform, S: ObjectStore>(
    platform: &P,
    store: &S,
    config: &Config,
    message: &ShardMessage,
    deadline: Option<Instant>,
) -> Report {
    let scope = Scope { clusters: message.clusters.iter().cloned().collect(), ..Scope::default() };
    let request = RunRequest { trigger: Trigger::Shard, dry_run: message.dry_run, scope, deadline };
    let plan = AccountPlan {
        account_id: message.account.account_id.clone(),
        role_arn: message.account.role_arn.clone(),
        regions: vec![message.region.clone()],
    };
    let mut report = run::publish_plans(platform, store, config, &request, message.run_id.clone(), vec![plan]).await;
    // A named warehouse may be in another shard's region: the summary says which were found.
    report.clusters_not_found.clear();
    report.summarise();
    report
}

/// A shard of this format, whose run id cannot leave the `runs/` folder of a key.
fn is_shard(m: &ShardMessage) -> bool {
    m.kind == "Shard" && m.api_version == API_VERSION && is_run_id(&m.run_id) && is_run_id(&m.shard_id)
}

/// Whether the invocation's deadline cut the shard short.
fn out_of_time(report: &Report) -> bool {
    report.failures().any(|f| f.kind == ErrorKind::Deadline)
}

fn too_large_hint(message: &ShardMessage) -> String {
    format!(
        "shard {} did not finish within one invocation: a retry reads what it did not reach, but the warehouses \
         of account {} in {} may be more than 15 minutes can read; split it by warehouse: list them as named \
         clusters and workgroups (option 2) in sources of their own, or narrow the databases with filters",
        message.shard_id, message.account.account_id, message.region.region
    )
}

/// What a retry can fix: the deadline, an endpoint that did not answer, throttling past the
/// SDK's retries, a commit that failed. A refusal (a denied role, a missing grant) is not: the
/// shard is acknowledged and its report says what could not be read.
pub fn retryable(report: &Report) -> bool {
    let transient = |f: &Failure| matches!(f.kind, ErrorKind::Deadline | ErrorKind::Unreachable | ErrorKind::Throttled);
    let regions = || report.accounts.iter().flat_map(|a| &a.regions);
    report.failures().any(transient)
        || regions().any(|r| r.removal_error.is_some())
        || regions().flat_map(|r| &r.warehouses).flat_map(|w| &w.publish).any(|p| p.error.is_some())
}

async fn summarise_if_complete<S: ObjectStore>(store: &S, config: &Config, run_id: &str) -> Result<(), AwsError> {
    let layout = Layout { prefix: config.output.prefix.clone() };
    let plan = read_plan(store, config, run_id).await?;
    let prefix = format!("{}runs/{run_id}/shards/", layout.prefix);
    if store.list(&config.output.bucket, &prefix).await?.len() >= plan.shards.len() {
        summarise(store, config, run_id).await?;
    }
    Ok(())
}

async fn read_plan<S: ObjectStore>(store: &S, config: &Config, run_id: &str) -> Result<RunPlan, AwsError> {
    let key = plan_key(&Layout { prefix: config.output.prefix.clone() }, run_id);
    let bytes = store.get(&config.output.bucket, &key).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| AwsError::from_code("s3:GetObject", Some("InvalidPlan"), format!("{key}: {e}")))
}

/// The run's one summary, from its plan and every shard report there is, written to
/// `runs/{runId}.json`: every shard's state, the accounts' reports merged, the counts summed;
/// shards that never finished shown as such.
pub async fn summarise<S: ObjectStore>(store: &S, config: &Config, run_id: &str) -> Result<Report, AwsError> {
    let layout = Layout { prefix: config.output.prefix.clone() };
    let plan = read_plan(store, config, run_id).await?;
    let reads: Vec<(PlannedShard, Option<ShardReport>)> = stream::iter(plan.shards.iter().cloned())
        .map(|planned| async {
            let key = shard_key(&layout, run_id, &planned.shard_id);
            let report = match store.get(&config.output.bucket, &key).await {
                Ok(bytes) => serde_json::from_slice(&bytes).ok(),
                Err(_) => None,
            };
            (planned, report)
        })
        .buffered(READS_IN_PARALLEL)
        .collect()
        .await;
    let mut summary = merge(&plan, reads, config.execution.max_receive_count);
    let body = serde_json::to_vec_pretty(&summary).expect("a summary serialises");
    let key = layout.run_key(run_id);
    store.put(&config.output.bucket, &key, body, "application/json").await?;
    summary.report_key = Some(key);
    Ok(summary)
}

fn merge(plan: &RunPlan, reads: Vec<(PlannedShard, Option<ShardReport>)>, max_receive_count: u32) -> Report {
    let mut accounts: BTreeMap<String, AccountReport> = BTreeMap::new();
    let mut shards = Vec::new();
    let mut ended_at = plan.started_at.clone();
    for (planned, read) in reads {
        let state = match &read {
            None => ShardState::NotFinished,
            Some(r) if r.retrying && r.attempt >= max_receive_count => ShardState::DeadLettered,
            Some(r) if r.retrying => ShardState::Retrying,
            Some(r) => match r.report.status {
                RunStatus::Succeeded => ShardState::Succeeded,
                RunStatus::Partial => ShardState::Partial,
                RunStatus::Failed => ShardState::Failed,
            },
        };
        shards.push(ShardStatus {
            shard_id: planned.shard_id,
            account_id: planned.account_id,
            region: planned.region,
            state,
            attempt: read.as_ref().map(|r| r.attempt),
            hint: read.as_ref().and_then(|r| r.hint.clone()),
        });
        for account in read.into_iter().flat_map(|r| {
            ended_at = ended_at.clone().max(r.report.ended_at.clone());
            r.report.accounts
        }) {
            match accounts.get_mut(&account.account_id) {
                Some(merged) => merged.regions.extend(account.regions),
                None => drop(accounts.insert(account.account_id.clone(), account)),
            }
        }
    }
    let accounts: Vec<AccountReport> = accounts.into_values().collect();
    let mut report = Report {
        run_id: plan.run_id.clone(),
        started_at: plan.started_at.clone(),
        ended_at,
        status: RunStatus::Succeeded,
        trigger: plan.trigger,
        dry_run: plan.dry_run,
        scope: plan.scope.clone(),
        counts: Default::default(),
        clusters_not_found: report::not_found(&accounts, &plan.scope),
        accounts,
        report_key: None,
        report_error: None,
        organizations: plan.organizations.clone(),
        shards,
    };
    report.summarise();
    report
}
