//! The adapter's guarantees, against a recording model of a host: per-base parking and
//! order, generation-checked tickets across delete and re-create, exactly-once completion
//! with I/O parked and in flight when a device goes.

use super::*;
use crate::{Op, ShareParams};

const TPS: u64 = 1_000_000;

#[derive(Debug)]
struct Io {
    id: u32,
    tag: IoTag,
}

impl Tagged for Io {
    fn tag(&self) -> IoTag {
        self.tag
    }
    fn set_tag(&mut self, tag: IoTag) {
        self.tag = tag;
    }
}

/// A host's bases: which are out of resources, what each took (in order), what failed.
#[derive(Debug, Default)]
struct Host {
    nomem: Vec<u32>,
    refuse: Vec<u32>,
    taken: Vec<(u32, Io)>,
    failed: Vec<(u32, Failure)>,
}

impl Base<Io, u32> for Host {
    fn submit(&mut self, base: &mut u32, io: Io) -> Submit<Io> {
        if self.nomem.contains(base) {
            return Submit::NoMem(io);
        }
        if self.refuse.contains(base) {
            return Submit::Refused(io);
        }
        self.taken.push((*base, io));
        Submit::Taken
    }
    fn fail(&mut self, io: Io, why: Failure) {
        assert!(io.tag.held.is_none(), "failed with its ticket still held");
        self.failed.push((io.id, why));
    }
}

impl Host {
    fn ids_on(&self, base: u32) -> Vec<u32> {
        self.taken
            .iter()
            .filter(|(b, _)| *b == base)
            .map(|(_, io)| io.id)
            .collect()
    }

    /// Completes the I/O of id `id` from the base.
    fn finish(&mut self, id: u32) -> Io {
        let pos = self.taken.iter().position(|(_, io)| io.id == id).unwrap();
        self.taken.remove(pos).1
    }
}

/// An engine with `devices` (name, base) in share "s" (room for 64 in flight), and an
/// adapter that knows them.
fn setup(devices: &[(&str, u32)]) -> (Engine<Io>, Adapter<Io, u32>, Vec<DevHandle>) {
    let mut engine = Engine::new(TPS);
    let params = ShareParams {
        io_limit: 64,
        io_throttle: 64,
        ..ShareParams::default()
    };
    let mut adapter = Adapter::new();
    let mut handles = Vec::new();
    for (name, base) in devices {
        let r = engine.create_device(name, "s", Some(params)).unwrap();
        handles.push(adapter.add_device(r.share_id, r.device, BaseIdx(*base), *base));
    }
    (engine, adapter, handles)
}

fn submit(
    engine: &mut Engine<Io>,
    a: &mut Adapter<Io, u32>,
    host: &mut Host,
    dev: DevHandle,
    id: u32,
) {
    let route = a.classify(engine, dev, &GroupKey::None).unwrap();
    let x = Io {
        id,
        tag: IoTag::new(dev),
    };
    a.submit(engine, route, x, Op::Read, 4096, 0, host).unwrap();
}

fn complete(engine: &mut Engine<Io>, a: &mut Adapter<Io, u32>, host: &mut Host, id: u32) {
    let io = host.finish(id);
    a.complete(engine, io.tag.dev, io.tag.held, true, 1, host);
}

#[test]
fn enomem_on_one_base_does_not_hold_back_another() {
    let (mut e, mut a, h) = setup(&[("a", 0), ("b", 1)]);
    let mut host = Host {
        nomem: vec![0],
        ..Host::default()
    };
    submit(&mut e, &mut a, &mut host, h[0], 1);
    submit(&mut e, &mut a, &mut host, h[1], 2);
    submit(&mut e, &mut a, &mut host, h[0], 3);
    submit(&mut e, &mut a, &mut host, h[1], 4);
    assert_eq!(host.ids_on(1), vec![2, 4], "base 1 went on");
    assert_eq!(host.ids_on(0), Vec::<u32>::new());
    assert_eq!(a.parking.len_of(BaseIdx(0)), 2);
    assert_eq!(a.parking.len_of(BaseIdx(1)), 0);
    // Base 0 recovers: its I/O go in the order the engine released them.
    host.nomem.clear();
    assert_eq!(a.retry_parked(&mut e, 1, &mut host), 2);
    assert_eq!(host.ids_on(0), vec![1, 3]);
    assert!(a.parking.is_empty());
    assert_eq!(a.devices.get(h[0]).unwrap().in_flight_ios(), 2);
}

