//! Per-thread replicas: a thread's I/O is scheduled on that thread once its replica has
//! heard of the device (before that, and for resets, by the owner); the owner's counters
//! include the replicas'; a replica leaves only once the owner has acknowledged.

use serde_json::json;

use super::{create, group_stat};
use crate::ffi::{IO_READ, IO_RESET, STATUS_ABORTED, STATUS_BASE};
use crate::mock::{Call, Harness, TICKS_PER_SEC};

/// One exchange period of the replicas, in ticks.
const PERIOD: u64 = TICKS_PER_SEC / 1000;

/// A device `io0` over `Null0` and a replica on thread 7 that has had its sync.
fn with_replica() -> (Harness, *mut std::ffi::c_void) {
    with_replica_of(json!({"share": "s"}))
}

/// [`with_replica`], the device created with `params`.
fn with_replica_of(params: serde_json::Value) -> (Harness, *mut std::ffi::c_void) {
    let h = Harness::new();
    h.add_base("Null0");
    create(&h, "io0", "Null0", params);
    let rs = h.thread_create(7);
    assert!(!rs.is_null());
    h.run_msgs(); // the hello reaches the owner
    h.set_ticks(PERIOD);
    h.poll(); // the owner's period: a sync to the replica
    h.run_msgs();
    (h, rs)
}

#[test]
fn a_replica_schedules_its_threads_io_once_it_knows_the_device() {
    let h = Harness::new();
    h.add_base("Null0");
    create(&h, "io0", "Null0", json!({"share": "s"}));
    let node = h.node_of("io0").expect("node");
    let rs = h.thread_create(7);
    // Not synced yet: the owner takes it (the node counts it).
    let early = h.thread_submit(rs, "io0", IO_READ, 4096, 7);
    assert_eq!(h.node_state(node), (true, 1, false));
    h.base_done(early);
    h.run_msgs();
    h.set_ticks(PERIOD);
    h.poll();
    h.run_msgs();
    // Synced: scheduled and dispatched by the replica, not counted by the node.
    let mark = h.mark();
    let a = h.thread_submit(rs, "io0", IO_READ, 4096, 7);
    assert_eq!(h.calls_since(mark), [Call::Dispatch(a)]);
    assert_eq!(h.node_state(node), (true, 0, false));
    let mark = h.mark();
    h.base_done(a);
    assert_eq!(h.calls_since(mark), [Call::Complete(a, STATUS_BASE)]);
    assert_eq!(h.all_completed_once(), [STATUS_BASE; 2]);
    h.thread_leave(rs);
    h.run_msgs();
    assert!(h.thread_left(rs));
    h.thread_destroy(rs);
}

#[test]
fn resets_go_to_the_owner() {
    let (h, rs) = with_replica();
    let node = h.node_of("io0").expect("node");
    let r = h.thread_submit(rs, "io0", IO_RESET, 0, 7);
    assert_eq!(h.node_state(node), (true, 1, false));
    // The owner asks the replica to drain the device first; the reset goes once it has.
    assert!(!h.at_base().contains(&r));
    h.run_msgs();
    assert!(h.at_base().contains(&r));
    h.base_done(r);
    assert_eq!(h.all_completed_once(), [STATUS_BASE]);
    h.thread_leave(rs);
    h.run_msgs();
    h.thread_destroy(rs);
}

#[test]
fn a_reset_aborts_what_a_replica_queues_for_the_device_before_it_goes_to_the_base() {
    // io_limit 2: the replica's part until the first grant is 1, so I/O queue there.
    let (h, rs) = with_replica_of(json!({"share": "s", "io_limit": 2, "io_throttle": 2}));
    let a = h.thread_submit(rs, "io0", IO_READ, 4096, 7);
    let queued: Vec<_> = (0..3)
        .map(|_| h.thread_submit(rs, "io0", IO_READ, 4096, 7))
        .collect();
    assert!(h.at_base().contains(&a));
    for q in &queued {
        assert!(!h.at_base().contains(q), "queued in the replica's share");
    }
    let r = h.thread_submit(rs, "io0", IO_RESET, 0, 7);
    let mark = h.mark();
    h.run_msgs(); // drain to the replica, its answer to the owner
    let calls = h.calls_since(mark);
    let reset_at = calls
        .iter()
        .position(|c| *c == Call::Dispatch(r))
        .expect("the reset went to the base");
    for q in &queued {
        let aborted = calls
            .iter()
            .position(|c| *c == Call::Complete(*q, STATUS_ABORTED))
            .expect("aborted");
        assert!(aborted < reset_at, "{calls:?}");
    }
    // What was at the base completes normally, after the reset as before it.
    h.base_done(a);
    h.base_done(r);
    assert_eq!(h.completions(a), [STATUS_BASE]);
    assert_eq!(h.completions(r), [STATUS_BASE]);
    assert_eq!(h.all_completed_once().len(), 5);
    h.thread_leave(rs);
    h.run_msgs();
    h.thread_destroy(rs);
}

