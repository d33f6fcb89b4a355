//! A reactor's side of the ioband vbdev: the engine (the owner's, or a replica's), the
//! engine's I/O adapter (device table, classification, tickets, per-base ENOMEM parking:
//! `bdev_ioband_engine::adapter`, shared with the SPDK host) with each device's channel
//! to its base, and the poller that re-drives parked I/O and shares and runs the exchange
//! between replicas (see `span`). What is this host's own: submitting to a base channel,
//! replying to the submitting channel (by message, or inline for a local channel).
//!
//! Owned by its reactor behind an `Rc<RefCell<…>>`; its endpoints and poller are
//! registered there. Control calls (create, delete, settings) run on the owner reactor,
//! so they see the engine between two I/O events, never during one; replicas follow.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bdev_ioband_engine::adapter::{self, BaseNames, DevHandle, Failure, Submit};
use bdev_ioband_engine::{DeviceRef, Engine, GroupKey, ShareId, ShareParams};

use super::channel::{self, State as ChannelState};

mod span;
use super::{DeviceShared, IobandBdev, IobandError};
use crate::bdev::{
    BdevError, BdevIo, BdevRegistry, IoCallback, IoChannel, IoStats, IoStatus, SubmitError,
};
use crate::reactor::{self, EndpointId, PollerStatus};
use crate::ticks::TICKS_PER_SEC;

/// The default group's key, for untagged I/O.
const DEFAULT_GROUP: GroupKey = GroupKey::None;
/// The host's data for a device in the adapter's table: the device, and this reactor's
/// channel to its base.
pub(super) struct DevData {
    pub(super) shared: Arc<DeviceShared>,
    base_ch: Rc<dyn IoChannel>,
}

impl std::fmt::Debug for DevData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevData")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

/// The adapter of this host: its I/O are boxed descriptors.
type Adapter = adapter::Adapter<Box<BdevIo>, DevData>;

impl adapter::Tagged for Box<BdevIo> {
    #[inline]
    fn tag(&self) -> adapter::IoTag {
        self.band.tag
    }
    #[inline]
    fn set_tag(&mut self, tag: adapter::IoTag) {
        self.band.tag = tag;
    }
    #[inline]
    fn tag_dev(&self) -> DevHandle {
        self.band.tag.dev
    }
    #[inline]
    fn set_held(&mut self, held: Option<adapter::Held>) {
        self.band.tag.held = held;
    }
}

/// The adapter's sink for a share's releases, on this host.
pub(super) type HostSink<'s, 'b> = adapter::Sink<'s, Box<BdevIo>, DevData, ToBase<'b>>;

/// This host's bases for the adapter: submit to the reactor's base channel, fail by
/// replying `Aborted` to the submitting channel.
pub(super) struct ToBase<'a> {
    done: &'a IoCallback,
}

