//! Assumed roles: one AssumeRole per account, then one `SdkConfig` per (account, region).

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_types::region::Region;

use super::data_api::RedshiftData;
use super::organizations::OrganizationsDirectory;
use super::redshift::RedshiftDirectory;
use super::sdk_error::aws_error;
use crate::error::AwsError;
use crate::ports::{AccountSession, Platform};

/// Assumes roles with the function's own credentials.
#[derive(Clone)]
pub struct StsPlatform {
    base: SdkConfig,
    sts: aws_sdk_sts::Client,
}

impl StsPlatform {
    pub fn new(base: SdkConfig) -> Self {
        let sts = aws_sdk_sts::Client::new(&base);
        Self { base, sts }
    }
}

/// The credentials of one account's role. They last an hour (the STS default), longer than a
/// Lambda invocation can run, so they are used as they come rather than refreshed.
#[derive(Clone)]
pub struct AssumedAccount {
    config: SdkConfig,
}

impl AssumedAccount {
    pub fn config_for(&self, region: &str) -> SdkConfig {
        self.config.to_builder().region(Region::new(region.to_string())).build()
    }
}

impl Platform for StsPlatform {
    type Account = AssumedAccount;

    async fn assume_role(
        &self,
        role_arn: &str,
        external_id: Option<&str>,
        session_name: &str,
    ) -> Result<AssumedAccount, AwsError> {
        let out = self
            .sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session_name_for_sts(session_name))
            .set_external_id(external_id.map(str::to_string))
            .send()
            .await
            .map_err(|e| aws_error("sts:AssumeRole", e))?;
        let c = out.credentials().ok_or_else(|| {
            AwsError::from_code("sts:AssumeRole", Some("NoCredentials"), "AssumeRole returned no credentials".into())
        })?;
        let expiry = std::time::SystemTime::try_from(*c.expiration()).ok();
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "redshift-registry-assume-role",
        );
        let config = self.base.to_builder().credentials_provider(SharedCredentialsProvider::new(credentials)).build();
        Ok(AssumedAccount { config })
    }
}

/// STS session names: 2-64 characters of `[\w+=,.@-]`.
fn session_name_for_sts(name: &str) -> String {
    name.chars().filter(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(*c)).take(64).collect()
}

impl AccountSession for AssumedAccount {
    type Directory = RedshiftDirectory;
    type Data = RedshiftData;
    type Organization = OrganizationsDirectory;

    fn directory(&self, region: &str) -> RedshiftDirectory {
        RedshiftDirectory::new(&self.config_for(region))
    }

    fn data_api(&self, region: &str) -> RedshiftData {
        RedshiftData::new(&self.config_for(region))
    }

    fn organization(&self) -> OrganizationsDirectory {
        OrganizationsDirectory::new(&self.config)
    }
}
