//! Benchmark: fan-out at organisation scale. Simulates ORG_BENCH_ACCOUNTS accounts x
//! ORG_BENCH_REGIONS regions in moto (which accepts any account id), a small warehouse in the
//! first region of every ORG_BENCH_WAREHOUSE_EVERY-th account, then runs the release binary as
//! Lambda would: the planner once (scheduled event), then ORG_BENCH_WORKERS local workers, each
//! a stand-in for the event source mapping (receive one message, run the binary on it as an SQS
//! event, delete it unless it comes back as a batch item failure). Every invocation is a child
//! process whose peak RSS is read with wait4 (ru_maxrss).
//!
//! `make bench-org` (starts the local stack, builds the release binary). Knobs, with defaults:
//! ORG_BENCH_ACCOUNTS=1000, ORG_BENCH_REGIONS=4 (1-8), ORG_BENCH_WORKERS=4,
//! ORG_BENCH_WAREHOUSE_EVERY=10, ORG_BENCH_TABLES=10 (tables per warehouse),
//! ORG_BENCH_SEED_CONCURRENCY=4, ORG_BENCH_MAX_SECONDS=1800 (worker phase), ORG_BENCH_MAX_MESSAGES
//! (3 x shards + 100), ORG_BENCH_KEEP=1 keeps the bucket and queue for inspection.
//!
//! Account ids are fixed (9000000xxxxx), so a rerun replaces the same warehouses in the
//! emulator instead of piling up PostgreSQL databases; the bucket and queue are new each run.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use common::{emulator_url, knob, mib, moto_url, repo_root, seed_warehouse, ChildRun, Function, StackCpu, READER};
use futures::{stream, StreamExt};
use serde_json::{json, Value};

const REGIONS: [&str; 8] = [
    "us-east-1",
    "eu-west-1",
    "us-west-2",
    "ap-southeast-2",
    "eu-central-1",
    "us-east-2",
    "ap-northeast-1",
    "ca-central-1",
];
const ACCOUNT_BASE: u64 = 900_000_000_000;

fn fixture(tables: u64) -> String {
    let mut sql = format!(
        r#"DO $$ BEGIN CREATE ROLE "{READER}";
           EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
           CREATE SCHEMA sales;"#
    );
    for t in 1..=tables {
        sql.push_str(&format!(
            "CREATE TABLE sales.t{t} (id bigint NOT NULL, name varchar(64), amount numeric(12,2), at timestamp);"
        ));
    }
    sql.push_str(&format!(
        r#"GRANT USAGE ON SCHEMA sales TO "{READER}"; GRANT SELECT ON ALL TABLES IN SCHEMA sales TO "{READER}";"#
    ));
    sql
}

/// One delivery of one message to the binary.
struct Delivery {
    run: ChildRun,
    failed: bool,
}

struct Workers {
    sqs: aws_sdk_sqs::Client,
    queue: String,
    function: Function,
    dir: PathBuf,
    in_flight: AtomicUsize,
    received: AtomicUsize,
    max_messages: usize,
    until: Instant,
    deliveries: Mutex<Vec<Delivery>>,
    errors: Mutex<Vec<String>>,
}