#[test]
fn span_reports_say_how_much_of_each_share_is_parked() {
    let (mut e, mut a, h) = setup(&[("a", 0)]);
    let r = e.create_device("b", "t", None).unwrap();
    let hb = a.add_device(r.share_id, r.device, BaseIdx(0), 0);
    let mut host = Host {
        nomem: vec![0],
        ..Host::default()
    };
    submit(&mut e, &mut a, &mut host, h[0], 1);
    submit(&mut e, &mut a, &mut host, hb, 2);
    submit(&mut e, &mut a, &mut host, h[0], 3);
    let parked = |a: &Adapter<Io, u32>, e: &mut Engine<Io>| -> Vec<(String, Option<u32>, u32)> {
        let mut v: Vec<_> = a
            .span_reports(e, 1, |_| true)
            .into_iter()
            .map(|(n, r)| (n, r.parked, r.in_flight))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        parked(&a, &mut e),
        vec![("s".to_owned(), Some(2), 2), ("t".to_owned(), Some(1), 1)]
    );
    // Not where a device's depth is each channel's, nor for a share on two bases.
    let none = a.span_reports(&mut e, 1, |_| false);
    assert!(none.iter().all(|(_, r)| r.parked.is_none()));
    let r = e.create_device("c", "t", None).unwrap();
    a.add_device(r.share_id, r.device, BaseIdx(1), 1);
    assert_eq!(
        parked(&a, &mut e),
        vec![("s".to_owned(), Some(2), 2), ("t".to_owned(), None, 1)]
    );
    host.nomem.clear();
    a.retry_parked(&mut e, 1, &mut host);
    assert_eq!(
        parked(&a, &mut e),
        vec![("s".to_owned(), Some(0), 2), ("t".to_owned(), None, 1)]
    );
}

#[test]
fn order_is_kept_per_base_when_a_retry_blocks_again() {
    let (mut e, mut a, h) = setup(&[("a", 0), ("b", 1)]);
    let mut host = Host {
        nomem: vec![0, 1],
        ..Host::default()
    };
    for id in 1..=6 {
        submit(&mut e, &mut a, &mut host, h[(id % 2) as usize], id);
    }
    assert_eq!(a.parking.len(), 6);
    // Even ids went to base 0, odd ones to base 1. Base 1 recovers, base 0 not: only
    // base 1's go, in order.
    host.nomem = vec![0];
    a.retry_parked(&mut e, 1, &mut host);
    assert_eq!(host.ids_on(0), Vec::<u32>::new());
    assert_eq!(host.ids_on(1), vec![1, 3, 5]);
    // New I/O to base 0 waits behind the parked ones even though the base would take it;
    // new I/O to base 1 goes straight on.
    host.nomem.clear();
    submit(&mut e, &mut a, &mut host, h[0], 8);
    submit(&mut e, &mut a, &mut host, h[1], 9);
    assert_eq!(a.parking.len_of(BaseIdx(0)), 4);
    assert_eq!(host.ids_on(1), vec![1, 3, 5, 9]);
    a.retry_parked(&mut e, 1, &mut host);
    submit(&mut e, &mut a, &mut host, h[0], 10);
    assert_eq!(host.ids_on(0), vec![2, 4, 6, 8, 10]);
}

