//! Host tests of the ioband vbdev, with reactors stepped by hand and a manual clock.

mod common;

use bdev_ioband_engine::{GroupKey, GroupValue, ShareParams};
use bdev_ioband_host::app::App;
use bdev_ioband_host::bdev::{BdevRef, IoType};
use common::{model, Client, Rig};

fn attach(app: &App, dev: &str, tag: u32, weight: u32) {
    app.ioband
        .borrow_mut()
        .engine_mut()
        .write_setting(dev, &GroupKey::Tag(tag), Some(GroupValue::Weight(weight)))
        .expect("attach");
}

#[test]
fn tagged_io_reaches_its_group() {
    let mut rig = Rig::new(2);
    let app = rig.on(0, App::new).expect("app");
    let band: BdevRef = rig.on(0, || {
        app.create_null("Null0", 512, 1024, None).expect("null");
        app.create_ioband("band0", "Null0", "s0", None)
            .expect("ioband");
        app.bdev("band0").expect("registered")
    });
    attach(&app, "band0", 1, 200);
    attach(&app, "band0", 2, 100);

    let c1 = Client::new(&rig, 1, &band, Some(GroupKey::Tag(1)));
    let c2 = Client::new(&rig, 0, &band, Some(GroupKey::Tag(2)));
    let c0 = Client::new(&rig, 1, &band, None);
    let c9 = Client::new(&rig, 1, &band, Some(GroupKey::Tag(9)));
    for c in [&c1, &c2, &c0, &c9] {
        c.closed_loop.set(false);
    }
    rig.on(1, || c1.start(3));
    rig.on(0, || c2.start(2));
    rig.on(1, || c0.start(1));
    rig.on(1, || c9.start(4));
    rig.run(20, 1000);

    assert_eq!(
        (
            c1.success.get(),
            c2.success.get(),
            c0.success.get(),
            c9.success.get()
        ),
        (3, 2, 1, 4)
    );
    let groups = app
        .ioband
        .borrow()
        .engine()
        .groups_of("band0")
        .expect("groups");
    let reads = |key: &GroupKey| groups.iter().find(|g| &g.0 == key).map(|g| g.2.read_ios);
    assert_eq!(reads(&GroupKey::Tag(1)), Some(3));
    assert_eq!(reads(&GroupKey::Tag(2)), Some(2));
    // Untagged and unknown tags go to the default group.
    assert_eq!(reads(&GroupKey::None), Some(5));
    assert_eq!(band.stats().snapshot().num_read_ops, 10);
}

#[test]
fn malloc_data_round_trips_through_ioband() {
    let mut rig = Rig::new(2);
    let app = rig.on(0, App::new).expect("app");
    let band = rig.on(0, || {
        app.create_malloc("Malloc0", 512, 64, None).expect("malloc");
        app.create_ioband("band0", "Malloc0", "s0", None)
            .expect("ioband");
        app.bdev("band0").expect("registered")
    });
    let c = Client::new(&rig, 1, &band, None);
    c.closed_loop.set(false);
    let data: Vec<u8> = (0..512u32).map(|i| (i * 7 % 251) as u8).collect();
    rig.on(1, || c.submit(IoType::Write, 5, Some(&data)));
    rig.run(5, 1000);
    rig.on(1, || c.submit(IoType::Read, 5, None));
    rig.run(5, 1000);
    assert_eq!(c.success.get(), 2);
    assert_eq!(*c.last_read.borrow(), data);
}

