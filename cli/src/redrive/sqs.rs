//! [`Queues`] over `aws-sdk-sqs`.

use std::collections::HashMap;

use autopilot::ports::ServiceError;
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};

use super::{DeadMessage, MessageAttribute, Queues};
use autopilot::aws::map_service_error;

/// The queues of one account and region.
#[derive(Debug, Clone)]
pub struct SqsQueues {
    client: aws_sdk_sqs::Client,
}

impl SqsQueues {
    /// Wraps a configured client.
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        Self { client }
    }
}

fn from_sdk(value: &MessageAttributeValue) -> MessageAttribute {
    MessageAttribute {
        data_type: value.data_type().to_owned(),
        string_value: value.string_value().map(str::to_owned),
        binary_value: value.binary_value().map(|b| b.as_ref().to_vec()),
    }
}

fn to_sdk(name: &str, attribute: &MessageAttribute) -> Result<MessageAttributeValue, ServiceError> {
    MessageAttributeValue::builder()
        .data_type(&attribute.data_type)
        .set_string_value(attribute.string_value.clone())
        .set_binary_value(attribute.binary_value.clone().map(Blob::new))
        .build()
        .map_err(|err| ServiceError::Rejected {
            service: "sqs",
            operation: "SendMessage",
            message: format!("message attribute {name}: {err}"),
        })
}

impl Queues for SqsQueues {
    async fn queue_url(&self, name_or_url: &str) -> Result<String, ServiceError> {
        if name_or_url.starts_with("https://") || name_or_url.starts_with("http://") {
            return Ok(name_or_url.to_owned());
        }
        let answer = self
            .client
            .get_queue_url()
            .queue_name(name_or_url)
            .send()
            .await
            .map_err(|err| map_service_error("sqs", "GetQueueUrl", err))?;
        answer
            .queue_url()
            .map(str::to_owned)
            .ok_or_else(|| ServiceError::Rejected {
                service: "sqs",
                operation: "GetQueueUrl",
                message: format!("no URL for queue {name_or_url}"),
            })
    }

    async fn source_queues(&self, dlq_url: &str) -> Result<Vec<String>, ServiceError> {
        let mut urls = Vec::new();
        let mut next_token = None;
        loop {
            let answer = self
                .client
                .list_dead_letter_source_queues()
                .queue_url(dlq_url)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|err| map_service_error("sqs", "ListDeadLetterSourceQueues", err))?;
            urls.extend(answer.queue_urls().iter().cloned());
            match answer.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(urls),
            }
        }
    }

    async fn receive(
        &self,
        queue_url: &str,
        max: u32,
        hold_seconds: u32,
    ) -> Result<Vec<DeadMessage>, ServiceError> {
        let answer = self
            .client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(i32::try_from(max).unwrap_or(10))
            .visibility_timeout(i32::try_from(hold_seconds).unwrap_or(300))
            // A short long-poll: asks every SQS server, so an empty answer means empty.
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .map_err(|err| map_service_error("sqs", "ReceiveMessage", err))?;
        Ok(answer
            .messages()
            .iter()
            .filter_map(|message| {
                let system = message.attributes();
                let system_attribute =
                    |name: MessageSystemAttributeName| system.and_then(|s| s.get(&name)).cloned();
                Some(DeadMessage {
                    message_id: message.message_id()?.to_owned(),
                    receipt_handle: message.receipt_handle()?.to_owned(),
                    body: message.body().unwrap_or_default().to_owned(),
                    attributes: message
                        .message_attributes()
                        .map(|attributes| {
                            attributes
                                .iter()
                                .map(|(name, value)| (name.clone(), from_sdk(value)))
                                .collect()
                        })
                        .unwrap_or_default(),
                    group_id: system_attribute(MessageSystemAttributeName::MessageGroupId),
                })
            })
            .collect())
    }

    async fn send(&self, queue_url: &str, message: &DeadMessage) -> Result<(), ServiceError> {
        let attributes = message
            .attributes
            .iter()
            .map(|(name, value)| Ok((name.clone(), to_sdk(name, value)?)))
            .collect::<Result<HashMap<_, _>, ServiceError>>()?;
        let mut request = self
            .client
            .send_message()
            .queue_url(queue_url)
            .message_body(&message.body)
            .set_message_attributes((!attributes.is_empty()).then_some(attributes));
        // A FIFO queue needs a group (the original's keeps its order) and a deduplication id:
        // the dead-lettered message's id, not the original deduplication id, which would make
        // SQS drop the redriven message as a duplicate of the first send within five minutes,
        // while a second redrive of the same message within five minutes is dropped as one.
        if queue_url.ends_with(".fifo") {
            request = request
                .message_group_id(message.group_id.as_deref().unwrap_or("redrive"))
                .message_deduplication_id(&message.message_id);
        }
        request
            .send()
            .await
            .map(drop)
            .map_err(|err| map_service_error("sqs", "SendMessage", err))
    }

    async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<(), ServiceError> {
        self.client
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map(drop)
            .map_err(|err| map_service_error("sqs", "DeleteMessage", err))
    }

    async fn release(&self, queue_url: &str, receipt_handle: &str) -> Result<(), ServiceError> {
        self.client
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .map(drop)
            .map_err(|err| map_service_error("sqs", "ChangeMessageVisibility", err))
    }
}
