//! The per-reactor state behind the free functions of [`crate::reactor`]: pollers, I/O
//! endpoints and the "current reactor" of the calling thread.
//!
//! Owned by the reactor's thread (an `Rc` in a thread-local while it is polled); nothing in
//! here is `Send`.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use super::{Msg, ReactorError, Shared};
use crate::bdev::{BdevIo, IoCallback};

thread_local! {
    static CURRENT: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
    /// The current reactor's pass tick, mirrored here so that [`pass_ticks`] (twice per
    /// ioband I/O) reads one cell instead of borrowing [`CURRENT`].
    static PASS_TICKS: Cell<u64> = const { Cell::new(0) };
}

/// An I/O endpoint on one reactor: its slot and the slot's generation, so that an I/O
/// addressed to an endpoint that was unregistered never reaches the one that re-used its
/// slot (it is dropped, as for any endpoint that is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl EndpointId {
    /// No endpoint (never registered: every lookup misses).
    pub const NONE: EndpointId = EndpointId {
        index: u32::MAX,
        generation: 0,
    };
}

/// A slot of the endpoint table.
#[derive(Default)]
struct EndpointSlot {
    generation: u32,
    cb: Option<IoCallback>,
}

/// The callback of `endpoint` in `table`, if it is still the one registered there.
fn lookup(table: &[EndpointSlot], endpoint: EndpointId) -> Option<IoCallback> {
    table
        .get(endpoint.index as usize)
        .filter(|slot| slot.generation == endpoint.generation)
        .and_then(|slot| slot.cb.clone())
}

/// What a poller says about its pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollerStatus {
    /// It did work.
    Busy,
    /// It found nothing to do.
    Idle,
    /// Unregister it.
    Done,
}

/// Cancels a poller from outside it.
#[derive(Debug, Clone)]
pub struct PollerHandle {
    cancelled: Rc<Cell<bool>>,
}

impl PollerHandle {
    /// The poller will not run again.
    pub fn cancel(&self) {
        self.cancelled.set(true);
    }
}

type PollFn = Box<dyn FnMut(u64) -> PollerStatus>;

