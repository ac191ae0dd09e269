//! Fan-out over moto's SQS, with a stand-in for Lambda's event source mapping
//! (tests/support/esm.rs): a run planned into one shard per (account, region), each run by an
//! invocation of its own, retried alone when a retry can fix it, idempotent when delivered twice
//! or late, and summarised once, unfinished shards included.

mod support;

use std::collections::BTreeMap;

use redshift_registry::aws::S3Objects;
use redshift_registry::invoke::Response;
use redshift_registry::report::{Report, RunStatus, ShardState};
use redshift_registry::run_id::RunId;
use redshift_registry::shard;
use serde_json::{json, Value};
use support::esm::{invoke_function, queue, Queue};
use support::fault_front::{FaultFront, Rewrite, Rule};
use support::org::*;
use support::organization::Organization;
use support::*;

/// Three accounts, two regions each, a warehouse in each account's us-east-1.
struct Fleet {
    org: Org,
    accounts: Vec<String>,
    clusters: Vec<String>,
}

async fn fleet(test: &str) -> Fleet {
    let org = org(test).await;
    let accounts: Vec<String> = (1..=3).map(|n| account_id(test, n + 10)).collect();
    let mut clusters = Vec::new();
    for (n, account) in accounts.iter().enumerate() {
        let id = unique(&format!("{}-{n}", test.replace('_', "-")));
        clusters.push(id.clone());
        let seed = ClusterSeed { id: &id, node_type: "ra3.xlplus", db_name: "dev", tags: &[("team", "data")] };
        create_cluster(&org.moto, account, "us-east-1", seed).await;
        create_warehouse(account, &id, &[("dev", &fixture(&["orders", "customers"]))]).await;
    }
    Fleet { org, accounts, clusters }
}

impl Fleet {
    fn config(&self, prefix: &str, execution: Value) -> Value {
        let sources: Vec<Value> =
            self.accounts.iter().map(|a| json!({"accountId": a, "regions": ["us-east-1", "eu-west-1"]})).collect();
        self.org.config_json(json!({"output": {"bucket": self.org.bucket, "prefix": prefix}, "sources": sources, "execution": execution}))
    }

    async fn fanout(&self, name: &str) -> (Queue, Value) {
        let q = queue(&self.org.moto, &format!("{name}-{}", self.org.account), 3).await;
        let config = self.config("fan/", json!({"mode": "fanout", "queueUrl": q.url}));
        (q, config)
    }

    /// Sends each body to the queue as a message of its own.
    async fn send(&self, q: &Queue, bodies: &[String]) {
        for body in bodies {
            q.client.send_message().queue_url(&q.url).message_body(body).send().await.expect("SendMessage");
        }
    }

    /// Plans a run: the planner's receipt.
    async fn dispatch(&self, config: &Value) -> (String, usize) {
        match invoke_function(
            &self.org.moto,
            config,
            &json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}),
        )
        .await
        {
            Response::Dispatched(d) => (d.run_id, d.shards),
            other => panic!("the planner dispatches: {other:?}"),
        }
    }

    async fn summary(&self, config: &Value, run_id: &str) -> Report {
        match invoke_function(&self.org.moto, config, &json!({"summaryOf": run_id})).await {
            Response::Report(r) => *r,
            other => panic!("a summary: {other:?}"),
        }
    }

    /// The manifests under `prefix`, keyed relative to it.
    async fn manifests(&self, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        let all = self.org.objects(&format!("{prefix}datasets/")).await;
        all.into_iter().map(|(k, v)| (k[prefix.len()..].to_string(), v)).collect()
    }
}

/// The same fleet read in one invocation and fanned out gives byte-identical manifests; the
/// summary has every shard, counts summed, and is where the run report always was.
#[tokio::test(flavor = "multi_thread")]
async fn a_fanned_out_run_gives_the_manifests_of_a_single_one() {
    let fleet = fleet("fan_same").await;
    let single = run_against(&fleet.org.moto, &config(fleet.config("one/", json!({}))), &Default::default()).await;
    assert_eq!(single.status, RunStatus::Succeeded, "{single:#?}");

    let (q, config) = fleet.fanout("same").await;
    let (run_id, shards) = fleet.dispatch(&config).await;
    assert_eq!(shards, 6, "3 accounts x 2 regions");
    let deliveries = q.drain(&fleet.org.moto, &config).await;
    assert_eq!(deliveries.len(), 6);
    assert!(deliveries.iter().all(|d| !d.failed));

    assert_eq!(fleet.manifests("fan/").await, fleet.manifests("one/").await);
    let key = format!("fan/runs/{run_id}.json");
    let summary: Value = serde_json::from_slice(&get_object(&fleet.org.moto, &fleet.org.bucket, &key).await).unwrap();
    assert_eq!(summary["status"], "succeeded", "{summary:#}");
    assert_eq!(summary["shards"].as_array().unwrap().len(), 6);
    assert_eq!(summary["counts"]["datasetsWritten"], json!(single.counts.datasets_written));
    assert_eq!(summary["counts"]["accounts"], json!(3));
    assert_eq!(summary["counts"]["regions"], json!(6));
    assert!(fleet.org.objects("fan/runs/open/").await.is_empty(), "a run with its final summary is closed");
}

