//! [`AutoRetrySettings`]: the auto-retry function's deployment settings, read once per cold
//! start from its environment (set by the template; the end-to-end tests set the same names).

use std::time::Duration;

use crate::settings::Env;

/// Where the configuration text lives (`file:`, `ssm:`, `s3:`). Required.
pub const CONFIG_URI: &str = "AUTOPILOT_CONFIG_URI";
/// How long the configuration is cached, in seconds (default 60).
pub const CONFIG_TTL_SECONDS: &str = "AUTOPILOT_CONFIG_TTL_SECONDS";
/// The project-name globs IAM allows (comma-separated, default `*`).
pub const PROJECT_PATTERNS: &str = "AUTOPILOT_PROJECT_PATTERNS";
/// The ledger table. Required.
pub const LEDGER_TABLE: &str = "AUTOPILOT_LEDGER_TABLE";
/// The delay queue's URL. Required.
pub const DELAY_QUEUE_URL: &str = "AUTOPILOT_DELAY_QUEUE_URL";
/// The SNS topic for "gave up" notices. Optional.
pub const GAVE_UP_TOPIC_ARN: &str = "AUTOPILOT_GAVE_UP_TOPIC_ARN";
/// A glob of the initiator our own `RetryBuild` calls give builds. Optional.
pub const OWN_INITIATOR: &str = "AUTOPILOT_OWN_INITIATOR";
/// Report only, for every project (default false).
pub const DRY_RUN: &str = "AUTOPILOT_DRY_RUN";
/// Seconds between re-checks of a batch that was still running (default 60).
pub const BATCH_RECHECK_SECONDS: &str = "AUTOPILOT_BATCH_RECHECK_SECONDS";
/// Re-checks of one batch before giving up on it (default 60).
pub const BATCH_MAX_RECHECKS: &str = "AUTOPILOT_BATCH_MAX_RECHECKS";

const DEFAULT_CONFIG_TTL: Duration = crate::config::DEFAULT_CONFIG_TTL;
/// Every project, when the deployment names no patterns (shared by every function's settings).
pub(crate) const DEFAULT_PROJECT_PATTERNS: &str = "*";
const DEFAULT_BATCH_RECHECK: Duration = Duration::from_secs(60);
const DEFAULT_BATCH_MAX_RECHECKS: u32 = 60;
/// SQS delays one message at most this long, so a longer re-check interval is a mistake.
const MAX_RECHECK: Duration = Duration::from_secs(900);

pub use crate::settings::SettingsError;

/// A glob of build initiators (`*` crosses `/`, as in `autopilot-AutoRetryRole-*/*`).
#[derive(Debug, Clone)]
pub struct InitiatorPattern {
    text: String,
    matcher: globset::GlobMatcher,
}

