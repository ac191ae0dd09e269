//! Benchmark: the whole function as a user runs it. The release binary reads, as a child process
//! on a scheduled event, one warehouse with one database of BENCH_SIZES tables (default 2,000,
//! 20,000 and 100,000) × 15 columns, then an organisation of BENCH_ORG warehouses × tables
//! (default 200 × 200: 20 accounts of 10 clusters in us-east-1), and writes every manifest to a
//! new bucket of moto. Each case runs three configurations of the same build:
//!
//! - (a) the default config;
//! - (b) `"dataApi": {"waitTimeSeconds": 0}`: no long polls, short DescribeStatement polls;
//! - (c) `"dataApi": {"resultFormat": "CSV"}` instead of JSON.
//!
//! Each configuration runs twice on a new bucket: the first run writes every manifest; the next,
//! the hourly case of a warehouse that did not change, reads it all again and writes none (moto
//! spends about 3 ms of CPU on each PutObject, which sets the pace of a first run here but not
//! on S3). For both runs the bench prints, side by side, the wall time, the process's peak RSS
//! and CPU time (wait4), the Data API calls (by operation for the first run) and the bytes the
//! emulator sent (its counters, summed over the warehouses; bytes from its `<Operation>Bytes`
//! counters, "n/a" when it keeps none), the manifests the run reports say were written and found
//! unchanged, and moto's and the emulator's CPU time meanwhile; then the ratios b/a and c/a. A
//! configuration the build rejects (a key it does not know yet) is reported as such.
//!
//! `make bench` (starts the local stack, builds the release binary). Knobs, with defaults:
//! BENCH_SIZES=2000,20000,100000 (tables of the one-warehouse cases; empty for none),
//! BENCH_ORG=200x200 (warehouses x tables; 0 for none), BENCH_CONFIGS=a,b,c,
//! BENCH_LATENCY_MS=20 (emulator latency per call), BENCH_STATEMENT_MS=200 (emulator run time
//! per statement), BENCH_SEED_CONCURRENCY=4, BENCH_KEEP=1 keeps the buckets, BENCH_BINARY.
//!
//! Fixtures are built once: the account ids and cluster names are fixed (91000xxxxxxx for a
//! size, 92000000xxxx for the organisation), and a warehouse whose database already holds the
//! expected tables and columns (a count through the emulator's Data API) is reused. The emulator
//! keeps its databases as long as it runs (a restarted emulator drops them). moto's clusters are
//! registered again on every run (kept when they exist).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use aws_config::SdkConfig;
use common::{knob, mib, ChildRun, Function, StackCpu};
use futures::{stream, StreamExt};
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const SIZE_ACCOUNT_BASE: u64 = 910_000_000_000;
const ORG_ACCOUNT_BASE: u64 = 920_000_000_000;
const CLUSTERS_PER_ACCOUNT: usize = 10;
/// varchar(64) columns of a fixture table, beside its `id bigint`.
const VARCHARS: u64 = 14;
/// Tables created per transaction: one transaction of 100,000 tables would pass PostgreSQL's
/// lock table (max_locks_per_transaction).
const TABLES_PER_TRANSACTION: u64 = 1000;

/// A configuration of the function: the `dataApi` object it adds to the config.
struct Variant {
    key: &'static str,
    label: &'static str,
    data_api: Option<Value>,
}

fn variants() -> Vec<Variant> {
    let all = vec![
        Variant { key: "a", label: "(a) default", data_api: None },
        Variant { key: "b", label: "(b) waitTimeSeconds 0", data_api: Some(json!({"waitTimeSeconds": 0})) },
        Variant { key: "c", label: "(c) resultFormat CSV", data_api: Some(json!({"resultFormat": "CSV"})) },
    ];
    let chosen = std::env::var("BENCH_CONFIGS").unwrap_or_else(|_| "a,b,c".into());
    let chosen: Vec<&str> = chosen.split(',').map(str::trim).collect();
    all.into_iter().filter(|v| chosen.contains(&v.key)).collect()
}

/// One case: warehouses (account, cluster) of `tables` tables each.
struct Case {
    slug: String,
    title: String,
    tables: u64,
    warehouses: Vec<(String, String)>,
}

