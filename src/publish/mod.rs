//! Stage 4: the outputs. Each format (manifests, Backstage entities) turns a warehouse's datasets
//! into files while the warehouse is read; one commit protocol, shared by all, makes them an
//! atomic snapshot per warehouse:
//!
//! 1. read the format's committed index of the warehouse ([`Snapshots::open`]);
//! 2. as the reader sends datasets, write the files whose content changed ([`Snapshots::offer`];
//!    every file has a stable key, so a listing of the prefix shows exactly one object per
//!    dataset), keeping only each file's index entry;
//! 3. once the read has ended, write the new index, the commit point, with every file's key and
//!    sha256 ([`Snapshots::commit`]);
//! 4. delete what the new index no longer references.
//!
//! Nothing of a database whose read failed is dropped: its entries are carried into the new
//! index, and so are those the format keeps for parts of a database that could not be
//! confirmed. A failed write stops the warehouse before its commit, and nothing is deleted.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use time::OffsetDateTime;
use tracing::info;

use crate::catalog::{DatabaseCatalog, Dataset, ReadEvent, WarehouseCatalog, WarehouseId};
use crate::error::{AwsError, ErrorKind};
use crate::layout::{index_key, sha256_hex};
use crate::outcome::PublishReport;
use crate::ports::{Condition, ObjectStore};
use crate::run_id::RunId;

mod index;
mod sweep;
#[cfg(test)]
mod tests;

use index::{index_body, sha256_bytes, Committed, CommittedFile, IndexHead, Previous};
pub use index::{unseen_databases, IndexEntry, WarehouseIndex};

/// The version of every file format and index this crate writes.
pub const API_VERSION: &str = "redshift-registry/v1";

/// The datasets of each database whose read has not ended, for a format whose files group a
/// database's datasets.
#[derive(Default)]
pub struct ByDatabase(HashMap<Arc<str>, Vec<Dataset>>);

impl ByDatabase {
    /// Holds each dataset `wanted` takes until its database's read ends; then gives that
    /// database's datasets, sorted by schema and name, if the read confirmed all of it. A failed
    /// database, or one with parts not confirmed, gives none: its previous files stand.
    pub fn hold<'e>(
        &mut self,
        event: &'e ReadEvent,
        wanted: impl Fn(&Dataset) -> bool,
    ) -> Option<(&'e DatabaseCatalog, Vec<Dataset>)> {
        let db = match event {
            ReadEvent::Dataset { database, dataset } => {
                if wanted(dataset) {
                    self.0.entry(database.clone()).or_default().push(dataset.clone());
                }
                return None;
            }
            ReadEvent::DatabaseFailed(name) => {
                self.0.remove(name.as_str());
                return None;
            }
            ReadEvent::DatabaseRead(db) => db,
            ReadEvent::Sharing(_) => return None,
        };
        let mut datasets = self.0.remove(db.name.as_str()).unwrap_or_default();
        if !db.unconfirmed.is_nothing() {
            return None;
        }
        datasets.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        Some((db, datasets))
    }
}

/// A file a format made, ready to commit.
pub struct File {
    pub entry: IndexEntry,
    pub bytes: Vec<u8>,
}

impl File {
    pub fn new(
        database: &str,
        schema: Option<&str>,
        table: Option<&str>,
        name: String,
        key: String,
        bytes: Vec<u8>,
    ) -> Self {
        let entry = IndexEntry {
            database: database.to_string(),
            schema: schema.map(str::to_string),
            table: table.map(str::to_string),
            name,
            key,
            sha256: sha256_hex(&bytes),
        };
        Self { entry, bytes }
    }
}

