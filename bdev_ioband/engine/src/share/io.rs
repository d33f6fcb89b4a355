//! The I/O path of a share: submit, complete, poll, and the dispatch loop behind them.
//!
//! Runs on the share's owner thread only. No locks, no clock reads, no allocation once a
//! group's queue has grown to its working depth; every choice is a heap peek (O(log n) to
//! update), never a scan over groups.

use super::{
    rate_subticks, Admit, DeviceIdx, Pending, Share, VtStep, SUBTICK_SHIFT, VT_SCALE, VT_SCALE_U64,
};
use crate::group::{GroupId, Op, Release, Ticket};

/// Which phase let an I/O go: range-bw charges the reservation only for its own phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reservation,
    Weight,
}

impl<T> Share<T> {
    /// Offers an I/O of `group` on `dev`. Whatever can go now (this I/O or others that
    /// were waiting) is handed to `sink` with its ticket before this returns.
    ///
    /// A stale `group` (detached since it was looked up) falls back to the device's
    /// default group.
    #[allow(clippy::too_many_arguments)]
    pub fn submit<F: Release<T> + ?Sized>(
        &mut self,
        dev: DeviceIdx,
        group: GroupId,
        io: T,
        op: Op,
        bytes: u64,
        now_ticks: u64,
        sink: &mut F,
    ) -> Admit<T> {
        let Some(Some(device)) = self.devices.get(dev.0 as usize) else {
            return Admit::NoDevice(io);
        };
        let slot = match self.slots.get(group.slot as usize) {
            Some(s) if s.generation == group.generation => match &s.group {
                Some(g) if g.device == dev.0 => group.slot,
                _ => device.default_slot,
            },
            _ => device.default_slot,
        };
        let now_sub = self.now_subticks(now_ticks);
        let now_ticks = ticks_of(now_sub);
        let seq = self.next_seq;
        self.next_seq += 1;
        let ranged = self.ranged();
        // One borrow of the group for everything the submission changes in it.
        let Some(g) = self.slots[slot as usize].group.as_mut() else {
            return Admit::NoDevice(io);
        };
        let idle_queue = g.queue.is_empty();
        if idle_queue && (g.in_flight == 0 || !ranged) {
            // Arriving at an empty queue (start-time fair queuing's newly backlogged
            // flow): its credit is bounded (see `wake`), under the weight policies with I/O
            // in flight or not. A group that kept I/O in flight while the window never bound
            // (so it never queued) would otherwise bring back every bit of virtual time it
            // did not use, however long ago, and starve the others when contention begins.
            // Not under range-bw with I/O in flight: there reservations advance virtual
            // time and the clock with them, and on a share that spans cores the lift put
            // the min-0 groups of one core past the hub's ceiling (the churn scenario on two
            // reactors: three of them got nothing and the device was 40% idle).
            let floor = self.vclock.saturating_sub(self.credit_vt);
            if g.vtime < floor {
                g.vtime = floor;
            }
            if g.in_flight == 0 {
                g.reserve_tag = g.reserve_tag.max(now_sub);
            }
        }
        g.last_event_ticks = now_ticks;
        g.kept_ios = u32::try_from(g.queue.len())
            .unwrap_or(u32::MAX)
            .saturating_add(g.in_flight)
            .saturating_add(1);
        let was_expected = std::mem::replace(&mut g.expected, false);
        match op {
            Op::Read => {
                g.stats.read_ios += 1;
                g.stats.read_bytes += bytes;
            }
            Op::Write => {
                g.stats.write_ios += 1;
                g.stats.write_bytes += bytes;
            }
            Op::Other => g.stats.other_ios += 1,
        }
        // Fast path: nothing waits anywhere (so this I/O overtakes nobody), no timed limit
        // is in play in the share, and the window has room.
        let vtime = g.vtime;
        let untimed = !ranged || (g.params.max_kib_per_sec == 0 && g.params.min_kib_per_sec == 0);
        if was_expected {
            self.expected -= 1;
            self.refresh_window_gate();
        }
        self.activate(slot, now_ticks);
        let direct = idle_queue
            && untimed
            && self.ready.is_empty()
            && self.reserve.is_empty()
            && self.limited.is_empty()
            && self.in_flight < self.dispatch_limit()
            && !self.weighted_waits(now_ticks)
            && !self.above_ceiling(vtime);
        if direct {
            let ticket = self.charge(slot, op, bytes, now_sub, Phase::Weight);
            sink.release(io, ticket);
            return Admit::Accepted;
        }
        let Some(g) = self.slots[slot as usize].group.as_mut() else {
            return Admit::NoDevice(io);
        };
        g.queue.push_back(Pending {
            io,
            op,
            bytes,
            enqueued_ticks: now_ticks,
            seq,
        });
        g.stats.queue_depth = g.queue.len() as u64;
        self.reposition(slot, now_sub);
        self.run(now_ticks, now_sub, seq, sink);
        Admit::Accepted
    }

