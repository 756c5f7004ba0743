//! From a verified delivery's headers and body to what it means: the event type and delivery
//! id from the provider's headers, the JSON from the body, then the provider's own parser.
//!
//! Call [`understand`] only after [`crate::webhook::body::check_size`] and
//! [`crate::webhook::verify::verify_signature`] have accepted the raw body.

use lambda_http::http::HeaderMap;
use lambda_http::http::header::CONTENT_TYPE;

use super::body::{BodyError, json_payload};
use super::{PayloadError, Provider, Understood, bitbucket, github, gitlab};

/// The longest event type or delivery id accepted. Delivery ids go into ledger keys and logs;
/// providers send UUIDs (36 characters), so 200 is generous.
pub const MAX_HEADER_CHARS: usize = 200;

/// GitHub's event type header.
pub const GITHUB_EVENT_HEADER: &str = "X-GitHub-Event";
/// GitHub's delivery id header (kept on redelivery).
pub const GITHUB_DELIVERY_HEADER: &str = "X-GitHub-Delivery";
/// GitLab's event type header.
pub const GITLAB_EVENT_HEADER: &str = "X-Gitlab-Event";
/// GitLab's id kept across its automatic retries; preferred as the delivery id.
pub const GITLAB_IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// GitLab's event UUID, the delivery id when `Idempotency-Key` is absent (older GitLab).
pub const GITLAB_EVENT_UUID_HEADER: &str = "X-Gitlab-Event-UUID";
/// Bitbucket Cloud's event type header.
pub const BITBUCKET_EVENT_HEADER: &str = "X-Event-Key";
/// Bitbucket Cloud's delivery id header.
pub const BITBUCKET_DELIVERY_HEADER: &str = "X-Request-UUID";

/// Named in [`DeliveryError::MissingHeader`] when GitLab sent neither id header.
const GITLAB_EITHER_ID_HEADER: &str = "Idempotency-Key or X-Gitlab-Event-UUID";

/// What a delivery's headers say it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryHeaders {
    /// The event type (`push`, `Merge Request Hook`, `repo:push`, …).
    pub event: String,
    /// The provider's delivery id, trimmed, at most [`MAX_HEADER_CHARS`] characters, with no
    /// control characters: safe in a ledger key.
    pub delivery_id: String,
}

/// Why a verified delivery could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// A header the provider always sends is absent. HTTP 400.
    #[error("missing header {header}")]
    MissingHeader {
        /// The header expected.
        header: &'static str,
    },
    /// A header is present but unusable (empty, not ASCII, too long, control characters).
    /// HTTP 400. The value itself is not repeated.
    #[error("bad header {header}: {reason}")]
    BadHeader {
        /// The header.
        header: &'static str,
        /// What is wrong, in a few fixed words.
        reason: &'static str,
    },
    /// The body as a whole: HTTP 413 for [`BodyError::TooLarge`], 400 for
    /// [`BodyError::Malformed`].
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The JSON is not what the event type promises. HTTP 400.
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

/// Reads the event type and delivery id a provider sends with every delivery:
/// GitHub `X-GitHub-Event` + `X-GitHub-Delivery`; GitLab `X-Gitlab-Event` + `Idempotency-Key`
/// (else `X-Gitlab-Event-UUID`); Bitbucket `X-Event-Key` + `X-Request-UUID`.
pub fn delivery_headers(
    provider: Provider,
    headers: &HeaderMap,
) -> Result<DeliveryHeaders, DeliveryError> {
    let (event_header, delivery_id) = match provider {
        Provider::GitHub => (
            GITHUB_EVENT_HEADER,
            required(headers, GITHUB_DELIVERY_HEADER)?,
        ),
        Provider::GitLab => {
            // GitLab keeps `Idempotency-Key` across its retries; fall back to the event UUID
            // only when the key is absent (a present but bad key is an error, not a fallback).
            let id = match optional(headers, GITLAB_IDEMPOTENCY_HEADER)? {
                Some(id) => id,
                None => optional(headers, GITLAB_EVENT_UUID_HEADER)?.ok_or(
                    DeliveryError::MissingHeader {
                        header: GITLAB_EITHER_ID_HEADER,
                    },
                )?,
            };
            (GITLAB_EVENT_HEADER, id)
        }
        Provider::Bitbucket => (
            BITBUCKET_EVENT_HEADER,
            required(headers, BITBUCKET_DELIVERY_HEADER)?,
        ),
    };
    let event = required(headers, event_header)?;
    Ok(DeliveryHeaders { event, delivery_id })
}

