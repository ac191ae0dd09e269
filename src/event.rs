//! Stage 1a: the invocation payload, turned into what this run should do.

use std::collections::BTreeSet;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use serde::Deserialize;
use serde_json::Value;

use crate::names::{is_account_id, is_cluster_identifier, is_region, is_workgroup_name};
use crate::run_id::RunId;

/// What one invocation asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRequest {
    pub trigger: Trigger,
    pub dry_run: bool,
    pub scope: Scope,
    /// When the invocation is cut off (the Lambda deadline); none outside Lambda.
    pub deadline: Option<std::time::Instant>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    #[default]
    Scheduled,
    Manual,
    /// One shard of a fanned-out run.
    Shard,
}

/// A manual run's narrowing; an empty set means "all of them".
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub accounts: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub regions: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub clusters: BTreeSet<String>,
}

impl Scope {
    pub fn is_full(&self) -> bool {
        self.accounts.is_empty() && self.regions.is_empty() && self.clusters.is_empty()
    }
    pub(crate) fn has_account(&self, account: &str) -> bool {
        self.accounts.is_empty() || self.accounts.contains(account)
    }
    pub(crate) fn has_region(&self, region: &str) -> bool {
        self.regions.is_empty() || self.regions.contains(region)
    }
    pub(crate) fn has_cluster(&self, cluster: &str) -> bool {
        self.clusters.is_empty() || self.clusters.contains(cluster)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported event: {problem}. Accepted are an EventBridge scheduled event \
     ({{\"source\": \"aws.events\", \"detail-type\": \"Scheduled Event\", ...}}) for a full run, \
     a manual payload ({{\"dryRun\": bool, \"accounts\": [...], \"regions\": [...], \"clusters\": [...]}}, every key optional), \
     a summary request ({{\"summaryOf\": \"<runId>\"}}), or an SQS event of shards"
)]
pub struct EventError {
    pub problem: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ManualPayload {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    accounts: Vec<String>,
    #[serde(default)]
    regions: Vec<String>,
    #[serde(default)]
    clusters: Vec<String>,
}

/// What one invocation is.
#[derive(Debug, Clone)]
pub enum Invocation {
    /// A run, scheduled or manual.
    Run(RunRequest),
    /// Shards of a fanned-out run, as SQS delivered them.
    Shards(SqsEvent),
    /// The summary of a fanned-out run, built from what its shards wrote: `{"summaryOf": runId}`.
    Summary { run_id: String },
}

/// Reads any payload the function accepts: an SQS event (`Records` from `aws:sqs`), a summary
/// request, or a run (see [`parse`]).
pub fn invocation(payload: &Value) -> Result<Invocation, EventError> {
    let err = |problem: String| EventError { problem };
    if let Some(records) = payload.get("Records") {
        let from_sqs = records.as_array().is_some_and(|r| {
            !r.is_empty() && r.iter().all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
        });
        if !from_sqs {
            return Err(err("Records that are not all from aws:sqs".into()));
        }
        let event: SqsEvent =
            serde_json::from_value(payload.clone()).map_err(|e| err(format!("looks like an SQS event but {e}")))?;
        return Ok(Invocation::Shards(event));
    }
    if let Some(run_id) = payload.get("summaryOf") {
        return match (run_id.as_str(), payload.as_object().map(|o| o.len())) {
            (Some(id), Some(1)) => match RunId::parse_received(id, time::OffsetDateTime::now_utc()) {
                Ok(_) => Ok(Invocation::Summary { run_id: id.to_string() }),
                Err(e) => Err(err(format!("summaryOf: {e}"))),
            },
            _ => Err(err(format!(
                "summaryOf takes a run id alone, like {{\"summaryOf\": \"20261127T070000123Z-1a2b3c4d\"}}; got {payload}"
            ))),
        };
    }
    parse(payload).map(Invocation::Run)
}

/// Reads an invocation payload. An object with `source` or `detail-type` is taken for an
/// EventBridge event; any other object for a manual payload.
pub fn parse(payload: &Value) -> Result<RunRequest, EventError> {
    let err = |problem: String| EventError { problem };
    let Some(object) = payload.as_object() else {
        return Err(err(format!("the payload is {}, not a JSON object", kind_of(payload))));
    };
    if object.contains_key("source") || object.contains_key("detail-type") {
        let event: EventBridgeEvent = serde_json::from_value(payload.clone())
            .map_err(|e| err(format!("looks like an EventBridge event but {e}")))?;
        if event.source != "aws.events" || event.detail_type != "Scheduled Event" {
            return Err(err(format!(
                "EventBridge event with source {:?} and detail-type {:?} is not a scheduled event",
                event.source, event.detail_type
            )));
        }
        return Ok(RunRequest::default());
    }
    let manual: ManualPayload =
        serde_json::from_value(payload.clone()).map_err(|e| err(format!("manual payload: {e}")))?;
    let scope = Scope {
        accounts: checked("accounts", manual.accounts, is_account_id, "a 12-digit account id")?,
        regions: checked("regions", manual.regions, is_region, "a region name like \"us-east-1\"")?,
        clusters: checked(
            "clusters",
            manual.clusters,
            |c| is_cluster_identifier(c) || is_workgroup_name(c),
            "a cluster identifier or workgroup name",
        )?,
    };
    Ok(RunRequest { trigger: Trigger::Manual, dry_run: manual.dry_run, scope, deadline: None })
}

fn checked(
    key: &str,
    values: Vec<String>,
    valid: fn(&str) -> bool,
    what: &str,
) -> Result<BTreeSet<String>, EventError> {
    match values.iter().position(|v| !valid(v)) {
        Some(i) => Err(EventError { problem: format!("manual payload: {key}[{i}] = {:?} is not {what}", values[i]) }),
        None => Ok(values.into_iter().collect()),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
