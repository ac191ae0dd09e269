//! Stage 1b: the run's configuration, parsed and validated before any AWS call.
//!
//! Errors name the JSON path of the offending value (`$.sources[1].accountId`) so a user can find
//! it in a config of dozens of accounts.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::environment::Environment;
use crate::layout::Layout;
use crate::names::{
    partition_of, ACCOUNT_ID, ACCOUNT_ID_PATTERN, BUCKET, CLUSTER_ID, CLUSTER_ID_PATTERN, EXTERNAL_ID, OU_ID, REGION,
    ROLE_ARN, ROLE_NAME, SECRET_ARN, WORKGROUP, WORKGROUP_PATTERN,
};

/// The validated configuration. Keys are camelCase, as the Spotify Portal integration spells them.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Where an editor finds this file's JSON Schema (`schema/config.v1.json`); not read otherwise.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub output: Output,
    /// Formats beside the manifests, each off unless present.
    #[serde(default)]
    pub outputs: Outputs,
    /// How the run is carried out: in this invocation, or sharded over a queue.
    #[serde(default)]
    pub execution: Execution,
    #[serde(default)]
    pub role_name: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub pull_redshift_comments: bool,
    /// Read pg_catalog, information_schema and the other system schemas too.
    #[serde(default)]
    pub include_system_schemas: bool,
    #[serde(default)]
    pub filters: Filters,
    #[serde(default)]
    pub limits: Limits,
    /// How statements are waited for and their results fetched.
    #[serde(default)]
    pub data_api: DataApiConfig,
    pub sources: Vec<Source>,
    /// The partition the function runs in, from its own region; not a config key.
    #[serde(skip)]
    pub partition: String,
}

/// Regex filters, each matched against the whole name: databases by database name, schemas by
/// schema name, tables by dataset name `database.schema.table`. Exclude wins over include; no
/// include list means everything.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Filters {
    #[serde(default)]
    pub databases: Pattern,
    #[serde(default)]
    pub schemas: Pattern,
    #[serde(default)]
    pub tables: Pattern,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pattern {
    /// Regexes, each matched against the whole name.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub include: Vec<NamePattern>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub exclude: Vec<NamePattern>,
}

/// A filter regex as written, and the anchored regex `^(?:...)$` it matches with. The anchored
/// one is compiled while the config is read: a pattern valid alone can break once wrapped (a
/// `(?x)` comment swallows the closing `)$`), and that must be a config error, not a panic later.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct NamePattern {
    pub source: String,
    pub anchored: Regex,
}

impl TryFrom<String> for NamePattern {
    type Error = String;

    fn try_from(source: String) -> Result<Self, String> {
        match Regex::new(&format!("^(?:{source})$")) {
            Ok(anchored) => Ok(Self { source, anchored }),
            Err(e) => {
                let reason = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                Err(format!("{source:?} is not a valid regex once anchored as ^(?:...)$: {reason}"))
            }
        }
    }
}

impl NamePattern {
    /// A pattern that is a plain name matches only that name, so a missing one can be reported.
    pub fn literal(&self) -> Option<&str> {
        (regex::escape(&self.source) == self.source).then_some(self.source.as_str())
    }
}

impl PartialEq for NamePattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for NamePattern {}

/// Concurrency bounds and timeouts. The defaults stay under the Data API's per-account rates
/// (ExecuteStatement 30/s, DescribeStatement 100/s).
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    /// Accounts visited at once.
    pub accounts_in_parallel: usize,
    /// Warehouses read at once in one account and region.
    pub warehouses_per_region: usize,
    /// Databases of one warehouse read at once (each runs eight statements at once).
    pub databases_per_warehouse: usize,
    /// S3 writes in flight per warehouse.
    pub s3_writes_in_parallel: usize,
    /// A statement running longer is cancelled and its database reported as timed out.
    pub statement_timeout_seconds: u64,
    /// No new work starts this close to the Lambda deadline: the time to commit what is read
    /// and write the report.
    pub deadline_reserve_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            accounts_in_parallel: 8,
            warehouses_per_region: 4,
            databases_per_warehouse: 4,
            s3_writes_in_parallel: 16,
            statement_timeout_seconds: 300,
            deadline_reserve_seconds: 60,
        }
    }
}

/// `dataApi`: long polls and the result format (docs/how-a-run-goes.md).
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DataApiConfig {
    /// `WaitTimeSeconds` of each call that waits for a statement (0-30): one long poll instead
    /// of repeated DescribeStatement calls. 0 polls with backoff instead.
    pub wait_time_seconds: u8,
    /// `JSON` (typed records, GetStatementResult) or `CSV` (GetStatementResultV2).
    pub result_format: crate::ports::ResultFormat,
}

