//! Adapters: the ports of `run` and `plan` over the AWS SDK. The endpoint variables
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`) reach every client through the shared
//! `SdkConfig`, so nothing here knows whether it talks to AWS or to a local stack.

mod data_api;
mod organizations;
mod redshift;
mod s3;
mod sdk_error;
mod sqs;
mod sts;

pub use data_api::RedshiftData;
pub use organizations::OrganizationsDirectory;
pub use redshift::RedshiftDirectory;
pub use s3::S3Objects;
pub use sqs::SqsQueue;
pub use sts::{AssumedAccount, StsPlatform};

/// Loads the function's own AWS config from the environment (credentials, region, endpoints),
/// with retries for every client: throttling and 5xx from STS, Redshift, the Data API and S3 are
/// retried with jittered exponential backoff (200 ms doubling, capped at 10 s, 6 attempts) within
/// the SDK's retry quota; other errors are not retried.
pub async fn load_base_config() -> aws_config::SdkConfig {
    let retry = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(6)
        .with_initial_backoff(std::time::Duration::from_millis(200))
        .with_max_backoff(std::time::Duration::from_secs(10));
    aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(retry).load().await
}
