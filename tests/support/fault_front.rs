//! A fault-injecting HTTP front placed between the SDK and moto: it forwards every request,
//! except those a rule matches, which get the rule's canned AWS error instead. This is how tests
//! produce what moto never does (denied roles, disabled regions, throttles) without any code path
//! in the function that exists only for tests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What a request is, as far as rules care.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub service: String,
    pub region: String,
    pub action: String,
    pub body: String,
    /// What went back: the canned error or moto's answer.
    pub status: u16,
    pub response: String,
}

#[derive(Clone)]
pub struct Rule {
    pub service: &'static str,
    pub action: Option<&'static str>,
    pub region: Option<&'static str>,
    pub body_contains: Option<String>,
    /// How many matching requests fail; `None` for all of them.
    pub times: Option<usize>,
    pub status: u16,
    pub code: &'static str,
    pub message: &'static str,
}

impl Rule {
    /// Every S3 request of `method` (whose body holds `body_contains`, when given) answers 500.
    pub fn s3_internal_error(method: &'static str, body_contains: Option<String>) -> Self {
        Self {
            service: "s3",
            action: Some(method),
            region: None,
            body_contains,
            times: None,
            status: 500,
            code: "InternalError",
            message: "injected",
        }
    }

    fn matches(&self, seen: &Seen) -> bool {
        self.service == seen.service
            && self.action.is_none_or(|a| a == seen.action)
            && self.region.is_none_or(|r| r == seen.region)
            && self.body_contains.as_deref().is_none_or(|b| seen.body.contains(b))
    }

    fn response(&self) -> Response<Full<Bytes>> {
        error_response(self.service, self.status, self.code, self.message)
    }
}

/// The error in the service's own shape: S3's `<Error>`, or the query protocol's
/// `<ErrorResponse>` (STS, Redshift).
fn error_response(service: &str, status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    let (parts, body) = error_parts(service, status, code, message);
    Response::from_parts(parts, Full::new(body))
}

fn error_parts(service: &str, status: u16, code: &str, message: &str) -> (hyper::http::response::Parts, Bytes) {
    let body = if service == "s3" {
        format!("<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault-front</RequestId></Error>")
    } else {
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>fault-front</RequestId></ErrorResponse>"
        )
    };
    let (parts, ()) =
        Response::builder().status(status).header("content-type", "text/xml").body(()).unwrap().into_parts();
    (parts, Bytes::from(body))
}

/// A change to what moto answered, for what AWS does and moto does not.
#[derive(Clone)]
pub struct Rewrite {
    service: &'static str,
    action: &'static str,
    path_suffix: Option<String>,
    /// Only when moto answered with this status.
    upstream_status: Option<u16>,
    change: Change,
}

#[derive(Clone)]
enum Change {
    Body { from: String, to: String },
    Error { status: u16, code: &'static str },
}

impl Rewrite {
    /// Replaces text in the body of a successful answer.
    pub fn body(service: &'static str, action: &'static str, from: &str, to: &str) -> Self {
        let change = Change::Body { from: from.into(), to: to.into() };
        Self { service, action, path_suffix: None, upstream_status: Some(200), change }
    }

    /// S3 without an unconditioned s3:ListBucket: "If you don't have the s3:ListBucket
    /// permission, Amazon S3 returns an HTTP status code 403 Access Denied error" for a missing
    /// key (GetObject API reference).
    pub fn missing_key_as_403() -> Self {
        let change = Change::Error { status: 403, code: "AccessDenied" };
        Self { service: "s3", action: "GET", path_suffix: None, upstream_status: Some(404), change }
    }

    /// Every GetObject of `key` is refused.
    pub fn error_on_get(key: &str, status: u16, code: &'static str) -> Self {
        let change = Change::Error { status, code };
        Self { service: "s3", action: "GET", path_suffix: Some(format!("/{key}")), upstream_status: None, change }
    }

