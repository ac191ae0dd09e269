//! The index of one warehouse in one format, the commit point: as written, as the writes keep
//! it (digests only), and as the next commit reads it again.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::{WarehouseCatalog, WarehouseId};
use crate::ports::Condition;

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
pub(super) struct IndexHead {
    pub(super) run_id: String,
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
    pub(crate) fn unseen_database_file(database: &str, relative: &str, key: &str) -> Self {
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

/// The previous index: absent, read, or there but unreadable; with the ETag the commit's
/// conditional write expects.
pub(super) enum Previous {
    None,
    Read(Committed),
    Unreadable { why: String, etag: String },
}

impl Previous {
    /// What the commit's write expects at the index key: the version opened, or none.
    pub(super) fn condition(&self) -> Condition<'_> {
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
pub(super) struct Committed {
    pub(super) run_id: String,
    pub(super) etag: String,
    pub(super) files: Vec<CommittedFile>,
}

impl Committed {
    /// Where the committed index has `key`.
    pub(super) fn position(files: &[CommittedFile], key: &str) -> Option<usize> {
        let digest = key_digest(key);
        files.binary_search_by(|f| f.key.cmp(&digest)).ok()
    }
}

/// One committed file, as [`Committed`] keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct CommittedFile {
    pub(super) key: [u8; 16],
    /// `None` for a file recovered by listing, whose content is unknown.
    pub(super) sha256: Option<[u8; 32]>,
}

impl CommittedFile {
    pub(super) fn of(key: &str, sha256_hex: &str) -> Self {
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

pub(super) fn key_digest(key: &str) -> [u8; 16] {
    let mut digest = [0; 16];
    digest.copy_from_slice(&Sha256::digest(key.as_bytes())[..16]);
    digest
}

pub(super) fn sha256_bytes(hex: &str) -> Option<[u8; 32]> {
    let mut bytes = [0; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(bytes)
}

/// An index as written: compact JSON (a third smaller than indented, 24 MB at 100,000 tables)
/// in a buffer of its exact size, counted first, so that it never holds a doubled capacity
/// beside the entries it is made from.
pub(super) fn index_body(index: &WarehouseIndex<&IndexEntry>) -> Vec<u8> {
    let mut counted = Counted(0);
    serde_json::to_writer(&mut counted, index).expect("an index serialises");
    let mut body = Vec::with_capacity(counted.0);
    serde_json::to_writer(&mut body, index).expect("an index serialises");
    body
}

/// A writer that only counts bytes.
pub(super) struct Counted(usize);

impl std::io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
