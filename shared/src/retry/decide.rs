//! [`decide_retry`]: from a classification, the project's policy and the chain's history to a
//! [`RetryDecision`]. Pure: no I/O, no clock; the handler supplies every input and acts.

use std::time::Duration;

use super::class::{Classification, FailureClass, Reason};
use super::classify::classify_message;
use super::work::GaveUpBecause;
use crate::config::{MAX_BACKOFF, RetryClass, RetryPolicy};
use crate::model::NativeAutoRetry;

/// Everything one retry decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct RetryContext<'a> {
    /// What kind of failure the build had.
    pub classification: Classification,
    /// The project's policy.
    pub policy: &'a RetryPolicy,
    /// CodeBuild's own auto-retry of the build, when it has one.
    pub native_auto_retry: Option<&'a NativeAutoRetry>,
    /// Retries already made in the chain: 0 for a root, else the lineage's attempt (or the
    /// batch's retry count).
    pub prior_attempts: u32,
}

/// Why a failed build is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The classifier's own reason: a permanent failure (`command_failed`), text no rule knows
    /// (`unclassified`), or not a failure at all (`stopped`, `succeeded`, `in_progress`).
    Classified(Reason),
    /// CodeBuild retries the build itself (`autoRetryLimit`); two retriers would duplicate.
    NativeAutoRetry,
    /// The project's policy has auto-retry switched off.
    RetryDisabled,
    /// The class is retryable in general but not enabled for this project.
    ClassNotEnabled,
    /// The build timed out and the project does not retry timeouts.
    TimedOutNotEnabled,
}

impl SkipReason {
    /// The stable snake_case name, as logged in the `reason` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classified(reason) => reason.as_str(),
            Self::NativeAutoRetry => "native_auto_retry",
            Self::RetryDisabled => "retry_disabled",
            Self::ClassNotEnabled => "class_not_enabled",
            Self::TimedOutNotEnabled => "timed_out_not_enabled",
        }
    }
}

/// What to do with one failed build (or batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Retry it, as retry number `attempt` of the chain, after `backoff`.
    Retry {
        /// 1 for the root's first retry.
        attempt: u32,
        /// How long to wait first (`backoff_initial × 2^(attempt-1)`, at most 900 s).
        backoff: Duration,
        /// The classifier's reason for the failure (`rate_limited`, ...).
        reason: Reason,
    },
    /// Leave it alone.
    Skip(SkipReason),
    /// Retryable in kind, but the chain has had its retries.
    GiveUp {
        /// Why.
        because: GaveUpBecause,
        /// Retries made so far.
        attempts: u32,
    },
}

impl RetryDecision {
    /// The logged `action`: `retry`, `skip` or `give_up`.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Retry { .. } => "retry",
            Self::Skip(_) => "skip",
            Self::GiveUp { .. } => "give_up",
        }
    }

    /// The logged `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Retry { reason, .. } => reason.as_str(),
            Self::Skip(reason) => reason.as_str(),
            Self::GiveUp { because, .. } => gave_up_reason(*because),
        }
    }
}

/// The stable snake_case name of a give-up cause (the same text as its JSON form).
pub fn gave_up_reason(because: GaveUpBecause) -> &'static str {
    match because {
        GaveUpBecause::RetryCapReached => "retry_cap_reached",
        GaveUpBecause::ProjectBudgetSpent => "project_budget_spent",
        GaveUpBecause::BreakerOpen => "breaker_open",
        GaveUpBecause::BatchNeverFinished => "batch_never_finished",
    }
}

/// Decides whether to retry. Rules, in order: not a failure → skip with its reason; CodeBuild's
/// own auto-retry → skip; policy off → skip; permanent / unclassified → skip with the
/// classifier's reason; timed out → one retry only with `retry_timed_out`; a class the project
/// does not enable → skip; the chain at its cap (`max_retries` for transient, 1 otherwise) →
/// give up; else retry number `prior_attempts + 1` after the doubled backoff.
pub fn decide_retry(context: &RetryContext<'_>) -> RetryDecision {
    let RetryContext {
        classification,
        policy,
        native_auto_retry,
        prior_attempts,
    } = *context;
    let skip = RetryDecision::Skip;
    if classification.class == FailureClass::NotAFailure {
        return skip(SkipReason::Classified(classification.reason));
    }
    // Before anything else about a failure: even a permanent failure of such a build is
    // CodeBuild's to handle, and saying so is the clearest log line.
    if native_auto_retry.is_some_and(NativeAutoRetry::owns_retries) {
        return skip(SkipReason::NativeAutoRetry);
    }
    if !policy.enabled {
        return skip(SkipReason::RetryDisabled);
    }
    let cap = match classification.class {
        FailureClass::Permanent | FailureClass::Unclassified | FailureClass::NotAFailure => {
            return skip(SkipReason::Classified(classification.reason));
        }
        FailureClass::TimedOut if !policy.retry_timed_out => {
            return skip(SkipReason::TimedOutNotEnabled);
        }
        FailureClass::TimedOut => 1,
        FailureClass::Transient if policy.classes.contains(&RetryClass::Transient) => {
            policy.max_retries
        }
        FailureClass::RetryOnce if policy.classes.contains(&RetryClass::RetryOnce) => 1,
        FailureClass::Transient | FailureClass::RetryOnce => {
            return skip(SkipReason::ClassNotEnabled);
        }
    };
    if prior_attempts >= cap {
        return RetryDecision::GiveUp {
            because: GaveUpBecause::RetryCapReached,
            attempts: prior_attempts,
        };
    }
    let attempt = prior_attempts.saturating_add(1);
    RetryDecision::Retry {
        attempt,
        backoff: backoff_for(policy.backoff_initial, attempt),
        reason: classification.reason,
    }
}

