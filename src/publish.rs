//! Stage 4b: manifests out, as one atomic snapshot per warehouse.
//!
//! Per warehouse: read the committed index; write the manifests that changed (a manifest's key
//! holds its content hash, so the committed versions are never overwritten); then write the new
//! index, the commit point; then delete what the new index no longer references. Nothing of a
//! database whose read failed is dropped: its entries are carried into the new index. A failed
//! write stops the warehouse before its commit, and nothing is deleted.

use std::collections::BTreeSet;

use futures::{stream, StreamExt};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::catalog::{WarehouseCatalog, WarehouseId};
use crate::error::{AwsError, ErrorKind};
use crate::manifest::{self, decode_segment, Layout};
use crate::run::ObjectStore;

/// The commit point of one warehouse: every dataset with its manifest's key and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WarehouseIndex {
    pub api_version: String,
    pub kind: String,
    pub account_id: String,
    pub region: String,
    #[serde(flatten)]
    pub warehouse: WarehouseId,
    pub run_id: String,
    pub committed_at: String,
    pub datasets: Vec<IndexEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexEntry {
    pub database: String,
    pub schema: String,
    pub table: String,
    pub name: String,
    pub key: String,
    pub sha256: String,
}

/// What publishing one warehouse did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishReport {
    pub index_key: String,
    pub committed: bool,
    pub written: usize,
    pub unchanged: usize,
    pub removed: usize,
    /// Versions older than the previous index's, deleted after the commit.
    pub superseded: usize,
    /// Datasets kept from the previous index because their database, or the part of it they
    /// belong to (an external schema), could not be read.
    pub kept: usize,
    /// Dataset names written and removed, listed in dry runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_write: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_remove: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct Publisher<'a, S> {
    pub store: &'a S,
    pub bucket: &'a str,
    pub layout: &'a Layout,
    pub run_id: &'a str,
    pub committed_at: &'a str,
    pub dry_run: bool,
    /// S3 writes in flight for one warehouse.
    pub writes_in_parallel: usize,
}

/// The previous index: absent, read, or there but unreadable.
enum Previous {
    None,
    Read(WarehouseIndex),
    Unreadable(String),
}

