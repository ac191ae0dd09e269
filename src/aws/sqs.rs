//! SQS: the shards of a fanned-out run, sent by the planner.

use aws_config::SdkConfig;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use super::sdk_error::aws_error;
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
        let ids: Vec<String> = (0..bodies.len()).map(|i| format!("m{i}")).collect();
        let entries: Vec<(&str, &str)> =
            ids.iter().map(String::as_str).zip(bodies.iter().map(String::as_str)).collect();
        for chunk in entries.chunks(BATCH) {
            self.send_batch(queue_url, chunk.to_vec()).await?;
        }
        Ok(())
    }
}

/// SendMessageBatch calls per chunk of 10, the first included.
const ATTEMPTS: u32 = 4;

impl SqsQueue {
    /// One SendMessageBatch, then again with only the entries SQS refused through no fault of
    /// the sender: a batch call answers 200 even when some entries were refused, each with
    /// `SenderFault` (SQS API reference, SendMessageBatch and BatchResultErrorEntry). Resending
    /// the whole batch would send the accepted ones twice.
    async fn send_batch(&self, queue_url: &str, mut pending: Vec<(&str, &str)>) -> Result<(), AwsError> {
        for attempt in 1..=ATTEMPTS {
            let entries = pending
                .iter()
                .map(|(id, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(*id)
                        .message_body(*body)
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
            let Some(first) = out.failed().first() else { return Ok(()) };
            let sender_fault = out.failed().iter().find(|f| f.sender_fault());
            if sender_fault.is_some() || attempt == ATTEMPTS {
                let failed = sender_fault.unwrap_or(first);
                return Err(AwsError::from_code(
                    "sqs:SendMessageBatch",
                    Some(failed.code()),
                    format!(
                        "{} of {} messages refused after {attempt} sends: {}",
                        out.failed().len(),
                        pending.len(),
                        failed.message().unwrap_or_default()
                    ),
                ));
            }
            let refused: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
            pending.retain(|(id, _)| refused.contains(id));
            tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
        }
        Ok(())
    }
}
