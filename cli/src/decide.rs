//! `autopilot decide <event.json>`: what auto-retry would do with one build state change, and
//! why, without calling AWS. Given build batches instead, what the batch reaper would do
//! ([`reaper`]).
//!
//! The steps mirror the single-build flow of `autopilot::retry::handler` and call the crate's
//! own pure functions ([`classify`], [`decide_retry`]); only what needs AWS is assumed instead:
//! the retry book's lineage (none: the first attempt), `BatchGetBuilds`' view of CodeBuild's own
//! auto-retry and batch membership (neither), and the build log's tail (not read).

use std::path::Path;

use autopilot::config::{Config, RetryPolicy};
use autopilot::model::BuildStateChangeEvent;
use autopilot::model::build_event::BUILD_STATE_CHANGE;
use autopilot::retry::decide::wants_log_tail;
use autopilot::retry::handler::{Action, is_retry_candidate};
use autopilot::retry::work::DelayedWork;
use autopilot::retry::{RetryContext, RetryDecision, classify, decide_retry};
use serde::Serialize;
use serde_json::Value;

use crate::args::DecideArgs;
use crate::config_file;
use crate::error::CliError;

pub mod reaper;

/// The reason auto-retry logs for a project no `[[projects]]` entry covers.
const PROJECT_NOT_CONFIGURED: &str = "project_not_configured";

/// The answer `decide` prints: the handler's decision-record fields, and what was assumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// What the handler would log first: `retry`, `skip`, `give_up`, `delay` (a retry waiting
    /// out its backoff) or `dry_run`.
    pub action: &'static str,
    /// Why, machine-readable (the handler's `reason`).
    pub reason: &'static str,
    /// The failure class.
    pub class: &'static str,
    /// The project.
    pub project: String,
    /// The build (`project:uuid`).
    pub build_id: String,
    /// The retry number considered (1 for the root's first retry); on giving up, the retries
    /// already made.
    pub attempt: u32,
    /// The decision itself: `retry`, `skip` or `give_up`.
    pub would: &'static str,
    /// The wait before the retry, for a retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_seconds: Option<u64>,
    /// The project's entry says dry-run.
    pub dry_run: bool,
    /// What was assumed in place of an AWS call, for a person.
    pub assumptions: Vec<String>,
}

impl Explanation {
    /// One line for a person.
    pub fn summary(&self) -> String {
        let mut line = match self.would {
            "retry" => format!(
                "would retry {} as attempt {} after {} s: {} failure ({})",
                self.build_id,
                self.attempt,
                self.backoff_seconds.unwrap_or(0),
                self.class,
                self.reason
            ),
            "give_up" => format!(
                "would give up on {} after {} retries: {}",
                self.build_id, self.attempt, self.reason
            ),
            _ => format!(
                "would skip {} ({}): {}",
                self.build_id, self.class, self.reason
            ),
        };
        if self.dry_run {
            line.push_str(" [dry-run: only logged]");
        }
        for assumption in &self.assumptions {
            line.push_str("; ");
            line.push_str(assumption);
        }
        line
    }
}

/// Reads the event (and the configuration, when given), prints the [`Explanation`] as JSON on
/// stdout and its summary on stderr.
pub fn run(args: &DecideArgs) -> Result<(), CliError> {
    let config = match &args.config {
        Some(path) => Some(config_file::load(path, &args.patterns)?),
        None => None,
    };
    let text = config_file::read_text(&args.event)?;
    // Build batches go to the reaper's explanation; anything else is an auto-retry event.
    if let Some(batches) = reaper::read_batches(&args.event, &text)? {
        let now = match &args.now {
            Some(text) => reaper::parse_now(text)?,
            None => std::time::SystemTime::now(),
        };
        let explanation = reaper::explain(&batches, config.as_ref(), now);
        println!("{}", serde_json::to_string(&explanation)?);
        eprintln!("{}", explanation.summary());
        return Ok(());
    }
    let input = read_input(&args.event, &text)?;
    let explanation = explain(&input, config.as_ref());
    println!("{}", serde_json::to_string(&explanation)?);
    eprintln!("{}", explanation.summary());
    Ok(())
}

/// A build state change, as delivered or as the delay queue brings it back.
#[derive(Debug, Clone)]
pub struct DecideInput {
    /// The event.
    pub event: BuildStateChangeEvent,
    /// The retry number decided before a backoff, for a delay-queue message.
    pub after_backoff: Option<u32>,
}

