//! The catalog model: what the reader found in one warehouse, plain data for manifests and
//! reports. A dataset travels alone, as soon as it is read ([`ReadEvent`]), with its columns
//! sorted by position; a database's summary follows its datasets. Nothing here depends on the
//! order datasets arrive in, so the same warehouse always gives the same files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which warehouse a catalog belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WarehouseId {
    ClusterIdentifier(String),
    WorkgroupName(String),
}

impl WarehouseId {
    /// `cluster` or `workgroup`, as keys and messages name them.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ClusterIdentifier(_) => "cluster",
            Self::WorkgroupName(_) => "workgroup",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::ClusterIdentifier(n) | Self::WorkgroupName(n) => n,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    Local,
    /// A datashare consumer database: read through the SVV_REDSHIFT_* views of another
    /// database, since it cannot be connected to.
    Shared,
}

/// A database whose read ended: what the report and the commit need. Its datasets are not
/// here: each left for the outputs ([`ReadEvent::Dataset`]) as soon as it was read.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseCatalog {
    pub name: String,
    pub kind: DatabaseKind,
    /// How many datasets were read.
    pub datasets: usize,
    /// What could not be seen, each with the fix (GRANTs), and optional parts not read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Where this read cannot tell a dropped dataset from one it could not see: previously
    /// published datasets there are kept, not removed.
    #[serde(default, skip_serializing_if = "Unconfirmed::is_nothing")]
    pub unconfirmed: Unconfirmed,
}

/// The part of a database whose absent datasets are not confirmed absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Unconfirmed {
    #[default]
    Nothing,
    /// These schemas (external schemas whose objects could not be read).
    Schemas(std::collections::BTreeSet<String>),
    /// Any schema: external objects failed and the external schemas are unknown too.
    Everything,
}

impl Unconfirmed {
    pub(crate) fn is_nothing(&self) -> bool {
        *self == Self::Nothing
    }

    pub(crate) fn covers(&self, schema: &str) -> bool {
        match self {
            Self::Nothing => false,
            Self::Schemas(schemas) => schemas.contains(schema),
            Self::Everything => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    Table,
    View,
    MaterializedView,
    LateBindingView,
    /// A table of an external schema over the Glue Data Catalog or a Hive metastore (Spectrum).
    ExternalTable,
    /// A view (or materialized view) of a Glue Data Catalog or Hive metastore schema.
    ExternalView,
    /// A table of a federated PostgreSQL or MySQL schema.
    FederatedTable,
    /// A view (or materialized view) of a federated PostgreSQL or MySQL database.
    FederatedView,
    /// A Kinesis data stream or MSK topic of a streaming-ingestion schema.
    StreamingSource,
    /// A table of a schema over a remote Redshift database.
    RemoteRedshiftTable,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dataset {
    pub schema: String,
    pub name: String,
    pub kind: DatasetKind,
    pub owner: Option<String>,
    pub description: Option<String>,
    pub view_definition: Option<String>,
    /// S3 location of an external table.
    pub location: Option<String>,
    pub row_count: Option<i64>,
    pub size_mb: Option<i64>,
    pub columns: Vec<Column>,
    /// What the dataset reads, sorted, each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream: Vec<Upstream>,
}

impl Dataset {
    /// A dataset known by its schema, name and kind only, the rest to be filled in.
    pub fn named(schema: String, name: String, kind: DatasetKind) -> Self {
        Self {
            schema,
            name,
            kind,
            owner: None,
            description: None,
            view_definition: None,
            location: None,
            row_count: None,
            size_mb: None,
            columns: Vec::new(),
            upstream: Vec::new(),
        }
    }
}

/// One thing a dataset reads: another dataset, or an S3 location.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upstream {
    /// `database.schema.table`; none for an S3 location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The warehouse the upstream lives in, when it is not the dataset's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<UpstreamWarehouse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<String>,
    pub via: Via,
}

impl Upstream {
    /// A dataset of the same warehouse.
    pub fn dataset(database: &str, schema: &str, table: &str, via: Via) -> Self {
        Self {
            name: Some(format!("{database}.{schema}.{table}")),
            database: Some(database.to_string()),
            schema: Some(schema.to_string()),
            table: Some(table.to_string()),
            warehouse: None,
            s3: None,
            via,
        }
    }

    /// The producer's object a datashare consumer's table stands for: its schema and name in
    /// the warehouse of that account and namespace (its database is the producer's to say).
    pub fn shared(account_id: &str, namespace: &str, schema: &str, table: &str) -> Self {
        let warehouse = UpstreamWarehouse {
            account_id: account_id.into(),
            namespace: Some(namespace.into()),
            region: None,
            cluster_identifier: None,
            workgroup_name: None,
        };
        Self {
            name: None,
            database: None,
            schema: Some(schema.into()),
            table: Some(table.into()),
            warehouse: Some(warehouse),
            s3: None,
            via: Via::Datashare,
        }
    }

    /// Places a datashare upstream in the warehouse that holds its producer's namespace, and
    /// names it when that warehouse shows which of its databases the datashare is made from.
    pub(crate) fn held_by(mut self, holder: &NamespaceRecord, database: Option<&str>) -> Self {
        if let Some(w) = &mut self.warehouse {
            w.region = Some(holder.region.clone());
            match &holder.warehouse {
                WarehouseId::ClusterIdentifier(id) => w.cluster_identifier = Some(id.clone()),
                WarehouseId::WorkgroupName(name) => w.workgroup_name = Some(name.clone()),
            }
        }
        if let (Some(db), Some(schema), Some(table)) = (database, &self.schema, &self.table) {
            self.name = Some(format!("{db}.{schema}.{table}"));
            self.database = Some(db.to_string());
        }
        self
    }

    /// An external table's S3 location.
    pub fn s3(location: &str) -> Self {
        Self {
            name: None,
            database: None,
            schema: None,
            table: None,
            warehouse: None,
            s3: Some(location.into()),
            via: Via::External,
        }
    }
}

/// Another warehouse, by what a datashare says of its producer, and its identifier once known.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamWarehouse {
    pub account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workgroup_name: Option<String>,
}

/// What a warehouse shares: its namespace, the id its datashares' consumers know it by
/// (SVV_DATASHARES.producer_namespace), and the database each datashare is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharing {
    pub namespace: String,
    /// Datashare name -> source database.
    pub shares: BTreeMap<String, String>,
}

