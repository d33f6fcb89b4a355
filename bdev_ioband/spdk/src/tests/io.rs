//! The I/O path: submit, the engine, dispatch to the base through the shim, completion
//! back; ENOMEM parking and io_wait; exactly-once completion on delete, hot-remove and
//! reset.

use serde_json::json;

use super::{create, device_names, group_stat};
use crate::ffi::{
    IO_OTHER, IO_READ, IO_RESET, IO_WRITE, STATUS_ABORTED, STATUS_BASE, STATUS_FAILED,
};
use crate::io::parked_len;
use crate::mock::{Call, Harness, NOMEM};

/// One ioband bdev `io0` over `Null0`, share `s`, at most one I/O in flight: the second
/// I/O waits in the engine until the first completes.
fn one_in_flight() -> Harness {
    let h = Harness::new();
    h.add_base("Null0");
    create(
        &h,
        "io0",
        "Null0",
        json!({"share": "s", "io_limit": 1, "io_throttle": 1}),
    );
    h
}

/// io0 (io_limit 1 for the share) and io1 over two null bases, one share.
fn two_devices_one_in_flight() -> Harness {
    let h = one_in_flight();
    h.add_base("Null1");
    create(&h, "io1", "Null1", json!({"share": "s"}));
    h
}

#[test]
fn submit_dispatches_to_the_base_and_completes_once() {
    let h = Harness::new();
    h.add_base("Null0");
    create(&h, "io0", "Null0", json!({}));
    let node = h.node_of("io0").expect("node");
    let mark = h.mark();
    let r = h.submit("io0", IO_READ, 4096, 1);
    let w = h.submit("io0", IO_WRITE, 8192, 1);
    let f = h.submit("io0", IO_OTHER, 0, 1);
    assert_eq!(
        h.calls_since(mark),
        [Call::Dispatch(r), Call::Dispatch(w), Call::Dispatch(f)]
    );
    assert_eq!(h.at_base(), [r, w, f]);
    assert_eq!(h.node_state(node), (true, 3, false));
    let stat = group_stat(&h, "io0", "none");
    assert_eq!(stat["in_flight"], 3);
    assert_eq!(
        (&stat["read_ios"], &stat["write_ios"], &stat["other_ios"]),
        (&json!(1), &json!(1), &json!(1))
    );
    assert_eq!(stat["write_bytes"], 8192);

    let mark = h.mark();
    h.base_done_all();
    assert_eq!(
        h.calls_since(mark),
        [
            Call::Complete(r, STATUS_BASE),
            Call::Complete(w, STATUS_BASE),
            Call::Complete(f, STATUS_BASE)
        ]
    );
    assert_eq!(h.all_completed_once(), [STATUS_BASE; 3]);
    let stat = group_stat(&h, "io0", "none");
    assert_eq!(
        (&stat["completed_ios"], &stat["in_flight"]),
        (&json!(3), &json!(0))
    );
    assert_eq!(h.node_state(node), (true, 0, false));
}

#[test]
fn the_submitter_completes_before_its_ticket_releases_the_next() {
    let h = one_in_flight();
    let a = h.submit("io0", IO_READ, 4096, 1);
    let b = h.submit("io0", IO_READ, 4096, 1);
    assert_eq!(h.at_base(), [a]);
    assert_eq!(group_stat(&h, "io0", "none")["queue_depth"], 1);
    let mark = h.mark();
    h.base_done(a);
    assert_eq!(
        h.calls_since(mark),
        [Call::Complete(a, STATUS_BASE), Call::Dispatch(b)]
    );
    h.base_done(b);
    assert_eq!(h.all_completed_once(), [STATUS_BASE; 2]);
}

