//! The emulator's injectable clock: real time plus an offset that tests move forward.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

/// A clock shared by every part of the emulator (ids' timestamps, idempotency windows, ages).
///
/// It follows wall time, shifted by an offset that only grows, so a test can jump past the
/// five-minute idempotency window without sleeping.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset: Arc<Mutex<TimeDelta>>,
}

impl Clock {
    /// A clock that reads real time (offset zero).
    pub fn new() -> Self {
        Self::default()
    }

    /// The emulator's current time.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let delta = TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
        let mut offset = self.offset.lock().unwrap_or_else(PoisonError::into_inner);
        *offset = offset.checked_add(&delta).unwrap_or(TimeDelta::MAX);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn advance_moves_now_forward_for_every_clone() {
        let clock = Clock::new();
        let other = clock.clone();
        let before = clock.now();
        other.advance(std::time::Duration::from_secs(600));
        assert!(clock.now() - before >= TimeDelta::seconds(600));
    }
}