    fn matches(&self, seen: &Seen) -> bool {
        self.service == seen.service
            && self.action == seen.action
            && self.path_suffix.as_deref().is_none_or(|p| seen.path.ends_with(p))
            && self.upstream_status.is_none_or(|s| s == seen.status)
    }

    fn apply(&self, mut parts: hyper::http::response::Parts, body: Bytes) -> (hyper::http::response::Parts, Bytes) {
        match &self.change {
            Change::Body { from, to } => {
                parts.headers.remove("content-length");
                (parts, Bytes::from(String::from_utf8_lossy(&body).replace(from.as_str(), to)))
            }
            Change::Error { status, code } => error_parts(self.service, *status, code, "rewritten by the fault front"),
        }
    }
}

struct State {
    upstream: String,
    rules: Mutex<Vec<(Rule, usize)>>,
    rewrites: Vec<Rewrite>,
    seen: Mutex<Vec<Seen>>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

#[derive(Clone)]
pub struct FaultFront {
    pub url: String,
    state: Arc<State>,
}

impl FaultFront {
    /// Starts a front for `upstream` on a free loopback port, in the current tokio runtime.
    pub async fn start(upstream: &str, rules: Vec<Rule>) -> Self {
        Self::launch(upstream, rules, Vec::new()).await
    }

    /// A front that forwards everything and changes the answers `rewrites` match.
    pub async fn start_rewriting(upstream: &str, rewrites: Vec<Rewrite>) -> Self {
        Self::launch(upstream, Vec::new(), rewrites).await
    }

    async fn launch(upstream: &str, rules: Vec<Rule>, rewrites: Vec<Rewrite>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            rules: Mutex::new(rules.into_iter().map(|r| (r, 0)).collect()),
            rewrites,
            seen: Mutex::new(Vec::new()),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let accept_state = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = accept_state.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Self { url: format!("http://{addr}"), state }
    }

    /// Requests seen so far, faulted or forwarded.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut seen = describe(&parts, &body);
    let fault = {
        let mut rules = state.rules.lock().unwrap();
        rules.iter_mut().find(|(r, used)| r.matches(&seen) && r.times.is_none_or(|t| *used < t)).map(|(r, used)| {
            *used += 1;
            r.response()
        })
    };
    if let Some(response) = fault {
        seen.status = response.status().as_u16();
        state.seen.lock().unwrap().push(seen);
        return Ok(response);
    }
    let uri = format!("{}{}", state.upstream, parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut forward = Request::builder().method(parts.method).uri(uri);
    for (name, value) in &parts.headers {
        forward = forward.header(name, value);
    }
    let response = state.client.request(forward.body(Full::new(body)).unwrap()).await.expect("moto answers");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    seen.status = parts.status.as_u16();
    let (parts, body) = match state.rewrites.iter().find(|r| r.matches(&seen)) {
        Some(rewrite) => rewrite.apply(parts, body),
        None => (parts, body),
    };
    seen.status = parts.status.as_u16();
    seen.response = String::from_utf8_lossy(&body).into_owned();
    state.seen.lock().unwrap().push(seen);
    Ok(Response::from_parts(parts, Full::new(body)))
}

fn describe(parts: &hyper::http::request::Parts, body: &Bytes) -> Seen {
    let auth = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    // Credential=AKID/date/region/service/aws4_request
    let scope: Vec<&str> = auth
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split(',').next())
        .map(|c| c.split('/').collect())
        .unwrap_or_default();
    let body = String::from_utf8_lossy(body).into_owned();
    let form = decode_form(&body);
    let action = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .map(str::to_string)
        .or_else(|| form.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone()))
        .unwrap_or_else(|| parts.method.to_string());
    Seen {
        method: parts.method.to_string(),
        path: percent_decode(parts.uri.path()),
        region: scope.get(2).copied().unwrap_or_default().to_string(),
        service: scope.get(3).copied().unwrap_or_default().to_string(),
        action,
        body: form.iter().map(|(k, v)| format!("{k}={v}&")).collect::<String>() + &body,
        status: 0,
        response: String::new(),
    }
}

fn decode_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
