//! Shares that span reactors, on the embedded host: a replica of the module on every
//! reactor but the owner's, and the exchange between them.
//!
//! With more than one reactor, the owner (the control plane's reactor) starts a replica
//! of the module on every other reactor. A channel uses the module of its own reactor, so
//! every I/O is scheduled on the reactor that submitted it, by that reactor's replica of
//! its share, and goes to that reactor's channel of the base: no message and no lock per
//! I/O (see the engine's span module for the scheduling across replicas).
//!
//! - **Control.** Only the owner's engine is changed by the control plane. After a change
//!   the owner sends every replica the layout of each share and the list of live devices
//!   (at its next poller pass); a replica mirrors the shares, opens its own channel to the
//!   base of a new device, and drops a deleted one once its I/O has drained. An I/O for a
//!   device the replica has not heard of yet goes to the owner, which schedules it.
//! - **Exchange.** Every [`EXCHANGE_PERIOD_US`], each replica sends the owner its report
//!   per share; the owner feeds them and its own to the share's hub, sets the other
//!   reactors' counters on its share (what iostat reads), and sends each replica its grant.
//!   A hub serves one incarnation of its share (reports and grants carry it): a share
//!   deleted and created again under its name gets a new hub at the next sync, and a
//!   replica's report about the old one, or a grant for another than it mirrors, is
//!   dropped.
//!
//! Owned by the module's reactor, like the module.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bdev_ioband_engine::adapter::DevHandle;
use bdev_ioband_engine::{CoreReport, Grant, Hub, ShareLayout};

use super::{module_on, send_reply, DevData, IobandModule};
use crate::bdev::{BdevError, BdevIo, IoStatus};
use crate::ioband::DeviceShared;
use crate::reactor::{self, EndpointId};
use crate::ticks::TICKS_PER_SEC;

/// How often replicas and owner exchange, in µs.
pub const EXCHANGE_PERIOD_US: u64 = 1_000;

/// Per module: its place among the reactors and, on the owner, the hubs.
#[derive(Debug)]
pub(super) struct SpanState {
    core: u32,
    /// A replica's owner: reactor and submit endpoint.
    owner: Option<(u32, EndpointId)>,
    cores: u32,
    /// The owner's engine changed since the replicas last heard of it.
    dirty: bool,
    last_exchange_ticks: u64,
    period_ticks: u64,
    hubs: BTreeMap<String, Hub>,
}

impl SpanState {
    pub(super) fn new(core: u32, owner: Option<(u32, EndpointId)>) -> SpanState {
        SpanState {
            core,
            owner,
            cores: reactor::core_count().unwrap_or(1),
            dirty: false,
            last_exchange_ticks: 0,
            period_ticks: (TICKS_PER_SEC / 1_000_000 * EXCHANGE_PERIOD_US).max(1),
            hubs: BTreeMap::new(),
        }
    }

    /// The control plane changed something the replicas must hear of.
    pub(super) fn changed(&mut self) {
        self.dirty = true;
    }

    /// Whether the owner must tell the replicas of a change.
    #[inline]
    pub(super) fn sync_due(&self) -> bool {
        self.dirty && self.owner.is_none() && self.cores > 1
    }

    /// Whether an exchange is due at `now`.
    #[inline]
    pub(super) fn due(&self, now: u64) -> bool {
        self.cores > 1 && now.wrapping_sub(self.last_exchange_ticks) >= self.period_ticks
    }

    /// On a replica, an I/O for a device it has never heard of goes to the owner; the I/O
    /// comes back if it is not forwarded (the owner itself, or a device this replica has
    /// deleted).
    pub(super) fn forward_unknown(&self, mut io: Box<BdevIo>, known: bool) -> Option<Box<BdevIo>> {
        let (Some((core, endpoint)), false) = (self.owner, known) else {
            return Some(io);
        };
        // The owner's table of local channels is not this reactor's.
        io.band.local = None;
        // Only a stopped host fails to deliver; its I/O dies with it.
        let _ = reactor::deliver_io(core, endpoint, io);
        None
    }
}

/// Starts the replica of module `key` on reactor `core` (by message).
pub(super) fn start_replica(
    key: u64,
    core: u32,
    owner_core: u32,
    owner_submit: EndpointId,
) -> Result<(), BdevError> {
    reactor::send_msg(core, move || {
        // Kept alive by its reactor (the module registry holds weak references), and
        // dropped with it.
        if let Ok(m) = IobandModule::build(key, Some((owner_core, owner_submit))) {
            let _ = reactor::keep_alive(m);
        }
    })?;
    Ok(())
}

