//! The ordered rule table that maps phase-context message text to a class.
//!
//! # Order (first match wins, across all messages of the failing phase)
//! 1. **Specific permanent markers** (`not authorized`, `AccessDenied`, `repository not found`,
//!    `more than 0 builds in queue`, ...). They come first because a permission or configuration
//!    error often arrives wrapped in generic words: row 7 of the catalogue is an image *pull*
//!    failure that says `not authorized`; a message can say `please try again later` around a
//!    missing permission. Retrying those can never succeed, and not retrying is the safe side.
//! 2. **Transient markers** (rate limits, capacity, a full queue with N ≥ 1, `Build failed to
//!    start`).
//! 3. **Retry-once markers** (`i/o timeout`, `container found dead`, `please try again later`,
//!    `INSUFFICIENT_SUBNET`): usually a misconfiguration (no NAT gateway, OOM), sometimes a blip,
//!    so the policy spends one retry at most.
//!
//! After the table, [`crate::retry::classify`] applies the status-level fallbacks: `FAULT` →
//! retry once, a command's `exit status` → permanent, the `YAML_FILE_ERROR` code → permanent,
//! else unclassified. Those come last because they are generic: any message marker above says
//! more about the cause than the status does.
//!
//! Matching is ASCII-case-insensitive on the message text only (never the status code alone:
//! `CLIENT_ERROR` and `COMMAND_EXECUTION_ERROR` each cover transient and permanent causes).

use super::class::{Classification, FailureClass, Reason};

