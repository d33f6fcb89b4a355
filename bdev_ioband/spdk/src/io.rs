//! The I/O path on the owner thread: classify, hand to the share's scheduler, dispatch
//! what it releases, take completions back.
//!
//! Group identity: the bdev API carries no caller tag (no host NQN, IQN or cgroup reaches
//! a bdev module). What a module can see is the SPDK thread an I/O was submitted on, so an
//! I/O goes to group `tag:<spdk thread id>` of its device when that group is attached, and
//! to the device's default group otherwise. Tenants are told apart by topology: one ioband
//! bdev per tenant over the shared base, all in one share, each created *bound* to its
//! tenant's group (`bdev_ioband_create`'s `group`, e.g. `initiator:<host nqn>`): a bound
//! device's default group is that group, so its I/O counts to the tenant by name and the
//! tenants' groups compete in the one share exactly as groups of one device would (the
//! engine's device is the ioband bdev; see the engine's share module, bound groups). The
//! exports that make each bdev reachable by its tenant only are SPDK's own (the rpc.py
//! plugin's `bdev_ioband_nvmf_export` and `bdev_ioband_iscsi_export`). An `initiator:` or
//! `cgroup:` group merely *attached* to a device is accepted (the RPC contract is the
//! embedded host's) but no SPDK I/O is classified into it.
//!
//! Time: the engine is given [`shim::pass_ticks`], the tick of the owner thread's current
//! poll pass, read once per call from the shim (a submit, a completion, a poller pass, a
//! batch of failed dispatches) and passed down; nothing here reads a clock.
//!
//! Out of bdev_ios (ENOMEM): a dispatch the base cannot take for want of a `spdk_bdev_io`
//! is parked here, in dispatch order, and everything dispatched after it waits behind it;
//! the head's io_wait entry brings [`io_wait_done`], which submits them again in order. An
//! I/O is never failed for ENOMEM.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::{c_int, c_void};
use std::mem::{align_of, size_of, MaybeUninit};

use bdev_ioband_engine::{Admit, GroupKey, Op, ShareId, Ticket};

use crate::ffi;
use crate::shim::{self, IoHandle};
use crate::state::{with_state, Effects, State};

/// What Rust keeps in an I/O's driver_ctx while it is ours.
#[repr(C)]
#[derive(Clone, Copy)]
struct IoArea {
    /// The share that released the I/O, by handle: its ticket goes back there and nowhere
    /// else. The handle goes stale when the share is removed (the ticket is then dropped),
    /// even if a share of the same name is created meanwhile (a drain that removed the
    /// device's last share, a delete and a create).
    share: MaybeUninit<ShareId>,
    /// Whether `share` and `ticket` are written (not for resets, which bypass the share).
    has_ticket: bool,
    ticket: MaybeUninit<Ticket>,
}

const _: () = assert!(size_of::<IoArea>() <= ffi::RS_IO_AREA);
const _: () = assert!(align_of::<IoArea>() <= 8);

fn write_area(io: &IoHandle, area: IoArea) {
    let p = shim::io_area(io).cast::<IoArea>();
    // SAFETY: the area is RS_IO_AREA bytes, 8-aligned (asserted to fit IoArea above), in
    // the driver_ctx of an I/O we own; nothing else writes it.
    unsafe { p.write(area) }
}

fn read_area(io: &IoHandle) -> IoArea {
    let p = shim::io_area(io).cast::<IoArea>();
    // SAFETY: as in write_area; every I/O that reaches a reader was written by
    // `submit` first (IoArea is Copy, no drop).
    unsafe { p.read() }
}

/// Marks an I/O as holding no ticket yet (before it is offered to a share).
pub(crate) fn clear_area(io: &IoHandle) {
    write_area(
        io,
        IoArea {
            share: MaybeUninit::uninit(),
            has_ticket: false,
            ticket: MaybeUninit::uninit(),
        },
    );
}

/// The share and ticket a dispatched I/O carries, if any.
pub(crate) fn ticket(io: &IoHandle) -> Option<(ShareId, Ticket)> {
    ticket_of(&read_area(io))
}

