//! A reactor's side of the ioband vbdev: the engine (the owner's, or a replica's), each
//! device's channel to its base, the I/O parked on ENOMEM, and the poller that re-drives
//! them and runs the exchange between replicas (see `span`).
//!
//! Owned by its reactor behind an `Rc<RefCell<…>>`; its endpoints and poller are
//! registered there. Control calls (create, delete, settings) run on the owner reactor,
//! so they see the engine between two I/O events, never during one; replicas follow.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bdev_ioband_engine::{Admit, DeviceRef, Engine, GroupKey, ShareId, ShareParams, Ticket};

use super::channel::{self, State as ChannelState};

mod span;
use super::{DeviceShared, IobandBdev, IobandError};
use crate::bdev::{
    BdevError, BdevIo, BdevRegistry, IoCallback, IoChannel, IoStats, IoStatus, SubmitError,
};
use crate::reactor::{self, EndpointId, PollerStatus};
use crate::ticks::TICKS_PER_SEC;
use bdev_ioband_engine::adapter::group_cache::GroupCache;

/// The default group's key, for untagged I/O.
const DEFAULT_GROUP: GroupKey = GroupKey::None;
/// Room for I/O dispatched by one engine call, preallocated.
const DISPATCH_BATCH: usize = 256;

struct OwnerDevice {
    shared: Arc<DeviceShared>,
    dref: DeviceRef,
    base_ch: Rc<dyn IoChannel>,
    in_flight: u64,
    deleted: bool,
    groups: GroupCache,
}

/// The owner's devices by module-wide id: a vector indexed by id (ids are handed out in
/// order from 1), so the I/O path finds its device without hashing.
#[derive(Default)]
struct DeviceSlab {
    slots: Vec<Option<OwnerDevice>>,
    len: usize,
}

impl DeviceSlab {
    fn index(id: u64) -> usize {
        usize::try_from(id).unwrap_or(usize::MAX)
    }

    fn insert(&mut self, id: u64, dev: OwnerDevice) {
        let i = Self::index(id);
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        if self.slots[i].replace(dev).is_none() {
            self.len += 1;
        }
    }

    #[inline]
    fn get(&self, id: &u64) -> Option<&OwnerDevice> {
        self.slots.get(Self::index(*id)).and_then(Option::as_ref)
    }

    #[inline]
    fn get_mut(&mut self, id: &u64) -> Option<&mut OwnerDevice> {
        self.slots
            .get_mut(Self::index(*id))
            .and_then(Option::as_mut)
    }

    fn iter(&self) -> impl Iterator<Item = (u64, &OwnerDevice)> {
        (0u64..)
            .zip(self.slots.iter())
            .filter_map(|(id, d)| Some((id, d.as_ref()?)))
    }

    fn values(&self) -> impl Iterator<Item = &OwnerDevice> {
        self.slots.iter().flatten()
    }

