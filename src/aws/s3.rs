//! S3: the config object and the run's outputs.

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::aws_error;
use crate::error::AwsError;
use crate::ports::ObjectStore;

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
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, AwsError> {
        let out =
            self.client.get_object().bucket(bucket).key(key).send().await.map_err(|e| aws_error("s3:GetObject", e))?;
        let body = out.body.collect().await.map_err(|e| {
            AwsError::from_code("s3:GetObject", None, format!("reading the body of s3://{bucket}/{key}: {e}"))
        })?;
        Ok(body.into_bytes().to_vec())
    }

    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), AwsError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| aws_error("s3:PutObject", e))?;
        Ok(())
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, AwsError> {
        let mut pages = self.client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("s3:ListObjectsV2", e))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        }
        Ok(keys)
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
