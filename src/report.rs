//! Last stage: the run report, returned by the function and written to `{prefix}runs/{runId}.json`.
//! It says what was found and, for everything that was not, why and what to do.

use serde::Serialize;

use crate::catalog::{DatabaseCatalog, DatabaseKind, Warehouse, WarehouseId};
use crate::error::{AwsError, ErrorKind, Failure};
use crate::event::{Scope, Trigger};
use crate::outcome::{PublishReport, RemovedWarehouse, MANIFESTS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Every planned account, region, warehouse and database was read; skipped (paused)
    /// warehouses do not count against it.
    Succeeded,
    /// Some account, region, named warehouse or database could not be read; the rest was.
    Partial,
    /// No account could be reached.
    Failed,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub run_id: String,
    pub started_at: String,
    pub ended_at: String,
    pub status: RunStatus,
    pub trigger: Trigger,
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Scope::is_full")]
    pub scope: Scope,
    pub counts: Counts,
    /// Warehouses the request named that no planned region has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters_not_found: Vec<String>,
    pub accounts: Vec<AccountReport>,
    /// Where this report was written; absent in dry runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_key: Option<String>,
    /// Why the report could not be written, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_error: Option<String>,
    /// Organization sources, with the accounts they listed or why they could not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<OrganizationReport>,
    /// A fanned-out run's summary: every planned shard and how far it got.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardStatus>,
}

/// An organization source: the role it was listed through and the accounts it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationReport {
    pub role_arn: String,
    pub accounts: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

/// Every database with notes on what its read could not see, named by where it is.
fn unseen(report: &Report) -> Vec<(String, &[String])> {
    report
        .warehouses()
        .flat_map(|(a, r, w)| w.databases.iter().filter(|d| !d.notes.is_empty()).map(move |d| (a, r, w, d)))
        .map(|(a, r, w, d)| {
            let place =
                format!("account {} {} {} {}, database {}", a.account_id, r.region, w.id.kind(), w.id.name(), d.name);
            (place, d.notes.as_slice())
        })
        .collect()
}

/// The statements the notes suggest (each `GRANT ...;` or `CREATE ROLE ...;`), once each, in
/// order. A `;` inside a quoted name does not end one.
fn grants(notes: &[String]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for note in notes {
        let mut start = 0;
        let mut quoted = false;
        for (i, c) in note.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ';' if !quoted => {
                    let clause = &note[start..i];
                    let at = ["GRANT ", "CREATE ROLE "].iter().filter_map(|k| clause.find(k)).min();
                    if let Some(statement) = at.map(|at| format!("{};", &clause[at..])) {
                        if !found.contains(&statement) {
                            found.push(statement);
                        }
                    }
                    start = i + 1;
                }
                _ => {}
            }
        }
    }
    found
}

/// What to do about an organization that could not be listed.
pub(crate) fn organization_hint(error: &AwsError, role_arn: &str) -> String {
    match error.kind {
        ErrorKind::AccessDenied => format!(
            "the function may not list the organization through {role_arn}: it must be assumable by the function's \
             role and allow organizations:ListAccounts, ListAccountsForParent and \
             ListOrganizationalUnitsForParent, in the management or a delegated-administrator account \
             (README: Organization accounts cannot be listed); the explicit sources were read"
        ),
        _ => format!(
            "{}; the explicit sources were read, the organization's accounts are read next run",
            region_or_account_hint(error)
        ),
    }
}

/// One shard of a fanned-out run, as its summary shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    pub shard_id: String,
    pub account_id: String,
    pub region: String,
    pub state: ShardState,
    /// The delivery its latest report came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ShardState {
    Succeeded,
    /// Completed, with scopes it could not read (a denied account...): not retried.
    Partial,
    Failed,
    /// Its latest attempt failed in a way a retry can fix; SQS delivers it again.
    Retrying,
    /// Its last allowed attempt failed: the message is in the dead-letter queue.
    DeadLettered,
    /// No report: still queued, running, or lost (a crash before it could write one).
    NotFinished,
}