/// Three groups at 4:2:1, closed-loop at depth 32 each, over two reactors; the model
/// device is saturated and io_limit (8) is below its queue depth (16).
#[test]
fn weights_4_2_1_over_two_reactors_on_a_saturated_model_device() {
    let mut rig = Rig::new(2);
    let app = rig.on(0, App::new).expect("app");
    let params = ShareParams {
        io_limit: 8,
        ..ShareParams::default()
    };
    let band = rig.on(0, || {
        app.create_model("Model0", model(100_000, 16), None)
            .expect("model");
        app.create_ioband("band0", "Model0", "s0", Some(params))
            .expect("ioband");
        app.bdev("band0").expect("registered")
    });
    attach(&app, "band0", 1, 4);
    attach(&app, "band0", 2, 2);
    attach(&app, "band0", 3, 1);
    let clients = [
        Client::new(&rig, 0, &band, Some(GroupKey::Tag(1))),
        Client::new(&rig, 1, &band, Some(GroupKey::Tag(2))),
        Client::new(&rig, 1, &band, Some(GroupKey::Tag(3))),
    ];
    for (i, c) in clients.iter().enumerate() {
        rig.on(if i == 0 { 0 } else { 1 }, || c.start(32));
    }
    let step_ticks = 2_000;
    rig.run(10_000, step_ticks); // 20 ms warm-up
    let from = rig.clock.now_ticks();
    for c in &clients {
        c.measure_from_ticks.set(from);
    }
    rig.run(50_000, step_ticks); // 100 ms measured
    let counts: Vec<f64> = clients.iter().map(|c| c.measured.get() as f64).collect();
    let total: f64 = counts.iter().sum();
    eprintln!("measured completions per group: {counts:?}");
    // The device does 100k IOPS: about 10k I/Os in the window.
    assert!(total > 9_000.0, "device not saturated: {total}");
    for (count, want) in counts.iter().zip([4.0 / 7.0, 2.0 / 7.0, 1.0 / 7.0]) {
        let got = count / total;
        assert!(
            (got - want).abs() / want < 0.03,
            "share {got:.4} vs {want:.4} ({counts:?})"
        );
    }
}

fn deep_load(rig: &mut Rig, app: &App) -> Vec<std::rc::Rc<Client>> {
    let band = rig.on(0, || app.bdev("band0")).expect("band0");
    let clients = vec![
        Client::new(rig, 0, &band, Some(GroupKey::Tag(1))),
        Client::new(rig, 1, &band, Some(GroupKey::Tag(2))),
        Client::new(rig, 1, &band, None),
    ];
    for (i, c) in clients.iter().enumerate() {
        rig.on(if i == 0 { 0 } else { 1 }, || c.start(64));
    }
    rig.run(200, 2_000);
    clients
}

fn assert_exactly_once(clients: &[std::rc::Rc<Client>]) {
    for c in clients {
        let seen = c.seen.borrow();
        assert!(
            seen.iter().all(|&n| n == 1),
            "an I/O completed twice or never: {} never, {} more than once, of {}",
            seen.iter().filter(|&&n| n == 0).count(),
            seen.iter().filter(|&&n| n > 1).count(),
            seen.len()
        );
        assert_eq!(c.completed(), c.submitted());
    }
}

#[test]
fn deleting_an_ioband_bdev_under_load_completes_everything_once() {
    let mut rig = Rig::new(2);
    let app = rig.on(0, App::new).expect("app");
    // The window at io_limit: this test wants the base's queue overrun (I/O parked on
    // ENOMEM), which the default window (sized to the base's latency) avoids.
    let params = ShareParams {
        io_limit: 24,
        io_throttle: 24,
        ..ShareParams::default()
    };
    rig.on(0, || {
        // A small device queue, so that some I/O is parked on ENOMEM when we delete.
        app.create_model("Model0", model(50_000, 8), None)
            .expect("model");
        app.create_ioband("band0", "Model0", "s0", Some(params))
            .expect("ioband");
    });
    attach(&app, "band0", 1, 3);
    let clients = deep_load(&mut rig, &app);
    assert!(
        app.ioband.borrow().parked() > 0,
        "the test wants parked I/O"
    );
    rig.on(0, || app.delete_ioband("band0")).expect("delete");
    rig.run(200, 2_000);
    assert_exactly_once(&clients);
    let aborted: u64 = clients.iter().map(|c| c.aborted.get()).sum();
    let success: u64 = clients.iter().map(|c| c.success.get()).sum();
    assert!(
        aborted > 0 && success > 0,
        "aborted {aborted}, success {success}"
    );
    assert!(rig.on(0, || app.bdev("band0")).is_err());
    // A submission on a channel of the deleted bdev completes, aborted.
    clients[1].closed_loop.set(false);
    rig.on(1, || clients[1].submit(IoType::Read, 0, None));
    rig.run(3, 1_000);
    assert_exactly_once(&clients);
}

