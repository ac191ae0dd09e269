//! AWS Organizations: the ACTIVE accounts of an organization, or of some of its OUs.

use std::collections::BTreeSet;

use aws_config::SdkConfig;
use aws_sdk_organizations::types::{Account, AccountState, AccountStatus};
use aws_types::region::Region;

use super::sdk_error::aws_error;
use crate::error::AwsError;
use crate::names::partition_of;
use crate::ports::OrganizationDirectory;

/// The most accounts or OUs a page of these List calls may hold: fewer calls against
/// Organizations' low request rate.
const PAGE_SIZE: i32 = 20;

pub struct OrganizationsDirectory {
    client: aws_sdk_organizations::Client,
}

impl OrganizationsDirectory {
    /// A client for `account`'s credentials, in the partition of its region.
    pub fn new(account: &SdkConfig) -> Self {
        let own = account.region().map_or("us-east-1", Region::as_ref);
        let region = endpoint_region(partition_of(own)).unwrap_or(own).to_string();
        let config = account.to_builder().region(Region::new(region)).build();
        Self { client: aws_sdk_organizations::Client::new(&config) }
    }

    async fn every_account(&self) -> Result<BTreeSet<String>, AwsError> {
        let mut pages = self.client.list_accounts().max_results(PAGE_SIZE).into_paginator().send();
        let mut accounts = BTreeSet::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("organizations:ListAccounts", e))?;
            accounts.extend(active_ids(page.accounts()));
        }
        Ok(accounts)
    }

    /// The accounts directly in `parent`.
    async fn accounts_in(&self, parent: &str) -> Result<Vec<String>, AwsError> {
        let request = self.client.list_accounts_for_parent().parent_id(parent).max_results(PAGE_SIZE);
        let mut pages = request.into_paginator().send();
        let mut accounts = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("organizations:ListAccountsForParent", e))?;
            accounts.extend(active_ids(page.accounts()));
        }
        Ok(accounts)
    }

    /// The OUs directly below `parent`.
    async fn units_in(&self, parent: &str) -> Result<Vec<String>, AwsError> {
        let request = self.client.list_organizational_units_for_parent().parent_id(parent).max_results(PAGE_SIZE);
        let mut pages = request.into_paginator().send();
        let mut units = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("organizations:ListOrganizationalUnitsForParent", e))?;
            units.extend(page.organizational_units().iter().filter_map(|u| u.id().map(str::to_string)));
        }
        Ok(units)
    }
}

impl OrganizationDirectory for OrganizationsDirectory {
    async fn active_accounts(&self, organizational_units: &[String]) -> Result<Vec<String>, AwsError> {
        if organizational_units.is_empty() {
            return Ok(self.every_account().await?.into_iter().collect());
        }
        // One OU at a time, depth first: Organizations throttles parallel calls early. An OU
        // named and also below another named one is listed once.
        let mut pending = organizational_units.to_vec();
        let mut visited = BTreeSet::new();
        let mut accounts = BTreeSet::new();
        while let Some(unit) = pending.pop() {
            if visited.insert(unit.clone()) {
                accounts.extend(self.accounts_in(&unit).await?);
                pending.extend(self.units_in(&unit).await?);
            }
        }
        Ok(accounts.into_iter().collect())
    }
}

/// The Organizations endpoint's region for each partition, from the service's documentation;
/// elsewhere the SDK's endpoint rules resolve the partition's from the function's own region.
fn endpoint_region(partition: &str) -> Option<&'static str> {
    match partition {
        "aws" => Some("us-east-1"),
        "aws-us-gov" => Some("us-gov-west-1"),
        "aws-cn" => Some("cn-northwest-1"),
        _ => None,
    }
}

/// The ids of the accounts whose `State` is ACTIVE. `Status`, which `State` replaces, is read
/// only when `State` is absent, as from endpoints that predate it.
fn active_ids(accounts: &[Account]) -> impl Iterator<Item = String> + '_ {
    accounts
        .iter()
        .filter(|a| match a.state() {
            Some(state) => *state == AccountState::Active,
            None => a.status() == Some(&AccountStatus::Active),
        })
        .filter_map(|a| a.id().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_wins_over_the_deprecated_status() {
        let account = |id: &str, state: Option<AccountState>, status: Option<AccountStatus>| {
            Account::builder().id(id).set_state(state).set_status(status).build()
        };
        let accounts = [
            account("1", Some(AccountState::Active), Some(AccountStatus::Active)),
            account("2", Some(AccountState::PendingClosure), Some(AccountStatus::Active)),
            account("3", None, Some(AccountStatus::Active)),
            account("4", None, Some(AccountStatus::Suspended)),
            account("5", Some(AccountState::Suspended), None),
        ];
        assert_eq!(active_ids(&accounts).collect::<Vec<_>>(), ["1", "3"]);
    }

    #[test]
    fn each_partition_has_its_endpoint_region() {
        assert_eq!(endpoint_region(partition_of("eu-west-1")), Some("us-east-1"));
        assert_eq!(endpoint_region(partition_of("us-gov-east-1")), Some("us-gov-west-1"));
        assert_eq!(endpoint_region(partition_of("cn-north-1")), Some("cn-northwest-1"));
        assert_eq!(endpoint_region(partition_of("us-iso-east-1")), None);
    }
}