impl ShardState {
    /// No later delivery changes it: the shard completed, failed as a whole without a retry to
    /// come, or went to the dead-letter queue. A run is final once every shard is.
    pub fn finished(self) -> bool {
        !matches!(self, Self::Retrying | Self::NotFinished)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub accounts: usize,
    pub accounts_failed: usize,
    pub regions: usize,
    pub regions_failed: usize,
    pub warehouses: usize,
    pub warehouses_available: usize,
    pub warehouses_skipped: usize,
    pub warehouses_missing: usize,
    pub warehouses_failed: usize,
    pub databases: usize,
    pub databases_failed: usize,
    /// Datasets read.
    pub datasets: usize,
    pub datasets_written: usize,
    pub datasets_unchanged: usize,
    pub datasets_removed: usize,
    pub warehouses_removed: usize,
    /// Regions whose Serverless workgroups could not be listed (their clusters were read).
    pub regions_without_workgroups: usize,
    /// Regions where a workgroup the config names could not be looked up.
    pub named_workgroups_unread: usize,
    /// Warehouses whose snapshot could not be committed or cleaned.
    pub publish_failed: usize,
    /// Warehouse snapshots this run did not commit because a newer run's commit stands.
    #[serde(default)]
    pub publish_superseded: usize,
    /// Shards of a fanned-out run, and those not finished (retrying, dead-lettered, failed or
    /// never reported).
    #[serde(default)]
    pub shards: usize,
    #[serde(default)]
    pub shards_unfinished: usize,
    /// Organization sources whose accounts could not be listed.
    #[serde(default)]
    pub organizations_failed: usize,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountReport {
    pub account_id: String,
    pub role_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    pub regions: Vec<RegionReport>,
}

/// How a region's warehouses were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RegionMode {
    /// Option 1: every cluster and workgroup the region lists.
    Discover,
    /// Option 2: the ones the config names.
    Named,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionReport {
    pub region: String,
    pub mode: RegionMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// Why Serverless workgroups could not be listed; the clusters were read, and no workgroup's
    /// snapshot is removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workgroups_error: Option<Failure>,
    pub warehouses: Vec<WarehouseReport>,
    /// Warehouses this region's discovery no longer finds, removed from the registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_warehouses: Vec<RemovedWarehouse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removal_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarehouseState {
    Available,
    Skipped,
    Missing,
}

/// Why a warehouse was skipped: not available (paused, resizing...), or busy (intermittently
/// available, tried, and a read failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SkipCause {
    Unavailable,
    Busy,
}

/// A cluster (`clusterIdentifier`) or workgroup (`workgroupName`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseReport {
    #[serde(flatten)]
    pub id: WarehouseId,
    pub state: WarehouseState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<SkipCause>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Warehouse>,
    /// Why its databases could not be listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    pub databases: Vec<DatabaseReport>,
    /// What each output wrote to S3 (or would, in a dry run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<PublishReport>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseReport {
    pub name: String,
    pub kind: DatabaseKind,
    pub datasets: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// What could not be seen and the GRANT that fixes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl DatabaseReport {
    pub fn read(db: &DatabaseCatalog) -> Self {
        Self { name: db.name.clone(), kind: db.kind, datasets: db.datasets, error: None, notes: db.notes.clone() }
    }

    pub fn failed(name: &str, kind: DatabaseKind, error: Failure) -> Self {
        Self { name: name.to_string(), kind, datasets: 0, error: Some(error), notes: Vec::new() }
    }
}

impl WarehouseReport {
    pub fn found(warehouse: Warehouse) -> Self {
        let reason = warehouse.unavailable_reason();
        Self {
            id: warehouse.id(),
            state: if reason.is_some() { WarehouseState::Skipped } else { WarehouseState::Available },
            skipped: reason.is_some().then_some(SkipCause::Unavailable),
            reason,
            details: Some(warehouse),
            error: None,
            databases: Vec::new(),
            publish: Vec::new(),
        }
    }

    pub fn missing(id: WarehouseId, account_id: &str, region: &str) -> Self {
        let what = id.kind();
        Self {
            reason: Some(format!(
                "named in the config but account {account_id} has no {what} {:?} in {region}; \
                 fix the name or remove it from the config",
                id.name()
            )),
            id,
            state: WarehouseState::Missing,
            skipped: None,
            details: None,
            error: None,
            databases: Vec::new(),
            publish: Vec::new(),
        }
    }
}

impl WarehouseReport {
    /// What the output named `output` did with this warehouse.
    pub fn published(&self, output: &str) -> Option<&PublishReport> {
        self.publish.iter().find(|p| p.output == output)
    }

    /// A busy cluster whose read failed is skipped, like a paused one: a state, not a fault, and
    /// nothing of it is published or removed. True when it was.
    pub(crate) fn skip_if_busy(&mut self, warehouse: &Warehouse) -> bool {
        let failed = self.error.is_some() || self.databases.iter().any(|d| d.error.is_some());
        let Some(availability) = warehouse.busy().filter(|_| failed) else {
            return false;
        };
        self.state = WarehouseState::Skipped;
        self.skipped = Some(SkipCause::Busy);
        self.reason = Some(format!(
            "cluster availability is {availability:?} (intermittently available) and its read failed; \
             nothing of it was changed, and the next run reads it again"
        ));
        true
    }
}

