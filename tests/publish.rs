//! Manifests in S3 over moto and the emulator: the schema, hostile names in keys, incremental
//! writes, exact deletions, failed reads that keep what they could not confirm, removed
//! clusters, and dry runs that leave the bucket byte-identical.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use redshift_registry::event::{RunRequest, Scope, Trigger};
use redshift_registry::layout::decode_segment;
use redshift_registry::outcome::MANIFESTS;
use redshift_registry::report::{Report, RunStatus, WarehouseReport};
use serde_json::{json, Value};
use support::fault_front::FaultFront;
use support::org::*;
use support::*;

fn warehouse<'a>(report: &'a Report, name: &str) -> &'a WarehouseReport {
    report.accounts[0].regions[0].warehouses.iter().find(|w| w.id.name() == name).expect("warehouse in report")
}

fn manifest_keys(objects: &BTreeMap<String, Vec<u8>>) -> BTreeSet<String> {
    objects.keys().filter(|k| k.contains("/datasets/")).cloned().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn manifests_follow_the_schema_and_a_second_run_writes_nothing() {
    let org = org("schema_incremental").await;
    let cluster = unique("sales");
    org.cluster(&cluster, &[("dev", &fixture(&["orders", "customers"]))]).await;
    let front = FaultFront::start(&org.moto, vec![]).await;

    let first = org.run(&front.url, &RunRequest::default()).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:#?}");
    let publish = warehouse(&first, &cluster).published(MANIFESTS).cloned().expect("published");
    assert_eq!((publish.written, publish.unchanged, publish.removed, publish.committed), (3, 0, 0, true));

    let objects = org.objects("registry/datasets/").await;
    assert_eq!(objects.len(), 3);
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("schema/dataset-manifest.v1.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let mut names = Vec::new();
    for (key, bytes) in &objects {
        let manifest: Value = serde_json::from_slice(bytes).unwrap();
        let errors: Vec<String> =
            validator.iter_errors(&manifest).map(|e| format!("{} at {}", e, e.instance_path)).collect();
        assert!(errors.is_empty(), "{key}: {errors:?}");
        assert_eq!(manifest["labels"], json!({"env": "prod", "team": "data"}), "cluster tags are labels");
        assert_eq!(manifest["location"]["clusterIdentifier"], json!(cluster));
        names.push(manifest["name"].as_str().unwrap().to_string());
    }
    names.sort();
    assert_eq!(names, vec!["dev.sales.customers", "dev.sales.orders", "dev.sales.v"]);
    let orders: Value =
        serde_json::from_slice(objects.iter().find(|(k, _)| k.ends_with("/orders.json")).unwrap().1).unwrap();
    assert_eq!(
        orders["columns"][0],
        json!({
            "name": "id", "position": 1, "type": "integer", "nullable": false, "description": null, "default": null,
            "distKey": false, "sortKeyPosition": null, "encoding": "none", "partitionKey": false
        })
    );

    // The index is the commit point: every dataset, its key and content hash.
    let index = org.index(&cluster).await;
    assert_eq!(index.datasets.iter().map(|e| e.key.clone()).collect::<BTreeSet<_>>(), manifest_keys(&objects));
    for e in &index.datasets {
        assert_eq!(redshift_registry::layout::sha256_hex(&objects[&e.key]), e.sha256, "{}", e.key);
    }

    // The same warehouse again: no dataset object is written, and the bytes are the same.
    let puts_before = front.seen().iter().filter(|s| s.method == "PUT" && s.path.contains("/datasets/")).count();
    assert_eq!(puts_before, 3);
    let second = org.run(&front.url, &RunRequest::default()).await;
    let publish = warehouse(&second, &cluster).published(MANIFESTS).cloned().unwrap();
    assert_eq!((publish.written, publish.unchanged, publish.removed), (0, 3, 0));
    let puts_after = front.seen().iter().filter(|s| s.method == "PUT" && s.path.contains("/datasets/")).count();
    assert_eq!(puts_after, puts_before, "the second run wrote dataset objects");
    assert_eq!(org.objects("registry/datasets/").await, objects);
    assert_eq!(second.counts.datasets_written, 0);
    assert_eq!(second.counts.datasets_unchanged, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_identifiers_round_trip_through_keys() {
    let org = org("hostile_keys").await;
    let cluster = unique("hostile");
    let names = [
        "a/b",
        "x y",
        "quote\"s",
        "back\\slash",
        "new\nline",
        "*/ --",
        "..",
        "%41",
        "ünï ✓",
        "A",
        "a",
        "DROP TABLE x; --",
    ];
    let mut sql = fixture(&[]);
    for n in names {
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let (table, column) = (quote(n), quote(&format!("col {n}")));
        sql.push_str(&format!(
            "CREATE TABLE sales.{table} ({column} int); COMMENT ON TABLE sales.{table} IS 'it''s */ \\n';"
        ));
    }
    sql.push_str(&format!(r#"GRANT SELECT ON ALL TABLES IN SCHEMA sales TO "{READER}";"#));
    org.cluster(&cluster, &[("dev", &sql)]).await;

    let report = org.run(&org.moto, &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    let index = org.index(&cluster).await;
    assert_eq!(index.datasets.len(), names.len() + 1);
    let keys: BTreeSet<&str> = index.datasets.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys.len(), index.datasets.len(), "two tables share a key");
    let prefix = format!("registry/datasets/{}/us-east-1/cluster/{cluster}/", org.account);
    for e in &index.datasets {
        let relative = e.key.strip_prefix(&prefix).expect("under the warehouse prefix");
        let segments: Vec<&str> = relative.strip_suffix(".json").expect("a .json key").split('/').collect();
        assert_eq!(segments.len(), 3, "{relative}");
        let decoded: Vec<Option<String>> = segments.iter().map(|s| decode_segment(s)).collect();
        assert_eq!(decoded, vec![Some(e.database.clone()), e.schema.clone(), e.table.clone()], "{relative}");
        assert!(e.key.len() <= 1024 && !e.key.contains("//"));
        let manifest: Value = serde_json::from_slice(&get_object(&org.moto, &org.bucket, &e.key).await).unwrap();
        assert_eq!(manifest["location"]["table"], json!(e.table));
        assert_eq!(manifest["name"], json!(format!("dev.sales.{}", e.table.as_deref().unwrap())));
    }
    let tables: BTreeSet<&str> = index.datasets.iter().filter_map(|e| e.table.as_deref()).collect();
    assert!(names.iter().all(|n| tables.contains(n)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_table_removes_exactly_its_manifest() {
    let org = org("drop_table").await;
    let cluster = unique("sales");
    org.cluster(&cluster, &[("dev", &fixture(&["orders", "customers", "refunds"]))]).await;
    org.run(&org.moto, &RunRequest::default()).await;
    let before = org.objects("registry/datasets/").await;

    create_warehouse(&org.account, &cluster, &[("dev", &fixture(&["orders", "customers"]))]).await;
    let report = org.run(&org.moto, &RunRequest::default()).await;
    let publish = warehouse(&report, &cluster).published(MANIFESTS).cloned().unwrap();
    assert_eq!((publish.written, publish.unchanged, publish.removed), (0, 3, 1));
    let after = org.objects("registry/datasets/").await;
    let gone: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    assert_eq!(gone.len(), 1);
    assert!(gone[0].ends_with("/refunds.json"), "{gone:?}");
    assert!(after.iter().all(|(k, v)| before.get(k) == Some(v)), "the others are untouched");
    assert!(!org.index(&cluster).await.datasets.iter().any(|e| e.table.as_deref() == Some("refunds")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_database_read_keeps_its_manifests() {
    let org = org("failed_read").await;
    let cluster = unique("twodb");
    org.cluster(&cluster, &[("good", &fixture(&["a"])), ("bad", &fixture(&["b1", "b2"]))]).await;
    org.run(&org.moto, &RunRequest::default()).await;
    let bad_keys: BTreeSet<String> =
        org.index(&cluster).await.datasets.iter().filter(|e| e.database == "bad").map(|e| e.key.clone()).collect();
    assert_eq!(bad_keys.len(), 3);

    // "bad" loses a table and then cannot be read: nothing of it may go.
    create_warehouse(&org.account, &cluster, &[("good", &fixture(&["a", "new"])), ("bad", &fixture(&["b1"]))]).await;
    set_knobs(&org.account, &cluster, json!({"failDatabase": "bad"})).await;
    let report = org.run(&org.moto, &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Partial);
    let w = warehouse(&report, &cluster);
    let bad = w.databases.iter().find(|d| d.name == "bad").unwrap();
    assert!(bad.error.as_ref().unwrap().message.contains("injected failure"), "{bad:?}");
    let publish = w.published(MANIFESTS).cloned().unwrap();
    assert_eq!((publish.written, publish.kept, publish.removed, publish.committed), (1, 3, 0, true));
    let index = org.index(&cluster).await;
    let kept: BTreeSet<String> = index.datasets.iter().filter(|e| e.database == "bad").map(|e| e.key.clone()).collect();
    assert_eq!(kept, bad_keys, "the index keeps the unread database's datasets");
    let objects = org.objects("registry/datasets/").await;
    assert!(bad_keys.iter().all(|k| objects.contains_key(k)), "none of its manifests went");
    assert!(index.datasets.iter().any(|e| e.database == "good" && e.table.as_deref() == Some("new")));

    // Once it reads again, its dropped table goes.
    set_knobs(&org.account, &cluster, json!({})).await;
    let report = org.run(&org.moto, &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(warehouse(&report, &cluster).published(MANIFESTS).unwrap().removed, 1);
}

/// Two clusters, `keep` and `doomed`, read and published once; doomed's dataset prefix with them.
async fn keep_and_doomed(test: &str) -> (Org, String, String, String) {
    let org = org(test).await;
    let (keep, doomed) = (unique("keep"), unique("doomed"));
    org.cluster(&keep, &[("dev", &fixture(&["a"]))]).await;
    org.cluster(&doomed, &[("dev", &fixture(&["b", "c"]))]).await;
    org.run(&org.moto, &RunRequest::default()).await;
    let doomed_prefix = format!("registry/datasets/{}/us-east-1/cluster/{doomed}/", org.account);
    (org, keep, doomed, doomed_prefix)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_cluster_loses_its_datasets_but_not_in_a_narrowed_run() {
    let (org, keep, doomed, doomed_prefix) = keep_and_doomed("deleted_cluster").await;
    assert_eq!(org.objects(&doomed_prefix).await.len(), 3);

    delete_cluster(&org.moto, &org.account, "us-east-1", &doomed).await;
    // A run narrowed to one cluster cannot tell the other is gone.
    let narrowed = RunRequest {
        trigger: Trigger::Manual,
        dry_run: false,
        scope: Scope { clusters: [keep.clone()].into(), ..Scope::default() },
        deadline: None,
    };
    let report = org.run(&org.moto, &narrowed).await;
    assert!(report.accounts[0].regions[0].removed_warehouses.is_empty());
    assert_eq!(org.objects(&doomed_prefix).await.len(), 3);

    let keep_before = org.objects(&format!("registry/datasets/{}/us-east-1/cluster/{keep}/", org.account)).await;
    let report = org.run(&org.moto, &RunRequest::default()).await;
    let removed = &report.accounts[0].regions[0].removed_warehouses;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].id.name(), doomed);
    assert_eq!(report.counts.warehouses_removed, 1);
    assert!(org.objects(&doomed_prefix).await.is_empty());
    let index_key = format!("registry/index/{}/us-east-1/cluster/{doomed}.json", org.account);
    assert!(list_keys(&org.moto, &org.bucket, &index_key).await.is_empty());
    assert_eq!(org.objects(&format!("registry/datasets/{}/us-east-1/cluster/{keep}/", org.account)).await, keep_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removal_cut_short_is_finished_by_the_next_run() {
    let (org, keep, doomed, doomed_prefix) = keep_and_doomed("cut_removal").await;
    let keep_prefix = format!("registry/datasets/{}/us-east-1/cluster/{keep}/", org.account);
    let keep_before = org.objects(&keep_prefix).await;
    delete_cluster(&org.moto, &org.account, "us-east-1", &doomed).await;

    // S3 refuses to delete the removed cluster's files (DeleteObjects is a POST naming its keys).
    let refusing = FaultFront::start(
        &org.moto,
        vec![support::fault_front::Rule::s3_internal_error("POST", Some(doomed_prefix.clone()))],
    )
    .await;
    let report = org.run(&refusing.url, &RunRequest::default()).await;
    let region = &report.accounts[0].regions[0];
    assert!(region.removal_error.as_deref().is_some_and(|e| e.contains("injected")), "{region:#?}");
    assert!(region.removed_warehouses.is_empty());
    assert_eq!(org.objects(&keep_prefix).await, keep_before);
    let index_key = format!("registry/index/{}/us-east-1/cluster/{doomed}.json", org.account);
    assert_eq!(list_keys(&org.moto, &org.bucket, &index_key).await.len(), 1, "the index stays while files remain");

    let report = org.run(&org.moto, &RunRequest::default()).await;
    let removed = &report.accounts[0].regions[0].removed_warehouses;
    assert_eq!(removed.iter().map(|r| r.id.name()).collect::<Vec<_>>(), [doomed.as_str()]);
    assert!(org.objects(&doomed_prefix).await.is_empty(), "no file of the removed cluster is left behind");
    assert!(list_keys(&org.moto, &org.bucket, &index_key).await.is_empty());
    assert_eq!(org.objects(&keep_prefix).await, keep_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_leaves_the_bucket_byte_identical() {
    let org = org("dry_publish").await;
    let cluster = unique("sales");
    org.cluster(&cluster, &[("dev", &fixture(&["orders", "refunds"]))]).await;
    org.run(&org.moto, &RunRequest::default()).await;
    create_warehouse(&org.account, &cluster, &[("dev", &fixture(&["orders", "invoices"]))]).await;
    let before = org.objects("").await;

    let dry = RunRequest { trigger: Trigger::Manual, dry_run: true, ..RunRequest::default() };
    let report = org.run(&org.moto, &dry).await;
    assert_eq!(org.objects("").await, before, "a dry run changed the bucket");
    let publish = warehouse(&report, &cluster).published(MANIFESTS).cloned().unwrap();
    assert_eq!(publish.would_write, vec!["dev.sales.invoices".to_string()]);
    assert_eq!(publish.would_remove, vec!["dev.sales.refunds".to_string()]);
    assert!(!publish.committed);
    assert!(report.report_key.is_none());
}

/// The manifests' keys, and their dataset names as the manifests say.
async fn listed_manifests(org: &Org) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, bytes) in org.objects("registry/datasets/").await {
        let manifest: Value = serde_json::from_slice(&bytes).expect("a manifest");
        out.push((key, manifest["name"].as_str().unwrap().to_string()));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_table_is_rewritten_at_its_stable_key() {
    let org = org("versions").await;
    let cluster = unique("sales");
    org.cluster(&cluster, &[("dev", &fixture(&["orders"]))]).await;
    org.run(&org.moto, &RunRequest::default()).await;
    let orders = |index: &redshift_registry::publish::WarehouseIndex| {
        index.datasets.iter().find(|e| e.table.as_deref() == Some("orders")).unwrap().clone()
    };
    let v1 = orders(&org.index(&cluster).await);
    assert!(v1.key.ends_with("/dev/sales/orders.json"), "{}", v1.key);

    let changed = fixture(&["orders"])
        .replace("name varchar(64));", "name varchar(64)); ALTER TABLE sales.orders ADD COLUMN note text;");
    create_warehouse(&org.account, &cluster, &[("dev", &changed)]).await;
    let report = org.run(&org.moto, &RunRequest::default()).await;
    assert_eq!(warehouse(&report, &cluster).published(MANIFESTS).unwrap().written, 1);
    let v2 = orders(&org.index(&cluster).await);
    assert_eq!(v2.key, v1.key, "the same key");
    assert_ne!(v2.sha256, v1.sha256);
    let bytes = get_object(&org.moto, &org.bucket, &v2.key).await;
    assert_eq!(redshift_registry::layout::sha256_hex(&bytes), v2.sha256, "the index says which version is there");
    let listed = listed_manifests(&org).await;
    assert_eq!(listed.len(), 2, "one object per dataset: {listed:?}");
}

/// A deployment written with the content-hashed layout (`{table}/{sha256}.json`, previous
/// versions kept) moves to one object per dataset on its next run, losing nothing, even with a
/// database that cannot be read in that run (its old objects stay until it is read again).
#[tokio::test(flavor = "multi_thread")]
async fn an_old_layout_moves_to_stable_keys_without_losing_a_dataset() {
    let org = org("migrate").await;
    let cluster = unique("sales");
    org.cluster(&cluster, &[("dev", &fixture(&["orders", "refunds"])), ("mart", &fixture(&["facts"]))]).await;
    org.run(&org.moto, &RunRequest::default()).await;
    // Rewrite what the run committed into the old layout, with a stale version beside each.
    let mut index = org.index(&cluster).await;
    for e in &mut index.datasets {
        let bytes = get_object(&org.moto, &org.bucket, &e.key).await;
        let old = format!("{}/{}.json", e.key.strip_suffix(".json").unwrap(), e.sha256);
        put_object(&org.moto, &org.bucket, &old, bytes.clone()).await;
        put_object(
            &org.moto,
            &org.bucket,
            &format!("{}/{}.json", e.key.strip_suffix(".json").unwrap(), "0".repeat(64)),
            bytes,
        )
        .await;
        delete_object(&org.moto, &org.bucket, &e.key).await;
        e.key = old;
    }
    let index_key = format!("registry/index/{}/us-east-1/cluster/{cluster}.json", org.account);
    put_object(&org.moto, &org.bucket, &index_key, serde_json::to_vec(&index).unwrap()).await;
    let old: Vec<(String, String)> = listed_manifests(&org).await;
    assert_eq!(old.len(), 2 * index.datasets.len());

    set_knobs(&org.account, &cluster, json!({"failDatabase": "mart"})).await;
    let report = org.run(&org.moto, &RunRequest::default()).await;
    let publish = warehouse(&report, &cluster).published(MANIFESTS).cloned().unwrap();
    assert!(publish.committed && publish.error.is_none(), "{publish:?}");
    assert_eq!((publish.written, publish.removed, publish.kept), (3, 0, 2), "dev rewritten, mart kept");
    let names: Vec<String> = listed_manifests(&org).await.into_iter().map(|(_, n)| n).collect();
    let mut unique_names = names.clone();
    unique_names.dedup();
    assert_eq!(names, unique_names, "one object per dataset");
    assert_eq!(names.len(), index.datasets.len(), "nothing lost: {names:?}");

    set_knobs(&org.account, &cluster, json!({})).await;
    org.run(&org.moto, &RunRequest::default()).await;
    let listed = listed_manifests(&org).await;
    assert_eq!(listed.len(), index.datasets.len());
    let content_hashed = |k: &str| k.rsplit('/').next().is_some_and(|f| f.len() == 69 && f.ends_with(".json"));
    assert!(listed.iter().all(|(k, _)| !content_hashed(k)), "every object at its stable key: {listed:?}");
}

async fn two_databases(org: &Org, cluster: &str, dev: &[&str], mart: &[&str]) {
    create_warehouse(&org.account, cluster, &[("dev", &fixture(dev)), ("mart", &fixture(mart))]).await;
}

/// Listing the datasets prefix: one manifest per dataset of the committed index, each with the
/// content the index names, and those datasets are `expected`.
async fn one_manifest_per_live_dataset(org: &Org, cluster: &str, expected: &[&str]) {
    let index = org.index(cluster).await;
    let objects = org.objects("registry/datasets/").await;
    let mut listed: Vec<String> = Vec::new();
    for (key, bytes) in &objects {
        let entry = index.datasets.iter().find(|e| &e.key == key).unwrap_or_else(|| panic!("{key} not in the index"));
        assert_eq!(redshift_registry::layout::sha256_hex(bytes), entry.sha256, "{key}");
        listed.push(entry.name.clone());
    }
    assert_eq!(listed.len(), index.datasets.len(), "an index entry without its object");
    listed.sort();
    assert_eq!(listed, expected, "the live datasets");
}

/// After any sequence of runs (changes, drops, a failed database, a failed write, comments on
/// and off), listing the prefix gives exactly one manifest per live dataset, with the content
/// its index names, once the run has committed.
#[tokio::test(flavor = "multi_thread")]
async fn any_sequence_of_runs_leaves_one_manifest_per_live_dataset() {
    let org = org("sequence").await;
    let cluster = unique("seq");
    let run = |comments: bool, endpoint: String| {
        let cfg = org.config(json!({"pullRedshiftComments": comments}));
        async move { run_against(&endpoint, &cfg, &RunRequest::default()).await }
    };
    org.cluster(&cluster, &[("dev", &fixture(&["orders", "customers"])), ("mart", &fixture(&["facts"]))]).await;
    run(true, org.moto.clone()).await;
    one_manifest_per_live_dataset(
        &org,
        &cluster,
        &["dev.sales.customers", "dev.sales.orders", "dev.sales.v", "mart.sales.facts", "mart.sales.v"],
    )
    .await;

    // A drop, an addition, comments off.
    two_databases(&org, &cluster, &["orders"], &["facts", "dims"]).await;
    run(false, org.moto.clone()).await;
    let now = ["dev.sales.orders", "dev.sales.v", "mart.sales.dims", "mart.sales.facts", "mart.sales.v"];
    one_manifest_per_live_dataset(&org, &cluster, &now).await;

    // mart cannot be read: its datasets stay, dev's change lands.
    two_databases(&org, &cluster, &["orders", "refunds"], &["dims"]).await;
    set_knobs(&org.account, &cluster, json!({"failDatabase": "mart"})).await;
    let partial = run(true, org.moto.clone()).await;
    assert_eq!(partial.status, RunStatus::Partial);
    let now =
        ["dev.sales.orders", "dev.sales.refunds", "dev.sales.v", "mart.sales.dims", "mart.sales.facts", "mart.sales.v"];
    one_manifest_per_live_dataset(&org, &cluster, &now).await;

    // Every write fails: nothing commits, and the listing still matches the committed index
    // (no dataset changes content in this step, so no manifest runs ahead of it).
    set_knobs(&org.account, &cluster, json!({})).await;
    let broken = FaultFront::start(&org.moto, vec![support::fault_front::Rule::s3_internal_error("PUT", None)]).await;
    two_databases(&org, &cluster, &["orders", "refunds"], &["dims"]).await;
    run(true, broken.url.clone()).await;

    // mart is read again: facts is gone; comments back on.
    run(true, org.moto.clone()).await;
    let now = ["dev.sales.orders", "dev.sales.refunds", "dev.sales.v", "mart.sales.dims", "mart.sales.v"];
    one_manifest_per_live_dataset(&org, &cluster, &now).await;
}

/// Two runs that interleave on one warehouse, over moto's S3 through the real SDK: the index is
/// written with a conditional write, so exactly one commit wins, and every file the winning
/// index lists is there.
#[tokio::test(flavor = "multi_thread")]
async fn two_commits_racing_on_one_index_in_s3_leave_exactly_one_winner() {
    use redshift_registry::aws::S3Objects;
    use redshift_registry::catalog::{DatabaseCatalog, DatabaseKind, Dataset, DatasetKind, ReadEvent, Unconfirmed};
    use redshift_registry::catalog::{WarehouseCatalog, WarehouseId};
    use redshift_registry::outputs::{Outputs, RunContext};
    use redshift_registry::ports::Output;

    let moto = moto_url();
    let bucket = bucket_name("commit_race");
    ensure_bucket(&moto, &bucket).await;
    let store = S3Objects::new(&function_config(&moto).await, true);
    let config = config(json!({"output": {"bucket": bucket, "prefix": "race/"}, "roleName": "R",
        "sources": [{"accountId": "111111111111", "regions": ["us-east-1"]}]}));
    let db = DatabaseCatalog {
        name: "dev".into(),
        kind: DatabaseKind::Local,
        datasets: 1,
        notes: vec![],
        unconfirmed: Unconfirmed::Nothing,
    };
    let catalog = WarehouseCatalog {
        account_id: "111111111111".into(),
        region: "us-east-1".into(),
        warehouse: WarehouseId::ClusterIdentifier(unique("race")),
        arn: None,
        labels: Default::default(),
        databases: vec![db.clone()],
        unread_databases: vec![],
        sharing_unread: false,
    };
    let dataset = Dataset::named("s".into(), "t".into(), DatasetKind::Table);
    let (older, newer) = ("20261205T090000000Z-00000001", "20261205T090000000Z-00000002");
    let context =
        |run_id| RunContext { bucket: &bucket, run_id, committed_at: "t", dry_run: false, writes_in_parallel: 4 };
    let (one, two) = (Outputs::new(&store, &config, context(older)), Outputs::new(&store, &config, context(newer)));
    let mut publishing = Vec::new();
    for outputs in [&one, &two] {
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        sender.send(ReadEvent::Dataset { database: "dev".into(), dataset: dataset.clone() }).await.unwrap();
        sender.send(ReadEvent::DatabaseRead(db.clone())).await.unwrap();
        drop(sender);
        publishing.push(outputs.publish(&catalog, receiver).await);
    }
    let second = publishing.pop().unwrap();
    let won = one.commit(publishing.pop().unwrap(), &catalog).await;
    let lost = two.commit(second, &catalog).await;
    assert!(won[0].committed, "{won:?}");
    assert!(!lost[0].committed && lost[0].error.as_ref().unwrap().contains("another writer committed"), "{lost:?}");
    let index: Value = serde_json::from_slice(&get_object(&moto, &bucket, &won[0].index_key).await).unwrap();
    assert_eq!(index["runId"], json!(older), "the first commit stands");
    let keys = list_keys(&moto, &bucket, "race/datasets/").await;
    for entry in index["datasets"].as_array().unwrap() {
        assert!(keys.contains(&entry["key"].as_str().unwrap().to_string()), "{entry} lost");
    }
}
