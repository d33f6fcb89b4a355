//! Lanes: I/O a host dispatches without calling the share, pre-approved in bulk, and
//! settled with the share afterwards in aggregate.
//!
//! Most I/O of a weight share that nobody contends takes [`Share::submit`]'s direct path:
//! nothing waits anywhere, so the I/O goes at once, and the share only counts it. A lane
//! lets a host (the SPDK host's C shim) do that counting itself: [`Share::lanes_open`]
//! grants a group a number of **slots** (I/Os it may have in flight beyond what the share
//! has in flight now, given back one per completion) and a **cost budget** (how much cost
//! it may start), for as long as every I/O the group submits one after another, with
//! completions in between in any order, would take the direct path. The host dispatches
//! within the grant, counts what it did ([`LaneCounts`]), and hands the counts to
//! [`Share::lane_settle`], which applies them exactly as per-I/O submits and completions
//! would have in aggregate, and closes the lane (gives the unused slots back).
//!
//! # When a lane opens
//! Only when the direct path is certain for every I/O of the lane until the next settle:
//! - policy `weight` or `weight-iosize` (range-bw's tags are timed), and on a share that
//!   does not span cores, a set `io_throttle` (the auto window moves with completions);
//! - nothing queued in the share (the ready, reservation and limit heaps are empty), the
//!   group's queue empty, and no lane open already (the host settles every lane before it
//!   opens them again, in one call for all of a share's lanes);
//! - a group behind the share's credit floor (`vclock − credit`), idle or with I/O in
//!   flight, jumps to it at its first dispatch (it arrives at an empty queue), which the
//!   settle applies first.
//!
//! Slots: at most `dispatch_limit − in_flight` for all the lanes together, split evenly
//! among them; while the window can apply (two or more lanes, another group active or
//! with I/O in flight on the core, or the hub says the share is contended) at most
//! `window gate − in_flight`, the gate counted as if every other lane's group and every
//! other group that is expected or has I/O in flight were expected back (each could
//! become so between two of this group's I/Os, and each lowers the gate by one). An I/O of a
//! lane then finds the share below the limit and below the window whatever the order of
//! the lanes' I/Os and completions: the direct path's in-flight conditions hold.
//!
//! Cost budget: while contended, a group past the hub's virtual-time ceiling waits; a lane
//! may start cost only while its group's virtual time stays at or below the ceiling. With
//! two or more lanes, each lane's dispatches raise the share's virtual clock, which sets
//! the credit floor that an idle group is lifted to when it wakes; a lane may start cost
//! only while its group stays within `credit` above every other lane's group, so that no
//! other lane's wake depends on the order of the lanes' I/Os (see `lane_settle`). Both
//! bounds are a virtual time `V`, turned into the most cost `C` with
//! `vtime + (C·scale + remainder) / weight ≤ V`; the budget is `C + 1`: an I/O may go
//! while the cost already started is below it (its own cost does not matter: the direct
//! path checks the virtual time *before* the charge).
//!
//! # The equivalence, and what lags
//! A host settles every lane of a share before each call into the share that may decide
//! something (a submit of its own, a poll, a grant, a control change), so the share never
//! decides on state that lanes changed: no scheduling decision is taken on stale state. A
//! completion of an I/O the share dispatched itself need not wait for that: while a lane
//! is open nothing waits in the share, so the completion dispatches nothing, and what it
//! changes (in-flight counts, activity, `expected`) is what the grants already allowed
//! for, and commutes with the lanes' counts. What the
//! settle applies in aggregate equals what the per-I/O calls would have left:
//! - counters (per op I/Os and bytes, dispatched I/Os, bytes and cost, completions),
//!   in-flight counts and cost in flight of the group and the share, `next_seq`;
//! - virtual time: the wake (if the group was idle at open and dispatched), then the sum
//!   of the costs with the remainder carried (`⌊(Σc·scale + r)/w⌋` is what one charge
//!   after the other leaves); the virtual clock is raised to the group's virtual time
//!   before its last charge (`Σc − c_last` charged), the last start time;
//! - activity: marked active at its first event, last event at its last one; `expected`
//!   as the last event leaves it (set when the group is idle after its last completion,
//!   cleared by a dispatch);
//! - completions feed the auto window and the grace (`on_batch`) and the core's report to
//!   the hub as one batch: count, latency sum, least latency, bytes.
//!
//! What differs: the counters and virtual time a reader sees lag by at most one host pass
//! (they are settled every pass); the auto window's and the grace's period ends at the
//! settle rather than at the completion that crossed the period's end (a period of 1 ms or
//! more against a pass of 50 µs), and the least latency "into a drained share" of a probe
//! is the host's conservative estimate. A group detached or a device removed while a lane
//! was open: its counters are dropped with it; the share's in-flight count and cost are
//! corrected all the same. The lane property test checks the equivalence against per-I/O
//! calls on random sequences.