/// A format: the files one warehouse becomes as it is read, and where its indexes live.
pub trait Format: Send + Sync {
    const NAME: &'static str;
    const CONTENT_TYPE: &'static str;
    /// What the format keeps of a warehouse between read events (the datasets of a database
    /// whose files group them, until the database's read ends).
    type Pending: Default + Send;
    /// Where the format's indexes are: `{root}{account}/{region}/{kind}/{name}.json`.
    fn index_root(&self) -> &str;
    /// Every file of a warehouse is under this prefix.
    fn warehouse_prefix(&self, account: &str, region: &str, warehouse: &WarehouseId) -> String;
    /// The warehouse's own files, before any dataset, with notes for the report.
    fn warehouse_files(
        &self,
        catalog: &WarehouseCatalog,
        notes: &mut Vec<String>,
        pending: &mut Self::Pending,
    ) -> Vec<File>;
    /// The files a read event completes.
    fn files(&self, catalog: &WarehouseCatalog, event: &ReadEvent, pending: &mut Self::Pending) -> Vec<File>;
    /// Whether a previous entry of a database that was read, and that this read did not
    /// produce, is kept: the read could not confirm it gone.
    fn keeps(&self, database: &DatabaseCatalog, entry: &IndexEntry) -> bool;
    /// The entry of a listed file (`relative` to the warehouse prefix) that belongs to what the
    /// read could not see: a database not read, or a part of one it could not confirm.
    fn unseen_entry(&self, catalog: &WarehouseCatalog, relative: &str, key: &str) -> Option<IndexEntry>;
    /// Whether a listed file (`relative` to the warehouse prefix) is at a key this layout
    /// writes today, so that it may be an overlapping writer's not yet committed. Every key of
    /// a format that has had one layout is.
    fn writes_key(&self, _relative: &str) -> bool {
        true
    }
}

/// One format's snapshots in one bucket, for one run.
pub struct Snapshots<'a, S, F> {
    pub store: &'a S,
    pub bucket: &'a str,
    pub format: F,
    pub run_id: &'a str,
    pub committed_at: &'a str,
    pub dry_run: bool,
    /// S3 writes in flight for one warehouse.
    pub writes_in_parallel: usize,
}

/// The committed entries a commit builds on.
struct OldEntries {
    entries: Vec<IndexEntry>,
    /// Whether this run produced each entry again, changed or not.
    seen: Vec<bool>,
}

/// Why a commit did not happen: another run's commit stands, or something failed.
enum Stopped {
    Superseded(String),
    Failed(String),
}

impl Stopped {
    /// The report of a warehouse whose commit stopped here; `after` says what was not done.
    fn into_report(self, mut report: PublishReport, after: &str) -> PublishReport {
        match self {
            Self::Superseded(newer) => report.superseded_by = Some(newer),
            Self::Failed(why) => report.error = Some(format!("{why}; {after}")),
        }
        report
    }
}

/// What every write of one warehouse in one format reads: the committed index as digests
/// (`None`: this warehouse is not written, see the report).
pub struct Baseline {
    previous: Option<Previous>,
    dry_run: bool,
    content_type: &'static str,
}

impl Baseline {
    /// Whether the warehouse is written in this format: not when a newer run committed it or
    /// its index could not be read (see the report).
    pub fn writes(&self) -> bool {
        self.previous.is_some()
    }

    /// The committed files, sorted by key digest (none without a readable index).
    fn committed(&self) -> &[CommittedFile] {
        match &self.previous {
            Some(Previous::Read(committed)) => &committed.files,
            _ => &[],
        }
    }
}

/// What happened to one file; positions are in the committed index.
pub enum Offered {
    /// As committed: only its position is kept.
    Unchanged(usize),
    /// Written, or listed to be written in a dry run; where the committed index had its key.
    Written(IndexEntry, Option<usize>),
    Failed(String),
}

/// What the writes of one warehouse in one format added up to.
pub struct Tally {
    report: PublishReport,
    written: Vec<IndexEntry>,
    /// Committed entries this run produced again, changed or not.
    seen: Vec<bool>,
    failures: Vec<String>,
}

impl Tally {
    pub fn record(&mut self, offered: Offered, dry_run: bool) {
        let seen = match offered {
            Offered::Unchanged(position) => {
                self.report.unchanged += 1;
                Some(position)
            }
            Offered::Written(entry, position) => {
                self.report.written += 1;
                if dry_run {
                    self.report.would_write.push(entry.name.clone());
                }
                self.written.push(entry);
                position
            }
            Offered::Failed(e) => {
                self.failures.push(e);
                None
            }
        };
        if let Some(flag) = seen.and_then(|p| self.seen.get_mut(p)) {
            *flag = true;
        }
    }
}