    /// Takes back a dispatched I/O, then dispatches whatever that made room for.
    ///
    /// The order in which a host completes the submitter and returns the ticket does not
    /// matter: the group stays active for `idle_grace` after this completion, so a
    /// closed-loop submitter whose next I/O comes later (after its callback, or a network
    /// round trip away) keeps its place.
    pub fn complete<F: Release<T> + ?Sized>(
        &mut self,
        ticket: Ticket,
        now_ticks: u64,
        sink: &mut F,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.cost_in_flight = self.cost_in_flight.saturating_sub(u64::from(ticket.cost));
        let now_sub = self.now_subticks(now_ticks);
        let now_ticks = ticks_of(now_sub);
        let latency = now_ticks.saturating_sub(ticket.dispatched_ticks);
        if self.span.is_some() {
            self.batch.add(latency, ticket.bytes, self.in_flight);
        }
        if self
            .depth
            .on_completion(latency, ticket.bytes, now_ticks, self.in_flight)
        {
            if self.params.io_throttle == 0 && self.span.is_none() {
                self.io_throttle = self.depth.depth();
                self.refresh_window_gate();
            }
            self.refresh_grace();
            if self.ranged() && self.span.is_none() {
                self.refresh_spare_cap(now_ticks);
            }
        }
        let slot = ticket.group.slot;
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            if entry.generation == ticket.group.generation {
                if let Some(g) = entry.group.as_mut() {
                    g.in_flight = g.in_flight.saturating_sub(1);
                    g.cost_in_flight = g.cost_in_flight.saturating_sub(u64::from(ticket.cost));
                    g.stats.in_flight = u64::from(g.in_flight);
                    g.stats.completed_ios += 1;
                    g.last_event_ticks = now_ticks;
                    if g.in_flight == 0 && g.queue.is_empty() && !g.expected {
                        g.expected = true;
                        self.expected += 1;
                        self.refresh_window_gate();
                    }
                    // Active again for the grace (an expired entry was dropped lazily).
                    self.activate(slot, now_ticks);
                }
            }
        }
        // Nothing waits anywhere (the pass-through case): nothing to dispatch.
        if self.ready.is_empty() && self.reserve.is_empty() && self.limited.is_empty() {
            return;
        }
        self.run(now_ticks, now_sub, self.next_seq, sink);
    }

    /// Dispatches whatever has become eligible by `now_ticks` (a max that has refilled, a
    /// reservation that has come due, the window that opened as an idle group expired).
    /// Hosts call this from their poller.
    pub fn poll<F: Release<T> + ?Sized>(&mut self, now_ticks: u64, sink: &mut F) {
        let now_sub = self.now_subticks(now_ticks);
        self.run(ticks_of(now_sub), now_sub, self.next_seq, sink);
    }

    /// The earliest tick at which something waiting may become dispatchable without a
    /// completion (a timed limit lifts, a reservation comes due), if any; a host poller may
    /// sleep until then when nothing else is pending.
    pub fn next_wakeup_ticks(&self) -> Option<u64> {
        let limit = self.limited.peek().map(|(tag, _)| tag);
        let reserve = self
            .reserve
            .peek()
            .map(|(tag, _)| tag)
            .filter(|&tag| tag > self.last_now_subticks);
        let tag = match (limit, reserve) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        let ticks = tag.div_ceil(1 << SUBTICK_SHIFT);
        Some(u64::try_from(ticks).unwrap_or(u64::MAX))
    }

    pub(super) fn now_subticks(&mut self, now_ticks: u64) -> u128 {
        let now = u128::from(now_ticks) << SUBTICK_SHIFT;
        // Time never runs backwards for the scheduler, whatever the host passes.
        self.last_now_subticks = self.last_now_subticks.max(now);
        self.last_now_subticks
    }

    /// Limits the credit a group brings back when it has nothing queued or in flight.
    ///
    /// This runs for an anticipated group too (a closed-loop tenant between two I/Os):
    /// what keeps such a tenant's place is that it stays active and keeps the window
    /// closed around the others, not banked virtual time, so its credit stays bounded by
    /// `carryover` (and, having used less than its share, it re-enters first in order).
    pub(super) fn wake(&mut self, slot: u32, now_sub: u128) {
        let Some(g) = self.slots[slot as usize].group.as_mut() else {
            return;
        };
        if g.queue.is_empty() && g.in_flight == 0 {
            g.vtime = g.vtime.max(self.vclock.saturating_sub(self.credit_vt));
            g.reserve_tag = g.reserve_tag.max(now_sub);
        }
    }

    /// Puts a group in the heaps its state calls for.
    pub(super) fn reposition(&mut self, slot: u32, now_sub: u128) {
        let ranged = self.ranged();
        let Some(g) = self.slots[slot as usize].group.as_ref() else {
            return;
        };
        let (min, max) = if ranged {
            (g.params.min_kib_per_sec, g.params.max_kib_per_sec)
        } else {
            (0, 0)
        };
        if g.queue.is_empty() {
            self.ready.remove(slot);
            self.reserve.remove(slot);
            self.limited.remove(slot);
        } else if max > 0 && g.limit_tag > now_sub {
            self.ready.remove(slot);
            self.reserve.remove(slot);
            self.limited.set(slot, g.limit_tag);
        } else {
            self.limited.remove(slot);
            self.ready.set(slot, g.vtime);
            if min > 0 {
                self.reserve.set(slot, g.reserve_tag);
            } else {
                self.reserve.remove(slot);
            }
        }
    }

    pub(super) fn run<F: Release<T> + ?Sized>(
        &mut self,
        now_ticks: u64,
        now_sub: u128,
        run_start_seq: u64,
        sink: &mut F,
    ) {
        while let Some((tag, slot)) = self.limited.peek() {
            if tag > now_sub {
                break;
            }
            self.limited.remove(slot);
            self.reposition(slot, now_sub);
        }
        while self.in_flight < self.dispatch_limit() {
            let due = self.reserve.peek().filter(|&(tag, _)| tag <= now_sub);
            // Reservations behind by more than the lag bound cannot all be met: they
            // alternate with the weighted order (spare cap or not), so that min-0 groups
            // still move.
            let behind =
                due.is_some_and(|(tag, _)| now_sub.saturating_sub(tag) >= self.reserve_lag_sub);
            let yield_turn = behind && self.spare_turn;
            let weighted = match self.ready.peek() {
                // (yield_turn is only ever set under range-bw: only it has reservations.)
                Some((vt, slot)) => ((yield_turn || !self.weighted_waits(now_ticks))
                    && !self.above_ceiling(vt))
                .then_some(slot),
                None => None,
            };
            let (slot, phase) = match (due, weighted) {
                (Some((_, slot)), Some(w)) if yield_turn && w != slot => {
                    self.spare_turn = false;
                    (w, Phase::Weight)
                }
                (Some((_, slot)), _) => {
                    self.spare_turn = behind;
                    (slot, Phase::Reservation)
                }
                (None, Some(slot)) => (slot, Phase::Weight),
                (None, None) => break,
            };
            self.dispatch_one(slot, now_ticks, now_sub, run_start_seq, phase, sink);
        }
    }

    /// Whether the weight policies' window is full: at least two groups are active (with
    /// anticipation: queued, or an event within the grace) and the share has `io_throttle`
    /// or more I/Os in flight, counting one slot kept free for each active group that has
    /// nothing queued or in flight (a closed loop between two I/Os, expected back within
    /// the grace: BFQ's idling, as a reserved slot), up to half the window. What waits then goes in virtual-time order as slots free,
    /// so the base's queue stays short for a low-depth tenant and backlogged tenants get
    /// their weights in cost; the auto depth sits about half above the base's
    /// bandwidth-delay product, so the base stays busy. One active group alone is never
    /// windowed: nobody is owed anything.
    ///
    /// A full window engages the auto window (see `depth`): it adapts only while
    /// it matters to someone.
    /// Whether a dispatch in the weighted order waits: for the window under the weight
    /// policies, for the spare cap under range-bw.
    #[inline(always)]
    fn weighted_waits(&mut self, now_ticks: u64) -> bool {
        if self.ranged() {
            self.spare_held()
        } else {
            self.windowed(now_ticks)
        }
    }

    /// Whether a group at virtual time `vt` waits for the others on other cores (a share
    /// that spans cores, while contended: see the span module).
    #[inline(always)]
    fn above_ceiling(&self, vt: u128) -> bool {
        self.span
            .as_ref()
            .is_some_and(|s| s.contended && vt > s.vt_ceiling)
    }

    #[inline(always)]
    fn windowed(&mut self, now_ticks: u64) -> bool {
        self.in_flight >= self.window_gate && self.window_full(now_ticks)
    }

    #[inline]
    fn window_full(&mut self, now_ticks: u64) -> bool {
        // Alone here and on every other core: not contended, without a call.
        let elsewhere = self.span.as_ref().is_some_and(|s| s.contended);
        if self.active.len() < 2 && !elsewhere {
            return false;
        }
        if !self.contended(now_ticks) {
            return false;
        }
        // Pruned now: every expected group is within its grace.
        if self.in_flight < self.window_gate {
            return false;
        }
        self.depth.note_bound();
        self.batch.bound = true;
        true
    }

    /// Recomputes the in-flight level at which the window is full (after `io_throttle` or
    /// the count of expected groups changed).
    #[inline]
    pub(super) fn refresh_window_gate(&mut self) {
        // Never below the probe's depth (or a set io_throttle under it): the window keeps
        // slots free, it never shuts.
        self.window_gate = (self.io_throttle - self.expected.min(self.io_throttle / 2))
            .max(self.io_throttle.min(super::depth::PROBE_DEPTH));
    }

    /// Whether two or more groups are active. The active heap is keyed by a lower bound
    /// of each group's last event (keys are refreshed only here, lazily), so if the top is
    /// within the grace, everyone is; a top past it is refreshed or leaves the heap. A
    /// group with I/O queued is always active; one with only slow I/O in flight is not,
    /// once the grace has passed since its submission.
    fn contended(&mut self, now_ticks: u64) -> bool {
        while self.active.len() >= 2 {
            let Some((key, slot)) = self.active.peek() else {
                break;
            };
            if now_ticks.saturating_sub(key) < self.grace_ticks {
                return true;
            }
            match self.slots[slot as usize].group.as_ref() {
                Some(g) if !g.queue.is_empty() => self.active.set(slot, now_ticks),
                Some(g) if now_ticks.saturating_sub(g.last_event_ticks) < self.grace_ticks => {
                    self.active.set(slot, g.last_event_ticks);
                }
                _ => {
                    self.active.remove(slot);
                    if let Some(g) = self.slots[slot as usize].group.as_mut() {
                        if g.expected {
                            g.expected = false;
                            self.expected -= 1;
                            self.refresh_window_gate();
                        }
                    }
                }
            }
        }
        // Alone here: contended if the hub saw other groups active on other cores.
        self.span.as_ref().is_some_and(|s| s.contended)
    }

    /// Most I/Os in flight right now: io_limit, or the least depth while the auto hold
    /// depth probes the base's latency floor.
    #[inline]
    pub(super) fn dispatch_limit(&self) -> u32 {
        if let Some(span) = &self.span {
            span.limit
        } else if self.params.io_throttle == 0 && self.depth.probing() {
            self.io_limit.min(super::depth::PROBE_DEPTH)
        } else {
            self.io_limit
        }
    }

    /// range-bw: whether spare bandwidth waits: the share is at the spare cap (see the
    /// module doc), or at a set `io_throttle` above it. The cap needs no latency floor, so
    /// range-bw never engages the auto window (nor its probes, which would cost the
    /// reservations their drain time).
    fn spare_held(&self) -> bool {
        // Never with nothing in flight: the cap keeps the base's queue short, it never
        // leaves the base idle.
        self.cost_in_flight > 0
            && self.cost_in_flight >= self.spare_cap_cost
            && self.in_flight >= self.params.io_throttle
    }

    /// Recomputes the spare cap from the active groups with a min (once per period of the
    /// auto window: O(groups with a min), off the per-I/O path).
    pub(super) fn refresh_spare_cap(&mut self, now_ticks: u64) {
        let delivered = u128::from(self.depth.bytes_per_sec());
        if delivered == 0 {
            // Nothing delivered in the last period: nothing to size the cap from.
            self.spare_cap_cost = u64::MAX;
            return;
        }
        let mut cap = u128::from(u64::MAX);
        for &slot in &self.min_slots {
            let Some(g) = self.slots[slot as usize].group.as_ref() else {
                continue;
            };
            let owed = u128::from(g.owed_cost(self.params.policy));
            let idle =
                owed == 0 && now_ticks.saturating_sub(g.last_event_ticks) >= self.grace_ticks;
            if idle || g.params.min_kib_per_sec == 0 {
                continue;
            }
            // An eighth above the min, so that the edge of the cap is not the edge of the
            // min.
            // (On a core of a share that spans cores: its part of the min.)
            let min_bytes_per_sec = (u128::from(g.params.min_kib_per_sec) * 1024 * 9 / 8
                * u128::from(g.rate_frac)
                / u128::from(super::span::FRAC_ONE))
            .max(1);
            let owed = owed.max(u128::from(g.kept_cost()));
            cap = cap.min((owed * delivered).div_ceil(min_bytes_per_sec));
        }
        self.spare_cap_cost = u64::try_from(cap).unwrap_or(u64::MAX);
    }

    fn dispatch_one<F: Release<T> + ?Sized>(
        &mut self,
        slot: u32,
        now_ticks: u64,
        now_sub: u128,
        run_start_seq: u64,
        phase: Phase,
        sink: &mut F,
    ) {
        let Some(g) = self.slots[slot as usize].group.as_mut() else {
            return;
        };
        let Some(p) = g.queue.pop_front() else { return };
        g.stats.queue_depth = g.queue.len() as u64;
        if p.seq < run_start_seq {
            g.stats.throttled_ios += 1;
            g.stats.throttled_ticks += now_ticks.saturating_sub(p.enqueued_ticks);
        }
        let ticket = self.charge(slot, p.op, p.bytes, now_sub, phase);
        self.reposition(slot, now_sub);
        sink.release(p.io, ticket);
    }

    /// Accounts one I/O of `slot` as dispatched: virtual time, range tags, in-flight
    /// counts and counters. Returns its ticket.
    #[inline(always)]
    fn charge(&mut self, slot: u32, op: Op, bytes: u64, now_sub: u128, phase: Phase) -> Ticket {
        // One I/O's cost fits u32 (sectors of up to 2 TiB); the ticket carries it so.
        let cost = u64::from(u32::try_from(self.params.policy.cost(bytes)).unwrap_or(u32::MAX));
        let ticks_per_sec = u128::from(self.ticks_per_sec);
        let ranged = self.ranged();
        let reserve_lag_sub = self.reserve_lag_sub;
        let entry = &mut self.slots[slot as usize];
        let group = GroupId {
            slot,
            generation: entry.generation,
        };
        let ticket = Ticket {
            group,
            op,
            bytes,
            dispatched_ticks: ticks_of(now_sub),
            cost: u32::try_from(cost).unwrap_or(u32::MAX),
        };
        let Some(g) = entry.group.as_mut() else {
            return ticket;
        };

        // Weighted order: advance virtual time by cost / weight.
        let weight = u64::from(g.params.weight.max(1));
        let start_vt = g.vtime;
        advance_vt(&mut g.vtime, &mut g.vtime_rem, &mut g.vt_step, cost, weight);
        self.vclock = self.vclock.max(start_vt);

        // Range tags, in subticks: bytes at the configured KiB/s. Only the reservation
        // phase advances the reservation tag (mClock: spare bandwidth is not charged to
        // the reservation), and never from further back than the lag bound.
        if ranged {
            // A core of a share that spans cores runs its part of each rate (`rate_frac`).
            let tag_bytes = u128::from(bytes.max(1)) * u128::from(super::span::FRAC_ONE)
                / u128::from(g.rate_frac.max(1));
            if phase == Phase::Reservation && g.params.min_kib_per_sec > 0 {
                let interval = rate_subticks(tag_bytes, g.params.min_kib_per_sec, ticks_per_sec);
                g.reserve_tag =
                    g.reserve_tag.max(now_sub.saturating_sub(reserve_lag_sub)) + interval;
            }
            if g.params.max_kib_per_sec > 0 {
                // A group that was late for its slot (the share was full) may catch up by
                // one I/O, no more: without that, every wait for a free slot would be lost
                // and a max set at the min could never deliver the min.
                let pace = super::max_pace_bytes_per_sec(
                    g.params.min_kib_per_sec,
                    g.params.max_kib_per_sec,
                    bytes,
                );
                let interval = super::bytes_subticks(tag_bytes, pace, ticks_per_sec);
                g.limit_tag = g.limit_tag.max(now_sub.saturating_sub(interval)) + interval;
            }
        }

        g.in_flight += 1;
        g.cost_in_flight += cost;
        g.span_cost += cost;
        g.last_cost = cost;
        self.in_flight += 1;
        self.cost_in_flight += cost;
        let s = &mut g.stats;
        s.dispatched_ios += 1;
        s.dispatched_bytes += bytes;
        s.dispatched_cost += cost;
        s.in_flight = u64::from(g.in_flight);
        ticket
    }
}

