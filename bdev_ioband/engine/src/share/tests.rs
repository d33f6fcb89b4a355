//! Exact admissions of each policy against a hand-advanced clock.

use super::*;
use crate::{GroupType, Ticket, DEFAULT_WEIGHT};

type Out = Vec<(u32, Ticket)>;

fn share(params: ShareParams, ticks_per_sec: u64) -> (Share<u32>, DeviceIdx) {
    let mut s = Share::new("s", params, ticks_per_sec).unwrap();
    let d = s.add_device("d0").unwrap();
    (s, d)
}

fn weight(w: u32) -> Option<GroupValue> {
    Some(GroupValue::Weight(w))
}

fn submit(s: &mut Share<u32>, d: DeviceIdx, g: GroupId, io: u32, bytes: u64, now: u64) -> Out {
    let mut out = Vec::new();
    let admit = s.submit(d, g, io, Op::Read, bytes, now, &mut |io, t| {
        out.push((io, t))
    });
    assert_eq!(admit, Admit::Accepted);
    out
}

fn complete(s: &mut Share<u32>, t: Ticket, now: u64) -> Out {
    let mut out = Vec::new();
    s.complete(t, now, &mut |io, t| out.push((io, t)));
    out
}

fn ids(out: &Out) -> Vec<u32> {
    out.iter().map(|(io, _)| *io).collect()
}

#[test]
fn weight_dispatches_in_virtual_time_order() {
    let params = ShareParams {
        io_limit: 2,
        io_throttle: 2,
        ..Default::default()
    };
    let (mut s, d) = share(params, 1000);
    let a = s.attach(d, GroupKey::Tag(1), weight(200)).unwrap();
    let b = s.attach(d, GroupKey::Tag(2), weight(100)).unwrap();
    // A's first two go at once (io_limit 2); the rest queue. A: 10.., B: 20..
    let mut first = submit(&mut s, d, a, 10, 4096, 0);
    first.extend(submit(&mut s, d, a, 11, 4096, 0));
    assert_eq!(ids(&first), [10, 11]);
    for io in 12..16 {
        assert!(submit(&mut s, d, a, io, 4096, 0).is_empty());
    }
    for io in 20..26 {
        assert!(submit(&mut s, d, b, io, 4096, 0).is_empty());
    }
    // One completion, one dispatch: weight 2:1 in virtual time, ties to the older slot.
    let mut order = Vec::new();
    let mut in_flight: Vec<Ticket> = first.iter().map(|(_, t)| *t).collect();
    while !in_flight.is_empty() {
        let t = in_flight.remove(0);
        for (io, t) in complete(&mut s, t, 1) {
            order.push(io);
            in_flight.push(t);
        }
    }
    assert_eq!(order, [20, 12, 21, 13, 14, 22, 15, 23, 24, 25]);
    let (_, stats) = s.group_info(d, &GroupKey::Tag(1)).unwrap();
    assert_eq!(
        (
            stats.dispatched_ios,
            stats.completed_ios,
            stats.throttled_ios
        ),
        (6, 6, 4)
    );
    assert_eq!(stats.throttled_ticks, 4);
    assert_eq!(s.in_flight(), 0);
}

#[test]
fn weight_iosize_charges_sectors() {
    let params = ShareParams {
        policy: Policy::WeightIosize,
        io_limit: 1,
        io_throttle: 1,
        ..Default::default()
    };
    let (mut s, d) = share(params, 1000);
    let small = s.attach(d, GroupKey::Tag(1), weight(100)).unwrap();
    let big = s.attach(d, GroupKey::Tag(2), weight(100)).unwrap();
    let mut pending = submit(&mut s, d, big, 1000, 65536, 0);
    for io in 0..64 {
        pending.extend(submit(&mut s, d, small, io, 4096, 0));
    }
    for io in 1001..1004 {
        pending.extend(submit(&mut s, d, big, io, 65536, 0));
    }
    let mut order = Vec::new();
    while let Some((io, t)) = pending.pop() {
        order.push(io);
        pending.extend(complete(&mut s, t, 1));
    }
    // A 64 KiB I/O costs 128 sectors, a 4 KiB one 8: sixteen small per big one. The big
    // one went first, so the small group starts level with it after 16, and wins that tie
    // (older slot): 17 small I/Os before the second big one, then 16 between each.
    let bigs: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, io)| **io >= 1000)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(bigs, [0, 18, 35, 52]);
    assert_eq!(order.len(), 68);
}