/// Which warehouse holds a namespace, and what it shares: how a consumer's run finds the
/// producer of its datashares. The manifests publish one per sharing warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceRecord {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub account_id: String,
    pub region: String,
    #[serde(flatten)]
    pub warehouse: WarehouseId,
    /// Datashare name -> source database.
    pub shares: BTreeMap<String, String>,
}

/// How an upstream is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Via {
    /// The dependency records Redshift keeps for a regular view (pg_depend over pg_rewrite).
    Catalog,
    /// The view's definition, parsed as Redshift SQL.
    Definition,
    /// A datashare consumer database's table, shared by its producer.
    Datashare,
    /// An external table's location.
    External,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    pub name: String,
    pub position: i32,
    /// As Redshift prints it: `character varying(256)`, `numeric(18,2)`, ...
    pub data_type: String,
    pub nullable: bool,
    pub default: Option<String>,
    pub dist_key: bool,
    /// Position in the sort key; negative for interleaved keys, as Redshift reports them.
    pub sort_key_position: Option<i32>,
    pub encoding: Option<String>,
    pub description: Option<String>,
    /// Partition column of an external table.
    pub partition_key: bool,
}

impl Column {
    /// A column known only by name, position and type (late-binding views, external tables).
    pub fn plain(name: String, position: i32, data_type: String) -> Self {
        Self {
            name,
            position,
            data_type,
            nullable: true,
            default: None,
            dist_key: false,
            sort_key_position: None,
            encoding: None,
            description: None,
            partition_key: false,
        }
    }
}

/// A provisioned cluster as the control plane describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub cluster_identifier: String,
    pub cluster_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_arn: Option<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub address: String,
    pub port: i32,
}

impl Cluster {
    /// Why the Data API cannot query this cluster now, if it cannot. ClusterAvailabilityStatus is
    /// the better gate ("Available", "Maintenance", ...); older responses and emulators only
    /// carry ClusterStatus, so that is the fallback. A busy cluster is tried.
    pub(crate) fn unavailable_reason(&self) -> Option<String> {
        match &self.availability {
            Some(a) if a.eq_ignore_ascii_case("available") || self.busy().is_some() => None,
            Some(a) => Some(format!(
                "cluster availability is {a:?} (status {:?}); it is read again once available",
                self.cluster_status
            )),
            None if self.cluster_status.eq_ignore_ascii_case("available") => None,
            None => Some(format!("cluster status is {:?}; it is read again once available", self.cluster_status)),
        }
    }
}

