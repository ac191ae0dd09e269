//! SQS: the shards of a fanned-out run, sent by the planner.

use aws_config::SdkConfig;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use super::aws_error;
use crate::error::AwsError;
use crate::ports::ShardQueue;

/// SendMessageBatch takes at most 10 messages (SQS API reference).
const BATCH: usize = 10;

#[derive(Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
}

impl SqsQueue {
    pub fn new(config: &SdkConfig) -> Self {
        Self { client: aws_sdk_sqs::Client::new(config) }
    }
}

impl ShardQueue for SqsQueue {
    async fn send(&self, queue_url: &str, bodies: Vec<String>) -> Result<(), AwsError> {
        for (n, chunk) in bodies.chunks(BATCH).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("m{}", n * BATCH + i))
                        .message_body(body)
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            let out = self
                .client
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| aws_error("sqs:SendMessageBatch", e))?;
            // A batch call succeeds even when some of its messages were refused.
            if let Some(failed) = out.failed().first() {
                return Err(AwsError::from_code(
                    "sqs:SendMessageBatch",
                    Some(failed.code()),
                    format!(
                        "{} of {} messages refused: {}",
                        out.failed().len(),
                        chunk.len(),
                        failed.message().unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(())
    }
}