use super::depth::PROBE_DEPTH;
use super::io::ticks_of;
use super::{DeviceIdx, Share, SUBTICK_SHIFT, VT_SCALE, VT_SCALE_U64};
use crate::group::GroupId;

/// Most slots one lane holds (a safety bound; the share's limits bound them first).
pub const LANE_SLOTS_MAX: u32 = 4096;

/// What a lane did since it opened (or since its last settle): filled by the host, one
/// addition per I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneCounts {
    /// Reads dispatched.
    pub read_ios: u64,
    /// Their bytes.
    pub read_bytes: u64,
    /// Writes dispatched.
    pub write_ios: u64,
    /// Their bytes.
    pub write_bytes: u64,
    /// Cost dispatched: `policy.cost(bytes)` per I/O, summed (1 per I/O under `weight`,
    /// `max(bytes / 512, 1)` under `weight-iosize`).
    pub cost: u64,
    /// Cost of the last I/O dispatched.
    pub last_cost: u64,
    /// Lane I/O completed (whenever it was dispatched).
    pub completed: u64,
    /// Their cost.
    pub completed_cost: u64,
    /// Their bytes.
    pub completed_bytes: u64,
    /// Sum of their latencies (completion tick − dispatch tick).
    pub latency_sum_ticks: u64,
    /// Least of them (`u64::MAX`: none).
    pub latency_min_ticks: u64,
    /// Least of those that left fewer than two I/Os in flight in the share, as far as the
    /// host can tell (`u64::MAX`: none).
    pub latency_min_drained_ticks: u64,
    /// Tick of the first and of the last event (dispatch or completion) counted.
    pub first_tick: u64,
    /// See `first_tick`.
    pub last_tick: u64,
}

impl Default for LaneCounts {
    fn default() -> Self {
        LaneCounts {
            read_ios: 0,
            read_bytes: 0,
            write_ios: 0,
            write_bytes: 0,
            cost: 0,
            last_cost: 0,
            completed: 0,
            completed_cost: 0,
            completed_bytes: 0,
            latency_sum_ticks: 0,
            latency_min_ticks: u64::MAX,
            latency_min_drained_ticks: u64::MAX,
            first_tick: 0,
            last_tick: 0,
        }
    }
}

impl LaneCounts {
    /// I/Os dispatched.
    pub fn dispatched(&self) -> u64 {
        self.read_ios + self.write_ios
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.dispatched() == 0 && self.completed == 0
    }
}

/// What a lane may do until it is settled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneGrant {
    /// I/Os it may have in flight beyond what it had at open; one comes back with each
    /// completion of the lane's I/O. 0: no lane.
    pub slots: u32,
    /// An I/O may go while the cost the lane started is below this (`u64::MAX`: no bound).
    pub cost_budget: u64,
}

/// One lane asked for, and what it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneRequest {
    /// The group's device.
    pub dev: DeviceIdx,
    /// The group.
    pub group: GroupId,
    /// Filled by [`Share::lanes_open`].
    pub grant: LaneGrant,
}

impl LaneRequest {
    /// A request for `group` of `dev`.
    pub fn new(dev: DeviceIdx, group: GroupId) -> LaneRequest {
        LaneRequest {
            dev,
            group,
            grant: LaneGrant::default(),
        }
    }
}

/// An open lane, as the share keeps it.
#[derive(Debug, Clone, Copy)]
pub(super) struct OpenLane {
    group: GroupId,
    /// Slots counted in the share's in-flight count until the settle.
    reserved: u32,
    /// The group had nothing queued or in flight at open: its first dispatch also starts
    /// its reservation clock again.
    idle: bool,
    /// The credit floor at open (`vclock − credit`), what its first dispatch lifts it to.
    floor: u128,
}

