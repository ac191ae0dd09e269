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
//! share a warehouse, and Data API limits (per account and region) are never shared either.
//!
//! A message is a request, never an authority: it names a run and a shard, nothing else. The
//! shard must be in that run's plan, and the account's role, regions, warehouses and logins come
//! from the current config. Anything else is refused: acknowledged (no retry can fix it),
//! logged, counted, and nothing is read or written for it.

use std::collections::BTreeMap;
use std::time::Instant;

use time::OffsetDateTime;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::{stream, StreamExt};
use serde::{Deserialize, Serialize};
use tracing::{info, warn, Instrument};

use crate::config::Config;
use crate::error::{AwsError, ErrorKind, Failure};
use crate::event::{RunRequest, Scope, Trigger};
use crate::outputs::{Outputs, RunContext};
use crate::plan::{self, AccountPlan, ListedBy};
use crate::ports::{Condition, ObjectStore, Platform, ShardQueue};
use crate::publish::API_VERSION;
use crate::report::{AccountReport, OrganizationReport, Report, RunStatus, ShardState, ShardStatus, Visited};
use crate::run::{self, Planned};
use crate::run_id::{RunId, RunIdError};

/// Shard reports read at once when a summary is built.
const READS_IN_PARALLEL: usize = 32;

/// The error code of a plan that is there but not one this function wrote.
const INVALID_PLAN: &str = "InvalidPlan";

/// The largest message body read: a shard message is about 120 bytes.
const MAX_BODY_BYTES: usize = 1024;

/// The oldest run a shard message may name: SQS keeps a message 14 days at most (SQS quotas,
/// MessageRetentionPeriod), so no delivery of this function's own is older. A replay of an old
/// plan could not commit over newer runs anyway; it would only cost reads.
const MAX_RUN_AGE: time::Duration = time::Duration::days(14);

/// The body of one shard's message: which shard of which run, nothing a visit uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardMessage {
    pub api_version: String,
    pub kind: String,
    pub run_id: String,
    pub shard_id: String,
}

/// Why a message is refused. No retry can fix any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a shard message of this function: {0}")]
    NotAShard(String),
    #[error(transparent)]
    RunId(#[from] RunIdError),
    #[error("run {0} has no readable plan under this function's output prefix")]
    NoPlan(String),
    #[error("run {0} started more than 14 days ago, longer than SQS keeps a message")]
    TooOld(String),
    #[error("shard {shard} is not in the plan of run {run}")]
    NotPlanned { run: String, shard: String },
    #[error("the current config does not visit shard {shard}: {why}")]
    NotConfigured { shard: String, why: String },
}

/// What one delivery came to.
#[derive(Debug)]
enum Delivery {
    Done,
    /// A retry can fix it: SQS delivers it again.
    Retry,
    Refused(Refusal),
}

/// The response to an SQS event, and how many of its messages were refused (for the metrics).
#[derive(Debug, Default, Serialize)]
pub struct Batch {
    #[serde(flatten)]
    pub response: SqsBatchResponse,
    #[serde(skip)]
    pub refused: usize,
    /// The run summaries these shards completed (for the metrics).
    #[serde(skip)]
    pub summaries: Vec<Report>,
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
    /// The organization source that listed the account, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_by: Option<ListedBy>,
}

/// `runs/{runId}/shards/{shardId}.json`: one attempt of one shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShardReport {
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
    /// Earlier runs found without a final summary, summarised now (for the metrics).
    #[serde(skip)]
    pub overdue: Vec<Report>,
}

/// One shard per (account, region), in plan order (a source is either option 1 or option 2,
/// so an account plan has each region once).
pub(crate) fn planned_shards(plans: &[AccountPlan]) -> Vec<PlannedShard> {
    plans
        .iter()
        .flat_map(|a| {
            a.regions.iter().map(|r| PlannedShard {
                shard_id: format!("{}-{}", a.account_id, r.region),
                account_id: a.account_id.clone(),
                region: r.region.clone(),
                listed_by: a.listed_by.clone(),
            })
        })
        .collect()
}

fn message(run_id: &str, shard: &PlannedShard) -> ShardMessage {
    ShardMessage {
        api_version: API_VERSION.into(),
        kind: "Shard".into(),
        run_id: run_id.into(),
        shard_id: shard.shard_id.clone(),
    }
}

/// Where a fanned-out run's shards go: the queue port and the config's queue.
pub struct Shards<'a, Q> {
    pub queue: &'a Q,
    pub queue_url: &'a str,
}

