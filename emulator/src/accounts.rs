//! The AWS account a request acts in. AWS resolves a request's access key to its account; here
//! moto's STS does (GetCallerIdentity, https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html):
//! it maps an assumed role's keys to the role's account and any other key to its default one.
//! moto does not check signatures, so the key alone is sent.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};

use crate::wire::AwsError;

pub struct Accounts {
    sts: String,
    client: Client<HttpConnector, Full<Bytes>>,
    by_key: Mutex<HashMap<String, String>>,
}

impl Accounts {
    pub fn new(sts_endpoint: &str) -> Self {
        Self {
            sts: sts_endpoint.trim_end_matches('/').to_string(),
            client: Client::builder(hyper_util::rt::TokioExecutor::new()).build_http(),
            by_key: Mutex::new(HashMap::new()),
        }
    }

    /// The account of the access key a request was signed with, cached per key.
    pub async fn of(&self, headers: &hyper::HeaderMap) -> Result<String, AwsError> {
        // Common errors (https://docs.aws.amazon.com/redshift-data/latest/APIReference/CommonErrors.html).
        let key = credential_scope(headers).and_then(|c| c.split('/').next().map(str::to_string)).ok_or_else(|| {
            AwsError { status: 403, code: "MissingAuthenticationToken", message: "no SigV4 credential".into() }
        })?;
        if let Some(account) = self.by_key.lock().unwrap().get(&key) {
            return Ok(account.clone());
        }
        let account = self.caller_identity(&key).await?;
        self.by_key.lock().unwrap().insert(key, account.clone());
        Ok(account)
    }

    async fn caller_identity(&self, key: &str) -> Result<String, AwsError> {
        let internal = |e: String| AwsError { status: 500, code: "InternalFailure", message: format!("STS: {e}") };
        let req = hyper::Request::post(format!("{}/", self.sts))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential={key}/20240101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0"),
            )
            .body(Full::new(Bytes::from_static(b"Action=GetCallerIdentity&Version=2011-06-15")))
            .map_err(|e| internal(e.to_string()))?;
        let res = self.client.request(req).await.map_err(|e| internal(e.to_string()))?;
        let body = res.into_body().collect().await.map_err(|e| internal(e.to_string()))?.to_bytes();
        let text = String::from_utf8_lossy(&body);
        text.split("<Account>").nth(1).and_then(|r| r.split("</Account>").next()).map(str::to_string).ok_or_else(|| {
            AwsError {
                status: 403,
                code: "InvalidClientTokenId",
                message: format!("The security token included in the request is invalid: {text}"),
            }
        })
    }
}

/// The SigV4 credential scope: `Credential=AKID/date/region/service/aws4_request`.
pub fn credential_scope(headers: &hyper::HeaderMap) -> Option<&str> {
    headers.get("authorization")?.to_str().ok()?.split("Credential=").nth(1)?.split([',', ' ']).next()
}
