//! The config as written: serde types whose errors keep their JSON path, the JSON Schema they
//! generate, and the problems a document can have. [`super::validate`] turns a document into the
//! validated [`super::Config`].

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::names::{ACCOUNT_ID_PATTERN, CLUSTER_ID_PATTERN, WORKGROUP_PATTERN};
use crate::ports::{Fetch, ResultFormat};

/// The configuration. Keys are camelCase, as the Spotify Portal integration spells them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "Config")]
pub(crate) struct Document {
    /// Where an editor finds this file's JSON Schema (`schema/config.v1.json`); not read otherwise.
    #[serde(rename = "$schema", default)]
    pub _schema: Option<String>,
    #[serde(default)]
    pub output: OutputLocation,
    /// Formats beside the manifests, each off unless present.
    #[serde(default)]
    pub outputs: Outputs,
    /// How the run is carried out: in this invocation, or sharded over a queue.
    #[serde(default)]
    pub execution: ExecutionDocument,
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
    pub sources: Vec<SourceDocument>,
}

impl Document {
    /// Reads a document: its JSON syntax (a problem with its line and column), then its structure
    /// against the committed JSON Schema (every problem, each with its path).
    pub(crate) fn read(text: &str) -> Result<Self, ConfigError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::one("$", format!("not valid JSON: {e}; fix the file there")))?;
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
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
        })
    }
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
    pub result_format: ResultFormat,
}

impl Default for DataApiConfig {
    fn default() -> Self {
        Self { wait_time_seconds: 20, result_format: ResultFormat::Json }
    }
}

impl DataApiConfig {
    pub fn fetch(&self) -> Fetch {
        Fetch { wait_seconds: self.wait_time_seconds, format: self.result_format }
    }
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// The `output` key: where every file goes. Named apart from the `Output` port.
#[schemars(rename = "Output")]
pub struct OutputLocation {
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[schemars(rename = "Execution")]
pub(crate) struct ExecutionDocument {
    pub mode: ExecutionMode,
    /// The queue the shards go to (fan-out); `REGISTRY_QUEUE_URL` fills it.
    pub queue_url: Option<String>,
    /// Deliveries of a shard before SQS moves it to the dead-letter queue (the queue's
    /// maxReceiveCount); `REGISTRY_MAX_RECEIVE_COUNT` fills it. Only used to tell a last attempt.
    pub max_receive_count: u32,
}

impl Default for ExecutionDocument {
    fn default() -> Self {
        Self { mode: ExecutionMode::Single, queue_url: None, max_receive_count: 3 }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ExecutionMode {
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
pub(super) static NAMESPACE: LazyLock<Regex> = LazyLock::new(|| Regex::new(NAMESPACE_PATTERN).unwrap());

pub fn is_entity_ref(s: &str) -> bool {
    ENTITY_REF.captures(s).is_some_and(|c| c[1].len() <= 63)
}

/// One AWS account, or with `organization` the accounts of an organization. `regions` ("option
/// 1") discovers every cluster of those regions; `clusters` ("option 2") reads only the named ones.
/// A source is exactly one of the two.
// One struct, not an enum, so that serde's errors keep their JSON path; validation turns it
// into a [`super::Source`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "Source")]
pub(crate) struct SourceDocument {
    #[serde(default)]
    #[schemars(extend("pattern" = ACCOUNT_ID_PATTERN))]
    pub account_id: Option<String>,
    #[serde(default)]
    pub organization: Option<OrganizationDocument>,
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
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "OrganizationSource")]
pub(crate) struct OrganizationDocument {
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
    pub(crate) fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { problems: vec![Problem { path: path.into(), message: message.into() }] }
    }
}

/// The config's JSON Schema as committed (`schema/config.v1.json`, generated from these types
/// by [`json_schema`]; a test fails when the two differ).
pub const SCHEMA: &str = include_str!("../../schema/config.v1.json");

fn schema_validator() -> jsonschema::Validator {
    let schema = serde_json::from_str(SCHEMA).expect("the committed schema is JSON");
    jsonschema::draft7::new(&schema).expect("the committed schema compiles")
}

/// The JSON Schema of the config, from the types above: draft-07, which editors know best and
/// whose validator is a quarter the size of 2020-12's.
pub fn json_schema() -> String {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = serde_json::to_value(generator.into_root_schema_for::<Document>()).expect("a schema serialises");
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