#[test]
fn io_throttle_is_the_window_while_two_groups_are_active() {
    // A grace of 1 ms: one tick at 1000 ticks/s.
    let params = ShareParams {
        io_limit: 8,
        io_throttle: 4,
        idle_grace_us: 1000,
        ..Default::default()
    };
    let (mut s, d) = share(params, 1000);
    let a = s.attach(d, GroupKey::Tag(1), weight(128)).unwrap();
    let b = s.attach(d, GroupKey::Tag(2), weight(128)).unwrap();
    // A alone: nobody is owed anything, no window.
    let a1 = submit(&mut s, d, a, 1, 4096, 0);
    assert_eq!(ids(&a1), [1]);
    // B arrives: two groups are active, so the share keeps io_throttle (4) in flight and
    // the rest of B waits.
    let mut b_out = Vec::new();
    for io in 100..110 {
        b_out.extend(submit(&mut s, d, b, io, 4096, 0));
    }
    assert_eq!(ids(&b_out), [100, 101, 102]);
    // A comes back with the window full: it waits too, but first in virtual-time order,
    // so it takes the first slot that frees.
    assert!(submit(&mut s, d, a, 2, 4096, 1).is_empty());
    let out = complete(&mut s, a1[0].1, 1);
    assert_eq!(ids(&out), [2]);
    assert_eq!(ids(&complete(&mut s, b_out[0].1, 1)), [103]);
    // A completes with nothing queued: the order of its completion and its next
    // submission does not matter, it stays active for the grace, and the window keeps a
    // slot free for it (BFQ's idling): B does not take the slot A's completion freed.
    assert!(complete(&mut s, out[0].1, 2).is_empty());
    let mut polled = Vec::new();
    s.poll(2, &mut |io, t| polled.push((io, t)));
    assert!(polled.is_empty());
    // A comes back within the grace: its slot is there.
    let back = submit(&mut s, d, a, 3, 4096, 2);
    assert_eq!(ids(&back), [3]);
    assert!(complete(&mut s, back[0].1, 2).is_empty());
    // A stays away past the grace: B alone is owed nothing and fills io_limit.
    s.poll(3, &mut |io, t| polled.push((io, t)));
    assert_eq!(ids(&polled), [104, 105, 106, 107, 108]);
    assert_eq!(s.in_flight(), 8);
}

#[test]
fn io_throttle_at_io_limit_is_plain_fair_queuing() {
    let params = ShareParams {
        io_limit: 8,
        io_throttle: 8,
        token: 6,
        ..Default::default()
    };
    let (mut s, d) = share(params, 1000);
    let a = s.attach(d, GroupKey::Tag(1), weight(100)).unwrap();
    let b = s.attach(d, GroupKey::Tag(2), weight(100)).unwrap();
    assert_eq!(submit(&mut s, d, a, 1, 4096, 0).len(), 1);
    let n: usize = (100..110)
        .map(|io| submit(&mut s, d, b, io, 4096, 0).len())
        .sum();
    assert_eq!(n, 7);
}

/// A range-bw share at 1000 ticks a second with one group capped at 11 KiB/s (with 1 KiB
/// I/O, paced at one I/O less a second: one I/O every 100 ticks) that has submitted `n`
/// I/Os at tick 0: the first went, the rest wait on its limit tag.
fn capped_share_with_waiting_io(n: u32) -> (Share<u32>, DeviceIdx, ShareParams) {
    let params = ShareParams {
        policy: Policy::RangeBw,
        ..Default::default()
    };
    let (mut s, d) = share(params, 1000);
    let range = GroupValue::RangeBw {
        min_kib_per_sec: 0,
        max_kib_per_sec: 11,
    };
    let a = s.attach(d, GroupKey::Cgroup(7), Some(range)).unwrap();
    let mut out = Vec::new();
    for io in 0..n {
        out.extend(submit(&mut s, d, a, io, 1024, 0));
    }
    assert_eq!(ids(&out), [0]);
    (s, d, params)
}

