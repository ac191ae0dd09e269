//! Which outputs a run publishes to: the manifests always, Backstage entities when the config
//! has `outputs.backstage`. Together they are the run's one `Output`.

use std::collections::BTreeSet;

use crate::backstage::BackstageFormat;
use crate::catalog::{WarehouseCatalog, WarehouseId};
use crate::config::Config;
use crate::error::AwsError;
use crate::manifest::{Layout, ManifestFormat};
use crate::ports::{ObjectStore, Output};
use crate::publish::Snapshots;
use crate::report::{PublishReport, RemovedWarehouse};

/// The outputs a config turns on: manifests always, Backstage entities when configured.
pub struct Outputs<'a, S> {
    pub manifests: Snapshots<'a, S, ManifestFormat>,
    pub backstage: Option<Snapshots<'a, S, BackstageFormat>>,
}

/// What every output of a run shares.
pub struct RunContext<'a> {
    pub bucket: &'a str,
    pub run_id: &'a str,
    pub committed_at: &'a str,
    pub dry_run: bool,
    pub writes_in_parallel: usize,
}

impl<'a> RunContext<'a> {
    fn snapshots<S, F>(&self, store: &'a S, format: F) -> Snapshots<'a, S, F> {
        Snapshots {
            store,
            bucket: self.bucket,
            format,
            run_id: self.run_id,
            committed_at: self.committed_at,
            dry_run: self.dry_run,
            writes_in_parallel: self.writes_in_parallel,
        }
    }
}

impl<'a, S: ObjectStore> Outputs<'a, S> {
    pub fn new(store: &'a S, config: &Config, run: RunContext<'a>) -> Self {
        let layout = Layout { prefix: config.output.prefix.clone() };
        let backstage =
            config.outputs.backstage.as_ref().map(|b| run.snapshots(store, BackstageFormat::new(&layout, b)));
        Self { manifests: run.snapshots(store, ManifestFormat::new(layout)), backstage }
    }
}

impl<S: ObjectStore> Output for Outputs<'_, S> {
    async fn publish(&self, catalog: &WarehouseCatalog) -> Vec<PublishReport> {
        let backstage = async {
            match &self.backstage {
                Some(b) => Some(b.warehouse(catalog).await),
                None => None,
            }
        };
        let (manifests, backstage) = tokio::join!(self.manifests.warehouse(catalog), backstage);
        std::iter::once(manifests).chain(backstage).collect()
    }

    async fn sweep(
        &self,
        account: &str,
        region: &str,
        present: &BTreeSet<WarehouseId>,
        workgroups_listed: bool,
    ) -> Result<Vec<RemovedWarehouse>, AwsError> {
        let mut removed = self.manifests.sweep(account, region, present, workgroups_listed).await?;
        if let Some(b) = &self.backstage {
            for gone in b.sweep(account, region, present, workgroups_listed).await? {
                match removed.iter_mut().find(|r| r.id == gone.id) {
                    Some(r) => r.objects += gone.objects,
                    None => removed.push(gone),
                }
            }
        }
        Ok(removed)
    }
}
