//! Pieces every provider's payload parser shares: reading a body into its payload struct (or a
//! [`PayloadError`]), the reasons an event is ignored, lenient numbers and ids (real payloads
//! send ids as integers, floats such as `55.0`, or strings), the all-zeros commit id and the
//! changed-files union.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use super::{ChangedFiles, PayloadError, Provider, Understood};

/// Longest error message kept: serde_json quotes offending strings, which come from the body and
/// may be long.
const MAX_MESSAGE_CHARS: usize = 200;

/// Reads `body` as the payload `event` promises, or the [`PayloadError`] that names both.
pub(super) fn read<T: DeserializeOwned>(
    provider: Provider,
    event: &str,
    body: &[u8],
) -> Result<T, PayloadError> {
    serde_json::from_slice(body).map_err(|e| payload_error(provider, event, &e))
}

/// A [`PayloadError`] from a serde_json error, its message cut short.
fn payload_error(provider: Provider, event: &str, error: &serde_json::Error) -> PayloadError {
    let full = error.to_string();
    let message = if full.chars().count() > MAX_MESSAGE_CHARS {
        let mut cut: String = full.chars().take(MAX_MESSAGE_CHARS).collect();
        cut.push('…');
        cut
    } else {
        full
    };
    PayloadError {
        provider,
        event: event.to_owned(),
        message,
    }
}

/// An event type this provider's parser does not handle.
pub(super) fn unsupported_event(event: &str) -> Understood {
    Understood::Ignored {
        reason: format!("unsupported_event: {event}"),
    }
}

/// A pull (merge) request action that starts and stops nothing.
pub(super) fn unsupported_action(action: &str) -> Understood {
    Understood::Ignored {
        reason: format!("unsupported_action: {action}"),
    }
}

/// A push to a ref that is neither a branch nor a tag (notes, pull request refs, …).
pub(super) fn unsupported_ref(git_ref: &str) -> Understood {
    Understood::Ignored {
        reason: format!("unsupported_ref: {git_ref}"),
    }
}

/// True for Git's "no commit" id (`0000…`), which marks a created or deleted ref.
pub(super) fn is_zero_sha(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// True when a pull request's head branch lives in another repository than its base branch.
/// A head repository the payload does not name (its fork was deleted) counts as a fork; a base
/// that names none is the repository the event came from.
pub(super) fn is_from_fork(
    head_repository: Option<&str>,
    base_repository: Option<&str>,
    event_repository: &str,
) -> bool {
    let base = base_repository.unwrap_or(event_repository);
    head_repository.is_none_or(|head| head != base)
}

/// Every path, deduplicated in first-seen order, as a complete list.
pub(super) fn changed_files_union<'a, C, P>(commits: C) -> ChangedFiles
where
    C: IntoIterator<Item = P>,
    P: IntoIterator<Item = &'a String>,
{
    let mut seen = HashSet::new();
    let mut paths = Vec::new();
    for path in commits.into_iter().flatten() {
        if seen.insert(path.as_str()) {
            paths.push(path.clone());
        }
    }
    ChangedFiles::Complete(paths)
}

/// A non-negative whole number sent as an integer, a float without fraction (`55.0`) or a
/// decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LenientU64(pub u64);

/// An id kept as text: a number (normalised to its decimal form, so `4.0` is `"4"`) or a string
/// (Bitbucket's account ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LenientId(pub String);

const WHOLE_NUMBER: &str = "a non-negative whole number";

/// Largest float that still holds every whole number exactly.
const MAX_EXACT_F64: f64 = 9_007_199_254_740_992.0;

/// A JSON number or string as it arrived, before [`LenientU64`] or [`LenientId`] decide what
/// they accept: both read the same scalars and differ only on negative numbers and text.
enum Scalar {
    Whole(u64),
    Negative(i64),
    Text(String),
}

/// Reads a [`Scalar`]; `expecting` is what the caller's type says it wants, for the error.
struct ScalarVisitor {
    expecting: &'static str,
}

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Whole(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(u64::try_from(v).map_or(Scalar::Negative(v), Scalar::Whole))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= MAX_EXACT_F64 {
            // Checked above: whole, non-negative and within u64's exact range.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(Scalar::Whole(v as u64))
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &WHOLE_NUMBER))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(v.to_owned()))
    }
}

