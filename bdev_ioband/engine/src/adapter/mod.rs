//! The host-neutral I/O adapter: what a host does between receiving an I/O for an ioband
//! device and completing it, other than moving bytes, written once for both hosts (the
//! embedded `ioband_tgt` and the SPDK module), so that they cannot drift apart.
//!
//! - **Classification** ([`Adapter::classify`]): a device handle and the I/O's group key
//!   give the engine's (share, device, group), through a per-device group cache
//!   ([`group_cache`]) valid for one control epoch ([`Adapter::config_changed`]): no
//!   lookup by name and no SipHash per I/O.
//! - **Tickets** ([`IoTag`]): every I/O carries its device handle ([`DevHandle`],
//!   generation-checked) from submission, and, once the engine dispatched it, the handle
//!   of the share that did (the engine's [`ShareId`], generation-checked too) with the
//!   ticket. A completion returns the ticket to that share incarnation and counts the I/O
//!   back on that device incarnation, or to nothing if either was deleted meanwhile: a
//!   share or device deleted and re-created while I/O is in flight never receives the old
//!   completions ([`Adapter::complete`]).
//! - **Parking** ([`park`]): a base's ENOMEM parks the I/O in that base's queue; I/O to
//!   other bases goes on; order is kept per base.
//! - **Exactly once**: every I/O the host submits comes back to it once: dispatched to the
//!   base ([`Base::submit`]), or failed ([`Base::fail`], with the reason: the device went,
//!   the base refused it), or handed back at once (`Err` from [`Adapter::submit`]). A
//!   failed I/O's ticket is returned first, so the share does not count it in flight.
//!
//! What stays the host's: how an I/O carries its tag ([`Tagged`]), how to submit to a base
//! and how to complete to the caller ([`Base`]), when completions run (a host may complete
//! the caller before returning the ticket: the engine's contract allows both), threads and
//! messages. A host whose base submissions must wait until its state is released (the SPDK
//! module: a submission may call back into it) returns [`Submit::Deferred`] and drives the
//! parking queue itself with [`Parking`]'s primitives.
//!
//! Threading: an [`Adapter`] (its device table, group caches, parking queues) belongs to
//! the thread that owns its engine (an owner or a replica); nothing here is shared. The
//! I/O path takes no lock, sends no message and allocates nothing (queues are
//! preallocated on the control path and reused).

pub mod devices;
pub mod group_cache;
pub mod park;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use crate::{Admit, DeviceIdx, Engine, GroupId, GroupKey, Release, Share, ShareId, Ticket};

pub use devices::{BaseIdx, BaseNames, DevHandle, Device, DeviceTable, Mirrored};
pub use park::{Parking, PARK_CAPACITY};

/// What an I/O carries while the adapter has it: its device, and once dispatched, the
/// share incarnation that dispatched it and its ticket. 48 bytes (fits the SPDK module's
/// per-I/O area). The default tag names no device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoTag {
    /// The device it was submitted to.
    pub dev: DevHandle,
    /// Set while the engine counts it in flight.
    pub held: Option<Held>,
}

/// The share that dispatched an I/O and its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The share incarnation (generation-checked handle).
    pub share: ShareId,
    /// The ticket to return there.
    pub ticket: Ticket,
}

impl IoTag {
    /// A tag for an I/O of `dev` that holds no ticket.
    pub fn new(dev: DevHandle) -> IoTag {
        IoTag { dev, held: None }
    }
}

/// How a host's I/O handle carries its [`IoTag`].
pub trait Tagged {
    /// The tag last set.
    fn tag(&self) -> IoTag;
    /// Sets the tag.
    fn set_tag(&mut self, tag: IoTag);
    /// The device of the tag (a host may read it alone).
    #[inline]
    fn tag_dev(&self) -> DevHandle {
        self.tag().dev
    }
    /// Sets what the tag holds, its device unchanged (a host may write it alone).
    #[inline]
    fn set_held(&mut self, held: Option<Held>) {
        let mut tag = self.tag();
        tag.held = held;
        self.set_tag(tag);
    }
}

/// What a base answered to a submission.
#[derive(Debug)]
pub enum Submit<T> {
    /// Taken: it is at the base.
    Taken,
    /// Out of resources (ENOMEM): not taken, park it.
    NoMem(T),
    /// Refused for good: fail it.
    Refused(T),
    /// The host submits it later itself (and parks it, if need be, with [`Parking`]).
    Deferred,
}

/// Why [`Base::fail`] gets an I/O back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Its device was deleted (or is another incarnation now): abort it.
    DeviceGone,
    /// The base refused it.
    Refused,
}

