//! The webhook secrets, read through the [`Secrets`] port and kept for a TTL.
//!
//! Every delivery needs its provider's secrets, and a Lambda process serves many deliveries;
//! reading Secrets Manager each time would add latency and cost to every one. So each secret
//! name's value is kept for a TTL ([`DEFAULT_SECRET_TTL`], or [`SECRET_TTL_ENV`]) and read at
//! most once per TTL.
//!
//! Several names may be configured per provider so a secret can be rotated: the delivery is good
//! when any value matches. The cache therefore prefers serving what it can to failing:
//! - a refresh that fails keeps the last value (with a warning), so a Secrets Manager outage does
//!   not turn every delivery away; the name is read again a TTL later;
//! - a name that was never read and fails now is left out (with a warning) while others remain,
//!   and is read again on the next call: a delivery signed with it would be turned away, and
//!   GitHub does not redeliver by itself, so no failure is remembered for a TTL;
//! - a name that does not exist (deleted, or scheduled for deletion: the old secret at the end
//!   of a rotation) is dropped, cached value included: a deleted secret must stop verifying;
//! - only when no value at all can be served is the call an error, retryable when a cause is.
//!
//! Values never appear in logs or errors: [`WebhookSecret`]'s `Debug` is redacted, and warnings
//! name the secret, not its value.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, RwLock};

use super::verify::WebhookSecret;
use crate::ports::{Secrets, ServiceError};

/// How long a secret's value is used before it is read again, unless configured.
pub const DEFAULT_SECRET_TTL: Duration = Duration::from_secs(300);

/// The environment variable holding the TTL in whole seconds (default [`DEFAULT_SECRET_TTL`]).
pub const SECRET_TTL_ENV: &str = "AUTOPILOT_SECRET_TTL_SECONDS";

/// [`SECRET_TTL_ENV`]'s value is not a whole number of seconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{SECRET_TTL_ENV} must be a whole number of seconds, not {value:?}")]
pub struct InvalidSecretTtl {
    /// The value found.
    pub value: String,
}

/// The TTL an environment variable's value asks for: `None` (unset) or blank is the default;
/// `0` reads the secrets on every call.
pub fn parse_secret_ttl(value: Option<&str>) -> Result<Duration, InvalidSecretTtl> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_SECRET_TTL),
        Some(text) => text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| InvalidSecretTtl {
                value: text.to_owned(),
            }),
    }
}

/// The TTL [`SECRET_TTL_ENV`] asks for (the default when unset).
pub fn secret_ttl_from_env() -> Result<Duration, InvalidSecretTtl> {
    parse_secret_ttl(std::env::var(SECRET_TTL_ENV).ok().as_deref())
}

/// One secret name that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFailure {
    /// The secret's name (or ARN) as configured.
    pub name: String,
    /// Why reading it failed.
    pub error: ServiceError,
}

/// Why no webhook secret can be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretCacheError {
    /// The provider has no secret names configured.
    #[error("no webhook secret is configured")]
    NoneConfigured,
    /// Every configured secret failed, and none has a value kept from before.
    #[error("no webhook secret could be read: {}", describe(.failures))]
    Unreadable {
        /// Each name and why it failed.
        failures: Vec<SecretFailure>,
    },
}

impl SecretCacheError {
    /// True when asking again may succeed without anyone changing anything: some secret failed
    /// for a reason that passes (throttling, an outage).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NoneConfigured => false,
            Self::Unreadable { failures } => failures.iter().any(|f| f.error.is_retryable()),
        }
    }
}