#[test]
fn new_io_parks_behind_a_blocked_base_in_release_order() {
    let (mut e, mut a, h) = setup(&[("a", 0)]);
    let mut host = Host {
        nomem: vec![0],
        ..Host::default()
    };
    submit(&mut e, &mut a, &mut host, h[0], 1);
    host.nomem.clear();
    // The base would take it now, but 1 waits: 2 goes behind it.
    submit(&mut e, &mut a, &mut host, h[0], 2);
    assert_eq!(host.ids_on(0), Vec::<u32>::new());
    a.retry_parked(&mut e, 1, &mut host);
    assert_eq!(host.ids_on(0), vec![1, 2]);
}

#[test]
fn a_recreated_share_never_gets_the_old_completions() {
    let (mut e, mut a, h) = setup(&[("a", 0)]);
    let mut host = Host::default();
    submit(&mut e, &mut a, &mut host, h[0], 1);
    let old_share = a.devices.get(h[0]).unwrap().share();
    assert_eq!(e.share_by_id(old_share).unwrap().in_flight(), 1);
    // Delete the device (its share goes with it) and create both again, same names.
    assert!(e.delete_device("a").unwrap().is_empty());
    let mut sink = Host::default();
    a.remove_device(&mut e, h[0], 1, &mut sink);
    let r = e.create_device("a", "s", None).unwrap();
    assert_ne!(r.share_id, old_share, "a new incarnation");
    let h2 = a.add_device(r.share_id, r.device, BaseIdx(0), 0);
    assert_ne!(h2, h[0]);
    submit(&mut e, &mut a, &mut host, h2, 2);
    assert_eq!(e.share_by_id(r.share_id).unwrap().in_flight(), 1);
    // The old I/O completes: the new share's count and the new device's are untouched.
    complete(&mut e, &mut a, &mut host, 1);
    assert_eq!(e.share_by_id(r.share_id).unwrap().in_flight(), 1);
    assert_eq!(a.devices.get(h2).unwrap().in_flight_ios(), 1);
    complete(&mut e, &mut a, &mut host, 2);
    assert_eq!(e.share_by_id(r.share_id).unwrap().in_flight(), 0);
    assert_eq!(a.devices.get(h2).unwrap().in_flight_ios(), 0);
}

#[test]
fn span_reports_name_the_share_incarnation_on_the_owner_and_on_a_replica() {
    let (mut e, _, _) = setup(&[("a", 0)]);
    let incarnation = |e: &mut Engine<Io>| -> Vec<u64> {
        e.span_reports(1)
            .iter()
            .map(|(_, r)| r.incarnation)
            .collect()
    };
    let first = e.share_id("s").unwrap().incarnation();
    assert_eq!(incarnation(&mut e), [first]);
    assert_eq!(e.incarnation_of("s"), Some(first));
    // A second share, "x", in the owner's next slot.
    e.create_device("z", "x", None).unwrap();
    let x = e.share_id("x").unwrap().incarnation();
    let layout =
        |e: &Engine<Io>, name: &str| e.share_by_id(e.share_id(name).unwrap()).unwrap().layout();
    // A replica that lists them the other way round ("x" in its first slot) reports the
    // owner's incarnations, not its own slots'.
    let mut replica: Engine<Io> = Engine::new(1_000_000);
    let listed = |e: &Engine<Io>, s: u64| {
        vec![
            ("x".to_owned(), x, layout(e, "x")),
            ("s".to_owned(), s, layout(e, "s")),
        ]
    };
    assert!(replica.mirror(&listed(&e, first)).is_empty());
    assert_ne!(replica.share_id("s").unwrap().incarnation(), first);
    let by_name = |e: &mut Engine<Io>| -> Vec<(String, u64)> {
        let mut v: Vec<_> = e
            .span_reports(1)
            .into_iter()
            .map(|(n, r)| (n, r.incarnation))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        by_name(&mut replica),
        [("s".to_owned(), first), ("x".to_owned(), x)]
    );
    // "s" deleted and created again under its name: another incarnation everywhere.
    e.delete_device("a").unwrap();
    e.create_device("a", "s", None).unwrap();
    let second = e.share_id("s").unwrap().incarnation();
    assert_ne!(second, first);
    assert_eq!(
        by_name(&mut e),
        [("s".to_owned(), second), ("x".to_owned(), x)]
    );
    let _ = replica.mirror(&listed(&e, second));
    assert_eq!(
        by_name(&mut replica),
        [("s".to_owned(), second), ("x".to_owned(), x)]
    );
    assert_eq!(replica.incarnation_of("s"), Some(second));
}

