//! [`Notifier`] port over `aws-sdk-sns`: one `Publish` per "gave up" notice, its JSON as the
//! message, with `project` and `because` as message attributes so subscriptions can filter.

use aws_sdk_sns::types::MessageAttributeValue;

use super::service_error::map_service_error;
use crate::ports::{Notifier, ServiceError};
use crate::retry::work::{GaveUpBecause, GaveUpNotice};

const SERVICE: &str = "sns";
const OP: &str = "Publish";
/// SNS refuses a longer `Subject` (it becomes an e-mail subject line).
const SUBJECT_MAX_CHARS: usize = 100;
const SUBJECT_PREFIX: &str = "CodeBuild Autopilot gave up on ";

/// The SNS topic "gave up" notices go to (cheap to clone: the SDK client is an `Arc`).
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsNotifier {
    /// Wraps a configured SDK client and the topic's ARN.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// The topic's ARN.
    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }
}

impl Notifier for SnsNotifier {
    async fn gave_up(&self, notice: &GaveUpNotice) -> Result<(), ServiceError> {
        let message = serde_json::to_string(notice).map_err(|e| rejected(&e.to_string()))?;
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject(&notice.project))
            .message(message)
            .message_attributes("project", string_attribute(&notice.project)?)
            .message_attributes("because", string_attribute(&because_name(notice.because)?)?)
            .send()
            .await
            .map_err(|e| map_service_error(SERVICE, OP, e))?;
        Ok(())
    }
}

/// "CodeBuild Autopilot gave up on <project>", cut to what SNS accepts (project names may be
/// 255 characters long).
fn subject(project: &str) -> String {
    // SNS also wants printable ASCII without line breaks; project names are that already, but
    // the subject must never be the reason a notice is lost.
    let printable = project.chars().map(|c| {
        if c.is_ascii_graphic() || c == ' ' {
            c
        } else {
            '?'
        }
    });
    SUBJECT_PREFIX
        .chars()
        .chain(printable)
        .take(SUBJECT_MAX_CHARS)
        .collect()
}

/// The same snake_case name the notice's JSON carries (`retry_cap_reached`, ...).
fn because_name(because: GaveUpBecause) -> Result<String, ServiceError> {
    match serde_json::to_value(because) {
        Ok(serde_json::Value::String(name)) => Ok(name),
        Ok(other) => Err(rejected(&format!("reason serialised as {other}"))),
        Err(e) => Err(rejected(&e.to_string())),
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, ServiceError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| rejected(&e.to_string()))
}

fn rejected(message: &str) -> ServiceError {
    ServiceError::Rejected {
        service: SERVICE,
        operation: OP,
        message: format!("could not build the notice: {message}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn subjects_fit_sns() {
        assert_eq!(subject("web"), "CodeBuild Autopilot gave up on web");
        let long = "p".repeat(255);
        let cut = subject(&long);
        assert_eq!(cut.chars().count(), SUBJECT_MAX_CHARS);
        assert!(cut.starts_with(SUBJECT_PREFIX));
        assert_eq!(subject("a\nb"), "CodeBuild Autopilot gave up on a?b");
    }

    #[test]
    fn reasons_are_named_as_in_the_json() {
        assert_eq!(
            because_name(GaveUpBecause::RetryCapReached).unwrap(),
            "retry_cap_reached"
        );
        assert_eq!(
            because_name(GaveUpBecause::BreakerOpen).unwrap(),
            "breaker_open"
        );
    }
}