impl Case {
    fn single(tables: u64) -> Self {
        Self {
            slug: format!("t{tables}"),
            title: format!("1 warehouse, 1 database of {} tables x {} columns", thousands(tables), VARCHARS + 1),
            tables,
            warehouses: vec![(format!("{:012}", SIZE_ACCOUNT_BASE + tables), format!("bench-{tables}-tables"))],
        }
    }

    fn organisation(warehouses: usize, tables: u64) -> Self {
        let accounts = warehouses.div_ceil(CLUSTERS_PER_ACCOUNT);
        Self {
            slug: format!("org{warehouses}x{tables}"),
            title: format!(
                "organisation: {warehouses} warehouses ({accounts} accounts x up to {CLUSTERS_PER_ACCOUNT} clusters, \
                 {REGION}) x {} tables x {} columns",
                thousands(tables),
                VARCHARS + 1
            ),
            tables,
            warehouses: (0..warehouses)
                .map(|i| {
                    let account = format!("{:012}", ORG_ACCOUNT_BASE + (i / CLUSTERS_PER_ACCOUNT) as u64);
                    (account, format!("bench-org-{}", i % CLUSTERS_PER_ACCOUNT))
                })
                .collect(),
        }
    }

    fn accounts(&self) -> Vec<&str> {
        let mut accounts: Vec<&str> = self.warehouses.iter().map(|(a, _)| a.as_str()).collect();
        accounts.dedup();
        accounts
    }
}

/// Database `dev` of a fixture warehouse: `tables` tables `public.t_<n>` of an `id bigint` and
/// 14 varchar(64) columns, readable by the reader's IAM user.
fn fixture_sql(tables: u64) -> String {
    let reader = common::READER;
    let columns: Vec<String> = (1..=VARCHARS).map(|c| format!("c{c} varchar(64)")).collect();
    let mut sql = format!(
        r#"DO $$ BEGIN CREATE ROLE "{reader}";
           EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
           ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO "{reader}";"#
    );
    let mut first = 1;
    while first <= tables {
        let last = (first + TABLES_PER_TRANSACTION - 1).min(tables);
        sql.push_str(&format!(
            "BEGIN; DO $$ BEGIN FOR i IN {first}..{last} LOOP \
             EXECUTE format('CREATE TABLE public.t_%s (id bigint NOT NULL, {})', i); END LOOP; END $$; COMMIT;",
            columns.join(", ")
        ));
        first = last + 1;
    }
    sql
}

/// What a fixture warehouse holds: its tables in `public` and their columns.
const FIXTURE_CHECK: &str = "SELECT count(DISTINCT c.oid), count(a.attnum) FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
     WHERE n.nspname = 'public' AND c.relkind = 'r'";

/// Registers the cluster in moto and reuses the emulator's warehouse when it already holds the
/// fixture, else builds it. Why it was built, when it was.
async fn ensure_fixture(
    base: &SdkConfig,
    emulator: &str,
    account: &str,
    cluster: &str,
    tables: u64,
) -> Result<Option<String>, String> {
    common::register_cluster(base, account, REGION, cluster).await?;
    // The check runs without the bench's latency.
    common::set_knobs(emulator, account, cluster, json!({})).await?;
    let expected = vec![tables.to_string(), (tables * (VARCHARS + 1)).to_string()];
    let why = match common::data_api_row(base, emulator, account, cluster, FIXTURE_CHECK).await {
        Ok(found) if found == expected => return Ok(None),
        Ok(found) => format!("{account}/{cluster} has {found:?} tables and columns, not {expected:?}"),
        Err(e) => format!("{account}/{cluster}: {e}"),
    };
    common::create_warehouse(emulator, account, cluster, &fixture_sql(tables)).await?;
    Ok(Some(why))
}

/// The Data API counters of the case's warehouses, summed.
async fn counters(emulator: &str, case: &Case) -> BTreeMap<String, u64> {
    let all: Vec<Result<BTreeMap<String, u64>, String>> = stream::iter(&case.warehouses)
        .map(|(account, cluster)| common::counters(emulator, account, cluster))
        .buffer_unordered(8)
        .collect()
        .await;
    let mut sum = BTreeMap::new();
    for c in all {
        for (k, v) in c.unwrap_or_else(|e| panic!("emulator counters: {e}")) {
            // Not a counter: the most statements at once since the emulator started.
            if k != "maxRunningStatements" {
                *sum.entry(k).or_default() += v;
            }
        }
    }
    sum
}