/// What a report is made of: where the run went and how each place went. Its counts, status
/// and the named warehouses it did not find are derived from them.
pub(crate) struct Visited {
    pub(crate) run_id: String,
    pub(crate) started_at: String,
    pub(crate) ended_at: String,
    pub(crate) trigger: Trigger,
    pub(crate) dry_run: bool,
    pub(crate) scope: Scope,
    pub(crate) accounts: Vec<AccountReport>,
    pub(crate) organizations: Vec<OrganizationReport>,
    pub(crate) shards: Vec<ShardStatus>,
}

impl Report {
    /// The one way a report is built, for a run, a shard and a fanned-out run's summary.
    pub(crate) fn new(visited: Visited) -> Self {
        let Visited { run_id, started_at, ended_at, trigger, dry_run, scope, accounts, organizations, shards } =
            visited;
        let mut report = Self {
            run_id,
            started_at,
            ended_at,
            status: RunStatus::Succeeded,
            trigger,
            dry_run,
            scope,
            counts: Counts::default(),
            clusters_not_found: Vec::new(),
            accounts,
            report_key: None,
            report_error: None,
            organizations,
            shards,
        };
        // A shard's named warehouse may be in another shard's region: the summary says which were found.
        if trigger != Trigger::Shard {
            report.clusters_not_found = report.not_found();
        }
        report.summarise();
        report
    }

    /// Every region visited, with its account.
    pub fn regions(&self) -> impl Iterator<Item = (&AccountReport, &RegionReport)> {
        self.accounts.iter().flat_map(|a| a.regions.iter().map(move |r| (a, r)))
    }

    /// Every warehouse planned, with its account and region.
    pub fn warehouses(&self) -> impl Iterator<Item = (&AccountReport, &RegionReport, &WarehouseReport)> {
        self.regions().flat_map(|(a, r)| r.warehouses.iter().map(move |w| (a, r, w)))
    }

    /// Every failure of the run, at every scope: the accounts', then the regions', then the
    /// warehouses' with their databases'.
    pub fn failures(&self) -> impl Iterator<Item = &Failure> {
        let accounts = self.accounts.iter().flat_map(|a| &a.error);
        let regions = self.regions().flat_map(|(_, r)| &r.error);
        let warehouses =
            self.warehouses().flat_map(|(_, _, w)| w.error.iter().chain(w.databases.iter().flat_map(|d| &d.error)));
        accounts.chain(regions).chain(warehouses)
    }

    /// The warehouses a narrowed run named that none of its regions has.
    fn not_found(&self) -> Vec<String> {
        let found: std::collections::BTreeSet<&str> = self
            .warehouses()
            .filter(|(_, _, w)| w.state != WarehouseState::Missing)
            .map(|(_, _, w)| w.id.name())
            .collect();
        self.scope.clusters.iter().filter(|c| !found.contains(c.as_str())).cloned().collect()
    }

    /// Derives the counts and the status from the per-place results.
    fn summarise(&mut self) {
        let mut c = Counts { accounts: self.accounts.len(), ..Counts::default() };
        c.accounts_failed = self.accounts.iter().filter(|a| a.error.is_some()).count();
        let mut regions_ok = 0;
        for (_, r) in self.regions() {
            c.regions += 1;
            c.regions_failed += usize::from(r.error.is_some());
            c.regions_without_workgroups += usize::from(r.workgroups_error.is_some());
            // Only a named workgroup that could not be looked up is a fault of the run.
            c.named_workgroups_unread += usize::from(r.workgroups_error.is_some() && r.mode == RegionMode::Named);
            regions_ok += usize::from(r.error.is_none());
            c.warehouses_removed += r.removed_warehouses.len();
            c.publish_failed += usize::from(r.removal_error.is_some());
        }
        for (_, _, w) in self.warehouses() {
            c.warehouses += 1;
            match w.state {
                WarehouseState::Available => c.warehouses_available += 1,
                WarehouseState::Skipped => c.warehouses_skipped += 1,
                WarehouseState::Missing => c.warehouses_missing += 1,
            }
            let skipped = w.state == WarehouseState::Skipped;
            c.warehouses_failed += usize::from(w.error.is_some() && !skipped);
            for p in &w.publish {
                c.publish_failed += usize::from(p.error.is_some());
                c.publish_superseded += usize::from(p.superseded_by.is_some());
                if p.output == MANIFESTS {
                    c.datasets_written += p.written;
                    c.datasets_unchanged += p.unchanged;
                    c.datasets_removed += p.removed;
                }
            }
            for d in &w.databases {
                c.databases += 1;
                c.databases_failed += usize::from(d.error.is_some() && !skipped);
                c.datasets += d.datasets;
            }
        }
        c.organizations_failed = self.organizations.iter().filter(|o| o.error.is_some()).count();
        c.shards = self.shards.len();
        c.shards_unfinished = self.shards.iter().filter(|s| !s.state.finished()).count();
        let no_shard_finished = c.shards > 0 && c.shards_unfinished == c.shards;
        self.status = if c.accounts > 0 && c.accounts_failed == c.accounts
            || c.regions > 0 && regions_ok == 0
            || no_shard_finished
        {
            RunStatus::Failed
        } else if c.shards_unfinished
            + c.organizations_failed
            + c.accounts_failed
            + c.regions_failed
            + c.warehouses_missing
            + c.warehouses_failed
            + c.databases_failed
            + c.named_workgroups_unread
            + c.publish_failed
            + c.publish_superseded
            + self.clusters_not_found.len()
            > 0
        {
            RunStatus::Partial
        } else {
            RunStatus::Succeeded
        };
        self.counts = c;
    }
}

