//! CodeBuild's idempotency tokens: same token + same parameters within five minutes → the
//! first result; same token + other parameters → a mismatch error; afterwards the token is free.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use crate::error::ApiError;

/// How long a token is remembered (the service documents five minutes).
pub const WINDOW: TimeDelta = TimeDelta::minutes(5);

#[derive(Debug, Clone)]
struct Entry {
    parameters: Value,
    resource_id: String,
    at: DateTime<Utc>,
}

/// What a token lookup decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenUse {
    /// Unknown or expired token (or none given): do the work, then `record` it.
    Fresh,
    /// Same token, same parameters, inside the window: answer with this resource id.
    Replay(String),
}

/// Tokens seen, per operation.
#[derive(Debug, Default)]
pub struct Tokens {
    entries: HashMap<(String, String), Entry>,
}

impl Tokens {
    /// Looks `token` up for `operation` with the request's `parameters` (the body minus the token).
    pub fn check(
        &mut self,
        operation: &str,
        token: Option<&str>,
        parameters: &Value,
        now: DateTime<Utc>,
    ) -> Result<TokenUse, ApiError> {
        let Some(token) = token else {
            return Ok(TokenUse::Fresh);
        };
        let key = (operation.to_owned(), token.to_owned());
        let Some(entry) = self.entries.get(&key) else {
            return Ok(TokenUse::Fresh);
        };
        if now - entry.at >= WINDOW {
            self.entries.remove(&key);
            return Ok(TokenUse::Fresh);
        }
        if &entry.parameters == parameters {
            Ok(TokenUse::Replay(entry.resource_id.clone()))
        } else {
            // The real wording is not documented beyond "parameter mismatch"; this names both
            // the token and the mismatch so callers can tell it apart from other bad input.
            Err(ApiError::invalid_input(format!(
                "Idempotency token mismatch: the idempotency token {token} was already used \
                 with different request parameters"
            )))
        }
    }

    /// Remembers that `token` created `resource_id`.
    pub fn record(
        &mut self,
        operation: &str,
        token: Option<&str>,
        parameters: Value,
        resource_id: &str,
        now: DateTime<Utc>,
    ) {
        if let Some(token) = token {
            self.entries.insert(
                (operation.to_owned(), token.to_owned()),
                Entry {
                    parameters,
                    resource_id: resource_id.to_owned(),
                    at: now,
                },
            );
        }
    }
}

/// The request body without `idempotencyToken`: what "same parameters" compares.
pub fn parameters_of(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("idempotencyToken");
    }
    body
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn replay_mismatch_and_expiry() {
        let mut tokens = Tokens::default();
        let t0 = Utc::now();
        let p = json!({"id": "a"});
        assert_eq!(
            tokens.check("RetryBuild", Some("t"), &p, t0).unwrap(),
            TokenUse::Fresh
        );
        tokens.record("RetryBuild", Some("t"), p.clone(), "b1", t0);
        assert_eq!(
            tokens.check("RetryBuild", Some("t"), &p, t0).unwrap(),
            TokenUse::Replay("b1".into())
        );
        let err = tokens
            .check("RetryBuild", Some("t"), &json!({"id": "z"}), t0)
            .unwrap_err();
        assert_eq!(err.code, "InvalidInputException");
        assert!(err.message.contains("idempotency token") && err.message.contains("mismatch"));
        // Another operation does not share the token.
        assert_eq!(
            tokens.check("StartBuild", Some("t"), &p, t0).unwrap(),
            TokenUse::Fresh
        );
        assert_eq!(
            tokens
                .check("RetryBuild", Some("t"), &p, t0 + WINDOW)
                .unwrap(),
            TokenUse::Fresh
        );
    }
}
