//! Reactor tests, stepped by hand on the test thread.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use super::*;
use crate::bdev::{BdevIo, IoCallback};
use crate::ticks::Clock;

fn two() -> (Vec<Reactor>, crate::ticks::ManualClock) {
    let (clock, manual) = Clock::manual();
    (ReactorSet::new(&[0, 1], clock, false).build_all(), manual)
}

#[test]
fn messages_run_on_the_target_reactor_in_order() {
    let (mut r, _clock) = two();
    let seen = Arc::new(Mutex::new(Vec::new()));
    r[0].enter(|| {
        for i in 0..(MAILBOX_CAPACITY + 100) {
            let seen = seen.clone();
            send_msg(1, move || {
                let core = current_core().unwrap_or(99);
                seen.lock().map(|mut v| v.push((core, i))).unwrap_or(());
            })
            .expect("send");
        }
    });
    // The first pass of reactor 1 drains a batch; reactor 0 flushes its overflow as it polls.
    for _ in 0..100 {
        r[0].poll_once();
        r[1].poll_once();
    }
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), MAILBOX_CAPACITY + 100);
    assert!(seen
        .iter()
        .enumerate()
        .all(|(i, &(core, n))| core == 1 && n == i));
}

#[test]
fn io_goes_to_its_endpoint_inline_locally_and_by_message_remotely() {
    let (mut r, _clock) = two();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let cb: IoCallback = Rc::new(move |io: Box<BdevIo>| g.borrow_mut().push(io.user_ctx));
    let ep = r[1].enter(|| register_endpoint(cb)).expect("endpoint");
    r[1].enter(|| {
        deliver_io(
            1,
            ep,
            Box::new(BdevIo {
                user_ctx: 1,
                ..BdevIo::default()
            }),
        )
    })
    .expect("local");
    assert_eq!(*got.borrow(), [1], "delivered inline");
    r[0].enter(|| {
        deliver_io(
            1,
            ep,
            Box::new(BdevIo {
                user_ctx: 2,
                ..BdevIo::default()
            }),
        )
    })
    .expect("remote");
    assert_eq!(*got.borrow(), [1]);
    r[1].poll_once();
    assert_eq!(*got.borrow(), [1, 2]);
}

#[test]
fn a_reply_to_a_dropped_endpoint_never_reaches_the_endpoint_that_took_its_place() {
    let (mut r, _clock) = two();
    let io = |n| {
        Box::new(BdevIo {
            user_ctx: n,
            ..BdevIo::default()
        })
    };
    let old_got = Rc::new(RefCell::new(Vec::new()));
    let g = old_got.clone();
    let old_cb: IoCallback = Rc::new(move |io: Box<BdevIo>| g.borrow_mut().push(io.user_ctx));
    let old = r[1].enter(|| register_endpoint(old_cb)).expect("endpoint");
    // A reply for the old endpoint is on its way when the old channel goes and a new one
    // registers (and gets the same slot).
    r[0].enter(|| send_io(1, old, io(1))).expect("send");
    r[1].enter(|| unregister_endpoint(old)).expect("unregister");
    let new_got = Rc::new(RefCell::new(Vec::new()));
    let g = new_got.clone();
    let new_cb: IoCallback = Rc::new(move |io: Box<BdevIo>| g.borrow_mut().push(io.user_ctx));
    let new = r[1].enter(|| register_endpoint(new_cb)).expect("endpoint");
    assert_ne!(new, old, "a re-used slot is a new endpoint");
    r[1].poll_once();
    // Inline, too.
    r[1].enter(|| deliver_io(1, old, io(2))).expect("deliver");
    assert!(new_got.borrow().is_empty(), "{:?}", new_got.borrow());
    assert!(old_got.borrow().is_empty());
    r[1].enter(|| deliver_io(1, new, io(3))).expect("deliver");
    assert_eq!(*new_got.borrow(), [3]);
    assert!(r[1]
        .enter(|| endpoint_callback(old))
        .expect("on reactor")
        .is_none());
}

#[test]
fn pollers_respect_their_period_and_tasks_run() {
    let (mut r, clock) = two();
    let runs = Rc::new(Cell::new(0));
    let n = runs.clone();
    r[0].enter(|| {
        register_poller("test", 1_000, move |_| {
            n.set(n.get() + 1);
            PollerStatus::Busy
        })
    })
    .expect("poller");
    r[0].poll_once();
    r[0].poll_once();
    assert_eq!(runs.get(), 1, "second pass is within the period");
    clock.advance(1_000);
    r[0].poll_once();
    assert_eq!(runs.get(), 2);

    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    r[0].enter(|| spawn_local(async move { d.set(true) }))
        .expect("spawn")
        .detach();
    r[0].poll_once();
    assert!(done.get());
}

/// What a reactor keeps alive dies with it, not with its thread: the fuzz target
/// `rpc_wire`, which builds reactors for every input, ran out of memory on the ioband
/// replicas that a thread-local kept forever.
#[test]
fn kept_objects_are_dropped_with_their_reactor() {
    let (mut r, _clock) = two();
    let kept = Rc::new(7u32);
    r[1].enter(|| keep_alive(kept.clone()))
        .expect("on a reactor");
    assert_eq!(Rc::strong_count(&kept), 2);
    r[1].poll_once();
    assert_eq!(Rc::strong_count(&kept), 2, "kept while the reactor lives");
    drop(r);
    assert_eq!(Rc::strong_count(&kept), 1, "dropped with the reactor");
    assert!(keep_alive(kept).is_err(), "off a reactor");
}
