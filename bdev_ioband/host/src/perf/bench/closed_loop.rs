//! Scenario `closed_loop`: a tenant that waits for each I/O (one job at QD 1, tenant A =
//! `tag:1`) beside a deep one (tenant B = `tag:2`: 16 jobs at QD 1, or 1 job at QD 32) on a
//! model device of 20000 IOPS, 200 µs latency and queue depth 32, one ioband bdev, policy
//! `weight`, 4 KiB randread, default share knobs. A's slowdown (its IOPS alone ÷ its IOPS
//! beside B) against the device's utilization (total IOPS ÷ 20000), for weights A:B of
//! 1:1, 1:4 and 4:1; then `closed_loop.curve`, the 1:1 case with B = 16 × QD 1 over
//! `io_throttle` (1, 2, 4, 8, io_limit, set through `bdev_ioband_set_device`) and the
//! default knobs.
//!
//! Also the device and the runs [`victim`](super::victim) and [`slow_io`](super::slow_io)
//! share. Runs on the bench thread.

use std::fmt::Write as _;

use bdev_ioband_engine::GroupKey;
use serde_json::{json, Value};

use super::super::report::RunReport;
use super::super::svg::{line_chart, Series};
use super::{
    config, go, ioband, job, model_qd, set_device, setting, BenchOptions, Durations, Out,
    FINE_WINDOW_S,
};

/// IOPS of the scenario's model device.
pub(super) const DEVICE_IOPS: u64 = 20_000;
/// Its latency after service, µs.
pub(super) const DEVICE_LATENCY_US: u64 = 200;
/// Its queue depth.
pub(super) const DEVICE_QUEUE_DEPTH: u32 = 32;
/// Targets.
const SLOWDOWN_MAX: f64 = 2.0;
const UTILIZATION_MIN: f64 = 0.90;

/// The config: the model device, `band0` (weight) over it, `tag:1`..`tag:n` attached with
/// `weights`, then `knobs` through `bdev_ioband_set_device` if given.
pub(super) fn device_config(
    weights: &[u32],
    knobs: Option<Value>,
    flush_latency_us: u64,
) -> String {
    let mut dev = model_qd(
        "Model0",
        DEVICE_IOPS,
        0,
        DEVICE_LATENCY_US,
        DEVICE_QUEUE_DEPTH,
    );
    if flush_latency_us > 0 {
        dev["params"]["flush_latency_us"] = json!(flush_latency_us);
    }
    let mut entries = vec![dev, ioband("band0", "Model0", "weight")];
    for (i, w) in weights.iter().enumerate() {
        entries.push(setting("band0", &format!("tag:{}", i + 1), json!(w)));
    }
    if let Some(k) = knobs {
        entries.push(set_device("band0", k));
    }
    config(entries)
}

/// Tenant B's shape: `jobs` jobs of `queue_depth` each.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deep {
    pub(super) jobs: u32,
    pub(super) queue_depth: u32,
}

/// What one run of A (beside B, if any) gave.
#[derive(Debug, Clone)]
pub(super) struct Pair {
    pub(super) a_iops: f64,
    pub(super) b_iops: f64,
    pub(super) a_p99_us: f64,
    pub(super) io_throttle: Option<u32>,
    pub(super) io_limit: Option<u32>,
}

impl Pair {
    /// Total IOPS ÷ the device's.
    pub(super) fn utilization(&self) -> f64 {
        (self.a_iops + self.b_iops) / DEVICE_IOPS as f64
    }
}

/// Sum of the IOPS of the jobs of `group`.
pub(super) fn iops_of(r: &RunReport, group: &str) -> f64 {
    r.results
        .iter()
        .filter(|j| j.group.as_deref() == Some(group))
        .fold(0.0, |a, j| a + j.iops)
}

/// Runs A (1 job, QD 1, `tag:1`) beside `deep` (`tag:2`), weights A:B, optional knobs.
pub(super) fn run_pair(
    opts: &BenchOptions,
    label: &str,
    secs: f64,
    weights: (u32, u32),
    deep: Option<Deep>,
    knobs: Option<Value>,
) -> Result<Pair, String> {
    run_pair_on(opts, label, secs, weights, deep, knobs, 0)
}

