//! Lanes: each refusal, and the equivalence with per-I/O calls on random sequences.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::super::*;
use super::*;
use crate::{Grant, Ticket};

type S = Share<u32>;

fn params(policy: Policy, io_limit: u32, io_throttle: u32) -> ShareParams {
    ShareParams {
        policy,
        io_limit,
        io_throttle,
        idle_grace_us: 200,
        ..ShareParams::default()
    }
}

fn share(p: ShareParams) -> (S, DeviceIdx, GroupId) {
    let mut s = Share::new("s", p, 1_000_000).unwrap();
    let d = s.add_device("d0").unwrap();
    let g = s.group_id(d, &GroupKey::None).unwrap();
    (s, d, g)
}

fn nop(_: u32, _: Ticket) {}

fn submit(s: &mut S, d: DeviceIdx, g: GroupId, io: u32, now: u64) -> Vec<(u32, Ticket)> {
    let mut out = Vec::new();
    s.submit(d, g, io, Op::Read, 4096, now, &mut |io, t| {
        out.push((io, t))
    });
    out
}

fn grant(s: &mut S, window: u32, limit: u32, contended: bool, vt_ceiling: u128) {
    s.span_cores(2);
    let g = Grant {
        window,
        window_total: window,
        limit,
        contended,
        vclock: 0,
        vt_ceiling,
        spare_cap_cost: u64::MAX,
        groups: Vec::new(),
        incarnation: 0,
    };
    s.apply_grant(&g, 0, &mut nop);
}

#[test]
fn an_uncontended_group_gets_the_room_below_io_limit() {
    let (mut s, d, g) = share(params(Policy::Weight, 16, 4));
    let t = submit(&mut s, d, g, 1, 0);
    assert_eq!(t.len(), 1);
    let lane = s.lane_open(d, g);
    // Alone: no window, the whole io_limit less what is in flight.
    assert_eq!(lane.slots, 15);
    assert_eq!(lane.cost_budget, u64::MAX);
    assert_eq!(s.in_flight(), 16);
    s.lane_settle(d, g, &LaneCounts::default(), 0, &mut nop);
    assert_eq!(s.in_flight(), 1);
    assert!(!s.lanes_are_open());
}

#[test]
fn range_bw_gets_no_lane() {
    let (mut s, d, g) = share(params(Policy::RangeBw, 16, 4));
    assert_eq!(s.lane_open(d, g).slots, 0);
}

#[test]
fn the_auto_window_of_a_share_on_one_core_gets_no_lane() {
    let (mut s, d, g) = share(params(Policy::Weight, 16, 0));
    assert_eq!(s.lane_open(d, g).slots, 0);
    // A share that spans cores has its window from the hub: it does.
    grant(&mut s, 8, 16, false, u128::MAX);
    assert_eq!(s.lane_open(d, g).slots, 16);
}

#[test]
fn anything_queued_refuses_every_lane() {
    let (mut s, d, g) = share(params(Policy::Weight, 1, 1));
    let b = s.attach(d, GroupKey::Tag(1), None).unwrap();
    assert_eq!(submit(&mut s, d, g, 1, 0).len(), 1);
    assert!(submit(&mut s, d, b, 2, 0).is_empty());
    assert_eq!(s.lane_open(d, g).slots, 0);
    assert_eq!(s.lane_open(d, b).slots, 0);
}

#[test]
fn a_stale_group_or_a_removed_device_gets_no_lane() {
    let (mut s, d, _) = share(params(Policy::Weight, 16, 4));
    let b = s.attach(d, GroupKey::Tag(1), None).unwrap();
    s.detach(d, &GroupKey::Tag(1)).unwrap();
    assert_eq!(s.lane_open(d, b).slots, 0);
    let d1 = s.add_device("d1").unwrap();
    let g1 = s.group_id(d1, &GroupKey::None).unwrap();
    // The group of another device.
    assert_eq!(s.lane_open(d, g1).slots, 0);
    s.remove_device(d1).unwrap();
    assert_eq!(s.lane_open(d1, g1).slots, 0);
}