#[test]
fn io_goes_to_the_tag_group_of_its_spdk_thread() {
    let h = Harness::new();
    h.add_base("Null0");
    create(&h, "io0", "Null0", json!({}));
    h.rpc(
        "bdev_ioband_set_settings",
        json!({"name": "io0", "group": "tag:7", "value": 200}),
    )
    .ok();
    h.submit("io0", IO_READ, 4096, 7);
    h.submit("io0", IO_READ, 4096, 7);
    h.submit("io0", IO_READ, 4096, 8);
    h.base_done_all();
    assert_eq!(group_stat(&h, "io0", "tag:7")["read_ios"], 2);
    assert_eq!(group_stat(&h, "io0", "none")["read_ios"], 1);
    h.all_completed_once();
}

#[test]
fn a_range_bw_cap_is_released_by_the_poller_as_pass_ticks_advance() {
    let h = Harness::new();
    h.add_base("Null0");
    create(&h, "io0", "Null0", json!({"policy": "range-bw"}));
    // At most 4 KiB/s: one 4 KiB I/O per second.
    h.rpc(
        "bdev_ioband_set_settings",
        json!({"name": "io0", "value": "0:4"}),
    )
    .ok();
    let sec = crate::mock::TICKS_PER_SEC;
    h.set_ticks(sec);
    let ios: Vec<_> = (0..6).map(|_| h.submit("io0", IO_READ, 4096, 1)).collect();
    let first = h.at_base().len();
    assert!(first < 3, "the cap held nothing back: {first}");
    h.poll();
    assert_eq!(h.at_base().len(), first, "released without time passing");
    // One pass per second: about one more I/O each (at most max·w plus two in w seconds).
    for t in 2..=8 {
        h.set_ticks(t * sec);
        h.poll();
        let n = h.at_base().len();
        assert!(n as u64 <= t + 2, "{n} I/O by second {t}");
    }
    assert_eq!(h.at_base(), ios);
    h.base_done_all();
    assert_eq!(h.all_completed_once(), [STATUS_BASE; 6]);
}

#[test]
fn enomem_parks_in_dispatch_order_until_io_wait() {
    let h = Harness::new();
    h.add_base("Null0");
    create(&h, "io0", "Null0", json!({}));
    h.mock(|m| m.dispatch_rc.push_back(NOMEM));
    let mark = h.mark();
    let a = h.submit("io0", IO_READ, 4096, 1);
    let b = h.submit("io0", IO_WRITE, 4096, 1);
    // a met ENOMEM and armed io_wait with its own entry; b queues behind it untried.
    assert_eq!(h.calls_since(mark), [Call::Dispatch(a), Call::IoWait(a)]);
    assert_eq!(parked_len(), 2);
    assert!(h.at_base().is_empty());
    // The poller leaves an armed queue alone.
    h.poll();
    assert_eq!(h.calls_since(mark).len(), 2);
    // A bdev_io is freed: both go, in order; nothing was failed.
    h.free_bdev_io();
    assert_eq!(h.at_base(), [a, b]);
    assert_eq!(parked_len(), 0);
    assert!(h.completions(a).is_empty() && h.completions(b).is_empty());
    // Dispatches after the queue drained go straight to the base.
    let c = h.submit("io0", IO_READ, 4096, 1);
    assert_eq!(h.at_base(), [a, b, c]);
    h.base_done_all();
    assert_eq!(h.all_completed_once(), [STATUS_BASE; 3]);
}

