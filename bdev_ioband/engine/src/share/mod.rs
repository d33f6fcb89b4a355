//! A share: the scheduler that divides one device's bandwidth among the groups of every
//! ioband device in it.
//!
//! Owned by one thread (the host funnels a share's I/O to its owner core); no locks, no
//! clock reads: every call takes `now` in ticks. Nothing allocates on the I/O path once a
//! group's queue has grown to its working depth.
//!
//! # How it schedules
//! - **Weight** (`weight`, `weight-iosize`): start-time fair queuing. Each group keeps a
//!   virtual time that grows by `cost / weight` per dispatched I/O; the backlogged group
//!   with the smallest one goes next (an indexed heap, O(log n)). At most `io_limit` I/Os
//!   are in flight for the share.
//! - **Activity with anticipation.** A group is *active* while it has I/O queued, and for
//!   `idle_grace` after its last submission or completion otherwise (BFQ's idling and
//!   blk-iocost's period activity, as one rule). A closed-loop tenant at queue depth 1, or
//!   one a network round trip away, is idle for a moment after every completion; the grace
//!   keeps it active across that gap. A group whose only I/O is one slow request in flight
//!   stops being active once the grace has passed since it was submitted. The default
//!   grace is four times the share's smoothed completion latency, within 1..=10 ms.
//! - **The window** (`io_throttle`, dm-ioband's knob given a precise meaning): while two or
//!   more groups are active, the share keeps at most `io_throttle` I/Os in flight and what
//!   waits is dispatched in virtual-time order as slots free. That does two things: the
//!   base's queue stays short, so a low-depth tenant's next I/O (first in order, since it
//!   used less than its share) waits behind a short queue instead of the others' backlog;
//!   and tenants that never fill `io_limit` (closed loops below it) still queue in the
//!   share, where virtual time gives them their weights, in cost. A group alone is never
//!   windowed. One slot is kept free for each active group that has nothing queued or in
//!   flight (a closed loop between two I/Os, expected back within the grace; BFQ's
//!   idling as a reserved slot), up to half the window, so its next I/O does not wait for
//!   a completion. `io_throttle` 0 (the default) adapts the window to the base: about half
//!   above its bandwidth-delay product, judged from latency (see [`depth`]), so the base
//!   stays busy. A group whose queue is empty when it submits (idle, or with I/O in
//!   flight that never had to queue) re-enters at most `carryover` epochs (`token` tokens
//!   of the share's work) behind the leader, which caps its banked credit at
//!   `carryover × initial` tokens, as dm-ioband's epoch credit does: a tenant that used
//!   less than its weight while the window never bound is not owed the rest when
//!   contention begins. (Under range-bw only an idle group is lifted: see `Share::submit`.)
//! - **range-bw** (mClock's three tags): per group, a reservation tag that runs at `min`
//!   and a limit tag that runs at `max`, in ticks. A group whose reservation tag is due is
//!   served first (the reservation phase) and only those dispatches advance its
//!   reservation tag: spare bandwidth handed out by weight is not charged against the
//!   reservation. A reservation tag never lags `now` by more than [`RESERVE_LAG_MAX_MS`]
//!   (no unbounded catch-up debt) and never runs more than one I/O ahead of it (it is
//!   charged only when due); a changed min restarts it at `now`, so a raised min takes
//!   effect at once. When reservations cannot all be met (Σmin above what the device
//!   delivers, possible while `capacity` is unknown), every other dispatch goes by weight,
//!   so min-0 groups are slowed, not starved. range-bw has no window; spare bandwidth is
//!   handed out only below `max(io_throttle as set, min over the active groups with a min
//!   of ⌈d·X/(1.125·min)⌉)` of cost in flight (`d`: the group's queued and in-flight cost,
//!   at least the depth it keeps, its queued and in-flight I/Os just after its last
//!   submission, at its last I/O's cost, so a group that stops submitting does not shut
//!   the cap while its last I/Os drain; `X`: the bytes per second the base delivered over
//!   the last period): past that depth
//!   a group's part of the in-flight work is below its min's part of the device (Little's
//!   law), and its I/O would wait too long at the base for its min, however early it was
//!   dispatched. A group ahead of its limit tag waits in a
//!   timed heap. The limit tag runs one I/O a second below `max` (at most an eighth below,
//!   never below `min`: `max_pace_bytes_per_sec`), so that at a steady pace completion-time
//!   jitter of up to one I/O's interval never shows as more than `max` in a second. A
//!   group that waited for a free slot may catch up by one I/O (using that slack), so in
//!   any window of `w` seconds it moves at most `max·w` plus two I/Os at dispatch (the
//!   fence post and that catch-up; on a share that spans cores, one catch-up per core);
//!   it banks no reservation and no limit credit while idle.
//! - The policy decides which setting schedules: under `weight` and `weight-iosize` a
//!   group's min and max are kept (a policy switch back restores them) but not applied.
//!
//! # Bound groups
//! A device may be created *bound* to a group ([`Share::add_device_bound`]): its default
//! group then has that key (`initiator:<nqn>`, `cgroup:<id>`, `tag:<n>`) instead of `none`.
//! Every I/O the device gets that no attached group claims goes there, so a host that cannot
//! tell who submitted an I/O (SPDK's bdev API carries no caller identity) still counts a
//! tenant's I/O to a group with the tenant's name: one ioband device per tenant over the
//! same base, all in one share. The *device* of the engine stays the ioband bdev, not the
//! base: each tenant's group is a group of its own device, and the groups of all devices of
//! a share compete in one scheduler, so the tenants' shares are exactly those of groups
//! attached to one device (nothing is split or merged per base). `none` still names a
//! bound device's default group (its bound group). A bound group is on one device of its
//! share only: binding a group that is bound or attached on a device of the share, or
//! attaching one bound elsewhere in it, is refused ([`EngineError::Binding`]), as is
//! detaching it (it goes with its device). The same key may be bound in other shares.

