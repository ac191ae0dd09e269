//! Stage 4a: the dataset manifest, format `redshift-registry/v1` (JSON Schema:
//! `schema/dataset-manifest.v1.json`), and the S3 keys everything is written under.
//!
//! Bytes are deterministic: fields in a fixed order, labels sorted, columns by position, no
//! timestamps, so the same warehouse always gives the same manifest and the same content hash.

use std::collections::BTreeMap;

use crate::catalog::{
    DatabaseCatalog, Dataset, DatasetKind, NamespaceRecord, ReadEvent, Sharing, Upstream, WarehouseCatalog, WarehouseId,
};
use crate::layout::{decode_segment, Layout};
use crate::outcome::MANIFESTS;
use crate::publish::{File, Format, IndexEntry, API_VERSION};
use serde::Serialize;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest<'a> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub name: String,
    pub platform: &'static str,
    pub location: Location<'a>,
    #[serde(rename = "type")]
    pub dataset_type: DatasetKind,
    pub description: Option<&'a str>,
    pub owner: Option<&'a str>,
    pub labels: &'a BTreeMap<String, String>,
    pub view_definition: Option<&'a str>,
    pub external_location: Option<&'a str>,
    pub stats: Option<Stats>,
    pub columns: Vec<ManifestColumn<'a>>,
    /// What the dataset reads (lineage); left out when nothing, so that such manifests stay
    /// as they were.
    #[serde(skip_serializing_if = "<[Upstream]>::is_empty")]
    pub upstream: &'a [Upstream],
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Location<'a> {
    pub account_id: &'a str,
    pub region: &'a str,
    #[serde(flatten)]
    pub warehouse: &'a WarehouseId,
    pub database: &'a str,
    pub schema: &'a str,
    pub table: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Stats {
    pub row_count: Option<i64>,
    pub size_mb: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManifestColumn<'a> {
    pub name: &'a str,
    pub position: i32,
    #[serde(rename = "type")]
    pub data_type: &'a str,
    pub nullable: bool,
    pub description: Option<&'a str>,
    pub default: Option<&'a str>,
    pub dist_key: bool,
    pub sort_key_position: Option<i32>,
    pub encoding: Option<&'a str>,
    pub partition_key: bool,
}

/// The manifest of one dataset.
pub(crate) fn build<'a>(warehouse: &'a WarehouseCatalog, database: &'a str, d: &'a Dataset) -> Manifest<'a> {
    let mut columns: Vec<ManifestColumn> = d
        .columns
        .iter()
        .map(|c| ManifestColumn {
            name: &c.name,
            position: c.position,
            data_type: &c.data_type,
            nullable: c.nullable,
            description: c.description.as_deref(),
            default: c.default.as_deref(),
            dist_key: c.dist_key,
            sort_key_position: c.sort_key_position,
            encoding: c.encoding.as_deref(),
            partition_key: c.partition_key,
        })
        .collect();
    columns.sort_by(|a, b| a.position.cmp(&b.position).then_with(|| a.name.cmp(b.name)));
    Manifest {
        api_version: API_VERSION,
        kind: "Dataset",
        name: dataset_name(database, &d.schema, &d.name),
        platform: "redshift",
        location: Location {
            account_id: &warehouse.account_id,
            region: &warehouse.region,
            warehouse: &warehouse.warehouse,
            database,
            schema: &d.schema,
            table: &d.name,
        },
        dataset_type: d.kind,
        description: d.description.as_deref(),
        owner: d.owner.as_deref(),
        labels: &warehouse.labels,
        view_definition: d.view_definition.as_deref(),
        external_location: d.location.as_deref(),
        stats: (d.row_count.is_some() || d.size_mb.is_some())
            .then_some(Stats { row_count: d.row_count, size_mb: d.size_mb }),
        columns,
        upstream: &d.upstream,
    }
}

/// `[database].[schema].[table]`, names as Redshift stores them.
pub(crate) fn dataset_name(database: &str, schema: &str, table: &str) -> String {
    format!("{database}.{schema}.{table}")
}

impl Manifest<'_> {
    /// The manifest's bytes: pretty JSON with a final newline.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest serialises");
        bytes.push(b'\n');
        bytes
    }
}

/// The manifest format, `redshift-registry/v1`: one JSON file per dataset.
pub(crate) struct ManifestFormat {
    pub layout: Layout,
    index_root: String,
}

impl ManifestFormat {
    pub(crate) fn new(layout: Layout) -> Self {
        let index_root = layout.index_root(None);
        Self { layout, index_root }
    }
}

