//! The wire: AWS errors as awsJson1_1 carries them, and the replies every handler builds. A leaf.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::Value;

pub type Reply = Response<Full<Bytes>>;

/// An AWS error as awsJson1_1 carries it.
#[derive(Debug)]
pub struct AwsError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl AwsError {
    pub fn validation(message: impl Into<String>) -> Self {
        Self { status: 400, code: "ValidationException", message: message.into() }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: 404, code: "ResourceNotFoundException", message: message.into() }
    }
}

pub fn json_reply(status: u16, body: &Value) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", format!("{:032x}", fastrand::u128(..)))
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

pub fn error_reply(e: &AwsError) -> Reply {
    let mut reply = json_reply(e.status, &serde_json::json!({"__type": e.code, "message": e.message}));
    reply.headers_mut().insert("x-amzn-errortype", e.code.parse().unwrap());
    reply
}

pub fn text_reply(status: StatusCode, text: String) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)))
        .unwrap()
}