#[test]
fn a_replica_that_leaves_releases_the_reset_it_was_asked_to_drain_for() {
    let (h, rs) = with_replica();
    // The replica says bye before the owner's drain reaches it.
    h.thread_leave(rs);
    let r = h.submit("io0", IO_RESET, 0, 1);
    assert!(!h.at_base().contains(&r));
    h.run_msgs(); // bye reaches the owner: nothing left to wait for
    assert!(h.at_base().contains(&r));
    h.base_done(r);
    assert_eq!(h.all_completed_once(), [STATUS_BASE]);
    assert!(h.thread_left(rs));
    h.thread_destroy(rs);
}

#[test]
fn the_owners_counters_include_the_replicas_after_an_exchange() {
    let (h, rs) = with_replica();
    let ios: Vec<_> = (0..5)
        .map(|_| h.thread_submit(rs, "io0", IO_READ, 4096, 7))
        .collect();
    for &io in &ios {
        h.base_done(io);
    }
    // The replica reports at its next period, the owner folds it in at its own.
    h.set_ticks(2 * PERIOD);
    h.thread_poll(rs);
    h.run_msgs();
    h.set_ticks(3 * PERIOD);
    h.poll();
    h.run_msgs();
    let stat = group_stat(&h, "io0", "none");
    assert_eq!(stat["read_ios"], 5, "{stat}");
    assert_eq!(stat["completed_ios"], 5, "{stat}");
    h.thread_leave(rs);
    h.run_msgs();
    h.thread_destroy(rs);
}

#[test]
fn a_replica_waits_for_the_owners_acknowledgement_before_it_goes() {
    let (h, rs) = with_replica();
    h.thread_leave(rs);
    assert!(!h.thread_left(rs), "the bye has not reached the owner yet");
    h.run_msgs(); // bye to the owner, acknowledgement back
    assert!(h.thread_left(rs));
    // The owner no longer sends it anything: its next period sends no grant.
    h.set_ticks(5 * PERIOD);
    h.poll();
    h.run_msgs();
    h.thread_destroy(rs);
}

#[test]
fn a_deleted_device_is_forgotten_by_the_replica() {
    let (h, rs) = with_replica();
    assert_eq!(
        h.rpc("bdev_ioband_delete", json!({"name": "io0"})).ok(),
        json!(true)
    );
    h.run_msgs();
    h.set_ticks(2 * PERIOD);
    h.poll();
    h.run_msgs();
    assert!(h.node_of("io0").is_none());
    h.thread_leave(rs);
    h.run_msgs();
    h.thread_destroy(rs);
}

/// [`with_replica`] after the replica completed four reads of `io0` and left, before any
/// periodic report (its last counters go with the bye).
fn four_reads_then_the_replica_left() -> Harness {
    let (h, rs) = with_replica();
    let ios: Vec<_> = (0..4)
        .map(|_| h.thread_submit(rs, "io0", IO_READ, 4096, 7))
        .collect();
    for &io in &ios {
        h.base_done(io);
    }
    h.thread_leave(rs);
    h.run_msgs();
    assert!(h.thread_left(rs));
    h.thread_destroy(rs);
    h
}

#[test]
fn a_replicas_counters_stay_counted_after_it_left() {
    let h = four_reads_then_the_replica_left();
    h.set_ticks(4 * PERIOD);
    h.poll();
    let stat = group_stat(&h, "io0", "none");
    assert_eq!(
        (
            &stat["read_ios"],
            &stat["completed_ios"],
            &stat["in_flight"]
        ),
        (&json!(4), &json!(4), &json!(0)),
        "{stat}"
    );
}

#[test]
fn a_share_created_again_under_its_name_starts_without_the_old_ones_counters() {
    // The replica leaves with its counters; then the share goes and comes back.
    let h = four_reads_then_the_replica_left();
    h.set_ticks(2 * PERIOD);
    h.poll();
    assert_eq!(group_stat(&h, "io0", "none")["read_ios"], json!(4));
    let id = h.call("bdev_ioband_delete", Some(json!({"name": "io0"})));
    h.run_msgs();
    assert_eq!(h.reply(id).map(|r| r.ok()), Some(json!(true)));
    create(&h, "io0", "Null0", json!({"share": "s"}));
    h.set_ticks(4 * PERIOD);
    h.poll();
    let stat = group_stat(&h, "io0", "none");
    assert_eq!(
        (&stat["read_ios"], &stat["completed_ios"]),
        (&json!(0), &json!(0)),
        "the new share counts the old one's I/O: {stat}"
    );
}

#[test]
fn a_replica_that_says_hello_again_before_its_sync_keeps_its_core() {
    let h = Harness::new();
    h.add_base("Null0");
    create(&h, "io0", "Null0", json!({"share": "s"}));
    let rs = h.thread_create(7);
    h.run_msgs(); // the hello reaches the owner
                  // Not synced yet: the replica says hello again every period.
    for k in 1..=3 {
        h.set_ticks(k * PERIOD);
        h.thread_poll(rs);
        h.run_msgs();
    }
    h.set_ticks(4 * PERIOD);
    h.poll(); // the owner's period: hubs, and the sync
    h.run_msgs();
    let cores = crate::state::with_state(|st| st.span.cores("s")).expect("state");
    assert_eq!(
        cores,
        (vec![1], Some(2)),
        "one replica: core 1, and the owner's 0"
    );
    h.thread_leave(rs);
    h.run_msgs();
    assert!(h.thread_left(rs));
    h.thread_destroy(rs);
}