impl<'de> serde::Deserialize<'de> for LenientU64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let visitor = ScalarVisitor {
            expecting: WHOLE_NUMBER,
        };
        match deserializer.deserialize_any(visitor)? {
            Scalar::Whole(n) => Ok(LenientU64(n)),
            Scalar::Negative(v) => Err(de::Error::invalid_value(
                de::Unexpected::Signed(v),
                &WHOLE_NUMBER,
            )),
            Scalar::Text(text) => {
                text.trim().parse().map(LenientU64).map_err(|_| {
                    de::Error::invalid_value(de::Unexpected::Str(&text), &WHOLE_NUMBER)
                })
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for LenientId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let visitor = ScalarVisitor {
            expecting: "an id (number or string)",
        };
        Ok(LenientId(match deserializer.deserialize_any(visitor)? {
            Scalar::Whole(n) => n.to_string(),
            Scalar::Negative(v) => v.to_string(),
            Scalar::Text(text) => text,
        }))
    }
}

/// What every provider's parser tests need: a fixture with one edit, the changes a delivery
/// became, and the checks on ignored events and payload errors.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(super) mod test_support {
    use serde_json::Value;

    use super::super::{PayloadError, Provider, SourceEvent, Understood};

    /// A provider's `parse(event, delivery_id, body)`.
    pub(in super::super) type Parse = fn(&str, &str, &[u8]) -> Result<Understood, PayloadError>;

    /// `fixture` (JSON) after `edit`.
    pub(in super::super) fn edited(fixture: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut value: Value = serde_json::from_slice(fixture).unwrap();
        edit(&mut value);
        serde_json::to_vec(&value).unwrap()
    }

    /// The changes a delivery became; fails the test on anything else.
    pub(in super::super) fn changes(
        parse: Parse,
        delivery_id: &str,
        event: &str,
        body: &[u8],
    ) -> Vec<SourceEvent> {
        match parse(event, delivery_id, body).unwrap() {
            Understood::Changes(changes) => changes,
            other => panic!("expected changes, got {other:?}"),
        }
    }

    /// The one change a delivery became; fails the test on anything else.
    pub(in super::super) fn one_change(
        parse: Parse,
        delivery_id: &str,
        event: &str,
        body: &[u8],
    ) -> SourceEvent {
        let mut all = changes(parse, delivery_id, event, body);
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    /// Each of `events` (with an empty object for a body) is ignored as unsupported.
    pub(in super::super) fn assert_events_ignored(
        parse: Parse,
        delivery_id: &str,
        events: &[&str],
    ) {
        for event in events {
            assert_eq!(
                parse(event, delivery_id, b"{}").unwrap(),
                Understood::Ignored {
                    reason: format!("unsupported_event: {event}")
                }
            );
        }
    }

    /// `body` sent as `event` is a [`PayloadError`] of `provider` and `event` whose message
    /// holds `fragment`.
    pub(in super::super) fn assert_payload_error(
        parse: Parse,
        provider: Provider,
        event: &str,
        body: &[u8],
        fragment: &str,
    ) {
        let error = parse(event, "delivery", body).unwrap_err();
        assert_eq!(error.provider, provider);
        assert_eq!(error.event, event);
        assert!(error.message.contains(fragment), "{}", error.message);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn numbers_arrive_as_integers_floats_or_strings() {
        let parse = |json: &str| serde_json::from_str::<LenientU64>(json).map(|n| n.0);
        assert_eq!(parse("55").unwrap(), 55);
        assert_eq!(parse("55.0").unwrap(), 55);
        assert_eq!(parse("\"55\"").unwrap(), 55);
        assert!(parse("55.5").is_err());
        assert!(parse("-1").is_err());
        assert!(parse("true").is_err());
    }

    #[test]
    fn ids_become_their_decimal_text() {
        let parse = |json: &str| serde_json::from_str::<LenientId>(json).map(|n| n.0);
        assert_eq!(parse("4").unwrap(), "4");
        assert_eq!(parse("4.0").unwrap(), "4");
        assert_eq!(parse("\"udfy9\"").unwrap(), "udfy9");
        assert!(parse("null").is_err());
    }

    #[test]
    fn zero_sha_is_all_zeros_only() {
        assert!(is_zero_sha("0000000000000000000000000000000000000000"));
        assert!(!is_zero_sha("0000000000000000000000000000000000000001"));
        assert!(!is_zero_sha(""));
    }

    #[test]
    fn long_error_messages_are_cut() {
        // serde_json quotes the offending string whole.
        let long = format!("\"{}\"", "y".repeat(1000));
        let error = serde_json::from_str::<u64>(&long).unwrap_err();
        assert!(error.to_string().len() > 1000);
        let built = payload_error(Provider::GitHub, "push", &error);
        assert!(built.message.chars().count() < 300, "{}", built.message);
        assert!(built.message.ends_with('…'));
        assert!(built.message.starts_with("invalid type: string \"yyy"));
    }
}