/// Runs `f` on module `key` of reactor `core` (the current one); if the module is busy
/// (the message arrived from inside it), at the reactor's next pass.
fn with_module(key: u64, core: u32, f: impl FnOnce(&mut IobandModule) + Send + 'static) {
    let Some(m) = module_on(key, core).and_then(|w| w.upgrade()) else {
        return;
    };
    let Ok(mut m) = m.try_borrow_mut() else {
        let _ = reactor::send_msg(core, move || with_module(key, core, f));
        return;
    };
    f(&mut m);
}

impl IobandModule {
    /// Owner: per reactor, `f` of its latest report for `share` (`None`: none yet); empty
    /// on one reactor, or for a share the replicas have not reported yet.
    fn by_core<R>(&self, share: &str, f: impl Fn(Option<&CoreReport>) -> R) -> Vec<R> {
        let Some(hub) = self.span.hubs.get(share) else {
            return Vec::new();
        };
        (0..hub.cores()).map(|c| f(hub.report(c))).collect()
    }

    /// Owner: per reactor, the I/Os of `share` in flight there and, of those, parked on a
    /// refusal of the base, as of the latest reports (see `by_core`).
    pub fn in_flight_by_core(&self, share: &str) -> Vec<(u32, u32)> {
        self.by_core(share, |r| {
            r.map_or((0, 0), |r| (r.in_flight, r.parked.unwrap_or(0)))
        })
    }

    /// Owner: the I/Os each reactor has dispatched for `share`, as of the latest reports
    /// (see `by_core`).
    pub fn dispatched_by_core(&self, share: &str) -> Vec<u64> {
        self.by_core(share, |r| {
            r.map_or(0, |r| {
                r.groups
                    .iter()
                    .filter(|g| g.present)
                    .map(|g| g.stats.dispatched_ios)
                    .sum()
            })
        })
    }

    /// This reactor's reports for every share, with what is parked where the base's depth
    /// is the device's (see [`crate::bdev::Bdev::depth_is_shared`]).
    fn span_reports(&mut self, now: u64) -> Vec<(String, CoreReport)> {
        self.adapter
            .span_reports(&mut self.engine, now, |d: &DevData| {
                d.shared.base.depth_is_shared()
            })
    }

    /// The period's exchange (see the module doc). Returns whether anything moved.
    pub(super) fn exchange(&mut self, now: u64) -> bool {
        self.span.last_exchange_ticks = now;
        match self.span.owner {
            None => {
                let core = self.span.core as usize;
                for (name, mut report) in self.span_reports(now) {
                    if let Some(hub) = self.span.hubs.get_mut(&name) {
                        hub.receive(core, &mut report, now);
                    }
                }
                let names: Vec<String> = self.span.hubs.keys().cloned().collect();
                self.grant_all(now, &names)
            }
            Some((owner_core, _)) => {
                let reports = self.span_reports(now);
                let (key, core) = (self.key, self.span.core);
                let _ = reactor::send_msg(owner_core, move || {
                    with_module(key, owner_core, move |m| m.on_reports(core, reports));
                });
                false
            }
        }
    }

    /// Owner: a replica's reports.
    fn on_reports(&mut self, core: u32, reports: Vec<(String, CoreReport)>) {
        let now = reactor::pass_ticks();
        for (name, mut report) in reports {
            if let Some(hub) = self.span.hubs.get_mut(&name) {
                hub.receive(core as usize, &mut report, now);
            }
        }
    }

    /// Owner: every share's grants, its own applied, the others sent.
    fn grant_all(&mut self, now: u64, names: &[String]) -> bool {
        let cores = self.span.cores as usize;
        let me = self.span.core as usize;
        let mut out: Vec<Vec<(String, Grant)>> = vec![Vec::new(); cores];
        let mut moved = false;
        for name in names {
            let Ok(id) = self.engine.share_id(name) else {
                continue;
            };
            let (Some(share), Some(hub)) = (
                self.engine.share_by_id_mut(id),
                self.span.hubs.get_mut(name),
            ) else {
                continue;
            };
            if hub.incarnation() != id.incarnation() {
                // The share was created again since the last sync: its hub comes with it.
                continue;
            }
            // The other reactors' counters, for the readers of the owner's share.
            for (slot, generation, sum) in hub.remote_stats(me) {
                share.set_remote_stats(slot, generation, sum);
            }
            let mut grants = vec![Grant::default(); cores];
            hub.grant(now, &mut grants);
            let mine = grants[me].clone();
            moved |= self.drive_share(id, now, |share, sink| {
                share.apply_grant(&mine, now, sink);
            }) > 0;
            for (c, g) in grants.into_iter().enumerate() {
                if c != me {
                    out[c].push((name.clone(), g));
                }
            }
        }
        let key = self.key;
        for (c, grants) in out.into_iter().enumerate() {
            if c == me || grants.is_empty() {
                continue;
            }
            let c = u32::try_from(c).unwrap_or(u32::MAX);
            let _ = reactor::send_msg(c, move || {
                with_module(key, c, move |m| m.apply_grants(grants));
            });
        }
        moved
    }

