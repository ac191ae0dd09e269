//! The ports: every trait the domain needs from the world, with the vocabulary they speak.
//! `aws` implements them over the AWS SDK; tests add in-memory ones. Nothing here imports a
//! stage module, so every stage may import this one.

use std::future::Future;

use time::OffsetDateTime;

use crate::catalog::{Cluster, NamespaceRecord, ReadEvent, WarehouseCatalog, WarehouseId, Workgroup};
use crate::error::{AwsError, ErrorKind};
use crate::outcome::{PublishReport, RemovedWarehouse};

/// Port: credentials in the organisation's accounts.
pub trait Platform: Send + Sync {
    type Account: AccountSession;
    /// Assumes an account's role; a failure here is the whole account's.
    fn assume_role(
        &self,
        role_arn: &str,
        external_id: Option<&str>,
        session_name: &str,
    ) -> impl Future<Output = Result<Self::Account, AwsError>> + Send;
}

/// Port: one assumed role, opening the control plane and the Data API of each region.
pub trait AccountSession: Send + Sync {
    type Directory: WarehouseDirectory;
    type Data: DataApi;
    type Organization: OrganizationDirectory;
    fn directory(&self, region: &str) -> Self::Directory;
    fn data_api(&self, region: &str) -> Self::Data;
    /// The organization this role may list: AWS Organizations, a global service with one
    /// endpoint per partition.
    fn organization(&self) -> Self::Organization;
}

/// Port: the accounts of an AWS organization, as its management or a delegated-administrator
/// account sees them.
pub trait OrganizationDirectory: Send + Sync {
    /// ACTIVE accounts of the organization, or of these OUs and every OU below them; all pages.
    fn active_accounts(
        &self,
        organizational_units: &[String],
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
}

/// Port: the object store the config may come from and everything goes to.
pub trait ObjectStore: Send + Sync {
    /// Every object under `prefix`, all pages, with when it was last written.
    fn list_modified(&self, bucket: &str, prefix: &str) -> impl Future<Output = Result<Vec<Listed>, AwsError>> + Send;
    fn delete(&self, bucket: &str, keys: &[String]) -> impl Future<Output = Result<(), AwsError>> + Send;
    fn get(&self, bucket: &str, key: &str) -> impl Future<Output = Result<Object, AwsError>> + Send;
    /// Writes `body` at `key` if the key is as `condition` expects; otherwise fails with
    /// [`ErrorKind::Conflict`](crate::error::ErrorKind::Conflict) and writes nothing.
    fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: Condition<'_>,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Every key under `prefix`, all pages.
    fn list(&self, bucket: &str, prefix: &str) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send {
        async move { Ok(self.list_modified(bucket, prefix).await?.into_iter().map(|l| l.key).collect()) }
    }

