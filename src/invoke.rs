//! Stage 0: what an invocation is and where it goes. A scheduled or manual run is read here (or,
//! with fan-out, planned and sent as shards); an SQS event runs its shards; a summary request
//! folds a fanned-out run's shard reports.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, ConfigError, ConfigSource, DeploymentDefaults, ExecutionMode};
use crate::error::AwsError;
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
        ConfigSource::Inline(text) => text.clone(),
        ConfigSource::File(path) => tokio::fs::read_to_string(path)
            .await
            .map_err(|e| InvocationError::ConfigUnreadable { uri: path.clone(), error: e.to_string() })?,
        ConfigSource::S3 { bucket, key } => {
            let object = store.get(bucket, key).await.map_err(|e| InvocationError::ConfigUnreadable {
                uri: format!("s3://{bucket}/{key}"),
                error: e.to_string(),
            })?;
            String::from_utf8(object.bytes).map_err(|_| InvocationError::ConfigUnreadable {
                uri: format!("s3://{bucket}/{key}"),
                error: "not UTF-8 text".into(),
            })?
        }
    };
    Ok(Config::parse(&text, defaults)?)
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
    if config.execution.mode == ExecutionMode::Single {
        return Ok(Response::Report(Box::new(run::run(platform, store, config, request, run_id).await?)));
    }
    let (plans, organizations) = run::plan_run(platform, config, &request.scope, &run_id).await?;
    let dispatched = shard::dispatch(store, queue, config, request, run_id, &plans, organizations).await;
    dispatched.map(Response::Dispatched).map_err(InvocationError::Dispatch)
}