impl Default for DataApiConfig {
    fn default() -> Self {
        Self { wait_time_seconds: 20, result_format: crate::ports::ResultFormat::Json }
    }
}

impl DataApiConfig {
    pub fn fetch(&self) -> crate::ports::Fetch {
        crate::ports::Fetch { wait_seconds: self.wait_time_seconds, format: self.result_format }
    }
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Output {
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Execution {
    pub mode: ExecutionMode,
    /// The queue the shards go to (fan-out); `REGISTRY_QUEUE_URL` fills it.
    pub queue_url: Option<String>,
    /// Deliveries of a shard before SQS moves it to the dead-letter queue (the queue's
    /// maxReceiveCount); `REGISTRY_MAX_RECEIVE_COUNT` fills it. Only used to tell a last attempt.
    pub max_receive_count: u32,
}

impl Default for Execution {
    fn default() -> Self {
        Self { mode: ExecutionMode::Single, queue_url: None, max_receive_count: 3 }
    }
}

impl Execution {
    /// The shard queue of a fanned-out config; none in the single mode. Validation made sure
    /// that fan-out has one.
    pub fn fanout_queue(&self) -> Option<&str> {
        match self.mode {
            ExecutionMode::Single => None,
            ExecutionMode::Fanout => self.queue_url.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    /// Every account and region in this invocation.
    #[default]
    Single,
    /// One message per (account, region) shard, each run by an invocation of its own.
    Fanout,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Outputs {
    #[serde(default)]
    pub backstage: Option<BackstageOutput>,
    #[serde(default)]
    pub openlineage: Option<OpenLineageOutput>,
}

/// OpenLineage events of each dataset's lineage, per warehouse and database.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenLineageOutput {
    /// Under `output.prefix`; a folder of its own, apart from `datasets/`, `index/`, `namespaces/`, `runs/`.
    #[serde(default = "openlineage_prefix")]
    pub prefix: String,
}

fn openlineage_prefix() -> String {
    "openlineage/".into()
}

/// Backstage catalog entities: a `Resource` per warehouse and per dataset.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackstageOutput {
    /// Under `output.prefix`; a folder of its own, apart from `datasets/`, `index/`, `namespaces/`, `runs/`.
    #[serde(default = "backstage_prefix")]
    pub prefix: String,
    /// The owner of every entity, unless the warehouse's `owner_tag` names a valid one.
    pub owner: String,
    /// A warehouse tag whose value, when an entity ref, owns that warehouse's entities.
    #[serde(default)]
    pub owner_tag: Option<String>,
    /// The Backstage namespace of every entity; `default` when absent.
    #[serde(default)]
    #[schemars(extend("pattern" = NAMESPACE_PATTERN))]
    pub namespace: Option<String>,
    #[serde(default)]
    pub system: Option<String>,
}

fn backstage_prefix() -> String {
    "backstage/".into()
}

/// Backstage's entity ref, `[kind:][namespace/]name` (catalog-model: the name rule of
/// `metadata.name`, 1-63 characters; the namespace a lowercase DNS label).
static ENTITY_REF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[A-Za-z][A-Za-z0-9]*:)?(?:[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?/)?([A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
        .unwrap()
});

/// A Backstage namespace: a lowercase DNS label of at most 63 characters (catalog-model).
const NAMESPACE_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
static NAMESPACE: LazyLock<Regex> = LazyLock::new(|| Regex::new(NAMESPACE_PATTERN).unwrap());

pub fn is_entity_ref(s: &str) -> bool {
    ENTITY_REF.captures(s).is_some_and(|c| c[1].len() <= 63)
}

/// One AWS account, or with `organization` the accounts of an organization. `regions` ("option
/// 1") discovers every cluster of those regions; `clusters` ("option 2") reads only the named ones.
/// The two kinds share one struct, not an enum, so that serde's errors keep their JSON path;
/// validate() accepts exactly one of `account_id` and `organization`.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    #[serde(default)]
    #[schemars(extend("pattern" = ACCOUNT_ID_PATTERN))]
    pub account_id: Option<String>,
    #[serde(default)]
    pub organization: Option<OrganizationSource>,
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default)]
    pub regions: Option<Vec<String>>,
    #[serde(default)]
    pub clusters: Option<Vec<NamedCluster>>,
    #[serde(default)]
    pub workgroups: Option<Vec<NamedWorkgroup>>,
}