/// `initial × 2^(attempt-1)`, at most [`MAX_BACKOFF`] (SQS's longest message delay).
pub fn backoff_for(initial: Duration, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1);
    // 2^10 × 1 s already passes 900 s; larger exponents only risk overflow.
    let factor = 2u32.saturating_pow(doublings.min(20));
    initial.saturating_mul(factor).min(MAX_BACKOFF)
}

/// True when the build log's tail may change the answer: a buildspec command failed (which can
/// hide a registry rate limit inside `docker build`) and the project reads tails.
pub fn wants_log_tail(classification: Classification, policy: &RetryPolicy) -> bool {
    policy.read_log_tail
        && classification.class == FailureClass::Permanent
        && classification.reason == Reason::CommandFailed
}

/// Upgrades a `command_failed` classification when a line of the log tail classifies as
/// transient (the newest such line wins). Anything else is returned unchanged: the tail may only
/// turn a "no" into a "yes" for the transient class, never withhold a retry.
pub fn refine_with_log_tail(classification: Classification, lines: &[String]) -> Classification {
    if classification.class != FailureClass::Permanent
        || classification.reason != Reason::CommandFailed
    {
        return classification;
    }
    lines
        .iter()
        .rev()
        .map(|line| classify_message(line))
        .find(|found| found.class == FailureClass::Transient)
        .unwrap_or(classification)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const RATE: Classification = Classification::new(FailureClass::Transient, Reason::RateLimited);
    const FAULT: Classification =
        Classification::new(FailureClass::RetryOnce, Reason::ServiceFault);
    const TIMEOUT: Classification = Classification::new(FailureClass::TimedOut, Reason::TimedOut);
    const TESTS: Classification =
        Classification::new(FailureClass::Permanent, Reason::CommandFailed);

    fn decide(c: Classification, policy: &RetryPolicy, prior: u32) -> RetryDecision {
        decide_retry(&RetryContext {
            classification: c,
            policy,
            native_auto_retry: None,
            prior_attempts: prior,
        })
    }

    fn retry(attempt: u32, secs: u64, reason: Reason) -> RetryDecision {
        RetryDecision::Retry {
            attempt,
            backoff: Duration::from_secs(secs),
            reason,
        }
    }

    fn cap(attempts: u32) -> RetryDecision {
        RetryDecision::GiveUp {
            because: GaveUpBecause::RetryCapReached,
            attempts,
        }
    }

    #[test]
    fn transient_is_retried_up_to_max_retries_with_doubling_backoff() {
        let policy = RetryPolicy::default();
        assert_eq!(decide(RATE, &policy, 0), retry(1, 30, Reason::RateLimited));
        assert_eq!(decide(RATE, &policy, 1), retry(2, 60, Reason::RateLimited));
        assert_eq!(decide(RATE, &policy, 2), cap(2));
        assert_eq!(decide(RATE, &policy, 7), cap(7));
        let five = RetryPolicy {
            max_retries: 5,
            ..RetryPolicy::default()
        };
        assert_eq!(decide(RATE, &five, 4), retry(5, 480, Reason::RateLimited));
    }

    #[test]
    fn retry_once_and_timed_out_get_one_retry() {
        let policy = RetryPolicy::default();
        assert_eq!(
            decide(FAULT, &policy, 0),
            retry(1, 30, Reason::ServiceFault)
        );
        assert_eq!(decide(FAULT, &policy, 1), cap(1));
        assert_eq!(
            decide(TIMEOUT, &policy, 0),
            RetryDecision::Skip(SkipReason::TimedOutNotEnabled)
        );
        let timeouts = RetryPolicy {
            retry_timed_out: true,
            ..RetryPolicy::default()
        };
        assert_eq!(
            decide(TIMEOUT, &timeouts, 0),
            retry(1, 30, Reason::TimedOut)
        );
        assert_eq!(decide(TIMEOUT, &timeouts, 1), cap(1));
    }

    #[test]
    fn skips_carry_stable_reasons() {
        let policy = RetryPolicy::default();
        let cases = [
            (TESTS, "command_failed"),
            (Classification::UNCLASSIFIED, "unclassified"),
            (
                Classification::new(FailureClass::NotAFailure, Reason::Stopped),
                "stopped",
            ),
            (
                Classification::new(FailureClass::NotAFailure, Reason::Succeeded),
                "succeeded",
            ),
            (
                Classification::new(FailureClass::Permanent, Reason::BuildspecError),
                "buildspec_error",
            ),
        ];
        for (classification, reason) in cases {
            let decision = decide(classification, &policy, 0);
            assert_eq!(decision.action(), "skip", "{classification:?}");
            assert_eq!(decision.reason(), reason, "{classification:?}");
        }
    }

    #[test]
    fn classes_not_enabled_and_disabled_policy_skip() {
        let only_transient = RetryPolicy {
            classes: vec![RetryClass::Transient],
            ..RetryPolicy::default()
        };
        assert_eq!(
            decide(FAULT, &only_transient, 0).reason(),
            "class_not_enabled"
        );
        assert_eq!(decide(RATE, &only_transient, 0).action(), "retry");
        let none = RetryPolicy {
            classes: vec![],
            ..RetryPolicy::default()
        };
        assert_eq!(decide(RATE, &none, 0).reason(), "class_not_enabled");
        let off = RetryPolicy {
            enabled: false,
            ..RetryPolicy::default()
        };
        assert_eq!(decide(RATE, &off, 0).reason(), "retry_disabled");
    }

    #[test]
    fn native_auto_retry_is_left_to_codebuild_for_every_failure() {
        let policy = RetryPolicy::default();
        let native = NativeAutoRetry {
            limit: 2,
            number: 2,
            next: None,
            previous: None,
        };
        for classification in [RATE, FAULT, TESTS] {
            let decision = decide_retry(&RetryContext {
                classification,
                policy: &policy,
                native_auto_retry: Some(&native),
                prior_attempts: 0,
            });
            assert_eq!(decision, RetryDecision::Skip(SkipReason::NativeAutoRetry));
        }
        let unused = NativeAutoRetry { limit: 0, ..native };
        let decision = decide_retry(&RetryContext {
            classification: RATE,
            policy: &policy,
            native_auto_retry: Some(&unused),
            prior_attempts: 0,
        });
        assert_eq!(decision.action(), "retry");
    }

    #[test]
    fn backoff_doubles_and_stops_at_900_seconds() {
        let s = Duration::from_secs;
        assert_eq!(backoff_for(s(30), 1), s(30));
        assert_eq!(backoff_for(s(30), 2), s(60));
        assert_eq!(backoff_for(s(30), 5), s(480));
        assert_eq!(backoff_for(s(30), 6), s(900));
        assert_eq!(backoff_for(s(30), u32::MAX), s(900));
        assert_eq!(backoff_for(Duration::ZERO, 3), Duration::ZERO);
    }

    #[test]
    fn give_up_reasons_match_their_json_names() {
        for because in [
            GaveUpBecause::RetryCapReached,
            GaveUpBecause::ProjectBudgetSpent,
            GaveUpBecause::BreakerOpen,
            GaveUpBecause::BatchNeverFinished,
        ] {
            assert_eq!(
                serde_json::to_value(because).unwrap(),
                serde_json::json!(gave_up_reason(because))
            );
        }
    }

    #[test]
    fn log_tail_upgrades_only_a_failed_command_and_only_to_transient() {
        let lines: Vec<String> = [
            "[Container] Running command docker build .",
            "toomanyrequests: You have reached your pull rate limit.",
            "[Container] Command did not exit successfully docker build . exit status 1",
        ]
        .map(String::from)
        .to_vec();
        let refined = refine_with_log_tail(TESTS, &lines);
        assert_eq!(refined.class, FailureClass::Transient);
        assert_eq!(refined.reason, Reason::RateLimited);
        // Not a failed command: the tail is not consulted.
        let yaml = Classification::new(FailureClass::Permanent, Reason::BuildspecError);
        assert_eq!(refine_with_log_tail(yaml, &lines), yaml);
        // Nothing transient in the tail: unchanged.
        let plain = vec!["FAIL: test_login (expected 200, got 500)".to_owned()];
        assert_eq!(refine_with_log_tail(TESTS, &plain), TESTS);
        assert!(wants_log_tail(
            TESTS,
            &RetryPolicy {
                read_log_tail: true,
                ..RetryPolicy::default()
            }
        ));
        assert!(!wants_log_tail(TESTS, &RetryPolicy::default()));
        assert!(!wants_log_tail(
            RATE,
            &RetryPolicy {
                read_log_tail: true,
                ..RetryPolicy::default()
            }
        ));
    }
}