impl ManifestFormat {
    /// `{prefix}namespaces/{namespace}.json`, outside the warehouse's prefix so that a consumer
    /// finds it by namespace alone; in the warehouse's index, so that it goes with the warehouse.
    fn namespace_file(&self, catalog: &WarehouseCatalog, sharing: &Sharing) -> File {
        let record = NamespaceRecord {
            api_version: API_VERSION.to_string(),
            kind: "Namespace".to_string(),
            namespace: sharing.namespace.clone(),
            account_id: catalog.account_id.clone(),
            region: catalog.region.clone(),
            warehouse: catalog.warehouse.clone(),
            shares: sharing.shares.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&record).expect("a record serialises");
        bytes.push(b'\n');
        let key = self.layout.namespace_key(&sharing.namespace);
        File::new("", None, None, format!("namespace {}", sharing.namespace), key, bytes)
    }
}

impl Format for ManifestFormat {
    const NAME: &'static str = MANIFESTS;
    const CONTENT_TYPE: &'static str = "application/json";

    fn index_root(&self) -> &str {
        &self.index_root
    }

    fn warehouse_prefix(&self, account: &str, region: &str, warehouse: &WarehouseId) -> String {
        self.layout.datasets_prefix(account, region, warehouse)
    }

    type Pending = ();

    fn warehouse_files(&self, _: &WarehouseCatalog, _: &mut Vec<String>, _: &mut ()) -> Vec<File> {
        Vec::new()
    }

    /// One manifest per dataset, built as soon as the dataset is read; the namespace record of
    /// a warehouse that shares.
    fn files(&self, catalog: &WarehouseCatalog, event: &ReadEvent, _: &mut ()) -> Vec<File> {
        let (database, d) = match event {
            ReadEvent::Dataset { database, dataset } => (database, dataset),
            ReadEvent::Sharing(sharing) => return vec![self.namespace_file(catalog, sharing)],
            _ => return Vec::new(),
        };
        let (account, region, warehouse) = (&catalog.account_id, &catalog.region, &catalog.warehouse);
        let key = self.layout.dataset_key(account, region, warehouse, database, &d.schema, &d.name);
        let name = dataset_name(database, &d.schema, &d.name);
        let bytes = build(catalog, database, d).to_bytes();
        vec![File::new(database, Some(&d.schema), Some(&d.name), name, key, bytes)]
    }

    fn keeps(&self, database: &DatabaseCatalog, entry: &IndexEntry) -> bool {
        entry.schema.as_deref().is_some_and(|s| database.unconfirmed.covers(s))
    }

    /// `{database}/{schema}/{table}.json`, or the content-hashed layout's
    /// `{database}/{schema}/{table}/{sha256}.json`; `~hashed/` keys cannot be told apart.
    fn unseen_entry(&self, catalog: &WarehouseCatalog, relative: &str, key: &str) -> Option<IndexEntry> {
        let segments: Vec<&str> = relative.strip_suffix(".json")?.split('/').collect();
        let [db, schema, table, ..] = segments[..] else { return None };
        let (db, schema, table) = (decode_segment(db)?, decode_segment(schema)?, decode_segment(table)?);
        let unseen = catalog.unread_databases.contains(&db)
            || catalog.databases.iter().any(|d| d.name == db && d.unconfirmed.covers(&schema));
        unseen.then(|| IndexEntry {
            name: dataset_name(&db, &schema, &table),
            database: db,
            schema: Some(schema),
            table: Some(table),
            key: key.to_string(),
            sha256: String::new(),
        })
    }

    /// `{database}/{schema}/{table}.json` only.
    fn writes_key(&self, relative: &str) -> bool {
        let segments = relative.strip_suffix(".json").map(|r| r.split('/').collect::<Vec<_>>());
        segments.is_some_and(|s| s.len() == 3 && s.iter().all(|segment| decode_segment(segment).is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_makes_valid_json() {
        let column = crate::catalog::Column {
            name: "a\"b\\c\nd".into(),
            position: 1,
            data_type: "character varying(256)".into(),
            nullable: true,
            default: Some("'x'::character varying".into()),
            dist_key: false,
            sort_key_position: None,
            encoding: None,
            description: Some("*/ DROP TABLE t; -- \u{0} 🦀".into()),
            partition_key: false,
        };
        let dataset = Dataset {
            schema: "".into(),
            name: "t\"; --".into(),
            kind: DatasetKind::View,
            owner: None,
            description: Some("it's \"quoted\"\n*/".into()),
            view_definition: Some("SELECT '\\' AS x".into()),
            location: None,
            row_count: None,
            size_mb: None,
            columns: vec![column],
            upstream: Vec::new(),
        };
        let wh = crate::testing::cluster_c();
        let bytes = build(&wh, "dev", &dataset).to_bytes();
        let parsed: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        assert_eq!(parsed["name"], "dev..t\"; --");
        assert_eq!(parsed["location"]["schema"], "");
        assert_eq!(parsed["columns"][0]["description"], "*/ DROP TABLE t; -- \u{0} 🦀");
        assert_eq!(bytes, build(&wh, "dev", &dataset).to_bytes(), "deterministic");
    }
}
