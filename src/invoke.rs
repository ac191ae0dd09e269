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
pub async fn load_config<S: ObjectStore>(
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