impl<T> Share<T> {
    /// Opens lanes for the groups of `reqs` (see the module doc), filling each request's
    /// grant (0 slots: refused). All of a share's lanes are opened in one call: a lane's
    /// grant depends on the others. Refuses everything while a lane is still open.
    pub fn lanes_open(&mut self, reqs: &mut [LaneRequest]) {
        for r in reqs.iter_mut() {
            r.grant = LaneGrant::default();
        }
        if !self.lanes.is_empty()
            || !self.params.policy.is_weight()
            || (self.span.is_none() && self.params.io_throttle == 0)
            || !self.ready.is_empty()
            || !self.reserve.is_empty()
            || !self.limited.is_empty()
        {
            return;
        }
        let floor = self.vclock.saturating_sub(self.credit_vt);
        // Which requests may have a lane: (index, slot, idle, vtime at first dispatch).
        // (Scratch kept in the share: no allocation per opening once it has grown.)
        let mut eligible = std::mem::take(&mut self.lane_scratch);
        eligible.clear();
        for (i, r) in reqs.iter().enumerate() {
            let Some(g) = self.lane_group(r.dev, r.group) else {
                continue;
            };
            if !g.queue.is_empty() || eligible.iter().any(|e| e.1 == r.group.slot) {
                continue;
            }
            let idle = g.in_flight == 0;
            let start = g.vtime.max(floor);
            eligible.push((i, r.group.slot, idle, start));
        }
        if !eligible.is_empty() {
            self.grant_lanes(reqs, &eligible, floor);
        }
        self.lane_scratch = eligible;
    }

    /// The grants of the eligible requests (`lanes_open`'s second half).
    fn grant_lanes(
        &mut self,
        reqs: &mut [LaneRequest],
        eligible: &[(usize, u32, bool, u128)],
        floor: u128,
    ) {
        let contended = self.span.as_ref().is_some_and(|s| s.contended);
        // The other groups that may be active, or expected back, at a lane's I/O: active
        // or expected ones now, and those with I/O in flight (a completion, which the host
        // need not settle the lanes for, marks them so).
        let mut others_expected = 0u32;
        let mut others_active = false;
        for (i, entry) in self.slots.iter().enumerate() {
            let Some(g) = entry.group.as_ref() else {
                continue;
            };
            let slot = crate::heap::index_u32(i);
            if eligible.iter().any(|e| e.1 == slot) {
                continue;
            }
            if g.expected || g.in_flight > 0 {
                others_expected += 1;
            }
            others_active |= g.in_flight > 0 || self.active.contains(slot);
        }
        let windowed = contended || eligible.len() >= 2 || others_active;
        let mut cap = self.dispatch_limit();
        if windowed {
            // The gate with every other lane's group and every other busy group expected
            // back (this one is not: its own submission clears it before the check).
            let expected = others_expected + u32::try_from(eligible.len() - 1).unwrap_or(u32::MAX);
            let gate = (self.io_throttle - expected.min(self.io_throttle / 2))
                .max(self.io_throttle.min(PROBE_DEPTH));
            cap = cap.min(gate);
        }
        self.lane_cap = cap;
        let room = cap.saturating_sub(self.in_flight);
        let n = u32::try_from(eligible.len()).unwrap_or(u32::MAX);
        let (each, extra) = (room / n, room % n);
        let ceiling = if contended {
            self.span.as_ref().map_or(u128::MAX, |s| s.vt_ceiling)
        } else {
            u128::MAX
        };
        for (k, &(i, slot, idle, start)) in eligible.iter().enumerate() {
            let slots = (each + u32::from(u32::try_from(k).unwrap_or(u32::MAX) < extra))
                .min(LANE_SLOTS_MAX);
            if slots == 0 {
                continue;
            }
            // The virtual time this group's dispatches may start at.
            let mut bound = ceiling;
            for &(_, other, _, _) in eligible {
                if other != slot {
                    if let Some(g) = self.slots[other as usize].group.as_ref() {
                        bound = bound.min(g.vtime.saturating_add(self.credit_vt));
                    }
                }
            }
            let Some(g) = self.slots[slot as usize].group.as_ref() else {
                continue;
            };
            let budget = cost_budget(start, g.vtime_rem, g.params.weight, bound);
            if budget == 0 {
                continue;
            }
            reqs[i].grant = LaneGrant {
                slots,
                cost_budget: budget,
            };
            self.lanes.push(OpenLane {
                group: reqs[i].group,
                reserved: slots,
                idle,
                floor,
            });
            self.in_flight += slots;
        }
    }

