//! Which outputs a run publishes to: the manifests always, Backstage entities and OpenLineage
//! events when the config has `outputs.backstage` and `outputs.openlineage`. Together they are
//! the run's one `Output`.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{future, stream, StreamExt};
use tokio::sync::mpsc::Receiver;
use tracing::warn;

use crate::backstage::{self, BackstageFormat};
use crate::catalog::{NamespaceRecord, ReadEvent, WarehouseCatalog, WarehouseId};
use crate::config::Config;
use crate::error::AwsError;
use crate::manifest::ManifestFormat;
use crate::openlineage::{self, OpenLineageFormat};
use crate::outcome::{PublishReport, RemovedWarehouse};
use crate::ports::{NamespaceDirectory, ObjectStore, Output};
use crate::publish::{Base, File, Format, Opened, Snapshots, Tally};

/// The outputs a config turns on: manifests always, Backstage entities and OpenLineage events
/// when configured.
pub struct Outputs<'a, S> {
    pub manifests: Snapshots<'a, S, ManifestFormat>,
    pub backstage: Option<Snapshots<'a, S, BackstageFormat>>,
    pub openlineage: Option<Snapshots<'a, S, OpenLineageFormat>>,
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
        let layout = config.layout();
        let backstage =
            config.outputs.backstage.as_ref().map(|b| run.snapshots(store, BackstageFormat::new(&layout, b)));
        let openlineage = config
            .outputs
            .openlineage
            .as_ref()
            .map(|o| run.snapshots(store, OpenLineageFormat::new(&layout, o, run.committed_at)));
        Self { manifests: run.snapshots(store, ManifestFormat::new(layout)), backstage, openlineage }
    }
}

/// A warehouse being written by every output.
pub struct Publishing {
    manifests: Opened<()>,
    backstage: Option<Opened<backstage::Held>>,
    openlineage: Option<Opened<openlineage::Held>>,
}

/// Which output a file is for.
#[derive(Clone, Copy)]
enum To {
    Manifests,
    Backstage,
    OpenLineage,
}

/// A configured output's snapshot, opened.
async fn open<S: ObjectStore, F: Format>(
    snapshots: &Option<Snapshots<'_, S, F>>,
    catalog: &WarehouseCatalog,
) -> Option<Opened<F::Held>> {
    match snapshots {
        Some(s) => Some(s.open(catalog).await),
        None => None,
    }
}

/// A configured output's opened snapshot in the parts publishing uses apart: what offers read,
/// what the files are made with, what the writes are recorded in.
fn split<H>(opened: &mut Option<Opened<H>>) -> (Option<&Base>, Option<&mut H>, Option<&mut Tally>) {
    match opened {
        Some(o) => (Some(&o.base), Some(&mut o.held), Some(&mut o.tally)),
        None => (None, None, None),
    }
}

/// The files of one read event for a configured output.
fn files_of<S: ObjectStore, F: Format>(
    to: To,
    snapshots: &Option<Snapshots<'_, S, F>>,
    base: Option<&Base>,
    held: Option<&mut F::Held>,
    catalog: &WarehouseCatalog,
    event: &ReadEvent,
) -> Vec<(To, File)> {
    match (snapshots, base, held) {
        (Some(s), Some(base), Some(held)) => tagged(to, s.files(catalog, base, event, held)).collect(),
        _ => Vec::new(),
    }
}

/// Commits a configured output.
async fn commit_of<S: ObjectStore, F: Format>(
    snapshots: &Option<Snapshots<'_, S, F>>,
    opened: Option<Opened<F::Held>>,
    catalog: &WarehouseCatalog,
) -> Option<PublishReport> {
    match (snapshots, opened) {
        (Some(s), Some(o)) => Some(s.commit(o, catalog).await),
        _ => None,
    }
}

/// The namespace records the manifests published, read back as consumers need them.
impl<S: ObjectStore> NamespaceDirectory for Outputs<'_, S> {
    async fn holder(&self, namespace: &str) -> Option<NamespaceRecord> {
        let m = &self.manifests;
        let key = m.format.layout.namespace_key(namespace);
        let object = match m.store.get_if_present(m.bucket, &key).await {
            Ok(object) => object?,
            Err(error) => {
                warn!(%error, key, "namespace record not read; the datashare's producer stays unnamed");
                return None;
            }
        };
        serde_json::from_slice(&object.bytes)
            .map_err(|error| warn!(%error, key, "namespace record unreadable; the datashare's producer stays unnamed"))
            .ok()
    }
}