/// A shard whose commit fails twice is handed back twice and succeeds at its third delivery,
/// alone: the other shards are delivered once.
#[tokio::test(flavor = "multi_thread")]
async fn a_shard_that_fails_twice_then_succeeds() {
    let fleet = fleet("fan_retry").await;
    let (q, config) = fleet.fanout("retry").await;
    let (run_id, _) = fleet.dispatch(&config).await;
    // The first account's index commit is refused twice; its shard is handed back twice.
    let first = &fleet.accounts[0];
    let index_put = Rule {
        service: "s3",
        action: Some("PUT"),
        region: None,
        body_contains: Some(format!("\"kind\":\"WarehouseIndex\",\"accountId\":\"{first}\"")),
        times: Some(2),
        status: 403,
        code: "AccessDenied",
        message: "injected",
    };
    let front = FaultFront::start(&fleet.org.moto, vec![index_put]).await;
    let deliveries = q.drain(&front.url, &config).await;
    let failed: Vec<u32> = deliveries.iter().filter(|d| d.failed).map(|d| d.receive_count).collect();
    assert_eq!(failed, vec![1, 2], "{deliveries:#?}");
    assert!(deliveries.iter().filter(|d| d.failed).all(|d| d.body.contains(first.as_str())));
    assert_eq!(deliveries.len(), 6 + 2, "the others once");
    let summary = fleet.summary(&config, &run_id).await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:#?}");
    let shard = summary.shards.iter().find(|s| s.shard_id == format!("{first}-us-east-1")).unwrap();
    assert_eq!((shard.state, shard.attempt), (ShardState::Succeeded, Some(3)));
    assert!(summary.shards.iter().all(|s| s.state == ShardState::Succeeded));
}

/// A message delivered twice writes nothing new the second time.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_delivered_twice_writes_nothing_new() {
    let fleet = fleet("fan_twice").await;
    let (q, config) = fleet.fanout("twice").await;
    fleet.dispatch(&config).await;
    let first = q.drain(&fleet.org.moto, &config).await;
    let before = fleet.org.objects("fan/datasets/").await;
    let body = &first[0].body;
    q.client.send_message().queue_url(&q.url).message_body(body).send().await.expect("SendMessage");
    let again = q.drain(&fleet.org.moto, &config).await;
    assert_eq!(again.len(), 1);
    assert!(!again[0].failed);
    assert_eq!(fleet.org.objects("fan/datasets/").await, before, "no manifest changed");
}

/// A shard of an old run delivered after a newer run committed its warehouse yields: the
/// newer index stands, nothing rolls back.
#[tokio::test(flavor = "multi_thread")]
async fn an_old_runs_shard_arriving_late_yields_to_the_newer_run() {
    let fleet = fleet("fan_late").await;
    let (q, config) = fleet.fanout("late").await;
    let (old_run, _) = fleet.dispatch(&config).await;
    let old = q.drain(&fleet.org.moto, &config).await;
    let late = old.iter().find(|d| d.body.contains("us-east-1")).unwrap().body.clone();
    let shard_id = serde_json::from_str::<Value>(&late).unwrap()["shardId"].as_str().unwrap().to_string();

    // Run ids sort by the second they start in.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (newer, _) = fleet.dispatch(&config).await;
    q.drain(&fleet.org.moto, &config).await;
    let before = fleet.org.objects("fan/").await;
    q.client.send_message().queue_url(&q.url).message_body(&late).send().await.expect("SendMessage");
    q.drain(&fleet.org.moto, &config).await;
    let after = fleet.org.objects("fan/index/").await;
    for (key, bytes) in &after {
        let index: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(index["runId"], json!(newer), "{key} rolled back");
    }
    let key = format!("fan/runs/{old_run}/shards/{shard_id}.json");
    let report: Value = serde_json::from_slice(&get_object(&fleet.org.moto, &fleet.org.bucket, &key).await).unwrap();
    let publish = &report["report"]["accounts"][0]["regions"][0]["warehouses"][0]["publish"];
    assert!(publish.as_array().unwrap().iter().all(|p| p["supersededBy"] == json!(newer)), "{publish:#}");
    let datasets = |o: &BTreeMap<String, Vec<u8>>| {
        o.iter().filter(|(k, _)| k.contains("/datasets/")).map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>()
    };
    assert_eq!(datasets(&fleet.org.objects("fan/").await), datasets(&before));
}

