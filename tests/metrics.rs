//! The run's metrics record (CloudWatch Embedded Metric Format) and the CLI's human summary,
//! from the report of a real dry run over the local stack: the record is valid against the EMF
//! specification's JSON schema (tests/data/emf-schema.json), carries the report's counts, and is
//! tagged so that Lambda's log-level filter keeps it at every level.

mod support;

use redshift_registry::environment::Environment;
use redshift_registry::event;
use redshift_registry::metrics::{self, Emf, DEFAULT_NAMESPACE};
use redshift_registry::report::{self, Counts, Report, RunStatus};
use serde_json::{json, Value};
use support::*;

const READER_TABLE: &str = r#"DO $$ BEGIN CREATE ROLE "IAMR:DataRegistryRedshiftReader";
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
CREATE SCHEMA sales;
CREATE TABLE sales.orders (id integer NOT NULL, amount numeric(18,2));
CREATE TABLE sales.refunds (id integer NOT NULL);
GRANT USAGE ON SCHEMA sales TO "IAMR:DataRegistryRedshiftReader";
GRANT SELECT ON ALL TABLES IN SCHEMA sales TO "IAMR:DataRegistryRedshiftReader";
"#;

/// A dry run, in an account of the test's own, over one cluster with two tables and one named
/// cluster that does not exist: `partial`, with a failure and its hint.
async fn partial_dry_run(test: &str) -> (Report, String, String) {
    let moto = moto_url();
    let acct = account_id(test, 1);
    let bucket = bucket_name(test);
    ensure_bucket(&moto, &bucket).await;
    let (cluster, ghost) = (unique("metrics"), unique("ghost"));
    create_cluster(
        &moto,
        &acct,
        "us-east-1",
        ClusterSeed { id: &cluster, node_type: "ra3.xlplus", db_name: "dev", tags: &[] },
    )
    .await;
    create_warehouse(&acct, &cluster, &[("dev", READER_TABLE)]).await;
    let cfg = config(json!({
        "output": {"bucket": bucket, "prefix": "registry/"},
        "roleName": "DataRegistryRedshiftReader",
        "sources": [{"accountId": acct, "clusters": [
            {"region": "us-east-1", "clusterIdentifier": cluster},
            {"region": "us-east-1", "clusterIdentifier": ghost}]}]
    }));
    let request = event::parse(&json!({"dryRun": true})).expect("a manual dry run");
    let report = run_against(&moto, &cfg, &request).await;
    assert_eq!(report.status, RunStatus::Partial, "{report:#?}");
    assert_eq!(report.counts.datasets, 2, "{report:#?}");
    assert_eq!(report.counts.warehouses_missing, 1, "{report:#?}");
    (report, acct, ghost)
}

fn emf_schema() -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("tests/data/emf-schema.json")).unwrap())
            .unwrap();
    // The specification's schema is draft-07 (its `$id`s are JSON-pointer fragments).
    jsonschema::draft7::new(&schema).expect("the EMF schema compiles")
}

/// The schema's checks, plus the specification's rules it does not express: every metric is a
/// root member holding a number, every dimension a root member holding a string, at most 100
/// metrics per directive.
fn assert_valid_emf(record: &Value) {
    let errors: Vec<String> = emf_schema().iter_errors(record).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:?}\n{record:#}");
    for directive in record["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
        let metrics = directive["Metrics"].as_array().unwrap();
        assert!(!metrics.is_empty() && metrics.len() <= 100);
        for m in metrics {
            let name = m["Name"].as_str().unwrap();
            assert!(record[name].is_number(), "metric {name} is not a numeric root member");
        }
        for set in directive["Dimensions"].as_array().unwrap() {
            for key in set.as_array().unwrap() {
                let key = key.as_str().unwrap();
                assert!(record[key].is_string(), "dimension {key} is not a string root member");
            }
        }
    }
}