#[test]
fn a_recreated_device_never_gets_the_old_completions() {
    // Two devices keep the share alive; "a" is deleted and created again (same name,
    // same share) while its I/O is in flight.
    let (mut e, mut a, h) = setup(&[("a", 0), ("b", 1)]);
    let mut host = Host::default();
    submit(&mut e, &mut a, &mut host, h[0], 1);
    submit(&mut e, &mut a, &mut host, h[0], 2);
    e.delete_device("a").unwrap();
    a.remove_device(&mut e, h[0], 1, &mut host);
    assert_eq!(a.reap(), 0, "kept while its I/O is at the base");
    let r = e.create_device("a", "s", None).unwrap();
    let h2 = a.add_device(r.share_id, r.device, BaseIdx(0), 0);
    assert_ne!(h2, h[0]);
    submit(&mut e, &mut a, &mut host, h2, 3);
    let share = r.share_id;
    assert_eq!(e.share_by_id(share).unwrap().in_flight(), 3);
    // The old device's completions return their tickets to the share (it lives on) and
    // count back on the old device only.
    complete(&mut e, &mut a, &mut host, 1);
    complete(&mut e, &mut a, &mut host, 2);
    assert_eq!(e.share_by_id(share).unwrap().in_flight(), 1);
    assert_eq!(a.devices.get(h2).unwrap().in_flight_ios(), 1);
    assert!(a.devices.get(h[0]).is_some_and(|d| d.in_flight_ios() == 0));
    assert_eq!(a.reap(), 1);
    assert!(a.devices.get(h[0]).is_none());
    // A stale tag after the slot was reused finds nothing.
    let next = a.devices.next_handle();
    let h3 = a.add_device(r.share_id, r.device, BaseIdx(0), 0);
    assert_eq!(next, h3);
    assert_eq!(
        h3.to_u64() >> 32,
        h[0].to_u64() >> 32,
        "the slot was reused"
    );
    assert_eq!(DevHandle::from_u64(h3.to_u64()), h3);
    a.complete(&mut e, h[0], None, true, 2, &mut host);
    assert_eq!(a.devices.get(h3).unwrap().in_flight_ios(), 0);
}

#[test]
fn a_replica_keeps_the_old_incarnation_until_its_io_drains() {
    let (mut e, _, _) = setup(&[("a", 0)]);
    let r = e.device("a").unwrap();
    let mut owner: Adapter<Io, u32> = Adapter::new();
    let h1 = owner.add_device(r.share_id, r.device, BaseIdx(0), 0);
    let mut replica: Adapter<Io, u32> = Adapter::new();
    assert_eq!(
        replica.mirror_device(h1, r.share_id, r.device, BaseIdx(0), 0),
        Mirrored::Added
    );
    let mut host = Host::default();
    submit(&mut e, &mut replica, &mut host, h1, 1);
    // The owner deletes, reaps and reuses the slot; the replica hears of the new one
    // while its old I/O is still at the base.
    owner.devices.mark_deleted(h1);
    owner.reap();
    let h2 = owner.add_device(r.share_id, r.device, BaseIdx(0), 0);
    assert_eq!(
        replica.mirror_device(h2, r.share_id, r.device, BaseIdx(0), 0),
        Mirrored::Added
    );
    assert_eq!(
        replica.mirror_device(h1, r.share_id, r.device, BaseIdx(0), 0),
        Mirrored::Stale
    );
    submit(&mut e, &mut replica, &mut host, h2, 2);
    complete(&mut e, &mut replica, &mut host, 1);
    assert_eq!(replica.devices.get(h2).unwrap().in_flight_ios(), 1);
    assert_eq!(
        replica.reap(),
        1,
        "the retired incarnation went once drained"
    );
    assert!(replica.devices.get(h1).is_none());
}

