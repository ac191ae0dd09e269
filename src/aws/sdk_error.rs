//! One mapping from an SDK error to the crate's [`AwsError`], for every client.

use aws_sdk_redshift::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::error::AwsError;

/// Classifies an SDK error by the service's code, or as unreachable when no response came.
pub(super) fn aws_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> AwsError
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