/// The host's side of the I/O path: how to submit to a base, how to fail to the caller.
pub trait Base<T, D> {
    /// Offers `io` to the base of the device whose host data is `dev`.
    fn submit(&mut self, dev: &mut D, io: T) -> Submit<T>;
    /// Completes `io` to its caller as failed (its ticket was returned already).
    fn fail(&mut self, io: T, why: Failure);
}

/// Where a share's releases go in [`Adapter::with_share`]: to their bases (or parking),
/// each counted.
#[derive(Debug)]
pub struct Sink<'a, T, D, B> {
    adapter: &'a mut Adapter<T, D>,
    base: &'a mut B,
    share: ShareId,
    released: usize,
}

/// A share hands its releases to the sink itself (`share.poll(now, sink)`): compiled
/// into the share's dispatch, so the ticket goes from registers into the I/O's tag.
impl<T: Tagged, D, B: Base<T, D>> Release<T> for Sink<'_, T, D, B> {
    /// Takes one I/O the share released, with its ticket.
    #[inline(always)]
    fn release(&mut self, io: T, ticket: Ticket) {
        self.released += 1;
        self.adapter.dispatch_one(self.base, self.share, io, ticket);
    }
}

/// Where an I/O goes in the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The device.
    pub dev: DevHandle,
    /// Its share.
    pub share: ShareId,
    /// Its index there.
    pub device: DeviceIdx,
    /// The group the I/O counts to.
    pub group: GroupId,
}

/// Why an I/O could not be classified or submitted (the host fails it, typically with
/// ENODEV).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// No live device of that handle.
    NoDevice,
    /// The device's share is gone.
    NoShare,
}

/// The adapter; see the module doc. `T`: the host's I/O handle; `D`: the host's data per
/// device.
#[derive(Debug)]
pub struct Adapter<T, D> {
    /// The devices.
    pub devices: DeviceTable<D>,
    /// The parked I/O.
    pub parking: Parking<T>,
    /// I/O to fail once the engine call that produced them returns.
    failed: VecDeque<(T, Failure)>,
    epoch: u64,
}

impl<T, D> Default for Adapter<T, D> {
    fn default() -> Self {
        Adapter {
            devices: DeviceTable::default(),
            parking: Parking::default(),
            failed: VecDeque::with_capacity(PARK_CAPACITY),
            epoch: 0,
        }
    }
}

impl<T: Tagged, D> Adapter<T, D> {
    /// Hands one I/O the engine dispatched to its base (or its base's queue).
    #[inline(always)]
    fn dispatch_one<B: Base<T, D>>(
        &mut self,
        base: &mut B,
        share: ShareId,
        mut io: T,
        ticket: Ticket,
    ) {
        io.set_held(Some(Held { share, ticket }));
        let Some(dev) = self.devices.live_mut(io.tag_dev()) else {
            self.failed.push_back((io, Failure::DeviceGone));
            return;
        };
        let b = dev.base();
        if self.parking.must_wait(b) {
            self.parking.park_back(b, io);
            return;
        }
        match base.submit(&mut dev.data, io) {
            Submit::Taken => dev.note_at_base(),
            Submit::NoMem(io) => self.parking.park_back(b, io),
            Submit::Refused(io) => self.failed.push_back((io, Failure::Refused)),
            Submit::Deferred => {}
        }
    }

    /// A sink that dispatches what share `share` releases to the bases through `base`.
    #[inline(always)]
    fn sink<'a, B: Base<T, D>>(&'a mut self, base: &'a mut B, share: ShareId) -> Sink<'a, T, D, B> {
        Sink {
            adapter: self,
            base,
            share,
            released: 0,
        }
    }

    /// An empty adapter.
    pub fn new() -> Self {
        Self::default()
    }

    /// This core's span report for every share ([`Engine::span_reports`]), each with how
    /// many of the share's I/O are parked here ([`crate::CoreReport::parked`]) when all
    /// of the share's devices here sit on one base whose depth is the device's, not each
    /// channel's (`depth_is_shared` says so of a device's data): only then is a refusal
    /// the base's depth, the same for every core. Otherwise `None`.
    pub fn span_reports(
        &self,
        engine: &mut Engine<T>,
        now_ticks: u64,
        depth_is_shared: impl Fn(&D) -> bool,
    ) -> Vec<(String, crate::CoreReport)> {
        let mut reports = engine.span_reports(now_ticks);
        for (name, report) in &mut reports {
            let Ok(id) = engine.share_id(name) else {
                continue;
            };
            if self.on_one_shared_base(id, &depth_is_shared) {
                let n = self
                    .parking
                    .count(|io| io.tag().held.is_some_and(|h| h.share == id));
                report.parked = Some(u32::try_from(n).unwrap_or(u32::MAX));
            }
        }
        reports
    }