/// One warehouse being written in one format: what the writes read, what the format holds
/// between events, what they added up to, and the warehouse's own files to offer first.
pub struct OpenWarehouse<H> {
    pub base: Baseline,
    pub pending: H,
    pub tally: Tally,
    pub initial: Vec<File>,
}

impl<S: ObjectStore, F: Format> Snapshots<'_, S, F> {
    async fn previous(&self, key: &str) -> Result<Previous, AwsError> {
        let Some(object) = self.store.get_if_present(self.bucket, key).await? else {
            return Ok(Previous::None);
        };
        Ok(match serde_json::from_slice::<WarehouseIndex<CommittedFile>>(&object.bytes) {
            Ok(index) => {
                let mut files = index.datasets;
                files.sort_unstable();
                Previous::Read(Committed { run_id: index.run_id, etag: object.etag, files })
            }
            Err(e) => Previous::Unreadable { why: e.to_string(), etag: object.etag },
        })
    }

    /// Opens a warehouse's snapshot for writing: reads its committed index. A warehouse whose
    /// index a newer run committed, or whose index cannot be read, is not written at all.
    pub async fn open(&self, catalog: &WarehouseCatalog) -> OpenWarehouse<F::Pending> {
        let (account, region, warehouse) = (&catalog.account_id, &catalog.region, &catalog.warehouse);
        let index_key = index_key(self.format.index_root(), account, region, warehouse);
        let mut report =
            PublishReport { output: F::NAME.to_string(), index_key: index_key.clone(), ..PublishReport::default() };
        let mut pending = F::Pending::default();
        let previous = match self.previous(&index_key).await {
            Ok(Previous::Read(index)) if self.newer(&index.run_id) => {
                report.superseded_by = Some(index.run_id.clone());
                None
            }
            Ok(previous) => Some(previous),
            Err(e) => {
                report.error =
                    Some(format!("could not read the committed index {index_key}: {e}; nothing written or removed"));
                None
            }
        };
        let committed = match &previous {
            Some(Previous::Read(committed)) => committed.files.len(),
            _ => 0,
        };
        let mut tally = Tally { report, written: Vec::new(), seen: vec![false; committed], failures: Vec::new() };
        let mut initial = Vec::new();
        if previous.is_some() {
            initial = self.format.warehouse_files(catalog, &mut tally.report.notes, &mut pending);
        }
        OpenWarehouse {
            base: Baseline { previous, dry_run: self.dry_run, content_type: F::CONTENT_TYPE },
            pending,
            tally,
            initial,
        }
    }

    /// The files one read event completes, for [`Snapshots::offer`]; none when the warehouse is
    /// not written in this format (`writes`: [`Baseline::writes`]).
    pub fn files(
        &self,
        catalog: &WarehouseCatalog,
        writes: bool,
        event: &ReadEvent,
        pending: &mut F::Pending,
    ) -> Vec<File> {
        if !writes {
            return Vec::new();
        }
        self.format.files(catalog, event, pending)
    }

    /// Writes a file unless the committed index has it with the same content.
    pub async fn offer(&self, base: &Baseline, file: File) -> Offered {
        let committed = base.committed();
        let position = Committed::position(committed, &file.entry.key);
        match position {
            Some(p) if committed[p].sha256.is_some_and(|sha| Some(sha) == sha256_bytes(&file.entry.sha256)) => {
                return Offered::Unchanged(p)
            }
            _ if base.dry_run => return Offered::Written(file.entry, position),
            _ => {}
        }
        match self.store.put(self.bucket, &file.entry.key, file.bytes, base.content_type, Condition::Any).await {
            Ok(()) => Offered::Written(file.entry, position),
            Err(e) => Offered::Failed(e.to_string()),
        }
    }

    /// Commits what was written of a warehouse whose read has ended; what it did, or why it
    /// stopped, is in the report.
    pub async fn commit(&self, base: Baseline, tally: Tally, catalog: &WarehouseCatalog) -> PublishReport {
        let Tally { mut report, written, seen, failures } = tally;
        let Some(previous) = base.previous else { return report };
        if let (false, Some(first)) = (self.dry_run, failures.first()) {
            report.error = Some(format!(
                "{} files could not be written ({first}); the index was not committed and nothing was removed",
                failures.len()
            ));
            return report;
        }
        let old = match self.old_entries(catalog, &previous, &report.index_key, &seen).await {
            Ok(old) => old,
            Err(stopped) => return stopped.into_report(report, "nothing committed or removed"),
        };
        let (entries, removed) = self.entries(catalog, &written, &old.entries, &old.seen, &mut report);
        report.removed = removed.len();
        // The listing of the warehouse's prefix finds what the index no longer has, except the
        // files a format keeps elsewhere (the namespace record): those are named here.
        let prefix = self.format.warehouse_prefix(&catalog.account_id, &catalog.region, &catalog.warehouse);
        let elsewhere: Vec<String> =
            removed.iter().filter(|e| !e.key.starts_with(&prefix)).map(|e| e.key.clone()).collect();
        let removed: Vec<String> = removed.into_iter().map(|e| e.name.clone()).collect();
        if self.dry_run {
            report.would_remove = removed;
            return report;
        }
        let index = WarehouseIndex {
            api_version: API_VERSION.to_string(),
            kind: "WarehouseIndex".to_string(),
            account_id: catalog.account_id.clone(),
            region: catalog.region.clone(),
            warehouse: catalog.warehouse.clone(),
            run_id: self.run_id.to_string(),
            committed_at: self.committed_at.to_string(),
            datasets: entries,
        };
        let body = index_body(&index);
        let written = self.store.put(self.bucket, &report.index_key, body, "application/json", previous.condition());
        if let Err(e) = written.await {
            let stopped = match e.kind {
                ErrorKind::Conflict => self.lost_race(&report.index_key).await,
                _ => Stopped::Failed(format!("the index could not be committed ({e})")),
            };
            return stopped.into_report(report, "nothing was removed");
        }
        report.committed = true;
        info!(output = F::NAME, written = report.written, unchanged = report.unchanged, "warehouse committed");
        self.clean(catalog, &previous, &index, elsewhere, &mut report).await;
        report
    }

    /// After a conditional write of the index failed, another commit won: a newer run's stands;
    /// any other (an older run's shard, a concurrent delivery) is settled by a retry.
    async fn lost_race(&self, index_key: &str) -> Stopped {
        match self.committed_by_newer(index_key).await {
            Some(newer) => Stopped::Superseded(newer),
            None => Stopped::Failed(format!(
                "another writer committed {index_key} while this run wrote (its conditional write won); \
                 a retry or the next run commits"
            )),
        }
    }

    /// The committed entries the new index builds on, each with whether this run produced it
    /// again: a readable index is read again (only digests were kept while writing); without
    /// one, the files of what the read could not see are recovered by listing.
    async fn old_entries(
        &self,
        catalog: &WarehouseCatalog,
        previous: &Previous,
        index_key: &str,
        seen: &[bool],
    ) -> Result<OldEntries, Stopped> {
        let Previous::Read(committed) = previous else {
            let entries = self
                .recover(catalog)
                .await
                .map_err(|e| Stopped::Failed(format!("could not list {index_key}'s files: {e}")))?;
            return Ok(OldEntries { seen: vec![false; entries.len()], entries });
        };
        let again = |e: &dyn std::fmt::Display| {
            Stopped::Failed(format!("could not read the committed index {index_key} again: {e}"))
        };
        let object = self.store.get(self.bucket, index_key).await.map_err(|e| again(&e))?;
        let index: WarehouseIndex = serde_json::from_slice(&object.bytes).map_err(|e| again(&e))?;
        drop(object.bytes);
        // Another commit in between: positions and digests describe an index that is gone. A
        // newer run's stands; an older one's is settled by a retry or the next run.
        if object.etag != committed.etag {
            if self.newer(&index.run_id) {
                return Err(Stopped::Superseded(index.run_id));
            }
            return Err(Stopped::Failed(format!(
                "the committed index {index_key} changed while this run wrote (run {})",
                index.run_id
            )));
        }
        let produced = |e: &IndexEntry| {
            Committed::position(&committed.files, &e.key).is_some_and(|p| seen.get(p).copied().unwrap_or(false))
        };
        let seen = index.datasets.iter().map(produced).collect();
        Ok(OldEntries { entries: index.datasets, seen })
    }

    /// The newer run that committed the index at `key`, if one did: it saw the warehouse after
    /// this run's discovery did, so the warehouse is not this run's to write or remove. Only the
    /// run id is parsed, not the entries (a large warehouse's index is tens of MB).
    async fn committed_by_newer(&self, key: &str) -> Option<String> {
        let object = self.store.get(self.bucket, key).await.ok()?;
        let head: IndexHead = serde_json::from_slice(&object.bytes).ok()?;
        self.newer(&head.run_id).then_some(head.run_id)
    }

    /// Whether `run_id` is of a newer run, by the time it carries, so that an old run's shard
    /// delivered late (a retry after the next run) yields instead of rolling a warehouse back.
    fn newer(&self, run_id: &str) -> bool {
        RunId::parse(self.run_id).is_ok_and(|this| this.is_superseded_by(run_id, OffsetDateTime::now_utc()))
    }

    /// The new index's entries, sorted: the files this run wrote, the committed ones it produced
    /// again unchanged, and those kept for what could not be read; and the names of the
    /// committed datasets that are gone (a file moved to another key is not gone).
    fn entries<'e>(
        &self,
        catalog: &WarehouseCatalog,
        written: &'e [IndexEntry],
        old_entries: &'e [IndexEntry],
        seen: &[bool],
        report: &mut PublishReport,
    ) -> (Vec<&'e IndexEntry>, Vec<&'e IndexEntry>) {
        let unread: BTreeSet<&str> = catalog.unread_databases.iter().map(String::as_str).collect();
        let written_keys: HashSet<&str> = written.iter().map(|e| e.key.as_str()).collect();
        let written_names: HashSet<&str> = written.iter().map(|e| e.name.as_str()).collect();
        // A warehouse's own files (database "") that this read did not make again are kept when
        // what they say could not be read.
        let keeps = |e: &IndexEntry| {
            unread.contains(e.database.as_str())
                || (e.database.is_empty() && catalog.sharing_unread)
                || catalog.databases.iter().any(|db| db.name == e.database && self.format.keeps(db, e))
        };
        let mut entries: Vec<&IndexEntry> = written.iter().collect();
        let mut removed = Vec::new();
        for (i, e) in old_entries.iter().enumerate() {
            if written_keys.contains(e.key.as_str()) {
                continue;
            }
            if seen.get(i).copied().unwrap_or(false) {
                entries.push(e);
            } else if keeps(e) {
                entries.push(e);
                report.kept += 1;
            } else if !written_names.contains(e.name.as_str()) {
                removed.push(e);
            }
        }
        entries.sort();
        (entries, removed)
    }

    /// Without a readable previous index, the files of what this read could not see (databases
    /// not read, parts not confirmed) are found by listing the warehouse, so that the new index
    /// still lists them and no later run takes them for garbage. Their sha256 is unknown ("").
    async fn recover(&self, catalog: &WarehouseCatalog) -> Result<Vec<IndexEntry>, AwsError> {
        if complete(catalog) {
            return Ok(Vec::new());
        }
        let prefix = self.format.warehouse_prefix(&catalog.account_id, &catalog.region, &catalog.warehouse);
        let keys = self.store.list(self.bucket, &prefix).await?;
        Ok(keys.into_iter().filter_map(|key| self.format.unseen_entry(catalog, &key[prefix.len()..], &key)).collect())
    }
}

/// Whether the read saw every database and every part of each.
fn complete(catalog: &WarehouseCatalog) -> bool {
    catalog.unread_databases.is_empty() && catalog.databases.iter().all(|d| d.unconfirmed.is_nothing())
}
