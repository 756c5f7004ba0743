//! [`BuildLogs`] port over `aws-sdk-cloudwatchlogs`: the tail of a build's stream, read
//! backwards from its end with `GetLogEvents`.

use super::service_error::map_service_error;
use crate::model::LogLocation;
use crate::ports::{BuildLogs, ServiceError};

const SERVICE: &str = "logs";
const OP: &str = "GetLogEvents";
/// Most events one `GetLogEvents` returns.
const MAX_LIMIT: u32 = 10_000;
/// A page is also cut at 1 MB, so a tail of long lines can take more than one page; reading
/// a log is a diagnostic nicety, so a few pages are enough.
const MAX_PAGES: usize = 4;

/// CloudWatch Logs (cheap to clone: the SDK client is an `Arc`).
#[derive(Debug, Clone)]
pub struct CloudWatchBuildLogs {
    client: aws_sdk_cloudwatchlogs::Client,
}

impl CloudWatchBuildLogs {
    /// Wraps a configured SDK client.
    pub fn new(client: aws_sdk_cloudwatchlogs::Client) -> Self {
        Self { client }
    }
}

impl BuildLogs for CloudWatchBuildLogs {
    async fn tail(&self, location: &LogLocation, lines: u32) -> Result<Vec<String>, ServiceError> {
        let wanted = lines.min(MAX_LIMIT);
        let wanted_len = usize::try_from(wanted).unwrap_or(usize::MAX);
        // Pages newest first, each oldest first inside.
        let mut pages: Vec<Vec<String>> = Vec::new();
        let mut collected = 0usize;
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            if collected >= wanted_len {
                break;
            }
            let remaining = i32::try_from(wanted_len - collected).unwrap_or(i32::MAX);
            let page = self
                .client
                .get_log_events()
                .log_group_name(&location.group)
                .log_stream_name(&location.stream)
                .start_from_head(false)
                .limit(remaining)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| map_service_error(SERVICE, OP, e))?;
            let messages: Vec<String> = page
                .events()
                .iter()
                .map(|event| {
                    event
                        .message()
                        .unwrap_or_default()
                        .trim_end_matches(['\n', '\r'])
                        .to_owned()
                })
                .collect();
            let next = page.next_backward_token().map(str::to_owned);
            let exhausted = messages.is_empty() || next.is_none() || next == token;
            collected += messages.len();
            pages.push(messages);
            if exhausted {
                break;
            }
            token = next;
        }
        let mut tail: Vec<String> = pages.into_iter().rev().flatten().collect();
        // Never more than asked, even if a page returned more than its limit.
        let excess = tail.len().saturating_sub(wanted_len);
        tail.drain(..excess);
        Ok(tail)
    }
}