#[test]
fn enomem_on_one_base_does_not_hold_back_another() {
    let h = Harness::new();
    h.add_base("Null0");
    h.add_base("Null1");
    create(&h, "io0", "Null0", json!({}));
    create(&h, "io1", "Null1", json!({}));
    h.mock(|m| m.dispatch_rc.push_back(NOMEM));
    let mark = h.mark();
    let a = h.submit("io0", IO_READ, 4096, 1);
    // Null0 is out of bdev_ios: a parks (and arms io_wait), and io1's I/O go straight on.
    let b = h.submit("io1", IO_READ, 4096, 1);
    let c = h.submit("io0", IO_WRITE, 4096, 1);
    let d = h.submit("io1", IO_WRITE, 4096, 1);
    assert_eq!(
        h.calls_since(mark)[..3],
        [Call::Dispatch(a), Call::IoWait(a), Call::Dispatch(b)]
    );
    assert_eq!(h.at_base(), [b, d]);
    assert_eq!(parked_len(), 2, "c waits behind a on Null0");
    // The poller leaves an armed base alone.
    h.poll();
    assert_eq!(h.at_base(), [b, d]);
    // A bdev_io is freed: Null0's go, in their order.
    h.free_bdev_io();
    assert_eq!(h.at_base(), [b, d, a, c]);
    assert_eq!(parked_len(), 0);
    h.base_done_all();
    assert_eq!(h.all_completed_once(), [STATUS_BASE; 4]);
}

#[test]
fn enomem_again_on_resume_rearms_io_wait() {
    let h = Harness::new();
    h.add_base("Null0");
    create(&h, "io0", "Null0", json!({}));
    h.mock(|m| m.dispatch_rc.extend([NOMEM, NOMEM]));
    let a = h.submit("io0", IO_READ, 4096, 1);
    let b = h.submit("io0", IO_READ, 4096, 1);
    let mark = h.mark();
    h.free_bdev_io();
    assert_eq!(h.calls_since(mark), [Call::Dispatch(a), Call::IoWait(a)]);
    h.free_bdev_io();
    assert_eq!(h.at_base(), [a, b]);
    h.base_done_all();
    assert_eq!(h.all_completed_once(), [STATUS_BASE; 2]);
}

#[test]
fn when_io_wait_cannot_be_armed_the_poller_resumes() {
    let h = Harness::new();
    h.add_base("Null0");
    create(&h, "io0", "Null0", json!({}));
    h.mock(|m| {
        m.dispatch_rc.push_back(NOMEM);
        m.io_wait_rc.push_back(-22);
    });
    let a = h.submit("io0", IO_READ, 4096, 1);
    assert_eq!(parked_len(), 1);
    let mark = h.mark();
    assert!(h.poll(), "the poller did work");
    assert_eq!(h.calls_since(mark), [Call::Dispatch(a)]);
    assert_eq!(h.at_base(), [a]);
    h.base_done(a);
    assert_eq!(h.all_completed_once(), [STATUS_BASE]);
}

#[test]
fn a_refused_dispatch_fails_the_io_once_and_returns_its_ticket() {
    let h = one_in_flight();
    // Refused at once.
    h.mock(|m| m.dispatch_rc.push_back(-22));
    let a = h.submit("io0", IO_READ, 4096, 1);
    assert_eq!(h.completions(a), [STATUS_FAILED]);
    // Its slot is free again: the next I/O goes straight out.
    let b = h.submit("io0", IO_READ, 4096, 1);
    assert_eq!(h.at_base(), [b]);
    // Refused after parking: b's completion releases c, which meets ENOMEM, then -EIO.
    let c = h.submit("io0", IO_READ, 4096, 1);
    h.mock(|m| m.dispatch_rc.extend([NOMEM, -5]));
    h.base_done(b);
    assert_eq!(parked_len(), 1);
    h.free_bdev_io();
    assert_eq!(h.completions(c), [STATUS_FAILED]);
    assert_eq!(parked_len(), 0);
    let d = h.submit("io0", IO_READ, 4096, 1);
    assert_eq!(h.at_base(), [d]);
    h.base_done(d);
    assert_eq!(
        h.all_completed_once(),
        [STATUS_FAILED, STATUS_BASE, STATUS_FAILED, STATUS_BASE]
    );
    let stat = group_stat(&h, "io0", "none");
    assert_eq!(
        (&stat["in_flight"], &stat["queue_depth"]),
        (&json!(0), &json!(0))
    );
}

