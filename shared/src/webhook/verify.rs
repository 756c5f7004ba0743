//! Signature verification over the raw body, before anything is parsed.
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
//! - Bitbucket Cloud: `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>` (same scheme).
//! - GitLab: `X-Gitlab-Token: <the secret itself>`.
//!
//! The bytes signed are the bytes the provider sent: for a GitHub form-encoded delivery that is
//! the `payload=…` form, not the JSON inside it (see [`crate::webhook::body::json_payload`]).
//!
//! Several secrets may be configured at once so a secret can be rotated without dropping
//! deliveries: a delivery is good when ANY of them matches. Every secret is tried (no early
//! return), and each comparison is constant time, so timing tells nothing about which secret
//! matched or how much of a signature was right.
//!
//! Hex digits are accepted in either case: providers send lowercase, and the digest is compared
//! as bytes after decoding, so accepting uppercase opens nothing.

use hmac::{Hmac, KeyInit, Mac};
use lambda_http::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::Provider;

/// GitHub's signature header.
pub const GITHUB_SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// Bitbucket Cloud's signature header.
pub const BITBUCKET_SIGNATURE_HEADER: &str = "X-Hub-Signature";
/// GitLab's shared-token header.
pub const GITLAB_TOKEN_HEADER: &str = "X-Gitlab-Token";

/// The prefix of an HMAC-SHA256 signature header's value.
const SHA256_PREFIX: &str = "sha256=";
/// Length of a SHA-256 digest in bytes (64 hex digits).
const SHA256_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A webhook secret. Its `Debug` and `Display` print `WebhookSecret(***)`, never the value, so
/// it can sit in structs that get logged.
#[derive(Clone)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// Wraps a secret value as read from Secrets Manager.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret's bytes, for signing and comparing. Never log them.
    pub fn expose_secret(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// True when the value is empty. An empty secret is known to everyone, so verification
    /// ignores it (see [`verify_signature`]).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for WebhookSecret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for WebhookSecret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

impl std::fmt::Display for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// Why a delivery's signature was not accepted. Messages name the header, never its value or a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature or token header is absent. HTTP 401.
    #[error("missing signature header {header}")]
    Missing {
        /// The header expected.
        header: &'static str,
    },
    /// The signature header is not `sha256=` followed by 64 hex digits (or is not ASCII).
    /// HTTP 401: an unauthenticated caller learns nothing more from a 400.
    #[error("malformed signature header {header}: expected sha256=<64 hex digits>")]
    Malformed {
        /// The header that is malformed.
        header: &'static str,
    },
    /// No configured secret produces this signature (or equals this token). HTTP 401.
    #[error("signature does not match any configured secret")]
    Mismatch,
    /// No usable (non-empty) secret is configured for the provider, so nothing can be verified.
    /// HTTP 500: the fault is ours, not the caller's, and it should raise an alarm; the body
    /// says only "internal error".
    #[error("no webhook secret configured")]
    NoSecretConfigured,
}

/// The header a provider carries its signature (or token) in.
pub fn signature_header(provider: Provider) -> &'static str {
    match provider {
        Provider::GitHub => GITHUB_SIGNATURE_HEADER,
        Provider::Bitbucket => BITBUCKET_SIGNATURE_HEADER,
        Provider::GitLab => GITLAB_TOKEN_HEADER,
    }
}

