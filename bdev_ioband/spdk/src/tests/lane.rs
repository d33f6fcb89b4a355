//! Lanes: a replica's channel dispatches and completes I/O with no Rust call on its path,
//! within what its share granted, and the counts reach the share once per poller pass;
//! a sync or an I/O the lane cannot take closes the lanes; a device deleted or a group
//! attached while lane I/O is in flight loses nothing.

use serde_json::json;

use super::{create, group_stat};
use crate::ffi::{Lane, IO_READ, IO_WRITE, STATUS_BASE};
use crate::mock::{Call, Harness, IoId, NOMEM, TICKS_PER_SEC};

/// One exchange period of the replicas, in ticks.
const PERIOD: u64 = TICKS_PER_SEC / 1000;

/// A device `io0` over `Null0` (share `s`, `extra` params), a replica on thread 7 that
/// has had its sync, and its channel's lane, opened by a poller pass.
fn with_lane(extra: serde_json::Value) -> (Harness, *mut std::ffi::c_void, *mut Lane) {
    let h = Harness::new();
    h.add_base("Null0");
    let mut params = json!({"share": "s"});
    if let (Some(p), serde_json::Value::Object(extra)) = (params.as_object_mut(), extra) {
        p.extend(extra);
    }
    create(&h, "io0", "Null0", params);
    let rs = h.thread_create(7);
    let lane = h.thread_channel(rs, "io0", 7);
    assert!(!lane.is_null());
    h.run_msgs();
    h.set_ticks(PERIOD);
    h.poll(); // the owner's period: a sync to the replica
    h.run_msgs();
    h.thread_poll(rs);
    (h, rs, lane)
}

/// The replica reports, the owner folds it in: the owner's iostat is current.
fn exchange(h: &Harness, rs: *mut std::ffi::c_void, at: u64) {
    h.set_ticks(at);
    h.thread_poll(rs);
    h.run_msgs();
    h.set_ticks(at + PERIOD);
    h.poll();
    h.run_msgs();
}

fn finish(h: &Harness, rs: *mut std::ffi::c_void, lane: *mut Lane) {
    h.thread_channel_destroy(rs, lane);
    h.thread_leave(rs);
    h.run_msgs();
    assert!(h.thread_left(rs));
    h.thread_destroy(rs);
}

#[test]
fn a_lane_dispatches_and_completes_with_no_rust_call_and_settles_per_pass() {
    let (h, rs, lane) = with_lane(json!({}));
    assert_eq!(h.lane(lane).open, 1);
    let mark = h.mark();
    let ios: Vec<IoId> = (0..10)
        .map(|i| {
            h.thread_submit(
                rs,
                "io0",
                if i % 2 == 0 { IO_READ } else { IO_WRITE },
                4096,
                7,
            )
        })
        .collect();
    for &io in &ios {
        h.base_done(io);
    }
    // Nothing but the lane's own dispatches and completions: no pass-tick read, no
    // dispatch through Rust.
    let calls: Vec<Call> = h.calls()[mark..].to_vec();
    assert_eq!(calls.len(), 20, "{calls:?}");
    assert!(calls
        .iter()
        .all(|c| matches!(c, Call::LaneDispatch(_) | Call::Complete(_, STATUS_BASE))));
    let l = h.lane(lane);
    assert_eq!(
        (l.read_ios, l.write_ios, l.completed, l.at_base),
        (5, 5, 10, 0)
    );
    // The pass settles them (and opens the lane again).
    h.thread_poll(rs);
    let l = h.lane(lane);
    assert_eq!((l.read_ios, l.completed, l.open), (0, 0, 1));
    exchange(&h, rs, 2 * PERIOD);
    let stat = group_stat(&h, "io0", "none");
    assert_eq!(
        (
            &stat["read_ios"],
            &stat["write_ios"],
            &stat["dispatched_ios"],
            &stat["completed_ios"],
            &stat["in_flight"]
        ),
        (&json!(5), &json!(5), &json!(10), &json!(10), &json!(0)),
        "{stat}"
    );
    assert_eq!(h.all_completed_once(), [STATUS_BASE; 10]);
    finish(&h, rs, lane);
}

#[test]
fn an_io_the_lane_cannot_take_goes_through_the_share_and_closes_the_lane() {
    // io_limit 4: the replica's part (two cores) is 2 until the first grant.
    let (h, rs, lane) = with_lane(json!({"io_limit": 4, "io_throttle": 4}));
    let slots = {
        let l = h.lane(lane);
        l.slot_limit - l.at_base
    };
    assert!(slots >= 1);
    let mut ios: Vec<IoId> = (0..slots)
        .map(|_| h.thread_submit(rs, "io0", IO_READ, 4096, 7))
        .collect();
    let mark = h.mark();
    // No slot left: the share decides (it queues), and the lane is closed until the pass.
    ios.push(h.thread_submit(rs, "io0", IO_READ, 4096, 7));
    assert!(!h
        .calls_since(mark)
        .contains(&Call::LaneDispatch(ios[ios.len() - 1])));
    assert_eq!(h.lane(lane).open, 0);
    // A lane I/O completing with the lane closed is settled at once: it lets the queued one go.
    let mark = h.mark();
    h.base_done(ios[0]);
    assert!(
        h.calls_since(mark)
            .contains(&Call::Dispatch(ios[ios.len() - 1])),
        "{:?}",
        h.calls_since(mark)
    );
    h.base_done_all();
    h.thread_poll(rs);
    assert_eq!(h.all_completed_once().len(), ios.len());
    exchange(&h, rs, 2 * PERIOD);
    let stat = group_stat(&h, "io0", "none");
    assert_eq!(stat["dispatched_ios"], stat["completed_ios"], "{stat}");
    assert_eq!(stat["completed_ios"], json!(ios.len()), "{stat}");
    finish(&h, rs, lane);
}

