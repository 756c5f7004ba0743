//! [`TriggerSettings`]: the batch-trigger function's deployment settings, read once per cold
//! start from its environment. A trigger starts batches from the same inputs as the batch
//! starter (the configuration, the IAM bound, the ledger, a dry-run switch), so it reads the
//! same variables through the same type:
//!
//! | variable                       | meaning                                    | default |
//! |--------------------------------|--------------------------------------------|---------|
//! | `AUTOPILOT_CONFIG_URI`         | where the configuration is read (required) |         |
//! | `AUTOPILOT_CONFIG_TTL_SECONDS` | how long a loaded configuration is kept    | 60      |
//! | `AUTOPILOT_PROJECT_PATTERNS`   | the project-name globs IAM allows          | `*`     |
//! | `AUTOPILOT_LEDGER_TABLE`       | the idempotency ledger's table (required)  |         |
//! | `AUTOPILOT_DRY_RUN`            | report only, for every project             | false   |

/// The batch-trigger function's settings: the batch starter's (see
/// [`StarterSettings`](crate::start::settings::StarterSettings), whose tests cover reading them).
pub type TriggerSettings = crate::start::settings::StarterSettings;