/// Checks a delivery's signature against the configured secrets, over the raw `body` exactly as
/// received (before any decoding or parsing). `Ok(())` when any non-empty secret matches.
///
/// Empty secrets are skipped: a signature made with an empty key proves nothing. When no
/// non-empty secret is left, the answer is [`SignatureError::NoSecretConfigured`], checked
/// before the headers so a misconfiguration is reported as such.
pub fn verify_signature(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[WebhookSecret],
) -> Result<(), SignatureError> {
    let usable: Vec<&WebhookSecret> = secrets.iter().filter(|s| !s.is_empty()).collect();
    if usable.is_empty() {
        return Err(SignatureError::NoSecretConfigured);
    }
    let header = signature_header(provider);
    let value = headers
        .get(header)
        .ok_or(SignatureError::Missing { header })?;
    let matched = match provider {
        Provider::GitHub | Provider::Bitbucket => {
            let signature = parse_sha256_signature(value.as_bytes())
                .ok_or(SignatureError::Malformed { header })?;
            any_hmac_matches(&usable, body, &signature)
        }
        Provider::GitLab => any_token_matches(&usable, value.as_bytes()),
    };
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Decodes `sha256=<64 hex digits>` (surrounding whitespace allowed, hex in either case).
fn parse_sha256_signature(value: &[u8]) -> Option<[u8; SHA256_LEN]> {
    let value = value.trim_ascii();
    let hex_digits = value.strip_prefix(SHA256_PREFIX.as_bytes())?;
    let mut digest = [0u8; SHA256_LEN];
    // `decode_to_slice` insists on exactly 64 hex digits for 32 bytes.
    hex::decode_to_slice(hex_digits, &mut digest).ok()?;
    Some(digest)
}

/// True when the HMAC of `body` under any secret equals `signature`. Every secret is tried.
fn any_hmac_matches(secrets: &[&WebhookSecret], body: &[u8], signature: &[u8]) -> bool {
    let mut matched = false;
    for secret in secrets {
        // HMAC accepts keys of any length, so this never fails; if it did, that secret simply
        // cannot match.
        let Ok(mac) = HmacSha256::new_from_slice(secret.expose_secret()) else {
            continue;
        };
        // `verify_slice` compares in constant time.
        matched |= mac.chain_update(body).verify_slice(signature).is_ok();
    }
    matched
}

/// True when `token` equals any secret. Compares SHA-256 digests of both in constant time, so
/// neither the content nor the length of a secret leaks through timing.
fn any_token_matches(secrets: &[&WebhookSecret], token: &[u8]) -> bool {
    let token_digest = Sha256::digest(token);
    let mut matched = Choice::from(0);
    for secret in secrets {
        let secret_digest = Sha256::digest(secret.expose_secret());
        matched |= secret_digest.as_slice().ct_eq(token_digest.as_slice());
    }
    matched.into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use lambda_http::http::HeaderValue;

    /// GitHub's published example (docs "Validating webhook deliveries"), also computed with
    /// Python's `hmac.new(secret, body, hashlib.sha256).hexdigest()`.
    const DOC_SECRET: &str = "It's a Secret to Everybody";
    const DOC_BODY: &[u8] = b"Hello, World!";
    const DOC_HEX: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    const GITHUB_PUSH: &[u8] = include_bytes!("../../tests/fixtures/webhooks/github/push.json");
    const GITHUB_PING: &[u8] = include_bytes!("../../tests/fixtures/webhooks/github/ping.json");
    const GITHUB_PR_CLOSED: &[u8] =
        include_bytes!("../../tests/fixtures/webhooks/github/pull_request.closed.json");
    const GITHUB_PR_SYNC: &[u8] =
        include_bytes!("../../tests/fixtures/webhooks/github/pull_request.synchronize.json");
    const BITBUCKET_PUSH: &[u8] =
        include_bytes!("../../tests/fixtures/webhooks/bitbucket/repo_push.json");
    const BITBUCKET_PR: &[u8] =
        include_bytes!("../../tests/fixtures/webhooks/bitbucket/pullrequest_updated.json");
    const GITLAB_PUSH: &[u8] = include_bytes!("../../tests/fixtures/webhooks/gitlab/push.json");

    /// Python-computed HMACs of fixtures under `FIXTURE_SECRET`.
    const FIXTURE_SECRET: &str = "autopilot-test-secret";
    const GITHUB_PUSH_HEX: &str =
        "5c6925a772abfd2174a119be714f96dc0a4b70764659731f66d30e07885cfc07";
    const GITHUB_PING_HEX: &str =
        "0b932b4ce0a3452ed40143b55233b9f3618156463c8fcc2b368f18dc94b694df";
    const BITBUCKET_PUSH_HEX: &str =
        "be5c3c3a56d4560662442e7fbefaf52e00f470060d9870d503da51c6f1b3bb2a";

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_str(value).unwrap());
        map
    }

    fn secrets(values: &[&str]) -> Vec<WebhookSecret> {
        values.iter().map(|v| WebhookSecret::from(*v)).collect()
    }

    /// Signs with the HMAC crate's `finalize` (a different path from the verifier's
    /// `verify_slice`).
    fn sign(secret: &str, body: &[u8]) -> String {
        let mac = HmacSha256::new_from_slice(secret.as_bytes())
            .unwrap()
            .chain_update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn github_documented_vector_verifies() {
        let h = headers("x-hub-signature-256", &format!("sha256={DOC_HEX}"));
        assert_eq!(
            verify_signature(Provider::GitHub, &h, DOC_BODY, &secrets(&[DOC_SECRET])),
            Ok(())
        );
    }

    #[test]
    fn python_computed_fixture_vectors_verify() {
        let s = secrets(&[FIXTURE_SECRET]);
        let cases = [
            (Provider::GitHub, GITHUB_PUSH, GITHUB_PUSH_HEX),
            (Provider::GitHub, GITHUB_PING, GITHUB_PING_HEX),
            (Provider::Bitbucket, BITBUCKET_PUSH, BITBUCKET_PUSH_HEX),
        ];
        for (provider, body, hex_digest) in cases {
            let h = headers(signature_header(provider), &format!("sha256={hex_digest}"));
            assert_eq!(
                verify_signature(provider, &h, body, &s),
                Ok(()),
                "{provider}"
            );
        }
    }

    #[test]
    fn every_fixture_signed_at_test_time_verifies_and_one_changed_byte_does_not() {
        let s = secrets(&["fixture secret"]);
        let cases = [
            (Provider::GitHub, GITHUB_PUSH),
            (Provider::GitHub, GITHUB_PING),
            (Provider::GitHub, GITHUB_PR_CLOSED),
            (Provider::GitHub, GITHUB_PR_SYNC),
            (Provider::Bitbucket, BITBUCKET_PUSH),
            (Provider::Bitbucket, BITBUCKET_PR),
        ];
        for (provider, body) in cases {
            let h = headers(signature_header(provider), &sign("fixture secret", body));
            assert_eq!(verify_signature(provider, &h, body, &s), Ok(()));
            let mut tampered = body.to_vec();
            let middle = tampered.len() / 2;
            tampered[middle] ^= 0x01;
            assert_eq!(
                verify_signature(provider, &h, &tampered, &s),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn one_changed_body_byte_or_signature_digit_is_a_mismatch() {
        let s = secrets(&[DOC_SECRET]);
        let h = headers(GITHUB_SIGNATURE_HEADER, &format!("sha256={DOC_HEX}"));
        assert_eq!(
            verify_signature(Provider::GitHub, &h, b"Hello, World?", &s),
            Err(SignatureError::Mismatch)
        );
        let mut wrong = DOC_HEX.to_owned();
        wrong.replace_range(63.., "0"); // last digit 7 → 0
        let h = headers(GITHUB_SIGNATURE_HEADER, &format!("sha256={wrong}"));
        assert_eq!(
            verify_signature(Provider::GitHub, &h, DOC_BODY, &s),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(Provider::GitHub, &h, DOC_BODY, &secrets(&["other"])),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn rotated_secrets_old_and_new_both_verify_neither_does_not() {
        let both = secrets(&["old secret", "new secret"]);
        for provider in [Provider::GitHub, Provider::Bitbucket] {
            for signer in ["old secret", "new secret"] {
                let h = headers(signature_header(provider), &sign(signer, DOC_BODY));
                assert_eq!(verify_signature(provider, &h, DOC_BODY, &both), Ok(()));
            }
            let h = headers(signature_header(provider), &sign("third", DOC_BODY));
            assert_eq!(
                verify_signature(provider, &h, DOC_BODY, &both),
                Err(SignatureError::Mismatch)
            );
        }
        for token in ["old secret", "new secret"] {
            let h = headers(GITLAB_TOKEN_HEADER, token);
            assert_eq!(
                verify_signature(Provider::GitLab, &h, GITLAB_PUSH, &both),
                Ok(())
            );
        }
        let h = headers(GITLAB_TOKEN_HEADER, "third");
        assert_eq!(
            verify_signature(Provider::GitLab, &h, GITLAB_PUSH, &both),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_header_names_the_header_each_provider_uses() {
        let s = secrets(&["secret"]);
        let cases = [
            (Provider::GitHub, "X-Hub-Signature-256"),
            (Provider::Bitbucket, "X-Hub-Signature"),
            (Provider::GitLab, "X-Gitlab-Token"),
        ];
        for (provider, header) in cases {
            assert_eq!(
                verify_signature(provider, &HeaderMap::new(), DOC_BODY, &s),
                Err(SignatureError::Missing { header })
            );
        }
        // GitHub's legacy SHA-1 header alone is not enough.
        let h = headers("X-Hub-Signature", &sign("secret", DOC_BODY));
        assert_eq!(
            verify_signature(Provider::GitHub, &h, DOC_BODY, &s),
            Err(SignatureError::Missing {
                header: GITHUB_SIGNATURE_HEADER
            })
        );
    }

    #[test]
    fn header_lookup_ignores_case() {
        let s = secrets(&[DOC_SECRET]);
        let mut h = HeaderMap::new();
        h.insert(
            lambda_http::http::HeaderName::from_bytes(b"X-HUB-SIGNATURE-256").unwrap(),
            HeaderValue::from_str(&format!("sha256={DOC_HEX}")).unwrap(),
        );
        assert_eq!(verify_signature(Provider::GitHub, &h, DOC_BODY, &s), Ok(()));
    }

    #[test]
    fn malformed_signatures_are_rejected_before_any_comparison() {
        let s = secrets(&[DOC_SECRET]);
        let header = GITHUB_SIGNATURE_HEADER;
        let malformed = [
            DOC_HEX.to_owned(),                     // no prefix
            format!("sha1={DOC_HEX}"),              // wrong algorithm
            format!("SHA256={DOC_HEX}"),            // prefix is lowercase as sent
            format!("sha256={}", &DOC_HEX[..62]),   // too short
            format!("sha256={DOC_HEX}00"),          // too long
            format!("sha256={}zz", &DOC_HEX[..62]), // not hex
            "sha256=".to_owned(),                   // empty
            format!("sha256= {DOC_HEX}"),           // space inside
        ];
        for value in malformed {
            let h = headers(header, &value);
            assert_eq!(
                verify_signature(Provider::GitHub, &h, DOC_BODY, &s),
                Err(SignatureError::Malformed { header }),
                "{value}"
            );
        }
        // Not ASCII at all.
        let mut h = HeaderMap::new();
        h.insert(header, HeaderValue::from_bytes(b"sha256=\xff").unwrap());
        assert_eq!(
            verify_signature(Provider::GitHub, &h, DOC_BODY, &s),
            Err(SignatureError::Malformed { header })
        );
    }

    #[test]
    fn uppercase_hex_and_surrounding_whitespace_are_accepted() {
        let s = secrets(&[DOC_SECRET]);
        for value in [
            format!("sha256={}", DOC_HEX.to_ascii_uppercase()),
            format!(" sha256={DOC_HEX}\t"),
        ] {
            let h = headers(GITHUB_SIGNATURE_HEADER, &value);
            assert_eq!(verify_signature(Provider::GitHub, &h, DOC_BODY, &s), Ok(()));
        }
    }

    #[test]
    fn gitlab_token_must_equal_a_secret_exactly_whatever_the_length() {
        let s = secrets(&["s3cr3t-token"]);
        assert_eq!(
            verify_signature(
                Provider::GitLab,
                &headers("x-gitlab-token", "s3cr3t-token"),
                GITLAB_PUSH,
                &s
            ),
            Ok(())
        );
        for token in [
            "s3cr3t-toke",
            "s3cr3t-token-",
            "S3CR3T-TOKEN",
            "",
            "x",
            "s3cr3t-tokeN",
        ] {
            assert_eq!(
                verify_signature(
                    Provider::GitLab,
                    &headers(GITLAB_TOKEN_HEADER, token),
                    GITLAB_PUSH,
                    &s
                ),
                Err(SignatureError::Mismatch),
                "{token:?}"
            );
        }
    }

    #[test]
    fn gitlab_token_ignores_the_body() {
        let s = secrets(&["token"]);
        let h = headers(GITLAB_TOKEN_HEADER, "token");
        assert_eq!(
            verify_signature(Provider::GitLab, &h, b"anything", &s),
            Ok(())
        );
    }

    #[test]
    fn no_secret_or_only_empty_secrets_is_not_configured() {
        // An empty key would let anyone sign; an empty GitLab token would match an empty header.
        let empty_sig = sign("", DOC_BODY);
        for (provider, value) in [
            (Provider::GitHub, empty_sig.as_str()),
            (Provider::Bitbucket, empty_sig.as_str()),
            (Provider::GitLab, ""),
        ] {
            let h = headers(signature_header(provider), value);
            for configured in [secrets(&[]), secrets(&[""])] {
                assert_eq!(
                    verify_signature(provider, &h, DOC_BODY, &configured),
                    Err(SignatureError::NoSecretConfigured)
                );
            }
            // An empty secret beside a real one is skipped, not used.
            assert_eq!(
                verify_signature(provider, &h, DOC_BODY, &secrets(&["", "real"])),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn secret_is_never_printed() {
        let secret = WebhookSecret::new("hunter2-super-secret");
        assert_eq!(format!("{secret:?}"), "WebhookSecret(***)");
        assert_eq!(format!("{secret}"), "WebhookSecret(***)");
        assert!(!format!("{:?}", vec![secret.clone()]).contains("hunter2"));
        assert_eq!(secret.expose_secret(), b"hunter2-super-secret");
    }

    #[test]
    fn error_messages_never_carry_the_signature_or_secret() {
        let s = secrets(&["hunter2"]);
        let bad_hex = format!("sha256={}zz", &DOC_HEX[..62]);
        for value in [format!("sha256={DOC_HEX}"), bad_hex] {
            let h = headers(GITHUB_SIGNATURE_HEADER, &value);
            let err = verify_signature(Provider::GitHub, &h, DOC_BODY, &s).unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(!text.contains(&DOC_HEX[..16]), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