#[test]
fn delete_aborts_the_queue_and_waits_for_the_base() {
    let h = one_in_flight();
    let node = h.node_of("io0").expect("node");
    let a = h.submit("io0", IO_READ, 4096, 1);
    let b = h.submit("io0", IO_READ, 4096, 1);
    let c = h.submit("io0", IO_WRITE, 4096, 1);
    let id = h.call("bdev_ioband_delete", Some(json!({"name": "io0"})));
    // What the share queued is aborted at once; a is at the base.
    assert_eq!(h.completions(b), [STATUS_ABORTED]);
    assert_eq!(h.completions(c), [STATUS_ABORTED]);
    assert!(h.completions(a).is_empty());
    h.run_msgs();
    // Destruct waits for a; so does the reply.
    assert_eq!(h.reply(id), None);
    assert_eq!(h.node_state(node), (false, 1, false));
    // An I/O that reached the owner after the delete is refused (failed by the shim).
    h.base_done(a);
    h.run_msgs();
    assert_eq!(h.reply(id).map(|r| r.ok()), Some(json!(true)));
    assert_eq!(h.node_state(node), (false, 0, true));
    assert_eq!(
        h.all_completed_once(),
        [STATUS_BASE, STATUS_ABORTED, STATUS_ABORTED]
    );
    assert!(device_names(&h).is_empty());
    assert!(h.errors().is_empty(), "{:?}", h.errors());
}

#[test]
fn io_arriving_after_delete_is_failed_once() {
    let h = Harness::new();
    h.add_base("Null0");
    create(&h, "io0", "Null0", json!({}));
    let id = h.call("bdev_ioband_delete", Some(json!({"name": "io0"})));
    // The bdev is still registered until the unregister runs: an I/O that reaches the
    // owner now is refused, and the shim fails it.
    let a = h.submit("io0", IO_READ, 4096, 1);
    assert_eq!(h.completions(a), [STATUS_FAILED]);
    h.run_msgs();
    assert_eq!(h.reply(id).map(|r| r.ok()), Some(json!(true)));
    assert_eq!(h.all_completed_once(), [STATUS_FAILED]);
}

#[test]
fn hot_remove_aborts_the_queue_keeps_the_device_and_it_comes_back() {
    let h = one_in_flight();
    h.rpc(
        "bdev_ioband_set_settings",
        json!({"name": "io0", "group": "tag:3", "value": 300}),
    )
    .ok();
    let node = h.node_of("io0").expect("node");
    let a = h.submit("io0", IO_READ, 4096, 3);
    let b = h.submit("io0", IO_READ, 4096, 3);
    let c = h.submit("io0", IO_READ, 4096, 1);
    // a is at the base; b and c wait in the engine (io_limit 1).
    h.hot_remove("Null0");
    h.run_msgs();
    assert_eq!(h.completions(b), [STATUS_ABORTED]);
    assert_eq!(h.completions(c), [STATUS_ABORTED]);
    assert_eq!(h.node_state(node), (false, 1, false));
    h.base_done(a);
    h.run_msgs();
    assert_eq!(h.node_state(node), (false, 0, true));
    // The device and its settings stay.
    assert_eq!(device_names(&h), ["io0"]);
    let settings = h
        .rpc(
            "bdev_ioband_get_settings",
            json!({"name": "io0", "group": "tag:3"}),
        )
        .ok();
    assert_eq!(settings[0]["weight"], 300);
    // The base returns: so does the bdev, under the same device id, and I/O flows.
    h.add_base("Null0");
    let again = h.node_of("io0").expect("registered again");
    assert_ne!(again, node);
    let d = h.submit("io0", IO_READ, 4096, 3);
    assert_eq!(h.at_base(), [d]);
    h.base_done(d);
    assert_eq!(
        h.all_completed_once(),
        [STATUS_BASE, STATUS_ABORTED, STATUS_ABORTED, STATUS_BASE]
    );
    // Its counters went on too (a before the removal, d after; the drain no longer
    // re-creates the device).
    assert_eq!(group_stat(&h, "io0", "tag:3")["completed_ios"], 2);
    assert!(h.errors().is_empty(), "{:?}", h.errors());
}