    /// Replica: the owner's grants.
    fn apply_grants(&mut self, grants: Vec<(String, Grant)>) {
        let now = reactor::pass_ticks();
        for (name, grant) in grants {
            let Ok(id) = self.engine.share_id(&name) else {
                continue;
            };
            // A grant for another incarnation than the one mirrored here (the share was
            // created again and the sync has not come yet) is not this share's.
            if self.engine.incarnation_of(&name) != Some(grant.incarnation) {
                continue;
            }
            self.drive_share(id, now, |share, sink| {
                share.apply_grant(&grant, now, sink);
            });
        }
    }

    /// Owner: sends every replica the shares' layouts and the live devices.
    pub(super) fn sync_replicas(&mut self) {
        self.span.dirty = false;
        let cores = self.span.cores;
        self.engine.span_cores(cores);
        let ids: Vec<_> = self.engine.share_ids().collect();
        let mut layouts = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(share) = self.engine.share_by_id_mut(id) else {
                continue;
            };
            let name = share.name().to_owned();
            let params = *share.params();
            match self.span.hubs.get_mut(&name) {
                Some(hub) if hub.incarnation() == id.incarnation() => {
                    let _ = hub.set_params(params);
                }
                // New, or deleted and created again under its name: a new hub, so that
                // nothing learnt about the old share outlives it.
                _ => {
                    self.span.hubs.remove(&name);
                    let incarnation = id.incarnation();
                    if let Ok(hub) = Hub::new(cores as usize, params, TICKS_PER_SEC, incarnation) {
                        self.span.hubs.insert(name.clone(), hub);
                    }
                }
            }
            layouts.push((name, id.incarnation(), share.layout()));
        }
        let names: BTreeSet<&str> = layouts.iter().map(|(n, _, _)| n.as_str()).collect();
        self.span.hubs.retain(|n, _| names.contains(n.as_str()));
        let devices: Vec<Arc<DeviceShared>> = self.live_devices().cloned().collect();
        let key = self.key;
        for c in (0..cores).filter(|&c| c != self.span.core) {
            let (layouts, devices) = (layouts.clone(), devices.clone());
            let _ = reactor::send_msg(c, move || {
                with_module(key, c, move |m| m.apply_sync(&layouts, devices));
            });
        }
    }

    /// Replica: takes on the owner's shares and devices.
    fn apply_sync(
        &mut self,
        layouts: &[(String, u64, ShareLayout)],
        devices: Vec<Arc<DeviceShared>>,
    ) {
        self.adapter.config_changed();
        for mut io in self.engine.mirror(layouts) {
            io.status = IoStatus::Aborted;
            send_reply(io);
        }
        self.engine.span_cores(self.span.cores);
        let live: BTreeSet<DevHandle> = devices.iter().map(|d| d.handle).collect();
        let live_names: BTreeSet<String> = devices.iter().map(|d| d.name.clone()).collect();
        for shared in devices {
            let Ok(dref) = self.engine.device(&shared.name) else {
                continue;
            };
            let h = shared.handle;
            match self.adapter.devices.get(h) {
                Some(d) => {
                    if !d.is_deleted() {
                        self.adapter
                            .devices
                            .set_route(h, dref.share_id, dref.device);
                    }
                }
                None => {
                    // No channel to the base here: the owner keeps scheduling its I/O.
                    let Ok(base_ch) = shared.base.get_io_channel() else {
                        continue;
                    };
                    let base = shared.base_idx;
                    self.adapter.mirror_device(
                        h,
                        dref.share_id,
                        dref.device,
                        base,
                        DevData { shared, base_ch },
                    );
                }
            }
        }
        let gone: Vec<DevHandle> = self
            .adapter
            .devices
            .iter()
            .filter(|(h, d)| !d.is_deleted() && !live.contains(h))
            .map(|(h, _)| h)
            .collect();
        if !gone.is_empty() {
            let mut names = Vec::new();
            for h in &gone {
                if self.adapter.devices.mark_deleted(*h) {
                    if let Some(d) = self.adapter.devices.get(*h) {
                        names.push(d.data.shared.name.clone());
                    }
                }
            }
            // A device whose bdev went but which stays (its base was removed: it waits
            // for it) keeps its engine queue here: what this reactor queued for it goes,
            // as it would with the device. (Unless its bdev is back already, under a new
            // handle: then the queue is the new bdev's too and stays.)
            for name in names.iter().filter(|n| !live_names.contains(*n)) {
                for mut io in self.engine.drain_device(name).unwrap_or_default() {
                    io.status = IoStatus::Aborted;
                    send_reply(io);
                }
            }
            self.abort_parked(|h| gone.contains(&h));
        }
        self.refresh_share_ids();
        self.reap();
    }
}
