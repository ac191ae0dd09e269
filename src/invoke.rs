//! Stage 0: what an invocation is and where it goes. A scheduled or manual run is read here (or,
//! with fan-out, planned and sent as shards); an SQS event runs its shards; a summary request
//! folds a fanned-out run's shard reports.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::config::{Config, ConfigError, ConfigSource, DeploymentDefaults};
use crate::error::{AwsError, ErrorKind};
use crate::event::{self, EventError, Invocation, RunRequest};
use crate::plan::ScopeError;
use crate::ports::{ObjectStore, Platform, ShardQueue};
use crate::report::Report;
use crate::run;
use crate::run_id::RunId;
use crate::shard::{self, Batch, Dispatched};

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
    #[error("the shards could not be sent: {0}")]
    Dispatch(AwsError),
    #[error("the run's summary could not be built: {0}")]
    Summary(AwsError),
}

impl InvocationError {
    /// The Lambda `errorType` for this failure.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Event(_) => "InvalidEvent",
            Self::Config(_) | Self::ConfigUnreadable { .. } => "InvalidConfig",
            Self::Scope(_) => "InvalidScope",
            Self::Dispatch(_) => "DispatchFailed",
            Self::Summary(_) => "SummaryFailed",
        }
    }
}

/// Reads the config from where the environment says.
pub(crate) async fn load_config<S: ObjectStore>(
    store: &S,
    source: &ConfigSource,
    defaults: &DeploymentDefaults,
) -> Result<Config, InvocationError> {
    let text = match source {
        ConfigSource::S3 { bucket, key } => read_s3_config(store, bucket, key).await?,
        local => local_config_text(local)?.expect("a local source"),
    };
    Ok(Config::parse(&text, defaults)?)
}

/// The text of a config that needs no AWS call to read (inline or a file); `None` for S3.
pub fn local_config_text(source: &ConfigSource) -> Result<Option<String>, InvocationError> {
    match source {
        ConfigSource::Inline(text) => Ok(Some(text.clone())),
        ConfigSource::File(path) => std::fs::read_to_string(path)
            .map(Some)
            .map_err(|e| InvocationError::ConfigUnreadable { uri: path.clone(), error: e.to_string() }),
        ConfigSource::S3 { .. } => Ok(None),
    }
}

async fn read_s3_config<S: ObjectStore>(store: &S, bucket: &str, key: &str) -> Result<String, InvocationError> {
    let uri = format!("s3://{bucket}/{key}");
    let object = store.get(bucket, key).await.map_err(|e| {
        let error = match e.kind {
            // Without s3:ListBucket on the key, S3 answers a missing key with 403 (GetObject API
            // reference): the template grants ListBucket only under the output prefix.
            ErrorKind::NotFound | ErrorKind::AccessDenied => format!(
                "{e}. No config there yet, or the function may not read it: check it with \
                 `redshift-registry --check-config config.json`, then upload it with `aws s3 cp config.json {uri}` \
                 (the stack's ConfigKey in its OutputBucket; README: The config is missing or invalid)"
            ),
            _ => e.to_string(),
        };
        InvocationError::ConfigUnreadable { uri: uri.clone(), error }
    })?;
    String::from_utf8(object.bytes)
        .map_err(|_| InvocationError::ConfigUnreadable { uri, error: "not UTF-8 text".into() })
}

/// What an invocation returns: a run's report (a summary is one), the planner's receipt, or
/// the batch response of an SQS event.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Response {
    Report(Box<Report>),
    Dispatched(Dispatched),
    Batch(Batch),
}

impl Response {
    pub fn report(&self) -> Option<&Report> {
        match self {
            Self::Report(r) => Some(r),
            _ => None,
        }
    }
}

/// Handles one invocation payload end to end.
pub async fn invoke<P: Platform, S: ObjectStore, Q: ShardQueue>(
    platform: &P,
    store: &S,
    queue: &Q,
    payload: &Value,
    config_source: Result<ConfigSource, ConfigError>,
    defaults: &DeploymentDefaults,
    deadline: Option<Instant>,
) -> Result<Response, InvocationError> {
    let invocation = event::invocation(payload)?;
    let config = load_config(store, &config_source?, defaults).await?;
    match invocation {
        Invocation::Run(request) => {
            let request = RunRequest { deadline, ..request };
            start(platform, store, queue, &config, &request).await
        }
        Invocation::Shards(event) => {
            Ok(Response::Batch(shard::handle(platform, store, &config, &event, deadline).await))
        }
        Invocation::Summary { run_id } => shard::summarise(store, &config, &run_id)
            .await
            .map(|r| Response::Report(Box::new(r)))
            .map_err(InvocationError::Summary),
    }
}

/// A run: read here, or planned and sent as shards with fan-out.
async fn start<P: Platform, S: ObjectStore, Q: ShardQueue>(
    platform: &P,
    store: &S,
    queue: &Q,
    config: &Config,
    request: &RunRequest,
) -> Result<Response, InvocationError> {
    let run_id = RunId::new().to_string();
    let Some(queue_url) = config.execution.fanout_queue() else {
        return Ok(Response::Report(Box::new(run::run(platform, store, config, request, run_id).await?)));
    };
    let (plans, organizations) = run::plan_run(platform, config, &request.scope, &run_id).await?;
    let shards = shard::Shards { queue, queue_url };
    let mut dispatched = shard::dispatch(store, &shards, config, request, run_id, &plans, organizations)
        .await
        .map_err(InvocationError::Dispatch)?;
    dispatched.overdue = shard::summarise_overdue(store, config, OffsetDateTime::now_utc()).await;
    Ok(Response::Dispatched(dispatched))
}

