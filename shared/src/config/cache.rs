//! Loading the configuration through the [`ConfigSource`] port, and keeping the last good one.
//!
//! A Lambda process serves many invocations; reading SSM or S3 on each would cost latency and
//! API quota, so the validated configuration is kept for a TTL. When a refresh fails (the source
//! is unavailable, or someone saved an invalid text), the last good configuration keeps being
//! served and a warning names the errors: a typo in the configuration must not stop auto-retry
//! for every project. Only a process that never loaded a good configuration returns the error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, RwLock};

use super::{AllowedProjects, Config, ConfigErrors, ConfigUri};
use crate::ports::{ConfigSource, ServiceError};

/// How long a loaded configuration is used before it is read again, unless configured.
pub const DEFAULT_CONFIG_TTL: Duration = Duration::from_secs(60);

/// Why no configuration could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigLoadError {
    /// The source could not be read (throttled, down, access denied, unreadable content).
    #[error("configuration source failed: {0}")]
    Unavailable(ServiceError),
    /// Nothing is stored at the URI.
    #[error("no configuration at {uri}")]
    NotFound {
        /// Where it was looked for.
        uri: ConfigUri,
    },
    /// The text is not a valid configuration.
    #[error("invalid configuration:\n{0}")]
    Invalid(ConfigErrors),
}

impl ConfigLoadError {
    /// True when loading again may succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unavailable(error) => error.is_retryable(),
            Self::NotFound { .. } | Self::Invalid(_) => false,
        }
    }
}

/// Reads and validates the configuration at `uri` once (what `autopilot config validate` and a
/// cache refresh do).
pub async fn load_config<S: ConfigSource>(
    source: &S,
    uri: &ConfigUri,
    allowed: &AllowedProjects,
) -> Result<Config, ConfigLoadError> {
    let text = source.fetch(uri).await.map_err(|error| match error {
        ServiceError::NotFound { .. } => ConfigLoadError::NotFound { uri: uri.clone() },
        other => ConfigLoadError::Unavailable(other),
    })?;
    Config::from_toml(&text, allowed).map_err(ConfigLoadError::Invalid)
}

/// The last good configuration, refreshed when older than the TTL. Shared by every invocation
/// of a process (`&self`; put it in an `Arc` or a `static`).
#[derive(Debug)]
pub struct ConfigCache<S> {
    source: S,
    uri: ConfigUri,
    allowed: AllowedProjects,
    ttl: Duration,
    state: RwLock<Option<Cached>>,
    /// One refresh at a time: concurrent callers that find the configuration stale wait for the
    /// refresh in flight instead of each reading the source.
    refreshing: Mutex<()>,
}

#[derive(Debug)]
struct Cached {
    config: Arc<Config>,
    /// When this configuration was read.
    loaded_at: Instant,
    /// When the source was last read, successfully or not: a failed refresh waits a TTL too,
    /// so an outage of the source is not hammered by every invocation.
    checked_at: Instant,
}

impl<S: ConfigSource> ConfigCache<S> {
    /// A cache of the configuration at `uri`, validated against `allowed`, refreshed after `ttl`.
    pub fn new(source: S, uri: ConfigUri, allowed: AllowedProjects, ttl: Duration) -> Self {
        Self {
            source,
            uri,
            allowed,
            ttl,
            state: RwLock::new(None),
            refreshing: Mutex::new(()),
        }
    }

    /// The configuration to use now.
    pub async fn current(&self) -> Result<Arc<Config>, ConfigLoadError> {
        self.current_at(Instant::now()).await
    }

    /// The configuration to use at `now` (tests move time by passing a later instant).
    pub async fn current_at(&self, now: Instant) -> Result<Arc<Config>, ConfigLoadError> {
        if let Some(config) = self.fresh(now).await {
            return Ok(config);
        }
        let _refreshing = self.refreshing.lock().await;
        // Someone may have refreshed while this caller waited for the lock.
        if let Some(config) = self.fresh(now).await {
            return Ok(config);
        }
        let loaded = load_config(&self.source, &self.uri, &self.allowed).await;
        let mut state = self.state.write().await;
        match (loaded, state.as_mut()) {
            (Ok(config), _) => {
                let config = Arc::new(config);
                *state = Some(Cached {
                    config: Arc::clone(&config),
                    loaded_at: now,
                    checked_at: now,
                });
                Ok(config)
            }
            (Err(error), Some(cached)) => {
                tracing::warn!(
                    uri = %self.uri,
                    error = %error,
                    loaded_seconds_ago = now.saturating_duration_since(cached.loaded_at).as_secs(),
                    "configuration refresh failed; serving the last good configuration"
                );
                cached.checked_at = now;
                Ok(Arc::clone(&cached.config))
            }
            (Err(error), None) => Err(error),
        }
    }

    /// The URI read.
    pub fn uri(&self) -> &ConfigUri {
        &self.uri
    }

    async fn fresh(&self, now: Instant) -> Option<Arc<Config>> {
        let state = self.state.read().await;
        let cached = state.as_ref()?;
        (now.saturating_duration_since(cached.checked_at) < self.ttl)
            .then(|| Arc::clone(&cached.config))
    }
}
