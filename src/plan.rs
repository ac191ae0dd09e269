//! Stage 2: what to visit. Accounts → regions from the config and the request, then the clusters
//! of each region from discovery ("option 1") or the config's names ("option 2").

use crate::catalog::{Warehouse, WarehouseId};
use crate::config::{Config, NamedCluster, NamedWorkgroup};
use crate::error::AwsError;
use crate::event::Scope;
use crate::ports::{DbAuth, WarehouseDirectory};

/// One account to visit, with the role to assume there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPlan {
    pub account_id: String,
    pub role_arn: String,
    pub regions: Vec<RegionPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionPlan {
    pub region: String,
    pub selection: Selection,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Builds the visit plan, narrowed to `scope`. Names in the scope that the config lacks are
/// errors, so that a typo in a manual run is not mistaken for "nothing there".
pub fn plan(config: &Config, scope: &Scope) -> Result<Vec<AccountPlan>, ScopeError> {
    let known_accounts: Vec<&str> = config.sources.iter().map(|s| s.account_id.as_str()).collect();
    if let Some(a) = scope.accounts.iter().find(|a| !known_accounts.contains(&a.as_str())) {
        return Err(ScopeError { what: "account", name: a.clone(), known: known_accounts.join(", ") });
    }
    let mut known_regions: Vec<&str> = config
        .sources
        .iter()
        .flat_map(|s| {
            let clusters = s.clusters.iter().flatten().map(|c| c.region.as_str());
            let workgroups = s.workgroups.iter().flatten().map(|w| w.region.as_str());
            s.regions.iter().flatten().map(String::as_str).chain(clusters).chain(workgroups)
        })
        .collect();
    known_regions.sort_unstable();
    known_regions.dedup();
    if let Some(r) = scope.regions.iter().find(|r| !known_regions.contains(&r.as_str())) {
        return Err(ScopeError { what: "region", name: r.clone(), known: known_regions.join(", ") });
    }

    let only: Vec<String> = scope.clusters.iter().cloned().collect();
    let plans = config
        .sources
        .iter()
        .filter(|s| scope.has_account(&s.account_id))
        .map(|source| {
            let mut regions: Vec<RegionPlan> = Vec::new();
            for region in source.regions.iter().flatten().filter(|r| scope.has_region(r)) {
                regions
                    .push(RegionPlan { region: region.clone(), selection: Selection::Discover { only: only.clone() } });
            }
            // Option 2: group the named warehouses by region, keeping the config's order.
            let mut named: Vec<NamedInRegion> = Vec::new();
            for c in source.clusters.iter().flatten() {
                if scope.has_region(&c.region) && scope.has_cluster(&c.cluster_identifier) {
                    region_slot(&mut named, &c.region).1.push(c.clone());
                }
            }
            for w in source.workgroups.iter().flatten() {
                if scope.has_region(&w.region) && scope.has_cluster(&w.workgroup_name) {
                    region_slot(&mut named, &w.region).2.push(w.clone());
                }
            }
            regions.extend(named.into_iter().map(|(region, clusters, workgroups)| RegionPlan {
                region,
                selection: Selection::Named { clusters, workgroups },
            }));
            AccountPlan { account_id: source.account_id.clone(), role_arn: config.role_arn(source), regions }
        })
        .filter(|a| !a.regions.is_empty())
        .collect();
    Ok(plans)
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