#[test]
fn range_bw_max_spaces_dispatches_exactly() {
    let (mut s, _, _) = capped_share_with_waiting_io(6);
    assert_eq!(s.next_wakeup_ticks(), Some(100));
    let mut times = vec![0];
    for now in 1..=1000 {
        let mut got = Vec::new();
        s.poll(now, &mut |io, _| got.push(io));
        times.extend(got.iter().map(|_| now));
    }
    assert_eq!(times, [0, 100, 200, 300, 400, 500]);
}

#[test]
fn a_max_paces_one_io_a_second_below_it_within_bounds() {
    use super::max_pace_bytes_per_sec as pace;
    // One I/O a second less: 5 MiB/s of 64 KiB I/O is paced at 79 I/Os a second.
    assert_eq!(pace(0, 5120, 65536), 79 * 65536);
    // Never more than an eighth below (a max of 4 I/Os a second is paced at 3.5).
    assert_eq!(pace(0, 256, 65536), 7 * 256 * 1024 / 8);
    // Never below the min: a group whose max is its min runs at exactly that.
    assert_eq!(pace(5120, 5120, 65536), 5120 * 1024);
    assert_eq!(pace(5100, 5120, 65536), 5100 * 1024);
    // An I/O larger than the max a second: still an eighth below, never zero.
    assert_eq!(pace(0, 64, 1 << 20), 56 * 1024);
}

#[test]
fn under_weight_a_range_is_kept_but_not_applied() {
    let (mut s, d) = share(ShareParams::default(), 1000);
    let a = s.attach(d, GroupKey::Tag(1), None).unwrap();
    let capped = GroupParams {
        weight: 100,
        min_kib_per_sec: 0,
        max_kib_per_sec: 4,
    };
    s.set_group(d, &GroupKey::Tag(1), capped).unwrap();
    let n: usize = (0..6)
        .map(|io| submit(&mut s, d, a, io, 1024, 0).len())
        .sum();
    assert_eq!(n, 6, "a max does not cap under weight");
    assert_eq!(s.next_wakeup_ticks(), None);
    assert_eq!(s.group_info(d, &GroupKey::Tag(1)).unwrap().0, capped);
}

#[test]
fn a_policy_switch_lets_no_capped_io_escape_its_max() {
    let (mut s, _, params) = capped_share_with_waiting_io(4);
    // Switching policy back and forth while I/O waits on the limit tag: the group goes
    // back into the timed heap only, never into the ready heap beside it.
    let weight = ShareParams {
        policy: Policy::WeightIosize,
        ..params
    };
    s.set_params(weight).unwrap();
    s.set_params(params).unwrap();
    let mut got = Vec::new();
    s.poll(1, &mut |io, _| got.push(io));
    assert!(got.is_empty(), "dispatched {got:?} before the limit tag");
    assert_eq!(s.next_wakeup_ticks(), Some(100));
    s.poll(100, &mut |io, _| got.push(io));
    assert_eq!(got, [1]);
}

#[test]
fn a_reservation_due_later_is_a_wakeup() {
    // A group with a min and nothing else to go on: it must not wait for an event that
    // never comes. 4 KiB/s with 1 KiB I/O: its reservation comes due every 250 ticks.
    let params = ShareParams {
        policy: Policy::RangeBw,
        io_limit: 1,
        ..Default::default()
    };
    let (mut s, d) = share(params, 1000);
    let range = GroupValue::RangeBw {
        min_kib_per_sec: 4,
        max_kib_per_sec: 0,
    };
    let a = s.attach(d, GroupKey::Tag(1), Some(range)).unwrap();
    let first = submit(&mut s, d, a, 1, 1024, 0);
    assert!(submit(&mut s, d, a, 2, 1024, 0).is_empty());
    // I/O 2 waits (io_limit is in flight) with its reservation tag one I/O ahead: the
    // share names that tick as a wakeup, so a poller that sleeps comes back for it.
    assert_eq!(s.next_wakeup_ticks(), Some(250));
    // The completion dispatches it at once, by weight (spare bandwidth).
    let second = complete(&mut s, first[0].1, 10);
    assert_eq!(ids(&second), [2]);
}

