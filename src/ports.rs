//! The ports: every trait the domain needs from the world, with the vocabulary they speak.
//! `aws` implements them over the AWS SDK; tests add in-memory ones. Nothing here imports a
//! stage module, so every stage may import this one.

use std::future::Future;

use crate::catalog::{Cluster, WarehouseCatalog, WarehouseId, Workgroup};
use crate::error::AwsError;
use crate::report::{PublishReport, RemovedWarehouse};

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
    /// Every key under `prefix`, all pages.
    fn list(&self, bucket: &str, prefix: &str) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
    fn delete(&self, bucket: &str, keys: &[String]) -> impl Future<Output = Result<(), AwsError>> + Send;
    fn get(&self, bucket: &str, key: &str) -> impl Future<Output = Result<Vec<u8>, AwsError>> + Send;
    fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
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

/// Port: the queue a fanned-out run's shards travel on.
pub trait ShardQueue: Send + Sync {
    /// Sends every body as one message; fails if any could not be sent.
    fn send(&self, queue_url: &str, bodies: Vec<String>) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// Port: one format the registry is published in (manifests, Backstage entities...). It gets
/// each warehouse's catalog as soon as that warehouse is read, commits it, and forgets it.
pub trait Output: Send + Sync {
    fn publish(&self, catalog: &WarehouseCatalog) -> impl Future<Output = Vec<PublishReport>> + Send;
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

#[derive(Debug, Clone, Default)]
pub struct Page {
    pub rows: Vec<Row>,
    pub next_token: Option<String>,
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
    ) -> impl Future<Output = Result<String, AwsError>> + Send;
    fn batch_execute(
        &self,
        target: &Target,
        database: &str,
        sqls: &[String],
    ) -> impl Future<Output = Result<String, AwsError>> + Send;
    fn describe(&self, id: &str) -> impl Future<Output = Result<StatementState, AwsError>> + Send;
    fn page(&self, id: &str, next_token: Option<String>) -> impl Future<Output = Result<Page, AwsError>> + Send;
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
