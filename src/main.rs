//! The binary edge: under Lambda it serves the Runtime API; elsewhere it runs one invocation
//! from `--event FILE` (or stdin) and prints the report.
//!
//! Every invocation that produced a report ends with its metrics record (`metrics.rs`): on
//! stdout under Lambda, where CloudWatch Logs extracts it; outside Lambda on stderr, and only
//! with `REGISTRY_EMF=1`, since stdout is the JSON report there.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use anyhow::Context;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use redshift_registry::aws::{self, S3Objects, SqsQueue, StsPlatform};
use redshift_registry::config::{Config, ConfigSource, DeploymentDefaults};
use redshift_registry::environment::Environment;
use redshift_registry::event;
use redshift_registry::invoke::{self, InvocationError, Response};
use redshift_registry::metrics::Emf;
use redshift_registry::report::{self, RunStatus};
use serde_json::Value;

struct Function {
    platform: StsPlatform,
    store: S3Objects,
    queue: SqsQueue,
}

impl Function {
    async fn new(env: &Environment) -> Self {
        let base = aws::load_base_config().await;
        Self {
            platform: StsPlatform::new(base.clone()),
            store: S3Objects::new(&base, env.s3_force_path_style),
            queue: SqsQueue::new(&base),
        }
    }

    async fn invoke(
        &self,
        env: &Environment,
        payload: &Value,
        deadline: Option<Instant>,
    ) -> Result<Response, InvocationError> {
        let source = ConfigSource::of(env);
        let defaults = DeploymentDefaults::from(env);
        invoke::invoke(&self.platform, &self.store, &self.queue, payload, source, &defaults, deadline).await
    }
}