#[test]
fn removing_the_base_keeps_the_devices_until_it_returns_and_completes_everything_once() {
    let mut rig = Rig::new(2);
    let app = rig.on(0, App::new).expect("app");
    rig.on(0, || {
        app.create_model("Model0", model(50_000, 8), None)
            .expect("model");
        app.create_ioband("band0", "Model0", "s0", None)
            .expect("ioband");
        app.create_ioband("band1", "Model0", "s0", None)
            .expect("ioband");
    });
    let clients = deep_load(&mut rig, &app);
    rig.on(0, || app.delete_base("Model0", Some("Model disk")))
        .expect("delete base");
    rig.run(200, 2_000);
    assert_exactly_once(&clients);
    // The bdevs went with the base; the devices, their share and settings wait for it.
    assert!(rig.on(0, || app.bdev("band1")).is_err());
    assert!(rig.on(0, || app.bdev("Model0")).is_err());
    assert_eq!(app.ioband.borrow().engine().shares().count(), 1);
    let waiting: Vec<(String, String)> = app
        .ioband
        .borrow()
        .waiting()
        .map(|(n, b)| (n.to_owned(), b.to_owned()))
        .collect();
    assert_eq!(
        waiting,
        [
            ("band0".to_owned(), "Model0".to_owned()),
            ("band1".to_owned(), "Model0".to_owned())
        ]
    );
    // The base returns: so do the bdevs, and I/O flows through them again.
    rig.on(0, || app.create_model("Model0", model(50_000, 8), None))
        .expect("model again");
    assert!(rig.on(0, || app.bdev("band1")).is_ok());
    assert_eq!(app.ioband.borrow().waiting().count(), 0);
    let again = deep_load(&mut rig, &app);
    for c in &again {
        c.closed_loop.set(false);
    }
    // 50 000 IOPS: what is queued drains in a few milliseconds.
    rig.run(5_000, 2_000);
    assert_exactly_once(&again);
    let share = |f: fn(&bdev_ioband_engine::Share<Box<bdev_ioband_host::bdev::BdevIo>>) -> u64| {
        f(app.ioband.borrow().engine().share("s0").expect("share"))
    };
    assert_eq!(share(|s| u64::from(s.in_flight()) + s.queued()), 0);
    assert!(again.iter().all(|c| c.completed() > 0));
}

#[test]
fn detaching_a_group_under_load_loses_nothing() {
    let mut rig = Rig::new(2);
    let app = rig.on(0, App::new).expect("app");
    let params = ShareParams {
        io_limit: 4,
        ..ShareParams::default()
    };
    rig.on(0, || {
        app.create_model("Model0", model(50_000, 8), None)
            .expect("model");
        app.create_ioband("band0", "Model0", "s0", Some(params))
            .expect("ioband");
    });
    attach(&app, "band0", 1, 3);
    attach(&app, "band0", 2, 1);
    let clients = deep_load(&mut rig, &app);
    app.ioband
        .borrow_mut()
        .engine_mut()
        .write_setting("band0", &GroupKey::Tag(1), None)
        .expect("detach");
    for c in &clients {
        c.closed_loop.set(false);
    }
    rig.run(2_000, 2_000);
    assert_exactly_once(&clients);
    assert!(clients
        .iter()
        .all(|c| c.aborted.get() == 0 && c.failed.get() == 0));
    // Every ticket came back: the share counts nothing in flight.
    let in_flight = app
        .ioband
        .borrow()
        .engine()
        .share("s0")
        .map(|s| s.in_flight());
    assert_eq!(in_flight.ok(), Some(0));
}

