//! Benchmark: read one warehouse of many tables through the real Data API adapter and the
//! emulator, then build and hash every manifest. Prints wall time, Data API calls by operation,
//! and the process's peak memory.
//!
//! `make bench` (starts the local stack). Knobs: BENCH_TABLES (default 5000), BENCH_COLUMNS
//! (default 12), BENCH_LATENCY_MS (emulator latency per call, default 20, roughly a real API
//! round trip), BENCH_STATEMENT_MS (emulator run time per statement, default 200).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use redshift_registry::aws::RedshiftData;
use redshift_registry::catalog::{WarehouseCatalog, WarehouseId};
use redshift_registry::manifest;
use redshift_registry::ports::{DbAuth, Target};
use redshift_registry::read::{read_warehouse, DatabaseOutcome, ReadOptions};
use serde_json::json;
use support::*;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

#[tokio::main]
async fn main() {
    let (tables, columns) = (knob("BENCH_TABLES", 5000), knob("BENCH_COLUMNS", 12));
    let (latency, statement) = (knob("BENCH_LATENCY_MS", 20), knob("BENCH_STATEMENT_MS", 200));
    let cluster = format!("bench-{tables}x{columns}");
    let column_list: Vec<String> = (1..=columns).map(|c| format!("c{c} varchar(64)")).collect();
    let sql = format!(
        r#"DO $$ BEGIN CREATE ROLE "IAMR:DataRegistryRedshiftReader";
           EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
           DO $$ BEGIN FOR i IN 1..{tables} LOOP
             EXECUTE format('CREATE TABLE public.t_%s (id bigint NOT NULL, {cols})', i);
           END LOOP; END $$;
           GRANT SELECT ON ALL TABLES IN SCHEMA public TO "IAMR:DataRegistryRedshiftReader";"#,
        cols = column_list.join(", ")
    );
    let setup = Instant::now();
    create_warehouse(FUNCTION_ACCOUNT, &cluster, &[("dev", &sql)]).await;
    set_knobs(FUNCTION_ACCOUNT, &cluster, json!({"latencyMs": latency, "statementMs": statement})).await;
    eprintln!("fixture: {tables} tables x {} columns in {:.1} s", columns + 1, setup.elapsed().as_secs_f64());

    let base = function_config(&moto_url()).await;
    let api = RedshiftData::new(&base);
    let options = ReadOptions::from_config(&config(json!({
        "output": {"bucket": "bench-bucket"}, "roleName": "R",
        "sources": [{"accountId": "111111111111", "regions": ["us-east-1"]}]
    })));
    let target = Target { warehouse: WarehouseId::ClusterIdentifier(cluster.clone()), auth: DbAuth::Iam };

    let started = Instant::now();
    let outcomes = read_warehouse(&api, &target, "dev", &options).await.expect("databases listed");
    let read_secs = started.elapsed().as_secs_f64();
    let databases: Vec<_> = outcomes
        .into_iter()
        .map(|o| match o {
            DatabaseOutcome::Read(db) => db,
            DatabaseOutcome::Failed { name, error, .. } => panic!("{name}: {error}"),
        })
        .collect();
    let datasets: usize = databases.iter().map(|d| d.datasets.len()).sum();
    assert_eq!(datasets as u64, tables, "every table read");

    let catalog = WarehouseCatalog {
        account_id: "111111111111".into(),
        region: "us-east-1".into(),
        warehouse: target.warehouse.clone(),
        labels: Default::default(),
        databases,
        unread_databases: vec![],
    };
    let started = Instant::now();
    let mut bytes = 0;
    for db in &catalog.databases {
        for d in &db.datasets {
            let m = manifest::build(&catalog, db, d).to_bytes();
            bytes += m.len();
            std::hint::black_box(redshift_registry::publish::sha256_hex(&m));
        }
    }
    let build_secs = started.elapsed().as_secs_f64();

    let calls = counters(FUNCTION_ACCOUNT, &cluster).await;
    println!(
        "read_warehouse: {tables} tables x {} columns, emulator latency {latency} ms/call, {statement} ms/statement",
        columns + 1
    );
    println!("  read            {read_secs:>8.2} s  ({:.0} tables/s)", tables as f64 / read_secs);
    println!("  build + hash    {build_secs:>8.3} s  ({datasets} manifests, {:.1} MiB)", bytes as f64 / 1048576.0);
    println!("  peak RSS        {:>8.1} MiB", peak_rss_mib());
    for (op, n) in &calls {
        println!("  {op:<24}{n:>6}");
    }
}