impl InitiatorPattern {
    /// A pattern from its text.
    pub fn new(text: &str) -> Result<Self, globset::Error> {
        let glob = globset::GlobBuilder::new(text)
            .literal_separator(false)
            .build()?;
        Ok(Self {
            text: text.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    /// True when `initiator` matches.
    pub fn matches(&self, initiator: &str) -> bool {
        self.matcher.is_match(initiator)
    }

    /// The text as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The auto-retry function's settings.
#[derive(Debug, Clone)]
pub struct AutoRetrySettings {
    /// Where the configuration is read from (parsed by the config module).
    pub config_uri: String,
    /// How long a loaded configuration is used before reading it again.
    pub config_ttl: Duration,
    /// The project-name globs IAM allows, as given (parsed by the config module).
    pub project_patterns: String,
    /// The ledger table.
    pub ledger_table: String,
    /// The delay queue.
    pub delay_queue_url: String,
    /// The "gave up" topic; no notices without one.
    pub gave_up_topic_arn: Option<String>,
    /// The initiator of builds our own retries made: such a build without lineage yet is a
    /// retry whose record is still being written, not a new root.
    pub own_initiator: Option<InitiatorPattern>,
    /// Report only, whatever the configuration says.
    pub dry_run: bool,
    /// Delay between re-checks of a running batch.
    pub batch_recheck_delay: Duration,
    /// Re-checks of one batch before giving up on it.
    pub batch_max_rechecks: u32,
}

impl AutoRetrySettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests). Empty values
    /// count as unset, because templates often pass `""` for "not given".
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let env = Env::new(lookup);
        let own_initiator = env
            .text(OWN_INITIATOR)
            .map(|value| {
                InitiatorPattern::new(&value).map_err(|_| SettingsError::Invalid {
                    variable: OWN_INITIATOR,
                    value,
                    expected: "a glob",
                })
            })
            .transpose()?;
        let dry_run = env.switch(DRY_RUN, false)?;
        let batch_recheck_delay = env.seconds(BATCH_RECHECK_SECONDS, DEFAULT_BATCH_RECHECK)?;
        if batch_recheck_delay > MAX_RECHECK {
            return Err(SettingsError::Invalid {
                variable: BATCH_RECHECK_SECONDS,
                value: batch_recheck_delay.as_secs().to_string(),
                expected: "at most 900 (the longest SQS delay)",
            });
        }
        let batch_max_rechecks = env.whole_number(
            BATCH_MAX_RECHECKS,
            DEFAULT_BATCH_MAX_RECHECKS,
            "a whole number",
        )?;

        Ok(Self {
            config_uri: env.required(CONFIG_URI)?,
            config_ttl: env.seconds(CONFIG_TTL_SECONDS, DEFAULT_CONFIG_TTL)?,
            project_patterns: env.text_or(PROJECT_PATTERNS, DEFAULT_PROJECT_PATTERNS),
            ledger_table: env.required(LEDGER_TABLE)?,
            delay_queue_url: env.required(DELAY_QUEUE_URL)?,
            gave_up_topic_arn: env.text(GAVE_UP_TOPIC_ARN),
            own_initiator,
            dry_run,
            batch_recheck_delay,
            batch_max_rechecks,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::settings::lookup_from;

    fn settings(pairs: &[(&str, &str)]) -> Result<AutoRetrySettings, SettingsError> {
        AutoRetrySettings::from_lookup(lookup_from(pairs))
    }

    const REQUIRED: [(&str, &str); 3] = [
        (CONFIG_URI, "file:/tmp/autopilot.toml"),
        (LEDGER_TABLE, "ledger"),
        (DELAY_QUEUE_URL, "http://127.0.0.1:5000/123456789012/delay"),
    ];

    #[test]
    fn defaults_apply_when_only_the_required_are_set() {
        let s = settings(&REQUIRED).unwrap();
        assert_eq!(s.config_uri, "file:/tmp/autopilot.toml");
        assert_eq!(s.config_ttl, Duration::from_secs(60));
        assert_eq!(s.project_patterns, "*");
        assert_eq!(s.ledger_table, "ledger");
        assert_eq!(s.gave_up_topic_arn, None);
        assert!(s.own_initiator.is_none());
        assert!(!s.dry_run);
        assert_eq!(s.batch_recheck_delay, Duration::from_secs(60));
        assert_eq!(s.batch_max_rechecks, 60);
    }

    #[test]
    fn every_variable_is_read() {
        let mut pairs = REQUIRED.to_vec();
        pairs.extend([
            (CONFIG_TTL_SECONDS, "5"),
            (PROJECT_PATTERNS, "web-*,api"),
            (
                GAVE_UP_TOPIC_ARN,
                "arn:aws:sns:us-east-1:123456789012:gave-up",
            ),
            (OWN_INITIATOR, "autopilot-AutoRetryRole-*"),
            (DRY_RUN, "TRUE"),
            (BATCH_RECHECK_SECONDS, "2"),
            (BATCH_MAX_RECHECKS, "3"),
        ]);
        let s = settings(&pairs).unwrap();
        assert_eq!(s.config_ttl, Duration::from_secs(5));
        assert_eq!(s.project_patterns, "web-*,api");
        assert!(s.gave_up_topic_arn.is_some());
        let own = s.own_initiator.unwrap();
        assert!(own.matches("autopilot-AutoRetryRole-ABC/auto-retry"));
        assert!(!own.matches("alice"));
        assert!(s.dry_run);
        assert_eq!(s.batch_recheck_delay, Duration::from_secs(2));
        assert_eq!(s.batch_max_rechecks, 3);
    }

    #[test]
    fn errors_name_the_variable() {
        for missing in [CONFIG_URI, LEDGER_TABLE, DELAY_QUEUE_URL] {
            let pairs: Vec<_> = REQUIRED
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = settings(&pairs).unwrap_err();
            assert_eq!(err, SettingsError::Missing { variable: missing });
            assert!(err.to_string().contains(missing));
        }
        for (variable, value) in [
            (CONFIG_TTL_SECONDS, "soon"),
            (DRY_RUN, "maybe"),
            (BATCH_RECHECK_SECONDS, "-1"),
            (BATCH_RECHECK_SECONDS, "901"),
            (BATCH_MAX_RECHECKS, "many"),
            (OWN_INITIATOR, "role-[unclosed"),
        ] {
            let mut pairs = REQUIRED.to_vec();
            pairs.push((variable, value));
            let err = settings(&pairs).unwrap_err();
            assert!(err.to_string().contains(variable), "{err}");
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let mut pairs = REQUIRED.to_vec();
        pairs.extend([(GAVE_UP_TOPIC_ARN, ""), (OWN_INITIATOR, " ")]);
        let s = settings(&pairs).unwrap();
        assert_eq!(s.gave_up_topic_arn, None);
        assert!(s.own_initiator.is_none());
        let pairs = [
            (CONFIG_URI, "file:/x"),
            (LEDGER_TABLE, ""),
            (DELAY_QUEUE_URL, "q"),
        ];
        assert_eq!(
            settings(&pairs).unwrap_err(),
            SettingsError::Missing {
                variable: LEDGER_TABLE
            }
        );
    }
}
