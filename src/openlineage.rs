//! Stage 4, third format: lineage as OpenLineage events (spec 2-0-2), for catalogs that ingest
//! OpenLineage (Marquez, DataHub, Amazon DataZone): per warehouse and database, one file of
//! newline-delimited `RunEvent`s, one a dataset with upstreams (a view, a materialized view, an
//! external table), its inputs the upstreams and its output the dataset with its schema facet.
//!
//! Datasets are named by OpenLineage's naming spec (website/docs/spec/naming.md): namespace
//! `redshift://{cluster_identifier}.{region}:{port}` and name `database.schema.table`; a
//! Serverless workgroup, which the spec does not name, as Airflow's Redshift hook names its
//! endpoint: `redshift://{workgroup}.{region}:{port}`; an S3 location as namespace
//! `s3://{bucket}` and name its path. The job is the dataset's own name in its namespace, and
//! its run id a UUID made from both, so that the same lineage gives the same events.
//!
//! `eventTime` is when the run that first wrote the content committed it: a file is compared
//! without it (its index `sha256` is of the events with an empty `eventTime`), so unchanged
//! lineage is not rewritten, and the same warehouse gives byte-identical files.

use serde_json::{json, Value};

use crate::catalog::{DatabaseCatalog, Dataset, ReadEvent, Upstream, WarehouseCatalog, WarehouseId};
use crate::config::OpenLineageOutput;
use crate::layout::{encode_segment, sha256_hex, Layout};
use crate::manifest::dataset_name;
use crate::publish::{unseen_databases, ByDatabase, File, Format, IndexEntry, API_VERSION};

const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const PRODUCER: &str = "https://github.com/redshift-registry/redshift-registry";
const SQL_FACET: &str = "https://openlineage.io/spec/facets/1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet";
const JOB_TYPE_FACET: &str = "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
const SCHEMA_FACET: &str = "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet";
/// Redshift's default port, for warehouses whose endpoint the run did not learn.
const PORT: u16 = 5439;

/// What OpenLineage keeps of a warehouse while it is read: the datasets with upstreams of each
/// database whose read has not ended.
#[derive(Default)]
pub(crate) struct Pending {
    databases: ByDatabase,
}

pub(crate) struct OpenLineageFormat {
    root: String,
    index_root: String,
    /// The run's commit time, which dates the events it writes.
    event_time: String,
}

impl OpenLineageFormat {
    pub(crate) fn new(layout: &Layout, config: &OpenLineageOutput, event_time: &str) -> Self {
        Self {
            root: layout.output_root(&config.prefix),
            index_root: layout.index_root(Some("openlineage")),
            event_time: event_time.to_string(),
        }
    }

    /// The events of a database's datasets, one per line, with an empty `eventTime`.
    fn events(&self, catalog: &WarehouseCatalog, database: &str, datasets: &[Dataset]) -> String {
        let namespace = namespace(catalog);
        let mut lines = String::new();
        for d in datasets {
            // A datashare consumer's table whose producer is not known yet names no input.
            let Some(event) = event(&namespace, database, d) else { continue };
            lines.push_str(&serde_json::to_string(&event).expect("an event serialises"));
            lines.push('\n');
        }
        lines
    }
}

/// The warehouse's OpenLineage namespace.
pub(crate) fn namespace(catalog: &WarehouseCatalog) -> String {
    match &catalog.warehouse {
        WarehouseId::ClusterIdentifier(id) | WarehouseId::WorkgroupName(id) => {
            format!("redshift://{id}.{}:{PORT}", catalog.region)
        }
    }
}

/// One dataset's lineage as a completed run of its static job; none without an input to name.
fn event(namespace: &str, database: &str, d: &Dataset) -> Option<Value> {
    let name = dataset_name(database, &d.schema, &d.name);
    let inputs: Vec<Value> = d.upstream.iter().filter_map(|u| input(namespace, u)).collect();
    if inputs.is_empty() {
        return None;
    }
    let job_type = serde_json::to_value(d.kind).expect("a kind serialises");
    let job_type = job_type.as_str().expect("a kind is a string").to_uppercase();
    // The empty members are written as the OpenLineage client writes them.
    let fields: Vec<Value> =
        d.columns.iter().map(|c| json!({"name": c.name, "type": c.data_type, "fields": []})).collect();
    let mut job_facets = json!({
        "jobType": {"_producer": PRODUCER, "_schemaURL": JOB_TYPE_FACET,
                    "processingType": "BATCH", "integration": "REDSHIFT", "jobType": job_type},
    });
    if let Some(query) = &d.view_definition {
        job_facets["sql"] =
            json!({"_producer": PRODUCER, "_schemaURL": SQL_FACET, "query": query, "dialect": "redshift"});
    }
    Some(json!({
        "eventType": "COMPLETE",
        "eventTime": "",
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run_id(namespace, &name), "facets": {}},
        "job": {"namespace": namespace, "name": name, "facets": job_facets},
        "inputs": inputs,
        "outputs": [{"namespace": namespace, "name": name, "outputFacets": {},
                     "facets": {"schema": {"_producer": PRODUCER, "_schemaURL": SCHEMA_FACET, "fields": fields}}}],
    }))
}