#[test]
fn a_second_open_while_a_lane_is_open_is_refused() {
    let (mut s, d, g) = share(params(Policy::Weight, 16, 4));
    assert!(s.lane_open(d, g).slots > 0);
    assert_eq!(s.lane_open(d, g).slots, 0);
}

#[test]
fn a_busy_group_behind_the_credit_floor_is_lifted_at_its_first_lane_dispatch() {
    // In flight, and the virtual clock far ahead of it (a grant raised it): its next
    // submit lifts it to the credit floor, through a lane as through a per-I/O call.
    let behind = || {
        let (mut s, d, g) = share(params(Policy::Weight, 64, 4));
        assert_eq!(submit(&mut s, d, g, 1, 0).len(), 1);
        grant(&mut s, 8, 64, false, u128::MAX);
        let far = Grant {
            window: 8,
            window_total: 8,
            limit: 64,
            vclock: 1 << 60,
            vt_ceiling: u128::MAX,
            spare_cap_cost: u64::MAX,
            ..Grant::default()
        };
        s.apply_grant(&far, 0, &mut nop);
        (s, d, g)
    };
    let (mut per_io, d, g) = behind();
    assert_eq!(submit(&mut per_io, d, g, 2, 10).len(), 1);
    let (mut laned, d, g) = behind();
    assert!(laned.lane_open(d, g).slots > 0);
    let counts = LaneCounts {
        read_ios: 1,
        read_bytes: 4096,
        cost: 1,
        last_cost: 1,
        first_tick: 10,
        last_tick: 10,
        ..LaneCounts::default()
    };
    laned.lane_settle(d, g, &counts, 10, &mut nop);
    assert!(per_io.slots[g.slot as usize].group.as_ref().unwrap().vtime > 1 << 59);
    assert_eq!(snapshot(&per_io), snapshot(&laned));
}

#[test]
fn no_room_below_the_limit_is_no_lane() {
    let (mut s, d, g) = share(params(Policy::Weight, 2, 2));
    submit(&mut s, d, g, 1, 0);
    submit(&mut s, d, g, 2, 0);
    assert_eq!(s.lane_open(d, g).slots, 0);
}

#[test]
fn contention_bounds_the_lane_by_the_window_and_the_ceiling() {
    let (mut s, d, g) = share(params(Policy::Weight, 64, 4));
    // Contended elsewhere: the window (8) applies, and the ceiling allows 10 I/Os at
    // weight 100 (each advances virtual time by scale / 100).
    let ceiling = 9 * VT_SCALE / 100;
    grant(&mut s, 8, 64, true, ceiling);
    let lane = s.lane_open(d, g);
    assert_eq!(lane.slots, 8);
    // I/Os start at 0, 1/100, ... 9/100 of the scale: ten may start.
    assert_eq!(lane.cost_budget, 10);
    s.lane_settle(d, g, &LaneCounts::default(), 0, &mut nop);
    // Past the ceiling: nothing.
    grant(&mut s, 8, 64, true, 0);
    submit(&mut s, d, g, 1, 0);
    assert_eq!(s.lane_open(d, g).slots, 0);
}

#[test]
fn two_lanes_split_the_window_and_count_each_other_expected() {
    let (mut s, d, a) = share(params(Policy::Weight, 64, 8));
    let b = s.attach(d, GroupKey::Tag(1), None).unwrap();
    let mut reqs = [LaneRequest::new(d, a), LaneRequest::new(d, b)];
    s.lanes_open(&mut reqs);
    // The window (8) less one slot for the other lane's group, expected back: 7, split.
    assert_eq!(reqs[0].grant.slots + reqs[1].grant.slots, 7);
    assert!(reqs.iter().all(|r| r.grant.slots >= 3));
}