fn epoch_ms(rfc3339: &str) -> i64 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn emf(level: &'static str) -> Emf {
    Emf { namespace: DEFAULT_NAMESPACE.into(), function: "registry-fn".into(), level }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_record_is_valid_emf_and_carries_the_reports_counts() {
    let (report, _, _) = partial_dry_run("metrics_record").await;
    let line = emf("INFO").record(&report).to_string();
    assert!(!line.contains('\n'), "one line");
    let record: Value = serde_json::from_str(&line).unwrap();
    assert_valid_emf(&record);

    // The schema does reject what the specification forbids.
    let schema = emf_schema();
    let mut bad = record.clone();
    bad["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("Widgets");
    assert!(!schema.is_valid(&bad));
    let mut bad = record.clone();
    bad["_aws"].as_object_mut().unwrap().remove("Timestamp");
    assert!(!schema.is_valid(&bad));

    let directive = &record["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "RedshiftRegistry");
    assert_eq!(directive["Dimensions"], json!([["Function"]]));
    assert_eq!(record["Function"], "registry-fn");
    assert_eq!(record["_aws"]["Timestamp"], json!(epoch_ms(&report.ended_at)));
    assert_eq!(record["RunId"], json!(report.run_id));
    assert_eq!(record["Status"], "partial");
    assert_eq!(record["Trigger"], "manual");
    assert_eq!(record["DryRun"], true);
    // Partial: not succeeded, not failed.
    assert_eq!(record["Runs"], json!(1));
    assert_eq!(record["RunsNotSucceeded"], json!(1));
    assert_eq!(record["RunsFailed"], json!(0));
    assert_eq!(record["DatasetsRead"], json!(2));
    assert_eq!(record["WarehousesMissing"], json!(1));
    let duration = (epoch_ms(&report.ended_at) - epoch_ms(&report.started_at)) as f64 / 1000.0;
    assert!((record["Duration"].as_f64().unwrap() - duration).abs() < 0.002, "{record}");
    let units: Vec<(&str, &str)> = directive["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["Name"].as_str().unwrap(), m["Unit"].as_str().unwrap()))
        .collect();
    assert!(units.contains(&("Duration", "Seconds")) && units.contains(&("DatasetsWritten", "Count")), "{units:?}");

    // Every count goes to its own metric: distinct values, each found where it belongs.
    let mut varied = report.clone();
    varied.counts = Counts {
        accounts_failed: 3,
        regions_failed: 5,
        warehouses: 7,
        warehouses_failed: 11,
        warehouses_skipped: 13,
        warehouses_missing: 17,
        databases: 19,
        databases_failed: 23,
        datasets: 29,
        datasets_written: 31,
        datasets_unchanged: 37,
        datasets_removed: 41,
        publish_failed: 43,
        publish_superseded: 47,
        ..Counts::default()
    };
    varied.status = RunStatus::Failed;
    let record: Value = serde_json::from_str(&emf("INFO").record(&varied).to_string()).unwrap();
    assert_valid_emf(&record);
    let c = &varied.counts;
    for (name, value) in [
        ("AccountsFailed", c.accounts_failed),
        ("RegionsFailed", c.regions_failed),
        ("Warehouses", c.warehouses),
        ("WarehousesFailed", c.warehouses_failed),
        ("WarehousesSkipped", c.warehouses_skipped),
        ("WarehousesMissing", c.warehouses_missing),
        ("Databases", c.databases),
        ("DatabasesFailed", c.databases_failed),
        ("DatasetsRead", c.datasets),
        ("DatasetsWritten", c.datasets_written),
        ("DatasetsUnchanged", c.datasets_unchanged),
        ("DatasetsRemoved", c.datasets_removed),
        ("PublishFailed", c.publish_failed),
        ("PublishSuperseded", c.publish_superseded),
        ("RunsNotSucceeded", 1),
        ("RunsFailed", 1),
    ] {
        assert_eq!(record[name].as_f64(), Some(value as f64), "{name} in {record}");
    }
    assert_eq!(record["Status"], "failed");

    // A succeeded run counts no failure.
    varied.status = RunStatus::Succeeded;
    let record: Value = serde_json::from_str(&emf("INFO").record(&varied).to_string()).unwrap();
    assert_eq!((record["RunsNotSucceeded"].as_f64(), record["RunsFailed"].as_f64()), (Some(0.0), Some(0.0)));
}

/// Lambda takes a JSON line without a valid `level` as INFO and drops it below the configured
/// application log level (Lambda developer guide, "Log-level filtering"): the record's level is
/// never below the configured one, whatever it is.
#[test]
fn the_metrics_record_survives_lambdas_log_level_filter_at_every_level() {
    const ORDER: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let rank = |level: &str| ORDER.iter().position(|l| l.eq_ignore_ascii_case(level)).unwrap();
    for configured in ORDER {
        for spelled in [configured.to_string(), configured.to_lowercase()] {
            let level = metrics::record_level(Some(&spelled));
            assert!(rank(level) >= rank(configured), "{configured}: tagged {level}");
            assert!(rank(level) >= rank("INFO"), "{configured}: tagged {level}, below INFO");
        }
    }
    assert_eq!(metrics::record_level(None), "INFO");
    assert_eq!(metrics::record_level(Some("WARN")), "WARN");
    assert_eq!(metrics::record_level(Some("debug")), "INFO");
}

#[test]
fn namespace_function_and_level_come_from_the_environment() {
    // nextest runs each test in a process of its own.
    std::env::set_var("REGISTRY_METRICS_NAMESPACE", "Data/Registry");
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "registry-prod");
    std::env::set_var("AWS_LAMBDA_LOG_LEVEL", "warn");
    assert_eq!(
        Emf::new(&Environment::read()),
        Emf { namespace: "Data/Registry".into(), function: "registry-prod".into(), level: "WARN" }
    );
    std::env::set_var("REGISTRY_METRICS_NAMESPACE", "");
    std::env::remove_var("AWS_LAMBDA_FUNCTION_NAME");
    std::env::remove_var("AWS_LAMBDA_LOG_LEVEL");
    assert_eq!(
        Emf::new(&Environment::read()),
        Emf { namespace: "RedshiftRegistry".into(), function: "redshift-registry".into(), level: "INFO" }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_record_has_lambdas_level_and_timestamp_fields() {
    let (report, _, _) = partial_dry_run("metrics_level").await;
    let record: Value = serde_json::from_str(&emf("WARN").record(&report).to_string()).unwrap();
    assert_valid_emf(&record);
    assert_eq!(record["level"], "WARN");
    // Lambda uses `timestamp` only when it is RFC 3339; it is the run's end.
    assert_eq!(epoch_ms(record["timestamp"].as_str().unwrap()), epoch_ms(&report.ended_at));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_human_summary_names_each_account_and_region_and_every_failure_with_its_hint() {
    let (report, acct, ghost) = partial_dry_run("metrics_summary").await;
    let summary = report::human_summary(&report);
    assert!(summary.starts_with(&format!("run {}: partial (dry run", report.run_id)), "{summary}");
    assert!(
        summary.contains(&format!("account {acct} us-east-1: 2 warehouses, 2 datasets, 2 would write")),
        "{summary}"
    );
    assert!(summary.contains("1 failure:"), "{summary}");
    assert!(summary.contains(&format!("account {acct} us-east-1 cluster {ghost}: missing")), "{summary}");
    assert!(summary.contains("    hint: named in the config but account"), "{summary}");
    assert!(!summary.contains('\x1b'), "{summary}");
}

/// A run without failures that could not see everything says so: the human summary lists each
/// database's notes and the GRANTs that fix them, and says "no failures" only with the rest.
#[tokio::test(flavor = "multi_thread")]
async fn the_human_summary_lists_what_the_reader_could_not_see_with_its_grants() {
    let moto = moto_url();
    let acct = account_id("metrics_unseen", 1);
    let bucket = bucket_name("metrics_unseen");
    ensure_bucket(&moto, &bucket).await;
    let cluster = unique("unseen");
    let seed = ClusterSeed { id: &cluster, node_type: "ra3.xlplus", db_name: "dev", tags: &[] };
    create_cluster(&moto, &acct, "us-east-1", seed).await;
    let hidden = format!("{READER_TABLE} CREATE SCHEMA \"fin;ance\"; CREATE TABLE \"fin;ance\".ledger (id int);");
    create_warehouse(&acct, &cluster, &[("dev", &hidden)]).await;
    let cfg = config(json!({
        "output": {"bucket": bucket, "prefix": "registry/"},
        "roleName": "DataRegistryRedshiftReader",
        "sources": [{"accountId": acct, "clusters": [{"region": "us-east-1", "clusterIdentifier": cluster}]}]
    }));
    let report = run_against(&moto, &cfg, &event::parse(&json!({"dryRun": true})).unwrap()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    let summary = report::human_summary(&report);
    assert!(summary.contains(&format!("account {acct} us-east-1 cluster {cluster}, database dev:")), "{summary}");
    assert!(
        summary.contains("to fix, as a superuser in that database (README: Schemas hidden from the reader):"),
        "{summary}"
    );
    assert!(
        summary.contains("      GRANT USAGE ON SCHEMA \"fin;ance\" TO \"IAMR:DataRegistryRedshiftReader\";\n"),
        "a quoted ; stays in its statement: {summary}"
    );
    assert!(summary.contains("no failures, but the notes above say what the registry is missing"), "{summary}");
}