#[cfg(test)]
mod tests {
    //! Where an invocation goes, decided over in-memory ports: accounts with no warehouse, an
    //! object store and a queue.

    use serde_json::json;

    use super::*;
    use crate::testing::{EmptyAccounts, MemoryQueue, MemoryStore};

    const QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/111111111111/shards";

    fn config(execution: Value) -> ConfigSource {
        let config = json!({"output": {"bucket": "bucket", "prefix": "p/"}, "roleName": "Reader",
            "execution": execution,
            "sources": [{"accountId": "111111111111", "regions": ["us-east-1", "eu-west-1"]}]});
        ConfigSource::Inline(config.to_string())
    }

    fn defaults() -> DeploymentDefaults {
        DeploymentDefaults { region: Some("us-east-1".into()), ..DeploymentDefaults::default() }
    }

    async fn invoked(payload: Value, execution: Value, store: &MemoryStore, queue: &MemoryQueue) -> Response {
        let source = Ok(config(execution));
        invoke(&EmptyAccounts::default(), store, queue, &payload, source, &defaults(), None).await.unwrap()
    }

    fn scheduled() -> Value {
        json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
    }

    #[tokio::test]
    async fn a_scheduled_run_is_read_here_in_the_single_mode() {
        let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
        let response = invoked(scheduled(), json!({}), &store, &queue).await;
        let report = response.report().expect("a report");
        assert_eq!(report.accounts[0].regions.len(), 2);
        assert!(store.objects.lock().unwrap().contains_key(&format!("p/runs/{}.json", report.run_id)));
        assert!(queue.sent.lock().unwrap().is_empty());
    }

    /// With fan-out the planner reads nothing: it writes the plan and sends one shard per
    /// (account, region); an SQS event of those shards runs them, and the last summarises.
    #[tokio::test]
    async fn with_fan_out_a_run_is_planned_and_its_shards_are_run_from_the_queue() {
        let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
        let fanout = json!({"mode": "fanout", "queueUrl": QUEUE});
        let Response::Dispatched(dispatched) = invoked(scheduled(), fanout.clone(), &store, &queue).await else {
            panic!("not dispatched")
        };
        assert_eq!(dispatched.shards, 2);
        assert!(store.objects.lock().unwrap().contains_key(&dispatched.plan_key));
        let bodies = queue.sent.lock().unwrap().remove(QUEUE).expect("sent to the config's queue");
        assert_eq!(bodies.len(), 2);

        let records: Vec<Value> =
            bodies.iter().map(|b| json!({"messageId": b, "body": b, "eventSource": "aws:sqs"})).collect();
        let Response::Batch(batch) = invoked(json!({"Records": records}), fanout, &store, &queue).await else {
            panic!("not a batch")
        };
        assert!(batch.response.batch_item_failures.is_empty() && batch.refused == 0, "{batch:?}");
        assert_eq!(batch.summaries.len(), 1, "the second shard completes the run");
        assert_eq!(batch.summaries[0].run_id, dispatched.run_id);
    }

    /// New work stops at the cutoff: a run whose deadline has come starts no account, and its
    /// report says so, so that what remains is read by the next run.
    #[tokio::test]
    async fn a_run_at_its_deadline_starts_nothing_and_says_so() {
        let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
        let source = Ok(config(json!({})));
        let response =
            invoke(&EmptyAccounts::default(), &store, &queue, &scheduled(), source, &defaults(), Some(Instant::now()))
                .await
                .unwrap();
        let report = response.report().expect("a report");
        let error = report.accounts[0].error.as_ref().expect("the account was not started");
        assert_eq!(error.kind, ErrorKind::Deadline);
        assert!(report.accounts[0].regions.is_empty());
    }

    #[tokio::test]
    async fn a_summary_request_folds_what_the_shards_wrote_and_needs_a_plan() {
        let (store, queue) = (MemoryStore::default(), MemoryQueue::default());
        let fanout = json!({"mode": "fanout", "queueUrl": QUEUE});
        let Response::Dispatched(dispatched) = invoked(scheduled(), fanout.clone(), &store, &queue).await else {
            panic!("not dispatched")
        };
        let summary = invoked(json!({"summaryOf": dispatched.run_id}), fanout.clone(), &store, &queue).await;
        let summary = summary.report().expect("a summary");
        assert_eq!((summary.counts.shards, summary.counts.shards_unfinished), (2, 2));

        let unknown = json!({"summaryOf": RunId::new().to_string()});
        let refused =
            invoke(&EmptyAccounts::default(), &store, &queue, &unknown, Ok(config(fanout)), &defaults(), None).await;
        assert!(matches!(refused, Err(InvocationError::Summary(_))), "{refused:?}");
    }
}
