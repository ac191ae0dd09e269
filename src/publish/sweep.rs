//! What a commit leaves behind, deleted: the objects its new index no longer references, and the
//! warehouses a complete discovery no longer finds.

use std::collections::BTreeSet;

use time::OffsetDateTime;
use tracing::warn;

use super::index::{key_digest, Previous, WarehouseIndex};
use super::{complete, Format, IndexEntry, Snapshots};
use crate::catalog::{WarehouseCatalog, WarehouseId};
use crate::error::AwsError;
use crate::layout::warehouse_of_index_key;
use crate::outcome::{PublishReport, RemovedWarehouse};
use crate::ports::ObjectStore;

/// How long an object no index references is kept: a writer puts its files before its commit,
/// within one invocation, and Lambda ends an invocation after 15 minutes at most (Lambda
/// quotas). An overlapping run or a redelivered shard may be that writer.
const IN_FLIGHT: time::Duration = time::Duration::minutes(15);

impl<S: ObjectStore, F: Format> Snapshots<'_, S, F> {
    /// After the commit: deletes every object under the warehouse that the new index does not
    /// reference: dropped datasets (the previous index had them), a previous layout's keys, and
    /// other keys of today's layout once older than [`IN_FLIGHT`] (younger, they may be the
    /// files of an overlapping writer that has not committed yet). Without a readable
    /// previous index, objects of databases not read cannot be told from garbage: then only a
    /// complete read sweeps.
    pub(super) async fn clean(
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