impl adapter::Base<Box<BdevIo>, DevData> for ToBase<'_> {
    #[inline]
    fn submit(&mut self, dev: &mut DevData, io: Box<BdevIo>) -> Submit<Box<BdevIo>> {
        match dev.base_ch.submit(io, self.done) {
            Ok(()) => Submit::Taken,
            Err(SubmitError::NoMem(io)) => Submit::NoMem(io),
        }
    }

    fn fail(&mut self, mut io: Box<BdevIo>, _why: Failure) {
        io.status = IoStatus::Aborted;
        send_reply(io);
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
    /// Devices, classification, tickets, parking (see the module doc).
    adapter: Adapter,
    /// Creation order of the next device.
    next_device_seq: u64,
    /// Bases by name, numbered for the adapter's parking (owner; replicas take the
    /// numbers from the devices).
    bases: BaseNames,
    share_ids: Vec<ShareId>,
    core: u32,
    submit_endpoint: EndpointId,
    base_done: IoCallback,
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
            .field("devices", &self.adapter.devices.len())
            .field("parked", &self.adapter.parking.len())
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
                adapter: Adapter::new(),
                next_device_seq: 1,
                bases: BaseNames::default(),
                share_ids: Vec::new(),
                core,
                submit_endpoint,
                base_done: done,
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
        self.adapter.config_changed();
        self.span.changed();
        &mut self.engine
    }

    /// I/O waiting for the base to take it (ENOMEM).
    pub fn parked(&self) -> usize {
        self.adapter.parking.len()
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
        self.adapter.config_changed();
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
        self.adapter.config_changed();
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
            self.adapter.config_changed();
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
        let seq = self.next_device_seq;
        self.next_device_seq += 1;
        let handle = self.adapter.devices.next_handle();
        let base_idx = self.bases.index(base.name());
        let shared = Arc::new(DeviceShared {
            name: name.to_owned(),
            uuid: crate::bdev::make_uuid(name),
            base: base.clone(),
            block_size: base.block_size(),
            share: dref.share.clone(),
            seq,
            handle,
            base_idx,
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
        let h = self.adapter.add_device(
            dref.share_id,
            dref.device,
            base_idx,
            DevData { shared, base_ch },
        );
        debug_assert_eq!(h, handle);
        self.refresh_share_ids();
        Ok(bdev)
    }

    /// Deletes ioband bdev `name` (or a device waiting for its base); see the module doc
    /// for what happens to its I/O.
    pub fn delete(&mut self, registry: &mut BdevRegistry, name: &str) -> Result<(), IobandError> {
        if self.waiting.contains_key(name) {
            self.adapter.config_changed();
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
            .adapter
            .devices
            .iter()
            .find(|(_, d)| !d.is_deleted() && d.data.shared.name == name)
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
        self.adapter.config_changed();
        self.span.changed();
        let queued = if keep_device {
            self.engine.drain_device(name)?
        } else {
            self.engine.delete_device(name)?
        };
        let base = match self.adapter.devices.get(id) {
            Some(d) => {
                d.data.shared.removed.store(true, Ordering::Release);
                d.data.shared.base.name().to_owned()
            }
            None => String::new(),
        };
        for mut io in queued {
            io.status = IoStatus::Aborted;
            send_reply(io);
        }
        let now = reactor::now_ticks();
        let mut to_base = ToBase {
            done: &self.base_done,
        };
        self.adapter
            .remove_device(&mut self.engine, id, now, &mut to_base);
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
    fn abort_parked(&mut self, matches: impl Fn(DevHandle) -> bool) {
        let now = reactor::now_ticks();
        let mut to_base = ToBase {
            done: &self.base_done,
        };
        self.adapter
            .abort_parked(&mut self.engine, now, &mut to_base, matches);
    }

    /// The devices not deleted, in table order.
    pub(super) fn live_devices(&self) -> impl Iterator<Item = &Arc<DeviceShared>> {
        self.adapter
            .devices
            .iter()
            .filter(|(_, d)| !d.is_deleted())
            .map(|(_, d)| &d.data.shared)
    }

    /// Names of the ioband bdevs sitting on `base`.
    pub fn devices_on(&self, base: &str) -> Vec<String> {
        self.live_devices()
            .filter(|d| d.base.name() == base)
            .map(|d| d.name.clone())
            .collect()
    }

    /// Every live ioband bdev, by creation order.
    pub fn bdevs(&self) -> Vec<IobandBdev> {
        let mut v: Vec<_> = self.live_devices().cloned().collect();
        v.sort_by_key(|d| d.seq);
        v.into_iter().map(|shared| IobandBdev { shared }).collect()
    }

    fn refresh_share_ids(&mut self) {
        self.share_ids = self.engine.share_ids().collect();
    }

    fn submit(&mut self, mut io: Box<BdevIo>, now: u64) {
        let h = io.band.tag.dev;
        let key = io.group.as_ref().unwrap_or(&DEFAULT_GROUP);
        let (route, bytes) = match self.adapter.classify_with_data(&self.engine, h, key) {
            Ok((route, d)) => (route, io.len_bytes(d.shared.block_size)),
            Err(adapter::NoRoute::NoDevice) => {
                // A replica that has not heard of the device yet: the owner schedules it.
                let known = self.adapter.devices.get(h).is_some();
                if let Some(mut io) = self.span.forward_unknown(io, known) {
                    io.status = IoStatus::Aborted;
                    send_reply(io);
                }
                return;
            }
            Err(adapter::NoRoute::NoShare) => {
                io.status = IoStatus::Aborted;
                send_reply(io);
                return;
            }
        };
        let op = io.io_type.op();
        let mut to_base = ToBase {
            done: &self.base_done,
        };
        if let Err((mut io, _)) =
            self.adapter
                .submit(&mut self.engine, route, io, op, bytes, now, &mut to_base)
        {
            io.status = IoStatus::Aborted;
            send_reply(io);
        }
    }

    /// Accounts a completion from the base and dispatches what it allows; returns the
    /// descriptor for the caller to reply with once the module is no longer borrowed.
    fn base_done(&mut self, mut io: Box<BdevIo>, now: u64) -> Box<BdevIo> {
        let (dev, held) = (io.band.tag.dev, io.band.tag.held.take());
        let mut to_base = ToBase {
            done: &self.base_done,
        };
        self.adapter
            .complete(&mut self.engine, dev, held, true, now, &mut to_base);
        io
    }

    /// Runs `f` on share `id` with the adapter's dispatch sink (a poll, a grant);
    /// returns how many I/O it released.
    pub(super) fn drive_share(
        &mut self,
        id: ShareId,
        now: u64,
        f: impl FnOnce(&mut bdev_ioband_engine::Share<Box<BdevIo>>, &mut HostSink<'_, '_>),
    ) -> usize {
        let mut to_base = ToBase {
            done: &self.base_done,
        };
        self.adapter
            .with_share(&mut self.engine, id, now, &mut to_base, f)
            .unwrap_or(0)
    }

    fn poll(&mut self, now: u64) -> PollerStatus {
        let mut to_base = ToBase {
            done: &self.base_done,
        };
        let mut busy = self
            .adapter
            .retry_parked(&mut self.engine, now, &mut to_base)
            > 0;
        for i in 0..self.share_ids.len() {
            let id = self.share_ids[i];
            busy |= self.drive_share(id, now, |share, sink| {
                share.poll(now, sink);
            }) > 0;
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
        self.adapter.reap();
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
