//! Every environment variable the function reads, in one place: the values the deployment fixes
//! (template parameters), where the config is, and how the process logs and reports metrics.
//! `main.rs` reads them per invocation, so a changed config applies without a redeploy; the
//! library takes them as values, and tests build their own. A leaf.

/// The environment as the function uses it; an empty or blank variable is an absent one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `REGISTRY_OUTPUT_BUCKET`, `REGISTRY_OUTPUT_PREFIX`, `REGISTRY_ROLE_NAME`: what the
    /// function's IAM policy is scoped to.
    pub output_bucket: Option<String>,
    pub output_prefix: Option<String>,
    pub role_name: Option<String>,
    /// `AWS_REGION`: the function's own region, whose partition every ARN must share.
    pub region: Option<String>,
    /// `REGISTRY_QUEUE_URL`, `REGISTRY_MAX_RECEIVE_COUNT`: the shard queue, with fan-out.
    pub queue_url: Option<String>,
    pub max_receive_count: Option<String>,
    /// `REGISTRY_CONFIG` (the JSON itself) or `REGISTRY_CONFIG_URI` (s3:// or a file path).
    pub config: Option<String>,
    pub config_uri: Option<String>,
    /// `REGISTRY_S3_FORCE_PATH_STYLE` true or 1: path-style S3 addressing, which S3 emulators and
    /// some VPC endpoint setups need.
    pub s3_force_path_style: bool,
    /// `AWS_LAMBDA_RUNTIME_API`: set inside Lambda, where the function serves the Runtime API.
    pub lambda_runtime: bool,
    /// `AWS_LAMBDA_LOG_LEVEL` and `AWS_LAMBDA_LOG_FORMAT` (JSON when `json`): Lambda's advanced
    /// logging controls; `RUST_LOG`, when set, filters instead of the level.
    pub log_level: Option<String>,
    pub log_json: bool,
    pub rust_log: Option<String>,
    /// `REGISTRY_EMF=1`: outside Lambda, the EMF record is written to stderr too.
    pub emf_outside_lambda: bool,
    /// `REGISTRY_METRICS_NAMESPACE` and `AWS_LAMBDA_FUNCTION_NAME`: where the metrics go.
    pub metrics_namespace: Option<String>,
    pub function_name: Option<String>,
}

impl Environment {
    /// The process's environment.
    pub fn read() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The environment `var` gives, by variable name.
    pub(crate) fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let flag = |name: &str| get(name).is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        Self {
            output_bucket: get("REGISTRY_OUTPUT_BUCKET"),
            output_prefix: get("REGISTRY_OUTPUT_PREFIX"),
            role_name: get("REGISTRY_ROLE_NAME"),
            region: get("AWS_REGION"),
            queue_url: get("REGISTRY_QUEUE_URL"),
            max_receive_count: get("REGISTRY_MAX_RECEIVE_COUNT"),
            config: get("REGISTRY_CONFIG"),
            config_uri: get("REGISTRY_CONFIG_URI"),
            s3_force_path_style: flag("REGISTRY_S3_FORCE_PATH_STYLE"),
            lambda_runtime: get("AWS_LAMBDA_RUNTIME_API").is_some(),
            log_level: get("AWS_LAMBDA_LOG_LEVEL"),
            log_json: get("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json")),
            rust_log: get("RUST_LOG"),
            emf_outside_lambda: get("REGISTRY_EMF").is_some_and(|v| v == "1"),
            metrics_namespace: get("REGISTRY_METRICS_NAMESPACE"),
            function_name: get("AWS_LAMBDA_FUNCTION_NAME"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_variables_are_absent_and_flags_take_true_or_1() {
        let vars = [
            ("REGISTRY_OUTPUT_BUCKET", " "),
            ("REGISTRY_ROLE_NAME", "Reader"),
            ("REGISTRY_S3_FORCE_PATH_STYLE", "TRUE"),
            ("REGISTRY_EMF", "true"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ];
        let env = Environment::from_lookup(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()));
        assert_eq!(env.output_bucket, None);
        assert_eq!(env.role_name.as_deref(), Some("Reader"));
        assert!(env.s3_force_path_style && env.log_json && !env.lambda_runtime);
        assert!(!env.emf_outside_lambda, "REGISTRY_EMF takes 1 only");
    }
}