/// Calls by operation (keys that name an operation) and bytes (keys ending in `Bytes`), or None
/// when the emulator counts no bytes.
fn split_counters(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> (BTreeMap<String, u64>, Option<u64>) {
    let mut calls = BTreeMap::new();
    let mut bytes = None;
    for (k, v) in after {
        let n = v.saturating_sub(before.get(k).copied().unwrap_or(0));
        if k.ends_with("Bytes") {
            *bytes.get_or_insert(0) += n;
        } else if k.starts_with(|c: char| c.is_ascii_uppercase()) && n > 0 {
            calls.insert(k.clone(), n);
        }
    }
    (calls, bytes)
}

/// What one run of the binary did.
struct Figures {
    run: ChildRun,
    /// Why there is no report, or what failed.
    error: Option<String>,
    status: String,
    datasets: u64,
    written: u64,
    unchanged: u64,
    calls: BTreeMap<String, u64>,
    bytes: Option<u64>,
    moto_cpu: Option<f64>,
    emulator_cpu: Option<f64>,
}

/// A configuration's two runs on one new bucket: the first writes every manifest; the next,
/// the hourly case of a warehouse that did not change, reads it all again and writes none.
struct Outcome {
    /// The build refused the config (a key it does not know): why.
    rejected: Option<String>,
    first: Figures,
    next: Option<Figures>,
}

impl Outcome {
    /// Both runs' figures, for the rows of a table.
    fn runs(&self) -> impl Iterator<Item = &Figures> {
        std::iter::once(&self.first).chain(&self.next)
    }
}

struct Bench {
    base: SdkConfig,
    s3: aws_sdk_s3::Client,
    moto: String,
    emulator: String,
    binary: PathBuf,
    dir: PathBuf,
    stamp: u64,
    keep: bool,
}

/// Which of a configuration's two runs.
#[derive(Clone, Copy)]
enum Pass {
    First,
    Next,
}

impl Bench {
    async fn run(&self, case: &Case, v: &Variant) -> Outcome {
        let dir = self.dir.join(format!("{}-{}", case.slug, v.key));
        std::fs::create_dir_all(&dir).unwrap();
        let bucket = format!("rr-bench-{}-{}-{}", self.stamp, case.slug, v.key);
        self.s3.create_bucket().bucket(&bucket).send().await.expect("CreateBucket");
        let sources: Vec<Value> =
            case.accounts().iter().map(|a| json!({"accountId": a, "regions": [REGION]})).collect();
        let mut config = json!({
            "output": {"bucket": bucket, "prefix": "registry/"},
            "roleName": "Reader",
            "sources": sources,
        });
        if let Some(data_api) = &v.data_api {
            config["dataApi"] = data_api.clone();
        }
        let (config_path, event, log) = (dir.join("config.json"), dir.join("event.json"), dir.join("function.log"));
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        std::fs::write(
            &event,
            json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}).to_string(),
        )
        .unwrap();
        let function = Arc::new(Function::new(self.binary.clone(), &self.moto, &self.emulator, &config_path, &log));
        let mut first = self.once(case, &function, &event, &dir, Pass::First).await;
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        let rejected = stderr
            .lines()
            .find(|l| l.contains("invalid config"))
            .filter(|_| first.status == "-")
            .map(|l| l.trim_start_matches("redshift-registry: ").to_string());
        if rejected.is_some() {
            // Not a failure of the run: the build does not know the configuration.
            first.error = None;
        }
        let next = match (&rejected, &first.error) {
            (None, None) => Some(self.once(case, &function, &event, &dir, Pass::Next).await),
            _ => None,
        };
        if !self.keep {
            // moto keeps every object in memory.
            common::delete_bucket(&self.s3, &bucket).await;
        }
        Outcome { rejected, first, next }
    }

    /// One run of the function on the case, its figures, and what it got wrong for `pass`.
    async fn once(&self, case: &Case, function: &Arc<Function>, event: &Path, dir: &Path, pass: Pass) -> Figures {
        let name = match pass {
            Pass::First => "first",
            Pass::Next => "next",
        };
        let stdout = dir.join(format!("report-{name}.json"));
        let before = counters(&self.emulator, case).await;
        let cpu = StackCpu::now();
        let (f, e, out) = (function.clone(), event.to_path_buf(), stdout.clone());
        let run = tokio::task::spawn_blocking(move || f.run(&e, &out)).await.expect("the child ran");
        let cpu_after = StackCpu::now();
        let after = counters(&self.emulator, case).await;
        let (calls, bytes) = split_counters(&before, &after);
        let mut figures = Figures {
            run,
            error: None,
            status: "-".into(),
            datasets: 0,
            written: 0,
            unchanged: 0,
            calls,
            bytes,
            moto_cpu: cpu_after.moto(&cpu),
            emulator_cpu: cpu_after.emulator(&cpu),
        };
        let report: Option<Value> = std::fs::read_to_string(&stdout).ok().and_then(|s| serde_json::from_str(&s).ok());
        let Some(r) = report else {
            figures.error = Some(format!("{name} run: exit {}, no report (see {})", figures.run.exit, dir.display()));
            return figures;
        };
        figures.status = r["status"].as_str().unwrap_or("?").to_string();
        figures.datasets = r["counts"]["datasets"].as_u64().unwrap_or(0);
        let publish = r["accounts"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["regions"].as_array().into_iter().flatten())
            .flat_map(|r| r["warehouses"].as_array().into_iter().flatten())
            .flat_map(|w| w["publish"].as_array().into_iter().flatten())
            .filter(|p| p["output"] == "manifests");
        for p in publish {
            figures.written += p["written"].as_u64().unwrap_or(0);
            figures.unchanged += p["unchanged"].as_u64().unwrap_or(0);
        }
        let all = case.tables * case.warehouses.len() as u64;
        let expected = match pass {
            Pass::First => (all, 0),
            Pass::Next => (0, all),
        };
        if figures.status != "succeeded" || (figures.written, figures.unchanged) != expected {
            figures.error = Some(format!(
                "{name} run: status {}, {} datasets read, {} manifests written and {} unchanged, not {} and {}: see {}",
                figures.status,
                figures.datasets,
                figures.written,
                figures.unchanged,
                expected.0,
                expected.1,
                dir.display()
            ));
        }
        figures
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
        _ => "n/a".into(),
    }
}