fn describe(failures: &[SecretFailure]) -> String {
    failures
        .iter()
        .map(|f| format!("{}: {}", f.name, f.error))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Webhook secret values by name, each read at most once per TTL. Shared by every invocation of
/// a process (`&self`; put it in an `Arc` or a `static`).
#[derive(Debug)]
pub struct WebhookSecretCache<S> {
    secrets: S,
    ttl: Duration,
    entries: RwLock<HashMap<String, Entry>>,
    /// One refresh at a time: concurrent callers that find a secret stale wait for the refresh
    /// in flight instead of each reading it.
    refreshing: Mutex<()>,
}

#[derive(Debug)]
struct Entry {
    value: WebhookSecret,
    /// When the value was read.
    read_at: Instant,
    /// When the secret was last read, successfully or not: a failed refresh waits a TTL too,
    /// so an outage is not hammered by every delivery.
    checked_at: Instant,
}

impl<S: Secrets> WebhookSecretCache<S> {
    /// A cache over `secrets` keeping each value for `ttl`.
    pub fn new(secrets: S, ttl: Duration) -> Self {
        Self {
            secrets,
            ttl,
            entries: RwLock::new(HashMap::new()),
            refreshing: Mutex::new(()),
        }
    }

    /// The values of the secrets `names` (a provider's configured names) to verify with now.
    pub async fn secrets_for(
        &self,
        names: &[String],
    ) -> Result<Vec<WebhookSecret>, SecretCacheError> {
        self.secrets_for_at(names, Instant::now()).await
    }

    /// The values to verify with at `now` (tests move time by passing a later instant), in the
    /// order of `names`, each name once.
    pub async fn secrets_for_at(
        &self,
        names: &[String],
        now: Instant,
    ) -> Result<Vec<WebhookSecret>, SecretCacheError> {
        let names = distinct(names);
        if names.is_empty() {
            return Err(SecretCacheError::NoneConfigured);
        }
        if let Some(values) = self.all_fresh(&names, now).await {
            return Ok(values);
        }
        let _refreshing = self.refreshing.lock().await;
        // Someone may have refreshed some of them while this caller waited for the lock.
        let stale = self.stale(&names, now).await;
        let read = futures::future::join_all(
            stale
                .iter()
                .map(|name| async move { (*name, self.secrets.secret_value(name).await) }),
        )
        .await;

        let mut entries = self.entries.write().await;
        let mut failures = Vec::new();
        for (name, result) in read {
            match result {
                Ok(value) => {
                    entries.insert(
                        name.to_owned(),
                        Entry {
                            value: WebhookSecret::new(value),
                            read_at: now,
                            checked_at: now,
                        },
                    );
                }
                Err(error @ ServiceError::NotFound { .. }) => {
                    let dropped = entries.remove(name).is_some();
                    tracing::warn!(
                        secret = name,
                        error = %error,
                        dropped_cached_value = dropped,
                        "webhook secret does not exist (rotated away?); verifying without it"
                    );
                    failures.push(SecretFailure {
                        name: name.to_owned(),
                        error,
                    });
                }
                Err(error) => match entries.get_mut(name) {
                    Some(entry) => {
                        tracing::warn!(
                            secret = name,
                            error = %error,
                            read_seconds_ago = now.saturating_duration_since(entry.read_at).as_secs(),
                            "webhook secret refresh failed; using the value read before"
                        );
                        entry.checked_at = now;
                    }
                    None => {
                        tracing::warn!(
                            secret = name,
                            error = %error,
                            "webhook secret could not be read; verifying without it"
                        );
                        failures.push(SecretFailure {
                            name: name.to_owned(),
                            error,
                        });
                    }
                },
            }
        }
        let values: Vec<WebhookSecret> = names
            .iter()
            .filter_map(|name| entries.get(*name))
            .map(|entry| entry.value.clone())
            .collect();
        // An empty value verifies nothing (see `verify_signature`): serving only those while a
        // real secret failed would turn a passing outage into a final rejection.
        if values.iter().all(WebhookSecret::is_empty) && !failures.is_empty() {
            return Err(SecretCacheError::Unreadable { failures });
        }
        Ok(values)
    }

    /// Every value, when every name has one younger than the TTL.
    async fn all_fresh(&self, names: &[&str], now: Instant) -> Option<Vec<WebhookSecret>> {
        let entries = self.entries.read().await;
        names
            .iter()
            .map(|name| {
                entries
                    .get(*name)
                    .filter(|entry| self.is_fresh(entry, now))
                    .map(|entry| entry.value.clone())
            })
            .collect()
    }

    /// The names without a value younger than the TTL.
    async fn stale<'n>(&self, names: &[&'n str], now: Instant) -> Vec<&'n str> {
        let entries = self.entries.read().await;
        names
            .iter()
            .copied()
            .filter(|name| !entries.get(*name).is_some_and(|e| self.is_fresh(e, now)))
            .collect()
    }

    fn is_fresh(&self, entry: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(entry.checked_at) < self.ttl
    }
}