impl Cluster {
    /// `Modifying` or `Maintenance`: "intermittently available for queries" (Redshift API
    /// reference, ClusterAvailabilityStatus), so worth a try, and a failure there is no fault.
    pub fn busy(&self) -> Option<&str> {
        self.availability
            .as_deref()
            .filter(|a| a.eq_ignore_ascii_case("modifying") || a.eq_ignore_ascii_case("maintenance"))
    }
}

/// A Redshift Serverless workgroup with its namespace's default database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workgroup {
    pub workgroup_name: String,
    pub status: String,
    pub namespace_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workgroup_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_arn: Option<String>,
}

/// A provisioned cluster or a Serverless workgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Warehouse {
    Cluster(Cluster),
    Workgroup(Workgroup),
}

impl Warehouse {
    pub fn id(&self) -> WarehouseId {
        match self {
            Self::Cluster(c) => WarehouseId::ClusterIdentifier(c.cluster_identifier.clone()),
            Self::Workgroup(w) => WarehouseId::WorkgroupName(w.workgroup_name.clone()),
        }
    }

    /// The database the Data API logs in to for warehouse-wide statements.
    pub fn default_database(&self) -> &str {
        let name = match self {
            Self::Cluster(c) => c.database_name.as_deref(),
            Self::Workgroup(w) => w.database_name.as_deref(),
        };
        name.unwrap_or("dev")
    }

    /// The warehouse's ARN: a cluster's is built from its identifier (Redshift's resource
    /// types, in the Service Authorization Reference), a workgroup's (named by an id, not its
    /// name) is the one ListWorkgroups gave.
    pub fn arn(&self, account_id: &str, region: &str) -> Option<String> {
        match self {
            Self::Cluster(c) => Some(format!(
                "arn:{}:redshift:{region}:{account_id}:cluster:{}",
                crate::names::partition_of(region),
                c.cluster_identifier
            )),
            Self::Workgroup(w) => w.workgroup_arn.clone(),
        }
    }

    /// The cluster's tags, which become every dataset's labels.
    pub fn tags(&self) -> BTreeMap<String, String> {
        match self {
            Self::Cluster(c) => c.tags.clone(),
            Self::Workgroup(_) => BTreeMap::new(),
        }
    }

    pub fn busy(&self) -> Option<&str> {
        match self {
            Self::Cluster(c) => c.busy(),
            Self::Workgroup(_) => None,
        }
    }

    pub(crate) fn unavailable_reason(&self) -> Option<String> {
        match self {
            Self::Cluster(c) => c.unavailable_reason(),
            Self::Workgroup(w) if w.status.eq_ignore_ascii_case("available") => None,
            Self::Workgroup(w) => Some(format!("workgroup status is {:?}; it is read again once available", w.status)),
        }
    }
}

/// What the reader sends the outputs while it reads a warehouse, in the order it reads.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadEvent {
    /// One complete dataset (its columns sorted by position), as soon as it is read.
    Dataset { database: std::sync::Arc<str>, dataset: Dataset },
    /// A database was read whole: every dataset of it was sent before this.
    DatabaseRead(DatabaseCatalog),
    /// A database's read failed: datasets of it sent before are not the whole database.
    DatabaseFailed(String),
    /// What the warehouse shares, sent before its databases.
    Sharing(Sharing),
}

/// One warehouse, with where it lives and, once read, what became of its databases: what
/// manifests are built from and commits are decided on.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseCatalog {
    pub account_id: String,
    pub region: String,
    pub warehouse: WarehouseId,
    /// The warehouse's ARN, when known (a workgroup's comes from ListWorkgroups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The cluster's tags.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Databases read completely (empty while the warehouse is being read).
    pub databases: Vec<DatabaseCatalog>,
    /// Databases whose read failed: nothing of theirs may be removed.
    pub unread_databases: Vec<String>,
    /// SVV_DATASHARES could not be read: what the warehouse shared before is kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sharing_unread: bool,
}