#[test]
fn counts_of_a_detached_group_correct_the_share_only() {
    let (mut s, d, _) = share(params(Policy::Weight, 16, 4));
    let b = s.attach(d, GroupKey::Tag(1), None).unwrap();
    let lane = s.lane_open(d, b);
    assert_eq!(lane.slots, 16);
    s.detach(d, &GroupKey::Tag(1)).unwrap();
    let counts = LaneCounts {
        read_ios: 3,
        read_bytes: 3 * 4096,
        cost: 3,
        last_cost: 1,
        completed: 1,
        completed_cost: 1,
        completed_bytes: 4096,
        latency_sum_ticks: 5,
        latency_min_ticks: 5,
        first_tick: 1,
        last_tick: 6,
        ..LaneCounts::default()
    };
    s.lane_settle(d, b, &counts, 6, &mut nop);
    assert_eq!(s.in_flight(), 2);
    assert!(!s.lanes_are_open());
    // And a settle of a removed device's group never fails either.
    s.lane_settle(DeviceIdx(9), b, &counts, 7, &mut nop);
}

// ----- the equivalence -------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    Submit { g: usize, write: bool, sectors: u64 },
    Complete(usize),
    Pass(u8),
    Tick(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..4, any::<bool>(), 1u64..64).prop_map(|(g, write, sectors)| Step::Submit {
            g,
            write,
            sectors
        }),
        5 => (0usize..64).prop_map(Step::Complete),
        2 => any::<u8>().prop_map(Step::Pass),
        2 => (1u64..400).prop_map(Step::Tick),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    iosize: bool,
    io_limit: u32,
    io_throttle: u32,
    weights: Vec<u32>,
    /// A share that spans cores: window, limit, contended, ceiling (in 1/64 of the scale).
    span: Option<(u32, u32, bool, Option<u32>)>,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        any::<bool>(),
        2u32..48,
        1u32..48,
        prop::collection::vec(1u32..400, 1..4),
        prop::option::of((
            1u32..32,
            1u32..48,
            any::<bool>(),
            prop::option::of(1u32..2000),
        )),
    )
        .prop_map(|(iosize, io_limit, t, weights, span)| Setup {
            iosize,
            io_limit,
            io_throttle: t.min(io_limit),
            weights,
            span,
        })
}

/// A share and its groups (the default group of d0 and a group per weight, the last
/// one on a second device).
fn build(su: &Setup) -> (S, Vec<(DeviceIdx, GroupId)>) {
    let policy = if su.iosize {
        Policy::WeightIosize
    } else {
        Policy::Weight
    };
    let (mut s, d0, g0) = share(params(policy, su.io_limit, su.io_throttle));
    let d1 = s.add_device("d1").unwrap();
    let mut groups = vec![(d0, g0)];
    for (i, &w) in su.weights.iter().enumerate() {
        let d = if i + 1 == su.weights.len() { d1 } else { d0 };
        let key = GroupKey::Tag(u32::try_from(i).unwrap());
        let id = s.attach(d, key, Some(GroupValue::Weight(w))).unwrap();
        groups.push((d, id));
    }
    if let Some((window, limit, contended, ceiling)) = su.span {
        let ceiling = ceiling.map_or(u128::MAX, |c| u128::from(c) * VT_SCALE / 64);
        grant(&mut s, window, limit, contended, ceiling);
    }
    (s, groups)
}

/// Everything the equivalence covers, per group slot and for the share.
fn snapshot(s: &S) -> String {
    let mut out = String::new();
    for (i, slot) in s.slots.iter().enumerate() {
        if let Some(g) = &slot.group {
            let queue: Vec<u32> = g.queue.iter().map(|p| p.io).collect();
            out += &format!(
                "slot {i}: {:?} vt {} rem {} in_flight {} cost {} expected {} last_event {} \
                 span_cost {} last_cost {} active {} queue {queue:?}\n",
                g.stats,
                g.vtime,
                g.vtime_rem,
                g.in_flight,
                g.cost_in_flight,
                g.expected,
                g.last_event_ticks,
                g.span_cost,
                g.last_cost,
                s.active.contains(u32::try_from(i).unwrap()),
            );
        }
    }
    out += &format!(
        "share: in_flight {} cost {} vclock {} expected {} gate {} seq {}\n",
        s.in_flight, s.cost_in_flight, s.vclock, s.expected, s.window_gate, s.next_seq
    );
    out
}

