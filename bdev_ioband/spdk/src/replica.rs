//! Per-thread replicas of the shares: every SPDK thread other than the owner that has a
//! channel of an ioband bdev schedules the I/O submitted on it with its own replica of the
//! shares, on its own channel of the base, with no message and no lock per I/O.
//!
//! The engine's span module has the scheduling across replicas (reports, hub, grants, the
//! lag bound); this module is the SPDK host's side of it:
//! - **A replica** lives in the thread's context (the shim's per-thread io_device channel)
//!   as a `Box<RefCell<Replica>>`, created when the thread gets its first ioband channel.
//!   It says hello to the owner, which answers with the shares' layouts and the live
//!   devices ([`ToReplica::Sync`], again after every change) and, every millisecond, with
//!   grants. Until it has heard of a device, and for resets, the I/O goes to the owner; a
//!   reset waits there until every replica has aborted what its share queues for the
//!   device ([`ToReplica::Drain`], [`start_reset`]).
//! - **Messages** are boxed [`Envelope`]s sent with the shim's `send_msg`. A message to a
//!   replica finds it in [`REGISTRY`] by id (a mutex, taken once per message, never per
//!   I/O); a replica is freed only on its own thread, where its messages also run, so a
//!   found replica is live.
//! - **Out of bdev_ios**: a dispatch the base cannot take is parked, in order, and the
//!   thread's poller retries it (see `arm`).
//! - **Leaving**: when the thread's last ioband channel goes, the replica says bye and the
//!   shim keeps the thread from exiting until the owner has acknowledged (no message to
//!   the thread comes after the acknowledgement), then frees it.
//! - **The owner** keeps the replicas' handles, a hub per share, and sends syncs and grants
//!   ([`owner_tick`], from its poller); the owner's own shares are one of the cores.
//!
//! - **Lanes**: each of the thread's ioband channels has a lane ([`ffi::Lane`]), through
//!   which the shim dispatches a READ or WRITE straight to the base, and counts it, without
//!   calling Rust, within what the share granted (see the engine's lane module). Every pass
//!   of the thread's poller settles every lane with the share (the counts, in aggregate,
//!   as per-I/O calls would have applied them), closes them, does the replica's pass, and
//!   opens them again. Every other call into the replica that may decide something (an I/O
//!   the lane could not take, a message: grant, sync; a leave) settles and closes the lanes
//!   first, so the share never decides on state the lanes changed; a grant or a sync opens
//!   them again at once, under what it changed, an I/O the lane could not take leaves them
//!   closed until the next pass. A completion of an I/O the replica dispatched itself does
//!   not settle them (it decides nothing while a lane is open: the engine's lane module).
//!   A completion of a lane's I/O while the lane is closed is settled at once (something
//!   may wait for its slot); one of an I/O the share dispatched gives its slot to its
//!   group's lane ([`bdev_ioband_engine::Share::lane_grow`]), so a lane is not starved by
//!   the share-dispatched I/O it finds in flight when it opens.
//!
//!   Choices against the first sketch of this design: a lane's slots are room in flight,
//!   given back by each completion, not a number of dispatches per pass (a pass of 50 µs
//!   carries ~500 I/Os at 10 M IOPS: a per-pass count would send most of them down the
//!   slow path); the lanes are Rust's memory that the shim reads, so closing them is a
//!   store to `open`, no epoch and no shim call; and the poller's one call per pass settles
//!   and opens every lane of the thread (one crossing per pass, not one per channel, and a
//!   share's lanes are granted together, which their window needs). Closing is a write to the lanes Rust owns: the
//!   shim checks `open` per I/O, no epoch to compare and no call needed.
//!
//! Owned: a replica by its thread; the owner's side by the owner thread, in [`State`];
//! a lane by its replica (allocated and freed here), lent to the shim's channel between
//! `ioband_rs_thread_lane` and `ioband_rs_thread_lane_free`, on the same thread.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use std::ptr::NonNull;

use bdev_ioband_engine::adapter::{BaseIdx, DevHandle, DeviceTable, Parking};
use bdev_ioband_engine::{
    Admit, CoreReport, DeviceIdx, Engine, Grant, GroupId, GroupKey, GroupStats, Hub, LaneCounts,
    LaneRequest, Policy, ShareId, ShareLayout,
};

use crate::ffi;
use crate::io;
use crate::shim::{self, IoHandle};
use crate::state::{with_state, Effects, State};

/// How often replicas report and the owner grants, in µs.
pub const EXCHANGE_PERIOD_US: u64 = 1_000;
/// Most (device, thread) group handles a replica keeps.
const GROUP_CACHE: usize = 64;

/// Ticks per second of the module (set at init; read by replicas on any thread).
static TICKS_PER_SEC: AtomicU64 = AtomicU64::new(1);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Live replicas by id: the address of their `RefCell<Replica>`.
static REGISTRY: Mutex<BTreeMap<u64, usize>> = Mutex::new(BTreeMap::new());

/// Module init: the tick rate replicas count in.
pub fn init(ticks_per_sec: u64) {
    TICKS_PER_SEC.store(ticks_per_sec.max(1), Ordering::Relaxed);
}

/// What travels between threads.
#[derive(Debug)]
pub enum Envelope {
    /// To the owner.
    ToOwner(ToOwner),
    /// To replica `id` (on its thread).
    ToReplica {
        /// The replica.
        id: u64,
        /// What for.
        msg: ToReplica,
    },
}

/// Messages to the owner.
#[derive(Debug)]
pub enum ToOwner {
    /// A replica was created on `thread`.
    Hello {
        /// Its id.
        id: u64,
        /// Its thread's handle.
        thread: u64,
    },
    /// A replica leaves, with its last reports (its counters stay counted).
    Bye {
        /// Its id.
        id: u64,
        /// Per share name.
        reports: Vec<(String, CoreReport)>,
    },
    /// A replica's reports, per share.
    Report {
        /// Its id.
        id: u64,
        /// Per share name.
        reports: Vec<(String, CoreReport)>,
    },
    /// A replica has aborted what its shares queued for the device of reset `reset`.
    Drained {
        /// Its id.
        id: u64,
        /// The reset.
        reset: u64,
    },
}

/// A live device as a sync lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDev {
    /// The shim's device id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its handle in the owner's adapter (what its I/O are tagged with).
    pub handle: DevHandle,
    /// Its base's number (parking per base).
    pub base: BaseIdx,
}

