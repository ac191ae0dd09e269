//! Stage 2: what to visit. Accounts → regions from the config and the request, then the clusters
//! of each region from discovery ("option 1") or the config's names ("option 2").

use std::collections::BTreeMap;
use std::future::Future;

use serde::Serialize;

use crate::config::Config;
use crate::error::AwsError;
use crate::event::Scope;

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
    /// Every cluster DescribeClusters lists (narrowed to `only` when the request names clusters).
    Discover { only: Vec<String> },
    /// Only these identifiers, each looked up by name.
    Named(Vec<String>),
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
    let known_accounts: Vec<&str> = config
        .sources
        .iter()
        .map(|s| s.account_id.as_str())
        .collect();
    if let Some(a) = scope
        .accounts
        .iter()
        .find(|a| !known_accounts.contains(&a.as_str()))
    {
        return Err(ScopeError {
            what: "account",
            name: a.clone(),
            known: known_accounts.join(", "),
        });
    }
    let mut known_regions: Vec<&str> = config
        .sources
        .iter()
        .flat_map(|s| {
            let named = s.clusters.iter().flatten().map(|c| c.region.as_str());
            s.regions.iter().flatten().map(String::as_str).chain(named)
        })
        .collect();
    known_regions.sort_unstable();
    known_regions.dedup();
    if let Some(r) = scope
        .regions
        .iter()
        .find(|r| !known_regions.contains(&r.as_str()))
    {
        return Err(ScopeError {
            what: "region",
            name: r.clone(),
            known: known_regions.join(", "),
        });
    }

    let only: Vec<String> = scope.clusters.iter().cloned().collect();
    let plans = config
        .sources
        .iter()
        .filter(|s| scope.has_account(&s.account_id))
        .map(|source| {
            let mut regions: Vec<RegionPlan> = Vec::new();
            for region in source
                .regions
                .iter()
                .flatten()
                .filter(|r| scope.has_region(r))
            {
                regions.push(RegionPlan {
                    region: region.clone(),
                    selection: Selection::Discover { only: only.clone() },
                });
            }
            // Option 2: group the named clusters by region, keeping the config's order.
            let mut named: Vec<(String, Vec<String>)> = Vec::new();
            for c in source.clusters.iter().flatten() {
                if !scope.has_region(&c.region) || !scope.has_cluster(&c.cluster_identifier) {
                    continue;
                }
                match named.iter_mut().find(|(r, _)| *r == c.region) {
                    Some((_, ids)) => ids.push(c.cluster_identifier.clone()),
                    None => named.push((c.region.clone(), vec![c.cluster_identifier.clone()])),
                }
            }
            regions.extend(named.into_iter().map(|(region, ids)| RegionPlan {
                region,
                selection: Selection::Named(ids),
            }));
            AccountPlan {
                account_id: source.account_id.clone(),
                role_arn: config.role_arn(source),
                regions,
            }
        })
        .filter(|a| !a.regions.is_empty())
        .collect();
    Ok(plans)
}

/// A provisioned cluster as the control plane describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub cluster_identifier: String,
    pub cluster_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_arn: Option<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub address: String,
    pub port: i32,
}

impl Cluster {
    /// Why the Data API cannot query this cluster now, if it cannot. ClusterAvailabilityStatus is
    /// the better gate ("Available", "Maintenance", ...); older responses and emulators only
    /// carry ClusterStatus, so that is the fallback.
    pub fn unavailable_reason(&self) -> Option<String> {
        match &self.availability {
            Some(a) if a.eq_ignore_ascii_case("available") => None,
            Some(a) => Some(format!(
                "cluster availability is {a:?} (status {:?}); it is read again once available",
                self.cluster_status
            )),
            None if self.cluster_status.eq_ignore_ascii_case("available") => None,
            None => Some(format!(
                "cluster status is {:?}; it is read again once available",
                self.cluster_status
            )),
        }
    }
}

/// Port: the control plane of one account in one region.
pub trait ClusterDirectory: Send + Sync {
    /// Every cluster of the region, all pages.
    fn list_clusters(&self) -> impl Future<Output = Result<Vec<Cluster>, AwsError>> + Send;
    /// One cluster by identifier; `None` when it does not exist.
    fn find_cluster(
        &self,
        identifier: &str,
    ) -> impl Future<Output = Result<Option<Cluster>, AwsError>> + Send;
}

/// The clusters a region plan selects, and the named ones that do not exist.
#[derive(Debug, Default)]
pub struct Discovered {
    pub clusters: Vec<Cluster>,
    pub missing: Vec<String>,
}

pub async fn discover<D: ClusterDirectory>(
    directory: &D,
    selection: &Selection,
) -> Result<Discovered, AwsError> {
    let mut found = Discovered::default();
    match selection {
        Selection::Discover { only } => {
            found.clusters = directory.list_clusters().await?;
            found
                .clusters
                .retain(|c| only.is_empty() || only.contains(&c.cluster_identifier));
        }
        Selection::Named(ids) => {
            for id in ids {
                match directory.find_cluster(id).await? {
                    Some(c) => found.clusters.push(c),
                    None => found.missing.push(id.clone()),
                }
            }
        }
    }
    found
        .clusters
        .sort_by(|a, b| a.cluster_identifier.cmp(&b.cluster_identifier));
    Ok(found)
}
