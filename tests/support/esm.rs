//! A small stand-in for Lambda's SQS event source mapping: receives from moto's SQS one message
//! at a time, hands the function's handler an SQS event, deletes what succeeded and leaves the
//! batch item failures for redelivery (made visible again at once, where Lambda would wait out
//! the visibility timeout).

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use redshift_registry::aws::{S3Objects, SqsQueue, StsPlatform};
use redshift_registry::config::{ConfigSource, DeploymentDefaults};
use redshift_registry::invoke::{self, Response};
use serde_json::{json, Value};

use super::*;

pub struct Queue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
    pub dead_letters: String,
}

/// A queue with a dead-letter queue after `max_receive_count` deliveries, in the function's account.
pub async fn queue(endpoint: &str, name: &str, max_receive_count: u32) -> Queue {
    let client = aws_sdk_sqs::Client::new(&base_config(endpoint).await);
    let dlq = client.create_queue().queue_name(format!("{name}-dlq")).send().await.expect("CreateQueue");
    let dlq_url = dlq.queue_url().unwrap().to_string();
    let arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes");
    let dlq_arn = arn.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}).to_string();
    let queue = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .expect("CreateQueue");
    Queue { url: queue.queue_url().unwrap().to_string(), client, dead_letters: dlq_url }
}

/// The function's handler in-process, with real SDK clients against `endpoint`.
pub async fn invoke_function(endpoint: &str, config: &Value, payload: &Value) -> Response {
    let base = function_config(endpoint).await;
    let (platform, store, queue) = (StsPlatform::new(base.clone()), S3Objects::new(&base, true), SqsQueue::new(&base));
    let source = Ok(ConfigSource::Inline(config.to_string()));
    invoke::invoke(&platform, &store, &queue, payload, source, &DeploymentDefaults::default(), None)
        .await
        .expect("the invocation runs")
}

/// What one delivery did.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub body: String,
    pub receive_count: u32,
    pub failed: bool,
    /// Refused as forged, stale or junk: acknowledged, nothing read or written.
    pub refused: bool,
}

impl Queue {
    /// Delivers messages to the handler until the queue stays empty; returns every delivery.
    pub async fn drain(&self, endpoint: &str, config: &Value) -> Vec<Delivery> {
        let mut deliveries = Vec::new();
        let mut empty = 0;
        while empty < 2 && deliveries.len() < 200 {
            let Some(message) = self.receive().await else {
                empty += 1;
                continue;
            };
            empty = 0;
            deliveries.push(self.deliver(endpoint, config, message).await);
        }
        deliveries
    }

    async fn receive(&self) -> Option<aws_sdk_sqs::types::Message> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("ReceiveMessage");
        out.messages().first().cloned()
    }

    async fn deliver(&self, endpoint: &str, config: &Value, message: aws_sdk_sqs::types::Message) -> Delivery {
        let attributes: serde_json::Map<String, Value> = message
            .attributes()
            .map(|a| a.iter().map(|(k, v)| (k.as_str().to_string(), json!(v))).collect())
            .unwrap_or_default();
        let receive_count =
            attributes.get("ApproximateReceiveCount").and_then(|c| c.as_str()?.parse().ok()).unwrap_or(1);
        let event = json!({"Records": [{
            "messageId": message.message_id(), "receiptHandle": message.receipt_handle(), "body": message.body(),
            "attributes": attributes, "messageAttributes": {}, "md5OfBody": message.md5_of_body(),
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:shards", "awsRegion": "us-east-1"
        }]});
        let Response::Batch(batch) = invoke_function(endpoint, config, &event).await else {
            panic!("an SQS event gets a batch response")
        };
        let failed = !batch.response.batch_item_failures.is_empty();
        let handle = message.receipt_handle().unwrap();
        if failed {
            let visible = self.client.change_message_visibility().queue_url(&self.url).receipt_handle(handle);
            visible.visibility_timeout(0).send().await.expect("ChangeMessageVisibility");
        } else {
            self.client
                .delete_message()
                .queue_url(&self.url)
                .receipt_handle(handle)
                .send()
                .await
                .expect("DeleteMessage");
        }
        let refused = batch.refused > 0;
        Delivery { body: message.body().unwrap_or_default().to_string(), receive_count, failed, refused }
    }

    /// Bodies in the dead-letter queue.
    pub async fn dead_lettered(&self) -> usize {
        let out = self.client.receive_message().queue_url(&self.dead_letters).max_number_of_messages(10).send().await;
        out.expect("ReceiveMessage").messages().len()
    }
}