    /// Opens a lane for one group (the share's only one): [`Share::lanes_open`] of one.
    pub fn lane_open(&mut self, dev: DeviceIdx, group: GroupId) -> LaneGrant {
        let mut req = [LaneRequest::new(dev, group)];
        self.lanes_open(&mut req);
        req[0].grant
    }

    /// Gives the open lane of `group` the room below the lanes' cap that completions of
    /// I/O the share dispatched itself have made since the lanes opened (the host calls it
    /// after such a completion of the group): the slots it gets (0: no lane, no room). Each
    /// I/O of the lane still finds the share below the limit and the window: the cap was
    /// computed for every lane and every group in flight at open, and nothing it depends
    /// on changes while the lanes are open.
    pub fn lane_grow(&mut self, group: GroupId) -> u32 {
        let room = self.lane_cap.saturating_sub(self.in_flight);
        let Some(l) = self.lanes.iter_mut().find(|l| l.group == group) else {
            return 0;
        };
        let extra = room.min(LANE_SLOTS_MAX.saturating_sub(l.reserved));
        l.reserved += extra;
        self.in_flight += extra;
        extra
    }

    /// Whether any lane is open.
    pub fn lanes_are_open(&self) -> bool {
        !self.lanes.is_empty()
    }

    /// Applies what the lane of `group` did (see the module doc) and closes it: its unused
    /// slots go back. Counts of a lane closed already (completions of its I/O that came
    /// after its last settle) are applied the same way. Then dispatches whatever waits and
    /// has room now. Never fails: counts of a group that is gone are dropped, and the
    /// share's in-flight count and cost are corrected whatever happened to the group.
    pub fn lane_settle<F: crate::Release<T> + ?Sized>(
        &mut self,
        dev: DeviceIdx,
        group: GroupId,
        counts: &LaneCounts,
        now_ticks: u64,
        sink: &mut F,
    ) {
        let open = self
            .lanes
            .iter()
            .position(|l| l.group == group)
            .map(|i| self.lanes.swap_remove(i));
        if let Some(l) = open {
            self.in_flight = self.in_flight.saturating_sub(l.reserved);
        }
        if !counts.is_empty() {
            self.apply_lane(dev, group, counts, open);
        }
        let now_sub = self.now_subticks(now_ticks);
        if self.ready.is_empty() && self.reserve.is_empty() && self.limited.is_empty() {
            return;
        }
        self.run(ticks_of(now_sub), now_sub, self.next_seq, sink);
    }

    /// The group of a lane, if it is still what `group` names on `dev`.
    fn lane_group(&self, dev: DeviceIdx, group: GroupId) -> Option<&super::Group<T>> {
        self.devices.get(dev.0 as usize)?.as_ref()?;
        let entry = self.slots.get(group.slot as usize)?;
        if entry.generation != group.generation {
            return None;
        }
        entry.group.as_ref().filter(|g| g.device == dev.0)
    }