    fn retain(&mut self, mut keep: impl FnMut(u64, &OwnerDevice) -> bool) {
        for (id, slot) in (0u64..).zip(self.slots.iter_mut()) {
            if slot.as_ref().is_some_and(|d| !keep(id, d)) {
                *slot = None;
                self.len -= 1;
            }
        }
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// Module keys, unique in the process.
static NEXT_MODULE_KEY: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The modules of reactors of this thread, by key and reactor: how a channel finds
    /// its reactor's module (the owner, or a replica), to call it without the endpoint
    /// table. (Tests poll every reactor on one thread.)
    static MODULES: RefCell<Vec<ModuleEntry>> = const { RefCell::new(Vec::new()) };
}

/// A module in the registry: its key, reactor, the module and its submit endpoint.
type ModuleEntry = (u64, u32, Weak<RefCell<IobandModule>>, EndpointId);

/// The module of `key` on the current reactor (the owner's, or a replica), if there is
/// one, and its submit endpoint.
pub(super) fn owner_module(key: u64) -> Option<(Weak<RefCell<IobandModule>>, EndpointId)> {
    let core = reactor::current_core().ok()?;
    MODULES.with(|m| {
        m.borrow()
            .iter()
            .find(|(k, c, _, _)| *k == key && *c == core)
            .map(|(_, _, w, e)| (w.clone(), *e))
    })
}

/// The module of `key` on reactor `core` of this thread.
fn module_on(key: u64, core: u32) -> Option<Weak<RefCell<IobandModule>>> {
    MODULES.with(|m| {
        m.borrow()
            .iter()
            .find(|(k, c, _, _)| *k == key && *c == core)
            .map(|(_, _, w, _)| w.clone())
    })
}

/// The owner-side state; see the module doc.
pub struct IobandModule {
    engine: Engine<Box<BdevIo>>,
    devices: DeviceSlab,
    next_device_id: u64,
    scratch: VecDeque<(Box<BdevIo>, Ticket)>,
    parked: VecDeque<Box<BdevIo>>,
    share_ids: Vec<ShareId>,
    /// Control epoch: bumped by every mutable access to the engine (see [`GroupCache`]).
    epoch: u64,
    core: u32,
    submit_endpoint: EndpointId,
    base_done: Option<IoCallback>,
    key: u64,
    /// The channels on this reactor that hand their callers' descriptors over as they
    /// are; a base completion of theirs is completed directly (see `on_base_done`).
    local_channels: Vec<Weak<ChannelState>>,
    /// How the shares span the reactors (see the `span` module).
    span: span::SpanState,
    /// Devices without a bdev, by name, with their base's name: created before their base
    /// exists, or whose base was removed. The engine keeps the device, its share and its
    /// settings; the bdev is registered when a bdev of the base's name is (as SPDK does).
    waiting: BTreeMap<String, String>,
}

impl std::fmt::Debug for IobandModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IobandModule")
            .field("devices", &self.devices.len())
            .field("parked", &self.parked.len())
            .finish_non_exhaustive()
    }
}

/// Shared handle to the module, on its reactor.
pub type IobandHandle = Rc<RefCell<IobandModule>>;

impl IobandModule {
    /// Creates the module on the current reactor, which becomes the owner of every share
    /// (the control plane's side); with more than one reactor, every other reactor gets a
    /// replica that schedules the I/O submitted there (see the `span` module).
    pub fn new() -> Result<IobandHandle, BdevError> {
        let key = NEXT_MODULE_KEY.fetch_add(1, Ordering::Relaxed);
        let core = reactor::current_core()?;
        let module = Self::build(key, None)?;
        let submit = module.borrow().submit_endpoint;
        for other in 0..reactor::core_count()? {
            if other != core {
                span::start_replica(key, other, core, submit)?;
            }
        }
        Ok(module)
    }

    /// Builds a module on the current reactor: the owner (`owner` None), or a replica of
    /// the owner on reactor `owner.0` whose submit endpoint is `owner.1`.
    fn build(key: u64, owner: Option<(u32, EndpointId)>) -> Result<IobandHandle, BdevError> {
        let core = reactor::current_core()?;
        let module = Rc::new_cyclic(|weak: &Weak<RefCell<IobandModule>>| {
            let eps = Rc::new(Endpoints::default());
            let (w1, w2, e1, e2) = (weak.clone(), weak.clone(), eps.clone(), eps.clone());
            let submit: IoCallback = Rc::new(move |io| on_submit(&w1, &e1, io));
            let done: IoCallback = Rc::new(move |io| on_base_done(&w2, &e2, io));
            // Registration only fails off a reactor, checked above.
            let submit_endpoint = reactor::register_endpoint(submit).unwrap_or(EndpointId::NONE);
            let done_endpoint =
                reactor::register_endpoint(done.clone()).unwrap_or(EndpointId::NONE);
            eps.submit.set(Some(submit_endpoint));
            eps.done.set(Some(done_endpoint));
            RefCell::new(IobandModule {
                engine: Engine::new(TICKS_PER_SEC),
                devices: DeviceSlab::default(),
                next_device_id: 1,
                scratch: VecDeque::with_capacity(DISPATCH_BATCH),
                parked: VecDeque::with_capacity(DISPATCH_BATCH),
                share_ids: Vec::new(),
                epoch: 0,
                core,
                submit_endpoint,
                base_done: Some(done),
                key,
                local_channels: Vec::new(),
                span: span::SpanState::new(core, owner),
                waiting: BTreeMap::new(),
            })
        });
        let submit = module.borrow().submit_endpoint;
        MODULES.with(|m| {
            let mut m = m.borrow_mut();
            m.retain(|(_, _, w, _)| w.strong_count() > 0);
            m.push((key, core, Rc::downgrade(&module), submit));
        });
        let weak = Rc::downgrade(&module);
        reactor::register_poller("ioband_owner", 0, move |now| {
            let Some(m) = weak.upgrade() else {
                return PollerStatus::Done;
            };
            let Ok(mut m) = m.try_borrow_mut() else {
                return PollerStatus::Idle;
            };
            m.poll(now)
        })?;
        Ok(module)
    }

