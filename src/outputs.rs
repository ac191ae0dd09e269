//! Which outputs a run publishes to: the manifests always, Backstage entities and OpenLineage
//! events when the config has `outputs.backstage` and `outputs.openlineage`. Together they are
//! the run's one `Output`. A new format is its own file (a [`Format`]), its key in
//! `config::Outputs`, and one line in [`Outputs::new`].

use std::collections::BTreeSet;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::{self, BoxFuture};
use futures::{stream, FutureExt, StreamExt};
use tokio::sync::mpsc::Receiver;
use tracing::warn;

use crate::backstage::BackstageFormat;
use crate::catalog::{NamespaceRecord, ReadEvent, WarehouseCatalog, WarehouseId};
use crate::config::Config;
use crate::error::AwsError;
use crate::event::RunRequest;
use crate::layout::Layout;
use crate::manifest::ManifestFormat;
use crate::openlineage::OpenLineageFormat;
use crate::outcome::{PublishReport, RemovedWarehouse};
use crate::ports::{NamespaceDirectory, ObjectStore, Output};
use crate::publish::{Base, File, Format, Offered, Opened, Snapshots, Tally};

/// What every output of a run shares.
pub struct RunContext<'a> {
    pub bucket: &'a str,
    pub run_id: &'a str,
    pub committed_at: &'a str,
    pub dry_run: bool,
    pub writes_in_parallel: usize,
}

impl<'a> RunContext<'a> {
    pub fn of(config: &'a Config, request: &RunRequest, run_id: &'a str, committed_at: &'a str) -> Self {
        Self {
            bucket: &config.output.bucket,
            run_id,
            committed_at,
            dry_run: request.dry_run,
            writes_in_parallel: config.limits.s3_writes_in_parallel,
        }
    }

    fn channel<S: ObjectStore, F: Format + 'a>(&self, store: &'a S, format: F) -> Box<dyn Channel + 'a> {
        Box::new(Snapshots {
            store,
            bucket: self.bucket,
            format,
            run_id: self.run_id,
            committed_at: self.committed_at,
            dry_run: self.dry_run,
            writes_in_parallel: self.writes_in_parallel,
        })
    }
}

/// The outputs a config turns on, the manifests first: the order their reports are listed in.
pub struct Outputs<'a, S> {
    channels: Vec<Box<dyn Channel + 'a>>,
    /// Where the manifests' namespace records are read back.
    store: &'a S,
    bucket: &'a str,
    layout: Layout,
    dry_run: bool,
    writes_in_parallel: usize,
}

impl<'a, S: ObjectStore> Outputs<'a, S> {
    pub fn new(store: &'a S, config: &Config, run: RunContext<'a>) -> Self {
        let layout = config.layout();
        let formats = &config.outputs;
        let mut channels = vec![run.channel(store, ManifestFormat::new(layout.clone()))];
        channels.extend(formats.backstage.as_ref().map(|b| run.channel(store, BackstageFormat::new(&layout, b))));
        channels.extend(
            formats
                .openlineage
                .as_ref()
                .map(|o| run.channel(store, OpenLineageFormat::new(&layout, o, run.committed_at))),
        );
        let (bucket, dry_run, writes_in_parallel) = (run.bucket, run.dry_run, run.writes_in_parallel);
        Self { channels, store, bucket, layout, dry_run, writes_in_parallel }
    }
}

/// One configured output, whatever its format: a format's [`Snapshots`] with the format's
/// types hidden, so that the outputs of a run are a list.
trait Channel: Send + Sync {
    fn open<'s>(&'s self, catalog: &'s WarehouseCatalog) -> BoxFuture<'s, Writing<'s>>;
    fn offer<'s>(&'s self, base: &'s Base, file: File) -> BoxFuture<'s, Offered>;
    fn commit<'s>(&'s self, written: Written, catalog: &'s WarehouseCatalog) -> BoxFuture<'s, PublishReport>;
    fn sweep<'s>(
        &'s self,
        account: &'s str,
        region: &'s str,
        present: &'s BTreeSet<WarehouseId>,
        workgroups_listed: bool,
    ) -> BoxFuture<'s, Result<Vec<RemovedWarehouse>, AwsError>>;
}

/// The files a read event completes in one output, from what its format holds between events.
type Files<'s> = Box<dyn FnMut(&WarehouseCatalog, &ReadEvent) -> Vec<File> + Send + 's>;

/// One warehouse written in one output, waiting for its commit: what its offers read, and what
/// its writes added up to.
pub struct Written {
    base: Base,
    tally: Tally,
}

