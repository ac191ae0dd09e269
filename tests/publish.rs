//! Manifests in S3 over moto and the emulator: the schema, hostile names in keys, incremental
//! writes, exact deletions, failed reads that keep what they could not confirm, removed
//! clusters, and dry runs that leave the bucket byte-identical.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use redshift_registry::event::{RunRequest, Scope, Trigger};
use redshift_registry::manifest::decode_segment;
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
    let publish = warehouse(&first, &cluster).publish.clone().expect("published");
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
        serde_json::from_slice(objects.iter().find(|(k, _)| k.contains("/orders/")).unwrap().1).unwrap();
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
    assert!(index.datasets.iter().all(|e| e.key.ends_with(&format!("{}.json", e.sha256))));

    // The same warehouse again: no dataset object is written, and the bytes are the same.
    let puts_before = front.seen().iter().filter(|s| s.method == "PUT" && s.path.contains("/datasets/")).count();
    assert_eq!(puts_before, 3);
    let second = org.run(&front.url, &RunRequest::default()).await;
    let publish = warehouse(&second, &cluster).publish.clone().unwrap();
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
        let segments: Vec<&str> = relative.split('/').collect();
        assert_eq!(segments.len(), 4, "{relative}");
        let decoded: Vec<String> = segments[..3].iter().map(|s| decode_segment(s).expect("decodes")).collect();
        assert_eq!(decoded, vec![e.database.clone(), e.schema.clone(), e.table.clone()], "{relative}");
        assert!(e.key.len() <= 1024 && !e.key.contains("//"));
        let manifest: Value = serde_json::from_slice(&get_object(&org.moto, &org.bucket, &e.key).await).unwrap();
        assert_eq!(manifest["location"]["table"], json!(e.table));
        assert_eq!(manifest["name"], json!(format!("dev.sales.{}", e.table)));
    }
    let tables: BTreeSet<&str> = index.datasets.iter().map(|e| e.table.as_str()).collect();
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
    let publish = warehouse(&report, &cluster).publish.clone().unwrap();
    assert_eq!((publish.written, publish.unchanged, publish.removed), (0, 3, 1));
    let after = org.objects("registry/datasets/").await;
    let gone: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    assert_eq!(gone.len(), 1);
    assert!(gone[0].contains("/refunds/"), "{gone:?}");
    assert!(after.iter().all(|(k, v)| before.get(k) == Some(v)), "the others are untouched");
    assert!(!org.index(&cluster).await.datasets.iter().any(|e| e.table == "refunds"));
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
    let publish = w.publish.clone().unwrap();
    assert_eq!((publish.written, publish.kept, publish.removed, publish.committed), (1, 3, 0, true));
    let index = org.index(&cluster).await;
    let kept: BTreeSet<String> = index.datasets.iter().filter(|e| e.database == "bad").map(|e| e.key.clone()).collect();
    assert_eq!(kept, bad_keys, "the index keeps the unread database's datasets");
    let objects = org.objects("registry/datasets/").await;
    assert!(bad_keys.iter().all(|k| objects.contains_key(k)), "none of its manifests went");
    assert!(index.datasets.iter().any(|e| e.database == "good" && e.table == "new"));

    // Once it reads again, its dropped table goes.
    set_knobs(&org.account, &cluster, json!({})).await;
    let report = org.run(&org.moto, &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(warehouse(&report, &cluster).publish.as_ref().unwrap().removed, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_cluster_loses_its_datasets_but_not_in_a_narrowed_run() {
    let org = org("deleted_cluster").await;
    let (keep, doomed) = (unique("keep"), unique("doomed"));
    org.cluster(&keep, &[("dev", &fixture(&["a"]))]).await;
    org.cluster(&doomed, &[("dev", &fixture(&["b", "c"]))]).await;
    org.run(&org.moto, &RunRequest::default()).await;
    let doomed_prefix = format!("registry/datasets/{}/us-east-1/cluster/{doomed}/", org.account);
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
    let publish = warehouse(&report, &cluster).publish.clone().unwrap();
    assert_eq!(publish.would_write, vec!["dev.sales.invoices".to_string()]);
    assert_eq!(publish.would_remove, vec!["dev.sales.refunds".to_string()]);
    assert!(!publish.committed);
    assert!(report.report_key.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_table_keeps_its_previous_version_for_one_commit() {
    let org = org("versions").await;
    let cluster = unique("sales");
    org.cluster(&cluster, &[("dev", &fixture(&["orders"]))]).await;
    org.run(&org.moto, &RunRequest::default()).await;
    let orders_key = |index: &redshift_registry::publish::WarehouseIndex| {
        index.datasets.iter().find(|e| e.table == "orders").unwrap().key.clone()
    };
    let v1 = orders_key(&org.index(&cluster).await);

    // orders gains a column: a new version is written, the one the previous index lists stays.
    let changed = fixture(&["orders"])
        .replace("name varchar(64));", "name varchar(64)); ALTER TABLE sales.orders ADD COLUMN note text;");
    create_warehouse(&org.account, &cluster, &[("dev", &changed)]).await;
    let report = org.run(&org.moto, &RunRequest::default()).await;
    assert_eq!(warehouse(&report, &cluster).publish.as_ref().unwrap().written, 1);
    let v2 = orders_key(&org.index(&cluster).await);
    assert_ne!(v1, v2);
    let objects = org.objects("registry/datasets/").await;
    assert!(objects.contains_key(&v1) && objects.contains_key(&v2));

    // One more commit later, the old version goes.
    let report = org.run(&org.moto, &RunRequest::default()).await;
    let publish = warehouse(&report, &cluster).publish.clone().unwrap();
    assert_eq!((publish.written, publish.removed, publish.superseded), (0, 0, 1));
    let objects = org.objects("registry/datasets/").await;
    assert!(!objects.contains_key(&v1) && objects.contains_key(&v2));
}
