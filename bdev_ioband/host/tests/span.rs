//! Host tests of shares that span reactors: every reactor schedules the I/O submitted on
//! it with its replica of the share, weights hold across reactors, and reconfiguration
//! with I/O on every reactor loses nothing.

mod common;

use bdev_ioband_engine::{GroupKey, GroupValue, Policy, ShareParams};
use bdev_ioband_host::app::App;
use bdev_ioband_host::bdev::BdevRef;
use common::{model, Client, Rig};

/// Steps of 2 µs (ticks are ns).
const STEP: u64 = 2_000;

fn set(app: &App, dev: &str, tag: u32, value: Option<GroupValue>) {
    app.ioband
        .borrow_mut()
        .engine_mut()
        .write_setting(dev, &GroupKey::Tag(tag), value)
        .expect("setting");
}

/// Two reactors, a model device and `band0` over it in share `s0`; run long enough for
/// the replica to start and learn of the device.
fn rig_with_band(params: Option<ShareParams>, iops: u64) -> (Rig, App, BdevRef) {
    let mut rig = Rig::new(2);
    let app = rig.on(0, App::new).expect("app");
    let band = rig.on(0, || {
        app.create_model("Model0", model(iops, 64), None)
            .expect("model");
        app.create_ioband("band0", "Model0", "s0", params)
            .expect("ioband");
        app.bdev("band0").expect("registered")
    });
    rig.run(10, STEP);
    (rig, app, band)
}

#[test]
fn io_is_scheduled_on_the_reactor_that_submitted_it() {
    let (mut rig, app, band) = rig_with_band(None, 100_000);
    let c0 = Client::new(&rig, 0, &band, Some(GroupKey::Tag(1)));
    let c1 = Client::new(&rig, 1, &band, Some(GroupKey::Tag(2)));
    set(&app, "band0", 1, Some(GroupValue::Weight(100)));
    set(&app, "band0", 2, Some(GroupValue::Weight(100)));
    rig.on(0, || c0.start(8));
    rig.on(1, || c1.start(8));
    rig.run(5_000, STEP); // 10 ms
    let by_core = app.ioband.borrow().dispatched_by_core("s0");
    assert_eq!(by_core.len(), 2, "the share spans both reactors");
    assert!(
        by_core.iter().all(|&n| n > 100),
        "each reactor schedules its own I/O: {by_core:?}"
    );
    // The owner's counters include the other reactor's.
    let groups = app
        .ioband
        .borrow()
        .engine()
        .groups_of("band0")
        .expect("groups");
    let reads = |t: u32| {
        groups
            .iter()
            .find(|g| g.0 == GroupKey::Tag(t))
            .map_or(0, |g| g.2.read_ios)
    };
    assert!(reads(2) > 100, "tag 2 counted on the owner: {}", reads(2));
}

#[test]
fn weights_one_to_a_hundred_hold_across_two_reactors() {
    let (mut rig, app, band) = rig_with_band(None, 100_000);
    let weights = [1u32, 3, 7, 15, 30, 50, 75, 100];
    let clients: Vec<_> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let tag = u32::try_from(i).expect("small") + 1;
            set(&app, "band0", tag, Some(GroupValue::Weight(w)));
            Client::new(&rig, i % 2, &band, Some(GroupKey::Tag(tag)))
        })
        .collect();
    for (i, c) in clients.iter().enumerate() {
        rig.on(i % 2, || c.start(16));
    }
    rig.run(100_000, STEP); // 200 ms warm-up
    let from = rig.clock.now_ticks();
    for c in &clients {
        c.measure_from_ticks.set(from);
    }
    rig.run(500_000, STEP); // 1 s measured
    let counts: Vec<f64> = clients.iter().map(|c| c.measured.get() as f64).collect();
    let total: f64 = counts.iter().sum();
    let wsum: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    assert!(total > 90_000.0, "device not saturated: {total}");
    for (i, (&count, &w)) in counts.iter().zip(&weights).enumerate() {
        let want = f64::from(w) / wsum;
        let err = (count / total - want).abs() / want;
        assert!(
            err <= 0.02,
            "group {i} (weight {w}): error {err:.4} ({counts:?})"
        );
    }
}