/// A shard that never reports is in the summary as not finished, and the run is partial.
#[tokio::test(flavor = "multi_thread")]
async fn a_shard_that_never_finishes_shows_in_the_summary() {
    let fleet = fleet("fan_lost").await;
    let (q, config) = fleet.fanout("lost").await;
    let (run_id, shards) = fleet.dispatch(&config).await;
    // One message lost before any invocation ran it.
    let lost = q.client.receive_message().queue_url(&q.url).max_number_of_messages(1).send().await.unwrap();
    let handle = lost.messages()[0].receipt_handle().unwrap();
    q.client.delete_message().queue_url(&q.url).receipt_handle(handle).send().await.unwrap();
    q.drain(&fleet.org.moto, &config).await;

    let summary = fleet.summary(&config, &run_id).await;
    assert_eq!(summary.status, RunStatus::Partial);
    assert_eq!((summary.counts.shards, summary.counts.shards_unfinished), (shards, 1));
    let unfinished: Vec<_> = summary.shards.iter().filter(|s| s.state == ShardState::NotFinished).collect();
    assert_eq!(unfinished.len(), 1, "{:?}", summary.shards);
    assert_eq!(unfinished[0].attempt, None);

    // Unasked, a planner hours later summarises the run and closes it; before then it waits.
    let open = format!("fan/runs/open/{run_id}");
    assert!(fleet.org.objects("fan/runs/open/").await.contains_key(&open), "the run is still open");
    delete_object(&fleet.org.moto, &fleet.org.bucket, &format!("fan/runs/{run_id}.json")).await;
    let store = S3Objects::new(&function_config(&fleet.org.moto).await, true);
    let parsed = support::config(config.clone());
    let started = RunId::parse(&run_id).unwrap().started();
    assert!(shard::summarise_overdue(&store, &parsed, started + time::Duration::hours(1)).await.is_empty());
    let overdue = shard::summarise_overdue(&store, &parsed, started + time::Duration::hours(5)).await;
    assert_eq!(overdue.len(), 1);
    assert_eq!((overdue[0].status, overdue[0].counts.shards_unfinished), (RunStatus::Partial, 1));
    let written = fleet.org.objects("fan/runs/").await;
    assert!(written.contains_key(&format!("fan/runs/{run_id}.json")), "the summary is written");
    assert!(!written.contains_key(&open), "and the run closed");
}

/// A three-account organization, one OU left out, covered end to end with fan-out: the same
/// manifests as one invocation, none of the left-out OU's account.
#[tokio::test(flavor = "multi_thread")]
async fn an_organization_fans_out_to_the_manifests_of_a_single_run() {
    let org = org("fan_org").await;
    let organization = Organization::new("fan_org").await;
    let data = organization.unit(&organization.root, "data").await;
    let sandbox = organization.unit(&organization.root, "sandbox").await;
    let mut members = Vec::new();
    for (n, unit) in [(0, &data), (1, &data), (2, &data), (3, &sandbox)] {
        let account = organization.account(&format!("member{n}"), unit).await;
        let id = unique(&format!("fan-org-{n}"));
        let seed = ClusterSeed { id: &id, node_type: "ra3.xlplus", db_name: "dev", tags: &[] };
        create_cluster(&org.moto, &account, "us-east-1", seed).await;
        create_warehouse(&account, &id, &[("dev", &fixture(&["orders"]))]).await;
        members.push(account);
    }
    let source = organization.source(json!({"organizationalUnits": [data]}));
    let q = queue(&org.moto, &format!("org-{}", org.account), 3).await;
    let config_for = |prefix: &str, execution: Value| {
        org.config_json(
            json!({"output": {"bucket": org.bucket, "prefix": prefix}, "sources": [source], "execution": execution}),
        )
    };
    let single = run_against(&org.moto, &config(config_for("one/", json!({}))), &Default::default()).await;
    assert_eq!(single.status, RunStatus::Succeeded, "{single:#?}");
    assert_eq!(single.organizations[0].accounts, 3);

    let fan = config_for("fan/", json!({"mode": "fanout", "queueUrl": q.url}));
    let scheduled = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
    let Response::Dispatched(dispatched) = invoke_function(&org.moto, &fan, &scheduled).await else {
        panic!("dispatched")
    };
    assert_eq!(dispatched.shards, 3 * 2, "three accounts, two regions");
    assert!(q.drain(&org.moto, &fan).await.iter().all(|d| !d.failed));

    let relative = |prefix: &'static str, all: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        all.into_iter().map(|(k, v)| (k[prefix.len()..].to_string(), v)).collect()
    };
    let fanned = relative("fan/", org.objects("fan/datasets/").await);
    assert_eq!(fanned, relative("one/", org.objects("one/datasets/").await));
    assert_eq!(fanned.len(), 3 * 2, "orders and v in each of the three");
    assert!(fanned.keys().all(|k| !k.contains(&members[3])), "the sandbox OU is left out");
}