    fn apply_lane(
        &mut self,
        dev: DeviceIdx,
        group: GroupId,
        c: &LaneCounts,
        open: Option<OpenLane>,
    ) {
        let dispatched = c.dispatched();
        let dispatched_u32 = u32::try_from(dispatched).unwrap_or(u32::MAX);
        let completed_u32 = u32::try_from(c.completed).unwrap_or(u32::MAX);
        // The clock as the events left it.
        self.now_subticks(c.last_tick);
        // The share: what the per-I/O calls would have counted.
        self.in_flight = (self.in_flight + dispatched_u32).saturating_sub(completed_u32);
        self.cost_in_flight = (self.cost_in_flight + c.cost).saturating_sub(c.completed_cost);
        self.next_seq += dispatched;
        if c.completed > 0 {
            let batch = super::Batch {
                latency_sum_ticks: c.latency_sum_ticks,
                completions: c.completed,
                latency_min_ticks: c.latency_min_ticks,
                latency_min_drained_ticks: c.latency_min_drained_ticks,
                bytes: c.completed_bytes,
                bound: false,
            };
            if self.span.is_some() {
                let b = &mut self.batch;
                b.latency_sum_ticks = b.latency_sum_ticks.wrapping_add(batch.latency_sum_ticks);
                b.completions += batch.completions;
                b.latency_min_ticks = b.latency_min_ticks.min(batch.latency_min_ticks);
                b.latency_min_drained_ticks = b
                    .latency_min_drained_ticks
                    .min(batch.latency_min_drained_ticks);
                b.bytes = b.bytes.wrapping_add(batch.bytes);
            }
            if self.depth.on_batch(&batch, c.last_tick) {
                if self.params.io_throttle == 0 && self.span.is_none() {
                    self.io_throttle = self.depth.depth();
                    self.refresh_window_gate();
                }
                self.refresh_grace();
                if self.ranged() && self.span.is_none() {
                    self.refresh_spare_cap(c.last_tick);
                }
            }
        }
        // The group, if it is still there.
        if self.lane_group(dev, group).is_none() {
            return;
        }
        let slot = group.slot;
        let Some(g) = self.slots[slot as usize].group.as_mut() else {
            return;
        };
        if dispatched > 0 {
            if let Some(l) = open {
                g.vtime = g.vtime.max(l.floor);
                if l.idle {
                    g.reserve_tag = g.reserve_tag.max(u128::from(c.first_tick) << SUBTICK_SHIFT);
                }
            }
            let weight = u64::from(g.params.weight.max(1));
            // Every charge but the last: the virtual time the last one started at.
            let (vt, rem) = advance(
                g.vtime,
                g.vtime_rem,
                c.cost.saturating_sub(c.last_cost),
                weight,
            );
            let last_start = vt;
            let (vt, rem) = advance(vt, rem, c.last_cost, weight);
            g.vtime = vt;
            g.vtime_rem = rem;
            self.vclock = self.vclock.max(last_start);
            g.in_flight += dispatched_u32;
            g.cost_in_flight += c.cost;
            g.span_cost += c.cost;
            g.last_cost = c.last_cost;
            let s = &mut g.stats;
            s.read_ios += c.read_ios;
            s.read_bytes += c.read_bytes;
            s.write_ios += c.write_ios;
            s.write_bytes += c.write_bytes;
            s.dispatched_ios += dispatched;
            s.dispatched_bytes += c.read_bytes + c.write_bytes;
            s.dispatched_cost += c.cost;
        }
        g.in_flight = g.in_flight.saturating_sub(completed_u32);
        g.cost_in_flight = g.cost_in_flight.saturating_sub(c.completed_cost);
        g.stats.completed_ios += c.completed;
        g.stats.in_flight = u64::from(g.in_flight);
        g.last_event_ticks = g.last_event_ticks.max(c.last_tick);
        // Expected as the last event left it: a dispatch clears it, a completion that
        // leaves the group idle sets it.
        let idle = g.in_flight == 0 && g.queue.is_empty();
        let expected = if dispatched > 0 {
            idle
        } else {
            g.expected || idle
        };
        if expected != g.expected {
            g.expected = expected;
            if expected {
                self.expected += 1;
            } else {
                self.expected -= 1;
            }
            self.refresh_window_gate();
        }
        self.activate(slot, c.first_tick);
    }
}

/// Virtual time after charging `cost` at `weight`, the remainder carried (what one charge
/// per I/O leaves, summed).
fn advance(vtime: u128, rem: u64, cost: u64, weight: u64) -> (u128, u64) {
    match cost
        .checked_mul(VT_SCALE_U64)
        .and_then(|c| c.checked_add(rem))
    {
        Some(scaled) => (vtime + u128::from(scaled / weight), scaled % weight),
        None => {
            let scaled = u128::from(cost) * VT_SCALE + u128::from(rem);
            let w = u128::from(weight);
            (vtime + scaled / w, u64::try_from(scaled % w).unwrap_or(0))
        }
    }
}

/// The budget of a lane whose group starts at virtual time `start` (remainder `rem`,
/// weight `weight`) and may start cost while its virtual time is at most `bound`: one
/// more than the most cost `C` with `start + ⌊(C·scale + rem) / weight⌋ ≤ bound`
/// (`u64::MAX`: no bound; 0: not even one I/O).
fn cost_budget(start: u128, rem: u64, weight: u32, bound: u128) -> u64 {
    if bound == u128::MAX {
        return u64::MAX;
    }
    if bound < start {
        return 0;
    }
    let w = u128::from(weight.max(1));
    let room = (bound - start)
        .saturating_mul(w)
        .saturating_add(w - 1)
        .saturating_sub(u128::from(rem));
    let most = room / VT_SCALE;
    u64::try_from(most.saturating_add(1)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