/// The ACTIVE accounts of an organization, listed at each run through a role in its management
/// or delegated-administrator account, each visited in `regions` with the reader role.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationSource {
    /// The role that may list the organization's accounts.
    pub role_arn: String,
    /// These OUs and every OU below them; empty means the whole organization.
    #[serde(default)]
    pub organizational_units: Vec<String>,
    #[serde(default)]
    pub exclude_accounts: Vec<String>,
    pub regions: Vec<String>,
    /// The reader role in each member account; the top-level `roleName` when absent.
    #[serde(default)]
    pub role_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedCluster {
    pub region: String,
    #[schemars(extend("pattern" = CLUSTER_ID_PATTERN))]
    pub cluster_identifier: String,
    /// Connect as this database user (redshift:GetClusterCredentials) instead of the IAM identity.
    #[serde(default)]
    pub db_user: Option<String>,
    /// Connect with these Secrets Manager credentials instead of the IAM identity.
    #[serde(default)]
    pub secret_arn: Option<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedWorkgroup {
    pub region: String,
    #[schemars(extend("pattern" = WORKGROUP_PATTERN))]
    pub workgroup_name: String,
    #[serde(default)]
    pub secret_arn: Option<String>,
}

/// Values the deployment fixes outside the config file (template parameters become environment
/// variables). They fill what the config leaves out and must agree with what it sets, because
/// the function's IAM policy is scoped to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentDefaults {
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub role_name: Option<String>,
    /// The function's own region (`AWS_REGION`), whose partition every ARN and region must share.
    pub region: Option<String>,
    pub queue_url: Option<String>,
    pub max_receive_count: Option<String>,
    /// Checked away from the stack (`--check-config`): what its environment fills may be absent.
    pub offline: bool,
}

impl From<&Environment> for DeploymentDefaults {
    fn from(env: &Environment) -> Self {
        Self {
            bucket: env.output_bucket.clone(),
            prefix: env.output_prefix.clone(),
            role_name: env.role_name.clone(),
            region: env.region.clone(),
            queue_url: env.queue_url.clone(),
            max_receive_count: env.max_receive_count.clone(),
            offline: false,
        }
    }
}

/// Every problem found in a config, each with its JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config: ")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{}: {}", p.path, p.message)?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { problems: vec![Problem { path: path.into(), message: message.into() }] }
    }
}

/// What the option-2 lists (`clusters`, `workgroups`) share: a region, a name, a secret.
trait Named {
    const LIST: &'static str;
    const NAME_KEY: &'static str;
    const WHAT: &'static str;
    const FORM: &'static str;
    fn pattern() -> &'static Regex;
    fn region(&self) -> &str;
    fn name(&self) -> &str;
    fn secret_arn(&self) -> Option<&str>;
}

impl Named for NamedCluster {
    const LIST: &'static str = "clusters";
    const NAME_KEY: &'static str = "clusterIdentifier";
    const WHAT: &'static str = "cluster";
    const FORM: &'static str =
        "a Redshift cluster identifier (lowercase letters, digits, single hyphens, starting with a letter)";
    fn pattern() -> &'static Regex {
        &CLUSTER_ID
    }
    fn region(&self) -> &str {
        &self.region
    }
    fn name(&self) -> &str {
        &self.cluster_identifier
    }
    fn secret_arn(&self) -> Option<&str> {
        self.secret_arn.as_deref()
    }
}

impl Named for NamedWorkgroup {
    const LIST: &'static str = "workgroups";
    const NAME_KEY: &'static str = "workgroupName";
    const WHAT: &'static str = "workgroup";
    const FORM: &'static str = "a workgroup name (3-64 lowercase letters, digits, hyphens)";
    fn pattern() -> &'static Regex {
        &WORKGROUP
    }
    fn region(&self) -> &str {
        &self.region
    }
    fn name(&self) -> &str {
        &self.workgroup_name
    }
    fn secret_arn(&self) -> Option<&str> {
        self.secret_arn.as_deref()
    }
}

