//! The I/O path on the owner thread: classify, hand to the share's scheduler, dispatch
//! what it releases, take completions back, through the engine's host-neutral adapter
//! (`bdev_ioband_engine::adapter`, the same as the embedded host's): device handles and
//! group caches for classification, tickets tagged with their device and share
//! incarnations, parking per base. What stays here is SPDK's: the tag lives in the I/O's
//! driver_ctx, submissions to the base wait until the state is released (a submission may
//! call back into the module: [`Effects`]), and io_wait.
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
//! is parked here in its base's queue ([`Parking`]), and everything dispatched to that
//! base after it waits behind it (I/O to other bases goes on); the io_wait entry of one
//! parked head at a time brings [`io_wait_done`], which submits every base's queue again
//! in order. An I/O is never failed for ENOMEM.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::mem::{align_of, size_of};

use bdev_ioband_engine::adapter::{
    self, BaseIdx, DevHandle, Failure, Held, IoTag, NoRoute, Parking, Submit, Tagged,
};
use bdev_ioband_engine::{GroupKey, Op, ShareId, Ticket};

use crate::ffi;
use crate::shim::{self, IoHandle};
use crate::state::{with_state, Effects, State};

// What Rust keeps in an I/O's driver_ctx while it is ours: the adapter's tag.
const _: () = assert!(size_of::<IoTag>() <= ffi::RS_IO_AREA);
const _: () = assert!(align_of::<IoTag>() <= 8);

fn write_tag(io: &IoHandle, tag: IoTag) {
    let p = shim::io_area(io).cast::<IoTag>();
    // SAFETY: the area is RS_IO_AREA bytes, 8-aligned (asserted to fit IoTag above), in
    // the driver_ctx of an I/O we own; nothing else writes it.
    unsafe { p.write(tag) }
}

fn read_tag(io: &IoHandle) -> IoTag {
    let p = shim::io_area(io).cast::<IoTag>();
    // SAFETY: as in write_tag; every I/O that reaches a reader was written by `stamp`
    // first (at submission; `clear_area`), and IoTag is Copy (no drop).
    unsafe { p.read() }
}

impl Tagged for IoHandle {
    #[inline]
    fn tag(&self) -> IoTag {
        read_tag(self)
    }

    #[inline]
    fn set_tag(&mut self, tag: IoTag) {
        write_tag(self, tag);
    }

    #[inline]
    fn tag_dev(&self) -> DevHandle {
        let p = shim::io_area(self).cast::<IoTag>();
        // SAFETY: as in read_tag, one field of it.
        unsafe { std::ptr::addr_of!((*p).dev).read() }
    }

    #[inline]
    fn set_held(&mut self, held: Option<Held>) {
        let p = shim::io_area(self).cast::<IoTag>();
        // SAFETY: as in write_tag, one field of it (the tag was written at submission).
        unsafe { std::ptr::addr_of_mut!((*p).held).write(held) }
    }
}

/// Marks an I/O as of no device and holding no ticket (before it goes to the owner).
pub(crate) fn clear_area(io: &IoHandle) {
    stamp(io, DevHandle::default());
}

/// Marks an I/O as of device `dev` (the owner's handle) and holding no ticket.
pub(crate) fn stamp(io: &IoHandle, dev: DevHandle) {
    write_tag(io, IoTag::new(dev));
}

/// The device an I/O was stamped with.
pub(crate) fn ticket_dev(io: &IoHandle) -> DevHandle {
    io.tag_dev()
}

/// The share and ticket a dispatched I/O carries, if any.
pub(crate) fn ticket(io: &IoHandle) -> Option<(ShareId, Ticket)> {
    io.tag().held.map(|h| (h.share, h.ticket))
}

/// The owner's bases for the adapter: a dispatch waits in the effect list until the state
/// is released; a failure completes through it.
struct Deferred<'a>(&'a mut Effects);

impl adapter::Base<IoHandle, ()> for Deferred<'_> {
    #[inline]
    fn submit(&mut self, _dev: &mut (), io: IoHandle) -> Submit<IoHandle> {
        self.0.dispatch.push(io);
        Submit::Deferred
    }

    fn fail(&mut self, io: IoHandle, why: Failure) {
        let status = match why {
            Failure::DeviceGone => ffi::STATUS_ABORTED,
            Failure::Refused => ffi::STATUS_FAILED,
        };
        self.0.complete.push((io, status));
    }
}

const ENODEV: c_int = 19;