/// How a rule recognises a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// The text contains this, ignoring ASCII case.
    Contains(&'static str),
    /// The text contains this number as a token of its own (not part of a longer number, word
    /// or path segment), so `429` matches `status code: 429` but not `src4291` or `/429/`.
    NumberToken(&'static str),
    /// `more than <N> builds in queue` with N = 0 (`zero`) or N ≥ 1 (`!zero`).
    BuildsInQueue {
        /// Whether the rule is about the zero quota.
        zero: bool,
    },
}

impl Marker {
    /// True when `text` carries this marker.
    pub fn matches(self, text: &str) -> bool {
        match self {
            Self::Contains(needle) => find_ignore_case(text, needle).next().is_some(),
            Self::NumberToken(number) => {
                find_ignore_case(text, number).any(|at| is_token(text, at, number.len()))
            }
            Self::BuildsInQueue { zero } => queue_limit(text).is_some_and(|n| (n == 0) == zero),
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// What to look for.
    pub marker: Marker,
    /// The answer when it is found.
    pub classification: Classification,
}

const fn rule(marker: Marker, class: FailureClass, reason: Reason) -> Rule {
    Rule {
        marker,
        classification: Classification::new(class, reason),
    }
}

use FailureClass::{Permanent, RetryOnce, Transient};
use Marker::{BuildsInQueue, Contains, NumberToken};

/// The default rules, in the order they are tried (see the module docs for why).
#[rustfmt::skip] // one rule per line reads as the table it is
pub const RULES: &[Rule] = &[
    // 1. Specific permanent markers.
    rule(BuildsInQueue { zero: true }, Permanent, Reason::BuildQueueQuotaZero),
    rule(Contains("not authorized"), Permanent, Reason::AccessDenied),
    rule(Contains("AccessDenied"), Permanent, Reason::AccessDenied),
    rule(Contains("Access Denied"), Permanent, Reason::AccessDenied),
    rule(Contains("UnauthorizedOperation"), Permanent, Reason::AccessDenied),
    rule(Contains("authorization failed"), Permanent, Reason::AccessDenied),
    rule(Contains("permission denied"), Permanent, Reason::AccessDenied),
    rule(Contains("pull access denied"), Permanent, Reason::AccessDenied),
    rule(Contains("no longer has permission"), Permanent, Reason::AccessDenied),
    rule(Contains("authentication required"), Permanent, Reason::MissingCredentials),
    rule(Contains("Unable to locate credentials"), Permanent, Reason::MissingCredentials),
    rule(Contains("repository not found"), Permanent, Reason::SourceNotFound),
    rule(Contains("reference not found"), Permanent, Reason::SourceNotFound),
    rule(Contains("NoSuchKey"), Permanent, Reason::SourceNotFound),
    rule(Contains("NoSuchBucket"), Permanent, Reason::SourceNotFound),
    rule(Contains("Parameter does not exist"), Permanent, Reason::ParameterNotFound),
    rule(Contains("YAML file does not exist"), Permanent, Reason::BuildspecError),
    rule(Contains("SSL certificate problem"), Permanent, Reason::CertificateError),
    rule(Contains("x509:"), Permanent, Reason::CertificateError),
    rule(Contains("must be addressed using the specified endpoint"), Permanent, Reason::InvalidConfiguration),
    rule(Contains("Invalid arn"), Permanent, Reason::InvalidConfiguration),
    rule(Contains("KMS.NotFoundException"), Permanent, Reason::InvalidConfiguration),
    rule(Contains("no matching artifact paths"), Permanent, Reason::InvalidConfiguration),
    rule(Contains("bucket owner"), Permanent, Reason::InvalidConfiguration),
    rule(Contains("is incompatible with"), Permanent, Reason::InvalidConfiguration),
    rule(Contains("requires selecting at least one runtime version"), Permanent, Reason::BuildspecError),
    rule(Contains("Cannot connect to the Docker daemon"), Permanent, Reason::InvalidConfiguration),
    // 2. Transient markers.
    rule(Contains("toomanyrequests"), Transient, Reason::RateLimited),
    rule(Contains("Too Many Requests"), Transient, Reason::RateLimited),
    rule(NumberToken("429"), Transient, Reason::RateLimited),
    rule(Contains("RequestLimitExceeded"), Transient, Reason::RateLimited),
    rule(Contains("Rate exceeded"), Transient, Reason::RateLimited),
    rule(Contains("ThrottlingException"), Transient, Reason::RateLimited),
    rule(Contains("SlowDown"), Transient, Reason::RateLimited),
    rule(Contains("pull rate limit"), Transient, Reason::RateLimited),
    rule(Contains("InsufficientInstanceCapacity"), Transient, Reason::InsufficientCapacity),
    rule(Contains("InsufficientCapacity"), Transient, Reason::InsufficientCapacity),
    rule(Contains("insufficient capacity"), Transient, Reason::InsufficientCapacity),
    rule(BuildsInQueue { zero: false }, Transient, Reason::BuildQueueFull),
    rule(Contains("Build failed to start"), Transient, Reason::BuildFailedToStart),
    // 3. Retry-once markers.
    rule(Contains("i/o timeout"), RetryOnce, Reason::NetworkTimeout),
    rule(Contains("TLS handshake timeout"), RetryOnce, Reason::NetworkTimeout),
    rule(Contains("connection refused"), RetryOnce, Reason::ConnectionFailed),
    rule(Contains("connection reset by peer"), RetryOnce, Reason::ConnectionFailed),
    rule(Contains("container found dead"), RetryOnce, Reason::ContainerDied),
    rule(Contains("try again later"), RetryOnce, Reason::TryAgainLater),
    rule(Contains("INSUFFICIENT_SUBNET"), RetryOnce, Reason::InsufficientSubnet),
];

/// The first rule (in table order) that any of `texts` matches.
///
/// The rule loop is the outer one so that order is global: a permanent marker in the second
/// message beats a transient marker in the first.
pub fn first_match(texts: &[&str]) -> Option<Classification> {
    RULES
        .iter()
        .find(|rule| texts.iter().any(|text| rule.marker.matches(text)))
        .map(|rule| rule.classification)
}

/// Byte offsets where `needle` occurs in `text`, ignoring ASCII case.
fn find_ignore_case<'a>(text: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    let (hay, pin) = (text.as_bytes(), needle.as_bytes());
    // An empty needle or one longer than the text matches nowhere.
    let last = (!pin.is_empty())
        .then(|| hay.len().checked_sub(pin.len()))
        .flatten();
    last.into_iter().flat_map(move |last| {
        (0..=last).filter(move |&at| hay[at..at + pin.len()].eq_ignore_ascii_case(pin))
    })
}

/// True when `text[at..at + len]` stands alone: its neighbours are neither alphanumeric nor
/// path or identifier punctuation.
fn is_token(text: &str, at: usize, len: usize) -> bool {
    let glued = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_');
    let bytes = text.as_bytes();
    let before = at.checked_sub(1).and_then(|i| bytes.get(i)).copied();
    let after = bytes.get(at + len).copied();
    !before.is_some_and(glued) && !after.is_some_and(glued)
}

/// N in `more than <N> builds in queue` (the `AccountLimitExceededException` text).
fn queue_limit(text: &str) -> Option<u64> {
    const LEAD: &str = "more than ";
    const TAIL: &str = " builds in queue";
    find_ignore_case(text, LEAD).find_map(|at| {
        let rest = text.get(at + LEAD.len()..)?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let tail = rest.get(digits..digits + TAIL.len())?;
        if digits == 0 || !tail.eq_ignore_ascii_case(TAIL) {
            return None;
        }
        rest.get(..digits)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn number_token_needs_boundaries() {
        let m = NumberToken("429");
        assert!(m.matches("status code: 429, request id"));
        assert!(m.matches("HTTP 429 Too"));
        assert!(!m.matches("src4291/buildspec.yml"));
        assert!(!m.matches("/codebuild/output/429/src"));
        assert!(!m.matches("build-429"));
    }

    #[test]
    fn queue_limit_reads_the_number() {
        assert_eq!(
            queue_limit("Cannot have more than 0 builds in queue for the account"),
            Some(0)
        );
        assert_eq!(
            queue_limit("cannot have MORE THAN 12 builds in queue"),
            Some(12)
        );
        assert_eq!(queue_limit("more than many builds in queue"), None);
        assert_eq!(queue_limit("more than 3 builds"), None);
        assert!(BuildsInQueue { zero: false }.matches("more than 1 builds in queue"));
        assert!(!BuildsInQueue { zero: false }.matches("more than 0 builds in queue"));
    }

    #[test]
    fn contains_ignores_case() {
        assert!(Contains("Too Many Requests").matches("error: TOO MANY REQUESTS"));
        assert!(!Contains("Too Many Requests").matches("too many"));
        assert!(!Contains("x").matches(""));
    }
}