fn check_named<T: Named>(bad: &mut impl FnMut(String, String), at: &str, items: &[T], account: &str, partition: &str) {
    let list = T::LIST;
    if items.is_empty() {
        bad(format!("{at}.{list}"), format!("empty: name at least one {} or remove the key", T::WHAT));
    }
    let mut seen = BTreeSet::new();
    for (j, item) in items.iter().enumerate() {
        let (region, name) = (item.region(), item.name());
        if let Some(problem) = region_problem(region, partition) {
            bad(format!("{at}.{list}[{j}].region"), problem);
        }
        if !T::pattern().is_match(name) {
            bad(format!("{at}.{list}[{j}].{}", T::NAME_KEY), format!("{name:?} is not {}", T::FORM));
        } else if !seen.insert((region, name)) {
            bad(format!("{at}.{list}[{j}]"), format!("{} {name} in {region} is listed twice", T::WHAT));
        }
        if let Some(arn) = item.secret_arn() {
            let path = format!("{at}.{list}[{j}].secretArn");
            match SECRET_ARN.captures(arn) {
                None => bad(path, format!("{arn:?} is not a Secrets Manager secret ARN")),
                Some(c) if &c[1] != partition => bad(path, other_partition(&c[1], partition)),
                Some(c) if &c[2] != account => {
                    bad(path, format!("secret is in account {} but the source is account {account}", &c[2]))
                }
                Some(_) => {}
            }
        }
    }
}

fn check_backstage(bad: &mut impl FnMut(String, String), b: &BackstageOutput, output_prefix: &str) {
    let at = "$.outputs.backstage";
    // Backstage's S3 URL reader reads keys back from URLs: these never come back whole.
    let unreadable = |p: &str| p.chars().any(|c| !c.is_ascii() || " #?%*".contains(c));
    for (path, prefix) in [("$.output.prefix", output_prefix), ("$.outputs.backstage.prefix", &b.prefix)] {
        if unreadable(prefix) {
            bad(
                path.into(),
                format!("{prefix:?}: with Backstage output, use ASCII without space, #, ?, % or * (Backstage cannot read such keys back)"),
            );
        }
    }
    check_folder(bad, &format!("{at}.prefix"), &b.prefix, "backstage/");
    for (key, value) in [("owner", Some(&b.owner)), ("system", b.system.as_ref())] {
        if let Some(v) = value.filter(|v| !is_entity_ref(v)) {
            bad(
                format!("{at}.{key}"),
                format!("{v:?} is not a Backstage entity ref like \"group:default/data-platform\""),
            );
        }
    }
    if let Some(ns) = b.namespace.as_ref().filter(|ns| !NAMESPACE.is_match(ns)) {
        bad(
            format!("{at}.namespace"),
            format!("{ns:?} is not a Backstage namespace (a lowercase DNS label like \"data\")"),
        );
    }
    if b.owner_tag.as_ref().is_some_and(|t| t.is_empty()) {
        bad(format!("{at}.ownerTag"), "empty: name a cluster tag or remove the key".into());
    }
}

/// An output's folder under `output.prefix`: not empty, and apart from the manifests' folders.
fn check_folder(bad: &mut impl FnMut(String, String), path: &str, prefix: &str, like: &str) {
    if prefix.is_empty() {
        bad(path.into(), format!("empty: name a folder under output.prefix, like {like:?}"));
    } else if let Some(r) = Layout::FOLDERS.iter().find(|r| prefix.starts_with(**r) || r.starts_with(prefix)) {
        bad(path.into(), format!("{prefix:?} overlaps {r}, which the manifests use; choose another folder"));
    }
}

/// Why `region` cannot be visited from a function in `partition`, if it cannot.
fn region_problem(region: &str, partition: &str) -> Option<String> {
    if !REGION.is_match(region) {
        return Some(format!("{region:?} is not an AWS region name like \"us-east-1\""));
    }
    let theirs = partition_of(region);
    (theirs != partition).then(|| format!("region {region} is in {}", other_partition(theirs, partition)))
}

/// Each region of a list valid in `partition`, and listed once.
fn check_regions(bad: &mut impl FnMut(String, String), at: &str, regions: &[String], partition: &str) {
    let mut seen = BTreeSet::new();
    for (j, r) in regions.iter().enumerate() {
        if let Some(problem) = region_problem(r, partition) {
            bad(format!("{at}.regions[{j}]"), problem);
        } else if !seen.insert(r.as_str()) {
            bad(format!("{at}.regions[{j}]"), format!("region {r} is listed twice"));
        }
    }
}

/// The account of a role ARN in `partition`, or why it is not one.
fn role_arn_account<'a>(arn: &'a str, partition: &str) -> Result<&'a str, String> {
    match ROLE_ARN.captures(arn) {
        None => Err(format!("{arn:?} is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)")),
        Some(c) if &c[1] != partition => Err(other_partition(&c[1], partition)),
        Some(c) => Ok(c.get(2).expect("the account group always matches").as_str()),
    }
}