fn init_tracing(env: &Environment) {
    use tracing_subscriber::EnvFilter;
    let level = env.log_level.as_deref().unwrap_or("info").to_lowercase();
    let filter =
        env.rust_log.as_deref().and_then(|f| EnvFilter::try_new(f).ok()).unwrap_or_else(|| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match (env.log_json, env.lambda_runtime) {
        (true, _) => {
            builder.json().flatten_event(true).with_current_span(true).with_span_list(true).with_ansi(false).init()
        }
        (false, true) => builder.without_time().with_ansi(false).init(),
        // Colours only for a person at a terminal: a redirected log stays plain text.
        (false, false) => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn main() -> ExitCode {
    tune_malloc();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("redshift-registry: could not start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// glibc's allocator, set so that the process's memory tracks what it holds:
/// - one arena: with one per thread, what one arena frees another does not reuse, and the
///   commit after a large read grew the process past what the read had freed (12 MB more peak
///   at 20,000 tables); a function that waits on the network needs no more than one;
/// - blocks of 128 KB and more mapped on their own at a fixed threshold: glibc otherwise raises
///   the threshold as large blocks are freed, and later large buffers (result pages, a
///   database's waiting datasets, an index) stay resident after they are freed.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

async fn run() -> ExitCode {
    let env = Environment::read();
    init_tracing(&env);
    let result = if env.lambda_runtime { serve(&env).await } else { once(&env).await };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("redshift-registry: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(env: &Environment) -> anyhow::Result<ExitCode> {
    let function = &Function::new(env).await;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The deadline as an Instant: what is left of it from now. Lambda's is always ahead at
        // the start; local runtimes that send none (cargo lambda watch) give the epoch: no deadline.
        let left = event.context.deadline().duration_since(SystemTime::now()).ok().filter(|d| !d.is_zero());
        match left {
            Some(left) => tracing::info!(seconds_left = left.as_secs_f64(), "invocation started"),
            None => tracing::warn!("invocation started without a deadline; running to the end"),
        }
        // Read per invocation, so that a changed config applies without a redeploy.
        let env = Environment::read();
        let response = function
            .invoke(&env, &event.payload, left.map(|left| Instant::now() + left))
            .await
            .map_err(|e| Diagnostic { error_type: e.error_type().to_string(), error_message: e.to_string() })?;
        // Straight to stdout, not through tracing: no subscriber filter may drop it.
        let emf = Emf::new(&env);
        for record in metrics_records(&emf, &response) {
            if let Err(e) = emf.write(&record, std::io::stdout().lock()) {
                tracing::error!(error = %e, "the metrics record could not be written");
            }
        }
        Ok::<_, Diagnostic>(response)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    Ok(ExitCode::SUCCESS)
}

/// What can be checked without AWS, checked before the SDK loads: its region lookup would
/// otherwise print its warnings before the one line that matters.
fn check_before_aws(payload: &Value, env: &Environment) -> Result<(), InvocationError> {
    event::invocation(payload)?;
    if let Some(text) = invoke::local_config_text(&ConfigSource::of(env)?)? {
        Config::parse(&text, &DeploymentDefaults::from(env))?;
    }
    Ok(())
}

/// `--check-config FILE`: every problem of a config with its JSON path, offline (the bucket
/// and queue URL the stack fills may be left out). Exit 0 when valid, 2 when not.
fn check_config(path: &str, env: &Environment) -> ExitCode {
    let checked = std::fs::read_to_string(path).map_err(|e| vec![format!("{path}: {e}")]).and_then(|text| {
        let defaults = DeploymentDefaults { offline: true, ..DeploymentDefaults::from(env) };
        Config::parse(&text, &defaults)
            .map_err(|e| e.problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect())
    });
    match checked {
        Ok(config) => {
            println!("{path}: valid, {} sources", config.sources.len());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            let noun = if problems.len() == 1 { "problem" } else { "problems" };
            eprintln!("{path}: {} {noun}", problems.len());
            problems.iter().for_each(|p| eprintln!("  {p}"));
            ExitCode::from(2)
        }
    }
}

/// The metrics of an invocation: its run's; with fan-out, those of the run summaries it wrote
/// (a shard that completed its run, a planner that found runs overdue) and its refused messages.
fn metrics_records(emf: &Emf, response: &Response) -> Vec<Value> {
    match response {
        Response::Report(report) => vec![emf.record(report)],
        Response::Batch(batch) => {
            let refusals = (batch.refused > 0).then(|| emf.refusals_record(batch.refused));
            batch.summaries.iter().map(|s| emf.record(s)).chain(refusals).collect()
        }
        Response::Dispatched(dispatched) => dispatched.overdue.iter().map(|s| emf.record(s)).collect(),
    }
}

const USAGE: &str = "usage: redshift-registry [--event FILE]   (the event is read from stdin without --event)
       redshift-registry --check-config FILE   (offline: every problem of a config, exit 2 if any)";

/// One invocation outside Lambda: the JSON report on stdout, a short summary for a person on
/// stderr (and the metrics record after it with `REGISTRY_EMF=1`). Exit 0 when the run
/// completed (succeeded or partial), 1 when it could not run or failed as a whole.
async fn once(env: &Environment) -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let text = match args.as_slice() {
        [] => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading the event from stdin")?;
            s
        }
        [flag, path] if flag == "--event" => {
            std::fs::read_to_string(path).with_context(|| format!("reading the event file {path}"))?
        }
        [flag, path] if flag == "--check-config" => return Ok(check_config(path, env)),
        _ => anyhow::bail!(USAGE),
    };
    let payload: Value = serde_json::from_str(&text).context("the event is not JSON")?;
    check_before_aws(&payload, env)?;
    let response = Function::new(env).await.invoke(env, &payload, None).await?;
    println!("{}", serde_json::to_string_pretty(&response)?);
    let Some(report) = response.report() else { return Ok(ExitCode::SUCCESS) };
    eprint!("{}", report::human_summary(report));
    if env.emf_outside_lambda {
        let emf = Emf::new(env);
        emf.write(&emf.record(report), std::io::stderr().lock())?;
    }
    Ok(if report.status == RunStatus::Failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
