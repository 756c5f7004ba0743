//! The configuration cache over a fake source: TTL refresh, the last good configuration kept
//! when a refresh fails, errors when nothing good was ever loaded, and one load for concurrent
//! callers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use autopilot::config::{AllowedProjects, ConfigCache, ConfigLoadError, ConfigUri, load_config};
use autopilot::ports::{ConfigSource, ServiceError};

const TTL: Duration = Duration::from_secs(60);

/// Answers each fetch with the next scripted answer (the last one repeats) and counts fetches.
/// Clones share the script and the count, so a test keeps one to look at.
#[derive(Clone)]
struct ScriptedSource {
    answers: Arc<Mutex<VecDeque<Result<String, ServiceError>>>>,
    fetches: Arc<AtomicUsize>,
}

impl ScriptedSource {
    fn new(answers: Vec<Result<String, ServiceError>>) -> Self {
        Self {
            answers: Arc::new(Mutex::new(answers.into())),
            fetches: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl ConfigSource for ScriptedSource {
    async fn fetch(&self, _uri: &ConfigUri) -> Result<String, ServiceError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        // Let other tasks run, as a network call would.
        tokio::task::yield_now().await;
        let mut answers = self.answers.lock().unwrap();
        if answers.len() > 1 {
            answers.pop_front().unwrap()
        } else {
            answers.front().cloned().unwrap()
        }
    }
}

fn budget(n: u32) -> Result<String, ServiceError> {
    Ok(format!(
        "[[projects]]\nname = \"app\"\n[projects.retry]\nhourly_budget = {n}\n"
    ))
}

fn unavailable() -> Result<String, ServiceError> {
    Err(ServiceError::Unavailable {
        service: "ssm",
        operation: "GetParameter",
        message: "throttled".into(),
    })
}

fn not_found() -> Result<String, ServiceError> {
    Err(ServiceError::NotFound {
        service: "ssm",
        operation: "GetParameter",
        message: "ParameterNotFound".into(),
    })
}

fn uri() -> ConfigUri {
    ConfigUri::parse("ssm:/autopilot/config").unwrap()
}

fn cache(source: &ScriptedSource) -> ConfigCache<ScriptedSource> {
    ConfigCache::new(source.clone(), uri(), AllowedProjects::all(), TTL)
}

async fn budget_at(cache: &ConfigCache<ScriptedSource>, now: Instant) -> u32 {
    let config = cache.current_at(now).await.unwrap();
    config.entry_for("app").unwrap().retry.hourly_budget
}

#[tokio::test]
async fn a_fresh_config_is_served_from_memory_and_refreshed_after_the_ttl() {
    let source = ScriptedSource::new(vec![budget(1), budget(2)]);
    let cache = cache(&source);
    let t0 = Instant::now();

    assert_eq!(budget_at(&cache, t0).await, 1);
    assert_eq!(
        budget_at(&cache, t0 + TTL - Duration::from_secs(1)).await,
        1
    );
    assert_eq!(source.fetches(), 1, "within the TTL nothing is read");

    assert_eq!(budget_at(&cache, t0 + TTL).await, 2);
    assert_eq!(source.fetches(), 2);
}

#[tokio::test]
async fn a_failed_refresh_keeps_serving_the_last_good_config() {
    let invalid = Ok("[[projects]]\nname = \"app\"\n[projects.retry]\nmax_retries = 99\n".into());
    let source = ScriptedSource::new(vec![budget(1), unavailable(), invalid, budget(3)]);
    let cache = cache(&source);
    let t0 = Instant::now();

    assert_eq!(budget_at(&cache, t0).await, 1);
    assert_eq!(budget_at(&cache, t0 + TTL).await, 1, "source unavailable");
    assert_eq!(source.fetches(), 2);
    // A failure is not retried on every call: the next read waits a TTL too.
    assert_eq!(
        budget_at(&cache, t0 + TTL + Duration::from_secs(1)).await,
        1
    );
    assert_eq!(source.fetches(), 2);

    assert_eq!(budget_at(&cache, t0 + TTL * 2).await, 1, "new text invalid");
    assert_eq!(source.fetches(), 3);
    assert_eq!(budget_at(&cache, t0 + TTL * 3).await, 3, "good again");
}

#[tokio::test]
async fn with_nothing_good_yet_the_error_is_returned_and_retried_next_call() {
    let source = ScriptedSource::new(vec![unavailable(), not_found(), budget(4)]);
    let cache = cache(&source);
    let t0 = Instant::now();

    let first = cache.current_at(t0).await.unwrap_err();
    assert!(
        matches!(first, ConfigLoadError::Unavailable(_)),
        "{first:?}"
    );
    assert!(first.is_retryable());

    let second = cache.current_at(t0).await.unwrap_err();
    assert_eq!(second, ConfigLoadError::NotFound { uri: uri() });
    assert!(!second.is_retryable());
    assert_eq!(
        second.to_string(),
        "no configuration at ssm:/autopilot/config"
    );

    assert_eq!(budget_at(&cache, t0).await, 4);
    assert_eq!(source.fetches(), 3);
}

#[tokio::test]
async fn an_invalid_first_config_is_an_error_naming_every_problem() {
    let text = "[account]\nhourly_retry_limit = 0\n[defaults.retry]\nmax_retries = 11\n";
    let source = ScriptedSource::new(vec![Ok(text.into())]);
    let err = cache(&source).current_at(Instant::now()).await.unwrap_err();
    let ConfigLoadError::Invalid(errors) = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!(errors.len(), 2);
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "invalid configuration:\n\
         line 2: account.hourly_retry_limit: must be at least 1, got 0\n\
         line 4: defaults.retry.max_retries: must be at most 10, got 11"
    );
}

#[tokio::test]
async fn concurrent_callers_share_one_load() {
    let source = ScriptedSource::new(vec![budget(5)]);
    let cache = Arc::new(cache(&source));
    let now = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let cache = Arc::clone(&cache);
        callers.spawn(async move { budget_at(&cache, now).await });
    }
    while let Some(budget) = callers.join_next().await {
        assert_eq!(budget.unwrap(), 5);
    }
    assert_eq!(source.fetches(), 1);
}

#[tokio::test]
async fn load_config_maps_source_errors() {
    let rejected = ServiceError::Rejected {
        service: "s3",
        operation: "GetObject",
        message: "AccessDenied".into(),
    };
    let source = ScriptedSource::new(vec![Err(rejected.clone())]);
    let err = load_config(&source, &uri(), &AllowedProjects::all())
        .await
        .unwrap_err();
    assert_eq!(err, ConfigLoadError::Unavailable(rejected));
    assert!(!err.is_retryable(), "access denied does not heal by itself");
}