fn ticket_of(area: &IoArea) -> Option<(ShareId, Ticket)> {
    // SAFETY: has_ticket is set only together with a written share and ticket.
    area.has_ticket
        .then(|| unsafe { (area.share.assume_init(), area.ticket.assume_init()) })
}

const ENODEV: c_int = 19;

/// The sink that share `share` hands dispatchable I/O to.
pub(crate) fn sink(fx: &mut Effects, share: ShareId) -> impl FnMut(IoHandle, Ticket) + '_ {
    move |io, ticket| {
        write_area(
            &io,
            IoArea {
                share: MaybeUninit::new(share),
                has_ticket: true,
                ticket: MaybeUninit::new(ticket),
            },
        );
        fx.dispatch.push(io);
    }
}

/// An I/O arrived on the owner thread. 0, or a negative errno (the shim fails it).
pub fn submit(dev_id: u64, io: *mut c_void, kind: c_int, bytes: u64, thread_id: u64) -> c_int {
    let Some(io) = IoHandle::new(io) else {
        return -22;
    };
    let mut fx = Effects::take();
    let rc = with_state(|st| submit_locked(st, &mut fx, dev_id, io, kind, bytes, thread_id))
        .unwrap_or(-ENODEV);
    run_effects(fx);
    rc
}

fn submit_locked(
    st: &mut State,
    fx: &mut Effects,
    dev_id: u64,
    io: IoHandle,
    kind: c_int,
    bytes: u64,
    thread_id: u64,
) -> c_int {
    let Some(dev) = st.devs.get(&dev_id).filter(|d| !d.deleted) else {
        return -ENODEV;
    };
    write_area(
        &io,
        IoArea {
            share: MaybeUninit::uninit(),
            has_ticket: false,
            ticket: MaybeUninit::uninit(),
        },
    );
    if kind == ffi::IO_RESET {
        // A reset completes after everything before it: what the share still queues for
        // this device is aborted, the reset goes straight to the base.
        let name = dev.name.clone();
        for queued in drain_device(st, &name) {
            fx.complete.push((queued, ffi::STATUS_ABORTED));
        }
        fx.dispatch.push(io);
        return 0;
    }
    // No allocation per I/O: the device is found by reference, the share by handle.
    let Ok((share_id, device)) = st.engine.device_handle(&dev.name) else {
        return -ENODEV;
    };
    let Some(share) = st.engine.share_by_id_mut(share_id) else {
        return -ENODEV;
    };
    let group = u32::try_from(thread_id)
        .ok()
        .and_then(|t| share.group_id(device, &GroupKey::Tag(t)).ok());
    let Some(group) = group else {
        return -ENODEV;
    };
    let op = match kind {
        ffi::IO_READ => Op::Read,
        ffi::IO_WRITE => Op::Write,
        _ => Op::Other,
    };
    let now = shim::pass_ticks();
    match share.submit(device, group, io, op, bytes, now, &mut sink(fx, share_id)) {
        Admit::Accepted => 0,
        // The handle goes back to the shim, which fails the I/O.
        Admit::NoDevice(_) => -ENODEV,
    }
}

/// The base completed a dispatched I/O (of device `_dev_id`: the ticket knows its share).
pub fn done(_dev_id: u64, io: *mut c_void) {
    let Some(io) = IoHandle::new(io) else { return };
    AT_BASE.set(AT_BASE.get().saturating_sub(1));
    let mut fx = Effects::take();
    let area = read_area(&io);
    // The submitter first, the ticket after (the engine's contract): a closed-loop
    // submitter on this thread sends its next I/O from the completion callback and so
    // stays active in its share, keeping its place under io_throttle.
    shim::complete(io, ffi::STATUS_BASE);
    if let Some((share, ticket)) = ticket_of(&area) {
        let now = shim::pass_ticks();
        with_state(|st| return_ticket(st, &mut fx, share, ticket, now));
    }
    run_effects(fx);
}

