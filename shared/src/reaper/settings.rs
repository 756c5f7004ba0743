//! [`ReaperSettings`]: the batch-reaper function's deployment settings, read once per cold start
//! from its environment. The variable names shared with auto-retry are auto-retry's constants,
//! and the errors its [`SettingsError`], so both functions read the same names the same way.

use std::time::Duration;

use crate::retry::settings::DEFAULT_PROJECT_PATTERNS;
use crate::settings::Env;

pub use crate::retry::settings::{
    CONFIG_TTL_SECONDS, CONFIG_URI, DRY_RUN, PROJECT_PATTERNS, SettingsError,
};

/// Stops (and project sweeps) in flight at once (default [`DEFAULT_CONCURRENCY`]).
pub const CONCURRENCY: &str = "AUTOPILOT_REAPER_CONCURRENCY";
/// In-flight CodeBuild calls unless configured: enough to sweep thousands of batches in
/// seconds, few enough to stay under CodeBuild's per-account API rate.
pub const DEFAULT_CONCURRENCY: usize = 8;

const DEFAULT_CONFIG_TTL: Duration = crate::config::DEFAULT_CONFIG_TTL;
/// More in flight than this only buys throttling.
const MAX_CONCURRENCY: usize = 64;

/// The batch-reaper function's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaperSettings {
    /// Where the configuration is read from (parsed by the config module).
    pub config_uri: String,
    /// How long a loaded configuration is used before reading it again.
    pub config_ttl: Duration,
    /// The project-name globs IAM allows, as given (parsed by the config module).
    pub project_patterns: String,
    /// Report only, whatever the configuration says.
    pub dry_run: bool,
    /// CodeBuild calls in flight at once.
    pub concurrency: usize,
}

impl ReaperSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests). Empty values
    /// count as unset, as for auto-retry.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let env = Env::new(lookup);
        let config_uri = env.required(CONFIG_URI)?;
        let config_ttl = env.seconds(CONFIG_TTL_SECONDS, DEFAULT_CONFIG_TTL)?;
        let dry_run = env.switch(DRY_RUN, false)?;
        let concurrency = match env.text(CONCURRENCY) {
            None => DEFAULT_CONCURRENCY,
            Some(value) => match value.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => n,
                _ => {
                    return Err(SettingsError::Invalid {
                        variable: CONCURRENCY,
                        value,
                        expected: "a whole number from 1 to 64",
                    });
                }
            },
        };
        Ok(Self {
            config_uri,
            config_ttl,
            project_patterns: env.text_or(PROJECT_PATTERNS, DEFAULT_PROJECT_PATTERNS),
            dry_run,
            concurrency,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::settings::lookup_from;

    fn settings(pairs: &[(&str, &str)]) -> Result<ReaperSettings, SettingsError> {
        ReaperSettings::from_lookup(lookup_from(pairs))
    }

    #[test]
    fn defaults_apply_when_only_the_uri_is_set() {
        let s = settings(&[(CONFIG_URI, "file:/tmp/a.toml")]).unwrap();
        assert_eq!(
            s,
            ReaperSettings {
                config_uri: "file:/tmp/a.toml".into(),
                config_ttl: Duration::from_secs(60),
                project_patterns: "*".into(),
                dry_run: false,
                concurrency: 8,
            }
        );
    }

    #[test]
    fn every_variable_is_read() {
        let s = settings(&[
            (CONFIG_URI, "ssm:/autopilot"),
            (CONFIG_TTL_SECONDS, "5"),
            (PROJECT_PATTERNS, "web-*"),
            (DRY_RUN, "Yes"),
            (CONCURRENCY, "3"),
        ])
        .unwrap();
        assert_eq!(s.config_ttl, Duration::from_secs(5));
        assert_eq!(s.project_patterns, "web-*");
        assert!(s.dry_run);
        assert_eq!(s.concurrency, 3);
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(
            settings(&[(CONFIG_URI, " ")]).unwrap_err(),
            SettingsError::Missing {
                variable: CONFIG_URI
            }
        );
        for (variable, value) in [
            (CONFIG_TTL_SECONDS, "soon"),
            (DRY_RUN, "maybe"),
            (CONCURRENCY, "0"),
            (CONCURRENCY, "65"),
            (CONCURRENCY, "many"),
        ] {
            let err = settings(&[(CONFIG_URI, "file:/x"), (variable, value)]).unwrap_err();
            assert!(err.to_string().contains(variable), "{err}");
        }
    }
}
