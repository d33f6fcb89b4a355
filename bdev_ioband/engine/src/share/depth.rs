//! The window in force when `io_throttle` is 0 (auto): how many I/Os a weight share keeps
//! in flight while two or more groups are active, adapted to the base's latency.
//!
//! Owned by the share, on its owner thread; fed from completions only (one addition and
//! one comparison per I/O, the rest once per period).
//!
//! # Why it adapts
//! The window keeps the base's queue short, so that a low-depth tenant's next I/O does not
//! wait behind the others' backlog, and makes backlogged tenants queue in the share, where
//! virtual time orders them by weight. How short is a property of the base, not of the
//! share: a device that completes `X` I/Os per second with an unloaded latency `L` needs
//! about `X·L` I/Os in flight to stay busy (its bandwidth-delay product). A fixed window is
//! either below that on a fast NVMe namespace (it then throws throughput away) or far above
//! it on a slow device (it then protects nobody). dm-ioband's fixed 4 is both, depending on
//! the device.
//!
//! # The rule (latency-floor AIMD, as TCP Vegas and BBR judge a path)
//! - The **floor** is the least completion latency of a drained share: what an I/O takes
//!   when it does not queue. A **probe** measures it: a period in which nothing at all is
//!   dispatched at or above [`PROBE_DEPTH`] (not reservations, not anyone), lasting until
//!   an I/O has completed into the drained share (or for 8 periods at most: slow requests
//!   may hold the probe's slots); the least latency of those completions is the floor. Any later period that sees less lowers it. It is stale
//!   [`FLOOR_TTL_MS`] after its probe (and before the first): the next period in which
//!   the window binds probes again, so one probe in `FLOOR_TTL_MS` at most, whose cost
//!   is the drain of a short queue.
//! - Every period (16 floors, within 1..=100 ms) in which the window bound (a dispatch
//!   waited for it), the window moves: down by a quarter if the period's mean latency was
//!   more than half and more than [`QUEUE_DELAY_MIN_US`] above the floor (the base is
//!   queueing), else up by an eighth (at least one); never below [`MIN_DEPTH`] nor above
//!   `io_limit`. It settles about half above the bandwidth-delay product: the base stays
//!   busy even when its latency jitters (a rate limiter's time slices, a preempted
//!   reactor), and a low-depth tenant's I/O, which finds a slot kept free for it, waits
//!   behind about half a device's worth of others. After a probe it resumes from half of
//!   what it was.
//! - Periods in which the window did not bind leave it alone: the latency then says
//!   nothing about it.

/// Least depth the rule goes down to: dm-ioband's io_throttle. With mixed I/O sizes the
/// floor (set by the small I/O) understates what large ones take, so the latency rule
/// alone would go down to a depth that leaves the base idle between large I/Os.
pub(super) const MIN_DEPTH: u32 = 4;
/// In-flight level of a probe: everything else waits until the share has drained to it.
pub(super) const PROBE_DEPTH: u32 = 2;
/// Most periods a probe waits for the share to drain.
const PROBE_PERIODS_MAX: u64 = 8;
/// Queueing delay, in µs, below which the window is not narrowed: the shortest round trip a
/// remote tenant has (NVMe/TCP or iSCSI over loopback takes more). Below it a narrower
/// window buys a tenant nothing it could notice, and costs throughput where the host's CPU,
/// not the base, is what queues (a RAM or null base).
pub const QUEUE_DELAY_MIN_US: u64 = 20;
/// How long a floor lasts without confirmation, in ms.
pub const FLOOR_TTL_MS: u64 = 2_000;
/// Bounds of a period, in µs, and its length in floors.
const PERIOD_MIN_US: u64 = 1_000;
const PERIOD_MAX_US: u64 = 100_000;
const PERIOD_FLOORS: u64 = 16;