/// Messages to a replica.
#[derive(Debug)]
pub enum ToReplica {
    /// The shares' layouts and the live devices (id, name); `cores`: how many cores the
    /// shares span.
    Sync {
        /// Per share: name, incarnation, layout.
        layouts: Vec<(String, u64, ShareLayout)>,
        /// Live devices.
        devs: Vec<SyncDev>,
        /// Cores spanned.
        cores: u32,
    },
    /// Grants per share name.
    Grants(Vec<(String, Grant)>),
    /// The owner knows the replica left: nothing more will come.
    ByeAck,
    /// A reset of device `device` waits: abort what the replica's share queues for it, and
    /// say so (`ToOwner::Drained`).
    Drain {
        /// The device's name.
        device: String,
        /// The reset.
        reset: u64,
    },
}

/// A thread's replica.
#[derive(Debug)]
pub struct Replica {
    id: u64,
    thread: u64,
    engine: Engine<IoHandle>,
    /// Devices it can schedule, by the shim's device id, with the owner's handle.
    devs: BTreeMap<u64, (ShareId, DeviceIdx, DevHandle)>,
    /// The devices by the owner's handle, with their bases (the engine adapter's table,
    /// mirrored at every sync): where a parked I/O waits.
    dev_table: DeviceTable<()>,
    /// Routes by (device id, submitting thread id), found once per sync: a thread
    /// submits with one or a few such pairs, so a short vector beats a map lookup and a
    /// group lookup every I/O.
    routes: Vec<Route>,
    /// The effect list the I/O path fills, kept here so that it is reused without a
    /// thread-local lookup (taken while a call runs, given back at its end).
    fx: Effects,
    /// Dispatches the base could not take, per base in order (the engine adapter's).
    parked: Parking<IoHandle>,
    /// Scratch of `resume`: the bases to retry (kept to reuse its allocation).
    park_bases: Vec<BaseIdx>,
    /// I/O of the replica at the base (dispatched, not completed).
    at_base: u64,
    armed: bool,
    draining: bool,
    again: bool,
    /// The owner has answered the hello.
    synced: bool,
    leaving: bool,
    left: bool,
    last_exchange_ticks: u64,
    exchange_ticks: u64,
    /// The lanes of the thread's channels (see the module doc).
    lanes: Vec<LaneSlot>,
    /// Resets drained here whose `Drained` answer has not been sent: one that found no
    /// message buffer is sent again each pass (the owner holds the reset until it arrives).
    unanswered_resets: Vec<u64>,
    /// Scratch for opening lanes (kept to reuse their allocations).
    lane_reqs: Vec<LaneRequest>,
    lane_idx: Vec<usize>,
    /// Scratch of `poll`: the share ids (kept to reuse its allocation every pass).
    poll_ids: Vec<ShareId>,
}

type Cell = RefCell<Replica>;

/// A lane and what it dispatches for.
#[derive(Debug)]
struct LaneSlot {
    /// From `Box::into_raw` in [`lane_new`]; freed in [`lane_free`] or [`destroy`].
    lane: NonNull<ffi::Lane>,
    dev_id: u64,
    thread_id: u64,
    /// The route its I/O in flight were charged to (kept while any is at the base: a
    /// sync may move the thread's route to another group, but not theirs).
    route: Option<Route>,
}

impl LaneSlot {
    /// The lane's memory.
    #[allow(clippy::mut_from_ref)]
    fn get(&self) -> &mut ffi::Lane {
        // SAFETY: allocated by `lane_new` and freed only after it is removed from the
        // replica's list (`lane_free`, `destroy`), so live while listed; touched only on the
        // replica's thread, by Rust here and by the shim between calls (never while a
        // reference from here is alive: no shim call is made while one is held).
        unsafe { &mut *self.lane.as_ptr() }
    }
}

/// Where a (device, submitting thread) pair's I/O goes in the replica's engine.
#[derive(Debug, Clone, Copy)]
struct Route {
    dev_id: u64,
    thread_id: u64,
    /// The owner's handle of the device (its I/O are tagged with it).
    dev: DevHandle,
    share: ShareId,
    device: DeviceIdx,
    group: GroupId,
}

impl Replica {
    /// The base of a dispatched I/O: its device's (base 0 for a device no longer known,
    /// so that nothing is lost).
    fn base_of(&self, io: &IoHandle) -> BaseIdx {
        self.dev_table
            .get(io::ticket_dev(io))
            .map(|d| d.base())
            .unwrap_or_default()
    }

    /// Whether none of the replica's I/O is at the base (its own dispatches and its lanes').
    fn nothing_at_base(&self) -> bool {
        self.at_base == 0 && self.lanes.iter().all(|l| l.get().at_base == 0)
    }

    /// The route of an I/O of device `dev_id` submitted on thread `thread_id`: the cached
    /// one, else found (the device's `tag:<thread id>` group when attached, its default
    /// group otherwise) and cached. None: a device the replica does not know.
    #[inline]
    fn route(&mut self, dev_id: u64, thread_id: u64) -> Option<Route> {
        if let Some(r) = self
            .routes
            .iter()
            .find(|r| r.dev_id == dev_id && r.thread_id == thread_id)
        {
            return Some(*r);
        }
        let &(share_id, device, dev) = self.devs.get(&dev_id)?;
        let share = self.engine.share_by_id_mut(share_id)?;
        let group = u32::try_from(thread_id)
            .ok()
            .and_then(|t| share.group_id(device, &GroupKey::Tag(t)).ok())?;
        if self.routes.len() >= GROUP_CACHE {
            self.routes.clear();
        }
        let route = Route {
            dev_id,
            thread_id,
            dev,
            share: share_id,
            device,
            group,
        };
        self.routes.push(route);
        Some(route)
    }
}

/// The replica's effect list, for a call that may fill it (see `Replica::fx`).
fn take_fx(cell: &Cell) -> Effects {
    cell.try_borrow_mut()
        .map(|mut r| std::mem::take(&mut r.fx))
        .unwrap_or_default()
}

/// Gives a drained effect list back to the replica for the next call (see
/// `Replica::fx`). The I/O path takes it only around engine calls, so a call nested in
/// another (a completion callback that submits again) normally finds it; one that does
/// not (a failure completed inside `run_effects`) starts an empty list, and the last
/// list given back is kept.
#[inline]
fn give_back(cell: &Cell, fx: Effects) {
    debug_assert!(fx.is_empty());
    if let Ok(mut r) = cell.try_borrow_mut() {
        r.fx = fx;
    }
}

