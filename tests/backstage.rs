//! The Backstage output, read by Backstage itself: the real `AwsS3EntityProvider` lists moto's
//! bucket, the real S3 URL reader fetches each location, the real `parseEntityYaml` parses it and
//! `@backstage/catalog-model` validates every entity as the catalog does
//! (tests/backstage/harness.mjs, packages pinned in its package-lock.json and installed by
//! scripts/install.sh).

mod support;

use std::collections::BTreeSet;

use redshift_registry::event::RunRequest;
use redshift_registry::report::{Report, RunStatus};
use serde_json::{json, Value};
use support::org::*;
use support::*;

const PREFIX: &str = "registry/backstage/";

fn backstage_reads(org: &Org) -> Value {
    org.backstage_reads(PREFIX)
}

fn config(org: &Org) -> redshift_registry::config::Config {
    org.config(json!({"outputs": {"backstage": {
        "owner": "group:default/data-platform", "ownerTag": "owner", "system": "system:default/warehouses"}}}))
}

fn titles(read: &Value) -> BTreeSet<String> {
    read["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entity"]["metadata"]["title"].as_str().unwrap().to_string())
        .collect()
}

fn entity<'a>(read: &'a Value, title: &str) -> &'a Value {
    let found = read["entities"].as_array().unwrap().iter().find(|e| e["entity"]["metadata"]["title"] == title);
    &found.unwrap_or_else(|| panic!("no entity titled {title:?} in {:?}", titles(read)))["entity"]
}

const HOSTILE: &str = r#"
CREATE TABLE sales."Orders" (id int); CREATE TABLE sales."ünï ✓ ""quoted"" #1?" (id int);
CREATE TABLE sales."a.b c" (id int); COMMENT ON TABLE sales.orders IS 'All | orders';
GRANT SELECT ON ALL TABLES IN SCHEMA sales TO "IAMR:DataRegistryRedshiftReader";
"#;