    /// Whether share `id`'s devices here all sit on one base, and `depth_is_shared` of it.
    fn on_one_shared_base(&self, id: ShareId, depth_is_shared: &impl Fn(&D) -> bool) -> bool {
        let mut base = None;
        for (_, d) in self.devices.iter().filter(|(_, d)| d.share() == id) {
            if !depth_is_shared(&d.data) || base.is_some_and(|b| b != d.base()) {
                return false;
            }
            base = Some(d.base());
        }
        base.is_some()
    }

    /// The configuration changed (settings, attach, detach, create, delete): cached group
    /// handles are stale from now on.
    pub fn config_changed(&mut self) {
        self.epoch += 1;
    }

    /// Adds a device (owner side), making room to park I/O for its base.
    pub fn add_device(
        &mut self,
        share: ShareId,
        device: DeviceIdx,
        base: BaseIdx,
        data: D,
    ) -> DevHandle {
        self.parking.add_base(base);
        self.config_changed();
        self.devices.insert(share, device, base, data)
    }

    /// Adds or updates a device under the owner's handle (replica side).
    pub fn mirror_device(
        &mut self,
        h: DevHandle,
        share: ShareId,
        device: DeviceIdx,
        base: BaseIdx,
        data: D,
    ) -> Mirrored {
        self.parking.add_base(base);
        self.config_changed();
        self.devices.insert_at(h, share, device, base, data)
    }

    /// Where an I/O of device `dev` in group `key` goes (the device's default group when
    /// `key` is not attached).
    #[inline]
    pub fn classify(
        &mut self,
        engine: &Engine<T>,
        dev: DevHandle,
        key: &GroupKey,
    ) -> Result<Route, NoRoute> {
        self.classify_with_data(engine, dev, key).map(|(r, _)| r)
    }

    /// [`Adapter::classify`], with the host's data of the device (to size the I/O without
    /// a second lookup).
    #[inline(always)]
    pub fn classify_with_data(
        &mut self,
        engine: &Engine<T>,
        dev: DevHandle,
        key: &GroupKey,
    ) -> Result<(Route, &D), NoRoute> {
        let d = self.devices.live_mut(dev).ok_or(NoRoute::NoDevice)?;
        let (share, device) = (d.share(), d.device());
        let group = match d.groups.get(key, self.epoch) {
            Some(g) => g,
            None => {
                let s = engine.share_by_id(share).ok_or(NoRoute::NoShare)?;
                let g = s.group_id(device, key).map_err(|_| NoRoute::NoDevice)?;
                d.groups.put(key, g);
                g
            }
        };
        Ok((
            Route {
                dev,
                share,
                device,
                group,
            },
            &d.data,
        ))
    }