#[derive(Debug, Clone, Copy)]
enum Flight {
    Ticket(Ticket),
    Lane {
        g: usize,
        bytes: u64,
        cost: u64,
        at: u64,
    },
}

/// The host side of a lane (what the C shim keeps per channel).
#[derive(Debug, Clone, Copy, Default)]
struct HostLane {
    open: bool,
    free: u64,
    cost_used: u64,
    budget: u64,
    counts: LaneCounts,
}

struct Model {
    s: S,
    groups: Vec<(DeviceIdx, GroupId)>,
    flights: BTreeMap<u32, Flight>,
    /// (I/O, step at which it was dispatched).
    dispatched: Vec<(u32, usize)>,
    lanes: Vec<HostLane>,
    lane_ios: u64,
}

impl Model {
    fn new(su: &Setup) -> Model {
        let (s, groups) = build(su);
        let n = groups.len();
        Model {
            s,
            groups,
            flights: BTreeMap::new(),
            dispatched: Vec::new(),
            lanes: vec![HostLane::default(); n],
            lane_ios: 0,
        }
    }

    fn take(&mut self, out: Vec<(u32, Ticket)>, step: usize) {
        for (io, t) in out {
            self.dispatched.push((io, step));
            self.flights.insert(io, Flight::Ticket(t));
        }
    }

    /// Settles every lane and closes them (what the host does before any call).
    fn settle_all(&mut self, now: u64, step: usize) {
        let mut out = Vec::new();
        for (i, &(d, g)) in self.groups.iter().enumerate() {
            let l = &mut self.lanes[i];
            if !l.open && l.counts.is_empty() {
                continue;
            }
            self.s
                .lane_settle(d, g, &l.counts, now, &mut |io, t| out.push((io, t)));
            l.counts = LaneCounts::default();
            l.open = false;
        }
        self.take(out, step);
    }

