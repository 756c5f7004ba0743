//! The delivery's body as API Gateway hands it over: its size limit, and the JSON inside a
//! GitHub form-encoded delivery.
//!
//! `lambda_http` has already base64-decoded an `isBase64Encoded` body, so everything here works
//! on the bytes the provider sent. Order in the handler: [`check_size`], then the signature
//! ([`crate::webhook::verify::verify_signature`]) over those raw bytes, then [`json_payload`]
//! and parsing. A form-encoded delivery is signed as sent (`payload=%7B…`), so it must be
//! verified before it is decoded.

use std::borrow::Cow;

/// The body size accepted when configuration says nothing: 1 MiB, well above any push or pull
/// request payload the providers send (GitHub caps its own deliveries at 25 MB, but real ones
/// are tens of kilobytes).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// The largest body a Lambda behind API Gateway can receive, and so the most configuration may
/// ask for: 4 MiB (4,194,304 bytes).
///
/// Derivation: Lambda's synchronous invocation payload is at most 6 MB (6,291,456 bytes) for the
/// whole event JSON, headers and request context included (API Gateway's own 10 MB limit is
/// larger, so Lambda's binds). A body API Gateway base64-encodes (any non-text content type)
/// grows by 4/3, so at most 6,291,456 × 3/4 = 4,718,592 bytes of body fit, minus the rest of
/// the event. Rounding down to 4 MiB leaves 524,288 bytes for headers and `requestContext`.
/// (A text body is JSON-escaped rather than base64-encoded; escaping of ordinary JSON payloads
/// costs a few percent, well inside that margin.)
pub const MAX_BODY_BYTES_LIMIT: usize = 4 << 20;

/// GitHub's form content type, whose `payload` field carries the JSON.
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// The form field holding the JSON in a GitHub form-encoded delivery.
const FORM_PAYLOAD_FIELD: &str = "payload";

/// What is wrong with a delivery's body as a whole (before its JSON is read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than the limit. HTTP 413.
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The body's size in bytes.
        size: usize,
        /// The limit applied, in bytes.
        limit: usize,
    },
    /// The body's framing is wrong (a form-encoded delivery without exactly one `payload`
    /// field). HTTP 400.
    #[error("malformed body: {reason}")]
    Malformed {
        /// What is wrong, in a few fixed words (never an excerpt of the body).
        reason: &'static str,
    },
}

/// Accepts a body of `len` bytes when it is at most `limit`, the limit being capped at
/// [`MAX_BODY_BYTES_LIMIT`] (a larger configured value could never be delivered anyway, and the
/// error then reports the cap).
pub fn check_size(len: usize, limit: usize) -> Result<(), BodyError> {
    let limit = limit.min(MAX_BODY_BYTES_LIMIT);
    if len > limit {
        Err(BodyError::TooLarge { size: len, limit })
    } else {
        Ok(())
    }
}

/// The JSON document of a delivery: the body itself, or for
/// `application/x-www-form-urlencoded` (GitHub's "Content type: form" setting) the decoded
/// `payload` field.
///
/// The content type is compared case-insensitively and without its parameters
/// (`; charset=utf-8`). Any other or no content type is taken to be JSON as is; a body that is
/// not JSON fails later in the provider's parser. Call this only after the signature was
/// verified over the raw body: the signature covers the form-encoded bytes, not the JSON.
pub fn json_payload<'a>(
    content_type: Option<&str>,
    body: &'a [u8],
) -> Result<Cow<'a, [u8]>, BodyError> {
    if !content_type.is_some_and(is_form_content_type) {
        return Ok(Cow::Borrowed(body));
    }
    let mut payloads = form_urlencoded::parse(body)
        .filter(|(name, _)| name == FORM_PAYLOAD_FIELD)
        .map(|(_, value)| value);
    let payload = payloads.next().ok_or(BodyError::Malformed {
        reason: "form-encoded body has no payload field",
    })?;
    // Two payloads would leave which one is meant to the parser's taste: refuse.
    if payloads.next().is_some() {
        return Err(BodyError::Malformed {
            reason: "form-encoded body has more than one payload field",
        });
    }
    Ok(Cow::Owned(payload.into_owned().into_bytes()))
}