use std::collections::{HashMap, VecDeque};

use crate::group::{GroupId, GroupKey, GroupStats, Op};
use crate::heap::{index_u32, IndexedHeap};
use crate::params::{GroupParams, GroupValue, Policy, ShareParams, RANGE_BW_MAX_KIB_PER_SEC};
use crate::EngineError;

mod depth;
mod io;
mod lane;
mod mirror;
mod span;

pub use depth::{Batch, FLOOR_TTL_MS, QUEUE_DELAY_MIN_US};
pub use lane::{LaneCounts, LaneGrant, LaneRequest, LANE_SLOTS_MAX};
pub use mirror::{ShareLayout, SlotLayout};
pub use span::{CoreReport, Grant, GroupGrant, GroupReport, Hub, BASE_DEPTH_TTL_MS};

/// Fixed-point scale of virtual time: one token at weight 1 advances it by this much.
const VT_SCALE: u128 = 1 << 20;
const VT_SCALE_U64: u64 = 1 << 20;
/// Most groups (default groups included) one share holds.
pub const MAX_GROUPS: usize = 1 << 20;
/// Tags are kept in ticks shifted left by this many bits.
const SUBTICK_SHIFT: u32 = 16;
/// Most a reservation tag may lag `now`, in ms: reservation debt older than this is forgiven.
pub const RESERVE_LAG_MAX_MS: u64 = 100;
/// Bounds of the derived `idle_grace`, in µs.
const GRACE_AUTO_MIN_US: u64 = 1_000;
const GRACE_AUTO_MAX_US: u64 = 10_000;
/// The derived `idle_grace` is this many smoothed completion latencies.
const GRACE_AUTO_LATENCIES: u64 = 4;

/// Index of an ioband device within its share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceIdx(pub(crate) u32);

/// Result of offering an I/O to the share.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit<T> {
    /// The engine owns the I/O now; it comes back through a dispatch sink exactly once.
    Accepted,
    /// The device is gone: the I/O is handed back untouched for the host to fail.
    NoDevice(T),
}

#[derive(Debug)]
struct Pending<T> {
    io: T,
    op: Op,
    bytes: u64,
    enqueued_ticks: u64,
    seq: u64,
}

#[derive(Debug)]
struct Group<T> {
    key: GroupKey,
    device: u32,
    params: GroupParams,
    queue: VecDeque<Pending<T>>,
    vtime: u128,
    vtime_rem: u64,
    /// The last charge's step of virtual time, kept so that a run of I/O of one cost
    /// advances virtual time without a division.
    vt_step: VtStep,
    reserve_tag: u128,
    limit_tag: u128,
    in_flight: u32,
    /// Cost of its I/O in flight, and of its last dispatched I/O.
    cost_in_flight: u64,
    last_cost: u64,
    /// I/Os it had queued and in flight just after its last submission: the depth it
    /// keeps, which sizes range-bw's spare cap (a group that stops submitting keeps
    /// that size while its last I/Os drain: see `Share::refresh_spare_cap`).
    kept_ios: u32,
    /// Tick of its last submission or completion: activity is judged from it.
    last_event_ticks: u64,
    /// Cost this core has dispatched for the group, ever (reported to the hub when the
    /// share spans cores; never reset, unlike the stats).
    span_cost: u64,
    /// Cost the other cores had dispatched for the group, as of the last grant applied.
    remote_cost: u64,
    /// This core's part of the group's min and max, in 1/65536 (the whole when the share
    /// does not span cores).
    rate_frac: u32,
    /// Counted in `expected`: active with nothing queued or in flight (a closed loop
    /// between two I/Os), so the window keeps a slot free for it.
    expected: bool,
    stats: GroupStats,
}

impl<T> Group<T> {
    /// Its queued and in-flight cost (what it queues is costed at its front I/O's size).
    fn owed_cost(&self, policy: Policy) -> u64 {
        let queued = self.queue.front().map_or(0, |p| policy.cost(p.bytes));
        self.cost_in_flight + queued * self.queue.len() as u64
    }

