//! A simulation harness: a model device with a service rate, tenants with their own arrival
//! patterns, and the engine between them, driven over simulated time.
//!
//! Everything runs on the caller's thread in ticks; there is no clock and no randomness, so
//! a run is exactly repeatable. The harness reports what each tenant achieved per window,
//! which is what the property tests, the benchmarks and the `ioband-sim` demo look at.
//!
//! The device serves one I/O at a time, each taking `max(1/iops, bytes/bandwidth)`, and
//! completes it `latency` later: throughput is finite and queueing happens, as on a
//! saturated NVMe namespace seen from one share. A tenant may add latency of its own to
//! each of its I/Os (a slow request: it waits without holding the server), and may think
//! between a completion and its next submission (a closed loop behind a network round
//! trip).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::group::{GroupId, GroupKey, Op, Ticket};
use crate::params::{GroupValue, ShareParams};
use crate::share::{Admit, DeviceIdx, Share};
use crate::EngineError;

mod span;

pub use span::{run_span, SpanConfig, SpanReport};

/// The device model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelDevice {
    /// Most I/Os per second.
    pub iops: u64,
    /// Most bytes per second.
    pub bytes_per_sec: u64,
    /// Added to every I/O's service, in ticks.
    pub latency_ticks: u64,
}

/// When a tenant has I/O outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Always keeps `queue_depth` I/Os outstanding.
    Saturating {
        /// I/Os kept outstanding.
        queue_depth: u32,
    },
    /// Keeps `queue_depth` outstanding during `on_ticks`, then none for `off_ticks`, and so
    /// on, starting with an on period.
    Bursty {
        /// I/Os kept outstanding while on.
        queue_depth: u32,
        /// Length of an on period.
        on_ticks: u64,
        /// Length of an off period.
        off_ticks: u64,
    },
    /// Idle until `start_ticks`, saturating afterwards.
    IdleThenBusy {
        /// I/Os kept outstanding once busy.
        queue_depth: u32,
        /// When it starts.
        start_ticks: u64,
    },
    /// Keeps `queue_depth` outstanding from `start_ticks` until `stop_ticks` (a tenant
    /// that arrives and leaves), none before or after.
    Between {
        /// I/Os kept outstanding while present.
        queue_depth: u32,
        /// When it arrives.
        start_ticks: u64,
        /// When it leaves.
        stop_ticks: u64,
    },
}

impl Arrival {
    /// How many I/Os the tenant wants outstanding at `now`, and when that next changes.
    fn demand(&self, now: u64) -> (u32, Option<u64>) {
        match *self {
            Arrival::Saturating { queue_depth } => (queue_depth, None),
            Arrival::IdleThenBusy {
                queue_depth,
                start_ticks,
            } => {
                if now >= start_ticks {
                    (queue_depth, None)
                } else {
                    (0, Some(start_ticks))
                }
            }
            Arrival::Between {
                queue_depth,
                start_ticks,
                stop_ticks,
            } => {
                if now < start_ticks {
                    (0, Some(start_ticks))
                } else if now < stop_ticks {
                    (queue_depth, Some(stop_ticks))
                } else {
                    (0, None)
                }
            }
            Arrival::Bursty {
                queue_depth,
                on_ticks,
                off_ticks,
            } => {
                let period = (on_ticks + off_ticks).max(1);
                let phase = now % period;
                if phase < on_ticks {
                    (queue_depth, Some(now - phase + on_ticks))
                } else {
                    (0, Some(now - phase + period))
                }
            }
        }
    }
}

/// One tenant: a group and its load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Its group key (must not be `None`).
    pub key: GroupKey,
    /// Its setting (weight or min:max).
    pub value: GroupValue,
    /// Which of the simulated ioband devices it submits to.
    pub device: usize,
    /// Direction of its I/O.
    pub op: Op,
    /// Size of each I/O.
    pub io_bytes: u64,
    /// When it has I/O outstanding.
    pub arrival: Arrival,
    /// Ticks between a completion and the submission that replaces it (0: at once).
    pub think_ticks: u64,
    /// Latency added to each of its I/Os after service, without holding the server.
    pub slow_ticks: u64,
}

/// A change made while the simulation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Detach the tenant's group (its I/O then goes to the default group).
    Detach(usize),
    /// Give the tenant's group a new value.
    SetValue(usize, GroupValue),
    /// Change the share's knobs.
    SetParams(ShareParams),
}

