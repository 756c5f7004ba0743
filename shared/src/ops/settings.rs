//! [`OpsSettings`]: the ops-api function's deployment settings, read once per cold start from
//! its environment, with the same names and rules as the other functions'.

use std::time::Duration;

use crate::retry::settings::DEFAULT_PROJECT_PATTERNS;
use crate::settings::Env;

pub use crate::retry::settings::{
    CONFIG_TTL_SECONDS, CONFIG_URI, LEDGER_TABLE, PROJECT_PATTERNS, SettingsError,
};

const DEFAULT_CONFIG_TTL: Duration = crate::config::DEFAULT_CONFIG_TTL;

/// The ops-api function's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsSettings {
    /// Where the configuration is read from (`AUTOPILOT_CONFIG_URI`, required). Read only by
    /// the mutating routes, on their first use.
    pub config_uri: String,
    /// How long a loaded configuration is used (`AUTOPILOT_CONFIG_TTL_SECONDS`, default 60).
    pub config_ttl: Duration,
    /// The project-name globs IAM allows (`AUTOPILOT_PROJECT_PATTERNS`, default `*`).
    pub project_patterns: String,
    /// The ledger table: `Idempotency-Key` records, start claims and auto-retry's lineage
    /// (`AUTOPILOT_LEDGER_TABLE`, required).
    pub ledger_table: String,
}

impl OpsSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests). Empty values
    /// count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let env = Env::new(lookup);
        Ok(Self {
            config_uri: env.required(CONFIG_URI)?,
            config_ttl: env.seconds(CONFIG_TTL_SECONDS, DEFAULT_CONFIG_TTL)?,
            project_patterns: env.text_or(PROJECT_PATTERNS, DEFAULT_PROJECT_PATTERNS),
            ledger_table: env.required(LEDGER_TABLE)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::settings::lookup_from;

    const REQUIRED: [(&str, &str); 2] = [
        (CONFIG_URI, "file:/tmp/autopilot.toml"),
        (LEDGER_TABLE, "ledger"),
    ];

    #[test]
    fn defaults_and_every_variable() {
        assert_eq!(
            OpsSettings::from_lookup(lookup_from(&REQUIRED)).unwrap(),
            OpsSettings {
                config_uri: "file:/tmp/autopilot.toml".into(),
                config_ttl: Duration::from_secs(60),
                project_patterns: "*".into(),
                ledger_table: "ledger".into(),
            }
        );
        let mut pairs = REQUIRED.to_vec();
        pairs.extend([(CONFIG_TTL_SECONDS, "5"), (PROJECT_PATTERNS, "web-*")]);
        let s = OpsSettings::from_lookup(lookup_from(&pairs)).unwrap();
        assert_eq!(s.config_ttl, Duration::from_secs(5));
        assert_eq!(s.project_patterns, "web-*");
    }

    #[test]
    fn errors_name_the_variable() {
        for missing in [CONFIG_URI, LEDGER_TABLE] {
            let pairs: Vec<_> = REQUIRED
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            assert_eq!(
                OpsSettings::from_lookup(lookup_from(&pairs)).unwrap_err(),
                SettingsError::Missing { variable: missing }
            );
        }
        let mut pairs = REQUIRED.to_vec();
        pairs.push((CONFIG_TTL_SECONDS, "soon"));
        let err = OpsSettings::from_lookup(lookup_from(&pairs)).unwrap_err();
        assert!(err.to_string().contains(CONFIG_TTL_SECONDS), "{err}");
    }
}