fn send(thread: u64, env: Envelope) -> bool {
    shim::send_msg(thread, Box::new(env))
}

/// A replica's period report on its way out: its id, whether it has had its sync, and its
/// reports per share.
type Outgoing = (u64, bool, Vec<(String, CoreReport)>);

fn to_owner(msg: ToOwner) -> bool {
    send(shim::owner_thread(), Envelope::ToOwner(msg))
}

/// A replica for the calling thread (`thread`: its handle).
pub fn create(thread: u64) -> *mut c_void {
    let ticks = TICKS_PER_SEC.load(Ordering::Relaxed);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let cell: Box<Cell> = Box::new(RefCell::new(Replica {
        id,
        thread,
        engine: Engine::new(ticks),
        devs: BTreeMap::new(),
        dev_table: DeviceTable::default(),
        routes: Vec::new(),
        fx: Effects::default(),
        parked: Parking::default(),
        park_bases: Vec::new(),
        at_base: 0,
        armed: false,
        draining: false,
        again: false,
        synced: false,
        leaving: false,
        left: false,
        last_exchange_ticks: 0,
        exchange_ticks: (ticks / 1_000_000 * EXCHANGE_PERIOD_US).max(1),
        lanes: Vec::new(),
        lane_reqs: Vec::new(),
        unanswered_resets: Vec::new(),
        lane_idx: Vec::new(),
        poll_ids: Vec::new(),
    }));
    let p = Box::into_raw(cell);
    if let Ok(mut r) = REGISTRY.lock() {
        r.insert(id, p as usize);
    }
    to_owner(ToOwner::Hello { id, thread });
    p.cast()
}

/// The replica behind a pointer the shim holds.
fn cell<'a>(rs: *mut c_void) -> Option<&'a Cell> {
    // SAFETY: `rs` comes from `create` and is freed only by `destroy`, on this same
    // thread, after which the shim no longer passes it.
    (!rs.is_null()).then(|| unsafe { &*rs.cast::<Cell>() })
}

/// The thread's last ioband channel is gone.
pub fn leave(rs: *mut c_void) {
    let Some(cell) = cell(rs) else { return };
    settle_lanes_now(cell);
    let Ok(mut r) = cell.try_borrow_mut() else {
        return;
    };
    r.leaving = true;
    let id = r.id;
    let reports = r.engine.span_reports(shim::pass_ticks());
    drop(r);
    if !to_owner(ToOwner::Bye { id, reports }) {
        // No message: the owner cannot be told; do not keep the thread waiting.
        if let Ok(mut r) = cell.try_borrow_mut() {
            r.left = true;
        }
    }
}

/// Whether the owner acknowledged the leave.
pub fn left(rs: *mut c_void) -> bool {
    cell(rs).is_some_and(|c| c.try_borrow().is_ok_and(|r| r.left))
}

/// Frees the replica. What it still holds (nothing, normally: its thread's channels are
/// gone, so its I/O completed) is failed.
pub fn destroy(rs: *mut c_void) {
    if rs.is_null() {
        return;
    }
    // SAFETY: from Box::into_raw in `create`; the shim calls this once, last.
    let cell = unsafe { Box::from_raw(rs.cast::<Cell>()) };
    let mut r = cell.into_inner();
    if let Ok(mut reg) = REGISTRY.lock() {
        reg.remove(&r.id);
    }
    for l in r.lanes.drain(..) {
        // SAFETY: from Box::into_raw in `lane_new`, no longer listed; the shim's channels
        // are gone (their lanes were freed with them, normally: this is the rest).
        drop(unsafe { Box::from_raw(l.lane.as_ptr()) });
    }
    for io in r.engine.mirror(&[]) {
        shim::complete(io, ffi::STATUS_ABORTED);
    }
    r.parked
        .drain_all(|io| shim::complete(io, ffi::STATUS_ABORTED));
}

/// An I/O submitted on the replica's thread at its pass tick `now`: 0 (ours now), 1 (not
/// here: the owner takes it), or a negative errno.
pub fn submit(
    rs: *mut c_void,
    dev_id: u64,
    io: *mut c_void,
    kind: c_int,
    bytes: u64,
    thread_id: u64,
    now: u64,
) -> c_int {
    let (Some(cell), Some(io)) = (cell(rs), IoHandle::new(io)) else {
        return -22;
    };
    if kind == ffi::IO_RESET {
        return 1;
    }
    // The lane could not take it: the share is made current first (and the lanes close).
    settle_lanes_now(cell);
    let fx = {
        let Ok(mut r) = cell.try_borrow_mut() else {
            // Re-entered (a completion's callback submitting inside our own call): the
            // owner takes it rather than waiting.
            return 1;
        };
        let Some(route) = r.route(dev_id, thread_id) else {
            return 1;
        };
        let mut fx = std::mem::take(&mut r.fx);
        let Some(share) = r.engine.share_by_id_mut(route.share) else {
            r.fx = fx;
            return 1;
        };
        let op = io::op_of(kind);
        io::stamp(&io, route.dev);
        let admit = share.submit(
            route.device,
            route.group,
            io,
            op,
            bytes,
            now,
            &mut io::sink(&mut fx, route.share),
        );
        if let Admit::NoDevice(_) = admit {
            r.fx = fx;
            return 1;
        }
        // The common case, dispatched at once with nothing parked: no effect run.
        let alone = fx.complete.is_empty() && fx.dispatch.len() == 1;
        let first = (alone && !r.draining && r.parked.is_empty())
            .then(|| fx.dispatch.pop())
            .flatten();
        (fx, first)
    };
    let (fx, first) = fx;
    let Some(io) = first else {
        run_effects(cell, fx, None);
        return 0;
    };
    let rc = shim::dispatch(&io);
    if rc == 0 {
        if let Ok(mut r) = cell.try_borrow_mut() {
            r.at_base += 1;
            r.fx = fx;
        }
    } else {
        run_effects(cell, fx, Some((io, rc)));
    }
    0
}