/// Writes the plan, then sends its shards (a dry run too: it writes only under `runs/`).
pub async fn dispatch<S: ObjectStore, Q: ShardQueue>(
    store: &S,
    shards: &Shards<'_, Q>,
    config: &Config,
    request: &RunRequest,
    run_id: String,
    plans: &[AccountPlan],
    organizations: Vec<OrganizationReport>,
) -> Result<Dispatched, AwsError> {
    let layout = config.layout();
    let plan = RunPlan {
        api_version: API_VERSION.into(),
        kind: "RunPlan".into(),
        run_id: run_id.clone(),
        started_at: run::now_rfc3339(),
        trigger: request.trigger,
        dry_run: request.dry_run,
        scope: request.scope.clone(),
        shards: planned_shards(plans),
        organizations,
    };
    let key = layout.plan_key(&run_id);
    store
        .put(
            &config.output.bucket,
            &key,
            serde_json::to_vec_pretty(&plan).expect("a plan serialises"),
            "application/json",
            Condition::Any,
        )
        .await?;
    store.put(&config.output.bucket, &layout.open_key(&run_id), Vec::new(), "text/plain", Condition::Any).await?;
    let bodies = plan
        .shards
        .iter()
        .map(|s| serde_json::to_string(&message(&run_id, s)).expect("a message serialises"))
        .collect();
    shards.queue.send(shards.queue_url, bodies).await?;
    info!(run_id, shards = plan.shards.len(), "shards dispatched");
    Ok(Dispatched {
        summary_key: layout.run_key(&run_id),
        run_id,
        status: "dispatched",
        shards: plan.shards.len(),
        plan_key: key,
        organizations: plan.organizations,
        overdue: Vec::new(),
    })
}

/// Runs every shard of an SQS event; those a retry can fix are reported back as batch item
/// failures, so SQS redelivers them alone (and moves them to the dead-letter queue after
/// `maxReceiveCount` deliveries). Refused messages are acknowledged.
pub async fn handle<P: Platform, S: ObjectStore>(
    platform: &P,
    store: &S,
    config: &Config,
    event: &SqsEvent,
    deadline: Option<Instant>,
) -> Batch {
    let mut batch = Batch::default();
    for record in &event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("shard", message_id = %id);
        match deliver(platform, store, config, record, deadline, &mut batch.summaries).instrument(span).await {
            Delivery::Done => {}
            Delivery::Retry => batch.response.batch_item_failures.push(BatchItemFailure { item_identifier: id }),
            Delivery::Refused(refusal) => {
                warn!(message_id = %id, reason = %refusal, "message refused: acknowledged, nothing read or written");
                batch.refused += 1;
            }
        }
    }
    batch
}

/// One delivery of one shard.
async fn deliver<P: Platform, S: ObjectStore>(
    platform: &P,
    store: &S,
    config: &Config,
    record: &SqsMessage,
    deadline: Option<Instant>,
    summaries: &mut Vec<Report>,
) -> Delivery {
    let message = match accept(record.body.as_deref().unwrap_or_default(), OffsetDateTime::now_utc()) {
        Ok(message) => message,
        Err(refusal) => return Delivery::Refused(refusal),
    };
    let (plan, planned) = match planned(store, config, &message).await {
        Ok(found) => found,
        Err(delivery) => return delivery,
    };
    let account = plan::shard_plan(
        config,
        &planned.account_id,
        &planned.region,
        planned.listed_by.as_ref(),
        &plan.scope.clusters,
    );
    let account = match account {
        Ok(account) => account,
        Err(why) => return Delivery::Refused(Refusal::NotConfigured { shard: planned.shard_id, why }),
    };
    let attempt = record.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1);
    let report = run_shard(platform, store, config, &plan, account, deadline).await;
    let retrying = retryable(&report);
    let hint = out_of_time(&report).then(|| too_large_hint(&planned));
    let layout = config.layout();
    let written = ShardReport { shard_id: planned.shard_id.clone(), attempt, retrying, hint, report };
    let body = serde_json::to_vec_pretty(&written).expect("a shard report serialises");
    let key = layout.shard_key(&plan.run_id, &planned.shard_id);
    if let Err(e) = store.put(&config.output.bucket, &key, body, "application/json", Condition::Any).await {
        warn!(error = %e, "the shard report could not be written; retrying the shard");
        return Delivery::Retry;
    }
    info!(shard = planned.shard_id, attempt, retrying, status = ?written.report.status, "shard done");
    // A last attempt that fails goes to the dead-letter queue: the summary must still come.
    if !retrying || attempt >= config.max_receive_count {
        match summarise_if_complete(store, config, &plan.run_id).await {
            Ok(summary) => summaries.extend(summary),
            Err(e) => warn!(error = %e, "the run summary could not be written"),
        }
    }
    if retrying {
        Delivery::Retry
    } else {
        Delivery::Done
    }
}

