//! [`WebhookSettings`]: the webhook function's deployment settings, read once per cold start
//! from its environment, with auto-retry's variable names and errors where they are shared.

use std::time::Duration;

use super::handler::START_QUEUE_URL_ENV;
use super::secret_cache::{DEFAULT_SECRET_TTL, SECRET_TTL_ENV};
use crate::retry::settings::parse_u32;
pub use crate::retry::settings::{
    CONFIG_TTL_SECONDS, CONFIG_URI, LEDGER_TABLE, PROJECT_PATTERNS, SettingsError,
};

const DEFAULT_CONFIG_TTL: Duration = crate::config::DEFAULT_CONFIG_TTL;
const DEFAULT_PROJECT_PATTERNS: &str = "*";

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
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required =
            |variable: &'static str| get(variable).ok_or(SettingsError::Missing { variable });
        let seconds = |variable: &'static str, default: Duration| match get(variable) {
            None => Ok(default),
            Some(value) => parse_u32(variable, &value, "whole seconds")
                .map(|n| Duration::from_secs(u64::from(n))),
        };
        Ok(Self {
            config_uri: required(CONFIG_URI)?,
            config_ttl: seconds(CONFIG_TTL_SECONDS, DEFAULT_CONFIG_TTL)?,
            project_patterns: get(PROJECT_PATTERNS)
                .unwrap_or_else(|| DEFAULT_PROJECT_PATTERNS.to_owned()),
            ledger_table: required(LEDGER_TABLE)?,
            start_queue_url: required(START_QUEUE_URL_ENV)?,
            secret_ttl: seconds(SECRET_TTL_ENV, DEFAULT_SECRET_TTL)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<WebhookSettings, SettingsError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        WebhookSettings::from_lookup(|name| env.get(name).cloned())
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