fn role_name_problem(role: &str) -> Option<String> {
    (!ROLE_NAME.is_match(role))
        .then(|| format!("{role:?} is not a valid IAM role name (1-64 of letters, digits, +=,.@_-)"))
}

fn account_problem(account: &str) -> Option<String> {
    (!ACCOUNT_ID.is_match(account)).then(|| format!("{account:?} is not a 12-digit AWS account id"))
}

fn other_partition(theirs: &str, ours: &str) -> String {
    format!(
        "partition {theirs}, but the function runs in partition {ours}: roles cannot be assumed across \
         partitions; deploy a second function in {theirs} for it"
    )
}

impl Config {
    /// Where everything is written under the output prefix.
    pub fn layout(&self) -> Layout {
        Layout { prefix: self.output.prefix.clone() }
    }

    /// Parses and validates a config document, filling from `defaults` what it leaves out.
    /// Reads a config: its JSON syntax (a problem with its line and column), its structure
    /// against the committed JSON Schema (every problem, each with its path), then the rules
    /// (every problem again). The same checks run for `--check-config`, offline.
    pub fn parse(text: &str, defaults: &DeploymentDefaults) -> Result<Self, ConfigError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::one("$", format!("not valid JSON: {e}; fix the file there")))?;
        let de = &mut serde_json::Deserializer::from_str(text);
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            // serde stops at the first problem; the schema finds them all. It is compiled only
            // here, on the way out: its validator costs about 9 MB the function need not hold.
            let structural: Vec<Problem> =
                schema_validator().iter_errors(&value).flat_map(structural_problems).collect();
            if !structural.is_empty() {
                return ConfigError { problems: structural };
            }
            let path = e.path().to_string();
            let path = if path == "." { "$".to_string() } else { format!("$.{path}") };
            ConfigError::one(path, strip_serde_position(&e.inner().to_string()))
        })?;
        config.apply_defaults(defaults)?;
        config.validate(defaults.offline)?;
        Ok(config)
    }

    fn apply_defaults(&mut self, defaults: &DeploymentDefaults) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut merge = |field: &mut String, default: &Option<String>, path: &str, var: &str| match default {
            Some(d) if field.is_empty() => *field = d.clone(),
            Some(d) if field != d => problems.push(Problem {
                path: path.into(),
                message: format!(
                    "{field:?} differs from {var}={d:?} set by the deployment (its IAM policy allows only that); \
                         remove the key from the config or redeploy with the new value"
                ),
            }),
            _ => {}
        };
        self.partition = partition_of(defaults.region.as_deref().unwrap_or("us-east-1")).to_string();
        self.output.prefix = normalise_prefix(&self.output.prefix);
        if let Some(b) = &mut self.outputs.backstage {
            b.prefix = normalise_prefix(&b.prefix);
        }
        if let Some(o) = &mut self.outputs.openlineage {
            o.prefix = normalise_prefix(&o.prefix);
        }
        let default_prefix = defaults.prefix.as_deref().map(normalise_prefix);
        merge(&mut self.output.bucket, &defaults.bucket, "$.output.bucket", "REGISTRY_OUTPUT_BUCKET");
        merge(&mut self.output.prefix, &default_prefix, "$.output.prefix", "REGISTRY_OUTPUT_PREFIX");
        let mut role = self.role_name.take().unwrap_or_default();
        merge(&mut role, &defaults.role_name, "$.roleName", "REGISTRY_ROLE_NAME");
        self.role_name = Some(role).filter(|r| !r.is_empty());
        let mut queue = self.execution.queue_url.take().unwrap_or_default();
        merge(&mut queue, &defaults.queue_url, "$.execution.queueUrl", "REGISTRY_QUEUE_URL");
        self.execution.queue_url = Some(queue).filter(|q| !q.is_empty());
        if let Some(count) = defaults.max_receive_count.as_deref().and_then(|c| c.parse().ok()) {
            self.execution.max_receive_count = count;
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    /// `offline`: checked away from the stack (`--check-config`), whose environment fills the
    /// bucket, the reader role's name and the queue URL the config leaves out: their absence is
    /// no problem there.
    fn validate(&self, offline: bool) -> Result<(), ConfigError> {
        // Offline, the stack's REGISTRY_ROLE_NAME may be the reader role every source relies on.
        let role_known = offline || self.role_name.is_some();
        let mut p = Vec::new();
        let mut bad = |path: String, message: String| p.push(Problem { path, message });

        if self.output.bucket.is_empty() {
            if !offline {
                bad("$.output.bucket".into(), "missing: name the S3 bucket the manifests go to".into());
            }
        } else if !BUCKET.is_match(&self.output.bucket) || self.output.bucket.contains("..") {
            bad(
                "$.output.bucket".into(),
                format!(
                    "{:?} is not a valid S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)",
                    self.output.bucket
                ),
            );
        }
        if let Some(problem) = self.role_name.as_deref().and_then(role_name_problem) {
            bad("$.roleName".into(), problem);
        }
        if let Some(ext) = &self.external_id {
            if !(2..=1224).contains(&ext.len()) || !EXTERNAL_ID.is_match(ext) {
                bad("$.externalId".into(), "must be 2-1224 characters of letters, digits and +=,.@:/_-".into());
            }
        }
        if self.sources.is_empty() {
            bad(
                "$.sources".into(),
                "empty: add at least one {\"accountId\": ..., \"regions\": [...]} or {\"organization\": {...}}".into(),
            );
        }
        let mut accounts = BTreeSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let at = format!("$.sources[{i}]");
            match (&s.account_id, &s.organization) {
                (Some(account), None) => {
                    if s.role_arn.is_none() && !role_known {
                        bad(
                            format!("{at}.roleArn"),
                            "no role to assume: set roleName at the top level or roleArn in this source".into(),
                        );
                    }
                    self.check_account_source(&mut bad, &at, s, account, &mut accounts)
                }
                (None, Some(organization)) => {
                    if organization.role_name.is_none() && !role_known {
                        bad(
                            format!("{at}.organization.roleName"),
                            "no reader role for the member accounts: set roleName here or at the top level".into(),
                        );
                    }
                    self.check_organization_source(&mut bad, &at, s, organization)
                }
                (Some(_), Some(_)) => bad(
                    at,
                    "has both accountId and organization: a source is one account or an organization's; split it"
                        .into(),
                ),
                (None, None) => bad(
                    at,
                    "has neither accountId (one account) nor organization (the accounts of an organization)".into(),
                ),
            }
        }
        if let Some(b) = &self.outputs.backstage {
            check_backstage(&mut bad, b, &self.output.prefix);
        }
        if let Some(o) = &self.outputs.openlineage {
            check_folder(&mut bad, "$.outputs.openlineage.prefix", &o.prefix, "openlineage/");
            let backstage = self.outputs.backstage.as_ref().map(|b| b.prefix.as_str());
            if backstage.is_some_and(|b| b.starts_with(&o.prefix) || o.prefix.starts_with(b)) {
                bad(
                    "$.outputs.openlineage.prefix".into(),
                    format!("{:?} overlaps outputs.backstage.prefix; choose another folder", o.prefix),
                );
            }
        }
        let queue = self.execution.queue_url.as_deref();
        let unset_offline = offline && queue.is_none();
        if self.execution.mode == ExecutionMode::Fanout
            && !unset_offline
            && !queue.is_some_and(|q| q.starts_with("http"))
        {
            bad(
                "$.execution.queueUrl".into(),
                "fan-out needs the SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>); \
                 the template sets REGISTRY_QUEUE_URL when its FanOut parameter is true"
                    .into(),
            );
        }
        if !(1..=1000).contains(&self.execution.max_receive_count) {
            bad("$.execution.maxReceiveCount".into(), "must be 1-1000".into());
        }
        let l = &self.limits;
        for (name, value, max) in [
            ("accountsInParallel", l.accounts_in_parallel as u64, 50),
            ("warehousesPerRegion", l.warehouses_per_region as u64, 50),
            ("databasesPerWarehouse", l.databases_per_warehouse as u64, 50),
            ("s3WritesInParallel", l.s3_writes_in_parallel as u64, 100),
            ("statementTimeoutSeconds", l.statement_timeout_seconds, 3600),
            ("deadlineReserveSeconds", l.deadline_reserve_seconds, 600),
        ] {
            if !(1..=max).contains(&value) {
                bad(format!("$.limits.{name}"), format!("must be 1-{max}"));
            }
        }
        if self.data_api.wait_time_seconds > 30 {
            bad(
                "$.dataApi.waitTimeSeconds".into(),
                "must be 0-30 (the Data API waits at most 30 s; 0 turns long polls off)".into(),
            );
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems: p })
        }
    }

    /// An account source: its account once, a role to assume there, and what to read.
    fn check_account_source<'a>(
        &self,
        bad: &mut impl FnMut(String, String),
        at: &str,
        s: &Source,
        account: &'a str,
        accounts: &mut BTreeSet<&'a str>,
    ) {
        if let Some(problem) = account_problem(account) {
            bad(format!("{at}.accountId"), problem);
        } else if !accounts.insert(account) {
            bad(format!("{at}.accountId"), format!("account {account} is listed twice; merge its sources"));
        }
        if let Some(arn) = &s.role_arn {
            match role_arn_account(arn, &self.partition) {
                Err(problem) => bad(format!("{at}.roleArn"), problem),
                Ok(theirs) if theirs != account => bad(
                    format!("{at}.roleArn"),
                    format!("role is in account {theirs} but the source is account {account}"),
                ),
                Ok(_) => {}
            }
        }
        self.check_selection(bad, at, s, account);
    }

    /// Option 1 (`regions`) or option 2 (`clusters`, `workgroups`) of an account source.
    fn check_selection(&self, bad: &mut impl FnMut(String, String), at: &str, s: &Source, account: &str) {
        let named = s.clusters.is_some() || s.workgroups.is_some();
        match (&s.regions, named) {
            (None, false) => bad(
                at.into(),
                "has neither regions (discover every warehouse) nor clusters/workgroups (only the named ones)".into(),
            ),
            (Some(_), true) => bad(
                at.into(),
                "has both regions and clusters/workgroups: use regions to discover every warehouse, or name them"
                    .into(),
            ),
            _ => {}
        }
        if let Some(regions) = &s.regions {
            if regions.is_empty() {
                bad(format!("{at}.regions"), "empty: list at least one region or remove the key".into());
            }
            check_regions(bad, at, regions, &self.partition);
        }
        if let Some(clusters) = &s.clusters {
            check_named(bad, at, clusters, account, &self.partition);
            for (j, c) in clusters.iter().enumerate() {
                if c.db_user.is_some() && c.secret_arn.is_some() {
                    bad(
                        format!("{at}.clusters[{j}]"),
                        "has both dbUser and secretArn: choose one way to connect".into(),
                    );
                }
                if c.db_user.as_ref().is_some_and(|u| u.is_empty() || u.len() > 127) {
                    bad(format!("{at}.clusters[{j}].dbUser"), "must be 1-127 characters".into());
                }
            }
        }
        if let Some(workgroups) = &s.workgroups {
            check_named(bad, at, workgroups, account, &self.partition);
        }
    }

    /// An organization source: nothing beside `organization`, whose role may be in any account of
    /// the partition (the management or a delegated-administrator one).
    fn check_organization_source(
        &self,
        bad: &mut impl FnMut(String, String),
        at: &str,
        s: &Source,
        org: &OrganizationSource,
    ) {
        let beside = [
            ("roleArn", s.role_arn.is_some()),
            ("regions", s.regions.is_some()),
            ("clusters", s.clusters.is_some()),
            ("workgroups", s.workgroups.is_some()),
        ];
        for (key, _) in beside.iter().filter(|(_, set)| *set) {
            bad(
                format!("{at}.{key}"),
                "not beside organization: its roleArn and regions go inside it; to name clusters or workgroups, \
                 add a source with accountId"
                    .into(),
            );
        }
        let at = format!("{at}.organization");
        if let Err(problem) = role_arn_account(&org.role_arn, &self.partition) {
            bad(format!("{at}.roleArn"), problem);
        }
        for (j, ou) in org.organizational_units.iter().enumerate().filter(|(_, ou)| !OU_ID.is_match(ou)) {
            bad(
                format!("{at}.organizationalUnits[{j}]"),
                format!("{ou:?} is not an organizational unit id like \"ou-ab12-cd34ef56\""),
            );
        }
        for (j, problem) in org.exclude_accounts.iter().enumerate().filter_map(|(j, a)| Some((j, account_problem(a)?)))
        {
            bad(format!("{at}.excludeAccounts[{j}]"), problem);
        }
        if let Some(problem) = org.role_name.as_deref().and_then(role_name_problem) {
            bad(format!("{at}.roleName"), problem);
        }
        if org.regions.is_empty() {
            bad(format!("{at}.regions"), "empty: list the regions to visit in each account".into());
        }
        check_regions(bad, &at, &org.regions, &self.partition);
    }

    /// The role assumed in an account source's account.
    pub fn role_arn(&self, source: &Source) -> String {
        match &source.role_arn {
            Some(arn) => arn.clone(),
            // validate() guarantees an accountId and the top-level roleName here.
            None => self.reader_role_arn(source.account_id.as_deref().unwrap_or_default(), None),
        }
    }

    /// The reader role in a member account of an organization source.
    pub fn member_role_arn(&self, organization: &OrganizationSource, account: &str) -> String {
        self.reader_role_arn(account, organization.role_name.as_deref())
    }

    /// `role_name` in `account`, or the top-level roleName when `None` (validate() guarantees one).
    fn reader_role_arn(&self, account: &str, role_name: Option<&str>) -> String {
        let name = role_name.or(self.role_name.as_deref()).unwrap_or_default();
        format!("arn:{}:iam::{account}:role/{name}", self.partition)
    }

    /// The organization sources, each with its index in `sources`.
    pub fn organizations(&self) -> impl Iterator<Item = (usize, &OrganizationSource)> {
        self.sources.iter().enumerate().filter_map(|(i, s)| Some((i, s.organization.as_ref()?)))
    }
}

