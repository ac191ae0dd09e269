//! Stage 1b: a config document checked against the rules and turned into the validated
//! [`Config`]: every problem at once, each named by its JSON path, so that a user finds it in a
//! config of dozens of accounts.

use std::collections::BTreeSet;

use regex::Regex;

use super::document::is_entity_ref;
use super::document::{
    BackstageOutput, ConfigError, Document, ExecutionDocument, ExecutionMode, NamedCluster, NamedWorkgroup,
    OrganizationDocument, Problem, SourceDocument, NAMESPACE,
};
use super::types::{reader_role_arn, AccountSource, Config, Execution, OrganizationSource, Reads, Source};
use crate::environment::Environment;
use crate::layout::Layout;
use crate::names::{
    partition_of, ACCOUNT_ID, BUCKET, CLUSTER_ID, EXTERNAL_ID, OU_ID, REGION, ROLE_ARN, ROLE_NAME, SECRET_ARN,
    WORKGROUP,
};

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

/// Fills from `defaults` what the document leaves out, then checks every rule and builds the
/// config. `defaults.offline`: checked away from the stack (`--check-config`), whose environment
/// fills the bucket, the reader role's name and the queue URL the config leaves out; their
/// absence is no problem there, and the config built is only reported, never run.
pub(super) fn validate(mut doc: Document, defaults: &DeploymentDefaults) -> Result<Config, ConfigError> {
    let partition = partition_of(defaults.region.as_deref().unwrap_or("us-east-1")).to_string();
    apply_defaults(&mut doc, defaults)?;
    let offline = defaults.offline;
    let mut p = Vec::new();
    let mut bad = |path: String, message: String| p.push(Problem { path, message });
    // Problems are listed in the order a reader meets the keys: where, who, what, how.
    check_destination(&mut bad, &doc, offline);
    let sources = sources(&mut bad, &doc, &partition, offline);
    check_outputs(&mut bad, &doc);
    let execution = execution(&mut bad, &doc.execution, offline);
    check_limits(&mut bad, &doc);
    if !p.is_empty() {
        return Err(ConfigError { problems: p });
    }
    Ok(Config {
        output: doc.output,
        outputs: doc.outputs,
        execution,
        max_receive_count: doc.execution.max_receive_count,
        external_id: doc.external_id,
        pull_redshift_comments: doc.pull_redshift_comments,
        include_system_schemas: doc.include_system_schemas,
        filters: doc.filters,
        limits: doc.limits,
        data_api: doc.data_api,
        sources,
        partition,
    })
}

fn apply_defaults(doc: &mut Document, defaults: &DeploymentDefaults) -> Result<(), ConfigError> {
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
    doc.output.prefix = normalise_prefix(&doc.output.prefix);
    if let Some(b) = &mut doc.outputs.backstage {
        b.prefix = normalise_prefix(&b.prefix);
    }
    if let Some(o) = &mut doc.outputs.openlineage {
        o.prefix = normalise_prefix(&o.prefix);
    }
    let default_prefix = defaults.prefix.as_deref().map(normalise_prefix);
    merge(&mut doc.output.bucket, &defaults.bucket, "$.output.bucket", "REGISTRY_OUTPUT_BUCKET");
    merge(&mut doc.output.prefix, &default_prefix, "$.output.prefix", "REGISTRY_OUTPUT_PREFIX");
    let mut role = doc.role_name.take().unwrap_or_default();
    merge(&mut role, &defaults.role_name, "$.roleName", "REGISTRY_ROLE_NAME");
    doc.role_name = Some(role).filter(|r| !r.is_empty());
    let mut queue = doc.execution.queue_url.take().unwrap_or_default();
    merge(&mut queue, &defaults.queue_url, "$.execution.queueUrl", "REGISTRY_QUEUE_URL");
    doc.execution.queue_url = Some(queue).filter(|q| !q.is_empty());
    if let Some(count) = defaults.max_receive_count.as_deref().and_then(|c| c.parse().ok()) {
        doc.execution.max_receive_count = count;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError { problems })
    }
}

/// Where the files go and who reads: the bucket, the reader role's name, the external id.
fn check_destination(bad: &mut impl FnMut(String, String), doc: &Document, offline: bool) {
    if doc.output.bucket.is_empty() {
        if !offline {
            bad("$.output.bucket".into(), "missing: name the S3 bucket the manifests go to".into());
        }
    } else if !BUCKET.is_match(&doc.output.bucket) || doc.output.bucket.contains("..") {
        bad(
            "$.output.bucket".into(),
            format!(
                "{:?} is not a valid S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)",
                doc.output.bucket
            ),
        );
    }
    if let Some(problem) = doc.role_name.as_deref().and_then(role_name_problem) {
        bad("$.roleName".into(), problem);
    }
    if let Some(ext) = &doc.external_id {
        if !(2..=1224).contains(&ext.len()) || !EXTERNAL_ID.is_match(ext) {
            bad("$.externalId".into(), "must be 2-1224 characters of letters, digits and +=,.@:/_-".into());
        }
    }
}

