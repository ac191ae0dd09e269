//! Stage 2: what to visit. Accounts → regions from the config, the organizations it names and
//! the request, then the clusters of each region from discovery ("option 1") or the config's
//! names ("option 2").

use std::collections::BTreeSet;

use crate::catalog::{Warehouse, WarehouseId};
use crate::config::{AccountSource, Config, NamedCluster, NamedWorkgroup, OrganizationSource, Reads};
use crate::error::AwsError;
use crate::event::Scope;
use crate::ports::{AccountSession, DbAuth, OrganizationDirectory, Platform, WarehouseDirectory};

/// One account to visit, with the role to assume there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPlan {
    pub account_id: String,
    pub role_arn: String,
    /// The organization source that listed the account; none for an account source.
    pub listed_by: Option<ListedBy>,
    pub regions: Vec<RegionPlan>,
}

/// Which organization source listed an account: its place in `sources` and its role. A shard
/// is run under that source's rules only while the config still has both there, so that two
/// sources sharing a role (different OUs, regions or member roles) are never taken for each other.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListedBy {
    pub source: usize,
    pub role_arn: String,
}

/// An account an organization source listed and no account source has.
struct Member<'a> {
    account: &'a str,
    source: usize,
    org: &'a OrganizationSource,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegionPlan {
    pub region: String,
    pub selection: Selection,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Selection {
    /// Every cluster DescribeClusters lists and every workgroup ListWorkgroups lists (narrowed
    /// to `only` when the request names some).
    Discover { only: Vec<String> },
    /// Only these, each looked up by name.
    Named { clusters: Vec<NamedCluster>, workgroups: Vec<NamedWorkgroup> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request names {what} {name:?}, which the config does not have; configured: {known}")]
pub struct ScopeError {
    pub what: &'static str,
    pub name: String,
    pub known: String,
}

/// The accounts an organization source lists, or why they could not be listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationAccounts<'a> {
    /// The organization source's index in `config.sources`.
    pub source: usize,
    pub org: &'a OrganizationSource,
    /// Its ACTIVE accounts less `excludeAccounts`, sorted.
    pub accounts: Result<Vec<String>, AwsError>,
}

/// Lists the accounts of every organization source, each through its own role. One at a time:
/// Organizations allows few requests per second, and several sources usually share one
/// organization.
pub async fn list_organizations<'a, P: Platform>(
    platform: &P,
    config: &'a Config,
    session_name: &str,
) -> Vec<OrganizationAccounts<'a>> {
    let mut listed = Vec::new();
    for (source, org) in config.organizations() {
        let accounts = members(platform, config.external_id.as_deref(), org, session_name).await;
        listed.push(OrganizationAccounts { source, org, accounts });
    }
    listed
}

async fn members<P: Platform>(
    platform: &P,
    external_id: Option<&str>,
    org: &OrganizationSource,
    session_name: &str,
) -> Result<Vec<String>, AwsError> {
    let session = platform.assume_role(&org.role_arn, external_id, session_name).await?;
    let mut accounts = session.organization().active_accounts(&org.organizational_units).await?;
    accounts.retain(|a| !org.exclude_accounts.contains(a));
    accounts.sort_unstable();
    Ok(accounts)
}

/// Builds the visit plan, narrowed to `scope`: the account sources in the config's order, then
/// the organizations' accounts that no account source has, by account id. An account source's
/// settings win over an organization's, an earlier organization source's over a later one's; an
/// organization that could not be listed adds no account. Names in the scope that the config
/// lacks are errors, so that a typo in a manual run is not mistaken for "nothing there".
pub fn plan(
    config: &Config,
    scope: &Scope,
    organizations: &[OrganizationAccounts],
) -> Result<Vec<AccountPlan>, ScopeError> {
    let members = joined_members(config, organizations);
    check_scope(config, scope, organizations, &members)?;
    let only: Vec<String> = scope.clusters.iter().cloned().collect();
    let explicit = config.accounts().filter(|source| scope.has_account(&source.account_id)).map(|source| AccountPlan {
        account_id: source.account_id.clone(),
        role_arn: source.role_arn.clone(),
        listed_by: None,
        regions: source_regions(source, scope, &only),
    });
    let joined = members.iter().filter(|m| scope.has_account(m.account)).map(|m| AccountPlan {
        account_id: m.account.to_string(),
        role_arn: m.org.member_role_arn(m.account),
        listed_by: Some(ListedBy { source: m.source, role_arn: m.org.role_arn.clone() }),
        regions: discover_regions(&m.org.regions, scope, &only),
    });
    Ok(explicit.chain(joined).filter(|a| !a.regions.is_empty()).collect())
}

