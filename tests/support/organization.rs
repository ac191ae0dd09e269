//! An AWS Organization in moto, for the Organizations and fan-out tests.

use aws_sdk_organizations::types::OrganizationFeatureSet;
use serde_json::{json, Value};

use super::*;

/// An organization of the test's own: moto keeps one per management account, and the test's
/// account id is its own.
pub struct Organization {
    pub client: aws_sdk_organizations::Client,
    pub management: String,
    pub root: String,
}

impl Organization {
    pub async fn new(test: &str) -> Self {
        let management = account_id(test, 1);
        let client = aws_sdk_organizations::Client::new(&account_config(&moto_url(), &management, "us-east-1").await);
        client.create_organization().feature_set(OrganizationFeatureSet::All).send().await.expect("CreateOrganization");
        let roots = client.list_roots().send().await.expect("ListRoots");
        let root = roots.roots()[0].id().expect("a root id").to_string();
        Self { client, management, root }
    }

    pub async fn unit(&self, parent: &str, name: &str) -> String {
        let out = self.client.create_organizational_unit().parent_id(parent).name(name).send().await;
        out.expect("CreateOrganizationalUnit").organizational_unit().and_then(|u| u.id()).expect("an OU id").to_string()
    }

    /// A new account, moved from the root into `parent`.
    pub async fn account(&self, name: &str, parent: &str) -> String {
        let out = self.client.create_account().account_name(name).email(format!("{name}@example.com")).send().await;
        let status = out.expect("CreateAccount");
        let id = status.create_account_status().and_then(|s| s.account_id()).expect("an account id").to_string();
        if parent != self.root {
            let moved = self.client.move_account().account_id(&id).source_parent_id(&self.root);
            moved.destination_parent_id(parent).send().await.expect("MoveAccount");
        }
        id
    }

    pub fn role_arn(&self) -> String {
        format!("arn:aws:iam::{}:role/OrganizationReader", self.management)
    }

    /// An organization source of this organization, with `extra` keys.
    pub fn source(&self, extra: Value) -> Value {
        let mut source = json!({"roleArn": self.role_arn(), "regions": ["us-east-1", "eu-west-1"]});
        source.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"organization": source})
    }
}
