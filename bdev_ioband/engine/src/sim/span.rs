//! The multi-core simulation: N virtual cores, each with its replica of the share, and a
//! hub they exchange with every period, with explicit message delays.
//!
//! Runs on the caller's thread, like the rest of [`crate::sim`]. Each tenant submits on
//! its core; the model device is shared. Every period each core's report leaves for the
//! hub and arrives `delay` later; the hub's grants take another `delay` to come back.
//! Just before a grant is applied (when a core's view is oldest), the run measures, for
//! every group on every core, how much of the group's service on the other cores that
//! core has not heard of yet: the lag that the share module's bound limits.

use std::collections::VecDeque;

use super::{simulate, Action, Cores, SimConfig, SimReport};
use crate::group::Ticket;
use crate::share::{CoreReport, Grant, Hub};
use crate::EngineError;

/// How the share spans cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanConfig {
    /// How many cores.
    pub cores: usize,
    /// Per tenant, the core it submits on (a tenant past the end: its index mod cores).
    pub tenant_cores: Vec<usize>,
    /// Tenants that submit on every core in turn (one group served on all cores, as a
    /// bdev that jobs on several cores share), whatever `tenant_cores` says.
    pub spread: Vec<usize>,
    /// Exchange period, in ticks.
    pub period_ticks: u64,
    /// One-way delay of a report or a grant, in ticks.
    pub delay_ticks: u64,
}

impl SpanConfig {
    /// The core of tenant `t`'s `nth` I/O.
    pub fn core_of(&self, t: usize, nth: u64) -> usize {
        let cores = self.cores.max(1);
        if self.spread.contains(&t) {
            return usize::try_from(nth % cores as u64).unwrap_or(0);
        }
        self.tenant_cores.get(t).copied().unwrap_or(t) % cores
    }
}

/// What a multi-core run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanReport {
    /// What each tenant got, as for one core.
    pub sim: SimReport,
    /// Largest lag seen: cost dispatched for a group on other cores that a core had not
    /// heard of, just before a grant.
    pub max_lag_cost: u64,
    /// The documented bound on that lag for this run.
    pub lag_bound_cost: u64,
    /// Exchange rounds run.
    pub rounds: u64,
}

/// Runs a simulation of a share spread over `span.cores` cores.
pub fn run_span(config: &SimConfig, span: &SpanConfig) -> Result<SpanReport, EngineError> {
    if span.period_ticks == 0 {
        return Err(EngineError::OutOfRange {
            param: "period_ticks",
            value: 0,
            min: 1,
            max: i64::MAX,
        });
    }
    simulate(config, Some(span))
}

/// Messages in flight between the cores and the hub, and the lag measurement.
pub(crate) struct Exchange {
    hub: Hub,
    period_ticks: u64,
    delay_ticks: u64,
    next_round_ticks: u64,
    reports: VecDeque<(u64, Vec<CoreReport>)>,
    grants: VecDeque<(u64, Vec<Grant>)>,
    /// Ends the rounds once nothing is left (or, for a stuck run, long after the load).
    last_round_ticks: u64,
    pub(crate) max_lag_cost: u64,
    pub(crate) lag_bound_cost: u64,
    pub(crate) rounds: u64,
}

