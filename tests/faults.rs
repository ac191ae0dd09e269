//! Fault injection over moto and the emulator: every failure is reported with its scope, the
//! rest of the run completes, no manifest is lost, and the next clean run restores the catalog.
//! Faults moto cannot produce come from the fault front (between the SDK and moto) or from the
//! emulator's knobs.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use redshift_registry::error::ErrorKind;
use redshift_registry::event::RunRequest;
use redshift_registry::outcome::MANIFESTS;
use redshift_registry::report::{Report, RunStatus, WarehouseReport, WarehouseState};
use serde_json::json;
use support::fault_front::{FaultFront, Rule};
use support::org::*;
use support::*;

fn rule(service: &'static str, action: &'static str, status: u16, code: &'static str, times: Option<usize>) -> Rule {
    Rule {
        service,
        action: Some(action),
        region: None,
        body_contains: None,
        times,
        status,
        code,
        message: "injected by the fault front",
    }
}

fn warehouse<'a>(report: &'a Report, name: &str) -> &'a WarehouseReport {
    report.accounts[0]
        .regions
        .iter()
        .flat_map(|r| &r.warehouses)
        .find(|w| w.id.name() == name)
        .expect("warehouse in report")
}

/// One warehouse with two databases, read cleanly once: the baseline every fault is checked against.
struct Baseline {
    org: Org,
    cluster: String,
    keys: BTreeSet<String>,
}