#[test]
fn a_base_out_of_bdev_ios_sends_the_lane_io_down_the_slow_path() {
    let (h, rs, lane) = with_lane(json!({}));
    let a = h.thread_submit(rs, "io0", IO_READ, 4096, 7);
    // The lane's try and the share's: both refused, the replica parks it behind `a`.
    h.mock(|m| m.dispatch_rc.extend([NOMEM, NOMEM]));
    let b = h.thread_submit(rs, "io0", IO_READ, 4096, 7);
    assert_eq!(h.lane(lane).open, 0, "parked I/O: no lane");
    assert!(!h.at_base().contains(&b));
    h.base_done(a);
    h.thread_poll(rs); // the parked one goes
    assert!(h.at_base().contains(&b));
    h.base_done_all();
    h.thread_poll(rs);
    assert_eq!(h.lane(lane).open, 1, "nothing parked: the lane opens again");
    assert_eq!(h.all_completed_once(), [STATUS_BASE; 2]);
    finish(&h, rs, lane);
}

#[test]
fn a_sync_closes_the_lanes_and_its_counts_go_to_the_group_they_were_charged_to() {
    let (h, rs, lane) = with_lane(json!({}));
    let a = h.thread_submit(rs, "io0", IO_READ, 4096, 7);
    assert_eq!(h.calls().last(), Some(&Call::LaneDispatch(a)));
    // A group for the thread's I/O: the next sync moves the thread's route to it.
    h.rpc(
        "bdev_ioband_set_settings",
        json!({"name": "io0", "group": "tag:7", "value": 300}),
    )
    .ok();
    h.set_ticks(2 * PERIOD);
    h.poll();
    h.run_msgs(); // the sync: lanes settled, closed, opened again
                  // `a` is still at the base, charged to the default group: the lane keeps that route
                  // until it has nothing at the base.
    let b = h.thread_submit(rs, "io0", IO_READ, 4096, 7);
    h.base_done(a);
    h.base_done(b);
    h.thread_poll(rs);
    let c = h.thread_submit(rs, "io0", IO_READ, 4096, 7);
    assert_eq!(h.calls().last(), Some(&Call::LaneDispatch(c)));
    h.base_done(c);
    exchange(&h, rs, 3 * PERIOD);
    let none = group_stat(&h, "io0", "none");
    let tag = group_stat(&h, "io0", "tag:7");
    assert_eq!(none["completed_ios"], json!(2), "{none}");
    assert_eq!(none["in_flight"], json!(0), "{none}");
    assert_eq!(tag["completed_ios"], json!(1), "{tag}");
    assert_eq!(tag["in_flight"], json!(0), "{tag}");
    finish(&h, rs, lane);
}

#[test]
fn a_device_deleted_under_lane_io_loses_nothing() {
    let (h, rs, lane) = with_lane(json!({}));
    let ios: Vec<IoId> = (0..4)
        .map(|_| h.thread_submit(rs, "io0", IO_READ, 4096, 7))
        .collect();
    let id = h.call("bdev_ioband_delete", Some(json!({"name": "io0"})));
    h.run_msgs();
    h.set_ticks(2 * PERIOD);
    h.poll();
    h.run_msgs(); // the sync without the device
    for &io in &ios {
        h.base_done(io);
    }
    h.thread_poll(rs);
    assert_eq!(h.all_completed_once(), [STATUS_BASE; 4]);
    assert_eq!(h.lane(lane).open, 0);
    finish(&h, rs, lane);
    h.run_msgs();
    let _ = h.reply(id);
    assert!(h.errors().is_empty(), "{:?}", h.errors());
}

#[test]
fn many_passes_of_a_closed_loop_count_every_io_once() {
    let (h, rs, lane) = with_lane(json!({"policy": "weight-iosize"}));
    let mut in_flight: Vec<IoId> = Vec::new();
    let mut made = 0;
    let mut t = PERIOD;
    for pass in 0..200u64 {
        t += TICKS_PER_SEC / 20_000;
        h.set_ticks(t);
        for k in 0..8 {
            if in_flight.len() < 16 {
                let kind = if (pass + k) % 3 == 0 {
                    IO_WRITE
                } else {
                    IO_READ
                };
                in_flight.push(h.thread_submit(rs, "io0", kind, 512 * (1 + (pass + k) % 16), 7));
                made += 1;
            }
            if (pass + k) % 2 == 0 {
                if let Some(io) = in_flight.first().copied() {
                    in_flight.remove(0);
                    h.base_done(io);
                }
            }
        }
        h.thread_poll(rs);
        if pass % 20 == 0 {
            h.poll();
            h.run_msgs();
        }
    }
    for io in in_flight {
        h.base_done(io);
    }
    let lane_ios = h
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::LaneDispatch(_)))
        .count();
    assert!(lane_ios * 10 > made * 9, "{lane_ios} of {made} by the lane");
    exchange(&h, rs, t + PERIOD);
    let stat = group_stat(&h, "io0", "none");
    assert_eq!(stat["dispatched_ios"], json!(made), "{stat}");
    assert_eq!(stat["completed_ios"], json!(made), "{stat}");
    assert_eq!(stat["in_flight"], json!(0), "{stat}");
    assert_eq!(h.all_completed_once().len(), made);
    finish(&h, rs, lane);
}
