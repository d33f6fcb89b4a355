//! The standard benchmark scenarios behind `scripts/bench` (`ioband_bench`): each runs the
//! embedded host in-process through [`run`](super::run::run) and the results go into one
//! report (`report.json` with stable keys, `report.md`, SVG plots).
//!
//! 1. overhead: 4 KiB randread, QD 128 (8 jobs × 16) on a null base, one core: the bare
//!    base, a passthru over it and ioband (weight, 8 groups) over it twice: with
//!    `io_throttle` = `io_limit` (pure accounting, the window never binds) and with the
//!    default knobs (the auto window in force), interleaved A/B/C/D × 3, medians and
//!    ratios from the same run;
//! 2. fairness: 2, 8 and 64 groups, weights log-spread 1..100, on a saturated model device;
//!    share errors over 1 s windows (and 100 ms);
//! 3. weight-iosize: a 4 KiB and a 128 KiB tenant of equal weight, bandwidth shares, with
//!    `weight` for contrast;
//! 4. range-bw: min honoured under contention, max never exceeded, spare redistributed;
//! 5. scaling: 1 against 2 reactors on a null base (bare, passthru, ioband);
//! 6. closed_loop ([`closed_loop`]): a QD-1 tenant beside a deep one, its slowdown against
//!    the device's utilization, and the curve of both over `io_throttle`;
//! 7. victim ([`victim`]): a QD-1 tenant's p99 latency beside a QD-128 one;
//! 8. churn ([`churn`]): range-bw groups that arrive, leave and change settings mid-run;
//! 9. slow_io ([`slow_io`]): three tenants beside one that keeps a slow FLUSH outstanding.
//! 10. onset ([`onset`]): contention that begins after a long uncontended run.
//!
//! Every scenario runs with the default share knobs unless it says otherwise. Figures are
//! reported, never asserted; [`summary`] sets the pass/fail flags of the targets.
//!
//! Runs on the calling thread (each run starts and stops its own host).

mod churn;
mod closed_loop;
mod fairness;
mod onset;
mod slow_io;
mod summary;
mod victim;

use std::fmt::Write as _;
use std::path::Path;

use bdev_ioband_engine::{GroupKey, Policy};
use serde_json::{json, Value};

use super::events::ControlEvent;
use super::opts::{JobSpec, Origin, Workload};
use super::report::{share_table, GroupInput, RunReport, ShareTable};
use super::run::{run, RunConfig};
use super::svg::{bar_chart, line_chart, Series};

pub use fairness::spread_weights;

/// Version of `report.json`'s layout.
pub const REPORT_SCHEMA: u32 = 1;

/// How to run the benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// A few minutes in all (else about a quarter of an hour).
    pub quick: bool,
    /// Print a line per run to stderr.
    pub verbose: bool,
    /// Run only these scenarios (names of [`SCENARIO_NAMES`]; empty: all).
    pub only: Vec<String>,
}

/// Seconds of each run, per scenario.
struct Durations {
    overhead_s: f64,
    fairness_s: f64,
    iosize_s: f64,
    range_s: f64,
    scaling_s: f64,
    closed_loop_s: f64,
    victim_s: f64,
    churn: churn::Times,
    slow_io_s: f64,
    onset: onset::Times,
}

impl BenchOptions {
    fn durations(&self) -> Durations {
        if self.quick {
            Durations {
                overhead_s: 2.0,
                fairness_s: 4.0,
                iosize_s: 3.0,
                range_s: 4.0,
                scaling_s: 2.0,
                closed_loop_s: 2.0,
                victim_s: 3.0,
                churn: churn::Times::QUICK,
                slow_io_s: 3.0,
                onset: onset::Times::QUICK,
            }
        } else {
            Durations {
                overhead_s: 5.0,
                fairness_s: 10.0,
                iosize_s: 8.0,
                range_s: 10.0,
                scaling_s: 5.0,
                closed_loop_s: 5.0,
                victim_s: 8.0,
                churn: churn::Times::FULL,
                slow_io_s: 8.0,
                onset: onset::Times::FULL,
            }
        }
    }
}