/// The auto window and what it is judged from.
/// Completions gathered on one core between two reports (see [`DepthControl::on_batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Sum of their latencies.
    pub latency_sum_ticks: u64,
    /// How many completed.
    pub completions: u64,
    /// Least latency among them (`u64::MAX`: none).
    pub latency_min_ticks: u64,
    /// Least latency among those that left fewer than the probe's depth in flight.
    pub latency_min_drained_ticks: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Whether the window made a dispatch wait.
    pub bound: bool,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            latency_sum_ticks: 0,
            completions: 0,
            latency_min_ticks: u64::MAX,
            latency_min_drained_ticks: u64::MAX,
            bytes: 0,
            bound: false,
        }
    }
}

impl Batch {
    /// Adds one completion that left `in_flight` in flight.
    #[inline]
    pub(super) fn add(&mut self, latency_ticks: u64, bytes: u64, in_flight: u32) {
        self.latency_sum_ticks = self.latency_sum_ticks.wrapping_add(latency_ticks);
        self.completions += 1;
        self.latency_min_ticks = self.latency_min_ticks.min(latency_ticks);
        if in_flight < PROBE_DEPTH {
            self.latency_min_drained_ticks = self.latency_min_drained_ticks.min(latency_ticks);
        }
        self.bytes = self.bytes.wrapping_add(bytes);
    }
}

#[derive(Debug, Clone)]
pub(super) struct DepthControl {
    depth: u32,
    max_depth: u32,
    ticks_per_ms: u64,
    queue_delay_min_ticks: u64,
    period_start_ticks: u64,
    period_ticks: u64,
    latency_sum_ticks: u64,
    completions: u64,
    period_min_ticks: u64,
    period_any_min_ticks: u64,
    bound: bool,
    probing: bool,
    /// Depth before the probe began; the probe ends at half of it.
    depth_before_probe: u32,
    floor_ticks: u64,
    floor_confirmed_ticks: u64,
    floor_probed: bool,
    /// Bytes completed in this period, and the base's throughput, smoothed over periods
    /// (each moves it a quarter of the way: a period holds only a few completions of a slow
    /// base, and one more or less moved the spare cap by a sixth).
    bytes: u64,
    bytes_per_sec: u64,
    /// Mean completion latency, smoothed over periods (each moves it a quarter of the way).
    smoothed_latency_ticks: u64,
}

impl DepthControl {
    /// Starts at dm-ioband's fixed io_throttle (4), within `max_depth` (io_limit): nothing
    /// is known of the base yet, and a share that starts with every group idle must not
    /// hand its whole io_limit out in arrival order before the weights can act. The first
    /// period in which the window binds probes the floor; the window then grows by one per
    /// period until the base queues.
    pub(super) fn new(max_depth: u32, ticks_per_sec: u64) -> DepthControl {
        let ticks_per_ms = (ticks_per_sec / 1000).max(1);
        DepthControl {
            depth: crate::DEFAULT_IO_THROTTLE.clamp(MIN_DEPTH, max_depth.max(MIN_DEPTH)),
            max_depth: max_depth.max(MIN_DEPTH),
            ticks_per_ms,
            queue_delay_min_ticks: QUEUE_DELAY_MIN_US * ticks_per_sec / 1_000_000,
            period_start_ticks: 0,
            period_ticks: PERIOD_MIN_US * ticks_per_ms / 1000,
            latency_sum_ticks: 0,
            completions: 0,
            period_min_ticks: u64::MAX,
            period_any_min_ticks: u64::MAX,
            bound: false,
            probing: false,
            depth_before_probe: MIN_DEPTH,
            floor_ticks: u64::MAX,
            floor_confirmed_ticks: 0,
            floor_probed: false,
            bytes: 0,
            bytes_per_sec: 0,
            smoothed_latency_ticks: 0,
        }
    }

    /// The depth in force.
    pub(super) fn depth(&self) -> u32 {
        self.depth
    }

