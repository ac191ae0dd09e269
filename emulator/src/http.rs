//! HTTP, on top: routes the awsJson1_1 operations by `X-Amz-Target` to their handlers, and the
//! control API under `/_emulator/`.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::accounts::credential_scope;
use crate::state::Emulator;
use crate::wire::{error_reply, json_reply, AwsError, Reply};

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
