//! Adapters: the ports of `run` and `plan` over the AWS SDK. The endpoint variables
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`) reach every client through the shared
//! `SdkConfig`, so nothing here knows whether it talks to AWS or to a local stack.

mod data_api;
mod organizations;
mod redshift;
mod s3;
mod sqs;
mod sts;

use aws_sdk_redshift::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

pub use data_api::RedshiftData;
pub use organizations::OrganizationsDirectory;
pub use redshift::RedshiftDirectory;
pub use s3::S3Objects;
pub use sqs::SqsQueue;
pub use sts::{AssumedAccount, StsPlatform};

use crate::error::AwsError;

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

/// Classifies an SDK error by the service's code, or as unreachable when no response came.
fn aws_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = err.code().map(str::to_string);
    let message = match (&err, err.message()) {
        (_, Some(m)) => m.to_string(),
        (SdkError::ServiceError(_), None) => "no message".to_string(),
        (other, None) => DisplayErrorContext(other).to_string(),
    };
    AwsError::from_code(operation, code.as_deref(), message)
}
