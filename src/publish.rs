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

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::{info, warn};

use sha2::{Digest, Sha256};

use crate::catalog::{DatabaseCatalog, ReadEvent, WarehouseCatalog, WarehouseId};
use crate::error::{AwsError, ErrorKind};
use crate::layout::{index_key, sha256_hex, warehouse_of_index_key};
use crate::outcome::{PublishReport, RemovedWarehouse};
use crate::ports::{Condition, ObjectStore};
use crate::run_id::RunId;

/// The version of every file format and index this crate writes.
pub const API_VERSION: &str = "redshift-registry/v1";

/// The commit point of one warehouse in one format: every file with its key and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WarehouseIndex<E = IndexEntry> {
    pub api_version: String,
    pub kind: String,
    pub account_id: String,
    pub region: String,
    #[serde(flatten)]
    pub warehouse: WarehouseId,
    pub run_id: String,
    pub committed_at: String,
    /// Committed as references: a large warehouse's entries are not copied to be written.
    pub datasets: Vec<E>,
}

/// The run that committed an index, read without its entries.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexHead {
    run_id: String,
}

/// One file of a snapshot: a dataset's manifest, or a file of entities of one database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexEntry {
    pub database: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// What the file stands for: `database.schema.table` for a manifest.
    pub name: String,
    pub key: String,
    pub sha256: String,
}

impl IndexEntry {
    /// The entry of a file that holds a whole database, found by listing: its content unknown.
    pub fn unseen_database_file(database: &str, relative: &str, key: &str) -> Self {
        Self {
            database: database.to_string(),
            schema: None,
            table: None,
            name: relative.to_string(),
            key: key.to_string(),
            sha256: String::new(),
        }
    }
}

/// The databases of a warehouse whose files a new index keeps unread: not read, or read with
/// parts not confirmed.
pub fn unseen_databases(catalog: &WarehouseCatalog) -> impl Iterator<Item = &String> {
    let partly = catalog.databases.iter().filter(|d| !d.unconfirmed.is_nothing()).map(|d| &d.name);
    catalog.unread_databases.iter().chain(partly)
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
    type Held: Default + Send;
    /// Where the format's indexes are: `{root}{account}/{region}/{kind}/{name}.json`.
    fn index_root(&self) -> &str;
    /// Every file of a warehouse is under this prefix.
    fn warehouse_prefix(&self, account: &str, region: &str, warehouse: &WarehouseId) -> String;
    /// The warehouse's own files, before any dataset, with notes for the report.
    fn warehouse_files(&self, catalog: &WarehouseCatalog, notes: &mut Vec<String>, held: &mut Self::Held) -> Vec<File>;
    /// The files a read event completes.
    fn files(&self, catalog: &WarehouseCatalog, event: &ReadEvent, held: &mut Self::Held) -> Vec<File>;
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

/// How long an object no index references is kept: a writer puts its files before its commit,
/// within one invocation, and Lambda ends an invocation after 15 minutes at most (Lambda
/// quotas). An overlapping run or a redelivered shard may be that writer.
const IN_FLIGHT: time::Duration = time::Duration::minutes(15);

/// The previous index: absent, read, or there but unreadable; with the ETag the commit's
/// conditional write expects.
enum Previous {
    None,
    Read(Committed),
    Unreadable { why: String, etag: String },
}

impl Previous {
    /// What the commit's write expects at the index key: the version opened, or none.
    fn condition(&self) -> Condition<'_> {
        match self {
            Self::None => Condition::Absent,
            Self::Read(committed) => Condition::Unchanged(&committed.etag),
            Self::Unreadable { etag, .. } => Condition::Unchanged(etag),
        }
    }
}

/// What the writes keep of a readable committed index: each file's key, as a digest, and
/// sha256, sorted by key digest: 49 bytes a file, where a parsed entry takes about 460 (46 MB
/// for a warehouse of 100,000 tables). The entries are read again for the commit, once the
/// warehouse's read has ended and freed what it held.
struct Committed {
    run_id: String,
    etag: String,
    files: Vec<CommittedFile>,
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

/// One committed file, as [`Committed`] keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct CommittedFile {
    key: [u8; 16],
    /// `None` for a file recovered by listing, whose content is unknown.
    sha256: Option<[u8; 32]>,
}

impl CommittedFile {
    fn of(key: &str, sha256_hex: &str) -> Self {
        Self { key: key_digest(key), sha256: sha256_bytes(sha256_hex) }
    }
}

/// Parses an index's entries into [`CommittedFile`]s one at a time, checked as [`IndexEntry`]s,
/// so that the whole index is never held parsed.
impl<'de> Deserialize<'de> for CommittedFile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entry = IndexEntry::deserialize(deserializer)?;
        Ok(Self::of(&entry.key, &entry.sha256))
    }
}