/// What to do about an account whose role could not be assumed.
pub(crate) fn account_hint(error: &AwsError, account_id: &str, role_arn: &str) -> String {
    match error.kind {
        ErrorKind::AccessDenied => format!(
            "the function's role may not assume {role_arn}: check that the role exists in account {account_id}, \
             that its trust policy names the function's role (and the externalId, if set), and that the function's \
             policy allows sts:AssumeRole on it (README: The reader role cannot be assumed)"
        ),
        ErrorKind::RegionNotEnabled => {
            format!("STS refused the credentials for account {account_id}: {}", error.message)
        }
        _ => region_or_account_hint(error),
    }
}

/// What to do about a region whose control plane could not be read.
pub(crate) fn region_hint(error: &AwsError, account_id: &str, region: &str) -> String {
    match error.kind {
        ErrorKind::RegionNotEnabled => format!(
            "region {region} refused the assumed role's credentials: it is probably an opt-in region not enabled \
             for account {account_id}; enable it (Account settings → AWS Regions) or remove it from the config (README: An opt-in region refuses the credentials)"
        ),
        ErrorKind::AccessDenied => format!(
            "the assumed role in account {account_id} may not call {} in {region}: \
             attach the reader policy (README: The reader role lacks a permission)",
            error.operation
        ),
        _ => region_or_account_hint(error),
    }
}

/// What to do about Serverless workgroups that could not be listed.
pub(crate) fn workgroups_hint(error: &AwsError, account_id: &str, region: &str) -> String {
    match error.kind {
        ErrorKind::AccessDenied => format!(
            "the assumed role in account {account_id} may not list Redshift Serverless workgroups in {region}; \
             its clusters were read; to read workgroups too, allow redshift-serverless:ListWorkgroups, \
             ListNamespaces, GetWorkgroup, GetNamespace and GetCredentials (README: The reader role lacks a permission)"
        ),
        ErrorKind::Unreachable => format!(
            "the Redshift Serverless endpoint of {region} did not answer (Serverless may not be offered there); \
             its clusters were read"
        ),
        _ => format!("Redshift Serverless answered {} in {region}; its clusters were read", error.code),
    }
}

fn region_or_account_hint(error: &AwsError) -> String {
    match error.kind {
        ErrorKind::Throttled => "still throttled after retries; the next run tries again".into(),
        ErrorKind::Unreachable => "the endpoint did not answer; check network access to AWS from the function".into(),
        _ => format!("AWS answered {}; see the message", error.code),
    }
}