/// [`run_pair`] with B's jobs on reactor `b_core` (A stays on reactor 0; the run has
/// reactors 0..=b_core).
pub(super) fn run_pair_on(
    opts: &BenchOptions,
    label: &str,
    secs: f64,
    weights: (u32, u32),
    deep: Option<Deep>,
    knobs: Option<Value>,
    b_core: u32,
) -> Result<Pair, String> {
    let mut jobs = vec![job("a", "band0", 1, 4096, Some(GroupKey::Tag(1)), 0)];
    if let Some(d) = deep {
        for i in 0..d.jobs {
            jobs.push(job(
                &format!("b{}", i + 1),
                "band0",
                d.queue_depth,
                4096,
                Some(GroupKey::Tag(2)),
                b_core,
            ));
        }
    }
    let cfg = device_config(&[weights.0, weights.1], knobs, 0);
    let r = go(
        opts,
        label,
        (0..=b_core).collect(),
        &cfg,
        jobs,
        secs,
        FINE_WINDOW_S,
    )?;
    let a = r
        .results
        .iter()
        .find(|j| j.job == "a")
        .ok_or_else(|| format!("{label}: no result for tenant A"))?;
    let share = r.shares.first();
    Ok(Pair {
        a_iops: a.iops,
        b_iops: iops_of(&r, "tag:2"),
        a_p99_us: a.p99_latency_us,
        io_throttle: share.and_then(|s| s.io_throttle),
        io_limit: share.and_then(|s| s.io_limit),
    })
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// The cases' weights A:B.
const WEIGHTS: [(u32, u32); 3] = [(100, 100), (100, 400), (400, 100)];
/// B's shapes.
const DEEP: [Deep; 2] = [
    Deep {
        jobs: 16,
        queue_depth: 1,
    },
    Deep {
        jobs: 1,
        queue_depth: 32,
    },
];

fn weights_label(w: (u32, u32)) -> String {
    let g = gcd(w.0, w.1).max(1);
    format!("{}:{}", w.0 / g, w.1 / g)
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Runs the scenario and its curve.
pub(super) fn closed_loop(opts: &BenchOptions, d: &Durations, out: &mut Out) -> Result<(), String> {
    let secs = d.closed_loop_s;
    let solo = run_pair(opts, "closed_loop A alone", secs, (100, 100), None, None)?;
    let mut md = format!(
        "## 6. Closed loop: a QD-1 tenant beside a deep one (model: {DEVICE_IOPS} IOPS, \
         {DEVICE_LATENCY_US} µs, QD {DEVICE_QUEUE_DEPTH}; weight policy, default knobs; 4 KiB randread)\n\n\
         Tenant A (`tag:1`, 1 job at QD 1) alone: **{:.0} IOPS**, p99 {:.0} µs. Slowdown = A's IOPS \
         alone ÷ A's IOPS beside B; utilization = total IOPS ÷ {DEVICE_IOPS}.\n\n\
         | weights A:B | B | A IOPS | B IOPS | A p99 µs | slowdown | utilization |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
        solo.a_iops, solo.a_p99_us
    );
    let (cases, default_1_1) = run_cases(opts, secs, &solo, 0, &mut md)?;
    let worst_slowdown = worst(&cases, "slowdown", true);
    let worst_util = worst(&cases, "device_utilization", false);
    let _ = writeln!(
        md,
        "\nWorst slowdown **{}** (target ≤ {SLOWDOWN_MAX}), worst utilization **{}** (target ≥ {:.0}%).\n",
        worst_slowdown.map_or("-".into(), |v| format!("{v:.2}")),
        worst_util.map_or("-".into(), |v| format!("{:.1}%", v * 100.0)),
        UTILIZATION_MIN * 100.0
    );
    let two = two_reactors(opts, secs, &solo, &mut md)?;
    let (curve, curve_md, svg) = curve(opts, secs, &solo, default_1_1)?;
    md.push_str(&curve_md);
    out.svgs.push(("closed_loop_curve.svg".into(), svg));
    out.md.push_str(&md);
    out.json.insert(
        "closed_loop".into(),
        json!({
            "device": {"iops": DEVICE_IOPS, "bandwidth_mib_per_sec": 0,
                "latency_us": DEVICE_LATENCY_US, "queue_depth": DEVICE_QUEUE_DEPTH},
            "workload": "4 KiB randread; A = tag:1, 1 job QD 1; B = tag:2, 16 jobs QD 1 or 1 job QD 32; weight policy, default knobs",
            "solo_iops": solo.a_iops,
            "solo_p99_latency_us": solo.a_p99_us,
            "low_depth_slowdown": worst_slowdown,
            "device_utilization": worst_util,
            "cases": cases,
            "curve": curve,
            "two_reactors": two,
            "two_reactors_low_depth_slowdown": two.as_ref().map(|t| t["low_depth_slowdown"].clone()),
            "two_reactors_device_utilization": two.as_ref().map(|t| t["device_utilization"].clone()),
        }),
    );
    Ok(())
}

/// Every case (weights × B's shape) with B on reactor `b_core`: a markdown row each, their
/// JSON, and the 1:1 case with B = 16 × QD 1 (the curve's default point).
fn run_cases(
    opts: &BenchOptions,
    secs: f64,
    solo: &Pair,
    b_core: u32,
    md: &mut String,
) -> Result<(Vec<Value>, Option<Pair>), String> {
    let mut cases = Vec::new();
    let mut default_1_1 = None;
    for w in WEIGHTS {
        for deep in DEEP {
            let reactors = if b_core == 0 {
                String::new()
            } else {
                format!("{} reactors ", b_core + 1)
            };
            let label = format!(
                "closed_loop {reactors}{} B={}xQD{}",
                weights_label(w),
                deep.jobs,
                deep.queue_depth
            );
            let p = run_pair_on(opts, &label, secs, w, Some(deep), None, b_core)?;
            let slowdown = ratio(solo.a_iops, p.a_iops);
            let _ = writeln!(
                md,
                "| {} | {} × QD {} | {:.0} | {:.0} | {:.0} | {slowdown:.2} | {:.1}% |",
                weights_label(w),
                deep.jobs,
                deep.queue_depth,
                p.a_iops,
                p.b_iops,
                p.a_p99_us,
                p.utilization() * 100.0
            );
            cases.push(json!({
                "weights": weights_label(w), "weight_a": w.0, "weight_b": w.1,
                "b_jobs": deep.jobs, "b_queue_depth": deep.queue_depth,
                "a_iops": p.a_iops, "b_iops": p.b_iops, "a_p99_latency_us": p.a_p99_us,
                "slowdown": slowdown, "device_utilization": p.utilization(),
                "io_throttle": p.io_throttle, "io_limit": p.io_limit,
            }));
            if w.0 == w.1 && deep.jobs == 16 {
                default_1_1 = Some(p);
            }
        }
    }
    Ok((cases, default_1_1))
}

/// The greatest (`max`) or least value of `key` over the cases.
fn worst(cases: &[Value], key: &str, max: bool) -> Option<f64> {
    cases
        .iter()
        .filter_map(|c| c[key].as_f64())
        .fold(None, |a, v| {
            Some(a.map_or(v, |a: f64| if max { a.max(v) } else { a.min(v) }))
        })
}

/// The cases with A on reactor 0 and B on reactor 1 (the share spans both; each
/// reactor schedules its own tenant's I/O). `None` on a one-CPU machine.
fn two_reactors(
    opts: &BenchOptions,
    secs: f64,
    solo: &Pair,
    md: &mut String,
) -> Result<Option<Value>, String> {
    if super::machine_cpus() < 2 {
        let _ = writeln!(md, "Two reactors: not measured (one CPU).\n");
        return Ok(None);
    }
    let _ = writeln!(
        md,
        "A on reactor 0, B on reactor 1 (the share spans both):\n\n\
         | weights A:B | B | A IOPS | B IOPS | A p99 µs | slowdown | utilization |\n\
         |---|---|---:|---:|---:|---:|---:|"
    );
    let (cases, _) = run_cases(opts, secs, solo, 1, md)?;
    let slowdown = worst(&cases, "slowdown", true);
    let util = worst(&cases, "device_utilization", false);
    let _ = writeln!(
        md,
        "\nOn two reactors: worst slowdown **{}**, worst utilization **{}**.\n",
        slowdown.map_or("-".into(), |v| format!("{v:.2}")),
        util.map_or("-".into(), |v| format!("{:.1}%", v * 100.0)),
    );
    Ok(Some(json!({
        "low_depth_slowdown": slowdown,
        "device_utilization": util,
        "cases": cases,
    })))
}

/// `closed_loop.curve`: the 1:1 case with B = 16 × QD 1 over io_throttle, plus the
/// default knobs (`default_run`, already measured). Returns the JSON list, the markdown and
/// the plot.
fn curve(
    opts: &BenchOptions,
    secs: f64,
    solo: &Pair,
    default_run: Option<Pair>,
) -> Result<(Value, String, String), String> {
    let deep = DEEP[0];
    let io_limit = default_run
        .as_ref()
        .and_then(|p| p.io_limit)
        .or(solo.io_limit)
        .unwrap_or(3 * DEVICE_QUEUE_DEPTH / 2);
    let mut points = Vec::new();
    let mut md = format!(
        "### closed_loop.curve: weights 1:1, B = 16 × QD 1, over io_throttle (io_limit {io_limit})\n\n\
         | io_throttle | A IOPS | B IOPS | slowdown | utilization |\n|---|---:|---:|---:|---:|\n"
    );
    let mut line = Vec::new();
    for t in [1, 2, 4, 8, io_limit] {
        let p = run_pair(
            opts,
            &format!("closed_loop.curve io_throttle {t}"),
            secs,
            (100, 100),
            Some(deep),
            Some(json!({"io_throttle": t})),
        )?;
        let slowdown = ratio(solo.a_iops, p.a_iops);
        let _ = writeln!(
            md,
            "| {t}{} | {:.0} | {:.0} | {slowdown:.2} | {:.1}% |",
            if t == io_limit { " (= io_limit)" } else { "" },
            p.a_iops,
            p.b_iops,
            p.utilization() * 100.0
        );
        line.push((p.utilization() * 100.0, slowdown));
        points.push(
            json!({"io_throttle": t, "default_knobs": false, "slowdown": slowdown,
            "utilization": p.utilization(), "a_iops": p.a_iops, "b_iops": p.b_iops}),
        );
    }
    let mut series = vec![Series {
        name: "io_throttle 1, 2, 4, 8, io_limit".into(),
        points: line,
        dashed: false,
    }];
    if let Some(p) = default_run {
        let slowdown = ratio(solo.a_iops, p.a_iops);
        let _ = writeln!(
            md,
            "| default knobs ({}) | {:.0} | {:.0} | {slowdown:.2} | {:.1}% |",
            p.io_throttle.map_or("?".into(), |t| t.to_string()),
            p.a_iops,
            p.b_iops,
            p.utilization() * 100.0
        );
        series.push(Series {
            name: "default knobs".into(),
            points: vec![(p.utilization() * 100.0, slowdown)],
            dashed: false,
        });
        points.push(json!({"io_throttle": p.io_throttle, "default_knobs": true,
            "slowdown": slowdown, "utilization": p.utilization(),
            "a_iops": p.a_iops, "b_iops": p.b_iops}));
    }
    let x_lo = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(UTILIZATION_MIN * 100.0, f64::min);
    let x_hi = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(100.0, f64::max);
    series.push(Series {
        name: format!("target: slowdown {SLOWDOWN_MAX}"),
        points: vec![(x_lo, SLOWDOWN_MAX), (x_hi, SLOWDOWN_MAX)],
        dashed: true,
    });
    series.push(Series {
        name: format!("target: utilization {:.0}%", UTILIZATION_MIN * 100.0),
        points: vec![
            (UTILIZATION_MIN * 100.0, 0.0),
            (UTILIZATION_MIN * 100.0, 4.0),
        ],
        dashed: true,
    });
    let svg = line_chart(
        "closed_loop: A's slowdown against device utilization, over io_throttle (weights 1:1, B = 16 x QD 1)",
        "device utilization (%)",
        "slowdown of the QD-1 tenant",
        &series,
        None,
    );
    let _ = writeln!(md, "\n![closed-loop curve](closed_loop_curve.svg)\n");
    Ok((Value::Array(points), md, svg))
}
