//! The validated configuration: what validation proved is in the types (a source is an account
//! or an organization, roles are whole ARNs, fan-out has its queue), so no later stage checks it
//! again. A config checked offline (`--check-config`) may leave empty what the stack's
//! environment fills (the reader role's name, the queue URL); it is only reported, never run.

use super::document::{DataApiConfig, Filters, Limits, NamedCluster, NamedWorkgroup, OutputLocation, Outputs};
use crate::layout::Layout;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub output: OutputLocation,
    /// Formats beside the manifests, each off unless present.
    pub outputs: Outputs,
    pub execution: Execution,
    /// Deliveries of a shard before SQS moves it to the dead-letter queue (the queue's
    /// maxReceiveCount, `execution.maxReceiveCount`); only used to tell a last attempt.
    pub max_receive_count: u32,
    pub external_id: Option<String>,
    pub pull_redshift_comments: bool,
    pub include_system_schemas: bool,
    pub filters: Filters,
    pub limits: Limits,
    pub data_api: DataApiConfig,
    pub sources: Vec<Source>,
    /// The partition the function runs in, from its own region.
    pub partition: String,
}

/// How a run is carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Execution {
    /// Every account and region in this invocation.
    Single,
    /// One message per (account, region) shard on this queue, each run by an invocation of its own.
    Fanout { queue_url: String },
}

impl Execution {
    /// The shard queue of a fanned-out config; none in the single mode.
    pub(crate) fn fanout_queue(&self) -> Option<&str> {
        match self {
            Self::Single => None,
            Self::Fanout { queue_url } => Some(queue_url),
        }
    }
}

/// One account, or the accounts of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Account(AccountSource),
    Organization(OrganizationSource),
}

/// One AWS account, visited through `role_arn` (its own, or the top-level `roleName` there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSource {
    pub account_id: String,
    pub role_arn: String,
    pub reads: Reads,
}

/// What an account source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reads {
    /// Option 1: every warehouse of these regions.
    Regions(Vec<String>),
    /// Option 2: only the named clusters and workgroups.
    Named { clusters: Vec<NamedCluster>, workgroups: Vec<NamedWorkgroup> },
}

/// The ACTIVE accounts of an organization, listed at each run through `role_arn` (in its
/// management or delegated-administrator account), each visited in `regions` with the reader role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationSource {
    pub role_arn: String,
    /// These OUs and every OU below them; empty means the whole organization.
    pub organizational_units: Vec<String>,
    pub exclude_accounts: Vec<String>,
    pub regions: Vec<String>,
    pub(super) member_role: String,
    pub(super) partition: String,
}

impl OrganizationSource {
    /// The reader role in a member account.
    pub fn member_role_arn(&self, account: &str) -> String {
        reader_role_arn(&self.partition, account, &self.member_role)
    }
}

impl Source {
    /// Every region the source visits.
    pub fn regions(&self) -> Vec<&str> {
        match self {
            Self::Account(AccountSource { reads: Reads::Regions(regions), .. })
            | Self::Organization(OrganizationSource { regions, .. }) => regions.iter().map(String::as_str).collect(),
            Self::Account(AccountSource { reads: Reads::Named { clusters, workgroups }, .. }) => {
                clusters.iter().map(|c| c.region.as_str()).chain(workgroups.iter().map(|w| w.region.as_str())).collect()
            }
        }
    }
}

impl Config {
    /// Where everything is written under the output prefix.
    pub fn layout(&self) -> Layout {
        Layout { prefix: self.output.prefix.clone() }
    }

    /// The account sources, in the config's order.
    pub fn accounts(&self) -> impl Iterator<Item = &AccountSource> {
        self.sources.iter().filter_map(|s| match s {
            Source::Account(a) => Some(a),
            Source::Organization(_) => None,
        })
    }

    /// The organization sources, each with its index in `sources`.
    pub fn organizations(&self) -> impl Iterator<Item = (usize, &OrganizationSource)> {
        self.sources.iter().enumerate().filter_map(|(i, s)| match s {
            Source::Organization(o) => Some((i, o)),
            Source::Account(_) => None,
        })
    }
}

/// The reader role `name` in `account`.
pub(super) fn reader_role_arn(partition: &str, account: &str, name: &str) -> String {
    format!("arn:{partition}:iam::{account}:role/{name}")
}