impl Exchange {
    pub(crate) fn new(
        config: &SimConfig,
        span: &SpanConfig,
        cores: &Cores,
    ) -> Result<Exchange, EngineError> {
        let hub = Hub::new(cores.shares.len(), config.params, config.ticks_per_sec, 0)?;
        // The bound of the share module's doc: (9/8·io_limit + cores)·c_max + R·(P + 2D).
        let io_limit = config
            .actions
            .iter()
            .filter_map(|(_, a)| match a {
                Action::SetParams(p) => Some(p.effective_io_limit()),
                _ => None,
            })
            .chain([config.params.effective_io_limit()])
            .max()
            .unwrap_or(0);
        let c_max = config
            .tenants
            .iter()
            .map(|t| config.params.policy.cost(t.io_bytes))
            .max()
            .unwrap_or(1);
        let stale_ticks = u128::from(span.period_ticks + 2 * span.delay_ticks);
        let rate = u128::from(config.device.iops) * u128::from(c_max) * stale_ticks
            / u128::from(config.ticks_per_sec.max(1));
        let held = (u64::from(io_limit) * 9 / 8 + 1 + cores.shares.len() as u64) * c_max;
        Ok(Exchange {
            hub,
            period_ticks: span.period_ticks,
            delay_ticks: span.delay_ticks,
            next_round_ticks: 0,
            reports: VecDeque::new(),
            grants: VecDeque::new(),
            last_round_ticks: config.duration_ticks + 10 * config.ticks_per_sec,
            max_lag_cost: 0,
            lag_bound_cost: held + u64::try_from(rate.div_ceil(1)).unwrap_or(u64::MAX),
            rounds: 0,
        })
    }

    pub(crate) fn set_params(&mut self, params: crate::ShareParams) -> Result<(), EngineError> {
        self.hub.set_params(params)
    }

    /// Runs what is due at `now`: a new round's reports, reports reaching the hub (which
    /// answers), grants reaching the cores. Rounds run while the share is `busy` (I/O
    /// submitted, queued or in flight).
    pub(crate) fn step<F: FnMut(usize, Ticket)>(
        &mut self,
        now: u64,
        busy: bool,
        cores: &mut Cores,
        sink: &mut F,
    ) {
        if busy && now >= self.next_round_ticks && now <= self.last_round_ticks {
            let mut out = vec![CoreReport::default(); cores.shares.len()];
            for (share, report) in cores.shares.iter_mut().zip(out.iter_mut()) {
                share.span_report(now, report);
            }
            self.reports.push_back((now + self.delay_ticks, out));
            self.rounds += 1;
            while self.next_round_ticks <= now {
                self.next_round_ticks += self.period_ticks;
            }
        }
        while self.reports.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, mut reports)) = self.reports.pop_front() else {
                break;
            };
            for (c, report) in reports.iter_mut().enumerate() {
                self.hub.receive(c, report, now);
            }
            let mut grants = vec![Grant::default(); cores.shares.len()];
            self.hub.grant(now, &mut grants);
            self.grants.push_back((now + self.delay_ticks, grants));
        }
        while self.grants.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, grants)) = self.grants.pop_front() else {
                break;
            };
            self.measure_lag(cores);
            // Cores apply their grants in turn, starting from a different one each round:
            // no core is always first at the device.
            let n = grants.len();
            let first = usize::try_from(self.rounds).unwrap_or(0) % n.max(1);
            for i in 0..n {
                let c = (first + i) % n;
                cores.shares[c].apply_grant(&grants[c], now, sink);
            }
        }
    }

    /// The largest service of a group on other cores that a core has not heard of yet.
    fn measure_lag(&mut self, cores: &Cores) {
        for &group in &cores.groups {
            let views: Vec<(u64, u64)> = cores
                .shares
                .iter()
                .filter_map(|s| s.span_costs(group))
                .collect();
            let total: u64 = views.iter().map(|(own, _)| own).sum();
            for (own, remote) in views {
                let lag = total.saturating_sub(own + remote);
                self.max_lag_cost = self.max_lag_cost.max(lag);
            }
        }
    }

    /// When the exchange next has something to do (None once the run is over).
    pub(crate) fn next_event(&self, now: u64, busy: bool) -> Option<u64> {
        let messages = [
            self.reports.front().map(|(at, _)| *at),
            self.grants.front().map(|(at, _)| *at),
        ]
        .into_iter()
        .flatten()
        .min();
        let round = (busy && self.next_round_ticks <= self.last_round_ticks)
            .then_some(self.next_round_ticks.max(now + 1));
        [messages, round].into_iter().flatten().min()
    }
}
