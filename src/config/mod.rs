//! Stage 1: the run's configuration, read ([`document`]) and validated ([`validate`]) before
//! any AWS call, into types that hold what validation proved.

mod document;
mod types;
mod validate;

use crate::environment::Environment;

pub use document::{
    is_entity_ref, json_schema, BackstageOutput, ConfigError, DataApiConfig, Filters, Limits, NamePattern,
    NamedCluster, NamedWorkgroup, OpenLineageOutput, OutputLocation, Outputs, Pattern, Problem, SCHEMA,
};
pub use types::{AccountSource, Config, Execution, OrganizationSource, Reads, Source};
pub use validate::DeploymentDefaults;

impl Config {
    /// Reads a config: its JSON syntax (a problem with its line and column), its structure
    /// against the committed JSON Schema (every problem, each with its path), then the rules
    /// (every problem again), filling from `defaults` what it leaves out. The same checks run for
    /// `--check-config`, offline.
    pub fn parse(text: &str, defaults: &DeploymentDefaults) -> Result<Self, ConfigError> {
        validate::validate(document::Document::read(text)?, defaults)
    }
}

/// Where the config comes from, as the environment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    Inline(String),
    File(String),
    S3 { bucket: String, key: String },
}

impl ConfigSource {
    pub fn of(env: &Environment) -> Result<Self, ConfigError> {
        match (&env.config, &env.config_uri) {
            (Some(text), None) => Ok(Self::Inline(text.clone())),
            (None, Some(uri)) => Self::from_uri(uri),
            (Some(_), Some(_)) => Err(ConfigError::one(
                "REGISTRY_CONFIG",
                "both REGISTRY_CONFIG and REGISTRY_CONFIG_URI are set; keep one",
            )),
            (None, None) => Err(ConfigError::one(
                "REGISTRY_CONFIG",
                "no config: set REGISTRY_CONFIG to the JSON or REGISTRY_CONFIG_URI to s3://bucket/key or a file path",
            )),
        }
    }

    pub(crate) fn from_uri(uri: &str) -> Result<Self, ConfigError> {
        match uri.strip_prefix("s3://") {
            Some(rest) => match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    Ok(Self::S3 { bucket: bucket.into(), key: key.into() })
                }
                _ => {
                    Err(ConfigError::one("REGISTRY_CONFIG_URI", format!("{uri:?} is not of the form s3://bucket/key")))
                }
            },
            None => Ok(Self::File(uri.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed schema is the one the types give; `REGISTRY_WRITE_SCHEMA=1` rewrites it.
    #[test]
    fn the_committed_schema_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/config.v1.json");
        if std::env::var("REGISTRY_WRITE_SCHEMA").is_ok_and(|v| v == "1") {
            std::fs::write(path, json_schema()).unwrap();
        }
        assert!(
            SCHEMA == json_schema(),
            "schema/config.v1.json is stale: run `REGISTRY_WRITE_SCHEMA=1 cargo nextest run the_committed_schema` and commit it"
        );
    }

    #[test]
    fn uri_forms() {
        assert_eq!(
            ConfigSource::from_uri("s3://b/k/c.json").unwrap(),
            ConfigSource::S3 { bucket: "b".into(), key: "k/c.json".into() }
        );
        assert_eq!(ConfigSource::from_uri("./c.json").unwrap(), ConfigSource::File("./c.json".into()));
        assert!(ConfigSource::from_uri("s3://bucket-only").unwrap_err().to_string().contains("s3://bucket/key"));
    }
}