    /// The engine, for the control plane (settings, counters, rendering).
    pub fn engine(&self) -> &Engine<Box<BdevIo>> {
        &self.engine
    }

    /// The engine, to change settings. Share knobs and group values take effect at the
    /// next I/O event.
    pub fn engine_mut(&mut self) -> &mut Engine<Box<BdevIo>> {
        // Whatever the caller changes, the I/O path's cached group handles are stale, and
        // the replicas must hear of it.
        self.epoch += 1;
        self.span.changed();
        &mut self.engine
    }

    /// I/O waiting for the base to take it (ENOMEM).
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Remembers a channel of this reactor; returns its index (a slot of a channel that
    /// has gone is reused).
    pub(super) fn add_local_channel(&mut self, state: Weak<ChannelState>) -> Option<u32> {
        let i = match self
            .local_channels
            .iter()
            .position(|w| w.strong_count() == 0)
        {
            Some(i) => {
                self.local_channels[i] = state;
                i
            }
            None => {
                self.local_channels.push(state);
                self.local_channels.len() - 1
            }
        };
        u32::try_from(i).ok()
    }

    /// Creates ioband bdev `name` over `base` in `share` (created with `params`, or with
    /// the defaults and the base's queue depth, if it does not exist), bound to group
    /// `bound` when given, and registers it.
    pub fn create(
        &mut self,
        registry: &mut BdevRegistry,
        name: &str,
        base: &str,
        share: &str,
        params: Option<ShareParams>,
        bound: Option<&GroupKey>,
    ) -> Result<IobandBdev, IobandError> {
        if registry.get(name).is_ok() {
            return Err(BdevError::Exists(name.to_owned()).into());
        }
        let base = registry.get(base)?;
        let params = match (params, self.engine.share(share).is_ok()) {
            (Some(p), _) => Some(p),
            (None, true) => None,
            (None, false) => Some(ShareParams {
                nr_requests: base.queue_depth().clamp(1, bdev_ioband_engine::SHORT_MAX),
                ..ShareParams::default()
            }),
        };
        let base_ch = base.get_io_channel()?;
        self.epoch += 1;
        let dref = self
            .engine
            .create_device_bound(name, share, params, bound)?;
        match self.register_device(registry, name, &base, base_ch, dref) {
            Ok(bdev) => Ok(bdev),
            Err(e) => {
                // Cannot happen (the name was checked above); undo the engine side.
                let _ = self.engine.delete_device(name);
                Err(e)
            }
        }
    }

    /// Creates ioband device `name` whose base does not exist (yet): the engine's device,
    /// share and settings now, the bdev when a bdev named `base` is registered.
    pub fn create_waiting(
        &mut self,
        registry: &BdevRegistry,
        name: &str,
        base: &str,
        share: &str,
        params: Option<ShareParams>,
        bound: Option<&GroupKey>,
    ) -> Result<(), IobandError> {
        if registry.get(name).is_ok() {
            return Err(BdevError::Exists(name.to_owned()).into());
        }
        bdev_ioband_engine::validate_base_name(name, base)?;
        self.epoch += 1;
        self.engine
            .create_device_bound(name, share, params, bound)?;
        self.waiting.insert(name.to_owned(), base.to_owned());
        self.span.changed();
        self.refresh_share_ids();
        Ok(())
    }

    /// A bdev named `base` was registered: the devices waiting for it get their bdevs
    /// (a device whose bdev cannot be made now keeps waiting). Returns their names.
    pub fn base_arrived(&mut self, registry: &mut BdevRegistry, base: &str) -> Vec<String> {
        let names: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, b)| b.as_str() == base)
            .map(|(n, _)| n.clone())
            .collect();
        let mut back = Vec::new();
        let Ok(base_ref) = registry.get(base) else {
            return back;
        };
        for name in names {
            let Ok(base_ch) = base_ref.get_io_channel() else {
                continue;
            };
            let Ok(dref) = self.engine.device(&name) else {
                self.waiting.remove(&name);
                continue;
            };
            self.epoch += 1;
            if self
                .register_device(registry, &name, &base_ref, base_ch, dref)
                .is_ok()
            {
                self.waiting.remove(&name);
                back.push(name);
            }
        }
        back
    }

    /// The devices waiting for a base, with the base's name, by name.
    pub fn waiting(&self) -> impl Iterator<Item = (&str, &str)> {
        self.waiting.iter().map(|(n, b)| (n.as_str(), b.as_str()))
    }

    /// Registers the bdev of engine device `name` over `base` (its channel opened).
    fn register_device(
        &mut self,
        registry: &mut BdevRegistry,
        name: &str,
        base: &crate::bdev::BdevRef,
        base_ch: std::rc::Rc<dyn crate::bdev::IoChannel>,
        dref: DeviceRef,
    ) -> Result<IobandBdev, IobandError> {
        let device_id = self.next_device_id;
        self.next_device_id += 1;
        let shared = Arc::new(DeviceShared {
            name: name.to_owned(),
            uuid: crate::bdev::make_uuid(name),
            base: base.clone(),
            block_size: base.block_size(),
            share: dref.share.clone(),
            device_id,
            owner_core: self.core,
            submit_endpoint: self.submit_endpoint,
            module_key: self.key,
            removed: AtomicBool::new(false),
            stats: IoStats::default(),
        });
        let bdev = IobandBdev {
            shared: shared.clone(),
        };
        registry.register(Arc::new(bdev.clone()))?;
        registry.claim(base.name(), name);
        self.span.changed();
        self.devices.insert(
            device_id,
            OwnerDevice {
                shared,
                dref,
                base_ch,
                in_flight: 0,
                deleted: false,
                groups: GroupCache::default(),
            },
        );
        self.refresh_share_ids();
        Ok(bdev)
    }

    /// Deletes ioband bdev `name` (or a device waiting for its base); see the module doc
    /// for what happens to its I/O.
    pub fn delete(&mut self, registry: &mut BdevRegistry, name: &str) -> Result<(), IobandError> {
        if self.waiting.contains_key(name) {
            self.epoch += 1;
            self.span.changed();
            // Nothing can be queued on it (it has no bdev), nor parked.
            for mut io in self.engine.delete_device(name)? {
                io.status = IoStatus::Aborted;
                send_reply(io);
            }
            self.waiting.remove(name);
            self.refresh_share_ids();
            return Ok(());
        }
        self.remove_bdev(registry, name, false)
    }

    /// The base of ioband bdev `name` is going: its bdev goes, the device, its share and
    /// settings stay and wait for a base of the same name (SPDK's hot-remove).
    pub fn base_removed(
        &mut self,
        registry: &mut BdevRegistry,
        name: &str,
    ) -> Result<(), IobandError> {
        self.remove_bdev(registry, name, true)
    }

    fn remove_bdev(
        &mut self,
        registry: &mut BdevRegistry,
        name: &str,
        keep_device: bool,
    ) -> Result<(), IobandError> {
        let id = self
            .devices
            .iter()
            .find(|(_, d)| !d.deleted && d.shared.name == name)
            .map(|(id, _)| id)
            .ok_or_else(|| BdevError::NotFound(name.to_owned()))?;
        // A vbdev sits on it: refused before anything changes (its bdev could not be
        // unregistered, and the name would be lost to both the engine and the registry).
        if let Some(by) = registry.claimers(name).into_iter().next() {
            return Err(BdevError::Busy {
                bdev: name.to_owned(),
                by,
            }
            .into());
        }
        self.epoch += 1;
        self.span.changed();
        let queued = if keep_device {
            self.engine.drain_device(name)?
        } else {
            self.engine.delete_device(name)?
        };
        let base = match self.devices.get_mut(&id) {
            Some(d) => {
                d.deleted = true;
                d.shared.removed.store(true, Ordering::Release);
                d.shared.base.name().to_owned()
            }
            None => String::new(),
        };
        for mut io in queued {
            io.status = IoStatus::Aborted;
            send_reply(io);
        }
        self.abort_parked(|device| device == id);
        registry.release(&base, name);
        // Unclaimed (checked above), so this cannot fail.
        let _ = registry.unregister(name);
        if keep_device {
            self.waiting.insert(name.to_owned(), base);
        }
        self.refresh_share_ids();
        self.reap();
        Ok(())
    }

    /// Fails the parked I/O of the devices `matches` picks (they are being deleted),
    /// returning their tickets, and dispatches what that allows.
    fn abort_parked(&mut self, matches: impl Fn(u64) -> bool) {
        let now = reactor::now_ticks();
        let parked = std::mem::take(&mut self.parked);
        for mut io in parked {
            if matches(io.band.device_id) {
                self.complete_ticket(&mut io, now);
                io.status = IoStatus::Aborted;
                send_reply(io);
            } else {
                self.parked.push_back(io);
            }
        }
        self.dispatch_scratch();
    }

    /// Names of the ioband bdevs sitting on `base`.
    pub fn devices_on(&self, base: &str) -> Vec<String> {
        self.devices
            .values()
            .filter(|d| !d.deleted && d.shared.base.name() == base)
            .map(|d| d.shared.name.clone())
            .collect()
    }

    /// Every live ioband bdev, by creation order.
    pub fn bdevs(&self) -> Vec<IobandBdev> {
        let mut v: Vec<_> = self.devices.iter().filter(|(_, d)| !d.deleted).collect();
        v.sort_by_key(|(id, _)| *id);
        v.into_iter()
            .map(|(_, d)| IobandBdev {
                shared: d.shared.clone(),
            })
            .collect()
    }

    fn refresh_share_ids(&mut self) {
        self.share_ids = self.engine.share_ids().collect();
    }

    fn submit(&mut self, mut io: Box<BdevIo>, now: u64) {
        let Some(dev) = self
            .devices
            .get_mut(&io.band.device_id)
            .filter(|d| !d.deleted)
        else {
            // A replica that has not heard of the device yet: the owner schedules it.
            let known = self.devices.get(&io.band.device_id).is_some();
            if let Some(mut io) = self.span.forward_unknown(io, known) {
                io.status = IoStatus::Aborted;
                send_reply(io);
            }
            return;
        };
        let (share_id, device) = (dev.dref.share_id, dev.dref.device);
        let bytes = io.len_bytes(dev.shared.block_size);
        let op = io.io_type.op();
        let Some(share) = self.engine.share_by_id_mut(share_id) else {
            io.status = IoStatus::Aborted;
            send_reply(io);
            return;
        };
        let key = io.group.as_ref().unwrap_or(&DEFAULT_GROUP);
        let group = match dev.groups.get(key, self.epoch) {
            Some(group) => group,
            None => {
                let Ok(group) = share.group_id(device, key) else {
                    io.status = IoStatus::Aborted;
                    send_reply(io);
                    return;
                };
                dev.groups.put(key, group);
                group
            }
        };
        let mut sink = Sink {
            devices: &mut self.devices,
            parked: &mut self.parked,
            scratch: &mut self.scratch,
            done: self.base_done.as_ref(),
        };
        let admit = share.submit(device, group, io, op, bytes, now, &mut |io, t| {
            sink.take(io, t);
        });
        if let Admit::NoDevice(mut io) = admit {
            io.status = IoStatus::Aborted;
            send_reply(io);
        }
        if !self.scratch.is_empty() {
            self.dispatch_scratch();
        }
    }

    /// Sends what the engine released to the base, in order, including what completing a
    /// deleted device's I/O releases on the way.
    fn dispatch_scratch(&mut self) {
        while let Some((mut io, ticket)) = self.scratch.pop_front() {
            io.band.ticket = Some(ticket);
            self.dispatch_to_base(io);
        }
    }

    fn dispatch_to_base(&mut self, io: Box<BdevIo>) {
        if !self.parked.is_empty() {
            self.parked.push_back(io);
            return;
        }
        if let Err(io) = self.try_base(io) {
            self.parked.push_back(io);
        }
    }

    /// Submits to the base; hands the I/O back on ENOMEM. A deleted device's I/O is
    /// completed (aborted) here.
    fn try_base(&mut self, mut io: Box<BdevIo>) -> Result<(), Box<BdevIo>> {
        let Some(done) = self.base_done.as_ref() else {
            return Err(io);
        };
        match self
            .devices
            .get_mut(&io.band.device_id)
            .filter(|d| !d.deleted)
        {
            Some(dev) => match dev.base_ch.submit(io, done) {
                Ok(()) => {
                    dev.in_flight += 1;
                    Ok(())
                }
                Err(SubmitError::NoMem(io)) => Err(io),
            },
            None => {
                let now = reactor::now_ticks();
                self.complete_ticket(&mut io, now);
                io.status = IoStatus::Aborted;
                send_reply(io);
                Ok(())
            }
        }
    }

    /// Gives the engine back the ticket of a dispatched I/O (dispatching what that allows
    /// into the scratch batch).
    fn complete_ticket(&mut self, io: &mut BdevIo, now: u64) {
        let Some(ticket) = io.band.ticket.take() else {
            return;
        };
        let Some(dev) = self.devices.get(&io.band.device_id) else {
            return;
        };
        let Some(share) = self.engine.share_by_id_mut(dev.dref.share_id) else {
            return;
        };
        let scratch = &mut self.scratch;
        share.complete(ticket, now, &mut |io, t| scratch.push_back((io, t)));
    }

    /// Accounts a completion from the base and dispatches what it allows; returns the
    /// descriptor for the caller to reply with once the module is no longer borrowed.
    fn base_done(&mut self, mut io: Box<BdevIo>, now: u64) -> Box<BdevIo> {
        let Some(dev) = self.devices.get_mut(&io.band.device_id) else {
            return io;
        };
        dev.in_flight = dev.in_flight.saturating_sub(1);
        let share_id = dev.dref.share_id;
        let Some(ticket) = io.band.ticket.take() else {
            return io;
        };
        let Some(share) = self.engine.share_by_id_mut(share_id) else {
            return io;
        };
        let mut sink = Sink {
            devices: &mut self.devices,
            parked: &mut self.parked,
            scratch: &mut self.scratch,
            done: self.base_done.as_ref(),
        };
        share.complete(ticket, now, &mut |io, t| sink.take(io, t));
        if !self.scratch.is_empty() {
            self.dispatch_scratch();
        }
        io
    }

    fn poll(&mut self, now: u64) -> PollerStatus {
        let mut busy = false;
        while let Some(io) = self.parked.pop_front() {
            match self.try_base(io) {
                Ok(()) => busy = true,
                Err(io) => {
                    self.parked.push_front(io);
                    break;
                }
            }
        }
        for i in 0..self.share_ids.len() {
            let Some(share) = self.engine.share_by_id_mut(self.share_ids[i]) else {
                continue;
            };
            let scratch = &mut self.scratch;
            share.poll(now, &mut |io, t| scratch.push_back((io, t)));
        }
        if !self.scratch.is_empty() {
            busy = true;
            self.dispatch_scratch();
        }
        self.reap();
        if self.span.sync_due() {
            self.sync_replicas();
        }
        if self.span.due(now) {
            busy |= self.exchange(now);
        }
        if busy {
            PollerStatus::Busy
        } else {
            PollerStatus::Idle
        }
    }

    /// Forgets deleted devices whose base I/O has drained.
    fn reap(&mut self) {
        let parked = &self.parked;
        self.devices.retain(|id, d| {
            !(d.deleted && d.in_flight == 0 && parked.iter().all(|io| io.band.device_id != id))
        });
    }
}

