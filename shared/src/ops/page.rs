//! The `nextToken` of `GET /projects/{name}/batches`.
//!
//! The CodeBuild port lists a project's batches a CodeBuild page at a time (up to 100 ids),
//! while callers ask for `maxResults` of them. The ops API's token says where the answer
//! stopped: the CodeBuild page's own token (`None` for the first page) and the last batch id
//! returned from it. Anchoring on that id rather than on a position means batches started
//! between two requests (they come first, newest first) shift nothing: nothing is skipped.
//!
//! On the wire the token is opaque: base64url (no padding) of a small JSON object, safe in a
//! query string without escaping.

use serde::{Deserialize, Serialize};

use crate::http::ApiError;

/// Longest `nextToken` accepted, encoded.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Where a page of batches ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageToken {
    /// CodeBuild's `nextToken` of the page being read (`None`: the first page).
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub codebuild: Option<String>,
    /// The last batch id (`project:uuid`) already returned from that page (`None`: none yet).
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl PageToken {
    /// The opaque text handed to the caller.
    pub fn encode(&self) -> String {
        // A struct of two optional strings always serialises.
        let json = serde_json::to_vec(self).unwrap_or_default();
        aws_smithy_types::base64::encode(json)
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_")
    }

    /// Reads a token the caller passed back; 400 when it is not one of ours.
    pub fn decode(text: &str) -> Result<Self, ApiError> {
        let invalid = || ApiError::BadRequest("nextToken is not a token this API gave".into());
        if text.is_empty() || text.len() > MAX_TOKEN_LEN {
            return Err(invalid());
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid());
        }
        let mut standard = text.replace('-', "+").replace('_', "/");
        while !standard.len().is_multiple_of(4) {
            standard.push('=');
        }
        let json = aws_smithy_types::base64::decode(&standard).map_err(|_| invalid())?;
        serde_json::from_slice(&json).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn round_trips_and_is_query_safe() {
        for token in [
            PageToken {
                codebuild: None,
                after: Some("web:00000000-0000-4000-8000-000000000001".into()),
            },
            PageToken {
                codebuild: Some("AAAB+/==xyz?&".into()),
                after: None,
            },
        ] {
            let text = token.encode();
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{text}"
            );
            assert_eq!(PageToken::decode(&text).unwrap(), token);
        }
    }

    #[test]
    fn foreign_tokens_are_400() {
        let other_json = aws_smithy_types::base64::encode(r#"{"x":1}"#);
        for bad in [
            "",
            "not base64!",
            "bm90IGpzb24",
            other_json.trim_end_matches('='),
            &"A".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(
                matches!(PageToken::decode(bad), Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
    }
}