/// The base completed an I/O the replica dispatched (`now`: the pass tick).
pub fn done(rs: *mut c_void, io: *mut c_void, now: u64) {
    let (Some(cell), Some(io)) = (cell(rs), IoHandle::new(io)) else {
        return;
    };
    // No settle of the lanes first: a completion decides nothing while a lane is open (see
    // the engine's lane module), and with the lanes closed they have nothing unsettled.
    let ticket = io::ticket(&io);
    if let Ok(mut r) = cell.try_borrow_mut() {
        r.at_base = r.at_base.saturating_sub(1);
    }
    // The submitter first, the ticket after (the engine's contract, as on the owner).
    // The effect list is taken after: the submitter's callback may submit again.
    shim::complete(io, ffi::STATUS_BASE);
    let mut fx = take_fx(cell);
    if let Some((share, ticket)) = ticket {
        return_ticket(cell, &mut fx, share, ticket, now);
    }
    run_effects(cell, fx, None);
}

fn return_ticket(
    cell: &Cell,
    fx: &mut Effects,
    share: ShareId,
    ticket: bdev_ioband_engine::Ticket,
    now: u64,
) {
    let Ok(mut r) = cell.try_borrow_mut() else {
        return;
    };
    let Replica { engine, lanes, .. } = &mut *r;
    let Some(s) = engine.share_by_id_mut(share) else {
        return;
    };
    s.complete(ticket, now, &mut io::sink(fx, share));
    // The slot it leaves goes to its group's lane, if that is open (see `lane_grow`).
    if !s.lanes_are_open() {
        return;
    }
    let group = ticket.group();
    if let Some(slot) = lanes.iter().find(|l| {
        l.route
            .is_some_and(|r| r.share == share && r.group == group)
    }) {
        let l = slot.get();
        if l.open != 0 {
            l.slot_limit += u64::from(s.lane_grow(group));
        }
    }
}

/// Completes and submits what a call left to do, with the replica released; the list
/// goes back to the replica at the end. `first`: an I/O already offered to the base, with
/// what the base answered (not 0), to settle before the rest.
fn run_effects(cell: &Cell, mut fx: Effects, mut first: Option<(IoHandle, c_int)>) {
    if first.is_none() && fx.is_empty() {
        give_back(cell, fx);
        return;
    }
    loop {
        for (io, status) in fx.complete.drain(..) {
            shim::complete(io, status);
        }
        let mut failed = Vec::new();
        let mut bounced = Vec::new();
        let mut sort = |result| match result {
            Ok(None) => {}
            Ok(Some(io)) => bounced.push(io),
            Err(io) => failed.push(io),
        };
        if let Some((io, rc)) = first.take() {
            sort(settle(cell, io, rc));
        }
        for io in fx.dispatch.drain(..) {
            sort(submit_or_park(cell, io));
        }
        if !bounced.is_empty() {
            bounce(cell, &mut fx, bounced);
        }
        if failed.is_empty() && fx.is_empty() {
            give_back(cell, fx);
            return;
        }
        fail_dispatched(cell, &mut fx, failed);
    }
}

/// Fails I/O the base refused: each completes FAILED (through `fx`) and its ticket goes
/// back to the share that issued it.
fn fail_dispatched(cell: &Cell, fx: &mut Effects, failed: Vec<IoHandle>) {
    let now = shim::pass_ticks();
    for io in failed {
        let ticket = io::ticket(&io);
        fx.complete.push((io, ffi::STATUS_FAILED));
        if let Some((share, ticket)) = ticket {
            return_ticket(cell, fx, share, ticket, now);
        }
    }
}

/// Submits a released I/O to its base on this thread, or parks it behind earlier ones.
/// `Ok(Some(io))`: out of bdev_ios with nothing of ours at the base, the owner must take
/// it (see [`bounce`]); `Err`: the base refused it.
fn submit_or_park(cell: &Cell, io: IoHandle) -> Result<Option<IoHandle>, IoHandle> {
    let busy = cell.try_borrow().map_or(true, |r| {
        r.draining || (!r.parked.is_empty() && r.parked.must_wait(r.base_of(&io)))
    });
    if busy {
        park(cell, io, false);
        return Ok(None);
    }
    let rc = shim::dispatch(&io);
    settle(cell, io, rc)
}

/// What becomes of an I/O the base answered `rc` to (see [`submit_or_park`]).
fn settle(cell: &Cell, io: IoHandle, rc: c_int) -> Result<Option<IoHandle>, IoHandle> {
    match rc {
        0 => {
            if let Ok(mut r) = cell.try_borrow_mut() {
                r.at_base += 1;
            }
            Ok(None)
        }
        ffi::DISPATCH_NOMEM => {
            let idle = cell.try_borrow().is_ok_and(|r| r.nothing_at_base());
            if idle {
                return Ok(Some(io));
            }
            park(cell, io, false);
            arm(cell);
            Ok(None)
        }
        _ => Err(io),
    }
}

/// Out of bdev_ios with nothing of ours at the base: on this thread no bdev_io of ours
/// will be freed, and the thread's cache is shared with the submitters, who may hold every
/// bdev_io of the pool queued here. The owner's thread allocates only for the base, so its
/// cache keeps some: each I/O (with what is parked) returns its ticket here and goes to
/// the owner, which schedules it again.
fn bounce(cell: &Cell, fx: &mut Effects, mut ios: Vec<IoHandle>) {
    if let Ok(mut r) = cell.try_borrow_mut() {
        r.parked.drain_all(|io| ios.push(io));
    }
    let now = shim::pass_ticks();
    for io in ios {
        if let Some((share, ticket)) = io::ticket(&io) {
            return_ticket(cell, fx, share, ticket, now);
        }
        io::clear_area(&io);
        shim::to_owner(io);
    }
}

fn park(cell: &Cell, io: IoHandle, front: bool) {
    if let Ok(mut r) = cell.try_borrow_mut() {
        let base = r.base_of(&io);
        if front {
            r.parked.park_front(base, io);
        } else {
            r.parked.park_back(base, io);
        }
    } else {
        // Cannot happen (no borrow is held across a shim call); fail it rather than lose it.
        shim::complete(io, ffi::STATUS_FAILED);
    }
}

/// A replica does not arm io_wait: SPDK's wait entries fire when a `spdk_bdev_io` is freed
/// on the waiting thread, and a replica's thread may have nothing in flight at the base
/// to free (the pool is shared by every thread). Its poller retries the parked I/O
/// instead, every pass, until the base takes them.
fn arm(_cell: &Cell) {}

/// The wait entry fired: submit parked I/O again.
pub fn io_wait_done(rs: *mut c_void) {
    let Some(cell) = cell(rs) else { return };
    if let Ok(mut r) = cell.try_borrow_mut() {
        r.armed = false;
    }
    resume(cell);
}

