//! One run: start the embedded host (one reactor thread per core of the mask, the main
//! reactor on the calling thread), create the bdevs from an SPDK JSON config, resolve and
//! check every job (and the control schedule) before any I/O, run the jobs on their
//! reactors while making the scheduled control calls, then collect their outcomes and the
//! ioband share tables and stop the host.
//!
//! Threading: [`run`] owns the main reactor and polls it itself (the jobs placed on core 0
//! run there, and the control events are called there); the other reactors run on their
//! own threads until the run stops them.

use std::io::{IsTerminal, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bdev_ioband_engine::GroupKey;

use super::events::{check_events, in_time_order, ControlEvent, EventReport};
use super::hist::Histogram;
use super::job::{self, JobOutcome, JobPlan, Live};
use super::opts::{format_mask, JobSpec};
use super::report::{self, GroupInput, JobReport, RunReport, ShareTable};
use crate::app::App;
use crate::bdev::BdevRef;
use crate::reactor::{self, Reactor, ReactorSet};
use crate::rpc::config::load_subsystems;
use crate::rpc::Methods;
use crate::ticks::{Clock, TICKS_PER_SEC};

/// A job's bdev when it names none: every bdev that no vbdev claims (bdevperf's default).
pub const ALL_BDEVS: &str = "*";

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Lcores of the reactors (index 0 is the main one).
    pub lcores: Vec<u32>,
    /// An SPDK JSON config's text, replayed before the jobs start.
    pub config_json: Option<String>,
    /// The jobs.
    pub jobs: Vec<JobSpec>,
    /// Seconds each job runs unless it says otherwise.
    pub runtime_s: f64,
    /// Control calls made while the jobs run.
    pub events: Vec<ControlEvent>,
    /// Share window, seconds.
    pub window_s: f64,
    /// Print a live `\r` progress line (only where stdout is a terminal).
    pub progress: bool,
    /// Set from outside (a signal) to stop early.
    pub stop: Arc<AtomicBool>,
    /// Seed of the random offsets.
    pub seed: u64,
}

impl RunConfig {
    /// Seconds from the run's start to the latest end of any job (`startdelay` +
    /// runtime), and at least `runtime_s`: the run's duration.
    pub fn duration_s(&self) -> f64 {
        self.jobs
            .iter()
            .map(|j| j.start_delay_s + j.runtime_s.unwrap_or(self.runtime_s))
            .fold(self.runtime_s, f64::max)
    }

    /// A run of `jobs` on `lcores` with defaults for the rest.
    pub fn new(lcores: Vec<u32>, jobs: Vec<JobSpec>, runtime_s: f64) -> RunConfig {
        RunConfig {
            lcores,
            config_json: None,
            jobs,
            runtime_s,
            events: Vec::new(),
            window_s: 1.0,
            progress: false,
            stop: Arc::new(AtomicBool::new(false)),
            seed: 0x1234_5678,
        }
    }
}

/// The host of one run.
struct Host {
    main: Reactor,
    threads: Vec<std::thread::JoinHandle<()>>,
    app: Option<Rc<App>>,
}

impl Host {
    fn start(lcores: &[u32]) -> Result<Host, String> {
        let mut set = ReactorSet::new(lcores, Clock::monotonic(), false);
        let main_seed = set.take_seed(0).ok_or("no main reactor")?;
        let threads = set.spawn_secondaries()?;
        let main = main_seed.build();
        let mut host = Host {
            main,
            threads,
            app: None,
        };
        match host.main.enter(App::new) {
            Ok(app) => host.app = Some(Rc::new(app)),
            Err(e) => {
                host.stop();
                return Err(e.to_string());
            }
        }
        Ok(host)
    }

    fn app(&self) -> Rc<App> {
        self.app.clone().expect("set at start")
    }