    /// What range-bw's spare cap sizes the group by, at least: the depth it keeps (see
    /// `kept_ios`) at the cost of its last I/O.
    fn kept_cost(&self) -> u64 {
        self.last_cost
            .saturating_mul(u64::from(self.kept_ios.max(1)))
    }
}

/// `cost × VT_SCALE / weight` as quotient and remainder, for one (cost, weight); the
/// default matches no charge (weight 0 is never charged: weights count from 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct VtStep {
    cost: u64,
    weight: u64,
    quot: u64,
    rem: u64,
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    group: Option<Group<T>>,
}

#[derive(Debug)]
struct Device {
    name: String,
    default_slot: u32,
    groups: HashMap<GroupKey, u32>,
}

/// One share and its scheduler.
#[derive(Debug)]
pub struct Share<T> {
    name: String,
    params: ShareParams,
    ticks_per_sec: u64,
    devices: Vec<Option<Device>>,
    slots: Vec<Slot<T>>,
    free_slots: Vec<u32>,
    ready: IndexedHeap<u128>,
    reserve: IndexedHeap<u128>,
    limited: IndexedHeap<u128>,
    /// Active groups, keyed by a lower bound of their last event's tick.
    active: IndexedHeap<u64>,
    /// How many active groups have nothing queued or in flight (see `Group::expected`).
    expected: u32,
    /// In-flight level at which the window is full: io_throttle less the slots kept free
    /// for expected groups (at most half of it).
    window_gate: u32,
    /// Slots of the groups with a min (any policy; used under range-bw).
    min_slots: Vec<u32>,
    /// range-bw: cost in flight from which spare bandwidth waits, recomputed each period
    /// of the auto window from the active groups with a min (u64::MAX: none).
    spare_cap_cost: u64,
    in_flight: u32,
    /// Cost of everything in flight (tokens: I/Os, or sectors).
    cost_in_flight: u64,
    vclock: u128,
    weight_total: u64,
    min_total_kib_per_sec: u64,
    next_seq: u64,
    last_now_subticks: u128,
    io_limit: u32,
    io_throttle: u32,
    epoch_vt: u128,
    credit_vt: u128,
    /// How long a group with nothing queued stays active after its last event.
    grace_ticks: u64,
    grace_min_ticks: u64,
    grace_max_ticks: u64,
    /// Most a reservation tag may lag now, in subticks.
    reserve_lag_sub: u128,
    /// The auto window (used while `io_throttle` is 0).
    depth: depth::DepthControl,
    /// Whether the next due reservation yields to the weighted order (only while the
    /// reservations are behind by more than `reserve_lag_sub`).
    spare_turn: bool,
    /// Set when the share spans cores: what the last grant of the hub allows this core.
    span: Option<span::Span>,
    /// Completions since the last report to the hub.
    batch: depth::Batch,
    /// On the control core's replica of a share that spans cores: the other cores'
    /// counters per group slot (see the mirror module).
    remote_stats: Vec<mirror::RemoteStats>,
    /// Open lanes (see the lane module): their slots are counted in `in_flight`.
    lanes: Vec<lane::OpenLane>,
    /// What the open lanes and everything else in flight may reach together.
    lane_cap: u32,
    /// Scratch of `lanes_open`: (request, slot, idle, virtual time at first dispatch).
    lane_scratch: Vec<(usize, u32, bool, u128)>,
}

impl<T> Share<T> {
    /// Creates an empty share; `ticks_per_sec` is the rate of the host's tick counter.
    pub fn new(name: &str, params: ShareParams, ticks_per_sec: u64) -> Result<Self, EngineError> {
        crate::engine::validate_name(name)?;
        params.validate()?;
        if ticks_per_sec == 0 {
            return Err(EngineError::OutOfRange {
                param: "ticks_per_sec",
                value: 0,
                min: 1,
                max: i64::MAX,
            });
        }
        let mut share = Share {
            name: name.to_owned(),
            params,
            ticks_per_sec,
            devices: Vec::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            ready: IndexedHeap::default(),
            reserve: IndexedHeap::default(),
            limited: IndexedHeap::default(),
            active: IndexedHeap::default(),
            expected: 0,
            window_gate: 0,
            min_slots: Vec::new(),
            spare_cap_cost: u64::MAX,
            in_flight: 0,
            cost_in_flight: 0,
            vclock: 0,
            weight_total: 0,
            min_total_kib_per_sec: 0,
            next_seq: 0,
            last_now_subticks: 0,
            io_limit: 0,
            io_throttle: 0,
            epoch_vt: 0,
            credit_vt: 0,
            grace_ticks: 0,
            grace_min_ticks: 0,
            grace_max_ticks: 0,
            reserve_lag_sub: 0,
            spare_turn: false,
            span: None,
            batch: depth::Batch::default(),
            remote_stats: Vec::new(),
            lanes: Vec::new(),
            lane_cap: 0,
            lane_scratch: Vec::new(),
            depth: depth::DepthControl::new(params.effective_io_limit(), ticks_per_sec),
        };
        share.refresh_derived();
        Ok(share)
    }

