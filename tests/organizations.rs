//! Organization sources over moto's AWS Organizations: the accounts listed through a role in the
//! management account, OUs followed down, closed and excluded accounts left out, every page read,
//! and account sources mixed in.

mod support;

use redshift_registry::aws::StsPlatform;
use redshift_registry::config::Config;
use redshift_registry::event::Scope;
use redshift_registry::plan::{self, AccountPlan, OrganizationAccounts, RegionPlan, Selection};
use serde_json::{json, Value};
use support::organization::Organization;
use support::*;

fn config_of(sources: Value) -> Config {
    config(json!({"output": {"bucket": "plan-only"}, "roleName": "Reader", "sources": sources}))
}

async fn list(config: &Config) -> Vec<OrganizationAccounts<'_>> {
    let platform = StsPlatform::new(function_config(&moto_url()).await);
    plan::list_organizations(&platform, config, "redshift-registry-test").await
}

fn listed(organizations: &[OrganizationAccounts]) -> Vec<String> {
    assert_eq!(organizations.len(), 1, "{organizations:?}");
    organizations[0].accounts.clone().expect("the organization is listed")
}

fn sorted(accounts: &[&String]) -> Vec<String> {
    let mut accounts: Vec<String> = accounts.iter().map(|a| a.to_string()).collect();
    accounts.sort();
    accounts
}

fn ids(plans: &[AccountPlan]) -> Vec<&str> {
    plans.iter().map(|p| p.account_id.as_str()).collect()
}