/// One account and region of a planned run, resolved against the current config alone: the
/// role, regions, warehouses and logins a shard uses come from here, never from its message.
/// `listed_by` (from the run's plan, which this function wrote) says which organization source
/// listed the account. An account or region the config no longer has is an error.
pub(crate) fn shard_plan(
    config: &Config,
    account: &str,
    region: &str,
    listed_by: Option<&ListedBy>,
    clusters: &BTreeSet<String>,
) -> Result<AccountPlan, String> {
    let listings: Vec<OrganizationAccounts> = config
        .organizations()
        .map(|(source, org)| {
            let listed = listed_by.is_some_and(|l| l.source == source && l.role_arn == org.role_arn);
            let member = listed && !org.exclude_accounts.iter().any(|a| a == account);
            let accounts = Ok(member.then(|| account.to_string()).into_iter().collect());
            OrganizationAccounts { source, org, accounts }
        })
        .collect();
    let scope = Scope {
        accounts: [account.to_string()].into(),
        regions: [region.to_string()].into(),
        clusters: clusters.clone(),
    };
    let mut plans = plan(config, &scope, &listings).map_err(|e| e.to_string())?;
    match plans.pop() {
        Some(account_plan) if plans.is_empty() => Ok(account_plan),
        _ => Err(format!("the config has no source that visits account {account} in {region}")),
    }
}

/// Each listed organization account that no account source has, with the first organization
/// source that lists it, sorted by account id.
fn joined_members<'a>(config: &'a Config, organizations: &'a [OrganizationAccounts<'a>]) -> Vec<Member<'a>> {
    let mut planned: BTreeSet<&str> = account_sources(config).collect();
    let mut listings: Vec<&OrganizationAccounts> = organizations.iter().collect();
    listings.sort_by_key(|o| o.source);
    let mut members = Vec::new();
    for listing in listings {
        let Ok(accounts) = &listing.accounts else {
            continue;
        };
        let listed = accounts.iter().filter(|a| planned.insert(a.as_str()));
        members.extend(listed.map(|a| Member { account: a, source: listing.source, org: listing.org }));
    }
    members.sort_unstable_by_key(|m| m.account);
    members
}

/// The accounts of the sources with `accountId`.
fn account_sources(config: &Config) -> impl Iterator<Item = &str> {
    config.accounts().map(|s| s.account_id.as_str())
}

/// Every account and region the scope names must be the config's. Accounts are checked only
/// when every organization was listed: otherwise a named account may be a member not seen.
fn check_scope(
    config: &Config,
    scope: &Scope,
    organizations: &[OrganizationAccounts],
    members: &[Member],
) -> Result<(), ScopeError> {
    let every_listed =
        config.organizations().all(|(i, _)| organizations.iter().any(|o| o.source == i && o.accounts.is_ok()));
    let mut known_accounts: Vec<&str> = account_sources(config).collect();
    known_accounts.extend(members.iter().map(|m| m.account));
    if every_listed {
        if let Some(a) = scope.accounts.iter().find(|a| !known_accounts.contains(&a.as_str())) {
            return Err(ScopeError { what: "account", name: a.clone(), known: known_accounts.join(", ") });
        }
    }
    let mut known_regions: Vec<&str> = config.sources.iter().flat_map(|s| s.regions()).collect();
    known_regions.sort_unstable();
    known_regions.dedup();
    if let Some(r) = scope.regions.iter().find(|r| !known_regions.contains(&r.as_str())) {
        return Err(ScopeError { what: "region", name: r.clone(), known: known_regions.join(", ") });
    }
    Ok(())
}

/// Option 1: every warehouse of each region the scope keeps.
fn discover_regions(regions: &[String], scope: &Scope, only: &[String]) -> Vec<RegionPlan> {
    regions
        .iter()
        .filter(|r| scope.has_region(r))
        .map(|region| RegionPlan { region: region.clone(), selection: Selection::Discover { only: only.to_vec() } })
        .collect()
}

