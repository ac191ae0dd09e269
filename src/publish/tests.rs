//! The commit protocol over an in-memory object store: the rules that need no S3 to check.

use std::collections::BTreeMap;

use super::*;
use crate::catalog::{DatabaseKind, Dataset, DatasetKind, Unconfirmed};
use crate::layout::Layout;
use crate::manifest::ManifestFormat;
use crate::testing::MemoryStore;

fn table(schema: &str, name: &str, kind: DatasetKind) -> Dataset {
    Dataset::named(schema.into(), name.into(), kind)
}

/// A warehouse read whole: the catalog the commit sees, and the events the reader sent.
struct Read {
    catalog: WarehouseCatalog,
    events: Vec<ReadEvent>,
}

fn catalog(datasets: Vec<Dataset>, unconfirmed: Unconfirmed) -> Read {
    let db = DatabaseCatalog {
        name: "dev".into(),
        kind: DatabaseKind::Local,
        datasets: datasets.len(),
        notes: vec![],
        unconfirmed,
    };
    let mut events: Vec<ReadEvent> =
        datasets.into_iter().map(|dataset| ReadEvent::Dataset { database: "dev".into(), dataset }).collect();
    events.push(ReadEvent::DatabaseRead(db.clone()));
    let catalog = WarehouseCatalog { databases: vec![db], ..crate::testing::cluster_c() };
    Read { catalog, events }
}

impl Snapshots<'_, MemoryStore, ManifestFormat> {
    /// The protocol as `Outputs` runs it, one file at a time.
    async fn warehouse(&self, read: &Read) -> PublishReport {
        let opened = written(self, read).await;
        self.commit(opened.base, opened.tally, &read.catalog).await
    }
}

const RUN: &str = "20261205T090000000Z-00000002";
const OLDER_RUN: &str = "20261205T090000000Z-00000001";

fn snapshots(store: &MemoryStore) -> Snapshots<'_, MemoryStore, ManifestFormat> {
    run(store, RUN)
}

fn run<'a>(store: &'a MemoryStore, run_id: &'a str) -> Snapshots<'a, MemoryStore, ManifestFormat> {
    Snapshots {
        store,
        bucket: "b",
        format: ManifestFormat::new(Layout { prefix: "p/".into() }),
        run_id,
        committed_at: "t",
        dry_run: false,
        writes_in_parallel: 4,
    }
}

fn names(store: &MemoryStore) -> Vec<String> {
    store.keys("/datasets/")
}

/// A warehouse opened and written, not yet committed.
async fn written(s: &Snapshots<'_, MemoryStore, ManifestFormat>, read: &Read) -> OpenWarehouse<()> {
    let mut opened = s.open(&read.catalog).await;
    for event in &read.events {
        for file in s.files(&read.catalog, opened.base.writes(), event, &mut opened.pending) {
            let offered = s.offer(&opened.base, file).await;
            opened.tally.record(offered, s.dry_run);
        }
    }
    opened
}

/// A sharing warehouse's namespace record goes with it: kept while SVV_DATASHARES could
/// not be read, removed once a read shows the warehouse shares nothing.
#[tokio::test]
async fn a_namespace_record_stays_until_a_read_shows_it_gone() {
    let store = MemoryStore::default();
    let key = "p/namespaces/ns-1.json";
    let mut read = catalog(vec![table("s", "a", DatasetKind::Table)], Unconfirmed::Nothing);
    let shares = BTreeMap::from([("share".to_string(), "dev".to_string())]);
    read.events.insert(0, ReadEvent::Sharing(crate::catalog::Sharing { namespace: "ns-1".into(), shares }));
    assert!(run(&store, OLDER_RUN).warehouse(&read).await.committed);
    let record: crate::catalog::NamespaceRecord =
        serde_json::from_slice(&store.get("b", key).await.unwrap().bytes).unwrap();
    assert_eq!(record.warehouse, WarehouseId::ClusterIdentifier("c".into()));

    read.events.remove(0);
    read.catalog.sharing_unread = true;
    let unread = snapshots(&store).warehouse(&read).await;
    assert!(unread.committed && unread.removed == 0, "{unread:?}");
    assert!(store.get("b", key).await.is_ok(), "kept while the datashares were not read");

    read.catalog.sharing_unread = false;
    let later = run(&store, "20261205T100000000Z-00000001").warehouse(&read).await;
    assert_eq!(later.removed, 1, "{later:?}");
    assert!(store.get("b", key).await.is_err(), "gone once a read shows no datashare");
}