impl<S: ObjectStore> Output for Outputs<'_, S> {
    type Publishing = Publishing;

    /// Every event's files are offered as soon as they are built, at most
    /// `s3WritesInParallel` at once; the channel's bound holds the reader back meanwhile.
    async fn publish(&self, catalog: &WarehouseCatalog, read: Receiver<ReadEvent>) -> Publishing {
        let mut p = Publishing {
            manifests: self.manifests.open(catalog).await,
            backstage: open(&self.backstage, catalog).await,
            openlineage: open(&self.openlineage, catalog).await,
        };
        let Publishing { manifests: m, backstage: b, openlineage: o } = &mut p;
        let mut initial: Vec<(To, File)> = tagged(To::Manifests, std::mem::take(&mut m.initial)).collect();
        initial.extend(b.iter_mut().flat_map(|b| tagged(To::Backstage, std::mem::take(&mut b.initial))));
        initial.extend(o.iter_mut().flat_map(|o| tagged(To::OpenLineage, std::mem::take(&mut o.initial))));
        let (m_base, m_held, m_tally) = (&m.base, &mut m.held, &mut m.tally);
        let (b_base, mut b_held, mut b_tally) = split(b);
        let (o_base, mut o_held, mut o_tally) = split(o);
        let files = Events(read).flat_map(|event| {
            let mut files: Vec<(To, File)> =
                tagged(To::Manifests, self.manifests.files(catalog, m_base, &event, m_held)).collect();
            files.extend(files_of(To::Backstage, &self.backstage, b_base, b_held.as_deref_mut(), catalog, &event));
            files.extend(files_of(To::OpenLineage, &self.openlineage, o_base, o_held.as_deref_mut(), catalog, &event));
            stream::iter(files)
        });
        let dry_run = self.manifests.dry_run;
        stream::iter(initial)
            .chain(files)
            .map(|(to, file)| async move {
                let offered = match (to, &self.backstage, b_base, &self.openlineage, o_base) {
                    (To::Backstage, Some(b), Some(base), _, _) => b.offer(base, file).await,
                    (To::OpenLineage, _, _, Some(o), Some(base)) => o.offer(base, file).await,
                    _ => self.manifests.offer(m_base, file).await,
                };
                (to, offered)
            })
            .buffer_unordered(self.manifests.writes_in_parallel)
            .for_each(|(to, offered)| {
                match (to, b_tally.as_deref_mut(), o_tally.as_deref_mut()) {
                    (To::Backstage, Some(tally), _) | (To::OpenLineage, _, Some(tally)) => {
                        tally.record(offered, dry_run)
                    }
                    _ => m_tally.record(offered, dry_run),
                }
                future::ready(())
            })
            .await;
        p
    }

    async fn commit(&self, publishing: Publishing, catalog: &WarehouseCatalog) -> Vec<PublishReport> {
        let (manifests, backstage, openlineage) = tokio::join!(
            self.manifests.commit(publishing.manifests, catalog),
            commit_of(&self.backstage, publishing.backstage, catalog),
            commit_of(&self.openlineage, publishing.openlineage, catalog),
        );
        std::iter::once(manifests).chain(backstage).chain(openlineage).collect()
    }

    async fn sweep(
        &self,
        account: &str,
        region: &str,
        present: &BTreeSet<WarehouseId>,
        workgroups_listed: bool,
    ) -> Result<Vec<RemovedWarehouse>, AwsError> {
        let mut removed = self.manifests.sweep(account, region, present, workgroups_listed).await?;
        let mut others = Vec::new();
        if let Some(b) = &self.backstage {
            others.extend(b.sweep(account, region, present, workgroups_listed).await?);
        }
        if let Some(o) = &self.openlineage {
            others.extend(o.sweep(account, region, present, workgroups_listed).await?);
        }
        for gone in others {
            match removed.iter_mut().find(|r| r.id == gone.id) {
                Some(r) => r.objects += gone.objects,
                None => removed.push(gone),
            }
        }
        Ok(removed)
    }
}