#[test]
fn hot_remove_with_parked_io_completes_everything_once() {
    let h = Harness::new();
    h.add_base("Null0");
    create(&h, "io0", "Null0", json!({}));
    let node = h.node_of("io0").expect("node");
    h.mock(|m| m.dispatch_rc.push_back(NOMEM));
    let a = h.submit("io0", IO_READ, 4096, 1);
    let b = h.submit("io0", IO_READ, 4096, 1);
    h.hot_remove("Null0");
    h.run_msgs();
    // Parked I/O left the engine already: destruct waits for them.
    assert_eq!(h.node_state(node), (false, 2, false));
    h.free_bdev_io();
    assert_eq!(h.at_base(), [a, b]);
    h.base_done_all();
    h.run_msgs();
    assert_eq!(h.node_state(node), (false, 0, true));
    assert_eq!(h.all_completed_once(), [STATUS_BASE; 2]);
}

#[test]
fn reset_aborts_the_device_queue_and_goes_straight_to_the_base() {
    let h = two_devices_one_in_flight();
    h.rpc(
        "bdev_ioband_set_settings",
        json!({"name": "io0", "group": "tag:5", "value": 50}),
    )
    .ok();
    let a = h.submit("io0", IO_READ, 4096, 1); // at the base
    let b = h.submit("io1", IO_READ, 4096, 1); // queued, other device of the share
    let c = h.submit("io0", IO_WRITE, 4096, 5); // queued
    let mark = h.mark();
    let r = h.submit("io0", IO_RESET, 0, 1);
    assert_eq!(
        h.calls_since(mark),
        [Call::Complete(c, STATUS_ABORTED), Call::Dispatch(r)]
    );
    assert_eq!(h.at_base(), [a, r]);
    // The reset carries no ticket: its completion releases nothing.
    let mark = h.mark();
    h.base_done(r);
    assert_eq!(h.calls_since(mark), [Call::Complete(r, STATUS_BASE)]);
    // a's completion releases b, still queued on the other device.
    h.base_done(a);
    assert_eq!(h.at_base(), [b]);
    h.base_done(b);
    assert_eq!(
        h.all_completed_once(),
        [STATUS_BASE, STATUS_BASE, STATUS_ABORTED, STATUS_BASE]
    );
    // The group's setting survived the drain.
    let s = h
        .rpc(
            "bdev_ioband_get_settings",
            json!({"name": "io0", "group": "tag:5"}),
        )
        .ok();
    assert_eq!(s[0]["weight"], 50);
    assert!(h.errors().is_empty(), "{:?}", h.errors());
}