/// `names` in order, each once.
fn distinct(names: &[String]) -> Vec<&str> {
    let mut seen = Vec::with_capacity(names.len());
    for name in names {
        if !seen.contains(&name.as_str()) {
            seen.push(name.as_str());
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::Mutex as StdMutex;

    use super::*;

    /// A fake Secrets Manager: values and failures set per name, reads counted per name.
    #[derive(Default)]
    struct FakeSecrets {
        answers: StdMutex<HashMap<String, Result<String, ServiceError>>>,
        reads: StdMutex<HashMap<String, usize>>,
    }

    impl FakeSecrets {
        fn set(&self, name: &str, answer: Result<&str, ServiceError>) {
            self.answers
                .lock()
                .unwrap()
                .insert(name.to_owned(), answer.map(str::to_owned));
        }

        fn reads(&self, name: &str) -> usize {
            self.reads.lock().unwrap().get(name).copied().unwrap_or(0)
        }
    }

    impl Secrets for &FakeSecrets {
        async fn secret_value(&self, name: &str) -> Result<String, ServiceError> {
            *self
                .reads
                .lock()
                .unwrap()
                .entry(name.to_owned())
                .or_default() += 1;
            self.answers
                .lock()
                .unwrap()
                .get(name)
                .cloned()
                .unwrap_or_else(|| Err(not_found()))
        }
    }

    fn unavailable() -> ServiceError {
        ServiceError::Unavailable {
            service: "secretsmanager",
            operation: "GetSecretValue",
            message: "throttled".into(),
        }
    }

    fn not_found() -> ServiceError {
        ServiceError::NotFound {
            service: "secretsmanager",
            operation: "GetSecretValue",
            message: "no such secret".into(),
        }
    }

    fn denied() -> ServiceError {
        ServiceError::Rejected {
            service: "secretsmanager",
            operation: "GetSecretValue",
            message: "access denied".into(),
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|&n| n.to_owned()).collect()
    }

    fn exposed(values: &[WebhookSecret]) -> Vec<String> {
        values
            .iter()
            .map(|v| String::from_utf8(v.expose_secret().to_vec()).unwrap())
            .collect()
    }

    const TTL: Duration = Duration::from_secs(300);

    #[tokio::test]
    async fn each_name_is_read_once_per_ttl() {
        let fake = FakeSecrets::default();
        fake.set("a", Ok("one"));
        fake.set("b", Ok("two"));
        let cache = WebhookSecretCache::new(&fake, TTL);
        let start = Instant::now();
        for offset in [0, 1, 299] {
            let at = start + Duration::from_secs(offset);
            let values = cache.secrets_for_at(&names(&["a", "b"]), at).await.unwrap();
            assert_eq!(exposed(&values), ["one", "two"]);
        }
        assert_eq!((fake.reads("a"), fake.reads("b")), (1, 1));
    }

    #[tokio::test]
    async fn a_value_is_read_again_after_the_ttl() {
        let fake = FakeSecrets::default();
        fake.set("a", Ok("old"));
        let cache = WebhookSecretCache::new(&fake, TTL);
        let start = Instant::now();
        cache.secrets_for_at(&names(&["a"]), start).await.unwrap();
        fake.set("a", Ok("new"));
        let values = cache
            .secrets_for_at(&names(&["a"]), start + TTL)
            .await
            .unwrap();
        assert_eq!(exposed(&values), ["new"]);
        assert_eq!(fake.reads("a"), 2);
    }

    #[tokio::test]
    async fn only_the_stale_name_is_read_again() {
        let fake = FakeSecrets::default();
        fake.set("a", Ok("one"));
        fake.set("b", Ok("two"));
        let cache = WebhookSecretCache::new(&fake, TTL);
        let start = Instant::now();
        cache.secrets_for_at(&names(&["a"]), start).await.unwrap();
        let later = start + Duration::from_secs(100);
        let values = cache
            .secrets_for_at(&names(&["a", "b", "a"]), later)
            .await
            .unwrap();
        assert_eq!(exposed(&values), ["one", "two"]);
        assert_eq!((fake.reads("a"), fake.reads("b")), (1, 1));
    }

    #[tokio::test]
    async fn a_failed_refresh_serves_the_value_read_before_for_another_ttl() {
        let fake = FakeSecrets::default();
        fake.set("a", Ok("one"));
        let cache = WebhookSecretCache::new(&fake, TTL);
        let start = Instant::now();
        cache.secrets_for_at(&names(&["a"]), start).await.unwrap();
        for failure in [unavailable(), denied()] {
            fake.set("a", Err(failure));
            let reads = fake.reads("a");
            let refresh_at = start + TTL * (reads as u32);
            let values = cache
                .secrets_for_at(&names(&["a"]), refresh_at)
                .await
                .unwrap();
            assert_eq!(exposed(&values), ["one"]);
            assert_eq!(fake.reads("a"), reads + 1);
            // The failure is not retried on every call: the next read is a TTL later.
            cache
                .secrets_for_at(&names(&["a"]), refresh_at + Duration::from_secs(1))
                .await
                .unwrap();
            assert_eq!(fake.reads("a"), reads + 1);
        }
    }

    #[tokio::test]
    async fn a_deleted_secret_is_dropped_even_when_cached() {
        let fake = FakeSecrets::default();
        fake.set("old", Ok("one"));
        fake.set("new", Ok("two"));
        let cache = WebhookSecretCache::new(&fake, TTL);
        let both = names(&["old", "new"]);
        let start = Instant::now();
        cache.secrets_for_at(&both, start).await.unwrap();
        fake.set("old", Err(not_found()));
        let values = cache.secrets_for_at(&both, start + TTL).await.unwrap();
        assert_eq!(exposed(&values), ["two"]);
    }

    #[tokio::test]
    async fn names_that_fail_are_left_out_and_read_again_next_call() {
        let fake = FakeSecrets::default();
        fake.set("a", Err(unavailable()));
        fake.set("b", Ok("two"));
        fake.set("c", Err(not_found()));
        let cache = WebhookSecretCache::new(&fake, TTL);
        let all = names(&["a", "b", "c"]);
        let start = Instant::now();
        let values = cache.secrets_for_at(&all, start).await.unwrap();
        assert_eq!(exposed(&values), ["two"]);

        fake.set("a", Ok("one"));
        let values = cache
            .secrets_for_at(&all, start + Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(exposed(&values), ["one", "two"]);
        assert_eq!(
            (fake.reads("a"), fake.reads("b"), fake.reads("c")),
            (2, 1, 2)
        );
    }

    #[tokio::test]
    async fn nothing_readable_is_an_error_retryable_when_a_cause_is() {
        let fake = FakeSecrets::default();
        fake.set("a", Err(not_found()));
        fake.set("b", Err(unavailable()));
        let cache = WebhookSecretCache::new(&fake, TTL);
        let now = Instant::now();

        let error = cache
            .secrets_for_at(&names(&["a", "b"]), now)
            .await
            .unwrap_err();
        assert!(error.is_retryable(), "{error:?}");
        let SecretCacheError::Unreadable { failures } = &error else {
            panic!("{error:?}");
        };
        let failed: Vec<&str> = failures.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(failed, ["a", "b"]);

        let error = cache.secrets_for_at(&names(&["a"]), now).await.unwrap_err();
        assert!(!error.is_retryable(), "{error:?}");

        let error = cache.secrets_for_at(&[], now).await.unwrap_err();
        assert_eq!(error, SecretCacheError::NoneConfigured);
        assert!(!error.is_retryable());
    }

    #[tokio::test]
    async fn only_empty_values_beside_a_failure_is_an_error() {
        let fake = FakeSecrets::default();
        fake.set("empty", Ok(""));
        fake.set("real", Err(unavailable()));
        let cache = WebhookSecretCache::new(&fake, TTL);
        let now = Instant::now();
        let error = cache
            .secrets_for_at(&names(&["empty", "real"]), now)
            .await
            .unwrap_err();
        assert!(error.is_retryable(), "{error:?}");
        // Alone, an empty value is served: verification reports it as "no secret configured".
        let values = cache.secrets_for_at(&names(&["empty"]), now).await.unwrap();
        assert_eq!(exposed(&values), [""]);
    }

    #[tokio::test]
    async fn errors_and_debug_output_never_show_a_value() {
        let fake = FakeSecrets::default();
        fake.set("a", Ok("s3cr3t-value"));
        fake.set("b", Err(unavailable()));
        let cache = WebhookSecretCache::new(&fake, TTL);
        let now = Instant::now();
        let values = cache
            .secrets_for_at(&names(&["a", "b"]), now)
            .await
            .unwrap();
        let entries = cache.entries.read().await;
        assert!(!format!("{values:?} {entries:?}").contains("s3cr3t"));
    }

    #[test]
    fn the_ttl_comes_from_the_environment_value() {
        assert_eq!(parse_secret_ttl(None), Ok(DEFAULT_SECRET_TTL));
        assert_eq!(parse_secret_ttl(Some(" ")), Ok(DEFAULT_SECRET_TTL));
        assert_eq!(parse_secret_ttl(Some("60")), Ok(Duration::from_secs(60)));
        assert_eq!(parse_secret_ttl(Some("0")), Ok(Duration::ZERO));
        assert!(parse_secret_ttl(Some("5m")).is_err());
        assert!(parse_secret_ttl(Some("-1")).is_err());
    }
}