async fn run(org: &Org) -> Report {
    let report = run_against(&org.moto, &config(org), &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    report
}

/// Every entity a run writes passes Backstage's validation; the provider finds exactly the
/// warehouse files; names are unique case-insensitively for names Redshift allows; owners come
/// from the owner tag when it holds an entity ref; a dropped table leaves with the next run.
#[tokio::test(flavor = "multi_thread")]
async fn backstage_ingests_the_output_and_follows_drops() {
    let org = org("backstage").await;
    let (tagged, untagged) = (unique("bs-tagged"), unique("bs-plain"));
    let seed =
        ClusterSeed { id: &tagged, node_type: "ra3.xlplus", db_name: "dev", tags: &[("owner", "group:default/sales")] };
    create_cluster(&org.moto, &org.account, "us-east-1", seed).await;
    create_warehouse(&org.account, &tagged, &[("dev", &format!("{}{HOSTILE}", fixture(&["orders", "refunds"])))]).await;
    org.cluster(&untagged, &[("dev", &fixture(&["orders"]))]).await;

    let report = run(&org).await;
    let read = backstage_reads(&org);
    assert_eq!(read["invalid"], json!([]), "every entity valid");

    let keys: BTreeSet<String> = list_keys(&org.moto, &org.bucket, PREFIX).await.into_iter().collect();
    assert_eq!(keys.len(), 4, "a warehouse file and a database file per warehouse: {keys:?}");
    let targets: BTreeSet<String> = read["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["target"].as_str().unwrap().split_once(&format!("/{}/", org.bucket)).unwrap().1.to_string())
        .collect();
    assert_eq!(targets, keys, "the provider finds exactly the files, keys unencoded");
    assert!(keys.iter().all(|k| k.is_ascii() && !k.contains([' ', '#', '?', '%', '*'])), "{keys:?}");

    let expected: BTreeSet<String> = [
        tagged.as_str(),
        untagged.as_str(),
        "dev.sales.Orders",
        "dev.sales.a.b c",
        "dev.sales.orders",
        "dev.sales.refunds",
        "dev.sales.ünï ✓ \"quoted\" #1?",
        "dev.sales.v",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(titles(&read), expected);
    assert_eq!(read["entities"].as_array().unwrap().len(), 2 + 6 + 2, "two warehouses, 6 + 2 datasets");

    let warehouse = entity(&read, &tagged);
    assert_eq!(warehouse["spec"]["type"], "redshift-cluster");
    assert_eq!(warehouse["spec"]["owner"], "group:default/sales", "owner from the tag");
    let orders = entity(&read, "dev.sales.Orders");
    assert_eq!(orders["spec"]["type"], "redshift-table");
    assert_eq!(orders["spec"]["system"], "system:default/warehouses");
    let parent = warehouse["metadata"]["name"].as_str().unwrap();
    assert_eq!(orders["spec"]["dependsOn"], json!([format!("resource:default/{parent}")]));
    assert_eq!(entity(&read, "dev.sales.v")["spec"]["type"], "redshift-view");
    assert!(entity(&read, "dev.sales.orders")["metadata"]["description"]
        .as_str()
        .unwrap()
        .contains("| 1 | id | integer | no |"));
    let tags: Value =
        serde_json::from_str(orders["metadata"]["annotations"]["redshift-registry.io/aws-tags"].as_str().unwrap())
            .unwrap();
    assert_eq!(tags, json!({"owner": "group:default/sales"}));
    // The AWS module's annotations, and the warehouse's page in the console.
    let arn = format!("arn:aws:redshift:us-east-1:{}:cluster:{tagged}", org.account);
    assert_eq!(warehouse["metadata"]["annotations"]["amazonaws.com/arn"], json!(arn));
    assert_eq!(orders["metadata"]["annotations"]["amazonaws.com/account-id"], json!(org.account));
    let console = format!(
        "https://us-east-1.console.aws.amazon.com/redshiftv2/home?region=us-east-1#cluster-details?cluster={tagged}"
    );
    assert_eq!(warehouse["metadata"]["links"][0]["url"], json!(console));
    assert_eq!(orders["metadata"]["links"], warehouse["metadata"]["links"], "a dataset links its warehouse");

    let plain = report.accounts[0].regions[0].warehouses.iter().find(|w| w.id.name() == untagged).unwrap();
    let backstage = plain.published("backstage").expect("published to backstage");
    assert!(backstage.notes.iter().any(|n| n.contains("no tag \"owner\"")), "{backstage:?}");
    assert_eq!(entity(&read, &untagged)["spec"]["owner"], "group:default/data-platform");

    // A dropped table leaves Backstage with the next run; the rest stays as it was.
    create_warehouse(&org.account, &tagged, &[("dev", &format!("{}{HOSTILE}", fixture(&["orders"])))]).await;
    run(&org).await;
    let after = backstage_reads(&org);
    assert_eq!(after["invalid"], json!([]));
    let mut gone = titles(&read);
    gone.retain(|t| !titles(&after).contains(t));
    assert_eq!(gone, BTreeSet::from(["dev.sales.refunds".to_string()]));
}

/// With `namespace`, every entity is in it and each dataset's `dependsOn` names its warehouse
/// there: Backstage validates them and relates the two.
#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_holds_every_entity_and_relation() {
    let org = org("bs_namespace").await;
    let cluster = unique("bs-ns");
    org.cluster(&cluster, &[("dev", &fixture(&["orders"]))]).await;
    let config =
        org.config(json!({"outputs": {"backstage": {"owner": "group:data/data-platform", "namespace": "data"}}}));
    let report = run_against(&org.moto, &config, &RunRequest::default()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    let read = backstage_reads(&org);
    assert_eq!(read["invalid"], json!([]), "every entity valid");
    let entities = read["entities"].as_array().unwrap();
    assert!(!entities.is_empty());
    assert!(entities.iter().all(|e| e["entity"]["metadata"]["namespace"] == "data"), "{entities:#?}");
    let warehouse = entity(&read, &cluster)["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(entity(&read, "dev.sales.orders")["spec"]["dependsOn"], json!([format!("resource:data/{warehouse}")]));
}