#[test]
fn a_reset_keeps_the_share_its_counters_and_its_in_flight_count() {
    // The share's only device: a drain used to delete and re-create it (and the share).
    let h = one_in_flight();
    let a = h.submit("io0", IO_READ, 4096, 1); // at the base
    let b = h.submit("io0", IO_READ, 4096, 1); // queued
    let r = h.submit("io0", IO_RESET, 0, 1);
    assert_eq!(h.at_base(), [a, r]);
    let group = |h: &Harness| {
        let s = h.rpc("bdev_ioband_get_iostat", json!({"name": "io0"})).ok();
        s["devices"][0]["groups"][0].clone()
    };
    let g = group(&h);
    assert_eq!(
        (
            g["read_ios"].as_u64(),
            g["dispatched_ios"].as_u64(),
            g["in_flight"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{g}"
    );
    h.base_done(r);
    // a's ticket goes back to the same share: in flight comes down, the slot frees.
    h.base_done(a);
    let g = group(&h);
    assert_eq!(
        (g["completed_ios"].as_u64(), g["in_flight"].as_u64()),
        (Some(1), Some(0)),
        "{g}"
    );
    let c = h.submit("io0", IO_READ, 4096, 1);
    assert_eq!(h.at_base(), [c], "the share dispatches again");
    h.base_done(c);
    let ids = [a, b, r, c];
    assert_eq!(ids.len(), h.all_completed_once().len());
    assert!(h.errors().is_empty(), "{:?}", h.errors());
}

#[test]
fn deleting_a_device_whose_removed_base_still_drains_keeps_the_share_dispatching() {
    let h = two_devices_one_in_flight();
    // Repeated: each time io0's base goes with an I/O at it, io0 is deleted before that
    // I/O comes back, and the share must still dispatch io1's I/O afterwards.
    for round in 0..3 {
        let a = h.submit("io0", IO_READ, 4096, 1);
        assert_eq!(h.at_base(), [a], "round {round}");
        h.hot_remove("Null0");
        h.run_msgs();
        h.call("bdev_ioband_delete", Some(json!({"name": "io0"})));
        h.run_msgs();
        h.base_done(a);
        h.run_msgs();
        let b = h.submit("io1", IO_READ, 4096, 1);
        assert_eq!(
            h.at_base(),
            [b],
            "round {round}: the share dispatches again"
        );
        h.base_done(b);
        h.add_base("Null0");
        create(&h, "io0", "Null0", json!({"share": "s"}));
    }
    // (io_limit 1: had a ticket of io0 been dropped, b would have waited for ever.)
    assert_eq!(h.all_completed_once().len(), 6);
    assert!(h.errors().is_empty(), "{:?}", h.errors());
}

#[test]
fn a_ticket_never_returns_to_a_share_created_again_under_its_name() {
    let h = one_in_flight();
    let a = h.submit("io0", IO_READ, 4096, 1);
    // Delete the share's only device (the share goes with it) while a is at the base,
    // then create both again under the same names.
    let id = h.call("bdev_ioband_delete", Some(json!({"name": "io0"})));
    h.run_msgs();
    assert_eq!(h.reply(id), None, "destruct waits for a");
    create(
        &h,
        "io0",
        "Null0",
        json!({"share": "s", "io_limit": 1, "io_throttle": 1}),
    );
    let b = h.submit("io0", IO_READ, 4096, 1);
    let c = h.submit("io0", IO_READ, 4096, 1);
    assert_eq!(h.at_base(), [a, b]);
    // a's ticket belongs to the removed share: it must not free b's slot in the new one.
    h.base_done(a);
    assert_eq!(h.at_base(), [b], "io_limit 1 exceeded");
    let stat = group_stat(&h, "io0", "none");
    assert_eq!(
        (&stat["in_flight"], &stat["completed_ios"]),
        (&json!(1), &json!(0))
    );
    h.run_msgs();
    assert_eq!(h.reply(id).map(|r| r.ok()), Some(json!(true)));
    h.base_done(b);
    assert_eq!(h.at_base(), [c]);
    h.base_done(c);
    assert_eq!(h.all_completed_once(), [STATUS_BASE; 3]);
}

#[test]
fn module_fini_forgets_what_is_parked() {
    {
        let h = Harness::new();
        h.add_base("Null0");
        create(&h, "io0", "Null0", json!({}));
        h.mock(|m| m.dispatch_rc.push_back(NOMEM));
        h.submit("io0", IO_READ, 4096, 1);
        assert_eq!(parked_len(), 1);
    } // fini, with an I/O parked (the shim would never let it come to that)
    let h = Harness::new();
    assert_eq!(parked_len(), 0);
    h.add_base("Null0");
    create(&h, "io0", "Null0", json!({}));
    let a = h.submit("io0", IO_READ, 4096, 1);
    assert_eq!(h.at_base(), [a], "queued behind a stale handle");
    h.base_done(a);
    assert_eq!(h.all_completed_once(), [STATUS_BASE]);
}