/// The formats beside the manifests, each in a folder of its own.
fn check_outputs(bad: &mut impl FnMut(String, String), doc: &Document) {
    if let Some(b) = &doc.outputs.backstage {
        check_backstage(bad, b, &doc.output.prefix);
    }
    if let Some(o) = &doc.outputs.openlineage {
        check_folder(bad, "$.outputs.openlineage.prefix", &o.prefix, "openlineage/");
        let backstage = doc.outputs.backstage.as_ref().map(|b| b.prefix.as_str());
        if backstage.is_some_and(|b| b.starts_with(&o.prefix) || o.prefix.starts_with(b)) {
            bad(
                "$.outputs.openlineage.prefix".into(),
                format!("{:?} overlaps outputs.backstage.prefix; choose another folder", o.prefix),
            );
        }
    }
}

/// The concurrency bounds, timeouts and Data API waits.
fn check_limits(bad: &mut impl FnMut(String, String), doc: &Document) {
    let l = &doc.limits;
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
    if doc.data_api.wait_time_seconds > 30 {
        bad(
            "$.dataApi.waitTimeSeconds".into(),
            "must be 0-30 (the Data API waits at most 30 s; 0 turns long polls off)".into(),
        );
    }
}

/// The execution mode, fan-out with its queue (offline, the stack may fill it).
fn execution(bad: &mut impl FnMut(String, String), doc: &ExecutionDocument, offline: bool) -> Execution {
    let execution = match (doc.mode, doc.queue_url.as_deref()) {
        (ExecutionMode::Single, _) => Execution::Single,
        (ExecutionMode::Fanout, Some(queue)) if queue.starts_with("http") => {
            Execution::Fanout { queue_url: queue.to_string() }
        }
        (ExecutionMode::Fanout, None) if offline => Execution::Fanout { queue_url: String::new() },
        (ExecutionMode::Fanout, _) => {
            bad(
                "$.execution.queueUrl".into(),
                "fan-out needs the SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>); \
                 the template sets REGISTRY_QUEUE_URL when its FanOut parameter is true"
                    .into(),
            );
            Execution::Single
        }
    };
    if !(1..=1000).contains(&doc.max_receive_count) {
        bad("$.execution.maxReceiveCount".into(), "must be 1-1000".into());
    }
    execution
}

/// Each source checked and built: an account source or an organization source, each account once.
fn sources(bad: &mut impl FnMut(String, String), doc: &Document, partition: &str, offline: bool) -> Vec<Source> {
    if doc.sources.is_empty() {
        bad(
            "$.sources".into(),
            "empty: add at least one {\"accountId\": ..., \"regions\": [...]} or {\"organization\": {...}}".into(),
        );
    }
    // Offline, the stack's REGISTRY_ROLE_NAME may be the reader role every source relies on.
    let role_name = doc.role_name.as_deref().or(offline.then_some(""));
    let mut accounts = BTreeSet::new();
    let mut built = Vec::new();
    for (i, s) in doc.sources.iter().enumerate() {
        let at = format!("$.sources[{i}]");
        let rules = Rules { at: &at, partition, role_name };
        let source = match (&s.account_id, &s.organization) {
            (Some(account), None) => rules.account_source(bad, s, account, &mut accounts).map(Source::Account),
            (None, Some(organization)) => rules.organization_source(bad, s, organization).map(Source::Organization),
            (Some(_), Some(_)) => {
                bad(
                    at,
                    "has both accountId and organization: a source is one account or an organization's; split it"
                        .into(),
                );
                None
            }
            (None, None) => {
                bad(
                    at,
                    "has neither accountId (one account) nor organization (the accounts of an organization)".into(),
                );
                None
            }
        };
        built.extend(source);
    }
    built
}

/// What a source is checked against: where it is, the partition, the top-level reader role.
struct Rules<'a> {
    at: &'a str,
    partition: &'a str,
    role_name: Option<&'a str>,
}