/// One row of a case's table: a figure of every run (none for a rejected config), shown by `show`.
fn row(
    name: &str,
    runs: &[(&Variant, &Outcome)],
    value: impl Fn(&Outcome) -> Option<f64>,
    show: impl Fn(f64) -> String,
) {
    let values: Vec<Option<f64>> =
        runs.iter().map(|(_, o)| if o.rejected.is_some() { None } else { value(o) }).collect();
    let of = |key: &str| runs.iter().position(|(v, _)| v.key == key).and_then(|i| values[i]);
    let cells: Vec<String> = values.iter().map(|v| v.map(&show).unwrap_or("n/a".into())).collect();
    println!("| {name} | {} | {} | {} |", cells.join(" | "), ratio(of("a"), of("b")), ratio(of("a"), of("c")));
}

/// One run's figures of a configuration's outcome.
type OfPass = fn(&Outcome) -> Option<&Figures>;

fn print_case(case: &Case, fixture: &str, runs: &[(&Variant, &Outcome)]) {
    println!();
    println!("## {}", case.title);
    println!("fixture: {fixture}");
    println!();
    let labels: Vec<&str> = runs.iter().map(|(v, _)| v.label).collect();
    println!("| figure | {} | b/a | c/a |", labels.join(" | "));
    println!("|---|{}---|---|", "---|".repeat(runs.len()));
    let f = |n: u64| Some(n as f64);
    let secs = |s: f64| format!("{s:.1} s");
    let count = |n: f64| thousands(n as u64);
    let passes: [(&str, OfPass); 2] = [("first run", |o| Some(&o.first)), ("next run", |o| o.next.as_ref())];
    for (pass, of) in passes {
        row(&format!("wall time, {pass}"), runs, |o| Some(of(o)?.run.wall.as_secs_f64()), secs);
    }
    for (pass, of) in passes {
        let rss = |o: &Outcome| f(of(o)?.run.peak_rss_kib);
        row(&format!("peak RSS of the function, {pass}"), runs, rss, |k| format!("{:.1} MiB", mib(k as u64)));
    }
    for (pass, of) in passes {
        let cpu = |o: &Outcome| Some(of(o)?.run.cpu.as_secs_f64());
        row(&format!("CPU of the function (user + system), {pass}"), runs, cpu, |s| format!("{s:.2} s"));
    }
    for (pass, of) in passes {
        row(&format!("Data API calls, {pass}"), runs, |o| f(of(o)?.calls.values().sum()), count);
    }
    let mut operations: Vec<&String> = runs.iter().flat_map(|(_, o)| o.first.calls.keys()).collect();
    operations.sort();
    operations.dedup();
    for op in operations {
        row(&format!("- {op}"), runs, |o| f(o.first.calls.get(op).copied().unwrap_or(0)), count);
    }
    let bytes = |o: &Outcome| o.first.bytes.map(|b| b as f64);
    row("bytes received (emulator `*Bytes`), first run", runs, bytes, |b| format!("{:.1} MiB", b / 1048576.0));
    row("manifests written, first run", runs, |o| f(o.first.written), count);
    row("manifests unchanged, next run", runs, |o| f(o.next.as_ref()?.unchanged), count);
    for (pass, of) in passes {
        row(&format!("moto CPU during the {pass}"), runs, |o| of(o)?.moto_cpu, secs);
        row(&format!("emulator CPU during the {pass}"), runs, |o| of(o)?.emulator_cpu, secs);
    }
    let statuses: Vec<String> = runs
        .iter()
        .map(|(_, o)| match o.rejected {
            Some(_) => "config rejected".into(),
            None => o.runs().map(|r| format!("{} (exit {})", r.status, r.run.exit)).collect::<Vec<_>>().join(", "),
        })
        .collect();
    println!("| run status | {} | | |", statuses.join(" | "));
    for (v, o) in runs {
        if let Some(why) = &o.rejected {
            println!("{}: the build rejects this config (a key it does not know yet?): {why}", v.label);
        }
        for e in o.runs().filter_map(|r| r.error.as_ref()) {
            println!("{}: {e}", v.label);
        }
    }
}

