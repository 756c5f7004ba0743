//! [`DelayQueue`] port over `aws-sdk-sqs`: one `SendMessage` per piece of work, its JSON as the
//! body and the delay as `DelaySeconds`.

use std::time::Duration;

use super::service_error::map_service_error;
use crate::ports::{DelayQueue, ServiceError};
use crate::retry::work::DelayedWork;

const SERVICE: &str = "sqs";

/// The SQS delay queue (cheap to clone: the SDK client is an `Arc`).
#[derive(Debug, Clone)]
pub struct SqsDelayQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDelayQueue {
    /// Wraps a configured SDK client and the queue's URL.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

impl DelayQueue for SqsDelayQueue {
    async fn send_later(&self, work: &DelayedWork, delay: Duration) -> Result<(), ServiceError> {
        const OP: &str = "SendMessage";
        let body = serde_json::to_string(work).map_err(|e| ServiceError::Rejected {
            service: SERVICE,
            operation: OP,
            message: format!("delayed work is not serialisable: {e}"),
        })?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(delay_seconds(delay, Self::MAX_DELAY))
            .send()
            .await
            .map_err(|e| map_service_error(SERVICE, OP, e))?;
        Ok(())
    }
}

/// Whole seconds, rounded up (a backoff must never come back early), at most `max`.
fn delay_seconds(delay: Duration, max: Duration) -> i32 {
    let rounded_up = delay
        .as_secs()
        .saturating_add(u64::from(delay.subsec_nanos() > 0));
    let clamped = rounded_up.min(max.as_secs());
    // `max` is SQS's 900 s, far inside `i32`; saturate rather than trust that.
    i32::try_from(clamped).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_and_clamp() {
        let max = Duration::from_secs(900);
        assert_eq!(delay_seconds(Duration::ZERO, max), 0);
        assert_eq!(delay_seconds(Duration::from_millis(1), max), 1);
        assert_eq!(delay_seconds(Duration::from_millis(2500), max), 3);
        assert_eq!(delay_seconds(Duration::from_secs(60), max), 60);
        assert_eq!(delay_seconds(Duration::from_secs(900), max), 900);
        assert_eq!(delay_seconds(Duration::from_millis(899_001), max), 900);
        assert_eq!(delay_seconds(Duration::from_secs(2000), max), 900);
        assert_eq!(delay_seconds(Duration::MAX, max), 900);
    }
}