async fn worker(n: usize, w: Arc<Workers>) {
    let (event_path, stdout_path) = (w.dir.join(format!("worker-{n}.json")), w.dir.join(format!("worker-{n}.out")));
    let mut idle = 0;
    while Instant::now() < w.until && w.received.load(Ordering::SeqCst) < w.max_messages {
        let out = w
            .sqs
            .receive_message()
            .queue_url(&w.queue)
            .max_number_of_messages(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        let message = match out {
            Ok(out) => out.messages().first().cloned(),
            Err(e) => {
                w.errors.lock().unwrap().push(format!("ReceiveMessage: {e:?}"));
                tokio::time::sleep(Duration::from_millis(500)).await;
                None
            }
        };
        let Some(message) = message else {
            // Empty: done once nothing is in flight either (a failed shard comes back at once).
            if w.in_flight.load(Ordering::SeqCst) == 0 {
                idle += 1;
                if idle >= 3 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        idle = 0;
        w.in_flight.fetch_add(1, Ordering::SeqCst);
        w.received.fetch_add(1, Ordering::SeqCst);
        let attributes: serde_json::Map<String, Value> = message
            .attributes()
            .map(|a| a.iter().map(|(k, v)| (k.as_str().to_string(), json!(v))).collect())
            .unwrap_or_default();
        let event = json!({"Records": [{
            "messageId": message.message_id(), "receiptHandle": message.receipt_handle(), "body": message.body(),
            "attributes": attributes, "messageAttributes": {}, "md5OfBody": message.md5_of_body(),
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench-org", "awsRegion": "us-east-1"
        }]});
        std::fs::write(&event_path, event.to_string()).expect("event file");
        let run = {
            let (w, e, o) = (w.clone(), event_path.clone(), stdout_path.clone());
            tokio::task::spawn_blocking(move || w.function.run(&e, &o)).await.expect("the child ran")
        };
        let response: Option<Value> =
            std::fs::read_to_string(&stdout_path).ok().and_then(|s| serde_json::from_str(&s).ok());
        let failures = response.as_ref().and_then(|r| r["batchItemFailures"].as_array().map(Vec::len));
        let failed = run.exit != 0 || failures != Some(0);
        if failed {
            let body: String = message.body().unwrap_or_default().chars().take(120).collect();
            w.errors.lock().unwrap().push(format!("exit {} response {response:?} for {body}", run.exit));
        }
        let handle = message.receipt_handle().unwrap_or_default();
        let done = if failed {
            // Lambda would wait out the visibility timeout; here it is handed back at once.
            w.sqs
                .change_message_visibility()
                .queue_url(&w.queue)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await
                .err()
                .map(|e| format!("ChangeMessageVisibility: {e:?}"))
        } else {
            let deleted = w.sqs.delete_message().queue_url(&w.queue).receipt_handle(handle).send().await;
            deleted.err().map(|e| format!("DeleteMessage: {e:?}"))
        };
        if let Some(e) = done {
            w.errors.lock().unwrap().push(e);
        }
        w.deliveries.lock().unwrap().push(Delivery { run, failed });
        w.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("GetQueueAttributes");
    let a = out.attributes().cloned().unwrap_or_default();
    let n = |k| a.get(&k).and_then(|v: &String| v.parse().ok()).unwrap_or(0);
    (n(QueueAttributeName::ApproximateNumberOfMessages), n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
}

fn percentile<T: Copy + Ord>(sorted: &[T], p: f64) -> Option<T> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}

/// Mean milliseconds per call of `n` sequential calls.
async fn per_call<F: std::future::Future<Output = ()>>(n: u32, mut call: impl FnMut(u32) -> F) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        call(i).await;
    }
    started.elapsed().as_secs_f64() * 1000.0 / f64::from(n)
}

#[tokio::main]
async fn main() {
    let accounts = knob("ORG_BENCH_ACCOUNTS", 1000) as usize;
    let regions = (knob("ORG_BENCH_REGIONS", 4) as usize).clamp(1, REGIONS.len());
    let workers = (knob("ORG_BENCH_WORKERS", 4) as usize).max(1);
    let every = (knob("ORG_BENCH_WAREHOUSE_EVERY", 10) as usize).max(1);
    let tables = knob("ORG_BENCH_TABLES", 10);
    let seed_concurrency = (knob("ORG_BENCH_SEED_CONCURRENCY", 4) as usize).max(1);
    let max_seconds = knob("ORG_BENCH_MAX_SECONDS", 1800);
    let max_messages = knob("ORG_BENCH_MAX_MESSAGES", (accounts * regions * 3 + 100) as u64) as usize;
    let keep = std::env::var("ORG_BENCH_KEEP").is_ok_and(|v| v == "1");
    let (moto, emulator) = (moto_url(), emulator_url());
    let binary = common::release_binary("ORG_BENCH_BINARY");

    let stamp = common::unix_seconds();
    let dir = repo_root().join(format!("target/bench-org/{stamp}"));
    std::fs::create_dir_all(&dir).unwrap();
    let base = common::base_config(&moto).await;
    let s3 = common::s3_client(&base);
    let sqs = aws_sdk_sqs::Client::new(&base);
    let sts = aws_sdk_sts::Client::new(&base);
    let account_ids: Vec<String> = (0..accounts).map(|i| format!("{:012}", ACCOUNT_BASE + i as u64)).collect();
    let region_names = &REGIONS[..regions];
    let shards = accounts * regions;
    println!(
        "org bench: {accounts} accounts x {regions} regions = {shards} shards, a warehouse ({tables} tables) in every \
         {every}th account, {workers} workers; log in {}",
        dir.display()
    );

    // What moto costs per call, before the run adds to it.
    let ms_sts = per_call(50, |_| async {
        sts.get_caller_identity().send().await.expect("GetCallerIdentity");
    })
    .await;

    // Seed: the bucket, the queue (and its dead-letter queue), the warehouses.
    let started = Instant::now();
    let bucket = format!("rr-bench-org-{stamp}");
    s3.create_bucket().bucket(&bucket).send().await.expect("CreateBucket");
    let ms_put = per_call(50, |i| {
        let (s3, bucket) = (&s3, &bucket);
        async move {
            let body = vec![b'x'; 2048];
            s3.put_object().bucket(bucket).key(format!("probe/{i}")).body(body.into()).send().await.expect("PutObject");
        }
    })
    .await;
    let dlq = sqs.create_queue().queue_name(format!("bench-org-{stamp}-dlq")).send().await.expect("CreateQueue");
    let dlq_url = dlq.queue_url().unwrap().to_string();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes");
    let dlq_arn = arn.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
    let queue = sqs
        .create_queue()
        .queue_name(format!("bench-org-{stamp}"))
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}).to_string(),
        )
        .attributes(QueueAttributeName::VisibilityTimeout, "900")
        .send()
        .await
        .expect("CreateQueue")
        .queue_url()
        .unwrap()
        .to_string();
    let sql = fixture(tables);
    let warehouse_accounts: Vec<&String> = account_ids.iter().step_by(every).collect();
    let seeded: Vec<Result<(), String>> = stream::iter(warehouse_accounts.iter())
        .map(|a| seed_warehouse(&base, &emulator, a, region_names[0], "bench-cluster", &sql))
        .buffer_unordered(seed_concurrency)
        .collect()
        .await;
    if let Some(e) = seeded.iter().find_map(|r| r.as_ref().err()) {
        panic!("seeding failed: {e}");
    }
    let seed_secs = started.elapsed().as_secs_f64();
    println!(
        "seed: {} warehouses, bucket {bucket}, queue in {seed_secs:.1} s (not a figure of the product)",
        warehouse_accounts.len()
    );

    // The function's config and environment, as a deployed function has them.
    let sources: Vec<Value> = account_ids.iter().map(|a| json!({"accountId": a, "regions": region_names})).collect();
    let config = json!({
        "output": {"bucket": bucket, "prefix": "registry/"},
        "roleName": "Reader",
        "sources": sources,
        "execution": {"mode": "fanout", "queueUrl": queue}
    });
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let scheduled = dir.join("scheduled.json");
    std::fs::write(
        &scheduled,
        json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}).to_string(),
    )
    .unwrap();
    let log_path = dir.join("function.log");
    let function = Function::new(binary, &moto, &emulator, &config_path, &log_path);

    // The planner, once.
    let cpu = StackCpu::now();
    let plan_out = dir.join("plan.out");
    let plan = {
        let (f, e, o) = (&function, &scheduled, &plan_out);
        f.run(e, o)
    };
    let plan_cpu = StackCpu::now();
    let receipt: Value = serde_json::from_str(&std::fs::read_to_string(&plan_out).unwrap_or_default())
        .unwrap_or_else(|e| panic!("the planner's output (exit {}, see {}): {e}", plan.exit, log_path.display()));
    assert_eq!(receipt["status"], "dispatched", "{receipt:#}");
    let run_id = receipt["runId"].as_str().unwrap().to_string();
    let planned = receipt["shards"].as_u64().unwrap_or(0);
    let (visible, invisible) = queue_depth(&sqs, &queue).await;
    let sent = visible + invisible;
    println!(
        "plan: {planned} shards, {sent} messages on the queue, {:.2} s (CPU {:.2} s), peak RSS {:.1} MiB ({})",
        plan.wall.as_secs_f64(),
        plan.cpu.as_secs_f64(),
        mib(plan.peak_rss_kib),
        plan_cpu.since(&cpu)
    );

    // N workers until the queue stays empty.
    let pool = Arc::new(Workers {
        sqs: sqs.clone(),
        queue: queue.clone(),
        function,
        dir: dir.clone(),
        in_flight: AtomicUsize::new(0),
        received: AtomicUsize::new(0),
        max_messages,
        until: Instant::now() + Duration::from_secs(max_seconds),
        deliveries: Mutex::new(Vec::new()),
        errors: Mutex::new(Vec::new()),
    });
    let started = Instant::now();
    let progress = {
        let pool = pool.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                let n = pool.deliveries.lock().unwrap().len();
                eprintln!("  ... {n} deliveries after {:.0} s", started.elapsed().as_secs_f64());
            }
        })
    };
    let handles: Vec<_> = (0..workers).map(|n| tokio::spawn(worker(n, pool.clone()))).collect();
    for h in handles {
        h.await.expect("a worker");
    }
    progress.abort();
    let work_secs = started.elapsed().as_secs_f64();
    let work_cpu = StackCpu::now();
    let timed_out = Instant::now() >= pool.until;

    let deliveries = std::mem::take(&mut *pool.deliveries.lock().unwrap());
    let ok = deliveries.iter().filter(|d| !d.failed).count();
    let failures = deliveries.len() - ok;
    let mut rss: Vec<u64> = deliveries.iter().map(|d| d.run.peak_rss_kib).collect();
    rss.sort_unstable();
    let mut walls: Vec<Duration> = deliveries.iter().map(|d| d.run.wall).collect();
    walls.sort_unstable();
    let mut cpus: Vec<Duration> = deliveries.iter().map(|d| d.run.cpu).collect();
    cpus.sort_unstable();
    let (left, _) = queue_depth(&sqs, &queue).await;
    let (dead, _) = queue_depth(&sqs, &dlq_url).await;

    // The summary the last shard wrote, and what listing the shard reports costs by then.
    let summary_key = format!("registry/runs/{run_id}.json");
    let summary: Option<Value> = match s3.get_object().bucket(&bucket).key(&summary_key).send().await {
        Ok(o) => serde_json::from_slice(&o.body.collect().await.unwrap().into_bytes()).ok(),
        Err(_) => None,
    };
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for s in summary.as_ref().and_then(|s| s["shards"].as_array()).into_iter().flatten() {
        *states.entry(s["state"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    let shard_prefix = format!("registry/runs/{run_id}/shards/");
    let listed = std::cell::Cell::new(0);
    let ms_list = per_call(3, |_| {
        let (s3, bucket, prefix, listed) = (&s3, &bucket, &shard_prefix, &listed);
        async move {
            let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
            listed.set(0);
            while let Some(page) = pages.next().await {
                listed.set(listed.get() + page.expect("ListObjectsV2").contents().len());
            }
        }
    })
    .await;
    let listed = listed.get();

    let med = |v: &[u64]| percentile(v, 0.5).map(mib).unwrap_or(0.0);
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let per_shard_moto = work_cpu.moto(&plan_cpu).map(|c| format!("{:.0} ms", c * 1000.0 / ok.max(1) as f64));
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!("| accounts x regions | {accounts} x {regions} |");
    println!("| warehouses (every {every}th account, {tables} tables each) | {} |", warehouse_accounts.len());
    println!("| shards planned | {planned} |");
    println!("| messages sent (on the queue after planning) | {sent} |");
    println!("| plan wall time (process start to exit) | {:.2} s |", plan.wall.as_secs_f64());
    println!("| planner CPU time (user + system) | {:.2} s |", plan.cpu.as_secs_f64());
    println!("| planner peak RSS | {:.1} MiB |", mib(plan.peak_rss_kib));
    println!("| workers | {workers} |");
    println!("| deliveries (ok / failed) | {} ({ok} / {failures}) |", deliveries.len());
    println!(
        "| worker phase wall time | {work_secs:.1} s{} |",
        if timed_out { " (hit ORG_BENCH_MAX_SECONDS)" } else { "" }
    );
    println!("| shards/s with {workers} workers | {:.2} |", ok as f64 / work_secs);
    println!(
        "| shard wall time (median / p95 / max) | {:.2} / {:.2} / {:.2} s |",
        secs(percentile(&walls, 0.5)),
        secs(percentile(&walls, 0.95)),
        secs(walls.last().copied())
    );
    println!(
        "| shard CPU time, user + system (median / max) | {:.0} / {:.0} ms |",
        secs(percentile(&cpus, 0.5)) * 1000.0,
        secs(cpus.last().copied()) * 1000.0
    );
    println!(
        "| per-shard peak RSS (median / max) | {:.1} / {:.1} MiB |",
        med(&rss),
        mib(rss.last().copied().unwrap_or(0))
    );
    println!("| left on the queue / in the dead-letter queue | {left} / {dead} |");
    println!(
        "| summary `runs/{{runId}}.json` | {} |",
        summary
            .as_ref()
            .map(|s| format!("{} {states:?}", s["status"].as_str().unwrap_or("?")))
            .unwrap_or(if timed_out { "not written: the worker phase was cut" } else { "missing" }.into())
    );
    if let Some(s) = &summary {
        let c = &s["counts"];
        println!(
            "| summary counts | {} accounts, {} regions, {} warehouses, {} datasets written, {} shards unfinished |",
            c["accounts"], c["regions"], c["warehouses"], c["datasetsWritten"], c["shardsUnfinished"]
        );
    }
    println!("| stack CPU, planner | {} |", plan_cpu.since(&cpu));
    let moto_busy = work_cpu.moto(&plan_cpu).map(|c| format!("{:.0}%", c * 100.0 / work_secs)).unwrap_or("?".into());
    println!(
        "| stack CPU, workers | {} (moto {} a shard, busy {moto_busy} of the phase) |",
        work_cpu.since(&plan_cpu),
        per_shard_moto.unwrap_or("?".into())
    );
    println!("| moto per call, idle (GetCallerIdentity / PutObject 2 KiB) | {ms_sts:.1} / {ms_put:.1} ms |");
    println!("| moto ListObjectsV2 of the {listed} shard reports (every shard lists them) | {ms_list:.0} ms |");
    println!("| seed (not the product) | {seed_secs:.1} s |");
    let errors = pool.errors.lock().unwrap().clone();
    if !errors.is_empty() {
        println!("\n{} errors; the first ones (see {}):", errors.len(), log_path.display());
        for e in errors.iter().take(5) {
            println!("  {e}");
        }
    }

    if !keep {
        // Keep moto lean for the next run: its memory holds every object.
        common::delete_bucket(&s3, &bucket).await;
        let _ = sqs.delete_queue().queue_url(&queue).send().await;
        let _ = sqs.delete_queue().queue_url(&dlq_url).send().await;
    }
}