    /// Whether a probe runs: until the period ends, nothing at all is dispatched at or
    /// above the least depth (reservations and laggards included), so that the base
    /// drains and the period's least latency is the base's own.
    pub(super) fn probing(&self) -> bool {
        self.probing
    }

    /// The latency floor in ticks, if one has been seen.
    pub(super) fn floor_ticks(&self) -> Option<u64> {
        (self.floor_ticks != u64::MAX).then_some(self.floor_ticks)
    }

    /// io_limit changed: the depth stays within it.
    pub(super) fn set_max(&mut self, max_depth: u32) {
        self.max_depth = max_depth.max(MIN_DEPTH);
        self.depth = self.depth.min(self.max_depth);
    }

    /// The window bound in this period (a dispatch waited for it).
    pub(super) fn note_bound(&mut self) {
        self.bound = true;
    }

    /// Accounts one completion; returns whether a period ended (the depth may have moved).
    ///
    /// `in_flight` is what the share still has in flight after this completion: during a
    /// probe only completions into a drained share (fewer than the least depth left)
    /// measure the floor, and the probe lasts until one has.
    #[inline]
    pub(super) fn on_completion(
        &mut self,
        latency_ticks: u64,
        bytes: u64,
        now_ticks: u64,
        in_flight: u32,
    ) -> bool {
        self.bytes = self.bytes.saturating_add(bytes);
        self.latency_sum_ticks = self.latency_sum_ticks.saturating_add(latency_ticks);
        self.completions += 1;
        self.period_any_min_ticks = self.period_any_min_ticks.min(latency_ticks);
        if !self.probing || in_flight < PROBE_DEPTH {
            self.period_min_ticks = self.period_min_ticks.min(latency_ticks);
        }
        let elapsed = now_ticks.saturating_sub(self.period_start_ticks);
        let undrained = self.probing
            && self.period_min_ticks == u64::MAX
            && elapsed < self.period_ticks.saturating_mul(PROBE_PERIODS_MAX);
        if elapsed < self.period_ticks || undrained {
            return false;
        }
        self.end_period(now_ticks);
        true
    }

    /// The mean completion latency, smoothed over periods (0 before the first).
    /// Takes a batch of completions gathered elsewhere (a core's report, when the share
    /// spans cores): their latency sum and count, the least latency of all and of those
    /// that completed into a drained core (below [`PROBE_DEPTH`] in flight there), their
    /// bytes, and whether the window bound. Returns true when a period ended.
    pub(super) fn on_batch(&mut self, batch: &Batch, now_ticks: u64) -> bool {
        if batch.bound {
            self.bound = true;
        }
        self.bytes = self.bytes.saturating_add(batch.bytes);
        self.latency_sum_ticks = self
            .latency_sum_ticks
            .saturating_add(batch.latency_sum_ticks);
        self.completions += batch.completions;
        self.period_any_min_ticks = self.period_any_min_ticks.min(batch.latency_min_ticks);
        let least = if self.probing {
            batch.latency_min_drained_ticks
        } else {
            batch.latency_min_ticks
        };
        self.period_min_ticks = self.period_min_ticks.min(least);
        let elapsed = now_ticks.saturating_sub(self.period_start_ticks);
        let undrained = self.probing
            && self.period_min_ticks == u64::MAX
            && elapsed < self.period_ticks.saturating_mul(PROBE_PERIODS_MAX);
        if elapsed < self.period_ticks || undrained || self.completions == 0 {
            return false;
        }
        self.end_period(now_ticks);
        true
    }

    pub(super) fn smoothed_latency_ticks(&self) -> u64 {
        self.smoothed_latency_ticks
    }