fn key_digest(key: &str) -> [u8; 16] {
    let mut digest = [0; 16];
    digest.copy_from_slice(&Sha256::digest(key.as_bytes())[..16]);
    digest
}

fn sha256_bytes(hex: &str) -> Option<[u8; 32]> {
    let mut bytes = [0; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(bytes)
}

/// What every write of one warehouse in one format reads: the committed index as digests
/// (`None`: this warehouse is not written, see the report).
pub struct Base {
    previous: Option<Previous>,
    dry_run: bool,
    content_type: &'static str,
}

impl Base {
    /// The committed files, sorted by key digest (none without a readable index).
    fn committed(&self) -> &[CommittedFile] {
        match &self.previous {
            Some(Previous::Read(committed)) => &committed.files,
            _ => &[],
        }
    }
}

impl Committed {
    /// Where the committed index has `key`.
    fn position(files: &[CommittedFile], key: &str) -> Option<usize> {
        let digest = key_digest(key);
        files.binary_search_by(|f| f.key.cmp(&digest)).ok()
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
pub struct Opened<H> {
    pub base: Base,
    pub held: H,
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
    pub async fn open(&self, catalog: &WarehouseCatalog) -> Opened<F::Held> {
        let (account, region, warehouse) = (&catalog.account_id, &catalog.region, &catalog.warehouse);
        let index_key = index_key(self.format.index_root(), account, region, warehouse);
        let mut report =
            PublishReport { output: F::NAME.to_string(), index_key: index_key.clone(), ..PublishReport::default() };
        let mut held = F::Held::default();
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
            initial = self.format.warehouse_files(catalog, &mut tally.report.notes, &mut held);
        }
        Opened { base: Base { previous, dry_run: self.dry_run, content_type: F::CONTENT_TYPE }, held, tally, initial }
    }

    /// The files one read event completes, for [`Snapshots::offer`]; none once the warehouse is
    /// not being written.
    pub fn files(&self, catalog: &WarehouseCatalog, base: &Base, event: &ReadEvent, held: &mut F::Held) -> Vec<File> {
        if base.previous.is_none() {
            return Vec::new();
        }
        self.format.files(catalog, event, held)
    }

    /// Writes a file unless the committed index has it with the same content.
    pub async fn offer(&self, base: &Base, file: File) -> Offered {
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
    pub async fn commit(&self, opened: Opened<F::Held>, catalog: &WarehouseCatalog) -> PublishReport {
        let Opened { base, tally: Tally { mut report, written, seen, failures }, .. } = opened;
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

    /// After the commit: deletes every object under the warehouse that the new index does not
    /// reference: dropped datasets (the previous index had them), a previous layout's keys, and
    /// other keys of today's layout once older than [`IN_FLIGHT`] (younger, they may be the
    /// files of an overlapping writer that has not committed yet). Without a readable
    /// previous index, objects of databases not read cannot be told from garbage: then only a
    /// complete read sweeps.
    async fn clean(
        &self,
        catalog: &WarehouseCatalog,
        previous: &Previous,
        index: &WarehouseIndex<&IndexEntry>,
        elsewhere: Vec<String>,
        report: &mut PublishReport,
    ) {
        match previous {
            Previous::Unreadable { why, .. } => {
                warn!(why, "the previous index was unreadable; nothing removed this run");
                report.error = Some(format!(
                    "the previous index {} was unreadable ({why}); it was replaced and nothing was removed this run",
                    report.index_key
                ));
                return;
            }
            Previous::None if !complete(catalog) => return,
            _ => {}
        }
        let referenced: BTreeSet<&str> = index.datasets.iter().map(|e| e.key.as_str()).collect();
        let dropped = |key: &str| match previous {
            Previous::Read(committed) => committed.files.binary_search_by(|f| f.key.cmp(&key_digest(key))).is_ok(),
            _ => false,
        };
        let settled = OffsetDateTime::now_utc() - IN_FLIGHT;
        let prefix = self.format.warehouse_prefix(&index.account_id, &index.region, &index.warehouse);
        let swept = async {
            let doomed: Vec<String> = self
                .store
                .list_modified(self.bucket, &prefix)
                .await?
                .into_iter()
                .filter(|l| {
                    let in_flight = l.modified >= settled && self.format.writes_key(&l.key[prefix.len()..]);
                    !referenced.contains(l.key.as_str()) && (dropped(&l.key) || !in_flight)
                })
                .map(|l| l.key)
                .chain(elsewhere)
                .collect();
            if !doomed.is_empty() {
                self.store.delete(self.bucket, &doomed).await?;
            }
            Ok::<usize, AwsError>(doomed.len())
        };
        match swept.await {
            Ok(deleted) => report.cleaned = deleted.saturating_sub(report.removed),
            Err(e) => report.error = Some(format!("committed, but old files could not be removed: {e}")),
        }
    }

    /// Removes every warehouse of a region that a complete discovery no longer found: its files
    /// first, then its index. The index is how a run finds a warehouse to remove, so a removal
    /// cut in between is found and finished by the next run; removed first, it would leave files
    /// that no run lists again.
    pub async fn sweep(
        &self,
        account: &str,
        region: &str,
        present: &BTreeSet<WarehouseId>,
        workgroups_listed: bool,
    ) -> Result<Vec<RemovedWarehouse>, AwsError> {
        let prefix = format!("{}{account}/{region}/", self.format.index_root());
        let mut removed = Vec::new();
        for key in self.store.list(self.bucket, &prefix).await? {
            let Some(warehouse) = warehouse_of_index_key(&key[prefix.len()..]) else { continue };
            let unconfirmed = matches!(warehouse, WarehouseId::WorkgroupName(_)) && !workgroups_listed;
            if present.contains(&warehouse) || unconfirmed || self.committed_by_newer(&key).await.is_some() {
                continue;
            }
            let objects =
                self.store.list(self.bucket, &self.format.warehouse_prefix(account, region, &warehouse)).await?;
            if !self.dry_run {
                if !objects.is_empty() {
                    self.store.delete(self.bucket, &objects).await?;
                }
                self.store.delete(self.bucket, std::slice::from_ref(&key)).await?;
            }
            warn!(output = F::NAME, warehouse = %warehouse.name(), "warehouse no longer exists; its files are removed");
            removed.push(RemovedWarehouse { id: warehouse, objects: objects.len() });
        }
        Ok(removed)
    }
}

/// An index as written: compact JSON (a third smaller than indented, 24 MB at 100,000 tables)
/// in a buffer of its exact size, counted first, so that it never holds a doubled capacity
/// beside the entries it is made from.
fn index_body(index: &WarehouseIndex<&IndexEntry>) -> Vec<u8> {
    let mut counted = Counted(0);
    serde_json::to_writer(&mut counted, index).expect("an index serialises");
    let mut body = Vec::with_capacity(counted.0);
    serde_json::to_writer(&mut body, index).expect("an index serialises");
    body
}

/// A writer that only counts bytes.
struct Counted(usize);

impl std::io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether the read saw every database and every part of each.
fn complete(catalog: &WarehouseCatalog) -> bool {
    catalog.unread_databases.is_empty() && catalog.databases.iter().all(|d| d.unconfirmed.is_nothing())
}

#[cfg(test)]
mod tests {
    //! The commit protocol over an in-memory object store: the rules that need no S3 to check.

    use std::collections::BTreeMap;

    use super::*;
    use crate::catalog::{DatabaseKind, Dataset, DatasetKind, Unconfirmed};
    use crate::layout::Layout;
    use crate::manifest::ManifestFormat;
    use crate::testing::MemoryStore;

    fn table(schema: &str, name: &str, kind: DatasetKind) -> Dataset {
        Dataset {
            schema: schema.into(),
            name: name.into(),
            kind,
            owner: None,
            description: None,
            view_definition: None,
            location: None,
            row_count: None,
            size_mb: None,
            columns: Vec::new(),
            upstream: Vec::new(),
        }
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
        let catalog = WarehouseCatalog {
            account_id: "111111111111".into(),
            region: "us-east-1".into(),
            warehouse: WarehouseId::ClusterIdentifier("c".into()),
            arn: None,
            labels: BTreeMap::new(),
            databases: vec![db],
            unread_databases: vec![],
            sharing_unread: false,
        };
        Read { catalog, events }
    }

    impl Snapshots<'_, MemoryStore, ManifestFormat> {
        /// The protocol as `Outputs` runs it, one file at a time.
        async fn warehouse(&self, read: &Read) -> PublishReport {
            let opened = written(self, read).await;
            self.commit(opened, &read.catalog).await
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
    async fn written(s: &Snapshots<'_, MemoryStore, ManifestFormat>, read: &Read) -> Opened<()> {
        let mut opened = s.open(&read.catalog).await;
        for event in &read.events {
            for file in s.files(&read.catalog, &opened.base, event, &mut opened.held) {
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
            let won = one.commit(opened_one, &read.catalog).await;
            let lost = two.commit(opened_two, &read.catalog).await;
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
                for file in s.files(&read.catalog, &opened.base, event, &mut opened.held) {
                    let offered = s.offer(&opened.base, file).await;
                    assert!(matches!(offered, Offered::Unchanged(_)), "a is as committed");
                    opened.tally.record(offered, false);
                }
            }
            let body = store.objects.lock().unwrap().remove(index).unwrap();
            store.objects.lock().unwrap().insert(index.into(), tamper(body));

            let report = s.commit(opened, &read.catalog).await;
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
}