    /// Offers `io` to the engine by `route`; what the engine releases (this I/O or others)
    /// goes to the bases through `base`. The host has stamped `io` with `IoTag::new(route.dev)`
    /// (when it took it: the tag carries the device from then on). `Err`: the engine did not take it (the caller
    /// fails it).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn submit<B: Base<T, D>>(
        &mut self,
        engine: &mut Engine<T>,
        route: Route,
        io: T,
        op: crate::Op,
        bytes: u64,
        now_ticks: u64,
        base: &mut B,
    ) -> Result<(), (T, NoRoute)> {
        debug_assert_eq!(io.tag_dev(), route.dev, "the host stamps the I/O");
        let Some(share) = engine.share_by_id_mut(route.share) else {
            return Err((io, NoRoute::NoShare));
        };
        let admit = share.submit(
            route.device,
            route.group,
            io,
            op,
            bytes,
            now_ticks,
            &mut self.sink(base, route.share),
        );
        self.settle(engine, now_ticks, base);
        match admit {
            Admit::Accepted => Ok(()),
            Admit::NoDevice(io) => Err((io, NoRoute::NoDevice)),
        }
    }

    /// Runs `f` on share `id` with a [`Sink`] that dispatches what it releases (a poll,
    /// a grant: `share.poll(now, sink)`); how many it released,
    /// `None` if there is no such share.
    pub fn with_share<B: Base<T, D>>(
        &mut self,
        engine: &mut Engine<T>,
        id: ShareId,
        now_ticks: u64,
        base: &mut B,
        f: impl FnOnce(&mut Share<T>, &mut Sink<'_, T, D, B>),
    ) -> Option<usize> {
        let share = engine.share_by_id_mut(id)?;
        let mut sink = self.sink(base, id);
        f(share, &mut sink);
        let released = sink.released;
        self.settle(engine, now_ticks, base);
        Some(released)
    }

    /// An I/O of device `dev` holding `held` (its tag's) is back from the base (or is being failed after its
    /// dispatch): counted back on its device incarnation, its ticket returned to its
    /// share incarnation (each only if it still exists), and what that releases
    /// dispatched. The host completes the I/O to its caller before or after this.
    #[inline]
    pub fn complete<B: Base<T, D>>(
        &mut self,
        engine: &mut Engine<T>,
        dev: DevHandle,
        held: Option<Held>,
        at_base: bool,
        now_ticks: u64,
        base: &mut B,
    ) {
        if at_base {
            if let Some(d) = self.devices.get_mut(dev) {
                d.note_back();
            }
        }
        let Some(held) = held else {
            return;
        };
        self.return_ticket(engine, held, now_ticks, base);
        self.settle(engine, now_ticks, base);
    }

    #[inline(always)]
    fn return_ticket<B: Base<T, D>>(
        &mut self,
        engine: &mut Engine<T>,
        held: Held,
        now_ticks: u64,
        base: &mut B,
    ) {
        let Some(share) = engine.share_by_id_mut(held.share) else {
            return;
        };
        share.complete(held.ticket, now_ticks, &mut self.sink(base, held.share));
    }

    /// Fails what the last engine call could not dispatch (its device went, its base
    /// refused it), returning their tickets first.
    #[inline(always)]
    fn settle<B: Base<T, D>>(&mut self, engine: &mut Engine<T>, now_ticks: u64, base: &mut B) {
        if !self.failed.is_empty() {
            self.settle_failed(engine, now_ticks, base);
        }
    }

    #[cold]
    #[inline(never)]
    fn settle_failed<B: Base<T, D>>(
        &mut self,
        engine: &mut Engine<T>,
        now_ticks: u64,
        base: &mut B,
    ) {
        while let Some((mut io, why)) = self.failed.pop_front() {
            let mut tag = io.tag();
            if let Some(held) = tag.held.take() {
                io.set_tag(tag);
                self.return_ticket(engine, held, now_ticks, base);
            }
            base.fail(io, why);
        }
    }

    /// Offers the parked I/O to their bases again (see [`Parking::retry`]); a parked I/O
    /// whose device went is failed. Returns how many left the queues.
    pub fn retry_parked<B: Base<T, D>>(
        &mut self,
        engine: &mut Engine<T>,
        now_ticks: u64,
        base: &mut B,
    ) -> usize {
        if self.parking.is_empty() {
            return 0;
        }
        let Adapter {
            devices,
            parking,
            failed,
            ..
        } = self;
        let n = parking.retry(|_, io| {
            let Some(dev) = devices.live_mut(io.tag().dev) else {
                failed.push_back((io, Failure::DeviceGone));
                return None;
            };
            match base.submit(&mut dev.data, io) {
                Submit::Taken => {
                    dev.note_at_base();
                    None
                }
                Submit::NoMem(io) => Some(io),
                Submit::Refused(io) => {
                    failed.push_back((io, Failure::Refused));
                    None
                }
                Submit::Deferred => None,
            }
        });
        self.settle(engine, now_ticks, base);
        n
    }

    /// Device `h` is going: flagged deleted (its I/O at the base still complete through
    /// it), and its parked I/O failed in order, their tickets returned. The host deletes
    /// or drains the device in the engine itself (by name) and fails what that returns.
    pub fn remove_device<B: Base<T, D>>(
        &mut self,
        engine: &mut Engine<T>,
        h: DevHandle,
        now_ticks: u64,
        base: &mut B,
    ) {
        self.devices.mark_deleted(h);
        self.config_changed();
        self.abort_parked(engine, now_ticks, base, |d| d == h);
    }

    /// Fails the parked I/O of the devices `gone` picks, in order, returning their tickets.
    pub fn abort_parked<B: Base<T, D>>(
        &mut self,
        engine: &mut Engine<T>,
        now_ticks: u64,
        base: &mut B,
        gone: impl Fn(DevHandle) -> bool,
    ) {
        let Adapter {
            parking, failed, ..
        } = self;
        parking.take_where(
            |io| gone(io.tag().dev),
            |io| failed.push_back((io, Failure::DeviceGone)),
        );
        self.settle(engine, now_ticks, base);
    }

    /// Forgets the deleted devices that have nothing at the base and nothing parked;
    /// returns how many.
    pub fn reap(&mut self) -> usize {
        let Adapter {
            devices, parking, ..
        } = self;
        devices.reap(|h| parking.any(|io| io.tag().dev == h))
    }
}