fn resume(cell: &Cell) {
    {
        let Ok(mut r) = cell.try_borrow_mut() else {
            return;
        };
        if r.armed {
            return;
        }
        if r.draining {
            r.again = true;
            return;
        }
        r.draining = true;
    }
    let mut failed = Vec::new();
    let mut bounced = Vec::new();
    // The bases to retry, each from its head until it is empty or out of bdev_ios again
    // (a base's ENOMEM does not hold back another's).
    let mut bases = cell
        .try_borrow_mut()
        .map(|mut r| std::mem::take(&mut r.park_bases))
        .unwrap_or_default();
    loop {
        bases.clear();
        if let Ok(mut r) = cell.try_borrow_mut() {
            r.again = false;
            bases.extend_from_slice(r.parked.waiting());
        }
        for &base in &bases {
            loop {
                let next = cell
                    .try_borrow_mut()
                    .ok()
                    .and_then(|mut r| r.parked.pop_front(base));
                let Some(io) = next else { break };
                match shim::dispatch(&io) {
                    0 => {
                        if let Ok(mut r) = cell.try_borrow_mut() {
                            r.at_base += 1;
                        }
                    }
                    ffi::DISPATCH_NOMEM => {
                        let idle = cell.try_borrow().is_ok_and(|r| r.nothing_at_base());
                        if idle {
                            bounced.push(io);
                        } else {
                            park(cell, io, true);
                            arm(cell);
                        }
                        break;
                    }
                    _ => failed.push(io),
                }
            }
        }
        let (again, armed) = cell
            .try_borrow()
            .map_or((false, true), |r| (r.again, r.armed));
        if !again || armed {
            break;
        }
    }
    if let Ok(mut r) = cell.try_borrow_mut() {
        r.draining = false;
        r.park_bases = bases;
    }
    if failed.is_empty() && bounced.is_empty() {
        return;
    }
    let mut fx = take_fx(cell);
    if !bounced.is_empty() {
        bounce(cell, &mut fx, bounced);
    }
    fail_dispatched(cell, &mut fx, failed);
    run_effects(cell, fx, None);
}

/// The thread's poller: parked I/O, timed queues, the period's report.
pub fn poll(rs: *mut c_void) -> bool {
    let Some(cell) = cell(rs) else { return false };
    settle_lanes_now(cell);
    answer_resets(cell);
    let resumed = cell
        .try_borrow()
        .is_ok_and(|r| !r.parked.is_empty() && !r.armed);
    if resumed {
        resume(cell);
    }
    let now = shim::pass_ticks();
    let mut fx = take_fx(cell);
    let mut report: Option<Outgoing> = None;
    if let Ok(mut r) = cell.try_borrow_mut() {
        let mut ids = std::mem::take(&mut r.poll_ids);
        ids.clear();
        ids.extend(r.engine.share_ids());
        for &id in &ids {
            if let Some(share) = r.engine.share_by_id_mut(id) {
                share.poll(now, &mut io::sink(&mut fx, id));
            }
        }
        r.poll_ids = ids;
        if !r.leaving && now.wrapping_sub(r.last_exchange_ticks) >= r.exchange_ticks {
            r.last_exchange_ticks = now;
            let reports = r.engine.span_reports(now);
            report = Some((r.id, r.synced, reports));
        }
    }
    let busy = resumed || !fx.is_empty();
    run_effects(cell, fx, None);
    if let Some((id, synced, reports)) = report {
        if !synced {
            // The hello may have been lost (no message buffer): say it again.
            let thread = cell.try_borrow().map_or(0, |r| r.thread);
            to_owner(ToOwner::Hello { id, thread });
        } else if !reports.is_empty() {
            to_owner(ToOwner::Report { id, reports });
        }
    }
    if let Ok(mut r) = cell.try_borrow_mut() {
        open_lanes(&mut r);
    }
    busy
}

/// Sends the answers of the resets drained here (again, for those that found no message
/// buffer before).
fn answer_resets(cell: &Cell) {
    let Ok(mut r) = cell.try_borrow_mut() else {
        return;
    };
    if r.unanswered_resets.is_empty() {
        return;
    }
    let id = r.id;
    r.unanswered_resets
        .retain(|&reset| !to_owner(ToOwner::Drained { id, reset }));
}

/// A message arrived (on its target thread).
pub fn on_msg(arg: *mut c_void) {
    if arg.is_null() {
        return;
    }
    // SAFETY: every message is a boxed Envelope from `send`, delivered once.
    let env = unsafe { Box::from_raw(arg.cast::<Envelope>()) };
    match *env {
        Envelope::ToOwner(msg) => {
            let mut fx = Effects::take();
            with_state(|st| owner_msg(st, &mut fx, msg));
            io::run_effects(fx);
        }
        Envelope::ToReplica { id, msg } => {
            let p = REGISTRY.lock().ok().and_then(|r| r.get(&id).copied());
            // Freed only on its own thread, where this runs: a registered replica is live.
            if let Some(cell) = p.and_then(|p| cell(p as *mut c_void)) {
                replica_msg(cell, msg);
            }
        }
    }
}