impl Rules<'_> {
    /// An account source: its account once, a role to assume there, and what to read.
    fn account_source<'a>(
        &self,
        bad: &mut impl FnMut(String, String),
        s: &SourceDocument,
        account: &'a str,
        accounts: &mut BTreeSet<&'a str>,
    ) -> Option<AccountSource> {
        let at = self.at;
        let role_arn = match (&s.role_arn, self.role_name) {
            (Some(arn), _) => arn.clone(),
            (None, Some(name)) => reader_role_arn(self.partition, account, name),
            (None, None) => {
                bad(
                    format!("{at}.roleArn"),
                    "no role to assume: set roleName at the top level or roleArn in this source".into(),
                );
                String::new()
            }
        };
        if let Some(problem) = account_problem(account) {
            bad(format!("{at}.accountId"), problem);
        } else if !accounts.insert(account) {
            bad(format!("{at}.accountId"), format!("account {account} is listed twice; merge its sources"));
        }
        if let Some(arn) = &s.role_arn {
            match role_arn_account(arn, self.partition) {
                Err(problem) => bad(format!("{at}.roleArn"), problem),
                Ok(theirs) if theirs != account => bad(
                    format!("{at}.roleArn"),
                    format!("role is in account {theirs} but the source is account {account}"),
                ),
                Ok(_) => {}
            }
        }
        let reads = self.reads(bad, s, account)?;
        Some(AccountSource { account_id: account.to_string(), role_arn, reads })
    }

    /// Option 1 (`regions`) or option 2 (`clusters`, `workgroups`) of an account source.
    fn reads(&self, bad: &mut impl FnMut(String, String), s: &SourceDocument, account: &str) -> Option<Reads> {
        let (at, partition) = (self.at, self.partition);
        let reads = match (&s.regions, s.clusters.is_some() || s.workgroups.is_some()) {
            (Some(regions), false) => Some(Reads::Regions(regions.clone())),
            (None, true) => Some(Reads::Named {
                clusters: s.clusters.clone().unwrap_or_default(),
                workgroups: s.workgroups.clone().unwrap_or_default(),
            }),
            (None, false) => {
                bad(
                    at.into(),
                    "has neither regions (discover every warehouse) nor clusters/workgroups (only the named ones)"
                        .into(),
                );
                None
            }
            (Some(_), true) => {
                bad(
                    at.into(),
                    "has both regions and clusters/workgroups: use regions to discover every warehouse, or name them"
                        .into(),
                );
                None
            }
        };
        if let Some(regions) = &s.regions {
            if regions.is_empty() {
                bad(format!("{at}.regions"), "empty: list at least one region or remove the key".into());
            }
            check_regions(bad, at, regions, partition);
        }
        if let Some(clusters) = &s.clusters {
            check_named(bad, at, clusters, account, partition);
            check_logins(bad, at, clusters);
        }
        if let Some(workgroups) = &s.workgroups {
            check_named(bad, at, workgroups, account, partition);
        }
        reads
    }

    /// An organization source: nothing beside `organization`, whose role may be in any account of
    /// the partition (the management or a delegated-administrator one).
    fn organization_source(
        &self,
        bad: &mut impl FnMut(String, String),
        s: &SourceDocument,
        org: &OrganizationDocument,
    ) -> Option<OrganizationSource> {
        let member_role = org.role_name.as_deref().or(self.role_name);
        if member_role.is_none() {
            bad(
                format!("{}.organization.roleName", self.at),
                "no reader role for the member accounts: set roleName here or at the top level".into(),
            );
        }
        let beside = [
            ("roleArn", s.role_arn.is_some()),
            ("regions", s.regions.is_some()),
            ("clusters", s.clusters.is_some()),
            ("workgroups", s.workgroups.is_some()),
        ];
        for (key, _) in beside.iter().filter(|(_, set)| *set) {
            bad(
                format!("{}.{key}", self.at),
                "not beside organization: its roleArn and regions go inside it; to name clusters or workgroups, \
                 add a source with accountId"
                    .into(),
            );
        }
        let at = format!("{}.organization", self.at);
        if let Err(problem) = role_arn_account(&org.role_arn, self.partition) {
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
        check_regions(bad, &at, &org.regions, self.partition);
        Some(OrganizationSource {
            role_arn: org.role_arn.clone(),
            organizational_units: org.organizational_units.clone(),
            exclude_accounts: org.exclude_accounts.clone(),
            regions: org.regions.clone(),
            member_role: member_role?.to_string(),
            partition: self.partition.to_string(),
        })
    }
}

/// A cluster connects one way: as a database user or with a secret, not both.
fn check_logins(bad: &mut impl FnMut(String, String), at: &str, clusters: &[NamedCluster]) {
    for (j, c) in clusters.iter().enumerate() {
        if c.db_user.is_some() && c.secret_arn.is_some() {
            bad(format!("{at}.clusters[{j}]"), "has both dbUser and secretArn: choose one way to connect".into());
        }
        if c.db_user.as_ref().is_some_and(|u| u.is_empty() || u.len() > 127) {
            bad(format!("{at}.clusters[{j}].dbUser"), "must be 1-127 characters".into());
        }
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

/// A non-empty key prefix always ends with `/`, so `redshift` and `redshift/` mean the same folder.
fn normalise_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_start_matches('/');
    if trimmed.is_empty() || trimmed.ends_with('/') {
        trimmed.to_string()
    } else {
        format!("{trimmed}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_normalised_to_a_folder() {
        assert_eq!(normalise_prefix(""), "");
        assert_eq!(normalise_prefix("redshift"), "redshift/");
        assert_eq!(normalise_prefix("/a/b/"), "a/b/");
    }
}