/// A body that is a shard message of this function, for a run id of its format not dated in
/// the future; nothing else is parsed (a padded body is refused before it is read).
pub fn accept(body: &str, now: OffsetDateTime) -> Result<ShardMessage, Refusal> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Refusal::NotAShard(format!("a body of {} bytes (at most {MAX_BODY_BYTES})", body.len())));
    }
    let message: ShardMessage = serde_json::from_str(body).map_err(|e| Refusal::NotAShard(e.to_string()))?;
    if message.kind != "Shard" || message.api_version != API_VERSION {
        return Err(Refusal::NotAShard(format!("kind {:?}, apiVersion {:?}", message.kind, message.api_version)));
    }
    if RunId::parse_received(&message.run_id, now)?.started() < now - MAX_RUN_AGE {
        return Err(Refusal::TooOld(message.run_id));
    }
    Ok(message)
}

/// The run's plan and the message's shard in it; or what to do with the message instead:
/// refuse it, or hand it back when the plan could not be read now and a retry may.
async fn planned<S: ObjectStore>(
    store: &S,
    config: &Config,
    message: &ShardMessage,
) -> Result<(RunPlan, PlannedShard), Delivery> {
    let no_plan = || Delivery::Refused(Refusal::NoPlan(message.run_id.clone()));
    let plan = match read_plan(store, config, &message.run_id).await {
        Ok(plan) if plan.run_id == message.run_id => plan,
        Ok(_) => return Err(no_plan()),
        Err(e) if e.kind == ErrorKind::NotFound || e.code == INVALID_PLAN => return Err(no_plan()),
        Err(e) => {
            warn!(error = %e, "the run's plan could not be read; retrying the shard");
            return Err(Delivery::Retry);
        }
    };
    let Some(planned) = plan.shards.iter().find(|s| s.shard_id == message.shard_id).cloned() else {
        let (run, shard) = (message.run_id.clone(), message.shard_id.clone());
        return Err(Delivery::Refused(Refusal::NotPlanned { run, shard }));
    };
    Ok((plan, planned))
}

/// The trip of one planned account and region, as a run of its own.
async fn run_shard<P: Platform, S: ObjectStore>(
    platform: &P,
    store: &S,
    config: &Config,
    plan: &RunPlan,
    account: AccountPlan,
    deadline: Option<Instant>,
) -> Report {
    let scope = Scope { clusters: plan.scope.clusters.clone(), ..Scope::default() };
    let request = RunRequest { trigger: Trigger::Shard, dry_run: plan.dry_run, scope, deadline };
    let committed_at = run::now_rfc3339();
    let outputs = Outputs::new(store, config, RunContext::of(config, &request, &plan.run_id, &committed_at));
    let planned = Planned { run_id: plan.run_id.clone(), plans: vec![account], organizations: Vec::new() };
    run::visit(platform, &outputs, config, &request, planned).await
}

/// Whether the invocation's deadline cut the shard short.
fn out_of_time(report: &Report) -> bool {
    report.failures().any(|f| f.kind == ErrorKind::Deadline)
}

fn too_large_hint(shard: &PlannedShard) -> String {
    format!(
        "shard {} did not finish within one invocation: a retry reads what it did not reach, but the warehouses \
         of account {} in {} may be more than 15 minutes can read; split it by warehouse: list them as named \
         clusters and workgroups (option 2) in sources of their own, or narrow the databases with filters \
         (README: Shards in the dead-letter queue)",
        shard.shard_id, shard.account_id, shard.region
    )
}

/// What a retry can fix: the deadline, an endpoint that did not answer, throttling past the
/// SDK's retries, a commit that failed. A refusal (a denied role, a missing grant) is not: the
/// shard is acknowledged and its report says what could not be read.
pub(crate) fn retryable(report: &Report) -> bool {
    let transient = |f: &Failure| matches!(f.kind, ErrorKind::Deadline | ErrorKind::Unreachable | ErrorKind::Throttled);
    report.failures().any(transient)
        || report.regions().any(|(_, r)| r.removal_error.is_some())
        || report.warehouses().flat_map(|(_, _, w)| &w.publish).any(|p| p.error.is_some())
}