/// The sink that share `share` hands dispatchable I/O to (the replicas' engines, and the
/// owner's grants): the tag keeps the device stamped at submission and gets the share's
/// handle and the ticket, and the I/O waits in the effect list.
pub(crate) fn sink(fx: &mut Effects, share: ShareId) -> impl FnMut(IoHandle, Ticket) + '_ {
    move |mut io, ticket| {
        io.set_held(Some(Held { share, ticket }));
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
    let h = dev.handle;
    stamp(&io, h);
    if kind == ffi::IO_RESET {
        // A reset completes after everything before it: what the shares still queue for
        // this device, here and on every replica, is aborted; then the reset goes to the
        // base (see `replica::start_reset`).
        let name = dev.name.clone();
        for queued in drain_device(st, &name) {
            fx.complete.push((queued, ffi::STATUS_ABORTED));
        }
        crate::replica::start_reset(st, fx, io, &name);
        return 0;
    }
    // No allocation and no lookup by name per I/O: the device by handle, its group from
    // the adapter's cache.
    let Some(key) = u32::try_from(thread_id).ok().map(GroupKey::Tag) else {
        return -ENODEV;
    };
    let route = match st.adapter.classify(&st.engine, h, &key) {
        Ok(route) => route,
        Err(NoRoute::NoShare) => {
            // The device's share is another incarnation now: where it lives is looked up
            // again, once.
            let name = &dev.name;
            let Ok((share, device)) = st.engine.device_handle(name) else {
                return -ENODEV;
            };
            st.adapter.devices.set_route(h, share, device);
            st.adapter.config_changed();
            match st.adapter.classify(&st.engine, h, &key) {
                Ok(route) => route,
                Err(_) => return -ENODEV,
            }
        }
        Err(NoRoute::NoDevice) => return -ENODEV,
    };
    let op = op_of(kind);
    let now = shim::pass_ticks();
    match st
        .adapter
        .submit(&mut st.engine, route, io, op, bytes, now, &mut Deferred(fx))
    {
        Ok(()) => 0,
        // The handle goes back to the shim, which fails the I/O.
        Err(_) => -ENODEV,
    }
}

/// The engine's op of the shim's I/O kind (`IOBAND_IO_*`).
pub(crate) fn op_of(kind: c_int) -> Op {
    match kind {
        ffi::IO_READ => Op::Read,
        ffi::IO_WRITE => Op::Write,
        _ => Op::Other,
    }
}

/// The base completed a dispatched I/O (of device `_dev_id`: the tag knows its device and
/// share).
pub fn done(_dev_id: u64, io: *mut c_void) {
    let Some(io) = IoHandle::new(io) else { return };
    AT_BASE.set(AT_BASE.get().saturating_sub(1));
    let mut fx = Effects::take();
    let tag = io.tag();
    // The submitter first, the ticket after (the engine's contract): a closed-loop
    // submitter on this thread sends its next I/O from the completion callback and so
    // stays active in its share, keeping its place under io_throttle.
    shim::complete(io, ffi::STATUS_BASE);
    if tag.held.is_some() {
        let now = shim::pass_ticks();
        with_state(|st| return_ticket(st, &mut fx, tag, now));
    }
    run_effects(fx);
}

/// Fails a dispatched I/O the base refused; its ticket goes back.
fn fail_dispatched(fx: &mut Effects, io: IoHandle, now: u64) {
    let tag = io.tag();
    fx.complete.push((io, ffi::STATUS_FAILED));
    if tag.held.is_some() {
        with_state(|st| return_ticket(st, fx, tag, now));
    }
}

fn return_ticket(st: &mut State, fx: &mut Effects, tag: IoTag, now: u64) {
    // A stale handle (the share or device was removed) finds nothing: the ticket is
    // dropped, never given to a newer incarnation.
    st.adapter.complete(
        &mut st.engine,
        tag.dev,
        tag.held,
        false,
        now,
        &mut Deferred(fx),
    );
}