#[test]
fn delete_with_parked_and_in_flight_io_completes_each_exactly_once() {
    let (mut e, mut a, h) = setup(&[("a", 0), ("b", 0)]);
    let mut host = Host::default();
    submit(&mut e, &mut a, &mut host, h[0], 1);
    submit(&mut e, &mut a, &mut host, h[0], 2);
    host.nomem = vec![0];
    for id in 3..=6 {
        // a, b, a, b: parked in that order on their shared base.
        submit(&mut e, &mut a, &mut host, h[(id % 2 == 0) as usize], id);
    }
    assert_eq!(a.parking.len(), 4);
    let share = a.devices.get(h[0]).unwrap().share();
    assert_eq!(e.share_by_id(share).unwrap().in_flight(), 6);
    // "a" goes: its parked I/O (3, 5) fail at once, in order, tickets returned; its
    // I/O at the base (1, 2) complete normally later.
    let queued = e.delete_device("a").unwrap();
    assert!(queued.is_empty());
    a.remove_device(&mut e, h[0], 1, &mut host);
    assert_eq!(
        host.failed,
        vec![(3, Failure::DeviceGone), (5, Failure::DeviceGone)]
    );
    assert_eq!(e.share_by_id(share).unwrap().in_flight(), 4);
    assert_eq!(a.parking.len(), 2, "b's parked I/O stay, in order");
    host.nomem.clear();
    a.retry_parked(&mut e, 1, &mut host);
    assert_eq!(host.ids_on(0), vec![1, 2, 4, 6]);
    for id in [1, 2, 4, 6] {
        complete(&mut e, &mut a, &mut host, id);
    }
    assert_eq!(e.share_by_id(share).unwrap().in_flight(), 0);
    assert_eq!(a.reap(), 1);
    // Every I/O came back once: four completed, two failed.
    assert!(host.taken.is_empty());
    assert_eq!(host.failed.len(), 2);
}

#[test]
fn a_refused_dispatch_fails_once_with_its_ticket_returned() {
    let (mut e, mut a, h) = setup(&[("a", 0)]);
    let mut host = Host {
        refuse: vec![0],
        ..Host::default()
    };
    submit(&mut e, &mut a, &mut host, h[0], 1);
    assert_eq!(host.failed, vec![(1, Failure::Refused)]);
    let share = a.devices.get(h[0]).unwrap().share();
    assert_eq!(e.share_by_id(share).unwrap().in_flight(), 0);
}

#[test]
fn classification_follows_attach_and_detach_after_config_changed() {
    let (mut e, mut a, h) = setup(&[("a", 0)]);
    let key = GroupKey::Tag(7);
    let default = a.classify(&e, h[0], &key).unwrap().group;
    let r = e.device("a").unwrap();
    let g = e
        .share_by_id_mut(r.share_id)
        .unwrap()
        .attach(r.device, key.clone(), None)
        .unwrap();
    // Stale until the host says the configuration changed.
    assert_eq!(a.classify(&e, h[0], &key).unwrap().group, default);
    a.config_changed();
    assert_eq!(a.classify(&e, h[0], &key).unwrap().group, g);
    assert_eq!(
        a.classify(&e, DevHandle::from_u64(99 << 32 | 1), &key),
        Err(NoRoute::NoDevice)
    );
}

#[test]
fn the_tag_fits_the_spdk_io_area() {
    assert!(std::mem::size_of::<IoTag>() <= 48);
}

#[test]
fn bases_are_numbered_in_first_seen_order() {
    let mut names = BaseNames::default();
    assert_eq!(names.index("nvme0n1"), BaseIdx(0));
    assert_eq!(names.index("nvme1n1"), BaseIdx(1));
    assert_eq!(names.index("nvme0n1"), BaseIdx(0));
}
