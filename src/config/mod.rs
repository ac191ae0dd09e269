//! Stage 1: the run's configuration, read ([`document`]) and validated ([`validate`]) before
//! any AWS call, into types that hold what validation proved.

mod document;
mod validate;

use crate::environment::Environment;
use crate::layout::Layout;

pub use document::{
    is_entity_ref, json_schema, BackstageOutput, ConfigError, DataApiConfig, Filters, Limits, NamePattern,
    NamedCluster, NamedWorkgroup, OpenLineageOutput, Output, Outputs, Pattern, Problem, SCHEMA,
};
pub use validate::DeploymentDefaults;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub output: Output,
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
    member_role: String,
    partition: String,
}

impl OrganizationSource {
    /// The reader role in a member account.
    pub fn member_role_arn(&self, account: &str) -> String {
        validate::reader_role_arn(&self.partition, account, &self.member_role)
    }
}

impl Source {
    /// Every region the source visits.
    pub fn regions(&self) -> Vec<&str> {
        match self {
            Self::Account(AccountSource { reads: Reads::Regions(regions), .. }) | Self::Organization(OrganizationSource { regions, .. }) => {
                regions.iter().map(String::as_str).collect()
            }
            Self::Account(AccountSource { reads: Reads::Named { clusters, workgroups }, .. }) => {
                clusters.iter().map(|c| c.region.as_str()).chain(workgroups.iter().map(|w| w.region.as_str())).collect()
            }
        }
    }
}

impl Config {
    /// Reads a config: its JSON syntax (a problem with its line and column), its structure
    /// against the committed JSON Schema (every problem, each with its path), then the rules
    /// (every problem again), filling from `defaults` what it leaves out. The same checks run for
    /// `--check-config`, offline.
    pub fn parse(text: &str, defaults: &DeploymentDefaults) -> Result<Self, ConfigError> {
        validate::validate(document::Document::read(text)?, defaults)
    }

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

/// Where the config comes from, as the environment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    Inline(String),
    File(String),
    S3 { bucket: String, key: String },
}

impl ConfigSource {
    pub fn of(env: &Environment) -> Result<Self, ConfigError> {
        match (&env.config, &env.config_uri) {
            (Some(text), None) => Ok(Self::Inline(text.clone())),
            (None, Some(uri)) => Self::from_uri(uri),
            (Some(_), Some(_)) => Err(ConfigError::one(
                "REGISTRY_CONFIG",
                "both REGISTRY_CONFIG and REGISTRY_CONFIG_URI are set; keep one",
            )),
            (None, None) => Err(ConfigError::one(
                "REGISTRY_CONFIG",
                "no config: set REGISTRY_CONFIG to the JSON or REGISTRY_CONFIG_URI to s3://bucket/key or a file path",
            )),
        }
    }

    pub(crate) fn from_uri(uri: &str) -> Result<Self, ConfigError> {
        match uri.strip_prefix("s3://") {
            Some(rest) => match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    Ok(Self::S3 { bucket: bucket.into(), key: key.into() })
                }
                _ => {
                    Err(ConfigError::one("REGISTRY_CONFIG_URI", format!("{uri:?} is not of the form s3://bucket/key")))
                }
            },
            None => Ok(Self::File(uri.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed schema is the one the types give; `REGISTRY_WRITE_SCHEMA=1` rewrites it.
    #[test]
    fn the_committed_schema_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/config.v1.json");
        if std::env::var("REGISTRY_WRITE_SCHEMA").is_ok_and(|v| v == "1") {
            std::fs::write(path, json_schema()).unwrap();
        }
        assert!(
            SCHEMA == json_schema(),
            "schema/config.v1.json is stale: run `REGISTRY_WRITE_SCHEMA=1 cargo nextest run the_committed_schema` and commit it"
        );
    }

    #[test]
    fn uri_forms() {
        assert_eq!(
            ConfigSource::from_uri("s3://b/k/c.json").unwrap(),
            ConfigSource::S3 { bucket: "b".into(), key: "k/c.json".into() }
        );
        assert_eq!(ConfigSource::from_uri("./c.json").unwrap(), ConfigSource::File("./c.json".into()));
        assert!(ConfigSource::from_uri("s3://bucket-only").unwrap_err().to_string().contains("s3://bucket/key"));
    }
}