/// Owner poller: resumes parked dispatches whose io_wait could not be armed, re-drives
/// shares that hold queued I/O. Returns whether it did anything.
pub fn poll() -> bool {
    let resumed = unarmed_waiting();
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
            st.adapter.with_share(
                &mut st.engine,
                id,
                now,
                &mut Deferred(&mut fx),
                |share, sink| {
                    share.poll(now, sink);
                },
            );
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
            st.remove_dev(dev_id);
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
    /// Dispatched I/O that met ENOMEM at their base, per base in dispatch order (owner
    /// thread only).
    static PARKED: RefCell<Parking<IoHandle>> = RefCell::new(Parking::default());
    /// The base whose head's io_wait is armed: `io_wait_done` will come. While it is, that
    /// base's parked I/O is not submitted (the head's wait entry sits in SPDK's queue);
    /// other bases' are.
    static ARMED: Cell<Option<BaseIdx>> = const { Cell::new(None) };
    /// `resume_parked` is running (a callback during a submission finds it so).
    static DRAINING: Cell<bool> = const { Cell::new(false) };
    /// An io_wait callback came, or an I/O was parked, while draining: drain once more.
    static AGAIN: Cell<bool> = const { Cell::new(false) };
    /// I/O the owner has at the base (dispatched, not completed).
    static AT_BASE: Cell<u64> = const { Cell::new(0) };
    /// Whether replicas run on other threads (see [`note_replicas`]).
    static REPLICAS: Cell<bool> = const { Cell::new(false) };
    /// Scratch of `resume_parked`: the bases to retry (kept to reuse its allocation).
    static BASES: RefCell<Vec<BaseIdx>> = const { RefCell::new(Vec::new()) };
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

/// Whether some base with parked I/O has no io_wait armed (the poller retries those).
fn unarmed_waiting() -> bool {
    let armed = ARMED.get();
    PARKED.with(|p| {
        p.try_borrow()
            .is_ok_and(|q| q.waiting().iter().any(|b| Some(*b) != armed))
    })
}

/// The base of a dispatched I/O: its device's (base 0 for a device no longer known, so
/// that nothing is lost). Only where something is parked or the base is out of bdev_ios:
/// it takes the state.
fn base_of(io: &IoHandle) -> BaseIdx {
    let dev = io.tag().dev;
    with_state(|st| st.adapter.devices.get(dev).map(|d| d.base()))
        .flatten()
        .unwrap_or_default()
}

fn must_wait(base: BaseIdx) -> bool {
    PARKED.with(|p| p.borrow().must_wait(base))
}

fn park_back(base: BaseIdx, io: IoHandle) {
    PARKED.with(|p| p.borrow_mut().park_back(base, io));
}

fn park_front(base: BaseIdx, io: IoHandle) {
    PARKED.with(|p| p.borrow_mut().park_front(base, io));
}

fn unpark_front(base: BaseIdx) -> Option<IoHandle> {
    PARKED.with(|p| p.borrow_mut().pop_front(base))
}

/// Arms io_wait with the head of `base`'s queue unless an io_wait is armed already.
fn arm_parked(base: BaseIdx) {
    if ARMED.get().is_some() {
        return;
    }
    if REPLICAS.get() && AT_BASE.get() == 0 {
        // Nothing of ours to free a bdev_io on this thread: the poller retries.
        return;
    }
    let armed = PARKED.with(|p| p.borrow().front(base).is_some_and(shim::io_wait));
    ARMED.set(armed.then_some(base));
}

/// Forgets parked I/O (module init and fini: by fini every ioband bdev has been
/// destructed, which waits for its parked I/O, so this finds none unless something went
/// wrong, and then the handles would be stale).
pub fn forget_parked() {
    PARKED.with(|p| {
        if let Ok(mut q) = p.try_borrow_mut() {
            *q = Parking::default();
        }
    });
    ARMED.set(None);
    DRAINING.set(false);
    AGAIN.set(false);
    AT_BASE.set(0);
    REPLICAS.set(false);
}

/// How many dispatched I/O wait for a bdev_io.
pub fn parked_len() -> usize {
    PARKED.with(|p| p.borrow().len())
}

/// Submits a released I/O to its base, or parks it behind earlier ones of that base (so
/// that running out of bdev_ios never reorders what the engine released to a base).
/// `Err`: the base refused it.
fn submit_or_park(io: IoHandle) -> Result<(), IoHandle> {
    if DRAINING.get() || !parked_is_empty() {
        let base = base_of(&io);
        if DRAINING.get() {
            park_back(base, io);
            AGAIN.set(true);
            return Ok(());
        }
        if must_wait(base) {
            park_back(base, io);
            return Ok(());
        }
    }
    match shim::dispatch(&io) {
        0 => {
            AT_BASE.set(AT_BASE.get() + 1);
            Ok(())
        }
        ffi::DISPATCH_NOMEM => {
            let base = base_of(&io);
            park_back(base, io);
            arm_parked(base);
            Ok(())
        }
        _ => Err(io),
    }
}

/// The io_wait callback (or its fallback message): a bdev_io may be free.
pub fn io_wait_done() {
    ARMED.set(None);
    resume_parked();
}

/// Submits parked I/O again, each base's in order, until its queue is empty or the base
/// is out of bdev_ios again (then its new head arms io_wait, if none is armed). The base
/// whose head's io_wait is armed waits for it.
fn resume_parked() {
    if DRAINING.get() {
        AGAIN.set(true);
        return;
    }
    DRAINING.set(true);
    let mut failed = Vec::new();
    let mut bases = BASES.with(|b| std::mem::take(&mut *b.borrow_mut()));
    loop {
        AGAIN.set(false);
        bases.clear();
        PARKED.with(|p| bases.extend_from_slice(p.borrow().waiting()));
        for &base in &bases {
            if ARMED.get() == Some(base) {
                continue;
            }
            while let Some(io) = unpark_front(base) {
                match shim::dispatch(&io) {
                    0 => AT_BASE.set(AT_BASE.get() + 1),
                    ffi::DISPATCH_NOMEM => {
                        park_front(base, io);
                        arm_parked(base);
                        break;
                    }
                    _ => failed.push(io),
                }
            }
        }
        if !AGAIN.get() {
            break;
        }
    }
    BASES.with(|b| *b.borrow_mut() = bases);
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