/// An account source's regions: option 1's, or option 2's named warehouses grouped by region in
/// the config's order.
fn source_regions(source: &AccountSource, scope: &Scope, only: &[String]) -> Vec<RegionPlan> {
    let (clusters, workgroups) = match &source.reads {
        Reads::Regions(regions) => return discover_regions(regions, scope, only),
        Reads::Named { clusters, workgroups } => (clusters, workgroups),
    };
    let mut named: Vec<NamedInRegion> = Vec::new();
    for c in clusters {
        if scope.has_region(&c.region) && scope.has_cluster(&c.cluster_identifier) {
            region_slot(&mut named, &c.region).1.push(c.clone());
        }
    }
    for w in workgroups {
        if scope.has_region(&w.region) && scope.has_cluster(&w.workgroup_name) {
            region_slot(&mut named, &w.region).2.push(w.clone());
        }
    }
    named
        .into_iter()
        .map(|(region, clusters, workgroups)| RegionPlan {
            region,
            selection: Selection::Named { clusters, workgroups },
        })
        .collect()
}

type NamedInRegion = (String, Vec<NamedCluster>, Vec<NamedWorkgroup>);

fn region_slot<'a>(named: &'a mut Vec<NamedInRegion>, region: &str) -> &'a mut NamedInRegion {
    let i = match named.iter().position(|(r, _, _)| r == region) {
        Some(i) => i,
        None => {
            named.push((region.to_string(), Vec::new(), Vec::new()));
            named.len() - 1
        }
    };
    &mut named[i]
}

/// The warehouses a region plan selects, each with how to log in, and the named ones that do
/// not exist.
#[derive(Debug, Default)]
pub struct Discovered {
    pub warehouses: Vec<(Warehouse, DbAuth)>,
    pub missing: Vec<WarehouseId>,
    /// Why Serverless workgroups could not be listed or looked up. The clusters were, and no
    /// workgroup counts as absent: a reader role may lack the Serverless actions, and a region
    /// may have no Serverless endpoint.
    pub workgroups_error: Option<AwsError>,
}

pub async fn discover<D: WarehouseDirectory>(directory: &D, selection: &Selection) -> Result<Discovered, AwsError> {
    let mut found = Discovered::default();
    match selection {
        Selection::Discover { only } => {
            let (clusters, workgroups) = tokio::join!(directory.list_clusters(), directory.list_workgroups());
            let workgroups = workgroups.unwrap_or_else(|e| {
                found.workgroups_error = Some(e);
                Vec::new()
            });
            let warehouses =
                clusters?.into_iter().map(Warehouse::Cluster).chain(workgroups.into_iter().map(Warehouse::Workgroup));
            found.warehouses = warehouses
                .filter(|w| only.is_empty() || only.iter().any(|o| o == w.id().name()))
                .map(|w| (w, DbAuth::Iam))
                .collect();
        }
        Selection::Named { clusters, workgroups } => {
            for c in clusters {
                let auth = match (&c.db_user, &c.secret_arn) {
                    (Some(user), _) => DbAuth::DbUser(user.clone()),
                    (None, Some(arn)) => DbAuth::SecretArn(arn.clone()),
                    (None, None) => DbAuth::Iam,
                };
                match directory.find_cluster(&c.cluster_identifier).await? {
                    Some(cluster) => found.warehouses.push((Warehouse::Cluster(cluster), auth)),
                    None => found.missing.push(WarehouseId::ClusterIdentifier(c.cluster_identifier.clone())),
                }
            }
            for w in workgroups {
                let auth = w.secret_arn.clone().map_or(DbAuth::Iam, DbAuth::SecretArn);
                match directory.find_workgroup(&w.workgroup_name).await {
                    Ok(Some(workgroup)) => found.warehouses.push((Warehouse::Workgroup(workgroup), auth)),
                    Ok(None) => found.missing.push(WarehouseId::WorkgroupName(w.workgroup_name.clone())),
                    Err(e) => {
                        found.workgroups_error = Some(e);
                        break;
                    }
                }
            }
        }
    }
    found.warehouses.sort_by_key(|(w, _)| w.id());
    Ok(found)
}