/// The run's summary once every shard has reported, when it is final.
async fn summarise_if_complete<S: ObjectStore>(
    store: &S,
    config: &Config,
    run_id: &str,
) -> Result<Option<Report>, AwsError> {
    let layout = config.layout();
    let plan = read_plan(store, config, run_id).await?;
    let prefix = layout.shards_prefix(run_id);
    if store.list(&config.output.bucket, &prefix).await?.len() < plan.shards.len() {
        return Ok(None);
    }
    let summary = summarise(store, config, run_id).await?;
    Ok((summary.counts.shards_unfinished == 0).then_some(summary))
}

/// How long after its start a run may still be waiting for shards: every delivery SQS makes
/// of a shard (`maxReceiveCount`), each after the queue's visibility timeout (5,400 s in the
/// template), plus one invocation.
fn overdue_after(config: &Config) -> time::Duration {
    time::Duration::seconds(5400) * config.max_receive_count + time::Duration::minutes(15)
}

/// Summarises each earlier run still open past [`overdue_after`]: a shard was lost, throttled
/// or stuck, and no shard wrote the final summary. Its unfinished shards are shown as such.
/// Run by the planner, so every run gets its summary without being asked.
pub async fn summarise_overdue<S: ObjectStore>(store: &S, config: &Config, now: OffsetDateTime) -> Vec<Report> {
    let layout = config.layout();
    let bucket = &config.output.bucket;
    let prefix = layout.open_prefix();
    let open = match store.list(bucket, &prefix).await {
        Ok(keys) => keys,
        Err(e) => {
            warn!(error = %e, "open runs could not be listed; their summaries wait for the next run");
            return Vec::new();
        }
    };
    let mut summaries = Vec::new();
    for key in open {
        let run_id = &key[prefix.len()..];
        if RunId::parse(run_id).is_ok_and(|id| id.started() > now - overdue_after(config)) {
            continue;
        }
        let summarised = summarise(store, config, run_id).await;
        let closed = match summarised {
            Ok(summary) => {
                warn!(run_id, unfinished = summary.counts.shards_unfinished, "an overdue run was summarised");
                summaries.push(summary);
                true
            }
            Err(e) if e.kind == ErrorKind::NotFound || e.code == INVALID_PLAN => true,
            Err(e) => {
                warn!(run_id, error = %e, "an overdue run could not be summarised; the next run tries again");
                false
            }
        };
        if closed {
            if let Err(e) = store.delete(bucket, std::slice::from_ref(&key)).await {
                warn!(run_id, error = %e, "an overdue run's marker could not be removed");
            }
        }
    }
    summaries
}

async fn read_plan<S: ObjectStore>(store: &S, config: &Config, run_id: &str) -> Result<RunPlan, AwsError> {
    let key = config.layout().plan_key(run_id);
    let Some(object) = store.get_if_present(&config.output.bucket, &key).await? else {
        return Err(AwsError::from_code("s3:GetObject", Some("NoSuchKey"), format!("no plan at {key}")));
    };
    serde_json::from_slice(&object.bytes)
        .map_err(|e| AwsError::from_code("s3:GetObject", Some(INVALID_PLAN), format!("{key}: {e}")))
}

/// The run's one summary, from its plan and every shard report there is, written to
/// `runs/{runId}.json`: every shard's state, the accounts' reports merged, the counts summed;
/// shards that never finished shown as such.
pub(crate) async fn summarise<S: ObjectStore>(store: &S, config: &Config, run_id: &str) -> Result<Report, AwsError> {
    let layout = config.layout();
    let plan = read_plan(store, config, run_id).await?;
    let reads: Vec<(PlannedShard, Option<ShardReport>)> = stream::iter(plan.shards.iter().cloned())
        .map(|planned| async {
            let key = layout.shard_key(run_id, &planned.shard_id);
            let report = match store.get(&config.output.bucket, &key).await {
                Ok(object) => serde_json::from_slice(&object.bytes).ok(),
                Err(_) => None,
            };
            (planned, report)
        })
        .buffered(READS_IN_PARALLEL)
        .collect()
        .await;
    let mut summary = merge(&plan, reads, config.max_receive_count);
    let body = serde_json::to_vec_pretty(&summary).expect("a summary serialises");
    let key = layout.run_key(run_id);
    store.put(&config.output.bucket, &key, body, "application/json", Condition::Any).await?;
    if summary.counts.shards_unfinished == 0 {
        store.delete(&config.output.bucket, &[layout.open_key(run_id)]).await?;
    }
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
    Report::new(Visited {
        run_id: plan.run_id.clone(),
        started_at: plan.started_at.clone(),
        ended_at,
        trigger: plan.trigger,
        dry_run: plan.dry_run,
        scope: plan.scope.clone(),
        accounts: accounts.into_values().collect(),
        organizations: plan.organizations.clone(),
        shards,
    })
}