#[test]
fn group_changes_take_effect_at_the_next_io() {
    // The owner caches group handles per device; attach, change and detach must reach the
    // very next I/O all the same.
    let mut rig = Rig::new(1);
    let app = rig.on(0, App::new).expect("app");
    let band: BdevRef = rig.on(0, || {
        app.create_null("Null0", 512, 1024, None).expect("null");
        app.create_ioband("band0", "Null0", "s0", None)
            .expect("ioband");
        app.bdev("band0").expect("registered")
    });
    let c = Client::new(&rig, 0, &band, Some(GroupKey::Tag(5)));
    c.closed_loop.set(false);
    let reads = |key: &GroupKey| {
        let groups = app
            .ioband
            .borrow()
            .engine()
            .groups_of("band0")
            .expect("groups");
        groups
            .iter()
            .find(|g| &g.0 == key)
            .map_or(0, |g| g.2.read_ios)
    };
    let one = |rig: &mut Rig| {
        rig.on(0, || c.submit(IoType::Read, 0, None));
        rig.run(3, 1000);
    };
    one(&mut rig);
    assert_eq!(reads(&GroupKey::None), 1, "unattached tag: default group");
    attach(&app, "band0", 5, 300);
    one(&mut rig);
    assert_eq!(reads(&GroupKey::Tag(5)), 1, "attached: its own group");
    app.ioband
        .borrow_mut()
        .engine_mut()
        .write_setting("band0", &GroupKey::Tag(5), None)
        .expect("detach");
    one(&mut rig);
    assert_eq!(reads(&GroupKey::None), 2, "detached: default group again");
    attach(&app, "band0", 5, 100);
    one(&mut rig);
    assert_eq!(
        reads(&GroupKey::Tag(5)),
        1,
        "re-attached: a new group, counted anew"
    );
    assert_eq!(c.success.get(), 4);
}

#[test]
fn shared_owner_channels_and_stacked_iobands_complete_everything_once() {
    // On the owner, a channel hands the caller's descriptor itself to the engine and keeps
    // its first caller's callback once; other callers of the channel, descriptors already
    // carrying an ioband context (band1 over band0) and other reactors take the other
    // paths. All of them complete exactly once, through deletion too.
    let mut rig = Rig::new(2);
    let app = rig.on(0, App::new).expect("app");
    // The window at io_limit: this test is about completion paths, and the default window
    // (it learns the base's latency over milliseconds) would slow the few hundred passes
    // it runs.
    let params = ShareParams {
        io_limit: 24,
        io_throttle: 24,
        ..ShareParams::default()
    };
    let (band0, band1) = rig.on(0, || {
        app.create_model("Model0", model(5_000_000, 8), None)
            .expect("model");
        app.create_ioband("band0", "Model0", "s0", Some(params))
            .expect("ioband");
        app.create_ioband("band1", "band0", "s1", None)
            .expect("stacked ioband");
        (
            app.bdev("band0").expect("band0"),
            app.bdev("band1").expect("band1"),
        )
    });
    attach(&app, "band0", 1, 100);
    let shared = rig.on(0, || band0.get_io_channel()).expect("channel");
    let clients = vec![
        Client::on_channel(&rig, shared.clone(), &band0, Some(GroupKey::Tag(1))),
        Client::on_channel(&rig, shared.clone(), &band0, Some(GroupKey::Tag(2))),
        Client::on_channel(&rig, shared, &band0, None),
        Client::new(&rig, 0, &band1, Some(GroupKey::Tag(7))),
        Client::new(&rig, 1, &band1, Some(GroupKey::Tag(8))),
        Client::new(&rig, 1, &band0, None),
    ];
    for (i, c) in clients.iter().enumerate() {
        rig.on(if i < 4 { 0 } else { 1 }, || c.start(16));
    }
    rig.run(500, 2_000);
    let moved: Vec<u64> = clients.iter().map(|c| c.success.get()).collect();
    assert!(moved.iter().all(|&n| n > 0), "all move: {moved:?}");
    rig.on(0, || app.delete_ioband("band1"))
        .expect("delete band1");
    rig.run(100, 2_000);
    rig.on(0, || app.delete_ioband("band0"))
        .expect("delete band0");
    rig.run(200, 2_000);
    assert_exactly_once(&clients);
    let aborted: u64 = clients.iter().map(|c| c.aborted.get()).sum();
    assert!(aborted > 0, "the deletes abort queued I/O");
}