/// Advances a virtual time by `cost × VT_SCALE / weight`, carrying the remainder `rem`
/// (< `weight`) from one charge to the next (u64 arithmetic unless an absurd cost would
/// overflow it). `step` keeps the last (cost, weight)'s quotient and remainder: the same
/// step again (a run of one I/O size) costs no division.
#[inline(always)]
pub(super) fn advance_vt(
    vtime: &mut u128,
    rem: &mut u64,
    step: &mut VtStep,
    cost: u64,
    weight: u64,
) {
    if step.cost == cost && step.weight == weight {
        // cost × VT_SCALE = quot × weight + step.rem, and both remainders are below
        // weight: the quotient of the sum is quot or quot + 1.
        let sum = *rem + step.rem;
        let carry = sum >= weight;
        *vtime += u128::from(step.quot + u64::from(carry));
        *rem = if carry { sum - weight } else { sum };
        return;
    }
    match cost
        .checked_mul(VT_SCALE_U64)
        .and_then(|c| c.checked_add(*rem))
    {
        Some(scaled) => {
            *vtime += u128::from(scaled / weight);
            *rem = scaled % weight;
            // (cost × VT_SCALE fits: the sum with the remainder did.)
            let whole = cost * VT_SCALE_U64;
            *step = VtStep {
                cost,
                weight,
                quot: whole / weight,
                rem: whole % weight,
            };
        }
        None => {
            let scaled = u128::from(cost) * VT_SCALE + u128::from(*rem);
            *vtime += scaled / u128::from(weight);
            *rem = 0;
        }
    }
}

/// Whole ticks of a subtick time.
pub(super) fn ticks_of(now_sub: u128) -> u64 {
    u64::try_from(now_sub >> SUBTICK_SHIFT).unwrap_or(u64::MAX)
}