/// A whole simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// The share's knobs.
    pub params: ShareParams,
    /// Tick rate.
    pub ticks_per_sec: u64,
    /// The device.
    pub device: ModelDevice,
    /// How many ioband devices the share has (tenants spread over them).
    pub ioband_devices: usize,
    /// The tenants.
    pub tenants: Vec<Tenant>,
    /// When load stops; outstanding I/O then drains.
    pub duration_ticks: u64,
    /// Width of a reporting window.
    pub window_ticks: u64,
    /// Changes at given ticks, in any order.
    pub actions: Vec<(u64, Action)>,
}

/// Per tenant, per window: what was dispatched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// I/Os dispatched.
    pub ios: u64,
    /// Bytes dispatched.
    pub bytes: u64,
    /// Policy cost dispatched (I/Os or sectors).
    pub cost: u64,
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimReport {
    /// `windows[w][t]`: tenant `t` in window `w`, for the windows of the loaded period.
    pub windows: Vec<Vec<WindowStats>>,
    /// Per tenant: what was dispatched after load stopped, while draining.
    pub drain: Vec<WindowStats>,
    /// I/Os each tenant submitted.
    pub submitted: Vec<u64>,
    /// I/Os each tenant had completed.
    pub completed: Vec<u64>,
    /// I/Os dispatched more than once (must be 0).
    pub dispatched_twice: u64,
    /// I/Os submitted and never dispatched (must be 0 once drained).
    pub never_dispatched: u64,
    /// Tick at which the last I/O completed.
    pub end_ticks: u64,
}

impl SimReport {
    /// Each tenant's fraction of the dispatched cost in window `w`.
    pub fn cost_shares(&self, w: usize) -> Vec<f64> {
        let total: u64 = self.windows[w].iter().map(|s| s.cost).sum();
        self.windows[w]
            .iter()
            .map(|s| s.cost as f64 / total.max(1) as f64)
            .collect()
    }

    /// Total bytes per tenant over windows `from..to`.
    pub fn bytes_between(&self, from: usize, to: usize) -> Vec<u64> {
        let n = self.submitted.len();
        (0..n)
            .map(|t| self.windows[from..to].iter().map(|w| w[t].bytes).sum())
            .collect()
    }
}

/// The configured share of each tenant by weight (weight / Σweight of the tenants).
pub fn weight_shares(tenants: &[Tenant]) -> Vec<f64> {
    let weight = |t: &Tenant| match t.value {
        GroupValue::Weight(w) => f64::from(w),
        GroupValue::RangeBw { .. } => f64::from(crate::DEFAULT_WEIGHT),
    };
    let total: f64 = tenants.iter().map(weight).sum();
    tenants.iter().map(|t| weight(t) / total).collect()
}

struct InDevice {
    done_ticks: u64,
    id: usize,
    ticket: Ticket,
}

impl PartialEq for InDevice {
    fn eq(&self, other: &Self) -> bool {
        (self.done_ticks, self.id) == (other.done_ticks, other.id)
    }
}
impl Eq for InDevice {}
impl PartialOrd for InDevice {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InDevice {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.done_ticks, self.id).cmp(&(other.done_ticks, other.id))
    }
}

/// The simulation's mutable state apart from the engine.
struct World<'a> {
    config: &'a SimConfig,
    report: SimReport,
    owner: Vec<usize>,
    dispatched: Vec<bool>,
    outstanding: Vec<u32>,
    /// Per tenant: when each of its thinking slots may submit again (in order).
    thinking: Vec<VecDeque<u64>>,
    device: BinaryHeap<Reverse<InDevice>>,
    busy_until: u64,
}

impl World<'_> {
    fn service_ticks(&self, bytes: u64) -> u64 {
        let tps = u128::from(self.config.ticks_per_sec);
        let dev = self.config.device;
        let by_iops = tps / u128::from(dev.iops.max(1));
        let by_bw = u128::from(bytes) * tps / u128::from(dev.bytes_per_sec.max(1));
        u64::try_from(by_iops.max(by_bw)).unwrap_or(u64::MAX).max(1)
    }

    /// The dispatch sink: the engine let `id` go at `now`; the device takes it.
    fn on_dispatch(&mut self, id: usize, ticket: Ticket, now: u64) {
        let t = self.owner[id];
        if self.dispatched[id] {
            self.report.dispatched_twice += 1;
        }
        self.dispatched[id] = true;
        let window = self.config.window_ticks.max(1);
        let w = usize::try_from(now / window).unwrap_or(usize::MAX);
        let s = if now >= self.config.duration_ticks || w >= self.report.windows.len() {
            &mut self.report.drain[t]
        } else {
            &mut self.report.windows[w][t]
        };
        s.ios += 1;
        s.bytes += ticket.bytes();
        s.cost += self.config.params.policy.cost(ticket.bytes());
        let start = now.max(self.busy_until);
        self.busy_until = start + self.service_ticks(ticket.bytes());
        let done_ticks =
            self.busy_until + self.config.device.latency_ticks + self.config.tenants[t].slow_ticks;
        self.device.push(Reverse(InDevice {
            done_ticks,
            id,
            ticket,
        }));
    }
}