/// One warehouse opened in one output: the warehouse's own files to offer first, and what makes
/// the files of each read event.
struct Writing<'s> {
    written: Written,
    initial: Vec<File>,
    files: Files<'s>,
}

impl<S: ObjectStore, F: Format> Channel for Snapshots<'_, S, F> {
    fn open<'s>(&'s self, catalog: &'s WarehouseCatalog) -> BoxFuture<'s, Writing<'s>> {
        async move {
            let Opened { base, mut held, tally, initial } = Snapshots::open(self, catalog).await;
            // A warehouse not being written (see its report) makes no files.
            let writes = base.writes();
            let files: Files<'s> =
                Box::new(
                    move |catalog: &WarehouseCatalog, event: &ReadEvent| {
                        if writes {
                            self.format.files(catalog, event, &mut held)
                        } else {
                            Vec::new()
                        }
                    },
                );
            Writing { written: Written { base, tally }, initial, files }
        }
        .boxed()
    }

    fn offer<'s>(&'s self, base: &'s Base, file: File) -> BoxFuture<'s, Offered> {
        Snapshots::offer(self, base, file).boxed()
    }

    fn commit<'s>(&'s self, written: Written, catalog: &'s WarehouseCatalog) -> BoxFuture<'s, PublishReport> {
        Snapshots::commit(self, written.base, written.tally, catalog).boxed()
    }

    fn sweep<'s>(
        &'s self,
        account: &'s str,
        region: &'s str,
        present: &'s BTreeSet<WarehouseId>,
        workgroups_listed: bool,
    ) -> BoxFuture<'s, Result<Vec<RemovedWarehouse>, AwsError>> {
        Snapshots::sweep(self, account, region, present, workgroups_listed).boxed()
    }
}

/// The reader's channel as a stream.
struct Events(Receiver<ReadEvent>);

impl futures::Stream for Events {
    type Item = ReadEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ReadEvent>> {
        self.0.poll_recv(cx)
    }
}

/// The namespace records the manifests published, read back as consumers need them.
impl<S: ObjectStore> NamespaceDirectory for Outputs<'_, S> {
    async fn holder(&self, namespace: &str) -> Option<NamespaceRecord> {
        let key = self.layout.namespace_key(namespace);
        let object = match self.store.get_if_present(self.bucket, &key).await {
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
    type Publishing = Vec<Written>;

    /// Every event's files are offered as soon as they are built, at most
    /// `s3WritesInParallel` at once; the channel's bound holds the reader back meanwhile.
    async fn publish(&self, catalog: &WarehouseCatalog, read: Receiver<ReadEvent>) -> Vec<Written> {
        let opened = future::join_all(self.channels.iter().map(|c| c.open(catalog))).await;
        let mut written = Vec::new();
        let mut initial = Vec::new();
        let mut makers = Vec::new();
        for (i, w) in opened.into_iter().enumerate() {
            written.push(w.written);
            initial.extend(w.initial.into_iter().map(|f| (i, f)));
            makers.push(w.files);
        }
        let (bases, mut tallies): (Vec<&Base>, Vec<&mut Tally>) =
            written.iter_mut().map(|w| (&w.base, &mut w.tally)).unzip();
        let files = Events(read).flat_map(|event| {
            let files = makers
                .iter_mut()
                .enumerate()
                .flat_map(|(i, make)| make(catalog, &event).into_iter().map(move |f| (i, f)));
            stream::iter(files.collect::<Vec<_>>())
        });
        let (bases, dry_run) = (&bases, self.dry_run);
        stream::iter(initial)
            .chain(files)
            .map(|(i, file)| async move { (i, self.channels[i].offer(bases[i], file).await) })
            .buffer_unordered(self.writes_in_parallel)
            .for_each(|(i, offered)| {
                tallies[i].record(offered, dry_run);
                future::ready(())
            })
            .await;
        written
    }

    async fn commit(&self, publishing: Vec<Written>, catalog: &WarehouseCatalog) -> Vec<PublishReport> {
        let commits = self.channels.iter().zip(publishing).map(|(channel, written)| channel.commit(written, catalog));
        future::join_all(commits).await
    }

    async fn sweep(
        &self,
        account: &str,
        region: &str,
        present: &BTreeSet<WarehouseId>,
        workgroups_listed: bool,
    ) -> Result<Vec<RemovedWarehouse>, AwsError> {
        let mut removed: Vec<RemovedWarehouse> = Vec::new();
        for channel in &self.channels {
            for gone in channel.sweep(account, region, present, workgroups_listed).await? {
                match removed.iter_mut().find(|r| r.id == gone.id) {
                    Some(r) => r.objects += gone.objects,
                    None => removed.push(gone),
                }
            }
        }
        Ok(removed)
    }
}