/// Where the engine's dispatches go on the I/O path: straight to the base (or to the
/// parked queue behind what waits there); a deleted device's I/O, which needs the engine
/// again, goes to the scratch batch for [`IobandModule::dispatch_scratch`].
struct Sink<'a> {
    devices: &'a mut DeviceSlab,
    parked: &'a mut VecDeque<Box<BdevIo>>,
    scratch: &'a mut VecDeque<(Box<BdevIo>, Ticket)>,
    done: Option<&'a IoCallback>,
}

impl Sink<'_> {
    #[inline]
    fn take(&mut self, mut io: Box<BdevIo>, ticket: Ticket) {
        let dev = self
            .devices
            .get_mut(&io.band.device_id)
            .filter(|d| !d.deleted);
        match (dev, self.done) {
            (Some(dev), Some(done)) => {
                io.band.ticket = Some(ticket);
                if !self.parked.is_empty() {
                    self.parked.push_back(io);
                    return;
                }
                match dev.base_ch.submit(io, done) {
                    Ok(()) => dev.in_flight += 1,
                    Err(SubmitError::NoMem(io)) => self.parked.push_back(io),
                }
            }
            _ => self.scratch.push_back((io, ticket)),
        }
    }
}

/// Sends a descriptor back to the channel that submitted it (always by message, so that
/// the caller's callback never runs inside the owner's code).
fn send_reply(io: Box<BdevIo>) {
    let core = io.band.reply_core;
    let Some(endpoint) = io.band.reply_endpoint else {
        return;
    };
    // Only a stopped host fails to deliver; its I/O dies with it.
    let _ = reactor::send_io(core, endpoint, io);
}

