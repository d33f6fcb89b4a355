//! The host's tick source: nanoseconds since the host started, or a hand-advanced counter
//! in tests.
//!
//! Shared by every reactor (an `Arc` inside the reactor set); read only by the host, which
//! passes the value into the engine. Nothing else in the project reads a clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Ticks per second of every [`Clock`]: one tick is one nanosecond.
pub const TICKS_PER_SEC: u64 = 1_000_000_000;

/// Where ticks come from.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Monotonic nanoseconds since `start`.
    Monotonic {
        /// The instant of tick 0.
        start: Instant,
    },
    /// A counter that tests advance by hand.
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// A monotonic clock starting now.
    pub fn monotonic() -> Clock {
        Clock::Monotonic {
            start: Instant::now(),
        }
    }

    /// A manual clock at tick 0, and the handle that advances it.
    pub fn manual() -> (Clock, ManualClock) {
        let ticks = Arc::new(AtomicU64::new(0));
        (Clock::Manual(ticks.clone()), ManualClock { ticks })
    }

    /// The current tick.
    pub fn now_ticks(&self) -> u64 {
        match self {
            Clock::Monotonic { start } => {
                u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
            }
            Clock::Manual(ticks) => ticks.load(Ordering::Acquire),
        }
    }
}

/// The test handle of a [`Clock::Manual`].
#[derive(Debug, Clone)]
pub struct ManualClock {
    ticks: Arc<AtomicU64>,
}

impl ManualClock {
    /// Moves time forward by `delta_ticks`.
    pub fn advance(&self, delta_ticks: u64) {
        self.ticks.fetch_add(delta_ticks, Ordering::AcqRel);
    }

    /// The current tick.
    pub fn now_ticks(&self) -> u64 {
        self.ticks.load(Ordering::Acquire)
    }
}
