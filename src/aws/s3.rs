//! S3: the config object and the run's outputs.

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;

use super::aws_error;
use crate::error::AwsError;
use crate::run::ObjectStore;

#[derive(Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
}

impl S3Objects {
    pub fn new(config: &SdkConfig, force_path_style: bool) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(force_path_style)
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(s3),
        }
    }
}

impl ObjectStore for S3Objects {
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, AwsError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| aws_error("s3:GetObject", e))?;
        let body = out.body.collect().await.map_err(|e| {
            AwsError::from_code(
                "s3:GetObject",
                None,
                format!("reading the body of s3://{bucket}/{key}: {e}"),
            )
        })?;
        Ok(body.into_bytes().to_vec())
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), AwsError> {
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
}