/// Fails a dispatched I/O the base refused; its ticket goes back.
fn fail_dispatched(fx: &mut Effects, io: IoHandle, now: u64) {
    let area = read_area(&io);
    fx.complete.push((io, ffi::STATUS_FAILED));
    if let Some((share, ticket)) = ticket_of(&area) {
        with_state(|st| return_ticket(st, fx, share, ticket, now));
    }
}

fn return_ticket(st: &mut State, fx: &mut Effects, share: ShareId, ticket: Ticket, now: u64) {
    // A stale handle (the share was removed) finds nothing: the ticket is dropped.
    if let Some(s) = st.engine.share_by_id_mut(share) {
        s.complete(ticket, now, &mut sink(fx, share));
    }
}

/// Owner poller: resumes parked dispatches whose io_wait could not be armed, re-drives
/// shares that hold queued I/O. Returns whether it did anything.
pub fn poll() -> bool {
    let resumed = !parked_is_empty() && !ARMED.get();
    if resumed {
        resume_parked();
    }
    let mut fx = Effects::take();
    let now = shim::pass_ticks();
    with_state(|st| {
        let mut ids = std::mem::take(&mut st.poll_ids);
        ids.clear();
        ids.extend(st.engine.share_ids());
        for &id in &ids {
            if let Some(share) = st.engine.share_by_id_mut(id) {
                share.poll(now, &mut sink(&mut fx, id));
            }
        }
        st.poll_ids = ids;
        crate::replica::owner_tick(st, &mut fx, now);
    });
    let busy = resumed || !fx.is_empty();
    run_effects(fx);
    busy
}

/// Takes what the share queues for device `name` (a reset, a destruct). The device keeps
/// its groups, settings, counters and share: what is in flight returns its tickets there.
pub fn drain_device(st: &mut State, name: &str) -> Vec<IoHandle> {
    st.engine.drain_device(name).unwrap_or_default()
}

/// The bdev layer destructs a device's bdev: abort what its share still queues for it and
/// forget the node (a remembered device is created again when its base comes back).
pub fn node_destruct(dev_id: u64) {
    let mut fx = Effects::take();
    with_state(|st| {
        let Some(dev) = st.devs.get(&dev_id) else {
            return;
        };
        let (name, deleted) = (dev.name.clone(), dev.deleted);
        if !deleted {
            for io in drain_device(st, &name) {
                fx.complete.push((io, ffi::STATUS_ABORTED));
            }
        }
        if let Some(dev) = st.devs.get_mut(&dev_id) {
            dev.node = None;
        }
    });
    run_effects(fx);
}

/// The shim freed a node: a deleted device's record is no longer needed (its last
/// completion has returned its ticket).
pub fn node_freed(dev_id: u64) {
    with_state(|st| {
        if st.devs.get(&dev_id).is_some_and(|d| d.deleted) {
            st.devs.remove(&dev_id);
        }
    });
}

/// Completes and submits what a call left to do, with the state released; repeats while
/// failed submissions give back tickets that release more.
pub fn run_effects(mut fx: Effects) {
    loop {
        let mut failed = Vec::new();
        for (io, status) in fx.complete.drain(..) {
            shim::complete(io, status);
        }
        for io in fx.dispatch.drain(..) {
            if let Err(io) = submit_or_park(io) {
                failed.push(io);
            }
        }
        if failed.is_empty() {
            fx.recycle();
            return;
        }
        let now = shim::pass_ticks();
        for io in failed {
            fail_dispatched(&mut fx, io, now);
        }
    }
}

thread_local! {
    /// Dispatched I/O that met ENOMEM at the base, in dispatch order (owner thread only).
    static PARKED: RefCell<VecDeque<IoHandle>> = const { RefCell::new(VecDeque::new()) };
    /// The head's io_wait is armed: `io_wait_done` will come. While it is, no parked I/O is
    /// submitted (the head's wait entry sits in SPDK's queue).
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// `resume_parked` is running (a callback during a submission finds it so).
    static DRAINING: Cell<bool> = const { Cell::new(false) };
    /// An io_wait callback came while draining: drain once more.
    static AGAIN: Cell<bool> = const { Cell::new(false) };
    /// I/O the owner has at the base (dispatched, not completed).
    static AT_BASE: Cell<u64> = const { Cell::new(0) };
    /// Whether replicas run on other threads (see [`note_replicas`]).
    static REPLICAS: Cell<bool> = const { Cell::new(false) };
}

