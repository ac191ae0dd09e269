//! The in-memory consumers of the reader's events: a warehouse read whole, as the tests look at
//! it (every database with its datasets, sorted by schema and name), and an output that records
//! what each warehouse's trip sent.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use redshift_registry::catalog::{
    DatabaseKind, Dataset, NamespaceRecord, ReadEvent, Sharing, Unconfirmed, WarehouseCatalog, WarehouseId,
};
use redshift_registry::error::AwsError;
use redshift_registry::outcome::{PublishReport, RemovedWarehouse};
use redshift_registry::ports::{DataApi, NamespaceDirectory, Output, Target};
use redshift_registry::read::{read_warehouse, DatabaseOutcome, ReadError, ReadOptions};
use tokio::sync::mpsc;

/// One database read whole.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseCatalog {
    pub name: String,
    pub kind: DatabaseKind,
    pub datasets: Vec<Dataset>,
    pub notes: Vec<String>,
    pub unconfirmed: Unconfirmed,
}

#[derive(Debug)]
pub enum Outcome {
    Read(DatabaseCatalog),
    Failed { name: String, kind: DatabaseKind, error: ReadError },
}

/// Every event of one read, in order.
pub async fn drain(mut receiver: mpsc::Receiver<ReadEvent>) -> Vec<ReadEvent> {
    let mut events = Vec::new();
    while let Some(e) = receiver.recv().await {
        events.push(e);
    }
    events
}

/// The datasets each database was sent, sorted by schema and name.
fn datasets_by_database(events: &[ReadEvent]) -> BTreeMap<String, Vec<Dataset>> {
    let mut by_db: BTreeMap<String, Vec<Dataset>> = BTreeMap::new();
    for e in events {
        if let ReadEvent::Dataset { database, dataset } = e {
            by_db.entry(database.to_string()).or_default().push(dataset.clone());
        }
    }
    for datasets in by_db.values_mut() {
        datasets.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    }
    by_db
}

fn whole(
    db: redshift_registry::catalog::DatabaseCatalog,
    by_db: &mut BTreeMap<String, Vec<Dataset>>,
) -> DatabaseCatalog {
    let datasets = by_db.remove(&db.name).unwrap_or_default();
    assert_eq!(datasets.len(), db.datasets, "{}: the count sent is the count reported", db.name);
    DatabaseCatalog { name: db.name, kind: db.kind, datasets, notes: db.notes, unconfirmed: db.unconfirmed }
}

/// Reads a warehouse as the run does, with no namespace published, and gathers what the
/// reader sent.
pub async fn read_whole<A: DataApi>(
    api: &A,
    target: &Target,
    default_database: &str,
    options: &ReadOptions,
) -> Result<Vec<Outcome>, ReadError> {
    Ok(read_knowing(api, &HashMap::new(), target, default_database, options).await?.0)
}

/// Reads a warehouse as the run does, with the namespaces `namespaces` holds published, and
/// gathers what the reader sent: the databases, and what the warehouse shares.
pub async fn read_knowing<A: DataApi>(
    api: &A,
    namespaces: &HashMap<String, NamespaceRecord>,
    target: &Target,
    default_database: &str,
    options: &ReadOptions,
) -> Result<(Vec<Outcome>, Option<Sharing>), ReadError> {
    let (sender, receiver) = mpsc::channel(16);
    let reading = async {
        let sender = sender;
        read_warehouse(api, namespaces, target, default_database, options, &sender).await
    };
    let (read, events) = tokio::join!(reading, drain(receiver));
    let mut by_db = datasets_by_database(&events);
    let sharing = events.iter().find_map(|e| match e {
        ReadEvent::Sharing(s) => Some(s.clone()),
        _ => None,
    });
    let outcomes = read?
        .databases
        .into_iter()
        .map(|o| match o {
            DatabaseOutcome::Read(db) => Outcome::Read(whole(db, &mut by_db)),
            DatabaseOutcome::Failed { name, kind, error } => Outcome::Failed { name, kind, error },
        })
        .collect();
    Ok((outcomes, sharing))
}

/// A warehouse as an output was given it: where it is, and its databases read whole.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub warehouse: WarehouseId,
    pub databases: Vec<DatabaseCatalog>,
    pub unread_databases: Vec<String>,
}

/// An output that keeps what every warehouse's trip sent: the in-memory adapter of the output
/// port.
#[derive(Default)]
pub struct Recorder {
    pub catalogs: std::sync::Mutex<Vec<Recorded>>,
}

/// No namespace is published to a recorder.
impl NamespaceDirectory for Recorder {
    async fn holder(&self, _namespace: &str) -> Option<NamespaceRecord> {
        None
    }
}

impl Output for Recorder {
    type Publishing = Vec<ReadEvent>;

    async fn publish(&self, _: &WarehouseCatalog, read: mpsc::Receiver<ReadEvent>) -> Vec<ReadEvent> {
        drain(read).await
    }

    async fn commit(&self, events: Vec<ReadEvent>, catalog: &WarehouseCatalog) -> Vec<PublishReport> {
        let mut by_db = datasets_by_database(&events);
        let databases = catalog.databases.iter().map(|db| whole(db.clone(), &mut by_db)).collect();
        let recorded = Recorded {
            warehouse: catalog.warehouse.clone(),
            databases,
            unread_databases: catalog.unread_databases.clone(),
        };
        self.catalogs.lock().unwrap().push(recorded);
        Vec::new()
    }

    async fn sweep(
        &self,
        _account: &str,
        _region: &str,
        _present: &BTreeSet<WarehouseId>,
        _workgroups_listed: bool,
    ) -> Result<Vec<RemovedWarehouse>, AwsError> {
        Ok(Vec::new())
    }
}