struct Poller {
    name: &'static str,
    period_ticks: u64,
    next_ticks: u64,
    cancelled: Rc<Cell<bool>>,
    poll: PollFn,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One reactor's thread-owned state.
pub(crate) struct Local {
    pub(crate) index: u32,
    pub(crate) shared: Arc<Shared>,
    pub(crate) task_tx: Sender<async_task::Runnable>,
    pollers: RefCell<Vec<Poller>>,
    new_pollers: RefCell<Vec<Poller>>,
    endpoints: RefCell<Vec<EndpointSlot>>,
    free_endpoints: RefCell<Vec<u32>>,
    overflow: RefCell<VecDeque<(u32, Msg)>>,
    /// The tick read at the start of the current pass (and again before the pollers).
    pub(crate) pass_ticks: Cell<u64>,
    /// What lives as long as this reactor ([`keep_alive`]).
    kept: RefCell<Vec<Rc<dyn Any>>>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Local {
    pub(crate) fn new(
        index: u32,
        shared: Arc<Shared>,
        task_tx: Sender<async_task::Runnable>,
    ) -> Local {
        Local {
            index,
            shared,
            task_tx,
            pollers: RefCell::new(Vec::new()),
            new_pollers: RefCell::new(Vec::new()),
            endpoints: RefCell::new(Vec::new()),
            free_endpoints: RefCell::new(Vec::new()),
            overflow: RefCell::new(VecDeque::new()),
            pass_ticks: Cell::new(0),
            kept: RefCell::new(Vec::new()),
        }
    }

    pub(crate) fn call_endpoint(&self, endpoint: EndpointId, io: Box<BdevIo>) {
        let cb = lookup(&self.endpoints.borrow(), endpoint);
        // An endpoint that is gone belongs to a channel that was released with I/O still
        // outstanding; the descriptor is dropped (the submitter broke the channel contract).
        if let Some(cb) = cb {
            cb(io);
        }
    }

    /// Reads the clock into the pass tick; returns it.
    pub(crate) fn refresh_ticks(&self) -> u64 {
        let now = self.shared.clock.now_ticks();
        self.pass_ticks.set(now);
        // Called only on the current reactor (at `enter`, and twice in each pass).
        PASS_TICKS.with(|t| t.set(now));
        now
    }

    /// Retries messages that found a full mailbox; returns how many went out.
    pub(crate) fn flush_overflow(&self) -> usize {
        let mut overflow = self.overflow.borrow_mut();
        if overflow.is_empty() {
            return 0;
        }
        let mut sent = 0;
        let mut blocked: u64 = 0;
        let mut keep = VecDeque::with_capacity(overflow.len());
        while let Some((core, msg)) = overflow.pop_front() {
            let bit = 1u64 << (core % 64);
            if blocked & bit != 0 {
                keep.push_back((core, msg));
                continue;
            }
            let Some(tx) = self.shared.mailboxes.get(core as usize) else {
                continue;
            };
            match tx.try_send(msg) {
                Ok(()) => sent += 1,
                Err(TrySendError::Full(msg)) => {
                    blocked |= bit;
                    keep.push_back((core, msg));
                }
                // A stopped reactor: its messages die with it.
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
        *overflow = keep;
        sent
    }

    /// Runs every due poller once; returns how many did work.
    pub(crate) fn run_pollers(&self) -> usize {
        let now = self.refresh_ticks();
        let mut pollers = std::mem::take(&mut *self.pollers.borrow_mut());
        pollers.append(&mut self.new_pollers.borrow_mut());
        let mut busy = 0;
        pollers.retain_mut(|p| {
            if p.cancelled.get() {
                return false;
            }
            if p.period_ticks > 0 {
                if now < p.next_ticks {
                    return true;
                }
                p.next_ticks = now.saturating_add(p.period_ticks);
            }
            match (p.poll)(now) {
                PollerStatus::Busy => {
                    busy += 1;
                    true
                }
                PollerStatus::Idle => true,
                PollerStatus::Done => false,
            }
        });
        pollers.append(&mut self.new_pollers.borrow_mut());
        let mut slot = self.pollers.borrow_mut();
        pollers.append(&mut slot);
        *slot = pollers;
        busy
    }
}

/// Makes a reactor current for a scope, restoring the previous one after.
pub(crate) struct CurrentGuard {
    previous: Option<Rc<Local>>,
}

impl CurrentGuard {
    pub(crate) fn set(local: Rc<Local>) -> CurrentGuard {
        PASS_TICKS.with(|t| t.set(local.pass_ticks.get()));
        let previous = CURRENT.with(|c| c.borrow_mut().replace(local));
        CurrentGuard { previous }
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let ticks = previous.as_ref().map_or(0, |l| l.pass_ticks.get());
        PASS_TICKS.with(|t| t.set(ticks));
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

pub(crate) fn with_current<R>(f: impl FnOnce(&Rc<Local>) -> R) -> Result<R, ReactorError> {
    let local = CURRENT
        .with(|c| c.borrow().clone())
        .ok_or(ReactorError::NotOnReactor)?;
    Ok(f(&local))
}

/// Index of the current reactor (0 = main).
pub fn current_core() -> Result<u32, ReactorError> {
    with_current(|l| l.index)
}

/// How many reactors the current reactor's set has.
pub fn core_count() -> Result<u32, ReactorError> {
    with_current(|l| u32::try_from(l.shared.lcores.len()).unwrap_or(u32::MAX))
}

/// The lcore id (bit of the core mask) of reactor `index`.
pub fn lcore_of(index: u32) -> Result<u32, ReactorError> {
    with_current(|l| l.shared.lcores.get(index as usize).copied())?
        .ok_or(ReactorError::NoSuchCore(index))
}

/// The current tick, from the current reactor's clock (0 off a reactor).
pub fn now_ticks() -> u64 {
    // Borrowed, not cloned: reading the clock cannot re-enter the reactor.
    CURRENT
        .with(|c| c.borrow().as_ref().map(|l| l.shared.clock.now_ticks()))
        .unwrap_or(0)
}

/// The tick of the current reactor's pass: read once when the pass (or an
/// [`enter`](super::Reactor::enter)) began, and again before its pollers ran. Costs no clock
/// read, so the I/O path uses it where "now, within a pass" is precise enough (the ioband
/// engine's accounting); 0 off a reactor.
#[inline]
pub fn pass_ticks() -> u64 {
    PASS_TICKS.with(Cell::get)
}

/// Keeps `value` alive as long as the current reactor: what a reactor owns that nothing
/// else holds strongly (a replica module, which the registry reaches by weak reference).
/// Dropped with the reactor, so a process (or a test) that builds reactors again and again
/// does not keep the old ones' objects.
pub fn keep_alive(value: Rc<dyn Any>) -> Result<(), ReactorError> {
    with_current(|l| l.kept.borrow_mut().push(value))
}

/// Asks every reactor of the current set to stop after its current pass.
pub fn request_stop() -> Result<(), ReactorError> {
    with_current(|l| l.shared.stop.store(true, Ordering::Release))
}

fn send(local: &Local, core: u32, msg: Msg) -> Result<(), ReactorError> {
    let tx = local
        .shared
        .mailboxes
        .get(core as usize)
        .ok_or(ReactorError::NoSuchCore(core))?;
    let mut overflow = local.overflow.borrow_mut();
    if overflow.iter().any(|(c, _)| *c == core) {
        // Keep the order: behind what is already waiting for that mailbox.
        overflow.push_back((core, msg));
        return Ok(());
    }
    match tx.try_send(msg) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(msg)) => {
            overflow.push_back((core, msg));
            Ok(())
        }
        Err(TrySendError::Disconnected(_)) => Err(ReactorError::Stopped(core)),
    }
}

/// Runs `f` on reactor `core` at its next pass (also when `core` is the current one).
pub fn send_msg(core: u32, f: impl FnOnce() + Send + 'static) -> Result<(), ReactorError> {
    with_current(|l| send(l, core, Msg::Call(Box::new(f))))?
}

/// Hands `io` to `endpoint` on reactor `core` at its next pass (never inline, also when
/// `core` is the current one: completions use this so a callback never runs inside the
/// code that produced it).
pub fn send_io(core: u32, endpoint: EndpointId, io: Box<BdevIo>) -> Result<(), ReactorError> {
    with_current(|l| send(l, core, Msg::Io { endpoint, io }))?
}

/// Hands `io` to `endpoint` on reactor `core`: inline when `core` is the current reactor,
/// by message otherwise (submissions use this).
pub fn deliver_io(core: u32, endpoint: EndpointId, io: Box<BdevIo>) -> Result<(), ReactorError> {
    // On this reactor: the callback is looked up under the borrow and called after it (it
    // may enter another reactor), without cloning the reactor's `Rc`.
    let here = CURRENT
        .with(|c| {
            let c = c.borrow();
            let l = c.as_ref()?;
            Some((l.index == core).then(|| lookup(&l.endpoints.borrow(), endpoint)))
        })
        .ok_or(ReactorError::NotOnReactor)?;
    match here {
        Some(Some(cb)) => {
            cb(io);
            Ok(())
        }
        // An endpoint that is gone: see `call_endpoint`.
        Some(None) => Ok(()),
        None => with_current(|l| send(l, core, Msg::Io { endpoint, io }))?,
    }
}

/// Registers an I/O endpoint on the current reactor.
pub fn register_endpoint(cb: IoCallback) -> Result<EndpointId, ReactorError> {
    with_current(|l| {
        let mut endpoints = l.endpoints.borrow_mut();
        match l.free_endpoints.borrow_mut().pop() {
            Some(i) => {
                let slot = &mut endpoints[i as usize];
                // A new generation for the re-used slot (unregister left the old one).
                slot.generation = slot.generation.wrapping_add(1);
                slot.cb = Some(cb);
                EndpointId {
                    index: i,
                    generation: slot.generation,
                }
            }
            None => {
                endpoints.push(EndpointSlot {
                    generation: 0,
                    cb: Some(cb),
                });
                EndpointId {
                    index: u32::try_from(endpoints.len() - 1).unwrap_or(u32::MAX),
                    generation: 0,
                }
            }
        }
    })
}

/// The callback of endpoint `endpoint` of the current reactor, for a caller on this reactor
/// that calls it often and may skip the endpoint table (the callback stays alive as long as
/// the caller holds it, registered or not).
pub fn endpoint_callback(endpoint: EndpointId) -> Result<Option<IoCallback>, ReactorError> {
    with_current(|l| lookup(&l.endpoints.borrow(), endpoint))
}

/// Unregisters an endpoint of the current reactor.
pub fn unregister_endpoint(endpoint: EndpointId) -> Result<(), ReactorError> {
    with_current(|l| {
        if let Some(slot) = l.endpoints.borrow_mut().get_mut(endpoint.index as usize) {
            if slot.generation == endpoint.generation && slot.cb.take().is_some() {
                l.free_endpoints.borrow_mut().push(endpoint.index);
            }
        }
    })
}

/// Registers a poller on the current reactor, run every pass (`period_ticks` 0) or at most
/// once per period. It receives the tick of the pass.
pub fn register_poller(
    name: &'static str,
    period_ticks: u64,
    poll: impl FnMut(u64) -> PollerStatus + 'static,
) -> Result<PollerHandle, ReactorError> {
    with_current(|l| {
        let cancelled = Rc::new(Cell::new(false));
        l.new_pollers.borrow_mut().push(Poller {
            name,
            period_ticks,
            next_ticks: 0,
            cancelled: cancelled.clone(),
            poll: Box::new(poll),
        });
        PollerHandle { cancelled }
    })
}