/// A bdev bound to a group (bdev_ioband_create's `group`): I/O whose front-end tag has a
/// group attached to the bdev goes there (the tag takes precedence); untagged I/O, and I/O
/// whose tag has no group here, counts to the bound group. Two bound bdevs over one base
/// are two groups of one share, each named by its tenant.
#[test]
fn a_bound_bdev_counts_untagged_io_to_its_group_and_a_front_end_tag_takes_precedence() {
    let mut rig = Rig::new(2);
    let app = rig.on(0, App::new).expect("app");
    let h1 = GroupKey::Initiator("iqn.2016-06.io.example:h1".to_owned());
    let h2 = GroupKey::Initiator("iqn.2016-06.io.example:h2".to_owned());
    let (b1, b2): (BdevRef, BdevRef) = rig.on(0, || {
        app.create_null("Null0", 512, 1024, None).expect("null");
        app.create_ioband_bound("t1", "Null0", "tenants", None, Some(&h1))
            .expect("t1");
        app.create_ioband_bound("t2", "Null0", "tenants", None, Some(&h2))
            .expect("t2");
        // The same tenant twice in one share: refused, nothing registered.
        let again = app.create_ioband_bound("t3", "Null0", "tenants", None, Some(&h1));
        assert!(again.is_err());
        assert!(app.bdev("t3").is_err());
        (app.bdev("t1").expect("t1"), app.bdev("t2").expect("t2"))
    });
    attach(&app, "t1", 7, 100);

    let untagged = Client::new(&rig, 1, &b1, None);
    let tagged = Client::new(&rig, 1, &b1, Some(GroupKey::Tag(7)));
    let unknown = Client::new(&rig, 0, &b1, Some(GroupKey::Tag(8)));
    let own_name = Client::new(&rig, 0, &b2, Some(h2.clone()));
    let other = Client::new(&rig, 1, &b2, Some(h1.clone()));
    for c in [&untagged, &tagged, &unknown, &own_name, &other] {
        c.closed_loop.set(false);
    }
    rig.on(1, || untagged.start(3));
    rig.on(1, || tagged.start(2));
    rig.on(0, || unknown.start(4));
    rig.on(0, || own_name.start(5));
    rig.on(1, || other.start(6));
    rig.run(20, 1000);

    let reads = |dev: &str| -> Vec<(GroupKey, u64)> {
        let module = app.ioband.borrow();
        let groups = module.engine().groups_of(dev).expect("groups");
        groups
            .into_iter()
            .map(|(k, _, s)| (k, s.read_ios))
            .collect()
    };
    assert_eq!(reads("t1"), vec![(h1.clone(), 7), (GroupKey::Tag(7), 2)]);
    // On t2 h1 is no group of t2's: its I/O counts to t2's own tenant.
    assert_eq!(reads("t2"), vec![(h2, 11)]);
    assert_eq!(
        app.ioband
            .borrow()
            .engine()
            .share("tenants")
            .map(|s| s.device_count()),
        Ok(2)
    );
}
