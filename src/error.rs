//! Failures of calls to AWS, classified so the report can say what went wrong and what to do.

use serde::Serialize;

/// What kind of failure a call met; decides the hint and whether the scope counts as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    AccessDenied,
    RegionNotEnabled,
    Throttled,
    NotFound,
    Unreachable,
    /// Not reached before the Lambda deadline.
    Deadline,
    /// A conditional write found its key changed: another writer won.
    Conflict,
    Other,
}

/// A failed AWS call: the service's error code and message, or the transport's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {code}: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
}

impl AwsError {
    /// Classifies by the service's error code; codes are AWS's, common to STS, Redshift and S3.
    pub(crate) fn from_code(operation: &'static str, code: Option<&str>, message: String) -> Self {
        let kind = match code {
            Some("AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" | "AuthorizationError") => {
                ErrorKind::AccessDenied
            }
            // AWS answers calls into an opt-in region that is not enabled with an invalid-token
            // error: the credentials exist, just not there.
            Some(
                "InvalidClientTokenId"
                | "UnrecognizedClientException"
                | "AuthFailure"
                | "OptInRequired"
                | "RegionDisabledException",
            ) => ErrorKind::RegionNotEnabled,
            Some(
                "Throttling"
                | "ThrottlingException"
                | "ThrottledException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "SlowDown",
            ) => ErrorKind::Throttled,
            Some(
                "ClusterNotFound" | "ClusterNotFoundFault" | "NoSuchKey" | "NoSuchBucket" | "ResourceNotFoundException",
            ) => ErrorKind::NotFound,
            // S3 conditional writes: 412 when the condition fails, 409 when a concurrent write
            // to the key won first (API reference, PutObject).
            Some("PreconditionFailed" | "ConditionalRequestConflict") => ErrorKind::Conflict,
            Some(_) => ErrorKind::Other,
            None => ErrorKind::Unreachable,
        };
        Self { operation, kind, code: code.unwrap_or("Unreachable").to_string(), message }
    }
}

/// A failure as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
    pub hint: String,
}

impl Failure {
    /// Work not started because the invocation was about to run out of time.
    pub fn deadline(what: &str) -> Self {
        Self {
            kind: ErrorKind::Deadline,
            code: "Deadline".into(),
            message: format!("{what} not reached before the Lambda deadline"),
            hint: "nothing of it was changed; the next run reads it (README: A run is cut by the deadline)".into(),
        }
    }

    pub fn new(error: &AwsError, hint: String) -> Self {
        Self {
            kind: error.kind,
            code: error.code.clone(),
            message: format!("{}: {}", error.operation, error.message),
            hint,
        }
    }
}