/// An upstream as an input dataset: in the warehouse's namespace, another warehouse's when
/// known, or an S3 location's. A datashare producer not yet known has no name to give.
fn input(namespace: &str, u: &Upstream) -> Option<Value> {
    if let Some(location) = &u.s3 {
        let (bucket, path) = location.strip_prefix("s3://")?.split_once('/').unwrap_or((location, ""));
        return Some(
            json!({"namespace": format!("s3://{bucket}"), "name": format!("/{path}"), "facets": {}, "inputFacets": {}}),
        );
    }
    let name = u.name.as_ref()?;
    let namespace = match &u.warehouse {
        None => namespace.to_string(),
        Some(w) => {
            let id = w.cluster_identifier.as_ref().or(w.workgroup_name.as_ref())?;
            format!("redshift://{id}.{}:{PORT}", w.region.as_ref()?)
        }
    };
    Some(json!({"namespace": namespace, "name": name, "facets": {}, "inputFacets": {}}))
}

/// A UUID (RFC 4122 layout, version 5's bits) from the job's namespace and name.
fn run_id(namespace: &str, name: &str) -> String {
    let hex = sha256_hex(format!("{API_VERSION}\n{namespace}\n{name}").as_bytes());
    let mut b: Vec<char> = hex[..32].chars().collect();
    b[12] = '5';
    b[16] = ['8', '9', 'a', 'b'][usize::from_str_radix(&b[16].to_string(), 16).unwrap_or(0) % 4];
    let s: String = b.into_iter().collect();
    format!("{}-{}-{}-{}-{}", &s[..8], &s[8..12], &s[12..16], &s[16..20], &s[20..32])
}

impl Format for OpenLineageFormat {
    const NAME: &'static str = "openlineage";
    const CONTENT_TYPE: &'static str = "application/x-ndjson";

    type Pending = Pending;

    fn index_root(&self) -> &str {
        &self.index_root
    }

    fn warehouse_prefix(&self, account: &str, region: &str, warehouse: &WarehouseId) -> String {
        format!("{}{account}/{region}/{}/{}/", self.root, warehouse.kind(), encode_segment(warehouse.name()))
    }

    fn warehouse_files(&self, _: &WarehouseCatalog, _: &mut Vec<String>, _: &mut Pending) -> Vec<File> {
        Vec::new()
    }

    /// A database's datasets with upstreams wait until its read ends, then become its file,
    /// sorted. A database with parts not confirmed keeps its previous file; a failed one too.
    fn files(&self, catalog: &WarehouseCatalog, event: &ReadEvent, pending: &mut Pending) -> Vec<File> {
        let Some((db, datasets)) = pending.databases.hold(event, |d| !d.upstream.is_empty()) else { return Vec::new() };
        if datasets.is_empty() {
            return Vec::new();
        }
        let relative = format!("{}.ndjson", encode_segment(&db.name));
        let key =
            format!("{}{relative}", self.warehouse_prefix(&catalog.account_id, &catalog.region, &catalog.warehouse));
        // Built once without the time, which the index hash leaves out; then dated. Inside a
        // JSON string the same text would be escaped, so only the member itself matches.
        let timeless = self.events(catalog, &db.name, &datasets);
        let bytes = timeless.replace(r#""eventTime":"""#, &format!(r#""eventTime":"{}""#, self.event_time));
        let mut file = File::new(&db.name, None, None, relative, key, bytes.into_bytes());
        file.entry.sha256 = sha256_hex(timeless.as_bytes());
        vec![file]
    }

    fn keeps(&self, database: &DatabaseCatalog, _entry: &IndexEntry) -> bool {
        !database.unconfirmed.is_nothing()
    }

    fn unseen_entry(&self, catalog: &WarehouseCatalog, relative: &str, key: &str) -> Option<IndexEntry> {
        let db = unseen_databases(catalog).find(|db| relative == format!("{}.ndjson", encode_segment(db)))?;
        Some(IndexEntry::unseen_database_file(db, relative, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_uuids_made_from_the_job() {
        let id = run_id("redshift://sales.us-east-1:5439", "dev.mart.daily");
        let uuid = regex::Regex::new(r"^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$").unwrap();
        assert!(uuid.is_match(&id), "{id}");
        assert_eq!(id, run_id("redshift://sales.us-east-1:5439", "dev.mart.daily"));
        assert_ne!(id, run_id("redshift://sales.us-east-1:5439", "dev.mart.weekly"));
    }
}
