//! Discovery over the local AWS stack: moto for STS, Redshift and S3, the emulator for the Data
//! API and Serverless, the real SDK over HTTP, and the fault front for what moto cannot refuse.

mod support;

use redshift_registry::catalog::{Cluster, Warehouse};
use redshift_registry::error::ErrorKind;
use redshift_registry::event::{RunRequest, Scope, Trigger};
use redshift_registry::report::{Report, RunStatus, WarehouseReport, WarehouseState};
use serde_json::json;
use support::fault_front::{FaultFront, Rule};
use support::*;

fn ids(report: &Report, account: &str, region: &str) -> Vec<(String, WarehouseState)> {
    let a = report.accounts.iter().find(|a| a.account_id == account).expect("account in report");
    let r = a.regions.iter().find(|r| r.region == region).expect("region in report");
    r.warehouses.iter().map(|c| (c.id.name().to_string(), c.state)).collect()
}

fn cluster(w: &WarehouseReport) -> &Cluster {
    match w.details.as_ref().expect("details") {
        Warehouse::Cluster(c) => c,
        Warehouse::Workgroup(_) => panic!("not a cluster"),
    }
}

fn seed(id: &str) -> ClusterSeed<'_> {
    ClusterSeed { id, node_type: "ra3.xlplus", db_name: "dev", tags: &[] }
}

#[tokio::test(flavor = "multi_thread")]
async fn option_one_discovers_every_cluster_of_each_region() {
    let moto = moto_url();
    let acct = account_id("option_one", 1);
    let bucket = bucket_name("option_one");
    create_bucket(&moto, &bucket).await;
    let (sales, marketing, finance) = (unique("sales"), unique("marketing"), unique("finance"));
    for (region, id) in [("us-east-1", &sales), ("us-east-1", &marketing), ("eu-west-1", &finance)] {
        let tags = [("team", id.as_str())];
        create_cluster(&moto, &acct, region, ClusterSeed { id, node_type: "ra3.xlplus", db_name: "dev", tags: &tags })
            .await;
    }
    let cfg = config(json!({
        "output": {"bucket": bucket, "prefix": "redshift/"},
        "roleName": "DataRegistryRedshiftReader",
        "sources": [{"accountId": acct, "regions": ["us-east-1", "eu-west-1"]}]
    }));
    let report = run_against(&moto, &cfg, &RunRequest::default()).await;

    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(
        ids(&report, &acct, "us-east-1"),
        vec![(marketing.clone(), WarehouseState::Available), (sales.clone(), WarehouseState::Available)]
    );
    assert_eq!(ids(&report, &acct, "eu-west-1"), vec![(finance.clone(), WarehouseState::Available)]);
    let details = cluster(&report.accounts[0].regions[1].warehouses[0]);
    assert_eq!(details.node_type.as_deref(), Some("ra3.xlplus"));
    assert_eq!(details.database_name.as_deref(), Some("dev"));
    assert_eq!(details.tags.get("team"), Some(&finance));
    assert!(details.endpoint.as_ref().is_some_and(|e| e.port > 0));
    assert_eq!(report.counts.warehouses_available, 3);
    // Each available cluster's databases were read through the Data API.
    assert_eq!(report.counts.databases, 3);
    assert_eq!(report.accounts[0].role_arn, format!("arn:aws:iam::{acct}:role/DataRegistryRedshiftReader"));

    // The report is written under the prefix, and is the one returned.
    let key = report.report_key.clone().expect("report written");
    assert!(key.starts_with("redshift/runs/"), "{key}");
    let stored: serde_json::Value = serde_json::from_slice(&get_object(&moto, &bucket, &key).await).unwrap();
    assert_eq!(stored["runId"], report.run_id);
    assert_eq!(stored["counts"]["warehousesAvailable"], 3);
    assert_eq!(stored["accounts"][0]["regions"][1]["warehouses"][0]["clusterIdentifier"], json!(finance));
}