/// Window of the runs; 1 s figures aggregate ten of them.
const FINE_WINDOW_S: f64 = 0.1;

fn job(name: &str, bdev: &str, qd: u32, size: u64, group: Option<GroupKey>, core: u32) -> JobSpec {
    JobSpec {
        name: name.to_owned(),
        bdev: bdev.to_owned(),
        queue_depth: qd,
        io_size: size,
        workload: Workload::RANDREAD,
        cpumask: Some(vec![core]),
        runtime_s: None,
        start_delay_s: 0.0,
        group,
        origin: Origin::default(),
    }
}

fn config(entries: Vec<Value>) -> String {
    json!({"subsystems": [{"subsystem": "bdev", "config": entries}]}).to_string()
}

fn null(name: &str) -> Value {
    json!({"method": "bdev_null_create", "params": {"name": name, "num_blocks": 1u64 << 20, "block_size": 4096}})
}

fn model(name: &str, iops: u64, bw_mib: u64, latency_us: u64) -> Value {
    model_qd(name, iops, bw_mib, latency_us, 128)
}

/// A model device with its own queue depth.
fn model_qd(name: &str, iops: u64, bw_mib: u64, latency_us: u64, queue_depth: u32) -> Value {
    json!({"method": "bdev_model_create", "params": {"name": name, "num_blocks": 1u64 << 20,
        "block_size": 4096, "iops": iops, "bandwidth_mib_per_sec": bw_mib,
        "latency_us": latency_us, "queue_depth": queue_depth}})
}

/// `bdev_ioband_set_device` on `name`'s share with `knobs` (an object of knob values).
fn set_device(name: &str, knobs: Value) -> Value {
    let mut params = json!({"name": name});
    if let (Some(p), Value::Object(k)) = (params.as_object_mut(), knobs) {
        p.extend(k);
    }
    json!({"method": "bdev_ioband_set_device", "params": params})
}

fn ioband(name: &str, base: &str, policy: &str) -> Value {
    json!({"method": "bdev_ioband_create", "params": {"name": name, "base_bdev_name": base,
        "share": format!("{name}_share"), "policy": policy}})
}

fn setting(name: &str, group: &str, value: Value) -> Value {
    json!({"method": "bdev_ioband_set_settings", "params": {"name": name, "group": group, "value": value}})
}

fn passthru(name: &str, base: &str) -> Value {
    json!({"method": "bdev_passthru_create", "params": {"name": name, "base_bdev_name": base}})
}

fn go(
    opts: &BenchOptions,
    label: &str,
    lcores: Vec<u32>,
    cfg_json: &str,
    jobs: Vec<JobSpec>,
    secs: f64,
    window_s: f64,
) -> Result<RunReport, String> {
    go_with_events(
        opts,
        label,
        lcores,
        cfg_json,
        jobs,
        secs,
        window_s,
        Vec::new(),
    )
}

/// [`go`] with a control schedule.
#[allow(clippy::too_many_arguments)]
fn go_with_events(
    opts: &BenchOptions,
    label: &str,
    lcores: Vec<u32>,
    cfg_json: &str,
    jobs: Vec<JobSpec>,
    secs: f64,
    window_s: f64,
    events: Vec<ControlEvent>,
) -> Result<RunReport, String> {
    let cfg = RunConfig {
        config_json: Some(cfg_json.to_owned()),
        window_s,
        events,
        ..RunConfig::new(lcores, jobs, secs)
    };
    let r = run(&cfg).map_err(|e| format!("{label}: {e}"))?;
    if opts.verbose {
        eprintln!(
            "  {label}: {:.0} IOPS, {:.1} MiB/s",
            r.total.iops, r.total.mibps
        );
    }
    Ok(r)
}

/// Runs per target and reactor count in the scaling scenario (interleaved; medians).
const SCALING_REPS: usize = 3;

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The share table of a run over one share, or an error naming the scenario.
fn first_share(r: &RunReport, scenario: &str) -> Result<ShareTable, String> {
    r.shares
        .first()
        .cloned()
        .ok_or_else(|| format!("{scenario}: no share table"))
}

