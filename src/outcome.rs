//! What publishing a warehouse did: the outcome types of the `Output` port, which the commit
//! protocol fills and the report shows. A leaf over the catalog.

use serde::Serialize;

use crate::catalog::WarehouseId;

/// The name of the manifest output, whose counts are the run's dataset counts.
pub const MANIFESTS: &str = "manifests";

/// What publishing one warehouse did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishReport {
    /// Which output: `manifests` or `backstage`.
    pub output: String,
    pub index_key: String,
    pub committed: bool,
    pub written: usize,
    pub unchanged: usize,
    pub removed: usize,
    /// Objects no index referenced (a previous layout's keys, leftovers of an interrupted
    /// run), deleted after the commit.
    pub cleaned: usize,
    /// Datasets kept from the previous index because their database, or the part of it they
    /// belong to (an external schema), could not be read.
    pub kept: usize,
    /// Dataset names written and removed, listed in dry runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub would_write: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub would_remove: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The newer run whose commit this one yielded to: nothing was committed or removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    /// What the output made of the catalog that a reader should know (an owner tag that is not
    /// an entity ref...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A warehouse that discovery no longer finds, and how many of its objects went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedWarehouse {
    #[serde(flatten)]
    pub id: WarehouseId,
    pub objects: usize,
}