    /// The object at `key`, or `None` when there is none. S3 answers a missing key with 403,
    /// not 404, to a caller without an unconditioned s3:ListBucket on the bucket (GetObject API
    /// reference), and the template grants ListBucket only under the prefix: a listing tells
    /// absence from a real refusal.
    fn get_if_present(&self, bucket: &str, key: &str) -> impl Future<Output = Result<Option<Object>, AwsError>> + Send {
        async move {
            match self.get(bucket, key).await {
                Ok(object) => Ok(Some(object)),
                Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
                Err(e) if e.kind == ErrorKind::AccessDenied => {
                    let listed = self.list(bucket, key).await?;
                    if listed.iter().any(|k| k == key) {
                        Err(e)
                    } else {
                        Ok(None)
                    }
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub modified: OffsetDateTime,
}

/// An object's content, and the ETag a conditional write names this version by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub etag: String,
}

/// What a write expects at its key: S3 conditional writes (User Guide, conditional-writes.html),
/// which make the per-warehouse index a commit point two writers cannot both win.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition<'a> {
    /// Whatever is there (an ordinary PutObject).
    Any,
    /// Nothing yet (`If-None-Match: *`).
    Absent,
    /// The version read before (`If-Match: <etag>`).
    Unchanged(&'a str),
}

/// Port: the control plane of one account in one region.
pub trait WarehouseDirectory: Send + Sync {
    /// Every cluster of the region, all pages.
    fn list_clusters(&self) -> impl Future<Output = Result<Vec<Cluster>, AwsError>> + Send;
    /// One cluster by identifier; `None` when it does not exist.
    fn find_cluster(&self, identifier: &str) -> impl Future<Output = Result<Option<Cluster>, AwsError>> + Send;
    /// Every Serverless workgroup of the region, all pages.
    fn list_workgroups(&self) -> impl Future<Output = Result<Vec<Workgroup>, AwsError>> + Send;
    /// One workgroup by name; `None` when it does not exist.
    fn find_workgroup(&self, name: &str) -> impl Future<Output = Result<Option<Workgroup>, AwsError>> + Send;
}

/// Port: which warehouse holds a Redshift namespace, as the registry last published it; how a
/// datashare consumer's tables are tied to the producer's datasets.
pub trait NamespaceDirectory: Send + Sync {
    /// `None` when no run has published the namespace (or its record cannot be read).
    fn holder(&self, namespace: &str) -> impl Future<Output = Option<NamespaceRecord>> + Send;
}

/// The in-memory directory: records by namespace.
impl NamespaceDirectory for std::collections::HashMap<String, NamespaceRecord> {
    async fn holder(&self, namespace: &str) -> Option<NamespaceRecord> {
        self.get(namespace).cloned()
    }
}

/// Port: the queue a fanned-out run's shards travel on.
pub trait ShardQueue: Send + Sync {
    /// Sends every body as one message; fails if any could not be sent.
    fn send(&self, queue_url: &str, bodies: Vec<String>) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// Port: the formats the registry is published in (manifests, Backstage entities...). Each
/// warehouse is published while it is read: `publish` takes its datasets as the reader sends
/// them and writes each as soon as it is built, so no warehouse is ever held whole; `commit`
/// then makes what was written the warehouse's snapshot, once its databases' fate is known.
pub trait Output: Send + Sync {
    /// What was written of one warehouse, waiting for its commit.
    type Publishing: Send;
    /// Consumes the reader's events until the reader closes the channel.
    fn publish(
        &self,
        warehouse: &WarehouseCatalog,
        read: tokio::sync::mpsc::Receiver<ReadEvent>,
    ) -> impl Future<Output = Self::Publishing> + Send;
    /// Commits a warehouse whose `databases` and `unread_databases` are now filled in.
    fn commit(
        &self,
        publishing: Self::Publishing,
        warehouse: &WarehouseCatalog,
    ) -> impl Future<Output = Vec<PublishReport>> + Send;
    /// Removes the warehouses of a region that a complete discovery no longer found: every one
    /// not in `present`, workgroups only when `workgroups_listed`.
    fn sweep(
        &self,
        account: &str,
        region: &str,
        present: &std::collections::BTreeSet<WarehouseId>,
        workgroups_listed: bool,
    ) -> impl Future<Output = Result<Vec<RemovedWarehouse>, AwsError>> + Send;
}

/// How the Data API logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbAuth {
    /// The caller's IAM identity (`IAMR:<role>` in the database).
    Iam,
    DbUser(String),
    SecretArn(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub warehouse: WarehouseId,
    pub auth: DbAuth,
}

/// One value of a result row, as the Data API's `Field` union carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Long(i64),
    Double(f64),
    Text(String),
}

pub type Row = Vec<Cell>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Running,
    Finished,
    Failed(String),
    Aborted,
}

/// A statement as DescribeStatement shows it. Whether to fetch follows `HasResultSet`, the
/// documented signal; `ResultRows` is not relied on (it is known to read 0 or -1 for statements
/// that do return rows).
#[derive(Debug, Clone)]
pub struct StatementState {
    pub phase: Phase,
    /// Sub-statements of a batch: their ids and whether they have a result set.
    pub subs: Vec<(String, bool)>,
    pub has_result_set: bool,
}

/// A statement just started, and its state when the call waited for it (a long poll) and
/// could tell it.
#[derive(Debug, Clone)]
pub struct Started {
    pub id: String,
    pub state: Option<StatementState>,
}

#[derive(Debug, Clone, Default)]
pub struct Page {
    pub rows: Vec<Row>,
    pub next_token: Option<String>,
}

/// How results travel: typed JSON records (GetStatementResult) or CSV text
/// (GetStatementResultV2), the config's `dataApi.resultFormat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ResultFormat {
    #[default]
    Json,
    Csv,
}

/// How statements are run and waited for, from the config's `dataApi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetch {
    /// Seconds a call may wait for a statement to end (`WaitTimeSeconds`, at most 30); 0 polls.
    pub wait_seconds: u8,
    pub format: ResultFormat,
}

/// Port: the Data API of one account and region. One implementation keeps one identity for a
/// statement's whole life, since only that identity may describe, fetch or cancel it.
pub trait DataApi: Send + Sync {
    fn execute(
        &self,
        target: &Target,
        database: &str,
        sql: &str,
        params: &[(&str, &str)],
        fetch: Fetch,
    ) -> impl Future<Output = Result<Started, AwsError>> + Send;
    fn batch_execute(
        &self,
        target: &Target,
        database: &str,
        sqls: &[String],
        fetch: Fetch,
    ) -> impl Future<Output = Result<Started, AwsError>> + Send;
    /// The statement's state, after waiting up to `wait_seconds` for it to end.
    fn describe(&self, id: &str, wait_seconds: u8) -> impl Future<Output = Result<StatementState, AwsError>> + Send;
    fn page(
        &self,
        id: &str,
        next_token: Option<String>,
        format: ResultFormat,
    ) -> impl Future<Output = Result<Page, AwsError>> + Send;
    fn cancel(&self, id: &str) -> impl Future<Output = Result<(), AwsError>> + Send;
}
impl Cell {
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn long(&self) -> Option<i64> {
        match self {
            Self::Long(n) => Some(*n),
            Self::Double(d) => Some(*d as i64),
            Self::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Booleans come as booleans, or as text (`YES`, `true`, `t`) from views that print them.
    pub fn flag(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            Self::Long(n) => Some(*n != 0),
            Self::Text(s) => match s.to_ascii_lowercase().as_str() {
                "yes" | "true" | "t" | "y" | "1" => Some(true),
                "no" | "false" | "f" | "n" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }
}
