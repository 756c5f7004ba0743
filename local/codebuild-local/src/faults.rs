//! Fault injection: throttling, server errors and latency, deterministic so tests repeat.

use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// What to inject (the body of `POST /_local/faults`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultSpec {
    /// Only these operations are affected (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations: Option<Vec<String>>,
    /// Throttle every n-th affected call (the n-th, 2n-th, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_every: Option<u64>,
    /// Throttle this fraction of affected calls, spread evenly (1.0 = all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_fraction: Option<f64>,
    /// Throttle each affected call with this probability, drawn independently per call from a
    /// generator seeded with `seed` (repeatable). Unlike `throttleFraction`, whose evenly spread
    /// pattern can phase-lock with a client's retries (two callers taking turns: one of them
    /// always lands on the throttled calls), this is how a real rate limit looks to a caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_probability: Option<f64>,
    /// Seed of `throttleProbability`'s draws (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Fail this fraction of affected calls with a server error, spread evenly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_error_fraction: Option<f64>,
    /// Status of injected server errors: 500 (default) or 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_error_status: Option<u16>,
    /// Delay added before answering each affected call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

/// The active faults and the count of calls they matched.
#[derive(Debug, Default)]
pub struct Faults {
    spec: Option<FaultSpec>,
    matched: u64,
}

/// What to do with one call.
#[derive(Debug, Default)]
pub struct Decision {
    /// Wait this long first.
    pub delay: Option<Duration>,
    /// Answer with this error instead of running the operation.
    pub error: Option<ApiError>,
}

/// Whether the k-th call (1-based) is in an evenly spread fraction `f` of calls: it is when
/// floor(k·f) steps up at k. Deterministic, unlike sampling, so a test sees the same calls fail.
fn in_fraction(k: u64, f: f64) -> bool {
    let f = f.clamp(0.0, 1.0);
    ((k as f64) * f).floor() > (((k - 1) as f64) * f).floor()
}

/// A uniform draw in [0, 1) for the k-th call under `seed` (SplitMix64 of the pair): no state
/// to keep, and the same calls throttled on every run with the same seed.
fn draw(seed: u64, k: u64) -> f64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(k)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // The top 53 bits, as a double's mantissa holds them.
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Faults {
    /// Replaces the active faults (and restarts the count).
    pub fn set(&mut self, spec: FaultSpec) {
        self.spec = Some(spec);
        self.matched = 0;
    }

    /// Removes every fault.
    pub fn clear(&mut self) {
        self.spec = None;
        self.matched = 0;
    }

    /// Decides the fate of a call to `operation`.
    pub fn decide(&mut self, operation: &str) -> Decision {
        let Some(spec) = &self.spec else {
            return Decision::default();
        };
        if spec
            .operations
            .as_ref()
            .is_some_and(|ops| !ops.iter().any(|o| o == operation))
        {
            return Decision::default();
        }
        self.matched += 1;
        let k = self.matched;
        let throttled = spec
            .throttle_every
            .is_some_and(|n| n > 0 && k.is_multiple_of(n))
            || spec.throttle_fraction.is_some_and(|f| in_fraction(k, f))
            || spec
                .throttle_probability
                .is_some_and(|p| draw(spec.seed.unwrap_or(0), k) < p);
        let error = if throttled {
            Some(ApiError::throttling())
        } else if spec
            .server_error_fraction
            .is_some_and(|f| in_fraction(k, f))
        {
            let status = match spec.server_error_status {
                Some(503) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Some(ApiError::server_error(status))
        } else {
            None
        };
        Decision {
            delay: spec.latency_ms.map(Duration::from_millis),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn pattern(faults: &mut Faults, op: &str, n: usize) -> Vec<bool> {
        (0..n).map(|_| faults.decide(op).error.is_some()).collect()
    }

    #[test]
    fn every_nth_and_fraction_are_deterministic() {
        let mut f = Faults::default();
        f.set(FaultSpec {
            throttle_every: Some(3),
            ..FaultSpec::default()
        });
        assert_eq!(
            pattern(&mut f, "X", 6),
            [false, false, true, false, false, true]
        );
        f.set(FaultSpec {
            throttle_fraction: Some(0.5),
            ..FaultSpec::default()
        });
        assert_eq!(pattern(&mut f, "X", 4), [false, true, false, true]);
        f.set(FaultSpec {
            server_error_fraction: Some(1.0),
            server_error_status: Some(503),
            ..FaultSpec::default()
        });
        assert_eq!(
            f.decide("X").error.unwrap().status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn probability_throttles_about_that_share_repeatably_and_not_in_turns() {
        let spec = FaultSpec {
            throttle_probability: Some(0.5),
            seed: Some(7),
            ..FaultSpec::default()
        };
        let mut f = Faults::default();
        f.set(spec.clone());
        let first = pattern(&mut f, "X", 10_000);
        f.set(spec);
        assert_eq!(pattern(&mut f, "X", 10_000), first, "same seed, same calls");
        let throttled = first.iter().filter(|t| **t).count();
        assert!((4_700..5_300).contains(&throttled), "{throttled}");
        // Not phase-locked: the even-numbered calls alone are not all throttled.
        let even = first.iter().skip(1).step_by(2).filter(|t| **t).count();
        assert!((2_300..2_700).contains(&even), "{even}");
        f.set(FaultSpec {
            throttle_probability: Some(0.0),
            ..FaultSpec::default()
        });
        assert!(!pattern(&mut f, "X", 100).contains(&true));
    }

    #[test]
    fn only_named_operations_are_affected() {
        let mut f = Faults::default();
        f.set(FaultSpec {
            operations: Some(vec!["RetryBuild".into()]),
            throttle_fraction: Some(1.0),
            ..FaultSpec::default()
        });
        assert!(f.decide("BatchGetBuilds").error.is_none());
        assert_eq!(
            f.decide("RetryBuild").error.unwrap().code,
            "ThrottlingException"
        );
    }
}
