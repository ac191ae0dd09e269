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
use crate::publish::{Baseline, File, Format, Offered, OpenWarehouse, Snapshots, Tally};

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

    fn channel<S: ObjectStore, F: Format + 'a>(&self, store: &'a S, format: F) -> Box<dyn Channel + 'a>
    where
        F::Pending: 'static,
    {
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
    fn offer<'s>(&'s self, base: &'s Baseline, file: File) -> BoxFuture<'s, Offered>;
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
    base: Baseline,
    tally: Tally,
}

/// One warehouse opened in one output: the warehouse's own files to offer first, and what makes
/// the files of each read event.
struct Writing<'s> {
    written: Written,
    initial: Vec<File>,
    files: Files<'s>,
}

impl<S: ObjectStore, F: Format> Channel for Snapshots<'_, S, F>
where
    F::Pending: 'static,
{
    fn open<'s>(&'s self, catalog: &'s WarehouseCatalog) -> BoxFuture<'s, Writing<'s>> {
        async move {
            let OpenWarehouse { base, mut pending, tally, initial } = Snapshots::open(self, catalog).await;
            let writes = base.writes();
            let files: Files<'s> = Box::new(move |catalog: &WarehouseCatalog, event: &ReadEvent| {
                self.files(catalog, writes, event, &mut pending)
            });
            Writing { written: Written { base, tally }, initial, files }
        }
        .boxed()
    }

    fn offer<'s>(&'s self, base: &'s Baseline, file: File) -> BoxFuture<'s, Offered> {
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
        // One format after another: each open reads its committed index.
        let mut opened = Vec::with_capacity(self.channels.len());
        for channel in &self.channels {
            opened.push(channel.open(catalog).await);
        }
        let mut written = Vec::new();
        let mut initial = Vec::new();
        let mut makers = Vec::new();
        for (i, w) in opened.into_iter().enumerate() {
            written.push(w.written);
            initial.extend(w.initial.into_iter().map(|f| (i, f)));
            makers.push(w.files);
        }
        let (bases, mut tallies): (Vec<&Baseline>, Vec<&mut Tally>) =
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
        debug_assert_eq!(publishing.len(), self.channels.len(), "one written warehouse per output");
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

#[cfg(test)]
mod tests {
    //! The commit protocol across formats, over an in-memory store: each format's index after
    //! every file of it, a failing format apart from the others, removals after the index, a
    //! newer run's commit left alone.

    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::catalog::{DatabaseCatalog, DatabaseKind, Dataset, DatasetKind, Unconfirmed, Upstream, Via};
    use crate::config::DeploymentDefaults;
    use crate::testing::MemoryStore;

    const FIRST: &str = "20261205T090000000Z-00000001";
    const NEXT: &str = "20261205T100000000Z-00000002";
    const FORMATS: [&str; 3] = ["manifests", "backstage", "openlineage"];

    fn config() -> Config {
        let text = r#"{"output": {"bucket": "registry", "prefix": "p/"}, "roleName": "Reader",
            "outputs": {"backstage": {"owner": "group:default/data"}, "openlineage": {}},
            "sources": [{"accountId": "111111111111", "regions": ["us-east-1"]}]}"#;
        Config::parse(text, &DeploymentDefaults::default()).unwrap()
    }

    /// Tables `tables`, and a view reading the first.
    fn datasets(tables: &[&str]) -> Vec<Dataset> {
        let mut view = Dataset::named("s".into(), "v".into(), DatasetKind::View);
        view.upstream.push(Upstream::dataset("dev", "s", tables[0], Via::Catalog));
        let tables = tables.iter().map(|t| Dataset::named("s".into(), (*t).into(), DatasetKind::Table));
        tables.chain([view]).collect()
    }

    /// A warehouse whose one database `database` holds `datasets`, read whole and published by
    /// every output of `config()`, as a run does.
    async fn publish(store: &MemoryStore, run_id: &str, database: &str, datasets: Vec<Dataset>) -> Vec<PublishReport> {
        let config = config();
        let outputs = Outputs::new(store, &config, RunContext::of(&config, &RunRequest::default(), run_id, "t"));
        let read = DatabaseCatalog {
            name: database.into(),
            kind: DatabaseKind::Local,
            datasets: datasets.len(),
            notes: vec![],
            unconfirmed: Unconfirmed::Nothing,
        };
        let mut catalog = crate::testing::cluster_c();
        let (sender, events) = tokio::sync::mpsc::channel(datasets.len() + 1);
        let name: Arc<str> = database.into();
        for dataset in datasets {
            sender.send(ReadEvent::Dataset { database: name.clone(), dataset }).await.unwrap();
        }
        sender.send(ReadEvent::DatabaseRead(read.clone())).await.unwrap();
        drop(sender);
        let written = outputs.publish(&catalog, events).await;
        catalog.databases.push(read);
        outputs.commit(written, &catalog).await
    }

    /// The store's writes since `from`.
    fn log_since(store: &MemoryStore, from: usize) -> Vec<String> {
        store.log.lock().unwrap()[from..].to_vec()
    }

    /// Whether a write is of a format's files (under its folder; its index is apart).
    fn of_format(write: &str, format: &str) -> bool {
        let folder = match format {
            "manifests" => "p/datasets/",
            other => &format!("p/{other}/"),
        };
        write.split_once(' ').is_some_and(|(_, key)| key.starts_with(folder))
    }

    /// Where in `log` each write of `format` that starts with `op` is.
    fn positions(log: &[String], format: &str, op: &str) -> Vec<usize> {
        (0..log.len()).filter(|&i| log[i].starts_with(op) && of_format(&log[i], format)).collect()
    }

    fn index_position(log: &[String], report: &PublishReport) -> usize {
        log.iter().position(|w| *w == format!("put {}", report.index_key)).expect("the index is written")
    }

    #[tokio::test]
    async fn each_format_commits_its_index_after_every_file_of_it() {
        let store = MemoryStore::default();
        let reports = publish(&store, FIRST, "dev", datasets(&["a", "b"])).await;
        assert_eq!(reports.iter().map(|r| r.output.as_str()).collect::<Vec<_>>(), FORMATS, "{reports:?}");
        let log = log_since(&store, 0);
        for report in &reports {
            assert!(report.committed && report.error.is_none(), "{report:?}");
            let files = positions(&log, &report.output, "put");
            assert!(!files.is_empty(), "{}: no file in {log:?}", report.output);
            assert!(files.iter().all(|&i| i < index_position(&log, report)), "{}: {log:?}", report.output);
        }
    }

    /// A format whose writes fail commits nothing and removes nothing; the others commit; its
    /// next run writes what it missed.
    #[tokio::test]
    async fn a_format_that_cannot_write_leaves_the_others_committed() {
        let failing = MemoryStore { fail_puts: Some("p/backstage/"), ..MemoryStore::default() };
        let reports = publish(&failing, FIRST, "dev", datasets(&["a"])).await;
        let committed: Vec<(&str, bool)> = reports.iter().map(|r| (r.output.as_str(), r.committed)).collect();
        assert_eq!(committed, [("manifests", true), ("backstage", false), ("openlineage", true)]);
        assert!(reports[1].error.as_ref().is_some_and(|e| e.contains("could not be written")), "{reports:?}");
        assert!(failing.keys(&reports[1].index_key).is_empty(), "no Backstage index without its files");

        let store =
            MemoryStore { objects: Mutex::new(failing.objects.into_inner().unwrap()), ..MemoryStore::default() };
        let next = publish(&store, NEXT, "dev", datasets(&["a"])).await;
        assert!(next.iter().all(|r| r.committed), "{next:?}");
        assert!(next[0].written == 0 && next[1].written > 0, "only Backstage's files are new: {next:?}");
    }

    /// A dataset gone is removed after the index that no longer lists it, and a database gone
    /// takes its files in every format with it, each after its own index; what did not change is
    /// not written again.
    #[tokio::test]
    async fn what_is_gone_is_removed_after_the_index_that_drops_it() {
        let store = MemoryStore::default();
        publish(&store, FIRST, "dev", datasets(&["a", "b"])).await;
        let from = store.log.lock().unwrap().len();
        let reports = publish(&store, NEXT, "dev", datasets(&["a"])).await;
        let log = log_since(&store, from);
        assert_eq!(reports[0].removed, 1, "{reports:?}");
        let removed = positions(&log, "manifests", "delete");
        assert!(removed.len() == 1 && log[removed[0]].ends_with("/b.json"), "{log:?}");
        assert!(removed[0] > index_position(&log, &reports[0]), "{log:?}");
        // a and the view did not change: only Backstage's file of database dev, which listed b, is new.
        let rewritten: Vec<&String> =
            log.iter().filter(|w| FORMATS.iter().any(|f| of_format(w, f) && w.starts_with("put"))).collect();
        assert!(rewritten.len() == 1 && of_format(rewritten[0], "backstage"), "{rewritten:?}");

        let from = store.log.lock().unwrap().len();
        let later = "20261205T110000000Z-00000003";
        let reports = publish(&store, later, "mart", datasets(&["c"])).await;
        let log = log_since(&store, from);
        for report in &reports {
            let removed = positions(&log, &report.output, "delete");
            assert!(!removed.is_empty(), "{}: dev's files stay in {log:?}", report.output);
            assert!(removed.iter().all(|&i| i > index_position(&log, report)), "{}: {log:?}", report.output);
            assert!(removed.iter().all(|&i| log[i].contains("/dev")), "{}: {log:?}", report.output);
        }
    }

    /// A run older than the one that committed a warehouse writes nothing of it, in any format.
    #[tokio::test]
    async fn a_newer_runs_commit_is_left_alone() {
        let store = MemoryStore::default();
        publish(&store, NEXT, "dev", datasets(&["a"])).await;
        let from = store.log.lock().unwrap().len();
        let reports = publish(&store, FIRST, "dev", datasets(&["a", "b"])).await;
        assert!(reports.iter().all(|r| !r.committed && r.superseded_by.as_deref() == Some(NEXT)), "{reports:?}");
        assert_eq!(log_since(&store, from), Vec::<String>::new());
    }
}