/// The same share table over windows `factor` times as long.
pub fn rewindow(t: &ShareTable, factor: usize, runtime_s: f64) -> ShareTable {
    let factor = factor.max(1);
    let inputs: Vec<GroupInput> = t
        .groups
        .iter()
        .map(|g| {
            let windows = g
                .window_cost
                .chunks(factor)
                .filter(|c| c.len() == factor)
                .map(|c| {
                    let s: u64 = c.iter().sum();
                    (s, s)
                })
                .collect();
            GroupInput {
                group: g.group.clone(),
                jobs: g.jobs,
                weight: g.weight,
                min_kib_per_sec: g.min_kib_per_sec,
                max_kib_per_sec: g.max_kib_per_sec,
                ios: g.cost,
                bytes: g.cost,
                windows,
            }
        })
        .collect();
    let window_s = t.window_s * factor as f64;
    let complete = super::sat_usize((runtime_s / window_s + 1e-9).floor());
    let policy = Policy::parse(&t.policy).unwrap_or(Policy::Weight);
    let mut out = share_table(
        &t.bdev, &t.share, policy, &inputs, runtime_s, window_s, complete,
    );
    out.io_throttle = t.io_throttle;
    out.io_limit = t.io_limit;
    out
}

type Scenario = fn(&BenchOptions, &Durations, &mut Out) -> Result<(), String>;

/// The scenarios in the order they run, by the names `--only` takes.
pub const SCENARIO_NAMES: [&str; 10] = [
    "overhead",
    "fairness",
    "weight_iosize",
    "range_bw",
    "scaling",
    "closed_loop",
    "victim",
    "churn",
    "slow_io",
    "onset",
];

const SCENARIOS: [(&str, Scenario); 10] = [
    (SCENARIO_NAMES[0], overhead),
    (SCENARIO_NAMES[1], fairness::fairness),
    (SCENARIO_NAMES[2], iosize),
    (SCENARIO_NAMES[3], range_bw),
    (SCENARIO_NAMES[4], scaling),
    (SCENARIO_NAMES[5], closed_loop::closed_loop),
    (SCENARIO_NAMES[6], victim::victim),
    (SCENARIO_NAMES[7], churn::churn),
    (SCENARIO_NAMES[8], slow_io::slow_io),
    (SCENARIO_NAMES[9], onset::onset),
];

struct Out {
    json: serde_json::Map<String, Value>,
    md: String,
    svgs: Vec<(String, String)>,
}

/// `io_limit` of the overhead scenario's shares: the default the null base's queue depth
/// (128) derives (3/2 of it), above the 128 I/Os the jobs keep outstanding.
const OVERHEAD_IO_LIMIT: u32 = 192;