/// A non-empty key prefix always ends with `/`, so `redshift` and `redshift/` mean the same folder.
fn normalise_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_start_matches('/');
    if trimmed.is_empty() || trimmed.ends_with('/') {
        trimmed.to_string()
    } else {
        format!("{trimmed}/")
    }
}

/// The config's JSON Schema as committed (`schema/config.v1.json`, generated from these types
/// by [`json_schema`]; a test fails when the two differ).
pub const SCHEMA: &str = include_str!("../schema/config.v1.json");

fn schema_validator() -> jsonschema::Validator {
    let schema = serde_json::from_str(SCHEMA).expect("the committed schema is JSON");
    jsonschema::draft7::new(&schema).expect("the committed schema compiles")
}

/// The JSON Schema of the config, from the types above: draft-07, which editors know best and
/// whose validator is a quarter the size of 2020-12's.
pub fn json_schema() -> String {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = serde_json::to_value(generator.into_root_schema_for::<Config>()).expect("a schema serialises");
    without_null(&mut schema);
    schema["title"] = "redshift-registry config, v1".into();
    serde_json::to_string_pretty(&schema).expect("a schema serialises") + "\n"
}

/// An absent key, not null, leaves an option unset: the schema says so (schemars allows null
/// for every `Option`).
fn without_null(schema: &mut serde_json::Value) {
    use serde_json::Value;
    let Value::Object(map) = schema else {
        if let Value::Array(items) = schema {
            items.iter_mut().for_each(without_null);
        }
        return;
    };
    if map.get("default") == Some(&Value::Null) {
        map.remove("default");
    }
    if let Some(Value::Array(types)) = map.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            map.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(any)) = map.get_mut("anyOf") {
        any.retain(|s| s.get("type") != Some(&Value::from("null")));
        if let [Value::Object(only)] = any.as_slice() {
            let only = only.clone();
            map.remove("anyOf");
            map.extend(only);
        }
    }
    map.values_mut().for_each(without_null);
}