    /// The share's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The knobs as set.
    pub fn params(&self) -> &ShareParams {
        &self.params
    }

    /// The tick rate this share was built with.
    pub fn ticks_per_sec(&self) -> u64 {
        self.ticks_per_sec
    }

    /// I/Os in flight for the whole share.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// I/Os queued in the whole share.
    pub fn queued(&self) -> u64 {
        self.groups().map(|g| g.queue.len() as u64).sum()
    }

    /// Sum of the weights of every attached group.
    pub fn weight_total(&self) -> u64 {
        self.weight_total
    }

    fn groups(&self) -> impl Iterator<Item = &Group<T>> {
        self.slots.iter().filter_map(|s| s.group.as_ref())
    }

    fn refresh_derived(&mut self) {
        self.io_limit = self.params.effective_io_limit();
        self.depth.set_max(self.io_limit);
        self.io_throttle = match &self.span {
            Some(span) => span.window,
            None if self.params.io_throttle == 0 => self.depth.depth(),
            None => self.params.io_throttle,
        };
        self.refresh_window_gate();
        let total = u128::from(self.weight_total.max(1));
        self.epoch_vt = u128::from(self.params.effective_token()) * VT_SCALE / total;
        self.credit_vt = self.epoch_vt * u128::from(self.params.effective_carryover());
        let us = |v: u64| v.saturating_mul(self.ticks_per_sec) / 1_000_000;
        self.reserve_lag_sub = u128::from(us(RESERVE_LAG_MAX_MS * 1000)) << SUBTICK_SHIFT;
        if self.params.idle_grace_us == 0 {
            self.grace_min_ticks = us(GRACE_AUTO_MIN_US);
            self.grace_max_ticks = us(GRACE_AUTO_MAX_US);
        } else {
            let set = us(u64::from(self.params.idle_grace_us));
            self.grace_min_ticks = set;
            self.grace_max_ticks = set;
        }
        self.refresh_grace();
    }

    /// The grace in force: the set one, or a multiple of the smoothed latency.
    #[inline]
    pub(super) fn refresh_grace(&mut self) {
        self.grace_ticks = self
            .depth
            .smoothed_latency_ticks()
            .saturating_mul(GRACE_AUTO_LATENCIES)
            .clamp(self.grace_min_ticks, self.grace_max_ticks);
    }

    /// The window in force: the set `io_throttle`, or the adapted one when it is 0 (for a
    /// share that spans cores, the whole share's, as the hub last granted it).
    pub fn io_throttle_in_force(&self) -> u32 {
        match &self.span {
            Some(span) => span.window_total,
            None => self.io_throttle,
        }
    }

    /// Marks a group active at `now_ticks` (a no-op if it is: the key is a lower bound,
    /// refreshed lazily by `contended`).
    #[inline]
    pub(super) fn activate(&mut self, slot: u32, now_ticks: u64) {
        if !self.active.contains(slot) {
            self.active.set(slot, now_ticks);
        }
    }

    /// Whether the share applies groups' min and max (only `range-bw` does).
    fn ranged(&self) -> bool {
        !self.params.policy.is_weight()
    }

    // ----- control plane -------------------------------------------------------------

    /// Changes the share's knobs. A policy change keeps every group's weight and range and
    /// restarts virtual time, since costs change unit.
    pub fn set_params(&mut self, params: ShareParams) -> Result<(), EngineError> {
        params.validate()?;
        self.check_min_sum(self.min_total_kib_per_sec, params.capacity_kib_per_sec)?;
        self.apply_params(params);
        Ok(())
    }

    /// Changes the knobs, checked by the caller (or by the owner a replica mirrors).
    fn apply_params(&mut self, params: ShareParams) {
        let policy_changed = params.policy != self.params.policy;
        self.params = params;
        self.refresh_derived();
        if policy_changed {
            // Costs change unit: virtual time restarts, and range tags start afresh. Each
            // group goes back into exactly the heaps its state calls for under the new
            // policy (a capped group waiting on its limit tag stays in the timed heap).
            let vclock = self.vclock;
            let now_sub = self.last_now_subticks;
            for slot in 0..self.slots.len() {
                let Some(g) = self.slots[slot].group.as_mut() else {
                    continue;
                };
                g.vtime = vclock;
                g.vtime_rem = 0;
                g.reserve_tag = now_sub;
                self.reposition(index_u32(slot), now_sub);
            }
        }
    }

    fn check_min_sum(&self, sum_kib_per_sec: u64, capacity: u32) -> Result<(), EngineError> {
        let cap = if capacity == 0 {
            RANGE_BW_MAX_KIB_PER_SEC
        } else {
            capacity
        };
        if sum_kib_per_sec > u64::from(cap) {
            return Err(EngineError::MinSumExceeded {
                share: self.name.clone(),
                sum_kib_per_sec,
                capacity_kib_per_sec: u64::from(cap),
            });
        }
        Ok(())
    }