#[test]
fn range_bw_min_is_reserved_against_a_heavier_weight() {
    let params = ShareParams {
        policy: Policy::RangeBw,
        io_limit: 1,
        ..Default::default()
    };
    let (mut s, d) = share(params, 1000);
    let a = s.attach(d, GroupKey::Tag(1), None).unwrap();
    let b = s.attach(d, GroupKey::Tag(2), None).unwrap();
    s.set_group(
        d,
        &GroupKey::Tag(1),
        GroupParams {
            weight: 1,
            min_kib_per_sec: 4,
            max_kib_per_sec: 0,
        },
    )
    .unwrap();
    s.set_group(
        d,
        &GroupKey::Tag(2),
        GroupParams {
            weight: 32767,
            ..Default::default()
        },
    )
    .unwrap();
    let mut pending = Vec::new();
    for io in 0..20 {
        pending.extend(submit(&mut s, d, a, io, 1024, 0));
        pending.extend(submit(&mut s, d, b, 1000 + io, 1024, 0));
    }
    for io in 20..2000 {
        assert!(submit(&mut s, d, b, 1000 + io, 1024, 0).is_empty());
    }
    // One I/O in flight; each tick completes it and dispatches the next.
    let mut a_times = Vec::new();
    for now in 1..1000 {
        let (io, t) = pending.pop().unwrap();
        assert!(pending.is_empty());
        if io < 1000 {
            a_times.push(now - 1);
        }
        pending.extend(complete(&mut s, t, now));
    }
    assert_eq!(a_times, [0, 250, 500, 750]);
}

#[test]
fn detach_moves_queued_io_to_the_default_group() {
    let params = ShareParams {
        io_limit: 1,
        io_throttle: 1,
        ..Default::default()
    };
    let (mut s, d) = share(params, 1000);
    let a = s
        .attach(
            d,
            GroupKey::Initiator("nqn.2014-08.org.example:h1".into()),
            weight(10),
        )
        .unwrap();
    let first = submit(&mut s, d, a, 0, 512, 0);
    for io in 1..5 {
        assert!(submit(&mut s, d, a, io, 512, 0).is_empty());
    }
    s.detach(d, &GroupKey::Initiator("nqn.2014-08.org.example:h1".into()))
        .unwrap();
    // The stale handle now lands in the default group.
    assert!(submit(&mut s, d, a, 5, 512, 0).is_empty());
    let (_, stats) = s.group_info(d, &GroupKey::None).unwrap();
    assert_eq!(stats.queue_depth, 5);
    let mut order = Vec::new();
    let mut pending = first;
    while let Some((io, t)) = pending.pop() {
        order.push(io);
        pending.extend(complete(&mut s, t, 1));
    }
    assert_eq!(order, [0, 1, 2, 3, 4, 5]);
    assert_eq!(s.in_flight(), 0);
}

#[test]
fn remove_device_hands_back_queued_io_in_order() {
    let params = ShareParams {
        io_limit: 1,
        io_throttle: 1,
        ..Default::default()
    };
    let (mut s, d) = share(params, 1000);
    let a = s.attach(d, GroupKey::Tag(3), None).unwrap();
    let dflt = s.group_id(d, &GroupKey::None).unwrap();
    let first = submit(&mut s, d, a, 0, 512, 0);
    assert!(submit(&mut s, d, a, 1, 512, 0).is_empty());
    assert!(submit(&mut s, d, dflt, 2, 512, 0).is_empty());
    let drained = s.remove_device(d).unwrap();
    assert_eq!(drained, [2, 1]);
    let mut out = Vec::new();
    assert_eq!(
        s.submit(d, a, 9, Op::Write, 512, 1, &mut |io, _| out.push(io)),
        Admit::NoDevice(9)
    );
    // The one in flight still completes, once.
    s.complete(first[0].1, 1, &mut |io, _| out.push(io));
    assert!(out.is_empty());
    assert_eq!(s.in_flight(), 0);
}