fn overhead(opts: &BenchOptions, d: &Durations, out: &mut Out) -> Result<(), String> {
    let mut entries = vec![
        null("Null0"),
        null("Null1"),
        passthru("PT1", "Null1"),
        null("Null2"),
        null("Null3"),
    ];
    // Accounting only: with io_throttle at io_limit the window is above the load and never
    // binds, so this is the cost of the scheduling and accounting themselves.
    let mut acct = ioband("band2", "Null2", "weight");
    acct["params"]["io_throttle"] = json!(OVERHEAD_IO_LIMIT);
    acct["params"]["io_limit"] = json!(OVERHEAD_IO_LIMIT);
    entries.push(acct);
    // Default knobs (io_throttle auto): eight active groups, so the window is in force; it
    // follows the base's latency (a null base queues in the CPU, under 20 us).
    entries.push(ioband("band3", "Null3", "weight"));
    for band in ["band2", "band3"] {
        for g in 1..=8u32 {
            entries.push(setting(band, &format!("tag:{g}"), json!(g * 100)));
        }
    }
    let cfg = config(entries);
    let targets = [
        ("bare", "Null0"),
        ("passthru", "PT1"),
        ("ioband", "band2"),
        ("ioband-default", "band3"),
    ];
    let mut iops: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for rep in 0..3 {
        for (t, (label, bdev)) in targets.iter().enumerate() {
            let jobs = (1..=8u32)
                .map(|g| {
                    job(
                        &format!("{label}{g}"),
                        bdev,
                        16,
                        4096,
                        Some(GroupKey::Tag(g)),
                        0,
                    )
                })
                .collect();
            let r = go(
                opts,
                &format!("overhead {label} #{}", rep + 1),
                vec![0],
                &cfg,
                jobs,
                d.overhead_s,
                1.0,
            )?;
            iops[t].push(r.total.iops);
            lat[t].push(r.total.avg_latency_us);
        }
    }
    let med: Vec<f64> = iops.iter().map(|v| median(v)).collect();
    let (bare, pt, band, band_default) = (med[0], med[1], med[2], med[3]);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let ns = |a: f64| if a > 0.0 { 1e9 / a } else { 0.0 };
    let v = json!({
        "workload": "4 KiB randread, QD 128 (8 jobs x 16, tags 1..8, weights 100..800), null base, 1 core",
        "runs_per_target": 3,
        "ioband_knobs": {"io_throttle": OVERHEAD_IO_LIMIT, "io_limit": OVERHEAD_IO_LIMIT},
        "ioband_default_knobs": {"io_throttle": 0, "io_limit": OVERHEAD_IO_LIMIT},
        "bare_iops": bare, "passthru_iops": pt, "ioband_iops": band,
        "ioband_default_knobs_iops": band_default,
        "bare_iops_runs": iops[0], "passthru_iops_runs": iops[1], "ioband_iops_runs": iops[2],
        "ioband_default_knobs_iops_runs": iops[3],
        "ioband_vs_passthru_iops_ratio": ratio(band, pt),
        "ioband_default_knobs_vs_passthru_iops_ratio": ratio(band_default, pt),
        "ioband_vs_bare_iops_ratio": ratio(band, bare),
        "passthru_vs_bare_iops_ratio": ratio(pt, bare),
        "ioband_added_ns_per_io": ns(band) - ns(pt),
        "ioband_default_knobs_added_ns_per_io": ns(band_default) - ns(pt),
        "passthru_added_ns_per_io": ns(pt) - ns(bare),
        "avg_latency_us": {"bare": median(&lat[0]), "passthru": median(&lat[1]),
            "ioband": median(&lat[2]), "ioband_default_knobs": median(&lat[3])},
    });
    let _ = writeln!(
        out.md,
        "## 1. Overhead (4 KiB randread, QD 128, null base, 1 core; median of 3 interleaved runs)\n\n\
         | target | IOPS (median) | runs | avg latency µs |\n|---|---:|---|---:|\n\
         | bare null | {bare:.0} | {} | {:.2} |\n| passthru | {pt:.0} | {} | {:.2} |\n\
         | ioband (weight, 8 groups; io_throttle = io_limit = {OVERHEAD_IO_LIMIT}) | {band:.0} | {} | {:.2} |\n\
         | ioband (weight, 8 groups; default knobs, io_throttle auto) | {band_default:.0} | {} | {:.2} |\n\n\
         With io_throttle = io_limit the window never binds: the first ioband row is the cost \
         of the scheduling and accounting. With the default knobs eight groups are active, so \
         the window (auto: adapted to the base's latency) is in force: the second row also \
         measures what it costs.\n\n\
         ioband / passthru = **{:.3}** (accounting only; target ≥ 0.90), {:.3} with the default \
         knobs; ioband / bare = {:.3}; passthru / bare = {:.3}; ioband adds {:.1} ns per I/O \
         over passthru ({:.1} ns with the default knobs).\n\n![overhead](overhead.svg)\n",
        runs(&iops[0]), median(&lat[0]), runs(&iops[1]), median(&lat[1]), runs(&iops[2]), median(&lat[2]),
        runs(&iops[3]), median(&lat[3]),
        ratio(band, pt), ratio(band_default, pt), ratio(band, bare), ratio(pt, bare),
        ns(band) - ns(pt), ns(band_default) - ns(pt)
    );
    out.svgs.push((
        "overhead.svg".into(),
        bar_chart(
            "4 KiB randread QD128, null base, 1 core (median IOPS)",
            "IOPS",
            &[
                ("bare null".into(), bare),
                ("passthru".into(), pt),
                ("ioband weight/8".into(), band),
                ("ioband default knobs".into(), band_default),
            ],
        ),
    ));
    out.json.insert("overhead".into(), v);
    Ok(())
}