    /// Adds an ioband device with its default group (control path).
    pub fn add_device(&mut self, name: &str) -> Result<DeviceIdx, EngineError> {
        self.add_device_bound(name, None)
    }

    /// Adds an ioband device whose default group is `bound` (the module doc: bound groups),
    /// or the plain default group `none` when `bound` is `None`. Refused, changing nothing:
    /// `bound` being `none`, or a group bound to or attached on a device of this share
    /// already ([`EngineError::Binding`]).
    pub fn add_device_bound(
        &mut self,
        name: &str,
        bound: Option<&GroupKey>,
    ) -> Result<DeviceIdx, EngineError> {
        crate::engine::validate_name(name)?;
        if self.device_by_name(name).is_some() {
            return Err(EngineError::DeviceExists(name.to_owned()));
        }
        if let Some(key) = bound {
            self.check_bindable(key)?;
        }
        let index = match self.devices.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.devices.push(None);
                self.devices.len() - 1
            }
        };
        self.check_room()?;
        let key = bound.cloned().unwrap_or(GroupKey::None);
        let slot = self.alloc_slot(key, index_u32(index), GroupParams::default());
        self.devices[index] = Some(Device {
            name: name.to_owned(),
            default_slot: slot,
            groups: HashMap::new(),
        });
        Ok(DeviceIdx(index_u32(index)))
    }

    /// Finds a device of this share by name.
    pub fn device_by_name(&self, name: &str) -> Option<DeviceIdx> {
        self.devices
            .iter()
            .position(|d| d.as_ref().is_some_and(|d| d.name == name))
            .map(|i| DeviceIdx(index_u32(i)))
    }

    /// Names of the devices in the share, in creation-slot order.
    pub fn device_names(&self) -> impl Iterator<Item = (DeviceIdx, &str)> {
        self.devices.iter().enumerate().filter_map(|(i, d)| {
            d.as_ref()
                .map(|d| (DeviceIdx(index_u32(i)), d.name.as_str()))
        })
    }

    /// How many devices the share has.
    pub fn device_count(&self) -> usize {
        self.devices.iter().flatten().count()
    }

    /// Removes a device and every group on it. Queued I/O is handed back, in order, for the
    /// host to complete; I/O in flight completes later through its ticket as usual.
    pub fn remove_device(&mut self, dev: DeviceIdx) -> Result<Vec<T>, EngineError> {
        let device = self
            .devices
            .get_mut(dev.0 as usize)
            .and_then(Option::take)
            .ok_or_else(|| EngineError::NoSuchDevice(format!("#{}", dev.0)))?;
        let mut drained = Vec::new();
        let mut slots: Vec<u32> = device.groups.values().copied().collect();
        slots.push(device.default_slot);
        slots.sort_unstable();
        for slot in slots {
            if let Some(group) = self.free_slot(slot) {
                drained.extend(group.queue.into_iter().map(|p| p.io));
            }
        }
        Ok(drained)
    }

    fn device(&self, dev: DeviceIdx) -> Result<&Device, EngineError> {
        self.devices
            .get(dev.0 as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| EngineError::NoSuchDevice(format!("#{}", dev.0)))
    }

    /// The device's name.
    pub fn device_name(&self, dev: DeviceIdx) -> Result<&str, EngineError> {
        Ok(&self.device(dev)?.name)
    }

    /// Whether `key` may be bound to a new device of this share: not `none`, and on no
    /// device of the share yet, bound or attached.
    fn check_bindable(&self, key: &GroupKey) -> Result<(), EngineError> {
        let refuse = |reason: String| EngineError::Binding {
            group: key.to_string(),
            reason,
        };
        if *key == GroupKey::None {
            return Err(refuse(
                "cannot be bound: every ioband bdev has a default group; leave the group out"
                    .to_owned(),
            ));
        }
        match self.device_with_group(key) {
            Some((dev, true)) => Err(refuse(format!(
                "is bound to ioband bdev '{}' of share '{}' already",
                self.device_name(dev)?,
                self.name
            ))),
            Some((dev, false)) => Err(refuse(format!(
                "is attached to ioband bdev '{}' of share '{}'; detach it there first",
                self.device_name(dev)?,
                self.name
            ))),
            None => Ok(()),
        }
    }

    /// The group a device is bound to (its default group's key), if it is bound.
    pub fn bound_group(&self, dev: DeviceIdx) -> Result<Option<&GroupKey>, EngineError> {
        let key = &self.group(self.device(dev)?.default_slot)?.key;
        Ok((*key != GroupKey::None).then_some(key))
    }

    /// The device of this share where group `key` is (never `none`), and whether it is
    /// bound there. A bound group is on no other device of its share.
    pub fn device_with_group(&self, key: &GroupKey) -> Option<(DeviceIdx, bool)> {
        if *key == GroupKey::None {
            return None;
        }
        self.devices.iter().enumerate().find_map(|(i, d)| {
            let d = d.as_ref()?;
            let dev = DeviceIdx(index_u32(i));
            if d.groups.contains_key(key) {
                Some((dev, false))
            } else {
                let bound = self.slots.get(d.default_slot as usize)?.group.as_ref()?;
                (bound.key == *key).then_some((dev, true))
            }
        })
    }

    fn slot_of(&self, dev: DeviceIdx, key: &GroupKey) -> Result<u32, EngineError> {
        let device = self.device(dev)?;
        // `none` names the default group; on a bound device, the bound group is it.
        if *key == GroupKey::None || self.group(device.default_slot)?.key == *key {
            return Ok(device.default_slot);
        }
        device
            .groups
            .get(key)
            .copied()
            .ok_or_else(|| EngineError::NoSuchGroup {
                device: device.name.clone(),
                group: key.to_string(),
            })
    }

    /// Attaches a group to a device with the given value (or the defaults).
    pub fn attach(
        &mut self,
        dev: DeviceIdx,
        key: GroupKey,
        value: Option<GroupValue>,
    ) -> Result<GroupId, EngineError> {
        let device = self.device(dev)?;
        if key == GroupKey::None {
            return Err(EngineError::DefaultGroup(device.name.clone()));
        }
        if device.groups.contains_key(&key) || self.bound_group(dev)? == Some(&key) {
            return Err(EngineError::GroupExists {
                device: device.name.clone(),
                group: key.to_string(),
            });
        }
        if let Some((other, true)) = self.device_with_group(&key) {
            return Err(EngineError::Binding {
                group: key.to_string(),
                reason: format!(
                    "is bound to ioband bdev '{}' of share '{}'; set its value there",
                    self.device_name(other)?,
                    self.name
                ),
            });
        }
        let params = match value {
            Some(v) => v.apply(self.params.policy, GroupParams::default())?,
            None => GroupParams::default(),
        };
        self.check_min_sum(
            self.min_total_kib_per_sec + u64::from(params.min_kib_per_sec),
            self.params.capacity_kib_per_sec,
        )?;
        self.check_room()?;
        let slot = self.alloc_slot(key.clone(), dev.0, params);
        if let Some(Some(device)) = self.devices.get_mut(dev.0 as usize) {
            device.groups.insert(key, slot);
        }
        Ok(self.id_of(slot))
    }

    /// Detaches a group. Its queued I/O moves, in order, to the device's default group.
    pub fn detach(&mut self, dev: DeviceIdx, key: &GroupKey) -> Result<(), EngineError> {
        if *key == GroupKey::None {
            return Err(EngineError::DefaultGroup(self.device(dev)?.name.clone()));
        }
        if self.bound_group(dev)? == Some(key) {
            return Err(EngineError::Binding {
                group: key.to_string(),
                reason: format!(
                    "is bound to ioband bdev '{}': it goes with the bdev (bdev_ioband_delete)",
                    self.device(dev)?.name
                ),
            });
        }
        let slot = self.slot_of(dev, key)?;
        let default_slot = self.device(dev)?.default_slot;
        if let Some(Some(device)) = self.devices.get_mut(dev.0 as usize) {
            device.groups.remove(key);
        }
        let Some(group) = self.free_slot(slot) else {
            return Ok(());
        };
        if !group.queue.is_empty() {
            let now_sub = self.last_now_subticks;
            self.wake(default_slot, now_sub);
            if let Some(g) = self.slots[default_slot as usize].group.as_mut() {
                g.queue.extend(group.queue);
                g.stats.queue_depth = g.queue.len() as u64;
            }
            self.reposition(default_slot, now_sub);
        }
        Ok(())
    }

    /// Sets a group's value (weight or min:max by policy), or the default group's.
    pub fn set_value(
        &mut self,
        dev: DeviceIdx,
        key: &GroupKey,
        value: GroupValue,
    ) -> Result<(), EngineError> {
        let slot = self.slot_of(dev, key)?;
        let old = self.group(slot)?.params;
        let new = value.apply(self.params.policy, old)?;
        self.set_group_params(slot, old, new)
    }

    /// Sets a group's weight and range together. Both are kept under every policy; the
    /// range schedules only under `range-bw` (where the weight shares spare bandwidth).
    pub fn set_group(
        &mut self,
        dev: DeviceIdx,
        key: &GroupKey,
        params: GroupParams,
    ) -> Result<(), EngineError> {
        params.validate()?;
        let slot = self.slot_of(dev, key)?;
        let old = self.group(slot)?.params;
        self.set_group_params(slot, old, params)
    }

    fn set_group_params(
        &mut self,
        slot: u32,
        old: GroupParams,
        new: GroupParams,
    ) -> Result<(), EngineError> {
        let min_total = self.min_total_kib_per_sec - u64::from(old.min_kib_per_sec)
            + u64::from(new.min_kib_per_sec);
        self.check_min_sum(min_total, self.params.capacity_kib_per_sec)?;
        self.apply_group_params(slot, old, new);
        Ok(())
    }

    /// Sets a group's params, checked by the caller (or by the owner a replica mirrors).
    fn apply_group_params(&mut self, slot: u32, old: GroupParams, new: GroupParams) {
        let min_total = self.min_total_kib_per_sec - u64::from(old.min_kib_per_sec)
            + u64::from(new.min_kib_per_sec);
        self.min_total_kib_per_sec = min_total;
        self.weight_total = self.weight_total - u64::from(old.weight) + u64::from(new.weight);
        self.refresh_derived();
        let now_sub = self.last_now_subticks;
        if let Some(g) = self.slots[slot as usize].group.as_mut() {
            g.params = new;
            // A changed min restarts the reservation at now: a raised min takes effect at
            // once, and no debt or credit of the old rate carries over.
            if new.min_kib_per_sec != old.min_kib_per_sec {
                g.reserve_tag = now_sub;
            }
            if new.max_kib_per_sec == 0 {
                g.limit_tag = 0;
            } else if new.max_kib_per_sec != old.max_kib_per_sec {
                g.limit_tag = g.limit_tag.min(now_sub);
            }
        }
        if new.min_kib_per_sec > 0 && old.min_kib_per_sec == 0 {
            self.min_slots.push(slot);
        } else if new.min_kib_per_sec == 0 && old.min_kib_per_sec > 0 {
            self.min_slots.retain(|&s| s != slot);
        }
        self.reposition(slot, now_sub);
    }

    /// The handle of the group `key` on `dev`, or of the default group when none is
    /// attached under that key (what the I/O path classifies with).
    pub fn group_id(&self, dev: DeviceIdx, key: &GroupKey) -> Result<GroupId, EngineError> {
        let device = self.device(dev)?;
        let slot = device
            .groups
            .get(key)
            .copied()
            .unwrap_or(device.default_slot);
        Ok(self.id_of(slot))
    }

    /// The groups of a device, default group first, then by key.
    pub fn groups_of(
        &self,
        dev: DeviceIdx,
    ) -> Result<Vec<(GroupKey, GroupParams, GroupStats)>, EngineError> {
        let device = self.device(dev)?;
        let mut slots: Vec<(&GroupKey, u32)> = device.groups.iter().map(|(k, &s)| (k, s)).collect();
        slots.sort();
        let mut out = Vec::with_capacity(slots.len() + 1);
        for slot in std::iter::once(device.default_slot).chain(slots.into_iter().map(|(_, s)| s)) {
            let g = self.group(slot)?;
            out.push((g.key.clone(), g.params, self.stats_of(slot, g)));
        }
        Ok(out)
    }

    /// One group's parameters and counters.
    pub fn group_info(
        &self,
        dev: DeviceIdx,
        key: &GroupKey,
    ) -> Result<(GroupParams, GroupStats), EngineError> {
        let slot = self.slot_of(dev, key)?;
        let g = self.group(slot)?;
        Ok((g.params, self.stats_of(slot, g)))
    }

    /// Takes the I/O queued on a device's groups, in order group by group (a reset that
    /// must complete after everything before it). The device, its groups, their settings,
    /// counters, virtual time and what is in flight stay as they are.
    pub fn drain_device(&mut self, dev: DeviceIdx) -> Result<Vec<T>, EngineError> {
        let device = self.device(dev)?;
        let mut slots: Vec<u32> = device
            .groups
            .values()
            .copied()
            .chain([device.default_slot])
            .collect();
        slots.sort_unstable();
        let now_sub = self.last_now_subticks;
        let mut drained = Vec::new();
        for slot in slots {
            let Some(g) = self.slots[slot as usize].group.as_mut() else {
                continue;
            };
            if g.queue.is_empty() {
                continue;
            }
            drained.extend(std::mem::take(&mut g.queue).into_iter().map(|p| p.io));
            g.stats.queue_depth = 0;
            self.reposition(slot, now_sub);
        }
        Ok(drained)
    }

    /// Zeroes the counters of every group of a device (queue depth and in-flight stay).
    pub fn reset_stats(&mut self, dev: DeviceIdx) -> Result<(), EngineError> {
        let device = self.device(dev)?;
        let slots: Vec<u32> = device
            .groups
            .values()
            .copied()
            .chain([device.default_slot])
            .collect();
        for slot in slots {
            self.reset_remote_stats(slot);
            if let Some(g) = self.slots[slot as usize].group.as_mut() {
                g.stats = GroupStats {
                    queue_depth: g.stats.queue_depth,
                    in_flight: g.stats.in_flight,
                    ..GroupStats::default()
                };
            }
        }
        Ok(())
    }

    fn check_room(&self) -> Result<(), EngineError> {
        let used = self.slots.len() - self.free_slots.len();
        if used >= MAX_GROUPS {
            return Err(EngineError::OutOfRange {
                param: "groups in a share",
                value: i64::try_from(used + 1).unwrap_or(i64::MAX),
                min: 1,
                max: MAX_GROUPS as i64,
            });
        }
        Ok(())
    }

    fn id_of(&self, slot: u32) -> GroupId {
        GroupId {
            slot,
            generation: self.slots[slot as usize].generation,
        }
    }

    /// The group in `slot`. Slots named by a device's table are always occupied; an empty
    /// one would be a bug, reported as an error rather than a panic.
    fn group(&self, slot: u32) -> Result<&Group<T>, EngineError> {
        self.slots
            .get(slot as usize)
            .and_then(|s| s.group.as_ref())
            .ok_or_else(|| EngineError::Internal(format!("group slot {slot} is empty")))
    }

    fn alloc_slot(&mut self, key: GroupKey, device: u32, params: GroupParams) -> u32 {
        self.place_group(None, key, device, params)
    }

    /// Puts a new group in slot `at` (a replica mirroring its owner), or in a free slot.
    fn place_group(
        &mut self,
        at: Option<u32>,
        key: GroupKey,
        device: u32,
        params: GroupParams,
    ) -> u32 {
        let group = Group {
            key,
            device,
            params,
            queue: VecDeque::new(),
            vtime: self.vclock,
            vtime_rem: 0,
            vt_step: VtStep::default(),
            reserve_tag: self.last_now_subticks,
            limit_tag: 0,
            in_flight: 0,
            cost_in_flight: 0,
            last_cost: 0,
            kept_ios: 0,
            last_event_ticks: u64::try_from(self.last_now_subticks >> SUBTICK_SHIFT)
                .unwrap_or(u64::MAX),
            span_cost: 0,
            remote_cost: 0,
            rate_frac: span::FRAC_ONE,
            expected: false,
            stats: GroupStats::default(),
        };
        let slot = match at.or_else(|| self.free_slots.pop()) {
            Some(slot) => {
                while self.slots.len() <= slot as usize {
                    self.slots.push(Slot {
                        generation: 0,
                        group: None,
                    });
                }
                self.free_slots.retain(|&s| s != slot);
                self.slots[slot as usize].group = Some(group);
                slot
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    group: Some(group),
                });
                index_u32(self.slots.len() - 1)
            }
        };
        let n = self.slots.len();
        for heap in [&mut self.ready, &mut self.reserve, &mut self.limited] {
            heap.reserve_slots(n);
        }
        self.active.reserve_slots(n);
        self.weight_total += u64::from(params.weight);
        self.min_total_kib_per_sec += u64::from(params.min_kib_per_sec);
        if params.min_kib_per_sec > 0 {
            self.min_slots.push(slot);
        }
        self.refresh_derived();
        slot
    }

    fn free_slot(&mut self, slot: u32) -> Option<Group<T>> {
        let entry = self.slots.get_mut(slot as usize)?;
        let group = entry.group.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        if group.expected {
            // refresh_derived below recomputes the window gate.
            self.expected -= 1;
        }
        for heap in [&mut self.ready, &mut self.reserve, &mut self.limited] {
            heap.remove(slot);
        }
        self.active.remove(slot);
        self.free_slots.push(slot);
        self.min_slots.retain(|&s| s != slot);
        self.weight_total -= u64::from(group.params.weight);
        self.min_total_kib_per_sec -= u64::from(group.params.min_kib_per_sec);
        self.refresh_derived();
        Some(group)
    }
}

