//! [`StarterSettings`]: the deployment settings of the functions that start batches
//! (batch-starter, and batch-trigger as `TriggerSettings`), read once per cold start from the
//! environment. The names are auto-retry's constants and the errors its
//! [`SettingsError`], so every function reads the same names the same way.

use std::time::Duration;

use crate::retry::settings::DEFAULT_PROJECT_PATTERNS;
use crate::settings::Env;

pub use crate::retry::settings::{
    CONFIG_TTL_SECONDS, CONFIG_URI, DRY_RUN, LEDGER_TABLE, PROJECT_PATTERNS, SettingsError,
};

const DEFAULT_CONFIG_TTL: Duration = crate::config::DEFAULT_CONFIG_TTL;

/// The settings of batch-starter and batch-trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StarterSettings {
    /// Where the configuration is read from (parsed by the config module).
    pub config_uri: String,
    /// How long a loaded configuration is used before reading it again.
    pub config_ttl: Duration,
    /// The project-name globs IAM allows, as given (parsed by the config module).
    pub project_patterns: String,
    /// The idempotency ledger's table.
    pub ledger_table: String,
    /// Report only, whatever the configuration says.
    pub dry_run: bool,
}

impl StarterSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests). Empty values
    /// count as unset, as for auto-retry.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let env = Env::new(lookup);
        let config_ttl = env.seconds(CONFIG_TTL_SECONDS, DEFAULT_CONFIG_TTL)?;
        let dry_run = env.switch(DRY_RUN, false)?;
        Ok(Self {
            config_uri: env.required(CONFIG_URI)?,
            config_ttl,
            project_patterns: env.text_or(PROJECT_PATTERNS, DEFAULT_PROJECT_PATTERNS),
            ledger_table: env.required(LEDGER_TABLE)?,
            dry_run,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::settings::lookup_from;

    fn settings(pairs: &[(&str, &str)]) -> Result<StarterSettings, SettingsError> {
        StarterSettings::from_lookup(lookup_from(pairs))
    }

    const REQUIRED: [(&str, &str); 2] = [
        (CONFIG_URI, "file:/tmp/autopilot.toml"),
        (LEDGER_TABLE, "ledger"),
    ];

    #[test]
    fn defaults_apply_when_only_the_required_are_set() {
        assert_eq!(
            settings(&REQUIRED).unwrap(),
            StarterSettings {
                config_uri: "file:/tmp/autopilot.toml".into(),
                config_ttl: Duration::from_secs(60),
                project_patterns: "*".into(),
                ledger_table: "ledger".into(),
                dry_run: false,
            }
        );
    }

    #[test]
    fn every_variable_is_read() {
        let mut pairs = REQUIRED.to_vec();
        pairs.extend([
            (CONFIG_TTL_SECONDS, "5"),
            (PROJECT_PATTERNS, "web-*,api"),
            (DRY_RUN, "yes"),
        ]);
        let s = settings(&pairs).unwrap();
        assert_eq!(s.config_ttl, Duration::from_secs(5));
        assert_eq!(s.project_patterns, "web-*,api");
        assert!(s.dry_run);
    }

    #[test]
    fn errors_name_the_variable() {
        for missing in [CONFIG_URI, LEDGER_TABLE] {
            let pairs: Vec<_> = REQUIRED
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .chain([(missing, " ")])
                .collect();
            assert_eq!(
                settings(&pairs).unwrap_err(),
                SettingsError::Missing { variable: missing }
            );
        }
        for (variable, value) in [(CONFIG_TTL_SECONDS, "soon"), (DRY_RUN, "maybe")] {
            let mut pairs = REQUIRED.to_vec();
            pairs.push((variable, value));
            let err = settings(&pairs).unwrap_err();
            assert!(err.to_string().contains(variable), "{err}");
        }
    }
}