/// Two runs that interleave on one warehouse: the index is written with a conditional
/// write, so exactly one commit wins; an older loser says so in its report, a newer one's
/// commit stands against an older winner only until it retries.
#[tokio::test]
async fn two_commits_racing_on_one_index_leave_exactly_one_winner() {
    for (first, second) in [(OLDER_RUN, RUN), (RUN, OLDER_RUN)] {
        let store = MemoryStore::default();
        let read = catalog(vec![table("s", "a", DatasetKind::Table)], Unconfirmed::Nothing);
        let (one, two) = (run(&store, first), run(&store, second));
        let (opened_one, opened_two) = (written(&one, &read).await, written(&two, &read).await);
        let won = one.commit(opened_one.base, opened_one.tally, &read.catalog).await;
        let lost = two.commit(opened_two.base, opened_two.tally, &read.catalog).await;
        assert!(won.committed && !lost.committed, "{won:?} {lost:?}");
        if second == OLDER_RUN {
            assert_eq!(lost.superseded_by.as_deref(), Some(RUN), "{lost:?}");
        } else {
            assert!(lost.error.as_ref().unwrap().contains("another writer committed"), "{lost:?}");
        }
        let index: WarehouseIndex = serde_json::from_slice(
            &store.get("b", "p/index/111111111111/us-east-1/cluster/c.json").await.unwrap().bytes,
        )
        .unwrap();
        assert_eq!(index.run_id, first, "the first commit stands");
        assert!(index.datasets.iter().all(|e| store.objects.lock().unwrap().contains_key(&e.key)), "no lost file");
    }
}

/// A file no index references yet, at a key of today's layout and written within the last
/// 15 minutes, may be an overlapping writer's before its commit: the clean keeps it. Older
/// ones, and keys of a previous layout, go.
#[tokio::test]
async fn the_clean_keeps_what_an_overlapping_writer_may_still_commit() {
    let store = MemoryStore::default();
    let read = catalog(vec![table("s", "a", DatasetKind::Table)], Unconfirmed::Nothing);
    assert!(run(&store, OLDER_RUN).warehouse(&read).await.committed);
    let at = |name: &str| format!("p/datasets/111111111111/us-east-1/cluster/c/dev/s/{name}");
    store.put("b", &at("in_flight.json"), b"{}".to_vec(), "application/json", Condition::Any).await.unwrap();
    store.put("b", &at("a/0000.json"), b"{}".to_vec(), "application/json", Condition::Any).await.unwrap();
    store.objects.lock().unwrap().insert(at("stale.json"), b"{}".to_vec());

    let report = snapshots(&store).warehouse(&read).await;
    assert!(report.committed, "{report:?}");
    assert_eq!(names(&store), [at("a.json"), at("in_flight.json")], "{report:?}");
    assert_eq!(report.cleaned, 2);
}

/// An index committed under a forged run id dated far in the future is no newer run: the
/// next real run commits over it instead of yielding for ever.
#[tokio::test]
async fn a_far_future_run_id_in_an_index_freezes_nothing() {
    let store = MemoryStore::default();
    let read = catalog(vec![table("s", "a", DatasetKind::Table)], Unconfirmed::Nothing);
    assert!(run(&store, "99991231T235959999Z-00000000").warehouse(&read).await.committed);
    let report = snapshots(&store).warehouse(&read).await;
    assert!(report.committed && report.superseded_by.is_none(), "{report:?}");
}

#[tokio::test]
async fn a_failed_write_commits_nothing_and_removes_nothing() {
    let mut store = MemoryStore::default();
    let first = vec![table("s", "a", DatasetKind::Table), table("s", "b", DatasetKind::Table)];
    assert!(snapshots(&store).warehouse(&catalog(first, Unconfirmed::Nothing)).await.committed);
    let before = store.objects.lock().unwrap().clone();

    store.fail_puts = Some("/c.json");
    let next = vec![table("s", "a", DatasetKind::View), table("s", "c", DatasetKind::Table)];
    let report = snapshots(&store).warehouse(&catalog(next, Unconfirmed::Nothing)).await;
    assert!(!report.committed && report.error.unwrap().contains("not committed"));
    let after = store.objects.lock().unwrap().clone();
    assert!(after.contains_key("p/datasets/111111111111/us-east-1/cluster/c/dev/s/b.json"), "b not removed");
    assert_eq!(after.len(), before.len(), "only a's content ran ahead of the index: {after:?}");
}

