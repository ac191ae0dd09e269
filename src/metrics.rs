//! The run's CloudWatch metrics: one Embedded Metric Format (EMF) record per run, built from its
//! [`Report`], written as one JSON line that CloudWatch Logs turns into metrics (no API call).
//!
//! Under Lambda the record goes to stdout, never through `tracing`, so that no subscriber filter
//! drops it. Lambda's own log-level filter (JSON log format, `ApplicationLogLevel`) reads the
//! line's `level` member and takes a line without one as INFO, which a WARN or ERROR setting
//! drops; the record therefore carries `level` set to INFO or, when the function's configured
//! level (`AWS_LAMBDA_LOG_LEVEL`) is more severe, to that level, and an RFC 3339 `timestamp`.
//! See docs/operations.md.

use std::io::Write;

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::environment::Environment;
use crate::report::{Report, RunStatus};

/// The namespace when `REGISTRY_METRICS_NAMESPACE` is unset or empty.
pub const DEFAULT_NAMESPACE: &str = "RedshiftRegistry";
/// The value of the `Function` dimension outside Lambda.
pub(crate) const DEFAULT_FUNCTION: &str = "redshift-registry";

/// One metric of the record: its name, CloudWatch unit and value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    pub value: f64,
}

/// Where the record goes and what it is tagged with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emf {
    pub namespace: String,
    /// The `Function` dimension: the Lambda function's name.
    pub function: String,
    /// The `level` member Lambda's log-level filter reads.
    pub level: &'static str,
}

impl Emf {
    /// From the metrics namespace, function name and log level of the environment.
    pub fn new(env: &Environment) -> Self {
        Self {
            namespace: env.metrics_namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
            function: env.function_name.clone().unwrap_or_else(|| DEFAULT_FUNCTION.into()),
            level: record_level(env.log_level.as_deref()),
        }
    }

    /// The EMF document of one run.
    pub fn record(&self, report: &Report) -> Value {
        let ended = parse_time(&report.ended_at);
        let mut root = self.document(&metrics(report), ended, "run metrics");
        root.insert(
            "timestamp".into(),
            json!(ended.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_else(|| report.ended_at.clone())),
        );
        // Properties: searchable in Logs Insights, not metric dimensions.
        root.insert("RunId".into(), json!(report.run_id));
        root.insert("Status".into(), serde_json::to_value(report.status).unwrap_or(Value::Null));
        root.insert("Trigger".into(), serde_json::to_value(report.trigger).unwrap_or(Value::Null));
        root.insert("DryRun".into(), json!(report.dry_run));
        Value::Object(root)
    }

    /// The EMF document of an SQS batch that refused messages: no run report comes of those.
    pub fn refusals_record(&self, refused: usize) -> Value {
        let now = OffsetDateTime::now_utc();
        let refused = Metric { name: REFUSED_MESSAGES, unit: "Count", value: refused as f64 };
        let mut root = self.document(&[refused], Some(now), "refused messages");
        root.insert("timestamp".into(), json!(now.format(&Rfc3339).unwrap_or_default()));
        Value::Object(root)
    }

    /// The members every record has: level, message, the `_aws` metadata and the metrics.
    fn document(&self, metrics: &[Metric], at: Option<OffsetDateTime>, message: &str) -> Map<String, Value> {
        let timestamp_ms = at.unwrap_or_else(OffsetDateTime::now_utc).unix_timestamp_nanos() / 1_000_000;
        let mut root = Map::new();
        root.insert("level".into(), json!(self.level));
        root.insert("message".into(), json!(message));
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms as i64,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["Function"]],
                    "Metrics": metrics.iter().map(|m| json!({"Name": m.name, "Unit": m.unit})).collect::<Vec<_>>(),
                }],
            }),
        );
        root.insert("Function".into(), json!(self.function));
        for m in metrics {
            root.insert(m.name.into(), number(m.value));
        }
        root
    }

    /// Writes a record and a newline in one write, so that no other output splits it.
    pub fn write(&self, record: &Value, mut out: impl Write) -> std::io::Result<()> {
        let mut line = record.to_string();
        line.push('\n');
        out.write_all(line.as_bytes())?;
        out.flush()
    }
}

/// Shard messages refused (forged, stale or junk): acknowledged, nothing read or written.
pub(crate) const REFUSED_MESSAGES: &str = "RefusedMessages";

/// The values of one run: counts from `report.counts`, the status as 0/1 flags, the duration.
pub fn metrics(report: &Report) -> Vec<Metric> {
    let c = &report.counts;
    let count = |name, value: usize| Metric { name, unit: "Count", value: value as f64 };
    let flag = |name, on: bool| Metric { name, unit: "Count", value: f64::from(u8::from(on)) };
    vec![
        flag("Runs", true),
        flag("RunsNotSucceeded", report.status != RunStatus::Succeeded),
        flag("RunsFailed", report.status == RunStatus::Failed),
        count("AccountsFailed", c.accounts_failed),
        count("RegionsFailed", c.regions_failed),
        count("Warehouses", c.warehouses),
        count("WarehousesFailed", c.warehouses_failed),
        count("WarehousesSkipped", c.warehouses_skipped),
        count("WarehousesMissing", c.warehouses_missing),
        count("Databases", c.databases),
        count("DatabasesFailed", c.databases_failed),
        count("DatasetsRead", c.datasets),
        count("DatasetsWritten", c.datasets_written),
        count("DatasetsUnchanged", c.datasets_unchanged),
        count("DatasetsRemoved", c.datasets_removed),
        count("PublishFailed", c.publish_failed),
        count("PublishSuperseded", c.publish_superseded),
        Metric { name: "Duration", unit: "Seconds", value: duration_seconds(report) },
    ]
}

/// Seconds from `startedAt` to `endedAt`, 0 when either is not RFC 3339.
pub(crate) fn duration_seconds(report: &Report) -> f64 {
    match (parse_time(&report.started_at), parse_time(&report.ended_at)) {
        (Some(start), Some(end)) => ((end - start).as_seconds_f64() * 1000.0).round().max(0.0) / 1000.0,
        _ => 0.0,
    }
}

/// The `level` of the record: INFO, or the configured application log level when that is more
/// severe, so that Lambda's filter keeps the record at every level it can be set to.
pub fn record_level(configured: Option<&str>) -> &'static str {
    match configured.map(|l| l.trim().to_ascii_uppercase()).as_deref() {
        Some("WARN" | "WARNING") => "WARN",
        Some("ERROR") => "ERROR",
        Some("FATAL") => "FATAL",
        _ => "INFO",
    }
}

/// Whole values (the counts) as JSON integers, others (the duration) as they are.
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
        json!(value as i64)
    } else {
        json!(value)
    }
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}