async fn baseline(test: &str) -> Baseline {
    let org = org(test).await;
    let cluster = unique("wh");
    org.cluster(&cluster, &[("dev", &fixture(&["orders", "customers"])), ("mart", &fixture(&["facts"]))]).await;
    let report = org.run(&org.moto, &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    let keys = org.index(&cluster).await.datasets.into_iter().map(|e| e.key).collect();
    Baseline { org, cluster, keys }
}

impl Baseline {
    /// Every manifest of the baseline is still in S3.
    async fn nothing_lost(&self) {
        let objects = self.org.objects("registry/datasets/").await;
        let missing: Vec<&String> = self.keys.iter().filter(|k| !objects.contains_key(*k)).collect();
        assert!(missing.is_empty(), "manifests lost: {missing:?}");
    }

    /// A clean run brings back exactly the baseline.
    async fn restored(&self) {
        set_knobs(&self.org.account, &self.cluster, json!({})).await;
        let report = self.org.run(&self.org.moto, &RunRequest::default()).await;
        assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
        let keys: BTreeSet<String> = self.org.index(&self.cluster).await.datasets.into_iter().map(|e| e.key).collect();
        assert_eq!(keys, self.keys);
        self.nothing_lost().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn assume_role_denied() {
    let b = baseline("f_denied").await;
    let front = FaultFront::start(&b.org.moto, vec![rule("sts", "AssumeRole", 403, "AccessDenied", None)]).await;
    let report = b.org.run(&front.url, &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Failed, "the only account failed");
    let e = report.accounts[0].error.as_ref().unwrap();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::AccessDenied, "AccessDenied"));
    assert!(report.report_key.is_some(), "the report is still written");
    b.nothing_lost().await;
    b.restored().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn region_not_enabled() {
    let b = baseline("f_region").await;
    let front =
        FaultFront::start(&b.org.moto, vec![rule("redshift", "DescribeClusters", 403, "InvalidClientTokenId", None)])
            .await;
    let report = b.org.run(&front.url, &RunRequest::default()).await;
    let e = report.accounts[0].regions[0].error.as_ref().unwrap();
    assert_eq!(e.kind, ErrorKind::RegionNotEnabled);
    assert!(report.accounts[0].regions[0].removed_warehouses.is_empty());
    b.nothing_lost().await;
    b.restored().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_clusters_throttled_then_succeeding() {
    let b = baseline("f_throttle_cp").await;
    let front =
        FaultFront::start(&b.org.moto, vec![rule("redshift", "DescribeClusters", 400, "Throttling", Some(2))]).await;
    let report = b.org.run(&front.url, &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    let calls: Vec<u16> = front.seen().iter().filter(|s| s.action == "DescribeClusters").map(|s| s.status).collect();
    assert_eq!(calls, vec![400, 400, 200], "throttled twice, then retried to success");
    b.restored().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn paused_cluster_keeps_its_manifests() {
    let b = baseline("f_paused").await;
    pause_cluster(&b.org.moto, &b.org.account, "us-east-1", &b.cluster).await;
    let report = b.org.run(&b.org.moto, &RunRequest::default()).await;
    assert_eq!(warehouse(&report, &b.cluster).state, WarehouseState::Skipped);
    assert!(warehouse(&report, &b.cluster).publish.is_empty(), "nothing published for a paused cluster");
    b.nothing_lost().await;
    resume_cluster(&b.org.moto, &b.org.account, "us-east-1", &b.cluster).await;
    b.restored().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_percent_of_data_api_calls_throttled() {
    let b = baseline("f_throttle_data").await;
    set_knobs(&b.org.account, &b.cluster, json!({"throttleRate": 0.3})).await;
    let before = counters(&b.org.account, &b.cluster).await;
    let report = b.org.run(&b.org.moto, &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(report.counts.datasets, b.keys.len());
    let after = counters(&b.org.account, &b.cluster).await;
    let calls = |c: &std::collections::BTreeMap<String, u64>| {
        c.iter().filter(|(k, _)| !k.ends_with("Bytes") && *k != "maxRunningStatements").map(|(_, n)| n).sum::<u64>()
    };
    // A clean run of this warehouse makes the calls the baseline made; retries come on top.
    assert!(calls(&after) - calls(&before) > calls(&before), "no call was retried: {before:?} {after:?}");
    b.restored().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn active_statements_exceeded_backs_off() {
    let b = baseline("f_active").await;
    set_knobs(&b.org.account, &b.cluster, json!({"activeStatementsExceeded": 3})).await;
    let report = b.org.run(&b.org.moto, &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(report.counts.datasets, b.keys.len());
    b.restored().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_poll_the_service_still_holds_is_not_a_failure() {
    let b = baseline("f_waiting").await;
    // A long poll answered with a 500 while the service goes on waiting: the SDK retries, and the
    // retry finds the statement's waiting place taken (ActiveWaitingRequestsExceededException).
    set_knobs(&b.org.account, &b.cluster, json!({"statementMs": 1500, "longPollsLeftWaiting": 1})).await;
    let before = b.org.objects("registry/datasets/").await;
    let report = b.org.run(&b.org.moto, &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    let w = warehouse(&report, &b.cluster);
    let refused = |n: &String| n.contains("redshift-data:");
    assert!(
        w.databases.iter().all(|d| d.error.is_none() && !d.notes.iter().any(refused)),
        "every statement read: {w:#?}"
    );
    assert_eq!(b.org.objects("registry/datasets/").await, before, "the same manifests, byte for byte");
    let counted = counters(&b.org.account, &b.cluster).await;
    assert_eq!(counted.get("InternalServerException").copied(), Some(1), "{counted:?}");
    assert!(counted.get("ActiveWaitingRequestsExceededException").is_some_and(|n| *n >= 1), "{counted:?}");
    b.restored().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_database_statement_failed() {
    let b = baseline("f_failed_sql").await;
    // Every database's batch reads svv_redshift_columns: fail the batch, not the database list.
    set_knobs(&b.org.account, &b.cluster, json!({"failSql": "svv_redshift_columns"})).await;
    let report = b.org.run(&b.org.moto, &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Partial);
    let w = warehouse(&report, &b.cluster);
    assert!(
        w.databases.iter().all(|d| d.error.as_ref().is_some_and(|e| e.message.contains("injected failure"))),
        "{w:#?}"
    );
    let publish = w.published(MANIFESTS).unwrap();
    assert_eq!((publish.kept, publish.removed, publish.written), (b.keys.len(), 0, 0));
    b.nothing_lost().await;
    b.restored().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hung_statement_is_cancelled() {
    let b = baseline("f_hung").await;
    // An essential statement hangs: the database times out (an optional one only makes a note).
    set_knobs(&b.org.account, &b.cluster, json!({"slowSql": "FROM svv_redshift_columns", "slowSqlMs": 60000})).await;
    // 3 s, not 1: on a loaded CI machine a healthy statement must not time out too.
    let cfg = b.org.config(json!({"pullRedshiftComments": true, "limits": {"statementTimeoutSeconds": 3}}));
    let report = run_against(&b.org.moto, &cfg, &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Partial);
    let w = warehouse(&report, &b.cluster);
    for d in &w.databases {
        let e = d.error.as_ref().expect("timed out");
        assert_eq!(e.code, "timedOut", "{e:?}");
        assert!(e.hint.contains("statementTimeoutSeconds"));
    }
    assert_eq!(
        counters(&b.org.account, &b.cluster).await.get("CancelStatement").copied(),
        Some(2),
        "both databases' column statements cancelled"
    );
    b.nothing_lost().await;
    b.restored().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_put_503_then_success() {
    let b = baseline("f_s3").await;
    // A new table, so that the run has a manifest to write.
    create_warehouse(
        &b.org.account,
        &b.cluster,
        &[("dev", &fixture(&["orders", "customers", "refunds"])), ("mart", &fixture(&["facts"]))],
    )
    .await;
    let front = FaultFront::start(&b.org.moto, vec![rule("s3", "PUT", 503, "SlowDown", Some(2))]).await;
    let report = b.org.run(&front.url, &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    let puts: Vec<u16> =
        front.seen().iter().filter(|s| s.service == "s3" && s.method == "PUT").map(|s| s.status).collect();
    assert_eq!(&puts[..2], &[503, 503]);
    assert!(puts[2..].iter().all(|s| *s == 200));
    assert_eq!(warehouse(&report, &b.cluster).published(MANIFESTS).unwrap().written, 1);
    b.nothing_lost().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_cuts_the_run_in_the_middle() {
    let org = org("f_deadline").await;
    let (fast, slow) = (unique("fast"), unique("slow"));
    org.cluster(&fast, &[("dev", &fixture(&["a"]))]).await;
    org.cluster(&slow, &[("dev", &fixture(&["b"]))]).await;
    let cfg = org.config(json!({"limits": {"warehousesPerRegion": 1}}));
    let clean = run_against(&org.moto, &cfg, &RunRequest::default()).await;
    assert_eq!(clean.status, RunStatus::Succeeded);
    let slow_keys: BTreeSet<String> = org.index(&slow).await.datasets.into_iter().map(|e| e.key).collect();

    // The slow warehouse's statements outlast the time left; the fast one is read and committed.
    set_knobs(&org.account, &slow, json!({"statementMs": 20000})).await;
    create_warehouse(&org.account, &fast, &[("dev", &fixture(&["a", "a2"]))]).await;
    // 10 s leaves the fast warehouse 7.5 s (the reserve is a quarter), room on a loaded machine.
    let request = RunRequest { deadline: Some(Instant::now() + Duration::from_secs(10)), ..RunRequest::default() };
    let started = Instant::now();
    let report = run_against(&org.moto, &cfg, &request).await;
    assert!(started.elapsed() < Duration::from_secs(10), "the run ended before the deadline");
    assert_eq!(report.status, RunStatus::Partial);
    assert_eq!(warehouse(&report, &fast).published(MANIFESTS).unwrap().written, 1);
    let cut = warehouse(&report, &slow);
    assert!(cut.error.is_some() && cut.publish.is_empty(), "{cut:#?}");
    assert!(report.report_key.is_some(), "the report is written within the reserve");
    let objects = org.objects("registry/datasets/").await;
    assert!(slow_keys.iter().all(|k| objects.contains_key(k)), "nothing of the cut warehouse was removed");

    set_knobs(&org.account, &slow, json!({})).await;
    let next = run_against(&org.moto, &cfg, &RunRequest::default()).await;
    assert_eq!(next.status, RunStatus::Succeeded);
    assert_eq!(org.index(&slow).await.datasets.into_iter().map(|e| e.key).collect::<BTreeSet<_>>(), slow_keys);
}