impl<S: ObjectStore> Publisher<'_, S> {
    async fn previous(&self, key: &str) -> Result<Previous, AwsError> {
        match self.store.get(self.bucket, key).await {
            Ok(bytes) => Ok(match serde_json::from_slice::<WarehouseIndex>(&bytes) {
                Ok(index) => Previous::Read(index),
                Err(e) => Previous::Unreadable(e.to_string()),
            }),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(Previous::None),
            Err(e) if e.kind == ErrorKind::AccessDenied => self.absent_or(key, e).await,
            Err(e) => Err(e),
        }
    }

    /// S3 answers a missing key with 403, not 404, to a caller without an unconditioned
    /// s3:ListBucket on the bucket (GetObject API reference), and the template grants ListBucket
    /// only under the prefix. A listing tells a first run from a real refusal.
    async fn absent_or(&self, key: &str, refused: AwsError) -> Result<Previous, AwsError> {
        let listed = self.store.list(self.bucket, key).await?;
        if listed.iter().any(|k| k == key) {
            Err(refused)
        } else {
            Ok(Previous::None)
        }
    }

    pub async fn warehouse(&self, catalog: &WarehouseCatalog) -> PublishReport {
        let (account, region, warehouse) = (&catalog.account_id, &catalog.region, &catalog.warehouse);
        let index_key = self.layout.index_key(account, region, warehouse);
        let mut report = PublishReport { index_key: index_key.clone(), ..PublishReport::default() };
        let previous = match self.previous(&index_key).await {
            Ok(p) => p,
            Err(e) => {
                report.error =
                    Some(format!("could not read the committed index {index_key}: {e}; nothing written or removed"));
                return report;
            }
        };
        let old_entries: &[IndexEntry] = match &previous {
            Previous::Read(index) => &index.datasets,
            _ => &[],
        };
        let old_keys: BTreeSet<&str> = old_entries.iter().map(|e| e.key.as_str()).collect();
        let unread: BTreeSet<&str> = catalog.unread_databases.iter().map(String::as_str).collect();

        // Build every manifest; only those whose key (content hash) is new get written.
        let mut entries = Vec::new();
        let mut writes = Vec::new();
        for db in &catalog.databases {
            for d in &db.datasets {
                let bytes = manifest::build(catalog, db, d).to_bytes();
                let sha256 = manifest::sha256_hex(&bytes);
                let key = format!(
                    "{}{sha256}.json",
                    self.layout.dataset_prefix(account, region, warehouse, &db.name, &d.schema, &d.name)
                );
                let entry = IndexEntry {
                    database: db.name.clone(),
                    schema: d.schema.clone(),
                    table: d.name.clone(),
                    name: manifest::dataset_name(&db.name, &d.schema, &d.name),
                    key,
                    sha256,
                };
                if old_keys.contains(entry.key.as_str()) {
                    report.unchanged += 1;
                } else {
                    writes.push((entry.key.clone(), entry.name.clone(), bytes));
                }
                entries.push(entry);
            }
        }
        // Kept: everything of unread databases, and what a read could not confirm absent.
        let read_names: BTreeSet<String> = entries.iter().map(|e| e.name.clone()).collect();
        let unconfirmed = |e: &IndexEntry| {
            catalog.databases.iter().any(|db| db.name == e.database && db.unconfirmed.covers(&e.schema))
                && !read_names.contains(&e.name)
        };
        for e in old_entries.iter().filter(|e| unread.contains(e.database.as_str()) || unconfirmed(e)) {
            entries.push(e.clone());
            report.kept += 1;
        }
        entries.sort();
        let new_names: BTreeSet<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        let removed: Vec<String> =
            old_entries.iter().filter(|e| !new_names.contains(e.name.as_str())).map(|e| e.name.clone()).collect();
        report.written = writes.len();
        report.removed = removed.len();

        if self.dry_run {
            report.would_write = writes.into_iter().map(|(_, name, _)| name).collect();
            report.would_remove = removed;
            return report;
        }

        let failures: Vec<String> = stream::iter(writes)
            .map(|(key, _, bytes)| async move { self.store.put(self.bucket, &key, bytes, "application/json").await })
            .buffer_unordered(self.writes_in_parallel)
            .filter_map(|r| async move { r.err().map(|e| e.to_string()) })
            .collect()
            .await;
        if let Some(first) = failures.first() {
            report.error = Some(format!(
                "{} manifests could not be written ({first}); the index was not committed and nothing was removed",
                failures.len()
            ));
            return report;
        }

        let index = WarehouseIndex {
            api_version: manifest::API_VERSION.to_string(),
            kind: "WarehouseIndex".to_string(),
            account_id: account.clone(),
            region: region.clone(),
            warehouse: warehouse.clone(),
            run_id: self.run_id.to_string(),
            committed_at: self.committed_at.to_string(),
            datasets: entries,
        };
        let body = serde_json::to_vec_pretty(&index).expect("an index serialises");
        if let Err(e) = self.store.put(self.bucket, &index_key, body, "application/json").await {
            report.error = Some(format!("the index could not be committed ({e}); nothing was removed"));
            return report;
        }
        report.committed = true;
        info!(written = report.written, unchanged = report.unchanged, "warehouse committed");

        if let Previous::Unreadable(why) = &previous {
            // Without the previous index the datasets of unread databases are unknown: sweep nothing.
            warn!(why, "the previous index was unreadable; nothing removed this run");
            report.error = Some(format!("the previous index {index_key} was unreadable ({why}); it was replaced and nothing was removed this run"));
            return report;
        }
        // Kept: what the new index lists, and the previous version of each dataset it still has,
        // so that a reader holding the previous index can still fetch everything it lists until
        // the next commit. Dropped datasets go now.
        let current: BTreeSet<&str> = index.datasets.iter().map(|e| e.name.as_str()).collect();
        let mut referenced: BTreeSet<&str> = index.datasets.iter().map(|e| e.key.as_str()).collect();
        referenced.extend(old_entries.iter().filter(|e| current.contains(e.name.as_str())).map(|e| e.key.as_str()));
        let prefix = self.layout.datasets_prefix(account, region, warehouse);
        match self.sweep(&prefix, &referenced, &unread).await {
            Ok(deleted) => report.superseded = deleted.saturating_sub(report.removed),
            Err(e) => report.error = Some(format!("committed, but old manifests could not be removed: {e}")),
        }
        report
    }

    /// Deletes what is under `prefix` and not referenced, except objects of unread databases.
    async fn sweep(
        &self,
        prefix: &str,
        referenced: &BTreeSet<&str>,
        unread: &BTreeSet<&str>,
    ) -> Result<usize, AwsError> {
        let listed = self.store.list(self.bucket, prefix).await?;
        let doomed: Vec<String> = listed
            .into_iter()
            .filter(|key| !referenced.contains(key.as_str()))
            .filter(|key| {
                let first = key[prefix.len()..].split('/').next().unwrap_or_default();
                match decode_segment(first) {
                    // A hashed key does not say its database: keep it while any database is unread.
                    _ if first == "~hashed" => unread.is_empty(),
                    Some(database) => !unread.contains(database.as_str()),
                    None => false,
                }
            })
            .collect();
        let n = doomed.len();
        if n > 0 {
            self.store.delete(self.bucket, &doomed).await?;
        }
        Ok(n)
    }

    /// Removes every warehouse of a fully discovered region that discovery no longer found.
    /// Workgroups count as absent only when they could be listed.
    pub async fn remove_absent(
        &self,
        account: &str,
        region: &str,
        present: &BTreeSet<WarehouseId>,
        workgroups_listed: bool,
    ) -> Result<Vec<RemovedWarehouse>, AwsError> {
        let prefix = self.layout.region_index_prefix(account, region);
        let mut removed = Vec::new();
        for key in self.store.list(self.bucket, &prefix).await? {
            let Some(warehouse) = warehouse_of_index_key(&key[prefix.len()..]) else { continue };
            let unconfirmed = matches!(warehouse, WarehouseId::WorkgroupName(_)) && !workgroups_listed;
            if present.contains(&warehouse) || unconfirmed {
                continue;
            }
            let datasets_prefix = self.layout.datasets_prefix(account, region, &warehouse);
            let objects = self.store.list(self.bucket, &datasets_prefix).await?;
            if !self.dry_run {
                // The index goes first: from then on the registry no longer lists the warehouse.
                self.store.delete(self.bucket, std::slice::from_ref(&key)).await?;
                if !objects.is_empty() {
                    self.store.delete(self.bucket, &objects).await?;
                }
            }
            warn!(warehouse = %warehouse.name(), "warehouse no longer exists; its datasets are removed");
            removed.push(RemovedWarehouse { id: warehouse, objects: objects.len() });
        }
        Ok(removed)
    }
}

/// A warehouse that discovery no longer finds, and how many of its objects went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedWarehouse {
    #[serde(flatten)]
    pub id: WarehouseId,
    pub objects: usize,
}

/// `cluster/<name>.json` or `workgroup/<name>.json`, relative to a region's index prefix.
fn warehouse_of_index_key(relative: &str) -> Option<WarehouseId> {
    let (kind, file) = relative.split_once('/')?;
    let name = decode_segment(file.strip_suffix(".json")?)?;
    match kind {
        "cluster" => Some(WarehouseId::ClusterIdentifier(name)),
        "workgroup" => Some(WarehouseId::WorkgroupName(name)),
        _ => None,
    }
}