/// Runs a simulation to the end, draining all I/O: one share on one core.
pub fn run(config: &SimConfig) -> Result<SimReport, EngineError> {
    Ok(simulate(config, None)?.sim)
}

/// The cores of a simulated run: one share replica each, the tenants spread over them.
pub(crate) struct Cores {
    pub(crate) shares: Vec<Share<usize>>,
    pub(crate) devices: Vec<DeviceIdx>,
    pub(crate) groups: Vec<GroupId>,
}

impl Cores {
    /// `n` replicas built by the same control calls in the same order.
    fn new(config: &SimConfig, n: usize) -> Result<Cores, EngineError> {
        let ndev = config.ioband_devices.max(1);
        let mut cores = Cores {
            shares: Vec::with_capacity(n),
            devices: Vec::new(),
            groups: Vec::new(),
        };
        for _ in 0..n.max(1) {
            let mut share = Share::new("sim", config.params, config.ticks_per_sec)?;
            let devices = (0..ndev)
                .map(|d| share.add_device(&format!("sim{d}")))
                .collect::<Result<Vec<_>, _>>()?;
            let mut groups = Vec::with_capacity(config.tenants.len());
            for t in &config.tenants {
                let dev = *devices.get(t.device).ok_or_else(|| {
                    EngineError::Parse(format!("tenant device {} out of range", t.device))
                })?;
                groups.push(share.attach(dev, t.key.clone(), Some(t.value))?);
            }
            if n > 1 {
                share.span_cores(u32::try_from(n).unwrap_or(u32::MAX));
            }
            cores.shares.push(share);
            cores.devices = devices;
            cores.groups = groups;
        }
        Ok(cores)
    }

    /// Applies a control action on every core.
    fn act(&mut self, config: &SimConfig, action: &Action) -> Result<(), EngineError> {
        for share in &mut self.shares {
            match action {
                Action::Detach(t) => {
                    let tenant = &config.tenants[*t];
                    share.detach(self.devices[tenant.device], &tenant.key)?;
                }
                Action::SetValue(t, v) => {
                    let tenant = &config.tenants[*t];
                    share.set_value(self.devices[tenant.device], &tenant.key, *v)?;
                }
                Action::SetParams(p) => share.set_params(*p)?,
            }
        }
        Ok(())
    }
}