/// Turns a verified delivery into what it means: reads [`delivery_headers`], takes the JSON out
/// of the body ([`json_payload`] for GitHub, whose deliveries may be form-encoded; GitLab and
/// Bitbucket always send JSON), and hands both to the provider's parser.
pub fn understand(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Understood, DeliveryError> {
    let delivery = delivery_headers(provider, headers)?;
    let understood = match provider {
        Provider::GitHub => {
            let content_type = match headers.get(CONTENT_TYPE) {
                Some(value) => Some(value.to_str().map_err(|_| DeliveryError::BadHeader {
                    header: "Content-Type",
                    reason: "not ASCII",
                })?),
                None => None,
            };
            let json = json_payload(content_type, body)?;
            github::parse(&delivery.event, &delivery.delivery_id, &json)?
        }
        Provider::GitLab => gitlab::parse(&delivery.event, &delivery.delivery_id, body)?,
        Provider::Bitbucket => bitbucket::parse(&delivery.event, &delivery.delivery_id, body)?,
    };
    Ok(understood)
}

/// The checked value of a header that must be present.
fn required(headers: &HeaderMap, header: &'static str) -> Result<String, DeliveryError> {
    optional(headers, header)?.ok_or(DeliveryError::MissingHeader { header })
}

/// The checked value of a header, `None` when absent.
fn optional(headers: &HeaderMap, header: &'static str) -> Result<Option<String>, DeliveryError> {
    let Some(value) = headers.get(header) else {
        return Ok(None);
    };
    let bad = |reason| DeliveryError::BadHeader { header, reason };
    let text = value.to_str().map_err(|_| bad("not ASCII"))?.trim();
    if text.is_empty() {
        return Err(bad("empty"));
    }
    if text.chars().count() > MAX_HEADER_CHARS {
        return Err(bad("longer than 200 characters"));
    }
    if text.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    Ok(Some(text.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use lambda_http::http::{HeaderName, HeaderValue};

    const GITHUB_PUSH: &[u8] = include_bytes!("../../tests/fixtures/webhooks/github/push.json");
    const GITHUB_PING: &[u8] = include_bytes!("../../tests/fixtures/webhooks/github/ping.json");
    const GITLAB_PUSH: &[u8] = include_bytes!("../../tests/fixtures/webhooks/gitlab/push.json");
    const BITBUCKET_PUSH: &[u8] =
        include_bytes!("../../tests/fixtures/webhooks/bitbucket/repo_push.json");

    const UUID: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ids(event: &str, delivery_id: &str) -> DeliveryHeaders {
        DeliveryHeaders {
            event: event.to_owned(),
            delivery_id: delivery_id.to_owned(),
        }
    }

    #[test]
    fn github_headers() {
        let h = headers(&[("x-github-event", "push"), ("X-GitHub-Delivery", UUID)]);
        assert_eq!(
            delivery_headers(Provider::GitHub, &h),
            Ok(ids("push", UUID))
        );
    }

    #[test]
    fn bitbucket_headers() {
        let h = headers(&[("X-Event-Key", "repo:push"), ("X-Request-UUID", UUID)]);
        assert_eq!(
            delivery_headers(Provider::Bitbucket, &h),
            Ok(ids("repo:push", UUID))
        );
    }

    #[test]
    fn gitlab_prefers_idempotency_key_and_falls_back_to_event_uuid() {
        let both = headers(&[
            ("X-Gitlab-Event", "Push Hook"),
            ("Idempotency-Key", "key-kept-across-retries"),
            ("X-Gitlab-Event-UUID", UUID),
        ]);
        assert_eq!(
            delivery_headers(Provider::GitLab, &both),
            Ok(ids("Push Hook", "key-kept-across-retries"))
        );
        let uuid_only = headers(&[
            ("X-Gitlab-Event", "Push Hook"),
            ("X-Gitlab-Event-UUID", UUID),
        ]);
        assert_eq!(
            delivery_headers(Provider::GitLab, &uuid_only),
            Ok(ids("Push Hook", UUID))
        );
        let neither = headers(&[("X-Gitlab-Event", "Push Hook")]);
        assert_eq!(
            delivery_headers(Provider::GitLab, &neither),
            Err(DeliveryError::MissingHeader {
                header: "Idempotency-Key or X-Gitlab-Event-UUID"
            })
        );
        // A present but unusable key is an error, not a reason to use the other header.
        let bad_key = headers(&[
            ("X-Gitlab-Event", "Push Hook"),
            ("Idempotency-Key", "   "),
            ("X-Gitlab-Event-UUID", UUID),
        ]);
        assert_eq!(
            delivery_headers(Provider::GitLab, &bad_key),
            Err(DeliveryError::BadHeader {
                header: "Idempotency-Key",
                reason: "empty"
            })
        );
    }

    #[test]
    fn missing_headers_are_named() {
        let cases = [
            (
                Provider::GitHub,
                vec![("X-GitHub-Delivery", UUID)],
                "X-GitHub-Event",
            ),
            (
                Provider::GitHub,
                vec![("X-GitHub-Event", "push")],
                "X-GitHub-Delivery",
            ),
            (
                Provider::GitLab,
                vec![("X-Gitlab-Event-UUID", UUID)],
                "X-Gitlab-Event",
            ),
            (
                Provider::Bitbucket,
                vec![("X-Request-UUID", UUID)],
                "X-Event-Key",
            ),
            (
                Provider::Bitbucket,
                vec![("X-Event-Key", "repo:push")],
                "X-Request-UUID",
            ),
            // Another provider's headers do not count.
            (
                Provider::Bitbucket,
                vec![("X-GitHub-Event", "push"), ("X-GitHub-Delivery", UUID)],
                "X-Request-UUID",
            ),
        ];
        for (provider, pairs, header) in cases {
            assert_eq!(
                delivery_headers(provider, &headers(&pairs)),
                Err(DeliveryError::MissingHeader { header }),
                "{provider} {pairs:?}"
            );
        }
    }

    #[test]
    fn delivery_ids_unsafe_for_ledger_keys_are_rejected() {
        let at_limit = "a".repeat(MAX_HEADER_CHARS);
        let over = "a".repeat(MAX_HEADER_CHARS + 1);
        let h = headers(&[("X-GitHub-Event", "push"), ("X-GitHub-Delivery", &at_limit)]);
        assert_eq!(
            delivery_headers(Provider::GitHub, &h).unwrap().delivery_id,
            at_limit
        );
        let h = headers(&[("X-GitHub-Event", "push"), ("X-GitHub-Delivery", &over)]);
        assert_eq!(
            delivery_headers(Provider::GitHub, &h),
            Err(DeliveryError::BadHeader {
                header: "X-GitHub-Delivery",
                reason: "longer than 200 characters"
            })
        );
        let h = headers(&[("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "a\tb")]);
        assert_eq!(
            delivery_headers(Provider::GitHub, &h),
            Err(DeliveryError::BadHeader {
                header: "X-GitHub-Delivery",
                reason: "contains control characters"
            })
        );
        let mut h = headers(&[("X-GitHub-Event", "push")]);
        h.insert(
            "X-GitHub-Delivery",
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        assert_eq!(
            delivery_headers(Provider::GitHub, &h),
            Err(DeliveryError::BadHeader {
                header: "X-GitHub-Delivery",
                reason: "not ASCII"
            })
        );
        let h = headers(&[("X-GitHub-Event", ""), ("X-GitHub-Delivery", UUID)]);
        assert_eq!(
            delivery_headers(Provider::GitHub, &h),
            Err(DeliveryError::BadHeader {
                header: "X-GitHub-Event",
                reason: "empty"
            })
        );
    }

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        let h = headers(&[
            ("X-Event-Key", " repo:push "),
            ("X-Request-UUID", &format!(" {UUID}\t")),
        ]);
        assert_eq!(
            delivery_headers(Provider::Bitbucket, &h),
            Ok(ids("repo:push", UUID))
        );
    }

    #[test]
    fn error_statuses_are_told_apart_by_variant() {
        let too_large: DeliveryError = BodyError::TooLarge { size: 2, limit: 1 }.into();
        assert!(matches!(
            too_large,
            DeliveryError::Body(BodyError::TooLarge { .. })
        ));
        let payload = PayloadError {
            provider: Provider::GitHub,
            event: "push".to_owned(),
            message: "missing field `ref`".to_owned(),
        };
        let err: DeliveryError = payload.clone().into();
        assert_eq!(err.to_string(), payload.to_string());
    }

    #[test]
    fn understand_stops_at_missing_headers_before_parsing() {
        assert_eq!(
            understand(Provider::GitHub, &HeaderMap::new(), GITHUB_PUSH),
            Err(DeliveryError::MissingHeader {
                header: "X-GitHub-Delivery"
            })
        );
    }

    #[test]
    fn understand_github_form_body_like_json_body() {
        let json_headers = headers(&[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", UUID),
            ("Content-Type", "application/json"),
        ]);
        let form_headers = headers(&[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", UUID),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ]);
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", std::str::from_utf8(GITHUB_PUSH).unwrap())
            .finish();
        let from_json = understand(Provider::GitHub, &json_headers, GITHUB_PUSH);
        let from_form = understand(Provider::GitHub, &form_headers, form.as_bytes());
        assert!(from_json.is_ok(), "{from_json:?}");
        assert_eq!(from_json, from_form);
    }

    #[test]
    fn understand_github_form_without_payload_is_a_body_error() {
        let h = headers(&[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", UUID),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ]);
        assert!(matches!(
            understand(Provider::GitHub, &h, b"zen=1"),
            Err(DeliveryError::Body(BodyError::Malformed { .. }))
        ));
    }

    #[test]
    fn understand_reaches_each_provider_parser() {
        let github = headers(&[("X-GitHub-Event", "ping"), ("X-GitHub-Delivery", UUID)]);
        assert_eq!(
            understand(Provider::GitHub, &github, GITHUB_PING),
            Ok(Understood::Ping)
        );
        let gitlab = headers(&[("X-Gitlab-Event", "Push Hook"), ("Idempotency-Key", UUID)]);
        let understood = understand(Provider::GitLab, &gitlab, GITLAB_PUSH).unwrap();
        let Understood::Changes(changes) = understood else {
            panic!("expected changes, got {understood:?}");
        };
        assert!(
            changes
                .iter()
                .all(|c| c.delivery_id == UUID && c.provider == Provider::GitLab)
        );
        let bitbucket = headers(&[("X-Event-Key", "repo:push"), ("X-Request-UUID", UUID)]);
        let understood = understand(Provider::Bitbucket, &bitbucket, BITBUCKET_PUSH).unwrap();
        let Understood::Changes(changes) = understood else {
            panic!("expected changes, got {understood:?}");
        };
        assert!(
            changes
                .iter()
                .all(|c| c.delivery_id == UUID && c.provider == Provider::Bitbucket)
        );
    }

    #[test]
    fn understand_passes_parser_errors_through() {
        let h = headers(&[("X-GitHub-Event", "push"), ("X-GitHub-Delivery", UUID)]);
        assert!(matches!(
            understand(Provider::GitHub, &h, b"{not json"),
            Err(DeliveryError::Payload(_))
        ));
    }
}