/// What a schema error says, as problems. Patterns are left to the rules, whose messages say
/// what the value should look like.
fn structural_problems(error: jsonschema::ValidationError) -> Vec<Problem> {
    use jsonschema::error::ValidationErrorKind as Kind;
    let at = json_path(&error.instance_path.to_string());
    match &error.kind {
        Kind::Pattern { .. } => Vec::new(),
        Kind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|key| Problem {
                path: format!("{at}.{key}"),
                message: format!("unknown key `{key}`: check its spelling against schema/config.v1.json"),
            })
            .collect(),
        Kind::Required { property } => {
            vec![Problem { path: at, message: format!("missing key {property}: it is required here") }]
        }
        _ => vec![Problem { path: at, message: error.to_string() }],
    }
}

/// A JSON pointer (`/sources/0/accountId`) as the JSON path problems are named by
/// (`$.sources[0].accountId`).
fn json_path(pointer: &str) -> String {
    let mut path = String::from("$");
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        match segment.parse::<usize>() {
            Ok(index) => path.push_str(&format!("[{index}]")),
            Err(_) => path.push_str(&format!(".{segment}")),
        }
    }
    path
}

/// serde_json appends "at line 1 column 42"; the JSON path already says where.
fn strip_serde_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
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

    pub fn from_uri(uri: &str) -> Result<Self, ConfigError> {
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
    fn prefix_is_normalised_to_a_folder() {
        assert_eq!(normalise_prefix(""), "");
        assert_eq!(normalise_prefix("redshift"), "redshift/");
        assert_eq!(normalise_prefix("/a/b/"), "a/b/");
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