/// A fan-out run narrowed to one warehouse reads only it and removes nothing of the others;
/// a named warehouse is "not found" only if no shard found it.
#[tokio::test(flavor = "multi_thread")]
async fn a_narrowed_fanned_out_run_removes_nothing_else() {
    let fleet = fleet("fan_narrow").await;
    let (q, config) = fleet.fanout("narrow").await;
    fleet.dispatch(&config).await;
    q.drain(&fleet.org.moto, &config).await;
    let before = fleet.org.objects("fan/").await.into_keys().filter(|k| !k.contains("/runs/")).collect::<Vec<_>>();

    let one = unique("fan-narrow-0");
    let manual = json!({"clusters": [one, "nowhere"]});
    let Response::Dispatched(d) = invoke_function(&fleet.org.moto, &config, &manual).await else {
        panic!("dispatched")
    };
    q.drain(&fleet.org.moto, &config).await;
    let after = fleet.org.objects("fan/").await.into_keys().filter(|k| !k.contains("/runs/")).collect::<Vec<_>>();
    assert_eq!(after, before, "the other warehouses are untouched");
    let summary = fleet.summary(&config, &d.run_id).await;
    assert_eq!(summary.clusters_not_found, vec!["nowhere".to_string()]);
    assert_eq!(summary.status, RunStatus::Partial, "a named warehouse was not found");
    assert!(summary.shards.iter().all(|s| s.state == ShardState::Succeeded), "{:?}", summary.shards);
}

fn shard_body(run_id: &str, shard_id: &str) -> String {
    json!({"apiVersion": "redshift-registry/v1", "kind": "Shard", "runId": run_id, "shardId": shard_id}).to_string()
}

/// A message is a request, never an authority: forged shards (an account in no source, a role
/// ARN or a database login of the sender's choosing, a far-future run id, a shard its run never
/// planned, a run with no plan) and junk are acknowledged and refused: nothing is read or
/// written, no manifest changes, and the next real run commits as usual.
#[tokio::test(flavor = "multi_thread")]
async fn forged_and_junk_messages_read_nothing_and_write_nothing() {
    let fleet = fleet("fan_forged").await;
    let (q, config) = fleet.fanout("forged").await;
    let (run_id, _) = fleet.dispatch(&config).await;
    q.drain(&fleet.org.moto, &config).await;
    let before = fleet.org.objects("fan/").await;
    let statements_before = counters(&fleet.accounts[1], &fleet.clusters[1]).await.get("ExecuteStatement").copied();

    let (a, b) = (&fleet.accounts[0], &fleet.accounts[1]);
    let other_role = format!("arn:aws:iam::{b}:role/DataRegistryRedshiftReader");
    // A body that claims account, role and selection itself: none of it may be taken.
    let carried = |account: Value, selection: Value| {
        json!({"apiVersion": "redshift-registry/v1", "kind": "Shard", "runId": run_id, "shardId": format!("{a}-us-east-1"),
               "dryRun": false, "account": account, "region": {"region": "us-east-1", "selection": selection}})
        .to_string()
    };
    let bodies = vec![
        shard_body(&run_id, "333333333333-us-east-1"),
        carried(json!({"accountId": a, "roleArn": other_role}), json!({"discover": {"only": []}})),
        carried(
            json!({"accountId": a, "roleArn": format!("arn:aws:iam::{a}:role/DataRegistryRedshiftReader")}),
            json!({"named": {"clusters": [{"region": "us-east-1", "clusterIdentifier": fleet.clusters[0], "dbUser": "admin"}], "workgroups": []}}),
        ),
        shard_body("99991231T235959999Z-00000000", &format!("{a}-us-east-1")),
        shard_body(&run_id, &format!("{a}-ap-south-1")),
        shard_body("20261201T000000000Z-0000abcd", &format!("{a}-us-east-1")),
        shard_body("../../index", &format!("{a}-us-east-1")),
        "not json".to_string(),
        "{}".to_string(),
        json!({"apiVersion": "redshift-registry/v1", "kind": "Shard", "pad": "x".repeat(200_000)}).to_string(),
    ];
    fleet.send(&q, &bodies).await;
    let deliveries = q.drain(&fleet.org.moto, &config).await;
    assert_eq!(deliveries.len(), bodies.len(), "each delivered once: acknowledged, not retried");
    assert!(deliveries.iter().all(|d| d.refused && !d.failed), "{deliveries:#?}");
    assert_eq!(fleet.org.objects("fan/").await, before, "nothing written, nothing removed");
    let statements_after = counters(&fleet.accounts[1], &fleet.clusters[1]).await.get("ExecuteStatement").copied();
    assert_eq!(statements_after, statements_before, "the other account's warehouse was not read");

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (newer, _) = fleet.dispatch(&config).await;
    assert!(q.drain(&fleet.org.moto, &config).await.iter().all(|d| !d.failed && !d.refused));
    for (key, bytes) in fleet.org.objects("fan/index/").await {
        let index: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(index["runId"], json!(newer), "{key}");
    }
}