/// Runs a simulation over one share (`span` None) or over the replicas of a share that
/// spans cores, exchanging with a hub as `span` says.
pub(crate) fn simulate(
    config: &SimConfig,
    span: Option<&span::SpanConfig>,
) -> Result<span::SpanReport, EngineError> {
    let ncores = span.map_or(1, |s| s.cores.max(1));
    let mut cores = Cores::new(config, ncores)?;
    let mut exchange = match span {
        Some(s) => Some(span::Exchange::new(config, s, &cores)?),
        None => None,
    };
    let core_of = |t: usize, nth: u64| span.map_or(0, |s| s.core_of(t, nth));
    // The core that dispatched each I/O: its completion goes back there.
    let mut io_core: Vec<usize> = Vec::new();

    let n = config.tenants.len();
    let nwin = usize::try_from(config.duration_ticks.div_ceil(config.window_ticks.max(1)))
        .map_err(|_| EngineError::Parse("too many windows".into()))?;
    let mut world = World {
        config,
        report: SimReport {
            windows: vec![vec![WindowStats::default(); n]; nwin.max(1)],
            drain: vec![WindowStats::default(); n],
            submitted: vec![0; n],
            completed: vec![0; n],
            dispatched_twice: 0,
            never_dispatched: 0,
            end_ticks: 0,
        },
        owner: Vec::new(),
        dispatched: Vec::new(),
        outstanding: vec![0; n],
        thinking: vec![VecDeque::new(); n],
        device: BinaryHeap::new(),
        busy_until: 0,
    };
    let mut actions = config.actions.clone();
    actions.sort_by_key(|(at, _)| *at);
    let mut actions = VecDeque::from(actions);

    let mut now = 0u64;
    loop {
        let w = &mut world;
        // Control actions due now.
        while actions.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, action)) = actions.pop_front() else {
                break;
            };
            cores.act(config, &action)?;
            if let (Some(x), Action::SetParams(p)) = (exchange.as_mut(), &action) {
                x.set_params(*p)?;
            }
            for share in &mut cores.shares {
                share.poll(now, &mut |id, tk| w.on_dispatch(id, tk, now));
            }
        }

        // The exchange with the hub.
        if let Some(x) = exchange.as_mut() {
            let busy = !w.device.is_empty()
                || now < config.duration_ticks
                || cores.shares.iter().any(|s| s.queued() > 0);
            x.step(now, busy, &mut cores, &mut |id, tk| {
                w.on_dispatch(id, tk, now)
            });
        }

        // Completions due now, each to the core that dispatched it.
        while w.device.peek().is_some_and(|d| d.0.done_ticks <= now) {
            let Some(Reverse(done)) = w.device.pop() else {
                break;
            };
            let t = w.owner[done.id];
            w.outstanding[t] -= 1;
            w.report.completed[t] += 1;
            let think = config.tenants[t].think_ticks;
            if think > 0 {
                w.thinking[t].push_back(now + think);
            }
            cores.shares[io_core[done.id]]
                .complete(done.ticket, now, &mut |id, tk| w.on_dispatch(id, tk, now));
        }
        for share in &mut cores.shares {
            share.poll(now, &mut |id, tk| w.on_dispatch(id, tk, now));
        }

        // Arrivals: closed loop up to each tenant's demand. Tenants that want I/O at the
        // same instant take turns, one I/O each, as simultaneous arrivals would.
        let mut next_change: Option<u64> = None;
        if now < config.duration_ticks {
            let wants: Vec<u32> = config
                .tenants
                .iter()
                .map(|tenant| {
                    let (want, change) = tenant.arrival.demand(now);
                    if let Some(c) = change {
                        next_change = Some(next_change.map_or(c, |x: u64| x.min(c)));
                    }
                    want
                })
                .collect();
            for thinking in &mut w.thinking {
                while thinking.front().is_some_and(|&due| due <= now) {
                    thinking.pop_front();
                }
                if let Some(&due) = thinking.front() {
                    next_change = Some(next_change.map_or(due, |x: u64| x.min(due)));
                }
            }
            let mut pending = true;
            while pending {
                pending = false;
                for (t, tenant) in config.tenants.iter().enumerate() {
                    let busy =
                        w.outstanding[t] + u32::try_from(w.thinking[t].len()).unwrap_or(u32::MAX);
                    if busy >= wants[t] {
                        continue;
                    }
                    pending = true;
                    let id = w.owner.len();
                    w.owner.push(t);
                    w.dispatched.push(false);
                    w.outstanding[t] += 1;
                    let core = core_of(t, w.report.submitted[t]);
                    io_core.push(core);
                    w.report.submitted[t] += 1;
                    let admit = cores.shares[core].submit(
                        cores.devices[tenant.device],
                        cores.groups[t],
                        id,
                        tenant.op,
                        tenant.io_bytes,
                        now,
                        &mut |id, tk| w.on_dispatch(id, tk, now),
                    );
                    if let Admit::NoDevice(_) = admit {
                        return Err(EngineError::NoSuchDevice(format!("sim{}", tenant.device)));
                    }
                }
            }
        }

        // Next event.
        let wakeup = cores
            .shares
            .iter()
            .filter_map(Share::next_wakeup_ticks)
            .min();
        let queued = cores.shares.iter().any(|s| s.queued() > 0);
        let candidates = [
            w.device.peek().map(|d| d.0.done_ticks),
            next_change.filter(|&c| c < config.duration_ticks),
            wakeup,
            actions.front().map(|(at, _)| *at),
            Some(config.duration_ticks).filter(|&d| d > now),
            exchange.as_ref().and_then(|x| {
                x.next_event(
                    now,
                    queued || !w.device.is_empty() || now < config.duration_ticks,
                )
            }),
        ];
        match candidates.into_iter().flatten().filter(|&t| t > now).min() {
            Some(t) => now = t,
            None if w.device.is_empty() => break,
            None => now += 1,
        }
    }
    world.report.end_ticks = now;
    world.report.never_dispatched = world.dispatched.iter().filter(|d| !**d).count() as u64;
    Ok(span::SpanReport {
        sim: world.report,
        max_lag_cost: exchange.as_ref().map_or(0, |x| x.max_lag_cost),
        lag_bound_cost: exchange.as_ref().map_or(0, |x| x.lag_bound_cost),
        rounds: exchange.as_ref().map_or(0, |x| x.rounds),
    })
}