#[test]
fn drain_device_takes_the_queue_and_keeps_everything_else() {
    let params = ShareParams {
        io_limit: 1,
        io_throttle: 1,
        ..Default::default()
    };
    let (mut s, d) = share(params, 1000);
    let a = s.attach(d, GroupKey::Tag(3), weight(300)).unwrap();
    let dflt = s.group_id(d, &GroupKey::None).unwrap();
    let first = submit(&mut s, d, a, 0, 512, 0);
    assert!(submit(&mut s, d, a, 1, 512, 0).is_empty());
    assert!(submit(&mut s, d, dflt, 2, 512, 0).is_empty());
    let before = s.group_info(d, &GroupKey::Tag(3)).unwrap();
    let drained = s.drain_device(d).unwrap();
    assert_eq!(drained, [2, 1]);
    assert_eq!(s.queued(), 0);
    // The groups, their weight and counters stay; so does the handle.
    let after = s.group_info(d, &GroupKey::Tag(3)).unwrap();
    assert_eq!(after.0, before.0);
    assert_eq!(after.1.read_ios, before.1.read_ios);
    assert_eq!(after.1.queue_depth, 0);
    assert_eq!(s.group_id(d, &GroupKey::Tag(3)).unwrap(), a);
    // The one in flight comes back to the same share and frees the slot for the next.
    assert!(complete(&mut s, first[0].1, 1).is_empty());
    assert_eq!(s.in_flight(), 0);
    assert_eq!(ids(&submit(&mut s, d, a, 9, 512, 2)), [9]);
    assert_eq!(s.in_flight(), 1);
}

#[test]
fn bad_values_are_refused_and_change_nothing() {
    let params = ShareParams {
        capacity_kib_per_sec: 1000,
        policy: Policy::RangeBw,
        ..Default::default()
    };
    let (mut s, d) = share(params, 1000);
    let range = |min, max| {
        Some(GroupValue::RangeBw {
            min_kib_per_sec: min,
            max_kib_per_sec: max,
        })
    };
    s.attach(d, GroupKey::Tag(1), range(600, 800)).unwrap();
    let before = s.groups_of(d).unwrap();
    let key = GroupKey::Tag(2);
    assert!(matches!(
        s.attach(d, key.clone(), range(500, 0)),
        Err(EngineError::MinSumExceeded { .. })
    ));
    assert!(matches!(
        s.attach(d, key.clone(), range(10, 5)),
        Err(EngineError::MinAboveMax { .. })
    ));
    assert!(matches!(
        s.attach(d, key.clone(), weight(5)),
        Err(EngineError::WrongPolicy { .. })
    ));
    assert!(matches!(
        s.set_value(
            d,
            &GroupKey::Tag(1),
            GroupValue::RangeBw {
                min_kib_per_sec: 1001,
                max_kib_per_sec: 2000
            }
        ),
        Err(EngineError::MinSumExceeded { .. })
    ));
    assert!(matches!(
        s.attach(d, GroupKey::Tag(1), None),
        Err(EngineError::GroupExists { .. })
    ));
    assert!(matches!(
        s.attach(d, GroupKey::None, None),
        Err(EngineError::DefaultGroup(_))
    ));
    assert!(matches!(
        s.detach(d, &key),
        Err(EngineError::NoSuchGroup { .. })
    ));
    let bad = GroupParams {
        weight: 40000,
        ..GroupParams::default()
    };
    assert!(matches!(
        s.set_group(d, &GroupKey::Tag(1), bad),
        Err(EngineError::OutOfRange { .. })
    ));
    let bad = GroupParams {
        weight: 0,
        ..GroupParams::default()
    };
    assert!(matches!(
        s.set_group(d, &GroupKey::Tag(1), bad),
        Err(EngineError::OutOfRange { .. })
    ));
    assert!(s
        .set_params(ShareParams {
            io_throttle: 9,
            io_limit: 8,
            ..params
        })
        .is_err());
    assert!(s
        .set_params(ShareParams {
            capacity_kib_per_sec: 100,
            ..params
        })
        .is_err());
    assert_eq!(s.groups_of(d).unwrap(), before);
    assert_eq!(*s.params(), params);
    assert_eq!(s.weight_total(), 2 * u64::from(DEFAULT_WEIGHT));
    assert_eq!(GroupKey::Tag(1).group_type(), GroupType::Tag);
}