    /// Bytes per second the base completed, smoothed over the last periods (0 before the
    /// first).
    pub(super) fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec
    }

    fn end_period(&mut self, now_ticks: u64) {
        /// A per-period average: the first sample as it is (0: none yet), then each moves
        /// it a quarter of the way.
        fn smooth(old: u64, sample: u64) -> u64 {
            if old == 0 {
                sample
            } else {
                old - old / 4 + sample / 4
            }
        }

        let elapsed_ticks = now_ticks.saturating_sub(self.period_start_ticks).max(1);
        let per_sec = u128::from(self.bytes) * u128::from(self.ticks_per_ms) * 1000
            / u128::from(elapsed_ticks);
        let per_sec = u64::try_from(per_sec).unwrap_or(u64::MAX);
        self.bytes_per_sec = smooth(self.bytes_per_sec, per_sec);
        self.bytes = 0;
        let least = self.period_min_ticks;
        let mean = self.latency_sum_ticks / self.completions.max(1);
        self.smoothed_latency_ticks = smooth(self.smoothed_latency_ticks, mean);
        if self.probing {
            // The queue drained at the least depth: what this period saw is the floor. A
            // share that never drained (slow requests holding both probe slots) keeps the
            // floor it had, or takes the least it saw, and tries again after the TTL.
            self.probing = false;
            if least != u64::MAX {
                self.floor_ticks = least;
            } else if self.floor_ticks == u64::MAX {
                self.floor_ticks = self.period_any_min_ticks;
            }
            self.floor_confirmed_ticks = now_ticks;
            self.floor_probed = true;
            self.depth = (self.depth_before_probe / 2).max(MIN_DEPTH);
        } else if least < self.floor_ticks {
            // A lower floor is always right; it does not make a probe unnecessary (a floor
            // learnt while the base queued would never be corrected otherwise).
            self.floor_ticks = least;
        }
        let stale = !self.floor_probed
            || now_ticks.saturating_sub(self.floor_confirmed_ticks)
                > FLOOR_TTL_MS * self.ticks_per_ms;
        if self.bound {
            if stale {
                self.probing = true;
                self.depth_before_probe = self.depth;
                self.depth = PROBE_DEPTH;
            } else if mean > self.floor_ticks.saturating_add(self.floor_ticks / 2)
                && mean.saturating_sub(self.floor_ticks) > self.queue_delay_min_ticks
            {
                self.depth = (self.depth * 3 / 4).max(MIN_DEPTH);
            } else {
                self.depth = (self.depth + (self.depth / 8).max(1)).min(self.max_depth);
            }
        }
        let floor = self.floor_ticks().unwrap_or(0);
        self.period_ticks = floor.saturating_mul(PERIOD_FLOORS).clamp(
            PERIOD_MIN_US * self.ticks_per_ms / 1000,
            PERIOD_MAX_US * self.ticks_per_ms / 1000,
        );
        self.period_start_ticks = now_ticks;
        self.latency_sum_ticks = 0;
        self.completions = 0;
        self.period_min_ticks = u64::MAX;
        self.period_any_min_ticks = u64::MAX;
        self.bound = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device whose latency is `floor` up to `bdp` in flight and grows by `floor / bdp`
    /// per I/O beyond (a single server): the depth settles a little above `bdp`.
    fn settle(bdp: u32, floor: u64) -> Vec<u32> {
        let mut c = DepthControl::new(192, 1_000_000);
        let mut now = 0;
        let mut seen = Vec::new();
        for _ in 0..4000 {
            let d = c.depth();
            let latency = floor + u64::from(d.saturating_sub(bdp)) * floor / u64::from(bdp);
            for _ in 0..d {
                c.note_bound();
                c.on_completion(latency, 4096, now, 0);
            }
            now += latency;
            if !c.probing() {
                seen.push(c.depth());
            }
        }
        seen
    }

    #[test]
    fn depth_settles_half_above_the_bandwidth_delay_product_or_at_the_least() {
        for (bdp, floor) in [(5u32, 250u64), (50, 80), (2, 1000)] {
            let seen = settle(bdp, floor);
            let tail = &seen[seen.len() - 1000..];
            let (lo, hi) = (tail.iter().min().unwrap(), tail.iter().max().unwrap());
            assert!(
                *lo >= (bdp * 3 / 4).max(MIN_DEPTH),
                "bdp {bdp}: depth fell to {lo}"
            );
            let top = (bdp * 3 / 2).max(MIN_DEPTH) + (bdp * 3 / 2) / 8 + 2;
            assert!(*hi <= top, "bdp {bdp}: depth rose to {hi}");
        }
    }

    #[test]
    fn nothing_moves_while_the_window_does_not_bind() {
        let mut c = DepthControl::new(64, 1_000_000);
        for t in 0..100_000 {
            c.on_completion(10_000, 4096, t, 0);
        }
        assert_eq!(c.depth(), crate::DEFAULT_IO_THROTTLE);
    }

    #[test]
    fn the_floor_is_probed_at_the_least_depth_and_again_when_stale() {
        let mut c = DepthControl::new(64, 1_000_000);
        // The first period in which the window binds probes: nothing is known of the base.
        c.note_bound();
        assert!(c.on_completion(500, 4096, 1_000, 0));
        assert_eq!(c.depth(), PROBE_DEPTH);
        assert!(c.probing());
        // The probe lasts until an I/O completes into a drained share, however long.
        assert!(!c.on_completion(90, 4096, 30_000, 5));
        assert!(c.probing());
        assert!(c.on_completion(100, 4096, 30_500, 1));
        // Its least latency is the floor, and the depth resumes from half of what it was
        // (at least the least depth).
        assert_eq!(c.floor_ticks(), Some(100));
        assert_eq!(c.depth(), MIN_DEPTH);
        // Periods in which the window does not bind move nothing, whatever the latency.
        for t in (32_000..2_032_000).step_by(1000) {
            c.on_completion(400, 4096, t, 0);
            assert_eq!(c.depth(), MIN_DEPTH);
        }
        // The hold binds again once the floor is older than FLOOR_TTL_MS: a new probe.
        c.note_bound();
        assert!(c.on_completion(400, 4096, 2_100_000, 0));
        assert_eq!(c.depth(), PROBE_DEPTH);
        c.on_completion(300, 4096, 2_100_500, 0);
        c.on_completion(300, 4096, 2_110_000, 0);
        assert_eq!(c.floor_ticks(), Some(300));
    }

    #[test]
    fn a_probe_that_cannot_drain_ends_after_eight_periods() {
        let mut c = DepthControl::new(64, 1_000_000);
        c.note_bound();
        c.on_completion(500, 4096, 1_000, 0);
        assert!(c.probing());
        // The period is 16 floors (8 ms) from here; slow requests keep two in flight.
        let mut t = 1_000;
        while c.probing() {
            t += 1_000;
            c.on_completion(600, 4096, t, 2);
            assert!(t < 100_000, "the probe never ended");
        }
        assert!(t > 8 * 8_000, "ended after {t} ticks");
        // It kept the floor it had learnt before the probe.
        assert_eq!(c.floor_ticks(), Some(500));
    }

    #[test]
    fn the_delivered_rate_is_measured_per_period() {
        let mut c = DepthControl::new(64, 1_000_000);
        c.on_completion(10, 1 << 20, 500, 0);
        c.on_completion(10, 1 << 20, 1_000, 0);
        // 2 MiB in 1 ms.
        assert_eq!(c.bytes_per_sec(), 2 * (1 << 20) * 1000);
        // The next period delivered 1 MiB: the rate moves a quarter of the way, so that a
        // period with a completion more or less (a few per period on a slow base) does not
        // swing the range-bw spare cap that is sized from it.
        c.on_completion(10, 1 << 20, 2_000, 0);
        assert_eq!(
            c.bytes_per_sec(),
            (2 * (1 << 20) * 1000) * 3 / 4 + (1 << 20) * 1000 / 4
        );
    }
}