/// Parses the file's JSON the way the handler does: a `retry_after_backoff` delay-queue message
/// (its `event` and `attempt`) or a bare event whose `detail-type` must be a build state change.
pub fn read_input(path: &Path, text: &str) -> Result<DecideInput, CliError> {
    let bad = |message: String| CliError::BadEvent {
        path: path.to_owned(),
        message,
    };
    let raw: Value = serde_json::from_str(text).map_err(|err| bad(format!("not JSON: {err}")))?;
    let (raw, after_backoff) = if raw.get("kind").is_some() {
        match serde_json::from_value::<DelayedWork>(raw) {
            Ok(DelayedWork::RetryAfterBackoff { event, attempt }) => (event, Some(attempt)),
            Ok(DelayedWork::BatchRecheck { .. }) => {
                return Err(bad(
                    "a batch re-check message: decide explains single-build events only".into(),
                ));
            }
            Err(err) => return Err(bad(format!("unreadable delay-queue message: {err}"))),
        }
    } else {
        (raw, None)
    };
    let detail_type = raw.get("detail-type").and_then(Value::as_str);
    if detail_type != Some(BUILD_STATE_CHANGE) {
        return Err(bad(format!(
            "expected a {BUILD_STATE_CHANGE:?} event, got detail-type {detail_type:?}"
        )));
    }
    let event = serde_json::from_value(raw)
        .map_err(|err| bad(format!("unreadable build state change: {err}")))?;
    Ok(DecideInput {
        event,
        after_backoff,
    })
}

/// What auto-retry would do with `input` under `config` (`None`: the default policy for every
/// project).
pub fn explain(input: &DecideInput, config: Option<&Config>) -> Explanation {
    let event = &input.event;
    let classification = classify(event);
    // The retry number considered: from a delay-queue message, else the first (no lineage).
    let prior_attempts = input.after_backoff.map_or(0, |a| a.saturating_sub(1));
    let mut explanation = Explanation {
        action: "skip",
        reason: classification.reason.as_str(),
        class: classification.class.as_str(),
        project: event.detail.project_name.clone(),
        build_id: event.build_id().id(),
        attempt: prior_attempts.saturating_add(1),
        would: "skip",
        backoff_seconds: None,
        dry_run: false,
        assumptions: Vec::new(),
    };
    if !is_retry_candidate(event.status()) {
        return explanation;
    }

    let default_policy = RetryPolicy::default();
    let (policy, dry_run) = match config {
        None => {
            explanation
                .assumptions
                .push("no --config: the default retry policy applies".into());
            (&default_policy, false)
        }
        Some(config) => match config.entry_for(&explanation.project) {
            Some(entry) => (&entry.retry, entry.dry_run),
            None => {
                explanation.reason = PROJECT_NOT_CONFIGURED;
                return explanation;
            }
        },
    };
    explanation.dry_run = dry_run;
    explanation.assumptions.push(match input.after_backoff {
        Some(attempt) => {
            format!(
                "delay-queue message for attempt {attempt}: assumed {prior_attempts} prior retries"
            )
        }
        None => "no lineage known (no retry book): assumed the first attempt".into(),
    });
    explanation
        .assumptions
        .push("no BatchGetBuilds: assumed not in a batch and no CodeBuild auto-retry".into());
    if wants_log_tail(classification, policy) {
        explanation.assumptions.push(
            "the project reads the log tail, not read here: a rate limit there would make this transient"
                .into(),
        );
    }

    let decision = decide_retry(&RetryContext {
        classification,
        policy,
        native_auto_retry: None,
        prior_attempts,
    });
    apply(&mut explanation, decision, input.after_backoff.is_none());
    explanation
}

/// Fills in the decision, with the action the handler logs first: a dry run only logs; a retry
/// on first delivery with a backoff goes to the delay queue.
fn apply(explanation: &mut Explanation, decision: RetryDecision, first_delivery: bool) {
    explanation.would = decision.action();
    explanation.reason = decision.reason();
    explanation.action = match decision {
        RetryDecision::Skip(_) => Action::Skip.as_str(),
        _ if explanation.dry_run => Action::DryRun.as_str(),
        RetryDecision::GiveUp { .. } => Action::GiveUp.as_str(),
        RetryDecision::Retry { backoff, .. } if first_delivery && !backoff.is_zero() => {
            Action::Delay.as_str()
        }
        RetryDecision::Retry { .. } => Action::Retry.as_str(),
    };
    match decision {
        RetryDecision::Retry {
            attempt, backoff, ..
        } => {
            explanation.attempt = attempt;
            explanation.backoff_seconds = Some(backoff.as_secs());
        }
        RetryDecision::GiveUp { attempts, .. } => explanation.attempt = attempts,
        RetryDecision::Skip(_) => {}
    }
}
