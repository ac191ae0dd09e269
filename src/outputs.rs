//! Which outputs a run publishes to: the manifests always, Backstage entities when the config
//! has `outputs.backstage`. Together they are the run's one `Output`.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{future, stream, StreamExt};
use tokio::sync::mpsc::Receiver;

use crate::backstage::{BackstageFormat, Held};
use crate::catalog::{ReadEvent, WarehouseCatalog, WarehouseId};
use crate::config::Config;
use crate::error::AwsError;
use crate::manifest::{Layout, ManifestFormat};
use crate::ports::{ObjectStore, Output};
use crate::publish::{File, Opened, Snapshots};
use crate::report::{PublishReport, RemovedWarehouse};

/// The outputs a config turns on: manifests always, Backstage entities when configured.
pub struct Outputs<'a, S> {
    pub manifests: Snapshots<'a, S, ManifestFormat>,
    pub backstage: Option<Snapshots<'a, S, BackstageFormat>>,
}

/// The reader's channel as a stream.
struct Events(Receiver<ReadEvent>);

impl futures::Stream for Events {
    type Item = ReadEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ReadEvent>> {
        self.0.poll_recv(cx)
    }
}

fn tagged(to: To, files: Vec<File>) -> impl Iterator<Item = (To, File)> {
    files.into_iter().map(move |f| (to, f))
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

/// A warehouse being written by every output.
pub struct Publishing {
    manifests: Opened<()>,
    backstage: Option<Opened<Held>>,
}

/// Which output a file is for.
#[derive(Clone, Copy)]
enum To {
    Manifests,
    Backstage,
}

impl<S: ObjectStore> Output for Outputs<'_, S> {
    type Publishing = Publishing;

    /// Every event's files are offered as soon as they are built, at most
    /// `s3WritesInParallel` at once; the channel's bound holds the reader back meanwhile.
    async fn publish(&self, catalog: &WarehouseCatalog, read: Receiver<ReadEvent>) -> Publishing {
        let mut m = self.manifests.open(catalog).await;
        let mut b = match &self.backstage {
            Some(b) => Some(b.open(catalog).await),
            None => None,
        };
        let b_initial = b.as_mut().map(|o| std::mem::take(&mut o.initial)).unwrap_or_default();
        let initial: Vec<(To, File)> =
            tagged(To::Manifests, std::mem::take(&mut m.initial)).chain(tagged(To::Backstage, b_initial)).collect();
        let (m_base, m_held, m_tally) = (&m.base, &mut m.held, &mut m.tally);
        let (b_base, mut b_held, mut b_tally) = match &mut b {
            Some(o) => (Some(&o.base), Some(&mut o.held), Some(&mut o.tally)),
            None => (None, None, None),
        };
        let files = Events(read).flat_map(|event| {
            let mut files =
                tagged(To::Manifests, self.manifests.files(catalog, m_base, &event, m_held)).collect::<Vec<_>>();
            if let (Some(b), Some(base), Some(held)) = (&self.backstage, b_base, b_held.as_deref_mut()) {
                files.extend(tagged(To::Backstage, b.files(catalog, base, &event, held)));
            }
            stream::iter(files)
        });
        let dry_run = self.manifests.dry_run;
        stream::iter(initial)
            .chain(files)
            .map(|(to, file)| async move {
                let offered = match (to, &self.backstage, b_base) {
                    (To::Backstage, Some(b), Some(base)) => b.offer(base, file).await,
                    _ => self.manifests.offer(m_base, file).await,
                };
                (to, offered)
            })
            .buffer_unordered(self.manifests.writes_in_parallel)
            .for_each(|(to, offered)| {
                match (to, b_tally.as_deref_mut()) {
                    (To::Backstage, Some(tally)) => tally.record(offered, dry_run),
                    _ => m_tally.record(offered, dry_run),
                }
                future::ready(())
            })
            .await;
        Publishing { manifests: m, backstage: b }
    }

    async fn commit(&self, publishing: Publishing, catalog: &WarehouseCatalog) -> Vec<PublishReport> {
        let backstage = async {
            match (&self.backstage, publishing.backstage) {
                (Some(b), Some(opened)) => Some(b.commit(opened, catalog).await),
                _ => None,
            }
        };
        let (manifests, backstage) = tokio::join!(self.manifests.commit(publishing.manifests, catalog), backstage);
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