/// The owner learns whether replicas run on other threads. With replicas the owner may
/// have nothing at the base while it parks I/O (their I/O takes the bdev_ios), and SPDK's
/// wait entry fires only when a bdev_io is freed on the waiting thread: then the poller
/// retries the parked I/O instead of arming io_wait.
pub fn note_replicas(any: bool) {
    REPLICAS.set(any);
}

fn parked_is_empty() -> bool {
    PARKED.with(|p| p.try_borrow().is_ok_and(|q| q.is_empty()))
}

fn park_back(io: IoHandle) {
    PARKED.with(|p| p.borrow_mut().push_back(io));
}

fn park_front(io: IoHandle) {
    PARKED.with(|p| p.borrow_mut().push_front(io));
}

fn unpark_front() -> Option<IoHandle> {
    PARKED.with(|p| p.borrow_mut().pop_front())
}

/// Arms io_wait with the head of the parked queue unless it is armed already.
fn arm_parked() {
    if ARMED.get() {
        return;
    }
    if REPLICAS.get() && AT_BASE.get() == 0 {
        // Nothing of ours to free a bdev_io on this thread: the poller retries.
        return;
    }
    let armed = PARKED.with(|p| p.borrow().front().is_some_and(shim::io_wait));
    ARMED.set(armed);
}

/// Forgets parked I/O (module init and fini: by fini every ioband bdev has been
/// destructed, which waits for its parked I/O, so this finds none unless something went
/// wrong, and then the handles would be stale).
pub fn forget_parked() {
    PARKED.with(|p| {
        if let Ok(mut q) = p.try_borrow_mut() {
            q.clear();
        }
    });
    ARMED.set(false);
    DRAINING.set(false);
    AGAIN.set(false);
    AT_BASE.set(0);
    REPLICAS.set(false);
}

/// How many dispatched I/O wait for a bdev_io.
pub fn parked_len() -> usize {
    PARKED.with(|p| p.borrow().len())
}

/// Submits a released I/O to its base, or parks it behind earlier ones (so that running
/// out of bdev_ios never reorders what the engine released). `Err`: the base refused it.
fn submit_or_park(io: IoHandle) -> Result<(), IoHandle> {
    if DRAINING.get() || !parked_is_empty() {
        park_back(io);
        return Ok(());
    }
    match shim::dispatch(&io) {
        0 => {
            AT_BASE.set(AT_BASE.get() + 1);
            Ok(())
        }
        ffi::DISPATCH_NOMEM => {
            park_back(io);
            arm_parked();
            Ok(())
        }
        _ => Err(io),
    }
}

/// The io_wait callback (or its fallback message): a bdev_io may be free.
pub fn io_wait_done() {
    ARMED.set(false);
    resume_parked();
}

/// Submits parked I/O again, in order, until the queue is empty or the base is out of
/// bdev_ios again (then the new head arms io_wait).
fn resume_parked() {
    if ARMED.get() {
        return;
    }
    if DRAINING.get() {
        AGAIN.set(true);
        return;
    }
    DRAINING.set(true);
    let mut failed = Vec::new();
    loop {
        AGAIN.set(false);
        while let Some(io) = unpark_front() {
            match shim::dispatch(&io) {
                0 => AT_BASE.set(AT_BASE.get() + 1),
                ffi::DISPATCH_NOMEM => {
                    park_front(io);
                    arm_parked();
                    break;
                }
                _ => failed.push(io),
            }
        }
        if !AGAIN.get() || ARMED.get() {
            break;
        }
    }
    DRAINING.set(false);
    if failed.is_empty() {
        return;
    }
    let mut fx = Effects::take();
    let now = shim::pass_ticks();
    for io in failed {
        fail_dispatched(&mut fx, io, now);
    }
    run_effects(fx);
}
