//! Which branch or pull request a batch builds, from what the batch itself carries.
//!
//! Order of trust:
//! 1. The environment variables our own starts set (`AUTOPILOT_PR`, then `AUTOPILOT_BRANCH`):
//!    the webhook worker knows exactly what it started, whatever `sourceVersion` it passed.
//! 2. `sourceVersion`, in the forms CodeBuild documents:
//!    - `refs/heads/x` → branch `x`;
//!    - `pr/42`, `refs/pull/42/head` (or `/merge`) → pull request `42` (GitHub);
//!    - `refs/merge-requests/7/head` → pull request `7` (GitLab);
//!    - `refs/pull-requests/7/from` → pull request `7` (Bitbucket Server);
//!    - any of these with a `^{commit}` suffix (CodeBuild's "reference and commit" form) → the
//!      same key, since the commit only pins where the ref pointed;
//!    - `refs/tags/...` → unknown: a tag names a release, and a newer batch for the same tag is
//!      not "newer code", so tags are never superseded;
//!    - any other `refs/...` → unknown;
//!    - a commit id (7 to 64 hexadecimal digits) → unknown: a commit belongs to no branch;
//!    - an empty value → unknown (CodeBuild then builds the default branch, whose name the
//!      batch does not carry);
//!    - any other bare name that is a valid git ref name (`main`, `feature/login`) → that
//!      branch. CodeBuild also accepts a bare tag name or an S3 object version here and the
//!      batch cannot tell them apart; treating those as a "branch" only lets a later batch of
//!      the very same tag or object version supersede an earlier one, which builds the same
//!      thing, so the guess costs nothing. A value that is not a valid ref name is unknown.
//!
//! A batch whose key is unknown is never superseded (`branch_unknown`).

use super::BranchKey;
use crate::model::{BuildBatch, EnvironmentVariableType};

/// Environment variable our own starts set to the pull request number.
pub const PR_ENV: &str = "AUTOPILOT_PR";
/// Environment variable our own starts set to the branch name.
pub const BRANCH_ENV: &str = "AUTOPILOT_BRANCH";

/// The branch or pull request a batch builds: the `AUTOPILOT_PR` / `AUTOPILOT_BRANCH`
/// environment variables our own starts set, else the `sourceVersion` forms (`refs/heads/x`,
/// `pr/42`, ...), else `None`. See the module documentation for every form.
pub fn branch_of(batch: &BuildBatch) -> Option<BranchKey> {
    if let Some(pr) = plaintext_env(batch, PR_ENV) {
        return Some(BranchKey::PullRequest(pr.to_owned()));
    }
    if let Some(branch) = plaintext_env(batch, BRANCH_ENV) {
        // Tolerate a full ref, so the same branch compares equal whichever way it was given.
        let name = branch.strip_prefix("refs/heads/").unwrap_or(branch);
        if !name.is_empty() {
            return Some(BranchKey::Branch(name.to_owned()));
        }
    }
    batch
        .source_version
        .as_deref()
        .and_then(from_source_version)
}

/// The key a `sourceVersion` names, `None` when it names no branch or pull request.
pub fn from_source_version(source_version: &str) -> Option<BranchKey> {
    let reference = strip_commit_suffix(source_version.trim());
    if reference.is_empty() {
        return None;
    }
    if let Some(number) = reference.strip_prefix("pr/") {
        return pull_request(number);
    }
    if let Some(rest) = reference.strip_prefix("refs/") {
        return from_full_ref(rest);
    }
    if is_commit_id(reference) || !is_ref_name(reference) {
        return None;
    }
    Some(BranchKey::Branch(reference.to_owned()))
}

/// `refs/<rest>`.
fn from_full_ref(rest: &str) -> Option<BranchKey> {
    if let Some(name) = rest.strip_prefix("heads/") {
        return is_ref_name(name).then(|| BranchKey::Branch(name.to_owned()));
    }
    let numbered = |prefix: &str, suffixes: &[&str]| {
        let tail = rest.strip_prefix(prefix)?;
        let (number, suffix) = tail.split_once('/')?;
        suffixes.contains(&suffix).then_some(number)
    };
    let number = numbered("pull/", &["head", "merge"])
        .or_else(|| numbered("merge-requests/", &["head", "merge"]))
        .or_else(|| numbered("pull-requests/", &["from", "merge"]))?;
    pull_request(number)
}

fn pull_request(number: &str) -> Option<BranchKey> {
    let all_digits = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
    all_digits.then(|| BranchKey::PullRequest(number.to_owned()))
}

/// `ref^{commit}` → `ref` (CodeBuild's "reference and a commit ID" form).
fn strip_commit_suffix(version: &str) -> &str {
    match version.rsplit_once("^{") {
        Some((reference, commit)) if commit.ends_with('}') => reference,
        _ => version,
    }
}

/// 7 to 64 hexadecimal digits: an abbreviated or full SHA-1 / SHA-256 commit id. A branch
/// that happens to look like one is misread as a commit, which only means it is never
/// superseded: the safe side.
fn is_commit_id(text: &str) -> bool {
    (7..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The parts of `git check-ref-format` that matter here: no spaces, control characters or
/// `~^:?*[\`, no `..` or `@{`, no empty, leading-dot or `.lock` component, not `@`.
fn is_ref_name(name: &str) -> bool {
    let bad_char = |c: char| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c);
    !name.is_empty()
        && name != "@"
        && !name.contains("..")
        && !name.contains("@{")
        && !name.ends_with('.')
        && !name.chars().any(bad_char)
        && name
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && !part.ends_with(".lock"))
}

/// The trimmed value of a plain-text environment variable, when set and not empty. A variable
/// of another type holds a parameter or secret reference, not the value.
fn plaintext_env<'a>(batch: &'a BuildBatch, name: &str) -> Option<&'a str> {
    batch
        .environment_variables
        .iter()
        .filter(|v| v.name == name && v.variable_type == EnvironmentVariableType::Plaintext)
        .map(|v| v.value.trim())
        .find(|v| !v.is_empty())
}