#[tokio::test]
async fn unconfirmed_external_schemas_keep_their_datasets() {
    let store = MemoryStore::default();
    let first = vec![table("lake", "clicks", DatasetKind::ExternalTable), table("s", "a", DatasetKind::Table)];
    snapshots(&store).warehouse(&catalog(first, Unconfirmed::Nothing)).await;

    let unread_lake = Unconfirmed::Schemas(["lake".to_string()].into());
    let report = snapshots(&store).warehouse(&catalog(vec![], unread_lake)).await;
    assert_eq!((report.kept, report.removed), (1, 1), "lake.clicks kept, s.a dropped");
    assert_eq!(names(&store), vec!["p/datasets/111111111111/us-east-1/cluster/c/dev/lake/clicks.json"]);
}

/// Without a readable index, what a database not read has in S3 is found by listing, carried
/// into the new index, and so survives the runs after it.
#[tokio::test]
async fn an_unreadable_index_does_not_cost_a_database_not_read() {
    let store = MemoryStore::default();
    let mut both = catalog(vec![table("s", "a", DatasetKind::Table)], Unconfirmed::Nothing);
    let mart = DatabaseCatalog { name: "mart".into(), ..both.catalog.databases[0].clone() };
    let dataset = table("s", "a", DatasetKind::Table);
    both.events.push(ReadEvent::Dataset { database: "mart".into(), dataset });
    both.events.push(ReadEvent::DatabaseRead(mart.clone()));
    both.catalog.databases.push(mart);
    snapshots(&store).warehouse(&both).await;
    let index = "p/index/111111111111/us-east-1/cluster/c.json".to_string();
    store.objects.lock().unwrap().insert(index, b"not json".to_vec());

    let mut dev_only = catalog(vec![table("s", "a", DatasetKind::Table)], Unconfirmed::Nothing);
    dev_only.catalog.unread_databases.push("mart".into());
    for _ in 0..2 {
        let report = snapshots(&store).warehouse(&dev_only).await;
        assert!(report.committed && report.kept == 1, "{report:?}");
    }
    assert_eq!(names(&store).len(), 2, "mart's manifest is still there: {:?}", names(&store));
}

/// While a warehouse is written only digests of the committed index are kept; the commit
/// reads its entries again, and removes nothing when it cannot, or when an older run's commit
/// replaced the index meanwhile.
#[tokio::test]
async fn the_commit_reads_the_index_again_and_stops_if_it_cannot() {
    let index = "p/index/111111111111/us-east-1/cluster/c.json";
    let unreadable: fn(Vec<u8>) -> Vec<u8> = |_| b"not json".to_vec();
    let older_run: fn(Vec<u8>) -> Vec<u8> = |body| String::from_utf8(body).unwrap().replace(RUN, OLDER_RUN).into();
    for (error, tamper) in [("again", unreadable), ("changed", older_run)] {
        let store = MemoryStore::default();
        let both = vec![table("s", "a", DatasetKind::Table), table("s", "b", DatasetKind::Table)];
        snapshots(&store).warehouse(&catalog(both, Unconfirmed::Nothing)).await;
        let read = catalog(vec![table("s", "a", DatasetKind::Table)], Unconfirmed::Nothing);
        let s = snapshots(&store);
        let mut opened = s.open(&read.catalog).await;
        assert_eq!(opened.base.committed().len(), 2);
        for event in &read.events {
            for file in s.files(&read.catalog, opened.base.writes(), event, &mut opened.pending) {
                let offered = s.offer(&opened.base, file).await;
                assert!(matches!(offered, Offered::Unchanged(_)), "a is as committed");
                opened.tally.record(offered, false);
            }
        }
        let body = store.objects.lock().unwrap().remove(index).unwrap();
        store.objects.lock().unwrap().insert(index.into(), tamper(body));

        let report = s.commit(opened.base, opened.tally, &read.catalog).await;
        assert!(!report.committed && report.error.as_ref().unwrap().contains(error), "{report:?}");
        assert_eq!(names(&store).len(), 2, "b is not removed without the index's word");
    }
}

#[tokio::test]
async fn an_unreadable_index_is_replaced_and_nothing_is_removed() {
    let store = MemoryStore::default();
    snapshots(&store).warehouse(&catalog(vec![table("s", "a", DatasetKind::Table)], Unconfirmed::Nothing)).await;
    let index = "p/index/111111111111/us-east-1/cluster/c.json".to_string();
    store.objects.lock().unwrap().insert(index, b"not json".to_vec());

    let report = snapshots(&store).warehouse(&catalog(vec![], Unconfirmed::Nothing)).await;
    assert!(report.committed && report.error.unwrap().contains("unreadable"));
    assert_eq!(names(&store).len(), 1, "s.a is not removed on the word of an unreadable index");
}