    fn stop(&mut self) {
        let app = self.app.take();
        self.main.enter(|| {
            drop(app);
            let _ = reactor::request_stop();
        });
        self.main.poll_once();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Resolves jobs against the host's bdevs: names to bdevs, cpumasks to reactors, sizes to
/// blocks. Every error names where the job was defined.
fn resolve(cfg: &RunConfig, app: &App) -> Result<Vec<(JobSpec, BdevRef, u32)>, String> {
    let mut out = Vec::new();
    let mut rr = 0usize;
    for spec in &cfg.jobs {
        let o = &spec.origin;
        let bdevs: Vec<BdevRef> = if spec.bdev == ALL_BDEVS {
            let registry = app.bdevs.borrow();
            let all: Vec<BdevRef> = registry
                .iter()
                .filter(|b| registry.claimers(b.name()).is_empty())
                .cloned()
                .collect();
            if all.is_empty() {
                return Err(
                    "no bdevs to run on (give --json with a config that creates some)".into(),
                );
            }
            all
        } else if let Ok(b) = app.bdev(&spec.bdev) {
            vec![b]
        } else {
            let parts: Vec<&str> = spec.bdev.split(':').collect();
            let found: Vec<BdevRef> = parts.iter().filter_map(|p| app.bdev(p).ok()).collect();
            if parts.len() > 1 && found.len() == parts.len() {
                found
            } else {
                let names: Vec<String> = app
                    .bdevs
                    .borrow()
                    .iter()
                    .map(|b| b.name().to_owned())
                    .collect();
                return Err(format!(
                    "{}unknown bdev '{}' in job [{}] (bdevs: {})",
                    o.at(o.filename_line),
                    spec.bdev,
                    spec.name,
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ));
            }
        };
        let multi = bdevs.len() > 1;
        for bdev in bdevs {
            let bs = u64::from(bdev.block_size());
            if spec.workload.flush {
                // A FLUSH moves no data: its size does not matter.
            } else if spec.io_size % bs != 0 {
                return Err(format!(
                    "{}I/O size {} of job [{}] is not a multiple of {}'s block size {}",
                    o.at(o.bs_line),
                    spec.io_size,
                    spec.name,
                    bdev.name(),
                    bs
                ));
            }
            if !spec.workload.flush && spec.io_size / bs > bdev.num_blocks() {
                return Err(format!(
                    "{}I/O size {} of job [{}] is larger than {}",
                    o.at(o.bs_line),
                    spec.io_size,
                    spec.name,
                    bdev.name()
                ));
            }
            let core = match &spec.cpumask {
                Some(mask) => {
                    let Some(i) = cfg.lcores.iter().position(|c| mask.contains(c)) else {
                        return Err(format!(
                            "{}cpumask {} of job [{}] selects no core of the run's mask {}",
                            o.at(o.section_line),
                            format_mask(mask),
                            spec.name,
                            format_mask(&cfg.lcores)
                        ));
                    };
                    i
                }
                None => {
                    rr += 1;
                    (rr - 1) % cfg.lcores.len()
                }
            };
            let mut s = spec.clone();
            if multi || spec.bdev == ALL_BDEVS {
                s.name = if spec.bdev == ALL_BDEVS {
                    bdev.name().to_owned()
                } else {
                    format!("{}/{}", spec.name, bdev.name())
                };
                s.bdev = bdev.name().to_owned();
            }
            out.push((s, bdev, u32::try_from(core).unwrap_or(0)));
        }
    }
    Ok(out)
}

/// The group an I/O of `key` lands in on ioband bdev `bdev`: its own if attached, else the
/// default group.
fn landing_group(attached: &[GroupKey], key: Option<&GroupKey>) -> GroupKey {
    match key {
        Some(k) if attached.contains(k) => k.clone(),
        _ => GroupKey::None,
    }
}

fn share_tables(
    app: &App,
    jobs: &[(JobSpec, BdevRef, u32)],
    outcomes: &[JobOutcome],
    runtime_s: f64,
    window_s: f64,
) -> Vec<ShareTable> {
    let module = app.ioband.borrow();
    let engine = module.engine();
    // One table per share: the groups of every ioband bdev of a share compete with each
    // other, so configured shares are over all of them (labelled `bdev/group` when the share
    // has more than one driven bdev).
    let mut per_share: Vec<(String, Vec<String>)> = Vec::new();
    for bdev in module.bdevs() {
        let name = crate::bdev::Bdev::name(&bdev).to_owned();
        if !jobs.iter().any(|j| j.0.bdev == name) {
            continue;
        }
        match per_share.iter_mut().find(|(s, _)| s == bdev.share_name()) {
            Some((_, names)) => names.push(name),
            None => per_share.push((bdev.share_name().to_owned(), vec![name])),
        }
    }
    let mut tables = Vec::new();
    for (share_name, bdevs) in per_share {
        let Ok(share) = engine.share(&share_name) else {
            continue;
        };
        let mut inputs: Vec<(String, GroupInput)> = Vec::new();
        for name in &bdevs {
            let Ok(groups) = engine.groups_of(name) else {
                continue;
            };
            let attached: Vec<GroupKey> = groups.iter().map(|g| g.0.clone()).collect();
            for (i, (spec, _, _)) in jobs.iter().enumerate() {
                if spec.bdev != *name {
                    continue;
                }
                let key = landing_group(&attached, spec.group.as_ref());
                let label = if bdevs.len() > 1 {
                    format!("{name}/{key}")
                } else {
                    key.to_string()
                };
                let o = &outcomes[i];
                let pos = match inputs.iter().position(|(l, _)| *l == label) {
                    Some(p) => p,
                    None => {
                        let params = groups
                            .iter()
                            .find(|g| g.0 == key)
                            .map(|g| g.1)
                            .unwrap_or_default();
                        inputs.push((
                            label.clone(),
                            GroupInput {
                                group: label,
                                jobs: 0,
                                weight: params.weight,
                                min_kib_per_sec: params.min_kib_per_sec,
                                max_kib_per_sec: params.max_kib_per_sec,
                                ios: 0,
                                bytes: 0,
                                windows: Vec::new(),
                            },
                        ));
                        inputs.len() - 1
                    }
                };
                let gi = &mut inputs[pos].1;
                gi.jobs += 1;
                gi.ios += o.ios;
                gi.bytes += o.bytes;
                if gi.windows.len() < o.windows.len() {
                    gi.windows.resize(o.windows.len(), (0, 0));
                }
                for (w, &(i, b)) in o.windows.iter().enumerate() {
                    gi.windows[w].0 += i;
                    gi.windows[w].1 += b;
                }
            }
        }
        let complete = super::sat_usize((runtime_s / window_s + 1e-9).floor());
        let inputs: Vec<GroupInput> = inputs.into_iter().map(|(_, g)| g).collect();
        let mut table = report::share_table(
            &bdevs.join(","),
            &share_name,
            share.policy(),
            &inputs,
            runtime_s,
            window_s,
            complete,
        );
        table.io_throttle = Some(share.params().effective_io_throttle());
        table.io_limit = Some(share.params().effective_io_limit());
        tables.push(table);
    }
    tables
}

fn job_report(spec: &JobSpec, lcore: u32, o: &JobOutcome, interrupted: bool) -> JobReport {
    let runtime = o.end_ticks.saturating_sub(o.start_ticks) as f64 / TICKS_PER_SEC as f64;
    let per_s = |v: f64| if runtime > 0.0 { v / runtime } else { 0.0 };
    let h = &o.hist;
    JobReport {
        job: spec.name.clone(),
        bdev: spec.bdev.clone(),
        core: lcore,
        core_mask: format_mask(&[lcore]),
        workload: spec.workload.name().to_owned(),
        percentage: spec.workload.read_pct,
        queue_depth: spec.queue_depth,
        io_size: if spec.workload.flush { 0 } else { spec.io_size },
        group: spec.group.as_ref().map(ToString::to_string),
        start_delay_s: spec.start_delay_s,
        status: if o.error.is_some() {
            "failed"
        } else if interrupted {
            "terminated"
        } else {
            "finished"
        }
        .to_owned(),
        runtime,
        iops: per_s(o.ios as f64),
        mibps: per_s(o.bytes as f64 / f64::from(1u32 << 20)),
        ios: o.ios,
        bytes: o.bytes,
        io_failed: o.failed,
        io_timeout: 0,
        fail_per_s: per_s(o.failed as f64),
        timeout_per_s: 0.0,
        avg_latency_us: report::us(h.mean()),
        min_latency_us: report::us(h.min() as f64),
        max_latency_us: report::us(h.max() as f64),
        p50_latency_us: report::us(h.percentile(50.0) as f64),
        p99_latency_us: report::us(h.percentile(99.0) as f64),
        p999_latency_us: report::us(h.percentile(99.9) as f64),
    }
}

/// Runs `cfg`; configuration and job errors come back before any I/O is issued.
pub fn run(cfg: &RunConfig) -> Result<RunReport, String> {
    if cfg.lcores.is_empty() {
        return Err("the core mask selects no core".into());
    }
    if cfg.window_s.is_nan() || cfg.window_s <= 0.0 {
        return Err("the share window must be positive".into());
    }
    check_events(&cfg.events, &Methods::new(), cfg.duration_s())?;
    let mut host = Host::start(&cfg.lcores)?;
    let result = run_on(&mut host, cfg);
    host.stop();
    result
}

fn run_on(host: &mut Host, cfg: &RunConfig) -> Result<RunReport, String> {
    let app = host.app();
    if let Some(text) = &cfg.config_json {
        host.main
            .enter(|| load_subsystems(&app, &Methods::new(), text, &["bdev"]))
            .map_err(|e| format!("config: {e}"))?;
    }
    let jobs = host.main.enter(|| resolve(cfg, &app))?;
    let (tx, rx) = crossbeam_channel::unbounded::<JobOutcome>();
    let lives: Vec<Arc<Live>> = jobs.iter().map(|_| Arc::new(Live::default())).collect();
    let job_stop = Arc::new(AtomicBool::new(false));
    let window_ticks = super::sat_u64(cfg.window_s * TICKS_PER_SEC as f64).max(1);
    let to_ticks = |s: f64| super::sat_u64(s * TICKS_PER_SEC as f64);
    let run_start = host.main.enter(|| -> Result<u64, String> {
        let run_start = reactor::now_ticks();
        for (i, (spec, bdev, core)) in jobs.iter().enumerate() {
            let runtime = spec.runtime_s.unwrap_or(cfg.runtime_s);
            let plan = JobPlan {
                index: i,
                bdev: bdev.clone(),
                core: *core,
                queue_depth: spec.queue_depth,
                io_blocks: spec.io_size / u64::from(bdev.block_size()),
                workload: spec.workload,
                group: spec.group.clone(),
                start_delay_ticks: to_ticks(spec.start_delay_s),
                runtime_ticks: to_ticks(runtime),
                window_ticks,
                seed: cfg.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            };
            let (live, stop, tx) = (lives[i].clone(), job_stop.clone(), tx.clone());
            reactor::send_msg(*core, move || job::start(plan, run_start, live, stop, tx))
                .map_err(|e| e.to_string())?;
        }
        Ok(run_start)
    })?;
    drop(tx);

    let methods = Methods::new();
    let schedule = in_time_order(&cfg.events);
    let mut next_event = 0usize;
    let mut event_reports: Vec<EventReport> = Vec::with_capacity(schedule.len());
    let mut event_error: Option<String> = None;
    let tty = cfg.progress && std::io::stdout().is_terminal();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(cfg.duration_s()) + Duration::from_secs(30);
    let mut outcomes: Vec<Option<JobOutcome>> = vec![None; jobs.len()];
    let mut got = 0;
    let mut polls: u32 = 0;
    let mut last_print = Instant::now();
    let mut last_totals = (0u64, 0u64);
    let mut interrupted = false;
    while got < jobs.len() {
        host.main.poll_once();
        polls = polls.wrapping_add(1);
        if polls % 256 != 0 {
            continue;
        }
        while let Some(ev) = schedule.get(next_event).filter(|_| event_error.is_none()) {
            let now = host.main.enter(reactor::now_ticks);
            if now < run_start.saturating_add(to_ticks(ev.at_s)) {
                break;
            }
            next_event += 1;
            let params = jsonrpc_core::Params::Map(ev.params.clone());
            match host.main.enter(|| methods.call(&app, &ev.method, params)) {
                Ok(result) => event_reports.push(EventReport {
                    at_s: ev.at_s,
                    ran_at_s: now.saturating_sub(run_start) as f64 / TICKS_PER_SEC as f64,
                    method: ev.method.clone(),
                    params: serde_json::Value::Object(ev.params.clone()),
                    result,
                }),
                Err(e) => {
                    // The run is void: stop the jobs, let them drain, report the RPC's error.
                    event_error = Some(format!(
                        "{}: event {} at {} s failed: {} (code {})",
                        ev.origin,
                        ev.method,
                        ev.at_s,
                        e.message,
                        e.code.code()
                    ));
                    job_stop.store(true, Ordering::Relaxed);
                }
            }
        }
        while let Ok(o) = rx.try_recv() {
            let i = o.index;
            if outcomes[i].is_none() {
                got += 1;
            }
            outcomes[i] = Some(o);
        }
        if cfg.stop.load(Ordering::Relaxed) && !interrupted {
            interrupted = true;
            job_stop.store(true, Ordering::Relaxed);
        }
        let now = Instant::now();
        if now > deadline {
            job_stop.store(true, Ordering::Relaxed);
            return Err(format!(
                "{} of {} jobs did not finish within 30 s of their runtime",
                jobs.len() - got,
                jobs.len()
            ));
        }
        if tty && now.duration_since(last_print) >= Duration::from_secs(1) {
            let ios: u64 = lives.iter().map(|l| l.ios.load(Ordering::Relaxed)).sum();
            let bytes: u64 = lives.iter().map(|l| l.bytes.load(Ordering::Relaxed)).sum();
            let dt = now.duration_since(last_print).as_secs_f64();
            let iops = (ios - last_totals.0) as f64 / dt;
            let mibps = (bytes - last_totals.1) as f64 / dt / f64::from(1u32 << 20);
            let mut out = std::io::stdout().lock();
            let _ = write!(
                out,
                "\r{:>12.2} IOPS, {:>10.2} MiB/s  ({:.0} s)",
                iops,
                mibps,
                now.duration_since(started).as_secs_f64()
            );
            let _ = out.flush();
            last_print = now;
            last_totals = (ios, bytes);
        }
    }
    if tty {
        println!();
    }
    if let Some(e) = event_error {
        return Err(e);
    }
    let outcomes: Vec<JobOutcome> = outcomes.into_iter().flatten().collect();
    if let Some(o) = outcomes.iter().find(|o| o.error.is_some()) {
        return Err(format!(
            "job [{}] failed to start: {}",
            jobs[o.index].0.name,
            o.error.clone().unwrap_or_default()
        ));
    }
    let mut all = Histogram::default();
    let results: Vec<JobReport> = jobs
        .iter()
        .zip(&outcomes)
        .map(|((spec, _, core), o)| {
            all.merge(&o.hist);
            let lcore = cfg.lcores[*core as usize];
            job_report(spec, lcore, o, interrupted)
        })
        .collect();
    let duration_s = cfg.duration_s();
    let shares = host
        .main
        .enter(|| share_tables(&app, &jobs, &outcomes, duration_s, cfg.window_s));
    // Every job has drained; the other reactors' last counters reach the main one with
    // their next report (every millisecond): a few more passes, then the counters.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(5) {
        host.main.poll_once();
    }
    let iostat_end = host
        .main
        .enter(|| {
            methods.call(
                &app,
                "bdev_ioband_get_iostat",
                jsonrpc_core::Params::Map(serde_json::Map::new()),
            )
        })
        .unwrap_or(serde_json::Value::Null);
    Ok(RunReport {
        version: report::SCHEMA_VERSION,
        core_mask: format_mask(&cfg.lcores),
        core_count: cfg.lcores.len(),
        runtime: cfg.runtime_s,
        duration_s,
        window_s: cfg.window_s,
        events: event_reports,
        iostat_end,
        total: report::total_of(&results, &all),
        results,
        shares,
    })
}
