//! [`WebhookSettings`]: the webhook function's deployment settings, read once per cold start
//! from its environment, with auto-retry's variable names and errors where they are shared.

use std::time::Duration;

use super::handler::START_QUEUE_URL_ENV;
use super::secret_cache::{DEFAULT_SECRET_TTL, SECRET_TTL_ENV};
use crate::retry::settings::DEFAULT_PROJECT_PATTERNS;
pub use crate::retry::settings::{
    CONFIG_TTL_SECONDS, CONFIG_URI, LEDGER_TABLE, PROJECT_PATTERNS, SettingsError,
};
use crate::settings::Env;

const DEFAULT_CONFIG_TTL: Duration = crate::config::DEFAULT_CONFIG_TTL;

/// The webhook function's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Where the configuration is read from.
    pub config_uri: String,
    /// How long a loaded configuration is used.
    pub config_ttl: Duration,
    /// The project-name globs IAM allows, as given.
    pub project_patterns: String,
    /// The ledger table.
    pub ledger_table: String,
    /// The start queue's URL.
    pub start_queue_url: String,
    /// How long a webhook secret's value is used before it is read again.
    pub secret_ttl: Duration,
}

impl WebhookSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let env = Env::new(lookup);
        Ok(Self {
            config_uri: env.required(CONFIG_URI)?,
            config_ttl: env.seconds(CONFIG_TTL_SECONDS, DEFAULT_CONFIG_TTL)?,
            project_patterns: env.text_or(PROJECT_PATTERNS, DEFAULT_PROJECT_PATTERNS),
            ledger_table: env.required(LEDGER_TABLE)?,
            start_queue_url: env.required(START_QUEUE_URL_ENV)?,
            secret_ttl: env.seconds(SECRET_TTL_ENV, DEFAULT_SECRET_TTL)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::settings::lookup_from;

    fn settings(pairs: &[(&str, &str)]) -> Result<WebhookSettings, SettingsError> {
        WebhookSettings::from_lookup(lookup_from(pairs))
    }

    #[test]
    fn required_variables_are_named_and_defaults_apply() {
        let base = [
            (CONFIG_URI, "file:/a.toml"),
            (LEDGER_TABLE, "ledger"),
            (START_QUEUE_URL_ENV, "http://q"),
        ];
        let s = settings(&base).unwrap();
        assert_eq!(s.config_ttl, Duration::from_secs(60));
        assert_eq!(s.secret_ttl, Duration::from_secs(300));
        assert_eq!(s.project_patterns, "*");
        for missing in [CONFIG_URI, LEDGER_TABLE, START_QUEUE_URL_ENV] {
            let pairs: Vec<_> = base
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            assert_eq!(
                settings(&pairs).unwrap_err(),
                SettingsError::Missing { variable: missing }
            );
        }
        let mut pairs = base.to_vec();
        pairs.push((SECRET_TTL_ENV, "soon"));
        assert!(
            settings(&pairs)
                .unwrap_err()
                .to_string()
                .contains(SECRET_TTL_ENV)
        );
    }
}
