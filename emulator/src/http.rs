//! HTTP: the awsJson1_1 operations by `X-Amz-Target`, and the control API under `/_emulator/`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::accounts::credential_scope;
use crate::control::Emulator;

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

fn error_reply(e: &AwsError) -> Reply {
    let mut reply = json_reply(e.status, &serde_json::json!({"__type": e.code, "message": e.message}));
    reply.headers_mut().insert("x-amzn-errortype", e.code.parse().unwrap());
    reply
}

pub async fn serve(listen: &str, state: Arc<Emulator>) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("listening on {listen}: {e}"))?;
    eprintln!("redshift-data-emulator listening on http://{}", listener.local_addr().unwrap());
    loop {
        let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

async fn handle(state: Arc<Emulator>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let path = parts.uri.path().to_string();
    if let Some(rest) = path.strip_prefix("/_emulator/") {
        return Ok(state.control(parts.method.as_str(), rest, &body).await);
    }
    Ok(state.count_bytes(aws_call(&state, &parts.headers, &body)).await)
}

async fn aws_call(state: &Emulator, headers: &hyper::HeaderMap, body: &[u8]) -> Reply {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let region = credential_scope(headers).and_then(|c| c.split('/').nth(2)).unwrap_or("us-east-1").to_string();
    let account = match state.accounts.of(headers).await {
        Ok(account) => account,
        Err(e) => return error_reply(&e),
    };
    let input: Value = match serde_json::from_slice(if body.is_empty() { b"{}" } else { body }) {
        Ok(v) => v,
        Err(e) => return error_reply(&AwsError::validation(format!("body is not JSON: {e}"))),
    };
    let result = match target.split_once('.') {
        Some(("RedshiftData", op)) => state.data_api(op, &account, &input).await,
        Some(("RedshiftServerless", op)) => state.serverless(op, &account, &region, &input).await,
        _ => Err(AwsError {
            status: 400,
            code: "UnknownOperationException",
            message: format!("unknown target {target:?}"),
        }),
    };
    match result {
        Ok(body) => json_reply(200, &body),
        Err(e) => error_reply(&e),
    }
}

pub fn text_reply(status: StatusCode, text: String) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)))
        .unwrap()
}
