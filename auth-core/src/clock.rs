//! An injected clock, so that everything that checks time can be tested without sleeping.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// A source of wall-clock time.
///
/// Expiry checks, lockout windows and audit timestamps read time through this trait, never
/// through [`SystemTime::now`] directly, so tests can move time forward deterministically
/// with [`ManualClock`].
pub trait Clock: Send + Sync + Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// A clock standing at 2026-01-01T00:00:00Z, a fixed point that makes test output stable.
    pub fn at_fixed_epoch() -> Self {
        Self::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }

    /// Sets the clock to `to` (which may be earlier, to test clock steps backwards).
    pub fn set(&self, to: SystemTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The shared clock handle most types store.
pub type SharedClock = Arc<dyn Clock>;

/// The default shared clock: the system clock.
pub fn system_clock() -> SharedClock {
    // One shared instance: an attempt takes the clock on every request.
    static SYSTEM: std::sync::LazyLock<SharedClock> =
        std::sync::LazyLock::new(|| Arc::new(SystemClock));
    SYSTEM.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let clock = ManualClock::at_fixed_epoch();
        let other = clock.clone();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        other.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), start + Duration::from_secs(90));
        clock.set(start);
        assert_eq!(other.now(), start);
    }
}