/// Subticks that `bytes` take at `kib_per_sec`.
fn rate_subticks(bytes: u128, kib_per_sec: u32, ticks_per_sec: u128) -> u128 {
    bytes_subticks(bytes, u128::from(kib_per_sec) * 1024, ticks_per_sec)
}

/// Subticks that `bytes` take at `bytes_per_sec` (> 0).
fn bytes_subticks(bytes: u128, bytes_per_sec: u128, ticks_per_sec: u128) -> u128 {
    ((bytes * ticks_per_sec) << SUBTICK_SHIFT) / bytes_per_sec.max(1)
}

/// range-bw: the rate a group's limit tag runs at for an I/O of `io_bytes`, in bytes per
/// second: its max less one such I/O per second, but never less than seven eighths of the
/// max, nor than the min (a group whose max is its min is paced at exactly that).
///
/// Why less: the max is a ceiling on what the group *completes* in any second, and an
/// observer counts completions. Paced at exactly the max, every second holds exactly
/// `max` of dispatches, and completion-time jitter at the base (its queue's depth moving
/// under the group, another core's burst, a late poll) moves one I/O across a window's
/// edge now and then: one I/O over the max in that second (1.25% of 5 MiB/s in 64 KiB
/// I/Os). One I/O less per second leaves a whole interval of slack, so jitter up to one
/// I/O's interval never shows as more than the max in a second.
fn max_pace_bytes_per_sec(min_kib_per_sec: u32, max_kib_per_sec: u32, io_bytes: u64) -> u128 {
    let max = u128::from(max_kib_per_sec) * 1024;
    max.saturating_sub(u128::from(io_bytes))
        .max(max - max / 8)
        .max(u128::from(min_kib_per_sec) * 1024)
        .min(max)
}

/// Read access for renderers: the policy in force.
impl<T> Share<T> {
    /// The share's policy.
    pub fn policy(&self) -> Policy {
        self.params.policy
    }
}

#[cfg(test)]
mod tests;