#[tokio::main]
async fn main() {
    let sizes: Vec<u64> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "2000,20000,100000".into())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap_or_else(|_| panic!("BENCH_SIZES: {s:?} is not a number")))
        .collect();
    let org = std::env::var("BENCH_ORG").unwrap_or_else(|_| "200x200".into());
    let org = match org.trim() {
        "" | "0" => None,
        spec => {
            let parsed = spec.split_once('x').and_then(|(w, t)| Some((w.trim().parse().ok()?, t.trim().parse().ok()?)));
            Some(parsed.unwrap_or_else(|| panic!("BENCH_ORG: {spec:?} is not WAREHOUSESxTABLES (or 0)")))
        }
    };
    let (latency, statement) = (knob("BENCH_LATENCY_MS", 20), knob("BENCH_STATEMENT_MS", 200));
    let seed_concurrency = (knob("BENCH_SEED_CONCURRENCY", 4) as usize).max(1);
    let (moto, emulator) = (common::moto_url(), common::emulator_url());
    let stamp = common::unix_seconds();
    let dir = common::repo_root().join(format!("target/bench/{stamp}"));
    std::fs::create_dir_all(&dir).unwrap();
    let base = common::base_config(&moto).await;
    let bench = Bench {
        s3: common::s3_client(&base),
        base,
        moto,
        emulator,
        binary: common::release_binary("BENCH_BINARY"),
        dir,
        stamp,
        keep: std::env::var("BENCH_KEEP").is_ok_and(|v| v == "1"),
    };
    let variants = variants();
    let mut cases: Vec<Case> = sizes.iter().map(|&t| Case::single(t)).collect();
    cases.extend(org.map(|(w, t)| Case::organisation(w, t)));
    println!(
        "make bench: the release binary ({}) on a scheduled event, each case in {} configurations; emulator \
         {latency} ms a call, {statement} ms a statement, 1,000 rows a result page; runs in {}",
        bench.binary.display(),
        variants.len(),
        bench.dir.display()
    );

    let mut summary = Vec::new();
    for case in &cases {
        eprintln!("{}: fixture ...", case.title);
        let started = Instant::now();
        let built: Vec<Result<Option<String>, String>> = stream::iter(&case.warehouses)
            .map(|(account, cluster)| ensure_fixture(&bench.base, &bench.emulator, account, cluster, case.tables))
            .buffer_unordered(seed_concurrency)
            .collect()
            .await;
        if let Some(e) = built.iter().find_map(|r| r.as_ref().err()) {
            panic!("fixture of {}: {e}", case.title);
        }
        let why: Vec<&String> = built.iter().filter_map(|r| r.as_ref().ok()?.as_ref()).collect();
        for w in why.iter().take(3) {
            eprintln!("  built: {w}");
        }
        if why.len() > 3 {
            eprintln!("  built: ... and {} more", why.len() - 3);
        }
        let built = why.len();
        let setup = started.elapsed().as_secs_f64();
        let short = match built {
            0 => format!("reused, {setup:.1} s"),
            n => format!("{n} built, {setup:.1} s"),
        };
        let fixture = match built {
            0 => format!("reused ({} warehouses checked in {setup:.1} s)", case.warehouses.len()),
            n => format!(
                "{n} of {} warehouses built, in {setup:.1} s (not a figure of the product)",
                case.warehouses.len()
            ),
        };
        eprintln!("  {fixture}");
        for (account, cluster) in &case.warehouses {
            let knobs = json!({"latencyMs": latency, "statementMs": statement});
            common::set_knobs(&bench.emulator, account, cluster, knobs).await.expect("emulator knobs");
        }

        let mut outcomes = Vec::new();
        for v in &variants {
            eprintln!("  {} ...", v.label);
            let o = bench.run(case, v).await;
            if let Some(why) = &o.rejected {
                eprintln!("  {}: config rejected: {why}", v.label);
            }
            for (pass, r) in ["first", "next"].into_iter().zip(o.runs()) {
                let what = r.error.clone().unwrap_or_else(|| {
                    format!("{} manifests written, {} unchanged", thousands(r.written), thousands(r.unchanged))
                });
                let (wall, rss) = (r.run.wall.as_secs_f64(), mib(r.run.peak_rss_kib));
                eprintln!("  {} {pass} run: {wall:.1} s, peak RSS {rss:.1} MiB; {what}", v.label);
            }
            let rss = |s| common::rss_mib(s).map(|m| format!("{m:.0} MiB")).unwrap_or("?".into());
            eprintln!("  stack RSS after it: moto {}, emulator {}", rss("moto"), rss("emulator"));
            outcomes.push(o);
        }
        let runs: Vec<(&Variant, &Outcome)> = variants.iter().zip(&outcomes).collect();
        print_case(case, &fixture, &runs);
        summary.push((case, short, outcomes));
    }

    if summary.len() > 1 {
        println!();
        println!("## summary");
        println!();
        println!(
            "| case | fixture | (a) first run | (a) next run | (a) peak RSS | (a) calls | b/a wall | b/a calls | c/a bytes \
             | c/a wall |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for (case, fixture, outcomes) in &summary {
            let get = |key: &str, f: &dyn Fn(&Outcome) -> Option<f64>| {
                let o = &outcomes[variants.iter().position(|v| v.key == key)?];
                o.rejected.is_none().then(|| f(o)).flatten()
            };
            let wall = |o: &Outcome| Some(o.first.run.wall.as_secs_f64());
            let next = |o: &Outcome| Some(o.next.as_ref()?.run.wall.as_secs_f64());
            let calls = |o: &Outcome| Some(o.first.calls.values().sum::<u64>() as f64);
            let bytes = |o: &Outcome| o.first.bytes.map(|b| b as f64);
            let rss = |o: &Outcome| o.runs().map(|r| mib(r.run.peak_rss_kib)).reduce(f64::max);
            let secs = |s: Option<f64>| s.map(|s| format!("{s:.1} s")).unwrap_or("n/a".into());
            println!(
                "| {} | {fixture} | {} | {} | {} | {} | {} | {} | {} | {} |",
                case.slug,
                secs(get("a", &wall)),
                secs(get("a", &next)),
                get("a", &rss).map(|m| format!("{m:.1} MiB")).unwrap_or("n/a".into()),
                get("a", &calls).map(|n| thousands(n as u64)).unwrap_or("n/a".into()),
                ratio(get("a", &wall), get("b", &wall)),
                ratio(get("a", &calls), get("b", &calls)),
                ratio(get("a", &bytes), get("c", &bytes)),
                ratio(get("a", &wall), get("c", &wall)),
            );
        }
    }
}