/// True for `application/x-www-form-urlencoded`, whatever its case and parameters.
fn is_form_content_type(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case(FORM_CONTENT_TYPE)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const GITHUB_PUSH: &[u8] = include_bytes!("../../tests/fixtures/webhooks/github/push.json");
    const GITHUB_PING: &[u8] = include_bytes!("../../tests/fixtures/webhooks/github/ping.json");

    /// How GitHub form-encodes a delivery: `payload=` and the JSON, `application/x-www-form-
    /// urlencoded` style (spaces as `+`, everything else reserved percent-encoded).
    fn form_encode(json: &[u8]) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", std::str::from_utf8(json).unwrap())
            .finish()
            .into_bytes()
    }

    #[test]
    fn limits_are_what_the_derivation_says() {
        assert_eq!(DEFAULT_MAX_BODY_BYTES, 1_048_576);
        assert_eq!(MAX_BODY_BYTES_LIMIT, 4_194_304);
        // Base64 of the largest body still leaves room in Lambda's 6 MB event.
        let base64_len = MAX_BODY_BYTES_LIMIT.div_ceil(3) * 4;
        assert!(base64_len + 500_000 < 6_291_456, "{base64_len}");
    }

    #[test]
    fn size_limit_boundaries() {
        assert_eq!(check_size(0, 10), Ok(()));
        assert_eq!(check_size(10, 10), Ok(()));
        assert_eq!(
            check_size(11, 10),
            Err(BodyError::TooLarge {
                size: 11,
                limit: 10
            })
        );
        assert_eq!(
            check_size(DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES),
            Ok(())
        );
        assert_eq!(
            check_size(DEFAULT_MAX_BODY_BYTES + 1, DEFAULT_MAX_BODY_BYTES),
            Err(BodyError::TooLarge {
                size: DEFAULT_MAX_BODY_BYTES + 1,
                limit: DEFAULT_MAX_BODY_BYTES
            })
        );
        assert_eq!(
            check_size(1, 0),
            Err(BodyError::TooLarge { size: 1, limit: 0 })
        );
    }

    #[test]
    fn configured_limit_is_capped_at_what_lambda_can_receive() {
        assert_eq!(check_size(MAX_BODY_BYTES_LIMIT, usize::MAX), Ok(()));
        assert_eq!(
            check_size(MAX_BODY_BYTES_LIMIT + 1, usize::MAX),
            Err(BodyError::TooLarge {
                size: MAX_BODY_BYTES_LIMIT + 1,
                limit: MAX_BODY_BYTES_LIMIT
            })
        );
    }

    #[test]
    fn json_body_is_borrowed_unchanged() {
        for content_type in [
            None,
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("text/plain"),
        ] {
            let payload = json_payload(content_type, GITHUB_PUSH).unwrap();
            assert!(matches!(payload, Cow::Borrowed(_)), "{content_type:?}");
            assert_eq!(&*payload, GITHUB_PUSH);
        }
    }

    #[test]
    fn form_encoded_body_decodes_to_the_same_json_as_the_json_body() {
        for fixture in [GITHUB_PUSH, GITHUB_PING] {
            let form = form_encode(fixture);
            assert!(form.starts_with(b"payload=%7B"));
            for content_type in [
                "application/x-www-form-urlencoded",
                "Application/X-WWW-Form-URLEncoded",
                "application/x-www-form-urlencoded; charset=utf-8",
                " application/x-www-form-urlencoded ;charset=UTF-8",
            ] {
                let decoded = json_payload(Some(content_type), &form).unwrap();
                assert_eq!(&*decoded, fixture, "{content_type}");
            }
            let as_json: serde_json::Value = serde_json::from_slice(fixture).unwrap();
            let from_form: serde_json::Value =
                serde_json::from_slice(&json_payload(Some(FORM_CONTENT_TYPE), &form).unwrap())
                    .unwrap();
            assert_eq!(as_json, from_form);
        }
    }

    #[test]
    fn form_decoding_handles_plus_and_percent_escapes_and_other_fields() {
        let body = b"other=1&payload=%7B%22a%22%3A+%22b%2Bc%20d%22%7D&more=2";
        let decoded = json_payload(Some(FORM_CONTENT_TYPE), body).unwrap();
        assert_eq!(&*decoded, br#"{"a": "b+c d"}"#);
    }

    #[test]
    fn form_without_exactly_one_payload_is_malformed() {
        let bodies: [&[u8]; 4] = [
            b"",
            b"payloads=%7B%7D",
            b"Payload=%7B%7D",
            b"{\"zen\":\"json sent as form\"}",
        ];
        for body in bodies {
            assert!(
                matches!(
                    json_payload(Some(FORM_CONTENT_TYPE), body),
                    Err(BodyError::Malformed { .. })
                ),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            json_payload(Some(FORM_CONTENT_TYPE), b"payload=%7B%7D&payload=%5B%5D"),
            Err(BodyError::Malformed {
                reason: "form-encoded body has more than one payload field"
            })
        );
    }
}