/// A short account of the run for a person at a terminal: one line per account and region
/// (warehouses, datasets, written), then every failure with its hint. The CLI prints it on
/// stderr after the JSON report.
pub fn human_summary(report: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let status = match report.status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Partial => "partial",
        RunStatus::Failed => "failed",
    };
    let dry = if report.dry_run { " (dry run: nothing was written or removed)" } else { "" };
    let _ = writeln!(out, "run {}: {status}{dry}", report.run_id);
    let written_word = if report.dry_run { "would write" } else { "written" };
    let mut failures: Vec<(String, String)> = Vec::new();
    for a in &report.accounts {
        if let Some(e) = &a.error {
            let _ = writeln!(out, "  account {}: not reached ({})", a.account_id, e.code);
            failures.push((format!("account {}: {}: {}", a.account_id, e.code, e.message), e.hint.clone()));
        }
        for r in &a.regions {
            let here = format!("account {} {}", a.account_id, r.region);
            if let Some(e) = &r.error {
                let _ = writeln!(out, "  {here}: not read ({})", e.code);
                failures.push((format!("{here}: {}: {}", e.code, e.message), e.hint.clone()));
            } else {
                let warehouses = r.warehouses.len();
                let skipped = r.warehouses.iter().filter(|w| w.state == WarehouseState::Skipped).count();
                let datasets: usize = r.warehouses.iter().flat_map(|w| &w.databases).map(|d| d.datasets).sum();
                let written: usize = r
                    .warehouses
                    .iter()
                    .flat_map(|w| &w.publish)
                    .filter(|p| p.output == MANIFESTS)
                    .map(|p| p.written)
                    .sum();
                let plural = if warehouses == 1 { "" } else { "s" };
                let skipped = if skipped > 0 { format!(" ({skipped} skipped)") } else { String::new() };
                let _ = writeln!(
                    out,
                    "  {here}: {warehouses} warehouse{plural}{skipped}, {datasets} datasets, {written} {written_word}"
                );
            }
            if let Some(e) = &r.workgroups_error {
                failures.push((format!("{here}, Serverless workgroups: {}: {}", e.code, e.message), e.hint.clone()));
            }
            if let Some(e) = &r.removal_error {
                failures.push((format!("{here}, removing absent warehouses: {e}"), String::new()));
            }
            for w in &r.warehouses {
                let kind = w.id.kind();
                let there = format!("{here} {kind} {}", w.id.name());
                let skipped = w.state == WarehouseState::Skipped;
                if w.state == WarehouseState::Missing {
                    failures.push((format!("{there}: missing"), w.reason.clone().unwrap_or_default()));
                }
                if let Some(e) = w.error.as_ref().filter(|_| !skipped) {
                    failures.push((format!("{there}: {}: {}", e.code, e.message), e.hint.clone()));
                }
                for d in w.databases.iter().filter(|_| !skipped) {
                    if let Some(e) = &d.error {
                        let what = format!("{there} database {}: {}: {}", d.name, e.code, e.message);
                        failures.push((what, e.hint.clone()));
                    }
                }
                for p in &w.publish {
                    if let Some(e) = &p.error {
                        failures.push((format!("{there}, output {}: {e}", p.output), String::new()));
                    }
                    if let Some(newer) = &p.superseded_by {
                        let what =
                            format!("{there}, output {}: not committed: run {newer} committed it first", p.output);
                        failures.push((what, "the newer run's snapshot stands; nothing to do".into()));
                    }
                }
            }
        }
    }
    for o in &report.organizations {
        if let Some(e) = &o.error {
            failures.push((
                format!("organization listed through {}: {}: {}", o.role_arn, e.code, e.message),
                e.hint.clone(),
            ));
        }
    }
    if !report.clusters_not_found.is_empty() {
        failures.push((
            format!("named in the request but not found: {}", report.clusters_not_found.join(", ")),
            "check the names, or the accounts and regions the request narrows to".into(),
        ));
    }
    if let Some(e) = &report.report_error {
        failures.push((format!("the report could not be written: {e}"), String::new()));
    }
    let unseen = unseen(report);
    if !unseen.is_empty() {
        let notes: usize = unseen.iter().map(|(_, notes)| notes.len()).sum();
        let _ = writeln!(out, "{notes} notes on what the reader could not see, in {} databases:", unseen.len());
        for (place, notes) in &unseen {
            let _ = writeln!(out, "  {place}:");
            for note in notes.iter() {
                let _ = writeln!(out, "    - {note}");
            }
            let grants = grants(notes);
            if !grants.is_empty() {
                let _ = writeln!(
                    out,
                    "    to fix, as a superuser in that database (README: Schemas hidden from the reader):"
                );
                for grant in &grants {
                    let _ = writeln!(out, "      {grant}");
                }
            }
        }
    }
    if failures.is_empty() && unseen.is_empty() {
        let _ = writeln!(out, "no failures, nothing hidden from the reader");
    } else if failures.is_empty() {
        let _ = writeln!(out, "no failures, but the notes above say what the registry is missing");
    } else {
        let _ = writeln!(out, "{} failure{}:", failures.len(), if failures.len() == 1 { "" } else { "s" });
        for (what, hint) in failures {
            let _ = writeln!(out, "  - {what}");
            if !hint.is_empty() {
                let _ = writeln!(out, "    hint: {hint}");
            }
        }
    }
    out
}