/// The module's endpoints, readable while the module itself is borrowed.
#[derive(Debug, Default)]
struct Endpoints {
    submit: Cell<Option<EndpointId>>,
    done: Cell<Option<EndpointId>>,
}

/// Hands `io` to `endpoint` of this reactor at its next pass (a re-entered call).
fn later(endpoint: Option<EndpointId>, io: Box<BdevIo>) {
    if let (Ok(core), Some(endpoint)) = (reactor::current_core(), endpoint) {
        let _ = reactor::send_io(core, endpoint, io);
    }
}

fn on_submit(module: &Weak<RefCell<IobandModule>>, eps: &Endpoints, io: Box<BdevIo>) {
    submit_on_owner(module, eps.submit.get(), io);
}

/// Submits `io` to the module, on its reactor: the owner's submit endpoint, and what an
/// owner-local channel calls directly.
#[inline]
pub(super) fn submit_on_owner(
    module: &Weak<RefCell<IobandModule>>,
    submit_endpoint: Option<EndpointId>,
    mut io: Box<BdevIo>,
) {
    let Some(m) = module.upgrade() else {
        io.status = IoStatus::Aborted;
        send_reply(io);
        return;
    };
    let Ok(mut m) = m.try_borrow_mut() else {
        // Re-entered from inside the module (an ioband stacked on an ioband of the same
        // owner): take it at the next pass instead.
        later(submit_endpoint, io);
        return;
    };
    // The pass tick: the engine's accounting needs no finer clock than one reactor pass.
    let now = reactor::pass_ticks();
    m.submit(io, now);
}

fn on_base_done(module: &Weak<RefCell<IobandModule>>, eps: &Endpoints, mut io: Box<BdevIo>) {
    let Some(m) = module.upgrade() else {
        io.status = IoStatus::Aborted;
        send_reply(io);
        return;
    };
    let Ok(mut m) = m.try_borrow_mut() else {
        later(eps.done.get(), io);
        return;
    };
    let now = reactor::pass_ticks();
    let io = m.base_done(io, now);
    // A base completes from its own poller, never inside a submit, and the module is no
    // longer borrowed: a reply to a channel on this reactor is delivered inline (its
    // callback may resubmit at once); one on another reactor goes by message.
    let local = match io.band.local {
        Some(i) if io.band.parent => m
            .local_channels
            .get(i as usize)
            .and_then(Weak::upgrade)
            // A slot reused by a newer channel: the endpoint says whose it is.
            .filter(|s| Some(s.endpoint()) == io.band.reply_endpoint),
        _ => None,
    };
    drop(m);
    if let Some(state) = local {
        channel::complete_parent(&state, io);
        return;
    }
    let core = io.band.reply_core;
    if let Some(endpoint) = io.band.reply_endpoint {
        let _ = reactor::deliver_io(core, endpoint, io);
    }
}