/// The model's depth (64) is one queue for every channel, and the default io_limit is 3/2
/// of it: what goes past parks on its reactor, and two reactors' retries race for each
/// place that frees. While both are busy the hub learns the depth from the parked I/O and
/// the reactors keep within it (what is left waits in their queues, in order), and the
/// device stays saturated. Without it a third of what is in flight sat parked. (range-bw:
/// no window keeps the in-flight count under the depth.)
#[test]
fn two_busy_reactors_keep_within_a_shared_base_depth() {
    let params = ShareParams {
        policy: Policy::RangeBw,
        nr_requests: 64,
        ..ShareParams::default()
    };
    let (mut rig, app, band) = rig_with_band(Some(params), 100_000);
    let clients: Vec<_> = (0..2)
        .map(|i| {
            let tag = u32::try_from(i).expect("small") + 1;
            let range = GroupValue::RangeBw {
                min_kib_per_sec: 0,
                max_kib_per_sec: 0,
            };
            set(&app, "band0", tag, Some(range));
            Client::new(&rig, i, &band, Some(GroupKey::Tag(tag)))
        })
        .collect();
    for (i, c) in clients.iter().enumerate() {
        rig.on(i, || c.start(64));
    }
    rig.run(25_000, STEP); // 50 ms to learn
    let from = rig.clock.now_ticks();
    for c in &clients {
        c.measure_from_ticks.set(from);
    }
    let (mut in_flight, mut parked, mut samples) = (0u64, 0u64, 0u64);
    for _ in 0..100 {
        rig.run(500, STEP); // 1 ms
        let by_core = app.ioband.borrow().in_flight_by_core("s0");
        assert_eq!(by_core.len(), 2, "the share spans both reactors");
        in_flight += by_core.iter().map(|&(n, _)| u64::from(n)).sum::<u64>();
        parked += by_core.iter().map(|&(_, p)| u64::from(p)).sum::<u64>();
        samples += 1;
    }
    let (in_flight, parked) = (in_flight / samples, parked / samples);
    assert!(
        in_flight <= 64 + 4,
        "{in_flight} in flight on average over a depth of 64"
    );
    assert!(parked <= 4, "{parked} parked on average");
    let done: u64 = clients.iter().map(|c| c.measured.get()).sum();
    assert!(done >= 9_000, "device not saturated: {done} I/Os in 100 ms");
}