fn discover(regions: &[&str]) -> Vec<RegionPlan> {
    let selection = Selection::Discover { only: Vec::new() };
    regions.iter().map(|r| RegionPlan { region: r.to_string(), selection: selection.clone() }).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_organization_is_its_active_accounts_less_the_excluded_ones() {
    let org = Organization::new("org_whole").await;
    let analytics = org.unit(&org.root, "analytics").await;
    let nested = org.unit(&analytics, "nested").await;
    let a = org.account("a", &analytics).await;
    let b = org.account("b", &nested).await;
    let closed = org.account("closed", &org.root).await;
    let excluded = org.account("excluded", &analytics).await;
    org.client.close_account().account_id(&closed).send().await.expect("CloseAccount");
    let cfg = config_of(json!([org.source(json!({"excludeAccounts": [excluded]}))]));

    let organizations = list(&cfg).await;
    assert_eq!(organizations[0].source, 0);
    assert_eq!(listed(&organizations), sorted(&[&org.management, &a, &b]));
    let plans = plan::plan(&cfg, &Scope::default(), &organizations).unwrap();
    assert_eq!(ids(&plans), sorted(&[&org.management, &a, &b]));
    for p in &plans {
        assert_eq!(p.role_arn, format!("arn:aws:iam::{}:role/Reader", p.account_id));
        assert_eq!(p.regions, discover(&["us-east-1", "eu-west-1"]));
    }

    // The next run sees who joined and who left.
    let joined = org.account("joined", &nested).await;
    org.client.remove_account_from_organization().account_id(&a).send().await.expect("RemoveAccountFromOrganization");
    assert_eq!(listed(&list(&cfg).await), sorted(&[&org.management, &b, &joined]));
}

#[tokio::test(flavor = "multi_thread")]
async fn named_units_are_listed_with_every_unit_below_them() {
    let org = Organization::new("org_units").await;
    let analytics = org.unit(&org.root, "analytics").await;
    let nested = org.unit(&analytics, "nested").await;
    let deeper = org.unit(&nested, "deeper").await;
    let other = org.unit(&org.root, "other").await;
    let a = org.account("a", &analytics).await;
    let b = org.account("b", &deeper).await;
    org.account("elsewhere", &other).await;
    org.account("at-the-root", &org.root).await;
    // `nested` is also below `analytics`: listed once.
    let units =
        json!({"organizationalUnits": [analytics, nested], "roleName": "MemberReader", "regions": ["eu-west-1"]});
    let cfg = config_of(json!([org.source(units)]));

    let organizations = list(&cfg).await;
    assert_eq!(listed(&organizations), sorted(&[&a, &b]));
    let plans = plan::plan(&cfg, &Scope::default(), &organizations).unwrap();
    assert_eq!(ids(&plans), sorted(&[&a, &b]));
    assert_eq!(plans[0].role_arn, format!("arn:aws:iam::{}:role/MemberReader", plans[0].account_id));
    assert_eq!(plans[0].regions, discover(&["eu-west-1"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_of_accounts_and_units_is_read() {
    // Pages hold 20: 21 accounts and 21 units in one OU, 43 accounts in the organization.
    let org = Organization::new("org_pages").await;
    let big = org.unit(&org.root, "big").await;
    let mut expected = vec![org.management.clone()];
    for i in 0..21 {
        expected.push(org.account(&format!("direct{i}"), &big).await);
        let unit = org.unit(&big, &format!("unit{i}")).await;
        expected.push(org.account(&format!("below{i}"), &unit).await);
    }
    expected.sort();

    let whole = config_of(json!([org.source(json!({}))]));
    assert_eq!(listed(&list(&whole).await), expected);
    let units = config_of(json!([org.source(json!({"organizationalUnits": [big]}))]));
    let members: Vec<String> = expected.into_iter().filter(|a| *a != org.management).collect();
    assert_eq!(listed(&list(&units).await), members);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_source_wins_over_the_organization_and_the_scope_knows_members() {
    let org = Organization::new("org_mixed").await;
    let a = org.account("a", &org.root).await;
    let b = org.account("b", &org.root).await;
    let explicit = json!({"accountId": b, "roleArn": format!("arn:aws:iam::{b}:role/Custom"),
                          "clusters": [{"region": "eu-west-1", "clusterIdentifier": "sales"}]});
    let cfg = config_of(json!([explicit, org.source(json!({"regions": ["us-east-1"]}))]));
    let organizations = list(&cfg).await;
    assert_eq!(organizations[0].source, 1);

    let plans = plan::plan(&cfg, &Scope::default(), &organizations).unwrap();
    let mut expected = vec![b.clone()];
    expected.extend(sorted(&[&org.management, &a]));
    assert_eq!(ids(&plans), expected, "b once, with its own settings, first");
    assert_eq!(plans[0].role_arn, format!("arn:aws:iam::{b}:role/Custom"));
    assert!(matches!(&plans[0].regions[..], [RegionPlan { selection: Selection::Named { .. }, .. }]));

    let only_a = Scope { accounts: [a.clone()].into(), ..Scope::default() };
    let plans = plan::plan(&cfg, &only_a, &organizations).unwrap();
    assert_eq!(ids(&plans), [a.as_str()]);
    assert_eq!(plans[0].role_arn, format!("arn:aws:iam::{a}:role/Reader"));
    let only_eu = Scope { regions: ["eu-west-1".to_string()].into(), ..Scope::default() };
    assert_eq!(ids(&plan::plan(&cfg, &only_eu, &organizations).unwrap()), [b.as_str()]);
    let stranger = Scope { accounts: ["999999999999".to_string()].into(), ..Scope::default() };
    let e = plan::plan(&cfg, &stranger, &organizations).unwrap_err();
    assert!(e.to_string().contains(&a), "members are known accounts: {e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organization_that_cannot_be_listed_adds_no_account() {
    let org = Organization::new("org_unlisted").await;
    org.account("member", &org.root).await;
    let explicit = account_id("org_unlisted", 2);
    let gone = json!({"organizationalUnits": ["ou-zzzz-deadbeef"]});
    let cfg = config_of(json!([{"accountId": explicit, "regions": ["us-east-1"]}, org.source(gone)]));
    let organizations = list(&cfg).await;
    let e = organizations[0].accounts.clone().expect_err("no such OU");
    assert_eq!((e.operation, e.code.as_str()), ("organizations:ListAccountsForParent", "ParentNotFoundException"));

    let plans = plan::plan(&cfg, &Scope::default(), &organizations).unwrap();
    assert_eq!(ids(&plans), [explicit.as_str()]);
    // An account the listing might have had is not taken for a typo.
    let maybe_member = Scope { accounts: ["999999999999".to_string()].into(), ..Scope::default() };
    assert_eq!(plan::plan(&cfg, &maybe_member, &organizations).unwrap(), Vec::new());

    // The run says so where a person reads it.
    let report = run_against(&moto_url(), &cfg, &Default::default()).await;
    let summary = redshift_registry::report::human_summary(&report);
    assert!(summary.contains("organization listed through arn:aws:iam::"), "{summary}");
    assert!(summary.contains("ParentNotFoundException"), "{summary}");
}