#[cfg(test)]
mod tests {
    //! What a message may ask for, decided without the stack.

    use std::collections::BTreeSet;

    use super::*;
    use crate::config::DeploymentDefaults;
    use crate::report::{ShardState, WarehouseState};
    use crate::testing::{EmptyAccounts, MemoryStore};

    const RUN: &str = "20261205T090000000Z-1a2b3c4d";

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-12-05 09:01 UTC)
    }

    fn body(run_id: &str, shard_id: &str) -> String {
        serde_json::to_string(&ShardMessage {
            api_version: API_VERSION.into(),
            kind: "Shard".into(),
            run_id: run_id.into(),
            shard_id: shard_id.into(),
        })
        .unwrap()
    }

    #[test]
    fn only_a_bare_shard_message_of_a_well_formed_recent_run_is_accepted() {
        assert_eq!(accept(&body(RUN, "111111111111-us-east-1"), now()).unwrap().shard_id, "111111111111-us-east-1");
        let carried = body(RUN, "s").replace("}", r#","account":{"accountId":"1","roleArn":"x"}}"#);
        let padded = format!(r#"{{"kind":"Shard","pad":"{}"}}"#, "x".repeat(200_000));
        for (junk, why) in [
            ("not json", "expected"),
            ("{}", "missing field"),
            (carried.as_str(), "unknown field `account`"),
            (padded.as_str(), "bytes"),
            (&body(RUN, "s").replace("Shard", "Plan"), "kind"),
        ] {
            let refused = accept(junk, now()).unwrap_err();
            assert!(matches!(&refused, Refusal::NotAShard(m) if m.contains(why)), "{refused} for {junk:.60}");
        }
        assert!(matches!(accept(&body("r", "s"), now()), Err(Refusal::RunId(RunIdError::Format(_)))));
        let future = accept(&body("20261205T093000000Z-1a2b3c4d", "s"), now());
        assert!(matches!(future, Err(Refusal::RunId(RunIdError::Future { .. }))), "{future:?}");
        let replayed = accept(&body("20261120T090000000Z-1a2b3c4d", "s"), now());
        assert!(matches!(replayed, Err(Refusal::TooOld(_))), "{replayed:?}");
        assert!(accept(&body("20261122T090000000Z-1a2b3c4d", "s"), now()).is_ok(), "13 days old");
    }

    fn config() -> Config {
        let text = r#"{"output": {"bucket": "bucket", "prefix": "p/"}, "roleName": "Reader", "sources": [
            {"accountId": "111111111111", "clusters": [
                {"region": "eu-west-1", "clusterIdentifier": "sales", "dbUser": "reader"},
                {"region": "eu-central-1", "clusterIdentifier": "mart"}]}]}"#;
        let defaults = DeploymentDefaults { region: Some("us-east-1".into()), ..DeploymentDefaults::default() };
        Config::parse(text, &defaults).unwrap()
    }

    async fn store_with_plan(shards: &[(&str, &str)]) -> MemoryStore {
        let store = MemoryStore::default();
        let plan = serde_json::json!({
            "apiVersion": API_VERSION, "kind": "RunPlan", "runId": RUN, "startedAt": "2026-12-05T09:00:00Z",
            "trigger": "scheduled", "dryRun": false,
            "shards": shards.iter().map(|(account, region)| serde_json::json!(
                {"shardId": format!("{account}-{region}"), "accountId": account, "region": region})).collect::<Vec<_>>()
        });
        store.objects.lock().unwrap().insert(format!("p/runs/{RUN}/plan.json"), plan.to_string().into_bytes());
        store
    }

    async fn resolve(store: &MemoryStore, shard_id: &str) -> Result<AccountPlan, Refusal> {
        let message = accept(&body(RUN, shard_id), now())?;
        let (plan, planned) = planned(store, &config(), &message).await.map_err(|d| match d {
            Delivery::Refused(refusal) => refusal,
            other => panic!("{other:?}"),
        })?;
        plan::shard_plan(&config(), &planned.account_id, &planned.region, None, &plan.scope.clusters)
            .map_err(|why| Refusal::NotConfigured { shard: planned.shard_id, why })
    }

    #[tokio::test]
    async fn a_shard_is_visited_as_the_config_says_and_only_if_its_run_planned_it() {
        let planned = [("111111111111", "eu-west-1"), ("222222222222", "us-east-1"), ("111111111111", "us-east-1")];
        let store = store_with_plan(&planned).await;
        let visit = resolve(&store, "111111111111-eu-west-1").await.unwrap();
        assert_eq!(visit.role_arn, "arn:aws:iam::111111111111:role/Reader");
        let plan::Selection::Named { clusters, .. } = &visit.regions[0].selection else { panic!("{visit:?}") };
        assert_eq!(clusters[0].db_user.as_deref(), Some("reader"), "the login is the config's");

        let not_planned = resolve(&store, "111111111111-eu-central-1").await;
        assert!(matches!(not_planned, Err(Refusal::NotPlanned { .. })), "{not_planned:?}");
        for gone in ["222222222222-us-east-1", "111111111111-us-east-1"] {
            let not_configured = resolve(&store, gone).await;
            assert!(matches!(not_configured, Err(Refusal::NotConfigured { .. })), "{gone}: {not_configured:?}");
        }
        let no_plan = resolve(&MemoryStore::default(), "111111111111-eu-west-1").await;
        assert!(matches!(no_plan, Err(Refusal::NoPlan(_))), "{no_plan:?}");
    }

    /// A delivery of `body`, its `attempt`-th, as Lambda's SQS event source hands it over.
    fn event(body: &str, attempt: u32) -> SqsEvent {
        let mut message = SqsMessage { message_id: Some("m-1".into()), body: Some(body.into()), ..Default::default() };
        message.attributes.insert("ApproximateReceiveCount".into(), attempt.to_string());
        SqsEvent { records: vec![message] }
    }

    fn fresh_body(shard_id: &str) -> String {
        let run = RunId::new().to_string();
        body(&run, shard_id)
    }

    /// A planned shard of a fresh run, its account holding none of the config's clusters.
    async fn delivered(platform: &EmptyAccounts, attempt: u32) -> (MemoryStore, Batch, String) {
        let message = fresh_body("111111111111-eu-west-1");
        let run = accept(&message, OffsetDateTime::now_utc()).unwrap().run_id;
        let store = store_with_plan(&[("111111111111", "eu-west-1")]).await;
        let plan = store.objects.lock().unwrap().remove(&format!("p/runs/{RUN}/plan.json")).unwrap();
        let plan = String::from_utf8(plan).unwrap().replace(RUN, &run);
        store.objects.lock().unwrap().insert(format!("p/runs/{run}/plan.json"), plan.into_bytes());
        store.objects.lock().unwrap().insert(format!("p/runs/open/{run}"), Vec::new());
        let batch = handle(platform, &store, &config(), &event(&message, attempt), None).await;
        (store, batch, run)
    }

    /// A shard that ran to its end is acknowledged, and the last shard's report completes the
    /// run: its summary is written and the run is no longer open.
    #[tokio::test]
    async fn a_shard_run_to_its_end_is_acknowledged_and_summarises_its_run() {
        let (store, batch, run) = delivered(&EmptyAccounts::default(), 1).await;
        assert!(batch.response.batch_item_failures.is_empty() && batch.refused == 0, "{batch:?}");
        assert_eq!(batch.summaries.len(), 1);
        let summary = &batch.summaries[0];
        assert_eq!(summary.run_id, run);
        assert_eq!(summary.accounts[0].regions[0].warehouses[0].state, WarehouseState::Missing, "{summary:#?}");
        assert!(store.objects.lock().unwrap().contains_key(&format!("p/runs/{run}.json")));
        assert!(!store.objects.lock().unwrap().contains_key(&format!("p/runs/open/{run}")));
    }

    /// What a retry can fix (throttling past the SDK's retries) is reported back as a batch
    /// item failure, so SQS redelivers the message; the run stays open meanwhile. Its last
    /// attempt, failed too, goes to the dead-letter queue, and no delivery comes after it: the
    /// run's summary is final, the shard dead-lettered in it.
    #[tokio::test]
    async fn a_transient_failure_is_retried_and_its_last_attempt_still_summarises() {
        let throttled = AwsError::from_code("sts:AssumeRole", Some("Throttling"), "Rate exceeded".into());
        let platform = EmptyAccounts { refusal: Some(throttled) };
        let (store, batch, run) = delivered(&platform, 1).await;
        assert_eq!(batch.response.batch_item_failures[0].item_identifier, "m-1");
        assert!(batch.summaries.is_empty(), "{:?}", batch.summaries);
        assert!(store.objects.lock().unwrap().contains_key(&format!("p/runs/open/{run}")));
        let report: ShardReport = serde_json::from_slice(
            &store.objects.lock().unwrap()[&format!("p/runs/{run}/shards/111111111111-eu-west-1.json")],
        )
        .unwrap();
        assert!(report.retrying && report.attempt == 1, "{report:?}");

        let (store, last, run) = delivered(&platform, config().max_receive_count).await;
        assert_eq!(last.response.batch_item_failures.len(), 1, "still failed: SQS moves it to the dead-letter queue");
        assert_eq!(last.summaries.len(), 1, "final");
        assert_eq!(last.summaries[0].shards[0].state, ShardState::DeadLettered, "{:?}", last.summaries[0].shards);
        assert_eq!(last.summaries[0].status, RunStatus::Failed);
        assert_eq!(written_summary(&store, &run).shards, last.summaries[0].shards);
        assert!(!store.objects.lock().unwrap().contains_key(&format!("p/runs/open/{run}")));
    }

    fn written_summary(store: &MemoryStore, run: &str) -> Report {
        serde_json::from_slice(&store.objects.lock().unwrap()[&format!("p/runs/{run}.json")]).unwrap()
    }

    /// A refusal no retry fixes (a denied role) is acknowledged, and ends its shard: the run's
    /// summary says what could not be read. A message that is no shard is acknowledged too, and
    /// writes nothing.
    #[tokio::test]
    async fn denied_roles_and_junk_are_acknowledged() {
        let denied = AwsError::from_code("sts:AssumeRole", Some("AccessDenied"), "not authorized".into());
        let (store, batch, run) = delivered(&EmptyAccounts { refusal: Some(denied) }, 1).await;
        assert!(batch.response.batch_item_failures.is_empty(), "{batch:?}");
        let summary = &batch.summaries[0];
        assert_eq!(summary.shards[0].state, ShardState::Failed, "{:?}", summary.shards);
        assert_eq!(summary.accounts[0].error.as_ref().unwrap().kind, ErrorKind::AccessDenied);
        assert_eq!(written_summary(&store, &run).shards, summary.shards);

        let store = MemoryStore::default();
        let junk = handle(&EmptyAccounts::default(), &store, &config(), &event("{}", 1), None).await;
        assert_eq!((junk.refused, junk.response.batch_item_failures.len()), (1, 0));
        assert!(store.objects.lock().unwrap().is_empty());
    }

    /// Two organization sources may share a listing role (one per OU, each with its regions
    /// and member role): a shard is run under the source that listed its account.
    #[test]
    fn organization_sources_sharing_a_role_are_told_apart() {
        let text = r#"{"output": {"bucket": "bucket"}, "roleName": "Reader", "sources": [
            {"organization": {"roleArn": "arn:aws:iam::999999999999:role/Lister",
                "organizationalUnits": ["ou-ab12-aaaaaaaa"], "regions": ["eu-west-1"], "roleName": "ReaderA"}},
            {"organization": {"roleArn": "arn:aws:iam::999999999999:role/Lister",
                "organizationalUnits": ["ou-ab12-bbbbbbbb"], "regions": ["us-east-1"], "roleName": "ReaderB"}}]}"#;
        let config = Config::parse(text, &DeploymentDefaults::default()).unwrap();
        let listings: Vec<_> = config
            .organizations()
            .zip(["111111111111", "222222222222"])
            .map(|((source, org), account)| plan::OrganizationAccounts {
                source,
                org,
                accounts: Ok(vec![account.into()]),
            })
            .collect();
        let shards = planned_shards(&plan::plan(&config, &Scope::default(), &listings).unwrap());
        let second = shards.iter().find(|s| s.account_id == "222222222222").unwrap();
        assert_eq!(second.listed_by.as_ref().map(|l| l.source), Some(1), "{shards:?}");
        let visit = plan::shard_plan(&config, "222222222222", "us-east-1", second.listed_by.as_ref(), &BTreeSet::new());
        assert_eq!(visit.unwrap().role_arn, "arn:aws:iam::222222222222:role/ReaderB");

        let as_first = ListedBy { source: 0, ..second.listed_by.clone().unwrap() };
        let refused = plan::shard_plan(&config, "222222222222", "us-east-1", Some(&as_first), &BTreeSet::new());
        assert!(refused.is_err(), "source 0 does not visit us-east-1: {refused:?}");
    }

    /// One attempt of a shard of account 111111111111: its region with one available
    /// warehouse `name`, ended at `ended_at`.
    fn shard_report(region: &str, name: &str, ended_at: &str, attempt: u32, retrying: bool) -> ShardReport {
        let report = serde_json::json!({
            "runId": RUN, "startedAt": "2026-12-05T09:00:00Z", "endedAt": ended_at, "status": "succeeded",
            "trigger": "shard", "dryRun": false, "counts": crate::report::Counts::default(),
            "accounts": [{"accountId": "111111111111", "roleArn": "arn:aws:iam::111111111111:role/Reader",
                "regions": [{"region": region, "mode": "discover", "warehouses": [
                    {"clusterIdentifier": name, "state": "available", "databases": [
                        {"name": "dev", "kind": "local", "datasets": 3}], "publish": []}]}]}]
        });
        let report = serde_json::from_value(report).unwrap();
        ShardReport { shard_id: format!("111111111111-{region}"), attempt, retrying, hint: None, report }
    }

    /// The summary merges what the shards reported: one account of the regions its shards read,
    /// every planned shard with how far it got, the latest end, and the named warehouses no
    /// shard found. Until every shard is final the run is partial.
    #[test]
    fn a_summary_merges_the_shards_and_says_which_are_unfinished() {
        let planned = |region: &str| PlannedShard {
            shard_id: format!("111111111111-{region}"),
            account_id: "111111111111".into(),
            region: region.into(),
            listed_by: None,
        };
        let plan = RunPlan {
            api_version: API_VERSION.into(),
            kind: "RunPlan".into(),
            run_id: RUN.into(),
            started_at: "2026-12-05T09:00:00Z".into(),
            trigger: Trigger::Manual,
            dry_run: false,
            scope: Scope { clusters: ["sales".to_string(), "gone".to_string()].into(), ..Scope::default() },
            shards: ["eu-west-1", "eu-central-1", "us-east-1", "ap-south-1"].map(planned).to_vec(),
            organizations: Vec::new(),
        };
        let reads = vec![
            (planned("eu-west-1"), Some(shard_report("eu-west-1", "sales", "2026-12-05T09:05:00Z", 1, false))),
            (planned("eu-central-1"), Some(shard_report("eu-central-1", "mart", "2026-12-05T09:09:00Z", 2, true))),
            (planned("us-east-1"), Some(shard_report("us-east-1", "ops", "2026-12-05T09:07:00Z", 3, true))),
            (planned("ap-south-1"), None),
        ];
        let summary = merge(&plan, reads, 3);
        let states: Vec<ShardState> = summary.shards.iter().map(|s| s.state).collect();
        let expected = [ShardState::Succeeded, ShardState::Retrying, ShardState::DeadLettered, ShardState::NotFinished];
        assert_eq!(states, expected);
        assert_eq!(summary.accounts.len(), 1, "one account, its regions merged: {summary:?}");
        let regions: Vec<&str> = summary.regions().map(|(_, r)| r.region.as_str()).collect();
        assert_eq!(regions, ["eu-west-1", "eu-central-1", "us-east-1"]);
        assert_eq!(summary.ended_at, "2026-12-05T09:09:00Z");
        assert_eq!(summary.clusters_not_found, ["gone"], "sales was found by its shard");
        assert_eq!((summary.counts.shards, summary.counts.shards_unfinished, summary.counts.datasets), (4, 2, 9));
        assert_eq!(summary.status, RunStatus::Partial);
    }

    #[test]
    fn a_run_planned_into_shards_has_one_per_account_and_region() {
        let config = config();
        let plans = plan::plan(&config, &Scope::default(), &[]).unwrap();
        let ids: Vec<String> = planned_shards(&plans).into_iter().map(|s| s.shard_id).collect();
        assert_eq!(ids, ["111111111111-eu-west-1", "111111111111-eu-central-1"]);
    }
}