    fn run(&mut self, steps: &[Step], lanes: bool) {
        let mut now = 0;
        for (k, st) in steps.iter().enumerate() {
            let io = u32::try_from(k).unwrap();
            match *st {
                Step::Tick(dt) => now += dt,
                Step::Submit { g, write, sectors } => {
                    let g = g % self.groups.len();
                    let (d, id) = self.groups[g];
                    let bytes = sectors * 512;
                    let op = if write { Op::Write } else { Op::Read };
                    let cost = self.s.params.policy.cost(bytes);
                    let l = &mut self.lanes[g];
                    if lanes && l.open && l.free > 0 && l.cost_used < l.budget {
                        l.free -= 1;
                        l.cost_used += cost;
                        let c = &mut l.counts;
                        if c.is_empty() {
                            c.first_tick = now;
                        }
                        c.last_tick = now;
                        if write {
                            c.write_ios += 1;
                            c.write_bytes += bytes;
                        } else {
                            c.read_ios += 1;
                            c.read_bytes += bytes;
                        }
                        c.cost += cost;
                        c.last_cost = cost;
                        self.dispatched.push((io, k));
                        self.flights.insert(
                            io,
                            Flight::Lane {
                                g,
                                bytes,
                                cost,
                                at: now,
                            },
                        );
                        self.lane_ios += 1;
                        continue;
                    }
                    if lanes {
                        self.settle_all(now, k);
                    }
                    let mut out = Vec::new();
                    let admit = self
                        .s
                        .submit(d, id, io, op, bytes, now, &mut |io, t| out.push((io, t)));
                    assert_eq!(admit, Admit::Accepted);
                    self.take(out, k);
                }
                Step::Complete(i) => {
                    let Some(&key) = self.flights.keys().nth(i % self.flights.len().max(1)) else {
                        continue;
                    };
                    let flight = self.flights.remove(&key).unwrap();
                    match flight {
                        Flight::Lane { g, bytes, cost, at } => {
                            let l = &mut self.lanes[g];
                            l.free += 1;
                            let c = &mut l.counts;
                            if c.is_empty() {
                                c.first_tick = now;
                            }
                            c.last_tick = now;
                            c.completed += 1;
                            c.completed_cost += cost;
                            c.completed_bytes += bytes;
                            c.latency_sum_ticks += now - at;
                            c.latency_min_ticks = c.latency_min_ticks.min(now - at);
                            // A closed lane's completion goes to the share at once.
                            if !l.open {
                                self.settle_all(now, k);
                            }
                        }
                        Flight::Ticket(t) => {
                            // Not settled first: with a lane open nothing waits in the
                            // share, so the completion decides nothing (the host does so).
                            let mut out = Vec::new();
                            self.s.complete(t, now, &mut |io, t| out.push((io, t)));
                            self.take(out, k);
                            // The room it made goes to its group's lane, if open.
                            if lanes {
                                if let Some(i) = self.groups.iter().position(|&(_, g)| g == t.group)
                                {
                                    if self.lanes[i].open {
                                        self.lanes[i].free += u64::from(self.s.lane_grow(t.group));
                                    }
                                }
                            }
                        }
                    }
                }
                Step::Pass(mask) => {
                    if lanes {
                        self.settle_all(now, k);
                    }
                    let mut out = Vec::new();
                    self.s.poll(now, &mut |io, t| out.push((io, t)));
                    self.take(out, k);
                    if lanes {
                        let mut reqs: Vec<LaneRequest> = self
                            .groups
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| mask & (1 << i) != 0)
                            .map(|(_, &(d, g))| LaneRequest::new(d, g))
                            .collect();
                        self.s.lanes_open(&mut reqs);
                        for r in &reqs {
                            let i = self.groups.iter().position(|&(_, g)| g == r.group).unwrap();
                            let l = &mut self.lanes[i];
                            l.open = r.grant.slots > 0;
                            l.free = u64::from(r.grant.slots);
                            l.cost_used = 0;
                            l.budget = r.grant.cost_budget;
                        }
                    }
                }
            }
        }
        if lanes {
            self.settle_all(now, steps.len());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The same I/O, submitted and completed at the same ticks, through per-I/O calls and
    /// through lanes settled at random points: the same dispatches at the same steps, and
    /// the same counters, virtual times, in-flight counts and activity.
    #[test]
    fn lanes_are_per_io_calls_in_aggregate(
        su in setup(),
        steps in prop::collection::vec(step(), 1..300),
    ) {
        let mut per_io = Model::new(&su);
        per_io.run(&steps, false);
        let mut laned = Model::new(&su);
        laned.run(&steps, true);
        let mut a = per_io.dispatched.clone();
        let mut b = laned.dispatched.clone();
        a.sort_unstable();
        b.sort_unstable();
        prop_assert_eq!(a, b);
        prop_assert_eq!(snapshot(&per_io.s), snapshot(&laned.s));
        prop_assert!(!laned.s.lanes_are_open());
    }
}

/// The property test is not vacuous: lanes do carry most of an uncontended load.
#[test]
fn lanes_carry_an_uncontended_closed_loop() {
    let su = Setup {
        iosize: false,
        io_limit: 32,
        io_throttle: 8,
        weights: vec![],
        span: None,
    };
    let mut steps = Vec::new();
    for _ in 0..50 {
        steps.push(Step::Pass(1));
        for _ in 0..16 {
            steps.push(Step::Submit {
                g: 0,
                write: false,
                sectors: 8,
            });
            steps.push(Step::Complete(0));
        }
        steps.push(Step::Tick(50));
    }
    let mut per_io = Model::new(&su);
    per_io.run(&steps, false);
    let mut laned = Model::new(&su);
    laned.run(&steps, true);
    assert_eq!(snapshot(&per_io.s), snapshot(&laned.s));
    assert_eq!(laned.lane_ios, 800);
}