fn replica_msg(cell: &Cell, msg: ToReplica) {
    // A grant or a sync changes what the lanes were granted under: settle and close them.
    settle_lanes_now(cell);
    let mut fx = take_fx(cell);
    {
        let Ok(mut r) = cell.try_borrow_mut() else {
            return;
        };
        match msg {
            ToReplica::ByeAck => r.left = true,
            _ if r.leaving => {}
            ToReplica::Sync {
                layouts,
                devs,
                cores,
            } => {
                r.synced = true;
                r.routes.clear();
                for io in r.engine.mirror(&layouts) {
                    fx.complete.push((io, ffi::STATUS_ABORTED));
                }
                r.engine.span_cores(cores.max(1));
                let mut map = BTreeMap::new();
                for d in &devs {
                    if let Ok((share, device)) = r.engine.device_handle(&d.name) {
                        map.insert(d.id, (share, device, d.handle));
                        r.dev_table.insert_at(d.handle, share, device, d.base, ());
                    }
                }
                r.devs = map;
                // Devices not listed went: forgotten once nothing of theirs is parked.
                let live: BTreeSet<DevHandle> = devs.iter().map(|d| d.handle).collect();
                let gone: Vec<DevHandle> = r
                    .dev_table
                    .iter()
                    .map(|(h, _)| h)
                    .filter(|h| !live.contains(h))
                    .collect();
                for h in gone {
                    r.dev_table.mark_deleted(h);
                }
                let Replica {
                    dev_table, parked, ..
                } = &mut *r;
                dev_table.reap(|h| parked.any(|io| io::ticket_dev(io) == h));
            }
            ToReplica::Grants(grants) => {
                let now = shim::pass_ticks();
                for (name, grant) in grants {
                    let Ok(id) = r.engine.share_id(&name) else {
                        continue;
                    };
                    // Not for the incarnation mirrored here (created again, not synced).
                    if r.engine.incarnation_of(&name) != Some(grant.incarnation) {
                        continue;
                    }
                    if let Some(share) = r.engine.share_by_id_mut(id) {
                        share.apply_grant(&grant, now, &mut io::sink(&mut fx, id));
                    }
                }
            }
            ToReplica::Drain { device, reset } => {
                // What is at the base (or parked for it) was dispatched before the reset
                // and completes normally; what waits in the share is aborted, in order.
                for io in r.engine.drain_device(&device).unwrap_or_default() {
                    fx.complete.push((io, ffi::STATUS_ABORTED));
                }
                r.unanswered_resets.push(reset);
            }
        }
    }
    run_effects(cell, fx, None);
    // Answered once the aborted I/O have completed: the reset goes to the base after them.
    answer_resets(cell);
    // Open again under what the message changed, not a pass later.
    if let Ok(mut r) = cell.try_borrow_mut() {
        open_lanes(&mut r);
    }
}

// ----- lanes ---------------------------------------------------------------------------

/// A lane for a new channel of device `dev_id` on the replica's thread (closed until the
/// next pass opens it). Null: no replica.
pub fn lane_new(rs: *mut c_void, dev_id: u64, thread_id: u64) -> *mut ffi::Lane {
    let Some(cell) = cell(rs) else {
        return std::ptr::null_mut();
    };
    let Ok(mut r) = cell.try_borrow_mut() else {
        return std::ptr::null_mut();
    };
    let lane = Box::new(ffi::Lane::cleared());
    let p = NonNull::from(Box::leak(lane));
    r.lanes.push(LaneSlot {
        lane: p,
        dev_id,
        thread_id,
        route: None,
    });
    p.as_ptr()
}

/// A channel goes: its lane's counts are settled, and it is freed.
pub fn lane_free(rs: *mut c_void, lane: *mut ffi::Lane) {
    let Some(cell) = cell(rs) else { return };
    settle_lanes_now(cell);
    let Ok(mut r) = cell.try_borrow_mut() else {
        return;
    };
    let Some(i) = r.lanes.iter().position(|l| l.lane.as_ptr() == lane) else {
        return;
    };
    let l = r.lanes.swap_remove(i);
    // SAFETY: from Box::into_raw (leak) in `lane_new`, no longer listed; the shim does not
    // use it after this call.
    drop(unsafe { Box::from_raw(l.lane.as_ptr()) });
}

/// A lane's I/O completed while its lane was closed: settle now.
pub fn lane_settle(rs: *mut c_void) {
    if let Some(cell) = cell(rs) {
        settle_lanes_now(cell);
    }
}

/// Settles and closes every lane, then runs what that released.
fn settle_lanes_now(cell: &Cell) {
    let busy = cell
        .try_borrow()
        .is_ok_and(|r| r.lanes.iter().any(|l| lane_busy(l.get())));
    if !busy {
        return;
    }
    let mut fx = take_fx(cell);
    if let Ok(mut r) = cell.try_borrow_mut() {
        let now = shim::pass_ticks();
        settle_lanes(&mut r, &mut fx, now);
    }
    run_effects(cell, fx, None);
}

/// Whether a lane is open or has counts to settle.
#[inline]
fn lane_busy(l: &ffi::Lane) -> bool {
    l.open != 0 || (l.read_ios | l.write_ios | l.completed) != 0
}

/// Hands every lane's counts to its share and closes the lanes (see the module doc).
fn settle_lanes(r: &mut Replica, fx: &mut Effects, now: u64) {
    let Replica { lanes, engine, .. } = r;
    for slot in lanes.iter() {
        let l = slot.get();
        if !lane_busy(l) {
            continue;
        }
        l.open = 0;
        let counts = LaneCounts {
            read_ios: l.read_ios,
            read_bytes: l.read_bytes,
            write_ios: l.write_ios,
            write_bytes: l.write_bytes,
            cost: l.cost,
            last_cost: l.last_cost,
            completed: l.completed,
            completed_cost: l.completed_cost,
            completed_bytes: l.completed_bytes,
            latency_sum_ticks: l.latency_sum,
            latency_min_ticks: l.latency_min,
            latency_min_drained_ticks: l.latency_min_drained,
            first_tick: if l.first_tick == u64::MAX {
                0
            } else {
                l.first_tick
            },
            last_tick: l.last_tick,
        };
        *l = ffi::Lane {
            sectors: l.sectors,
            at_base: l.at_base,
            ..ffi::Lane::cleared()
        };
        let Some(route) = slot.route else { continue };
        if let Some(share) = engine.share_by_id_mut(route.share) {
            share.lane_settle(
                route.device,
                route.group,
                &counts,
                now,
                &mut io::sink(fx, route.share),
            );
        }
    }
}