mod vt_step {
    use super::super::io::advance_vt;
    use super::super::VtStep;
    use crate::share::{VT_SCALE, VT_SCALE_U64};
    use proptest::prelude::*;

    /// What `advance_vt` must equal: the division of the scaled cost plus the carried
    /// remainder, every time.
    fn by_division(vtime: &mut u128, rem: &mut u64, cost: u64, weight: u64) {
        let scaled = u128::from(cost) * VT_SCALE + u128::from(*rem);
        match u64::try_from(scaled) {
            Ok(scaled) => {
                *vtime += u128::from(scaled / weight);
                *rem = scaled % weight;
            }
            Err(_) => {
                *vtime += scaled / u128::from(weight);
                *rem = 0;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Runs of one cost and weight (the step path), changes of either (the dividing
        /// path), and costs near the overflow: the same virtual time and remainder as
        /// dividing every time.
        #[test]
        fn the_cached_step_divides_exactly(
            charges in prop::collection::vec(
                (
                    prop_oneof![
                        Just(1u64), Just(8), Just(256), 1u64..=4096,
                        Just(u64::MAX / VT_SCALE_U64), Just(u64::from(u32::MAX)),
                    ],
                    prop_oneof![Just(1u64), Just(3), Just(100), Just(1000), 1u64..=65535],
                    1usize..6,
                ),
                1..40,
            )
        ) {
            let (mut vt, mut rem, mut step) = (0u128, 0u64, VtStep::default());
            let (mut want_vt, mut want_rem) = (0u128, 0u64);
            for (cost, weight, times) in charges {
                for _ in 0..times {
                    advance_vt(&mut vt, &mut rem, &mut step, cost, weight);
                    by_division(&mut want_vt, &mut want_rem, cost, weight);
                    prop_assert_eq!((vt, rem), (want_vt, want_rem));
                }
            }
        }
    }
}

/// Two busy groups served at the same rate while the window never binds (each keeps three
/// I/Os in flight, never queued): the lighter one uses twice its weight's part, which is
/// nobody's loss. When the load rises and the window binds, the weights apply at once:
/// neither brings back the virtual time it did not use (the heavier one would otherwise
/// be owed all of it, and the lighter one would starve until it was paid: a quarter of a
/// second here, by the virtual times).
#[test]
fn unused_share_of_a_busy_group_is_not_owed_when_contention_begins() {
    use std::collections::VecDeque;
    let params = ShareParams {
        io_throttle: 8,
        io_limit: 64,
        ..ShareParams::default()
    };
    let (mut s, d) = share(params, 1_000_000);
    let ids = [
        s.attach(d, GroupKey::Tag(1), weight(100)).unwrap(),
        s.attach(d, GroupKey::Tag(2), weight(200)).unwrap(),
    ];
    let which = |t: &Ticket| usize::from(t.group == ids[1]);
    let mut flight: VecDeque<Ticket> = VecDeque::new();
    let mut queued = [0u32; 2];
    let mut done = [0u64; 2];
    let mut next = 0;
    let contention_at = 1_000_000;
    let mut at_contention = [0u64; 2];
    let mut now = 0;
    // Every 10 µs each group is topped up to its depth and the base completes the oldest
    // I/Os: 2 while uncontended (6 in flight, under the window of 8), 4 afterwards.
    while now < contention_at + 100_000 {
        let (depth, served) = if now < contention_at { (3, 2) } else { (32, 4) };
        if now == contention_at {
            at_contention = done;
        }
        for g in 0..2 {
            let in_flight = u32::try_from(flight.iter().filter(|t| which(t) == g).count()).unwrap();
            for _ in in_flight + queued[g]..depth {
                next += 1;
                queued[g] += 1;
                for (_, t) in submit(&mut s, d, ids[g], next, 4096, now) {
                    queued[which(&t)] -= 1;
                    flight.push_back(t);
                }
            }
        }
        for _ in 0..served {
            let Some(t) = flight.pop_front() else { break };
            done[which(&t)] += 1;
            for (_, t) in complete(&mut s, t, now) {
                queued[which(&t)] -= 1;
                flight.push_back(t);
            }
        }
        now += 10;
    }
    // Uncontended, the same rate each.
    assert!(
        at_contention[0].abs_diff(at_contention[1]) <= 4,
        "{at_contention:?}"
    );
    // The first 100 ms of contention: 1 : 2, give or take the bounded credit.
    let a = done[0] - at_contention[0];
    let b = done[1] - at_contention[1];
    let part = a as f64 / (a + b) as f64;
    assert!((part - 1.0 / 3.0).abs() < 0.02, "A {a}, B {b}: {part:.3}");
}

/// A group held at its max, completions late by a device latency plus jitter of up to
/// nine tenths of an I/O's interval: no window of one second, wherever it starts, counts
/// more completions than the max, and the group still gets all but about one I/O a second.
#[test]
fn a_max_holds_in_every_second_under_completion_jitter() {
    const TICKS_PER_SEC: u64 = 100_000;
    const IO_BYTES: u64 = 64 * 1024;
    let params = ShareParams {
        policy: Policy::RangeBw,
        ..Default::default()
    };
    let (mut s, d) = share(params, TICKS_PER_SEC);
    let range = GroupValue::RangeBw {
        min_kib_per_sec: 0,
        max_kib_per_sec: 5120,
    };
    let a = s.attach(d, GroupKey::Tag(1), Some(range)).unwrap();
    let max_ios_per_sec = 5120 * 1024 / IO_BYTES; // 80
    let interval_ticks = TICKS_PER_SEC / max_ios_per_sec;
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut latency = || {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        4_000 + (rng >> 33) % (interval_ticks * 9 / 10)
    };
    // Closed loop at QD 32 for 10 s: (completion tick, ticket) of each I/O at the base.
    let mut at_base: Vec<(u64, Ticket)> = Vec::new();
    let mut done_ticks = Vec::new();
    let mut now = 0;
    for io in 0..32 {
        for (_, t) in submit(&mut s, d, a, io, IO_BYTES, now) {
            at_base.push((now + latency(), t));
        }
    }
    while now < 10 * TICKS_PER_SEC {
        let next_done = at_base.iter().map(|&(at, _)| at).min();
        now = match (next_done, s.next_wakeup_ticks()) {
            (Some(x), Some(y)) => x.min(y),
            (x, y) => x.or(y).expect("the loop always has work"),
        };
        let mut released = Vec::new();
        s.poll(now, &mut |io, t| released.push((io, t)));
        while let Some(i) = at_base.iter().position(|&(at, _)| at <= now) {
            let (_, t) = at_base.swap_remove(i);
            done_ticks.push(now);
            released.extend(complete(&mut s, t, now));
            // The tenant resubmits at once.
            let io = u32::try_from(done_ticks.len()).unwrap() + 31;
            released.extend(submit(&mut s, d, a, io, IO_BYTES, now));
        }
        for (_, t) in released {
            at_base.push((now + latency(), t));
        }
    }
    done_ticks.sort_unstable();
    // Every window of one second from 1 s to 9 s, starting every millisecond.
    for start in (TICKS_PER_SEC..9 * TICKS_PER_SEC).step_by(100) {
        let n = done_ticks
            .iter()
            .filter(|&&t| (start..start + TICKS_PER_SEC).contains(&t))
            .count() as u64;
        assert!(
            n <= max_ios_per_sec,
            "{n} I/Os completed in the second from tick {start}"
        );
        assert!(n + 2 >= max_ios_per_sec, "only {n} I/Os from tick {start}");
    }
}