#[tokio::test(flavor = "multi_thread")]
async fn option_two_reads_only_named_clusters_and_reports_missing_ones() {
    let moto = moto_url();
    let acct = account_id("option_two", 1);
    let bucket = bucket_name("option_two");
    create_bucket(&moto, &bucket).await;
    let (sales, unnamed, ghost) = (unique("sales"), unique("unnamed"), unique("ghost"));
    for id in [&sales, &unnamed] {
        create_cluster(&moto, &acct, "us-east-1", seed(id)).await;
    }
    let cfg = config(json!({
        "output": {"bucket": bucket},
        "sources": [{"accountId": acct, "roleArn": format!("arn:aws:iam::{acct}:role/Custom"),
                     "clusters": [{"region": "us-east-1", "clusterIdentifier": sales},
                                  {"region": "us-east-1", "clusterIdentifier": ghost}]}]
    }));
    let report = run_against(&moto, &cfg, &RunRequest::default()).await;

    assert_eq!(
        ids(&report, &acct, "us-east-1"),
        vec![(sales.clone(), WarehouseState::Available), (ghost.clone(), WarehouseState::Missing)]
    );
    let missing = &report.accounts[0].regions[0].warehouses[1];
    let reason = missing.reason.as_deref().unwrap();
    assert!(reason.contains(&format!("no cluster {ghost:?} in us-east-1")), "{reason}");
    assert_eq!(report.accounts[0].regions[0].mode, redshift_registry::report::RegionMode::Named);
    assert_eq!(report.accounts[0].role_arn, format!("arn:aws:iam::{acct}:role/Custom"));
    assert_eq!(report.status, RunStatus::Partial);
    assert_eq!(report.counts.warehouses_missing, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn same_cluster_name_in_two_accounts_is_not_mixed_up() {
    let moto = moto_url();
    let (a, b) = (account_id("same_name", 1), account_id("same_name", 2));
    let bucket = bucket_name("same_name");
    create_bucket(&moto, &bucket).await;
    let sales = unique("sales");
    create_cluster(
        &moto,
        &a,
        "us-east-1",
        ClusterSeed { id: &sales, node_type: "ra3.4xlarge", db_name: "alpha", tags: &[("owner", "a")] },
    )
    .await;
    create_cluster(
        &moto,
        &b,
        "us-east-1",
        ClusterSeed { id: &sales, node_type: "dc2.large", db_name: "beta", tags: &[("owner", "b")] },
    )
    .await;
    let cfg = config(json!({
        "output": {"bucket": bucket}, "roleName": "Reader",
        "sources": [{"accountId": a, "regions": ["us-east-1"]}, {"accountId": b, "regions": ["us-east-1"]}]
    }));
    let report = run_against(&moto, &cfg, &RunRequest::default()).await;

    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    for (acct, owner, db, node) in [(&a, "a", "alpha", "ra3.4xlarge"), (&b, "b", "beta", "dc2.large")] {
        let account = report.accounts.iter().find(|x| &x.account_id == acct).unwrap();
        let warehouses = &account.regions[0].warehouses;
        assert_eq!(warehouses.len(), 1, "account {acct} sees only its own cluster");
        let c = cluster(&warehouses[0]);
        assert_eq!(c.tags.get("owner").map(String::as_str), Some(owner));
        assert_eq!(c.database_name.as_deref(), Some(db));
        assert_eq!(c.node_type.as_deref(), Some(node));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn paused_cluster_is_skipped_with_its_reason() {
    let moto = moto_url();
    let acct = account_id("paused", 1);
    let bucket = bucket_name("paused");
    create_bucket(&moto, &bucket).await;
    let (live, sleepy) = (unique("live"), unique("sleepy"));
    for id in [&live, &sleepy] {
        create_cluster(&moto, &acct, "eu-west-1", seed(id)).await;
    }
    pause_cluster(&moto, &acct, "eu-west-1", &sleepy).await;
    let cfg = config(json!({
        "output": {"bucket": bucket}, "roleName": "Reader",
        "sources": [{"accountId": acct, "regions": ["eu-west-1"]}]
    }));
    let report = run_against(&moto, &cfg, &RunRequest::default()).await;

    assert_eq!(
        ids(&report, &acct, "eu-west-1"),
        vec![(live.clone(), WarehouseState::Available), (sleepy.clone(), WarehouseState::Skipped)]
    );
    let skipped = &report.accounts[0].regions[0].warehouses[1];
    assert!(skipped.reason.as_deref().unwrap().contains("\"paused\""), "{:?}", skipped.reason);
    assert!(skipped.databases.is_empty(), "a paused cluster is not read");
    // A paused cluster is a state, not a failure.
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(report.counts.warehouses_skipped, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_account_is_reported_and_the_others_go_on() {
    let moto = moto_url();
    let (ok, denied) = (account_id("denied", 1), account_id("denied", 2));
    let bucket = bucket_name("denied");
    create_bucket(&moto, &bucket).await;
    let sales = unique("sales");
    create_cluster(&moto, &ok, "us-east-1", seed(&sales)).await;
    let front = FaultFront::start(
        &moto,
        vec![Rule {
            service: "sts",
            action: Some("AssumeRole"),
            region: None,
            body_contains: Some(format!("RoleArn=arn:aws:iam::{denied}:role/Reader&")),
            times: None,
            status: 403,
            code: "AccessDenied",
            message: "User: arn:aws:sts::000000000000:assumed-role/fn is not authorized to perform: sts:AssumeRole",
        }],
    )
    .await;
    let cfg = config(json!({
        "output": {"bucket": bucket}, "roleName": "Reader", "externalId": "registry-ext-id",
        "sources": [{"accountId": denied, "regions": ["us-east-1"]}, {"accountId": ok, "regions": ["us-east-1"]}]
    }));
    let report = run_against(&front.url, &cfg, &RunRequest::default()).await;

    assert_eq!(report.status, RunStatus::Partial);
    let d = report.accounts.iter().find(|a| a.account_id == denied).unwrap();
    let err = d.error.as_ref().expect("denied account has an error");
    assert_eq!(err.kind, ErrorKind::AccessDenied);
    assert_eq!(err.code, "AccessDenied");
    assert!(err.hint.contains("trust policy"), "{}", err.hint);
    assert!(d.regions.is_empty());
    assert_eq!(ids(&report, &ok, "us-east-1"), vec![(sales.clone(), WarehouseState::Available)]);
    assert_eq!(report.counts.accounts_failed, 1);
    // The external id and a session name naming this tool travel with every AssumeRole.
    let assumes: Vec<_> = front.seen().into_iter().filter(|s| s.action == "AssumeRole").collect();
    assert_eq!(assumes.len(), 2);
    assert!(assumes.iter().all(
        |s| s.body.contains("ExternalId=registry-ext-id&") && s.body.contains("RoleSessionName=redshift-registry-")
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn region_not_enabled_is_reported_and_other_regions_go_on() {
    let moto = moto_url();
    let acct = account_id("optin", 1);
    let bucket = bucket_name("optin");
    create_bucket(&moto, &bucket).await;
    let west = unique("west");
    create_cluster(&moto, &acct, "us-west-2", seed(&west)).await;
    let front = FaultFront::start(
        &moto,
        vec![Rule {
            service: "redshift",
            action: Some("DescribeClusters"),
            region: Some("ap-east-1"),
            body_contains: None,
            times: None,
            status: 403,
            code: "InvalidClientTokenId",
            message: "The security token included in the request is invalid.",
        }],
    )
    .await;
    let cfg = config(json!({
        "output": {"bucket": bucket}, "roleName": "Reader",
        "sources": [{"accountId": acct, "regions": ["ap-east-1", "us-west-2"]}]
    }));
    let report = run_against(&front.url, &cfg, &RunRequest::default()).await;

    assert_eq!(report.status, RunStatus::Partial);
    let regions = &report.accounts[0].regions;
    let err = regions[0].error.as_ref().expect("ap-east-1 failed");
    assert_eq!(err.kind, ErrorKind::RegionNotEnabled);
    assert!(err.hint.contains("region ap-east-1") && err.hint.contains("opt-in"), "{}", err.hint);
    assert_eq!(ids(&report, &acct, "us-west-2"), vec![(west.clone(), WarehouseState::Available)]);
    assert_eq!(report.counts.regions_failed, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn manual_scope_narrows_and_dry_run_writes_nothing() {
    let moto = moto_url();
    let (a, b) = (account_id("narrow", 1), account_id("narrow", 2));
    let bucket = bucket_name("narrow");
    create_bucket(&moto, &bucket).await;
    let (sales, hr, sales_eu, other) = (unique("sales"), unique("hr"), unique("sales-eu"), unique("other"));
    for (acct, region, id) in
        [(&a, "us-east-1", &sales), (&a, "us-east-1", &hr), (&a, "eu-west-1", &sales_eu), (&b, "us-east-1", &other)]
    {
        create_cluster(&moto, acct, region, seed(id)).await;
    }
    let cfg = config(json!({
        "output": {"bucket": bucket, "prefix": "p"}, "roleName": "Reader",
        "sources": [{"accountId": a, "regions": ["us-east-1", "eu-west-1"]}, {"accountId": b, "regions": ["us-east-1"]}]
    }));
    let request = RunRequest {
        trigger: Trigger::Manual,
        dry_run: true,
        scope: Scope {
            accounts: [a.clone()].into(),
            regions: ["us-east-1".to_string()].into(),
            clusters: [sales.clone(), "nope".to_string()].into(),
        },
        deadline: None,
    };
    let report = run_against(&moto, &cfg, &request).await;

    assert_eq!(report.accounts.len(), 1);
    assert_eq!(report.accounts[0].regions.len(), 1);
    assert_eq!(ids(&report, &a, "us-east-1"), vec![(sales.clone(), WarehouseState::Available)]);
    assert_eq!(report.clusters_not_found, vec!["nope".to_string()]);
    assert!(report.report_key.is_none());
    assert!(list_keys(&moto, &bucket, "").await.is_empty(), "a dry run writes nothing");
}