/// Opens the lanes the shares grant (end of the poller's pass, every lane settled).
fn open_lanes(r: &mut Replica) {
    if !r.synced || r.leaving || r.draining || !r.parked.is_empty() || r.lanes.is_empty() {
        return;
    }
    // Routes: found again for lanes with nothing at the base (a sync may have moved them).
    for i in 0..r.lanes.len() {
        if r.lanes[i].get().at_base == 0 {
            let (dev_id, thread_id) = (r.lanes[i].dev_id, r.lanes[i].thread_id);
            r.lanes[i].route = r.route(dev_id, thread_id);
        }
    }
    let Replica {
        lanes,
        engine,
        lane_reqs,
        lane_idx,
        ..
    } = r;
    // One call per share (at its first lane): a lane's grant depends on the share's other
    // lanes. No allocation: a thread has a few lanes.
    for first in 0..lanes.len() {
        let Some(share_id) = lanes[first].route.map(|r| r.share) else {
            continue;
        };
        if lanes[..first]
            .iter()
            .any(|l| l.route.is_some_and(|r| r.share == share_id))
        {
            continue;
        }
        let Some(share) = engine.share_by_id_mut(share_id) else {
            continue;
        };
        lane_reqs.clear();
        lane_idx.clear();
        for (i, l) in lanes.iter().enumerate() {
            if let Some(route) = l.route.filter(|r| r.share == share_id) {
                lane_reqs.push(LaneRequest::new(route.device, route.group));
                lane_idx.push(i);
            }
        }
        share.lanes_open(lane_reqs);
        let reserved: u64 = lane_reqs.iter().map(|q| u64::from(q.grant.slots)).sum();
        let actual = u64::from(share.in_flight()).saturating_sub(reserved);
        let sectors = u32::from(share.policy() != Policy::Weight);
        for (&i, q) in lane_idx.iter().zip(lane_reqs.iter()) {
            let l = lanes[i].get();
            l.sectors = sectors;
            if q.grant.slots == 0 {
                continue;
            }
            l.slot_limit = l.at_base + u64::from(q.grant.slots);
            l.cost_budget = q.grant.cost_budget;
            l.others = actual.saturating_sub(l.at_base);
            l.open = 1;
        }
    }
}

// ----- the owner's side --------------------------------------------------------------

/// What the owner keeps of the replicas.
#[derive(Debug, Default)]
pub struct OwnerSpan {
    /// Replica id → (thread handle, core index in the hubs; the owner is core 0).
    replicas: BTreeMap<u64, (u64, usize)>,
    /// Replicas that have the latest sync.
    synced: BTreeSet<u64>,
    hubs: BTreeMap<String, Hub>,
    /// What was last sent as a sync.
    last_layouts: Vec<(String, u64, ShareLayout)>,
    last_devs: Vec<SyncDev>,
    last_exchange_ticks: u64,
    /// Per share, per slot: the counters of replicas that left (generation, counters).
    departed: BTreeMap<String, Vec<(u32, GroupStats)>>,
    /// Resets waiting for replicas to drain their queues for the device (see
    /// [`start_reset`]), and the next reset's number.
    resets: Vec<PendingReset>,
    next_reset: u64,
}

#[cfg(test)]
impl OwnerSpan {
    /// The replicas' core indices, and how many cores share `name`'s hub counts.
    pub(crate) fn cores(&self, name: &str) -> (Vec<usize>, Option<usize>) {
        let cores = self.replicas.values().map(|&(_, c)| c).collect();
        (cores, self.hubs.get(name).map(Hub::cores))
    }
}

/// A reset the owner holds until the replicas it asked have drained the device.
#[derive(Debug)]
struct PendingReset {
    id: u64,
    io: IoHandle,
    /// Replicas that have not answered yet.
    waiting: BTreeSet<u64>,
}

/// A reset of device `device` on the owner, its own queue already aborted: every replica is
/// asked to abort what its share queues for the device (SPDK's own QoS aborts its queues on
/// every channel at a reset), and the reset goes to the base once all have answered, or at
/// once when there is none to ask. A replica that leaves meanwhile counts as answered (it
/// has no channel, so nothing queued); one the message cannot reach is not waited for.
pub fn start_reset(st: &mut State, fx: &mut Effects, io: IoHandle, device: &str) {
    let span = &mut st.span;
    let id = span.next_reset;
    span.next_reset += 1;
    let mut waiting = BTreeSet::new();
    for (&rid, &(thread, _)) in &span.replicas {
        let msg = ToReplica::Drain {
            device: device.to_owned(),
            reset: id,
        };
        if send(thread, Envelope::ToReplica { id: rid, msg }) {
            waiting.insert(rid);
        }
    }
    if waiting.is_empty() {
        fx.dispatch.push(io);
    } else {
        span.resets.push(PendingReset { id, io, waiting });
    }
}

/// Replica `replica` has answered reset `reset` (`None`: every reset, it left): the resets
/// nobody else holds go to their bases.
fn reset_answered(span: &mut OwnerSpan, fx: &mut Effects, replica: u64, reset: Option<u64>) {
    for p in &mut span.resets {
        if reset.map_or(true, |r| r == p.id) {
            p.waiting.remove(&replica);
        }
    }
    let (ready, held): (Vec<PendingReset>, Vec<PendingReset>) = std::mem::take(&mut span.resets)
        .into_iter()
        .partition(|p| p.waiting.is_empty());
    span.resets = held;
    fx.dispatch.extend(ready.into_iter().map(|p| p.io));
}

fn owner_msg(st: &mut State, fx: &mut Effects, msg: ToOwner) {
    let now = shim::pass_ticks();
    let span = &mut st.span;
    match msg {
        ToOwner::Hello { id, thread } => {
            // A replica says hello again until its sync arrives: it keeps its core (a new
            // one each time would leave the hubs a core that never reports).
            let core = match span.replicas.get(&id) {
                Some(&(_, core)) => core,
                None => {
                    let used: BTreeSet<usize> = span.replicas.values().map(|&(_, c)| c).collect();
                    (1..).find(|c| !used.contains(c)).unwrap_or(1)
                }
            };
            span.replicas.insert(id, (thread, core));
            span.synced.remove(&id);
            io::note_replicas(true);
            for hub in span.hubs.values_mut() {
                hub.ensure_cores(core + 1);
                hub.clear_core(core);
            }
        }
        ToOwner::Bye { id, reports } => {
            for (name, report) in reports {
                // Only the counters of the share the hub serves (not of one deleted since).
                let current = span
                    .hubs
                    .get(&name)
                    .is_some_and(|h| h.incarnation() == report.incarnation);
                if !current {
                    continue;
                }
                let slots = span.departed.entry(name).or_default();
                for (slot, g) in report.groups.iter().enumerate() {
                    if !g.present {
                        continue;
                    }
                    if slots.len() <= slot {
                        slots.resize(slot + 1, (u32::MAX, GroupStats::default()));
                    }
                    let kept = &mut slots[slot];
                    if kept.0 != g.generation {
                        *kept = (g.generation, GroupStats::default());
                    }
                    // Counters only: what it had queued or in flight is not there any more.
                    let counters = GroupStats {
                        queue_depth: 0,
                        in_flight: 0,
                        ..g.stats
                    };
                    kept.1.accumulate(&counters);
                }
            }
            reset_answered(span, fx, id, None);
            if let Some((thread, core)) = span.replicas.remove(&id) {
                io::note_replicas(!span.replicas.is_empty());
                span.synced.remove(&id);
                for hub in span.hubs.values_mut() {
                    hub.clear_core(core);
                }
                send(
                    thread,
                    Envelope::ToReplica {
                        id,
                        msg: ToReplica::ByeAck,
                    },
                );
            }
        }
        ToOwner::Drained { id, reset } => reset_answered(span, fx, id, Some(reset)),
        ToOwner::Report { id, reports } => {
            let Some(&(_, core)) = span.replicas.get(&id) else {
                return;
            };
            io::note_replicas(true);
            for (name, mut report) in reports {
                if let Some(hub) = span.hubs.get_mut(&name) {
                    hub.receive(core, &mut report, now);
                }
            }
        }
    }
}