#[test]
fn reconfiguration_with_io_on_every_reactor_loses_nothing() {
    let params = ShareParams {
        io_limit: 16,
        ..ShareParams::default()
    };
    let (mut rig, app, band) = rig_with_band(Some(params), 200_000);
    set(&app, "band0", 1, Some(GroupValue::Weight(300)));
    set(&app, "band0", 2, Some(GroupValue::Weight(100)));
    let clients = vec![
        Client::new(&rig, 0, &band, Some(GroupKey::Tag(1))),
        Client::new(&rig, 1, &band, Some(GroupKey::Tag(1))),
        Client::new(&rig, 1, &band, Some(GroupKey::Tag(2))),
        Client::new(&rig, 0, &band, Some(GroupKey::Tag(3))),
        Client::new(&rig, 1, &band, None),
    ];
    for (i, c) in clients.iter().enumerate() {
        rig.on(if i % 2 == 0 { 0 } else { 1 }, || c.start(24));
    }
    rig.run(2_000, STEP);
    // Attach, re-weight, switch policy and back, detach, all under load.
    set(&app, "band0", 3, Some(GroupValue::Weight(50)));
    rig.run(300, STEP);
    set(&app, "band0", 1, Some(GroupValue::Weight(20)));
    rig.run(300, STEP);
    let iosize = ShareParams {
        policy: Policy::WeightIosize,
        ..params
    };
    app.ioband
        .borrow_mut()
        .engine_mut()
        .set_share_params("s0", iosize)
        .expect("policy");
    rig.run(300, STEP);
    set(&app, "band0", 2, None);
    rig.run(300, STEP);
    app.ioband
        .borrow_mut()
        .engine_mut()
        .set_share_params("s0", params)
        .expect("policy back");
    rig.run(1_000, STEP);
    let moved: Vec<u64> = clients.iter().map(|c| c.success.get()).collect();
    assert!(moved.iter().all(|&n| n > 10), "all move: {moved:?}");
    for c in &clients {
        c.closed_loop.set(false);
    }
    rig.run(2_000, STEP);
    for c in &clients {
        assert!(
            c.seen.borrow().iter().all(|&n| n == 1),
            "completed twice or never"
        );
        assert_eq!(c.completed(), c.submitted());
        assert_eq!(c.aborted.get() + c.failed.get(), 0);
    }
    // Every ticket came back on every reactor: the counters (the owner's and the
    // replica's, as of its last report) show nothing in flight or queued.
    let groups = app
        .ioband
        .borrow()
        .engine()
        .groups_of("band0")
        .expect("groups");
    assert!(
        groups
            .iter()
            .all(|g| g.2.in_flight == 0 && g.2.queue_depth == 0),
        "{groups:?}"
    );
    // Deleting under load on both reactors completes everything once too.
    for c in &clients {
        c.closed_loop.set(true);
        c.start(8);
    }
    rig.run(500, STEP);
    rig.on(0, || app.delete_ioband("band0")).expect("delete");
    rig.run(2_000, STEP);
    for c in &clients {
        assert!(
            c.seen.borrow().iter().all(|&n| n == 1),
            "completed twice or never"
        );
        assert_eq!(c.completed(), c.submitted());
    }
}

#[test]
fn a_share_created_again_under_its_name_gets_a_new_hub() {
    let (mut rig, app, band) = rig_with_band(None, 100_000);
    {
        let c0 = Client::new(&rig, 0, &band, Some(GroupKey::Tag(1)));
        let c1 = Client::new(&rig, 1, &band, Some(GroupKey::Tag(2)));
        rig.on(0, || c0.start(8));
        rig.on(1, || c1.start(8));
        rig.run(2_000, STEP);
        for c in [&c0, &c1] {
            c.closed_loop.set(false);
        }
        rig.run(2_000, STEP);
        assert_eq!(
            c0.completed() + c1.completed(),
            c0.submitted() + c1.submitted()
        );
    }
    let before = app.ioband.borrow().dispatched_by_core("s0");
    assert!(
        before.iter().all(|&n| n > 0),
        "both reactors ran: {before:?}"
    );
    // The clients' channels are gone; the share goes with its only device and comes
    // back under its name.
    drop(band);
    rig.run(10, STEP);
    rig.on(0, || {
        app.delete_ioband("band0").expect("delete");
        app.create_ioband("band0", "Model0", "s0", None)
            .expect("create again");
    });
    rig.run(1, STEP); // the owner's next pass: the sync
    let after = app.ioband.borrow().dispatched_by_core("s0");
    assert!(
        after.iter().all(|&n| n == 0),
        "the new share's hub shows the old one's reports: {after:?}"
    );
    // And the new share works across both reactors.
    let band = app.bdev("band0").expect("registered");
    rig.run(10, STEP);
    let c0 = Client::new(&rig, 0, &band, Some(GroupKey::Tag(1)));
    let c1 = Client::new(&rig, 1, &band, Some(GroupKey::Tag(2)));
    rig.on(0, || c0.start(8));
    rig.on(1, || c1.start(8));
    rig.run(2_000, STEP);
    let moved = app.ioband.borrow().dispatched_by_core("s0");
    assert!(moved.iter().all(|&n| n > 0), "both reactors run: {moved:?}");
}
