//! S3: the config object and the run's outputs.

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use time::OffsetDateTime;

use super::sdk_error::aws_error;
use crate::error::AwsError;
use crate::ports::{Condition, Listed, Object, ObjectStore};

#[derive(Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
}

impl S3Objects {
    pub fn new(config: &SdkConfig, force_path_style: bool) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(force_path_style).build();
        Self { client: aws_sdk_s3::Client::from_conf(s3) }
    }
}

impl ObjectStore for S3Objects {
    async fn get(&self, bucket: &str, key: &str) -> Result<Object, AwsError> {
        let out =
            self.client.get_object().bucket(bucket).key(key).send().await.map_err(|e| aws_error("s3:GetObject", e))?;
        let etag = out.e_tag().unwrap_or_default().to_string();
        let body = out.body.collect().await.map_err(|e| {
            AwsError::from_code("s3:GetObject", None, format!("reading the body of s3://{bucket}/{key}: {e}"))
        })?;
        Ok(Object { bytes: body.into_bytes().to_vec(), etag })
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: Condition<'_>,
    ) -> Result<(), AwsError> {
        let request = self.client.put_object().bucket(bucket).key(key).content_type(content_type);
        let request = match condition {
            Condition::Any => request,
            Condition::Absent => request.if_none_match("*"),
            Condition::Unchanged(etag) => request.if_match(etag),
        };
        request.body(ByteStream::from(body)).send().await.map_err(|e| conditional(aws_error("s3:PutObject", e)))?;
        Ok(())
    }

    async fn list_modified(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, AwsError> {
        let mut pages = self.client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
        let mut listed = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("s3:ListObjectsV2", e))?;
            listed.extend(page.contents().iter().filter_map(|o| {
                // An object without a time is taken as just written: it is then never too old to keep.
                let modified = o.last_modified().and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok());
                Some(Listed { key: o.key()?.to_string(), modified: modified.unwrap_or_else(OffsetDateTime::now_utc) })
            }));
        }
        Ok(listed)
    }

    /// DeleteObjects, 1000 keys a call; any key S3 could not delete is an error.
    async fn delete(&self, bucket: &str, keys: &[String]) -> Result<(), AwsError> {
        for chunk in keys.chunks(1000) {
            let objects =
                chunk.iter().map(|k| ObjectIdentifier::builder().key(k).build().expect("a key is set")).collect();
            let delete = Delete::builder().set_objects(Some(objects)).quiet(true).build().expect("objects are set");
            let out = self
                .client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| aws_error("s3:DeleteObjects", e))?;
            if let Some(e) = out.errors().first() {
                return Err(AwsError::from_code(
                    "s3:DeleteObjects",
                    e.code(),
                    format!(
                        "{} of {} keys not deleted, first {:?}: {}",
                        out.errors().len(),
                        chunk.len(),
                        e.key(),
                        e.message().unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// An If-Match write whose key is gone answers 404 NoSuchKey (API reference, PutObject): for a
/// conditional write that is the same as a changed key, another writer's doing.
fn conditional(error: AwsError) -> AwsError {
    match error.code.as_str() {
        "NoSuchKey" => AwsError { kind: crate::error::ErrorKind::Conflict, ..error },
        _ => error,
    }
}