/// S3 answers a missing plan with 403 under the template's prefix-only ListBucket (GetObject
/// API reference): a message naming a run with no plan is still refused, not retried.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_without_a_plan_is_refused_when_s3_answers_403() {
    let fleet = fleet("fan_noplan403").await;
    let (q, config) = fleet.fanout("noplan403").await;
    let hides_missing = FaultFront::start_rewriting(&fleet.org.moto, vec![Rewrite::missing_key_as_403()]).await;
    let no_plan = redshift_registry::run_id::RunId::new().to_string();
    fleet.send(&q, &[shard_body(&no_plan, &format!("{}-us-east-1", fleet.accounts[0]))]).await;
    let deliveries = q.drain(&hides_missing.url, &config).await;
    assert_eq!(deliveries.len(), 1, "acknowledged at the first delivery: {deliveries:#?}");
    assert!(deliveries[0].refused && !deliveries[0].failed, "{deliveries:#?}");
    assert!(
        hides_missing.seen().iter().any(|s| s.action == "GET" && s.status == 403),
        "the front did answer 403 for the missing plan"
    );
    assert!(fleet.org.objects("fan/").await.is_empty(), "nothing written");
}

/// A shard is resolved against the config that runs it: an account the config no longer has
/// is not visited, though the run's plan has it.
#[tokio::test(flavor = "multi_thread")]
async fn a_shard_whose_account_left_the_config_does_nothing() {
    let fleet = fleet("fan_left").await;
    let (q, config) = fleet.fanout("left").await;
    fleet.dispatch(&config).await;
    let mut narrowed = config.clone();
    narrowed["sources"].as_array_mut().unwrap().truncate(2);
    let deliveries = q.drain(&fleet.org.moto, &narrowed).await;
    let gone = &fleet.accounts[2];
    for d in &deliveries {
        assert_eq!(d.refused, d.body.contains(gone.as_str()), "{d:?}");
        assert!(!d.failed, "{d:?}");
    }
    assert!(fleet.org.objects("fan/").await.keys().all(|k| !k.contains(gone.as_str())), "nothing of {gone}");
}

/// A statement whose connection the cluster drops (a reboot, resize or maintenance) makes the
/// shard a batch item failure: SQS delivers it again, and the redelivery reads it whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_shard_that_lost_its_connection_is_retried_and_succeeds() {
    let fleet = fleet("fan_lost_connection").await;
    let (q, config) = fleet.fanout("lostconn").await;
    let (run_id, _) = fleet.dispatch(&config).await;
    set_knobs(&fleet.accounts[0], &fleet.clusters[0], json!({"connectionsLost": 1})).await;
    let deliveries = q.drain(&fleet.org.moto, &config).await;
    let failed: Vec<&support::esm::Delivery> = deliveries.iter().filter(|d| d.failed).collect();
    assert_eq!(failed.len(), 1, "{deliveries:#?}");
    assert!(failed[0].body.contains(&format!("{}-us-east-1", fleet.accounts[0])));
    let summary = fleet.summary(&config, &run_id).await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:#?}");
    let shard = summary.shards.iter().find(|s| s.shard_id == format!("{}-us-east-1", fleet.accounts[0])).unwrap();
    assert_eq!((shard.state, shard.attempt), (ShardState::Succeeded, Some(2)));
    assert_eq!(fleet.manifests("fan/").await.len(), 3 * 3, "orders, customers and v in each");
}