/// The owner's period (from its poller): syncs the replicas after a change, feeds its own
/// reports to the hubs, applies its grants and sends the replicas theirs.
///
/// Neither the owner's reports nor the replicas' say how much is parked
/// (`CoreReport::parked` stays `None`, so the hubs learn no base depth): here a dispatch
/// refused with ENOMEM means SPDK's pool of `spdk_bdev_io` ran dry, which says nothing of
/// the base's depth (a base whose queue is full queues or retries inside SPDK's bdev
/// layer, and never refuses the submission).
pub fn owner_tick(st: &mut State, fx: &mut Effects, now: u64) {
    if st.span.replicas.is_empty() && st.span.hubs.is_empty() {
        return;
    }
    let ticks = TICKS_PER_SEC.load(Ordering::Relaxed);
    let period = (ticks / 1_000_000 * EXCHANGE_PERIOD_US).max(1);
    if now.wrapping_sub(st.span.last_exchange_ticks) < period {
        return;
    }
    st.span.last_exchange_ticks = now;
    let cores = st
        .span
        .replicas
        .values()
        .map(|&(_, c)| c + 1)
        .max()
        .unwrap_or(1);
    // The layouts and live devices; a sync to every replica when they changed, and to
    // the ones that have not had the latest.
    st.engine
        .span_cores(u32::try_from(cores).unwrap_or(u32::MAX));
    let ids: Vec<ShareId> = st.engine.share_ids().collect();
    let mut layouts = Vec::with_capacity(ids.len());
    for &id in &ids {
        if let Some(share) = st.engine.share_by_id_mut(id) {
            layouts.push((share.name().to_owned(), id.incarnation(), share.layout()));
        }
    }
    let devs: Vec<SyncDev> = st
        .devs
        .iter()
        .filter(|(_, d)| !d.deleted && d.node.is_some())
        .map(|(&id, d)| SyncDev {
            id,
            name: d.name.clone(),
            handle: d.handle,
            base: d.base_idx,
        })
        .collect();
    if layouts != st.span.last_layouts || devs != st.span.last_devs {
        st.span.synced.clear();
        st.span.last_layouts = layouts;
        st.span.last_devs = devs;
    }
    let span = &mut st.span;
    let unsynced: Vec<(u64, u64)> = span
        .replicas
        .iter()
        .filter(|(id, _)| !span.synced.contains(id))
        .map(|(&id, &(thread, _))| (id, thread))
        .collect();
    for (id, thread) in unsynced {
        let msg = ToReplica::Sync {
            layouts: span.last_layouts.clone(),
            devs: span.last_devs.clone(),
            cores: u32::try_from(cores).unwrap_or(u32::MAX),
        };
        if send(thread, Envelope::ToReplica { id, msg }) {
            span.synced.insert(id);
        }
    }
    // Hubs follow the shares.
    let names: BTreeSet<String> = span
        .last_layouts
        .iter()
        .map(|(n, _, _)| n.clone())
        .collect();
    span.hubs.retain(|n, _| names.contains(n));
    span.departed.retain(|n, _| names.contains(n));
    for (name, incarnation, layout) in &span.last_layouts {
        match span.hubs.get_mut(name) {
            Some(hub) if hub.incarnation() == *incarnation => {
                let _ = hub.set_params(layout.params);
                hub.ensure_cores(cores);
            }
            // New, or deleted and created again under its name: a new hub and no
            // departed counters, so that nothing of the old share outlives it.
            _ => {
                span.hubs.remove(name);
                span.departed.remove(name);
                if let Ok(hub) = Hub::new(cores, layout.params, ticks, *incarnation) {
                    span.hubs.insert(name.clone(), hub);
                }
            }
        }
    }
    // The owner's own reports, its counters from the others, its grants.
    let mut out: BTreeMap<usize, Vec<(String, Grant)>> = BTreeMap::new();
    for &id in &ids {
        let Some(name) = st.engine.share_by_id(id).map(|s| s.name().to_owned()) else {
            continue;
        };
        let Some(hub) = st
            .span
            .hubs
            .get_mut(&name)
            .filter(|h| h.incarnation() == id.incarnation())
        else {
            continue;
        };
        let Some(mut report) = st.engine.span_report(id, now) else {
            continue;
        };
        hub.receive(0, &mut report, now);
        let Some(share) = st.engine.share_by_id_mut(id) else {
            continue;
        };
        // The replicas' counters, those that left included, for the owner's readers.
        let departed = st.span.departed.get(&name);
        for (slot, generation, mut sum) in hub.remote_stats(0) {
            if let Some((kept_gen, kept)) = departed.and_then(|d| d.get(slot as usize)) {
                if *kept_gen == generation {
                    sum.accumulate(kept);
                }
            }
            share.set_remote_stats(slot, generation, sum);
        }
        let mut grants = vec![Grant::default(); hub.cores()];
        hub.grant(now, &mut grants);
        share.apply_grant(&grants[0], now, &mut io::sink(fx, id));
        for (c, g) in grants.into_iter().enumerate().skip(1) {
            out.entry(c).or_default().push((name.clone(), g));
        }
    }
    let by_core: BTreeMap<usize, (u64, u64)> = st
        .span
        .replicas
        .iter()
        .filter(|(id, _)| st.span.synced.contains(id))
        .map(|(&id, &(thread, core))| (core, (id, thread)))
        .collect();
    for (core, grants) in out {
        if let Some(&(id, thread)) = by_core.get(&core) {
            send(
                thread,
                Envelope::ToReplica {
                    id,
                    msg: ToReplica::Grants(grants),
                },
            );
        }
    }
}