fn runs(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Windows of [`FINE_WINDOW_S`] entirely inside a run of `secs` (plots leave out the
/// drain after the run's end).
fn complete_fine_windows(secs: f64) -> usize {
    super::sat_usize((secs / FINE_WINDOW_S + 1e-9).floor())
}

fn pctv(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.2}%", v * 100.0))
}

fn iosize(opts: &BenchOptions, d: &Durations, out: &mut Out) -> Result<(), String> {
    let mut cases = Vec::new();
    let mut series = Vec::new();
    let mut md = String::from(
        "## 3. Mixed I/O sizes (4 KiB vs 128 KiB tenant, equal weights; model: 200k IOPS, 400 MiB/s)\n\n\
         | policy | 4 KiB tenant MiB/s | 128 KiB tenant MiB/s | 4 KiB byte share | 128 KiB byte share | max share error (1 s) |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for policy in ["weight-iosize", "weight"] {
        let entries = vec![
            model("Model0", 200_000, 400, 20),
            ioband("band0", "Model0", policy),
            setting("band0", "tag:1", json!(100)),
            setting("band0", "tag:2", json!(100)),
        ];
        let jobs = vec![
            job("small4k", "band0", 64, 4096, Some(GroupKey::Tag(1)), 0),
            job(
                "large128k",
                "band0",
                32,
                128 << 10,
                Some(GroupKey::Tag(2)),
                0,
            ),
        ];
        let r = go(
            opts,
            &format!("iosize {policy}"),
            vec![0],
            &config(entries),
            jobs,
            d.iosize_s,
            FINE_WINDOW_S,
        )?;
        let fine = first_share(&r, "iosize")?;
        let coarse = rewindow(&fine, 10, d.iosize_s);
        let mib = |i: usize| r.results.get(i).map_or(0.0, |j| j.mibps);
        let bytes_share = |i: usize| {
            let t: u64 = r.results.iter().map(|j| j.bytes).sum();
            r.results
                .get(i)
                .map_or(0.0, |j| j.bytes as f64 / t.max(1) as f64)
        };
        let _ = writeln!(
            md,
            "| {policy} | {:.1} | {:.1} | {:.2}% | {:.2}% | {} |",
            mib(0),
            mib(1),
            bytes_share(0) * 100.0,
            bytes_share(1) * 100.0,
            if policy == "weight-iosize" {
                pctv(coarse.max_window_share_error)
            } else {
                "(I/O shares)".into()
            }
        );
        for (i, label) in ["4 KiB", "128 KiB"].iter().enumerate() {
            if let Some(g) = fine.groups.get(i) {
                // weight-iosize counts bytes, so its window shares are byte shares.
                let pts = g
                    .window_share
                    .iter()
                    .take(complete_fine_windows(d.iosize_s))
                    .enumerate()
                    .map(|(w, &s)| ((w as f64 + 0.5) * FINE_WINDOW_S, s * 100.0))
                    .collect();
                if policy == "weight-iosize" {
                    series.push(Series {
                        name: format!("{label} tenant"),
                        points: pts,
                        dashed: false,
                    });
                }
            }
        }
        cases.push(json!({
            "policy": policy,
            "tenants": [
                {"group": "tag:1", "io_size": 4096, "weight": 100, "mib_per_sec": mib(0), "byte_share": bytes_share(0)},
                {"group": "tag:2", "io_size": 131072, "weight": 100, "mib_per_sec": mib(1), "byte_share": bytes_share(1)},
            ],
            "cost_unit": fine.cost_unit,
            "max_share_error": coarse.max_window_share_error,
            "mean_share_error": coarse.mean_window_share_error,
            "total_mib_per_sec": r.total.mibps,
        }));
    }
    out.svgs.push((
        "weight_iosize.svg".into(),
        line_chart(
            "weight-iosize: byte share over time, 4 KiB vs 128 KiB tenant (equal weights)",
            "seconds",
            "share of bytes (%)",
            &series,
            Some(100.0),
        ),
    ));
    let _ = writeln!(md, "\n![weight-iosize](weight_iosize.svg)\n");
    out.md.push_str(&md);
    let wi = cases.first().cloned().unwrap_or(Value::Null);
    out.json.insert(
        "weight_iosize".into(),
        json!({"max_share_error": wi["max_share_error"], "cases": cases}),
    );
    Ok(())
}

fn range_bw(opts: &BenchOptions, d: &Durations, out: &mut Out) -> Result<(), String> {
    let capacity_kib = 200.0 * 1024.0;
    let groups: [(u32, u32, u32); 4] = [
        (1, 61_440, 0),
        (2, 20_480, 40_960),
        (3, 0, 30_720),
        (4, 0, 0),
    ];
    let mut entries = vec![
        model("Model0", 200_000, 200, 20),
        ioband("band0", "Model0", "range-bw"),
    ];
    for (g, min, max) in groups {
        entries.push(setting(
            "band0",
            &format!("tag:{g}"),
            json!(format!("{min}:{max}")),
        ));
    }
    let jobs = groups
        .iter()
        .map(|&(g, _, _)| {
            job(
                &format!("g{g}"),
                "band0",
                32,
                64 << 10,
                Some(GroupKey::Tag(g)),
                0,
            )
        })
        .collect();
    let r = go(
        opts,
        "range-bw",
        vec![0],
        &config(entries),
        jobs,
        d.range_s,
        FINE_WINDOW_S,
    )?;
    let fine = first_share(&r, "range-bw")?;
    let coarse = rewindow(&fine, 10, d.range_s);
    let work = coarse.total_kib_per_sec / capacity_kib;
    let mut md = String::from(
        "## 4. range-bw (model: 200 MiB/s; 64 KiB randread, 4 tenants QD 32; 1 s windows)\n\n\
         | group | min KiB/s | max KiB/s | achieved KiB/s | min met (worst window) | max excess (worst window) |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    let mut gjson = Vec::new();
    let mut series = Vec::new();
    for g in &coarse.groups {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {} | {} |",
            g.group,
            g.min_kib_per_sec,
            g.max_kib_per_sec,
            g.kib_per_sec,
            g.min_met_ratio
                .map_or("-".into(), |v| format!("{:.2}%", v * 100.0)),
            pctv(g.max_exceeded_ratio)
        );
        gjson.push(json!({
            "group": g.group, "min_kib_per_sec": g.min_kib_per_sec, "max_kib_per_sec": g.max_kib_per_sec,
            "kib_per_sec": g.kib_per_sec, "min_met_ratio": g.min_met_ratio, "max_exceeded_ratio": g.max_exceeded_ratio,
        }));
    }
    for g in &fine.groups {
        series.push(Series {
            name: format!("{} ({}:{})", g.group, g.min_kib_per_sec, g.max_kib_per_sec),
            points: g
                .window_cost
                .iter()
                .take(complete_fine_windows(d.range_s))
                .enumerate()
                .map(|(w, &b)| {
                    (
                        (w as f64 + 0.5) * FINE_WINDOW_S,
                        b as f64 / 1024.0 / FINE_WINDOW_S,
                    )
                })
                .collect(),
            dashed: false,
        });
    }
    out.svgs.push((
        "range_bw.svg".into(),
        line_chart(
            "range-bw: KiB/s per group over time (100 ms windows)",
            "seconds",
            "KiB/s",
            &series,
            None,
        ),
    ));
    let _ = writeln!(
        md,
        "\nmin met ratio (least achieved/min over groups and 1 s windows): **{}** (target ≥ 98%); \
         max exceeded ratio (greatest achieved/max − 1): **{}** (target ≤ 1%); total {:.0} KiB/s = {:.1}% of the device's 204800 KiB/s.\n\n![range-bw](range_bw.svg)\n",
        coarse.min_met_ratio.map_or("-".into(), |v| format!("{:.2}%", v * 100.0)),
        pctv(coarse.max_exceeded_ratio),
        coarse.total_kib_per_sec,
        work * 100.0
    );
    out.md.push_str(&md);
    out.json.insert(
        "range_bw".into(),
        json!({
            "window_s": 1.0,
            "min_met_ratio": coarse.min_met_ratio,
            "max_exceeded_ratio": coarse.max_exceeded_ratio,
            "min_met_ratio_100ms": fine.min_met_ratio,
            "max_exceeded_ratio_100ms": fine.max_exceeded_ratio,
            "total_kib_per_sec": coarse.total_kib_per_sec,
            "capacity_kib_per_sec": capacity_kib,
            "work_conserving_ratio": work,
            "groups": gjson,
        }),
    );
    Ok(())
}

fn scaling(opts: &BenchOptions, d: &Durations, out: &mut Out) -> Result<(), String> {
    let cfg = config(vec![
        null("Null0"),
        null("Null1"),
        passthru("PT1", "Null1"),
        null("Null2"),
        ioband("band2", "Null2", "weight"),
        setting("band2", "tag:1", json!(100)),
        setting("band2", "tag:2", json!(200)),
    ]);
    let cpus = machine_cpus();
    let targets = [("bare", "Null0"), ("passthru", "PT1"), ("ioband", "band2")];
    // iops[target][reactors - 1]: one run per repetition, interleaved.
    let mut iops: Vec<[Vec<f64>; 2]> = vec![[Vec::new(), Vec::new()]; targets.len()];
    for rep in 0..SCALING_REPS {
        for (k, lcores) in [vec![0u32], vec![0, 1]].into_iter().enumerate() {
            if lcores.len() > cpus {
                continue;
            }
            for (t, (label, bdev)) in targets.iter().enumerate() {
                let two = lcores.len() == 2;
                let jobs = vec![
                    job("j1", bdev, 64, 4096, Some(GroupKey::Tag(1)), 0),
                    job("j2", bdev, 64, 4096, Some(GroupKey::Tag(2)), u32::from(two)),
                ];
                let r = go(
                    opts,
                    &format!("scaling {label} {} core(s) #{}", lcores.len(), rep + 1),
                    lcores.clone(),
                    &cfg,
                    jobs,
                    d.scaling_s,
                    1.0,
                )?;
                iops[t][k].push(r.total.iops);
            }
        }
    }
    let med: Vec<[f64; 2]> = iops
        .iter()
        .map(|v| [median(&v[0]), median(&v[1])])
        .collect();
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let mut cases = Vec::new();
    let mut bars = Vec::new();
    let mut md = format!(
        "## 5. Scaling (4 KiB randread, 2 jobs × QD 64 in two groups of one share, null base; \
         medians of {SCALING_REPS} interleaved runs)\n\n\
         | target | 1 reactor IOPS | 2 reactors IOPS | 2 / 1 |\n|---|---:|---:|---:|\n"
    );
    let mut res = serde_json::Map::new();
    for ((label, _), m) in targets.iter().zip(&med) {
        for (k, &v) in m.iter().enumerate() {
            if v > 0.0 {
                cases.push(json!({"target": label, "reactors": k + 1, "iops": v}));
                bars.push((format!("{label} {}c", k + 1), v));
            }
        }
        let r = ratio(m[1], m[0]);
        let _ = writeln!(md, "| {label} | {:.0} | {:.0} | {r:.2} |", m[0], m[1]);
        res.insert(format!("{label}_2_vs_1_reactor_ratio"), json!(r));
    }
    let (pt, band) = (med[1], med[2]);
    let one = ratio(band[0], pt[0]);
    let two = (band[1] > 0.0).then(|| ratio(band[1], pt[1]));
    res.insert("ioband_vs_passthru_1_reactor".into(), json!(one));
    res.insert("ioband_vs_passthru_2_reactors".into(), json!(two));
    res.insert("cases".into(), Value::Array(cases));
    res.insert("cpus".into(), json!(cpus));
    res.insert("reps".into(), json!(SCALING_REPS));
    let _ = writeln!(
        md,
        "\nioband / passthru: **{one:.3}** on 1 reactor, **{}** on 2. Every reactor schedules the I/O \
         submitted on it with its own replica of the share (no message per I/O); the replicas and \
         the owner exchange once a millisecond.\n\n![scaling](scaling.svg)\n",
        two.map_or_else(|| "not measured (one CPU)".to_owned(), |v| format!("{v:.3}"))
    );
    out.svgs.push((
        "scaling.svg".into(),
        bar_chart("IOPS on 1 and 2 reactors (null base)", "IOPS", &bars),
    ));
    out.md.push_str(&md);
    out.json.insert("scaling".into(), Value::Object(res));
    Ok(())
}

/// The 1-minute load average (Linux), if readable.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPUs this process may use, as found before the first run pinned the calling thread to
/// one core (the affinity a thread sees is its own, and a pinned thread sees one CPU).
pub(crate) fn machine_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs every scenario and writes `report.json`, `report.md` and the SVGs into `dir`.
pub fn run_all(opts: &BenchOptions, dir: &Path) -> Result<Value, String> {
    if let Some(bad) = opts
        .only
        .iter()
        .find(|o| !SCENARIO_NAMES.contains(&o.as_str()))
    {
        return Err(format!(
            "unknown scenario '{bad}' (scenarios: {})",
            SCENARIO_NAMES.join(", ")
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Before any run: each run pins the calling thread to the main reactor's core.
    machine_cpus();
    let load_before = load_average();
    let d = opts.durations();
    let mut out = Out {
        json: serde_json::Map::new(),
        md: String::new(),
        svgs: Vec::new(),
    };
    for (name, step) in SCENARIOS {
        if !opts.only.is_empty() && !opts.only.iter().any(|o| o == name) {
            continue;
        }
        if opts.verbose {
            eprintln!("scenario {name}");
        }
        step(opts, &d, &mut out)?;
    }
    let cpus = machine_cpus();
    let mut report = serde_json::Map::new();
    report.insert("schema".into(), json!(REPORT_SCHEMA));
    // Other processes' load skews every figure; say how busy the machine was.
    report.insert("load_average_1m_before".into(), json!(load_before));
    report.insert("load_average_1m_after".into(), json!(load_average()));
    report.insert(
        "mode".into(),
        json!(if opts.quick { "quick" } else { "full" }),
    );
    report.insert("cpus".into(), json!(cpus));
    report.insert(
        "unix_time".into(),
        json!(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())),
    );
    let (summary, targets) = summary::summarize(&out.json);
    report.extend(out.json.clone());
    report.insert("targets_met".into(), targets.clone());
    report.insert("summary".into(), summary.clone());
    let report = Value::Object(report);
    let mut md = format!(
        "# bdev_ioband benchmark report ({} run, {cpus} CPUs)\n\nTargets met: {}\n\n\
         1-minute load average before the run: {}, after: {} (this benchmark keeps one or two \
         cores busy; more than that means other processes shared the machine).\n\n",
        if opts.quick { "quick" } else { "full" },
        targets,
        load_before.map_or("unknown".into(), |l| format!("{l:.2}")),
        load_average().map_or("unknown".into(), |l| format!("{l:.2}")),
    );
    md.push_str(&summary::render_md(&summary));
    md.push_str(&out.md);
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{}/{name}: {e}", dir.display()))
    };
    write(
        "report.json",
        &serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
    )?;
    write("report.md", &md)?;
    for (name, svg) in &out.svgs {
        write(name, svg)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_and_median() {
        assert_eq!(spread_weights(2), vec![1, 100]);
        let w = spread_weights(64);
        assert_eq!((w[0], w[63], w.len()), (1, 100, 64));
        assert!(w.windows(2).all(|p| p[0] <= p[1]));
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0]), 2.5);
    }
}
