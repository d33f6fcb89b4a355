//! Scenario `onset`: contention that begins after a long uncontended run. Two tenants,
//! `tag:1` (weight 100) and `tag:2` (weight 200), each 1 job at QD 8, 4 KiB randread, on a
//! model device (100000 IOPS, 20 µs, QD 128: it needs 2 I/Os in flight to stay busy). The
//! share starts with its window at io_limit (`io_throttle` = `io_limit` = 192), which 16
//! outstanding I/Os never fill: nothing queues in the share, and the device serves the two
//! at the same rate whatever their weights. At `change_s` the control schedule sets
//! `io_throttle` to 4, the window binds, and the weights apply: 1/3 and 2/3 of the device.
//!
//! What it checks: that neither tenant is owed what it did not use while nobody contended.
//! Before the credit bound applied to groups with I/O in flight, `tag:2` was owed everything
//! `tag:1` had used beyond its weight, and `tag:1` got nothing until it was paid (about as
//! long as `tag:2`'s deficit took to serve at the device's rate).
//!
//! Run on 1 reactor (both jobs on reactor 0) and, with two CPUs, on 2 (one job each: the
//! share spans both, and the hub ties them). `onset.max_share_error` (and
//! `onset.two_reactors_max_share_error`) = greatest |achieved − configured| ÷ configured of
//! either tenant over the 1 s windows from 0.5 s after the change. Per 100 ms window, the
//! achieved shares around the change are in the JSON.
//!
//! Runs on the bench thread.

use std::fmt::Write as _;

use bdev_ioband_engine::GroupKey;
use serde_json::{json, Value};

use super::super::events::ControlEvent;
use super::super::report::RunReport;
use super::{
    config, go_with_events, ioband, job, machine_cpus, model, set_device, setting, BenchOptions,
    Durations, Out, FINE_WINDOW_S,
};

/// The model device.
const DEVICE_IOPS: u64 = 100_000;
const DEVICE_LATENCY_US: u64 = 20;
/// Each tenant's queue depth.
const QUEUE_DEPTH: u32 = 8;
/// The window before the change (= io_limit: never binds) and after it.
const OPEN_WINDOW: u32 = 192;
const NARROW_WINDOW: u32 = 4;
/// The tenants' weights.
const WEIGHTS: [u32; 2] = [100, 200];
/// Target.
const SHARE_ERROR_MAX: f64 = 0.02;

/// The scenario's times, seconds after the run's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Times {
    /// The window narrows.
    pub(super) change_s: f64,
    /// The run ends.
    pub(super) end_s: f64,
}

impl Times {
    pub(super) const FULL: Times = Times {
        change_s: 4.0,
        end_s: 8.5,
    };
    pub(super) const QUICK: Times = Times {
        change_s: 2.0,
        end_s: 4.5,
    };
}

/// One run's evaluation.
struct Eval {
    /// Greatest relative share error over the evaluated 1 s windows.
    max_share_error: f64,
    /// Per evaluated 1 s window (start, s): each tenant's achieved share.
    windows: Vec<(f64, [f64; 2])>,
    /// Per 100 ms window from 0.5 s before the change to 1 s after: (start, shares).
    around: Vec<(f64, [f64; 2])>,
    /// Each tenant's share of the uncontended second before the change.
    before: [f64; 2],
}

fn evaluate(r: &RunReport, t: &Times) -> Result<Eval, String> {
    let table = r.shares.first().ok_or("onset: no share table")?;
    let cost = |tag: u32| -> Vec<u64> {
        let label = format!("tag:{tag}");
        table
            .groups
            .iter()
            .find(|g| g.group == label)
            .map(|g| g.window_cost.clone())
            .unwrap_or_default()
    };
    let (a, b) = (cost(1), cost(2));
    let per_s = super::super::sat_usize((1.0 / FINE_WINDOW_S).round()).max(1);
    let index = |s: f64| super::super::sat_usize((s / FINE_WINDOW_S).round());
    // Shares over fine windows [from, to).
    let shares = |from: usize, to: usize| -> [f64; 2] {
        let sum = |v: &[u64]| -> f64 { v.iter().skip(from).take(to - from).sum::<u64>() as f64 };
        let (x, y) = (sum(&a), sum(&b));
        let total = x + y;
        if total > 0.0 {
            [x / total, y / total]
        } else {
            [0.0, 0.0]
        }
    };
    let w_sum = f64::from(WEIGHTS[0] + WEIGHTS[1]);
    let configured = [f64::from(WEIGHTS[0]) / w_sum, f64::from(WEIGHTS[1]) / w_sum];
    let mut windows = Vec::new();
    let mut max_share_error = 0.0f64;
    let mut start = index(t.change_s + 0.5);
    while start + per_s <= index(t.end_s).min(a.len()) {
        let s = shares(start, start + per_s);
        for (got, want) in s.iter().zip(configured) {
            max_share_error = max_share_error.max((got - want).abs() / want);
        }
        windows.push((start as f64 * FINE_WINDOW_S, s));
        start += per_s;
    }
    if windows.is_empty() {
        return Err("onset: no window to evaluate after the change".into());
    }
    let around = (index(t.change_s - 0.5)..index(t.change_s + 1.0).min(a.len()))
        .map(|w| (w as f64 * FINE_WINDOW_S, shares(w, w + 1)))
        .collect();
    let before = shares(index(t.change_s - 1.0), index(t.change_s));
    Ok(Eval {
        max_share_error,
        windows,
        around,
        before,
    })
}

fn run_on(opts: &BenchOptions, t: &Times, reactors: u32) -> Result<Eval, String> {
    let mut band = ioband("band0", "Model0", "weight");
    band["params"]["io_throttle"] = json!(OPEN_WINDOW);
    band["params"]["io_limit"] = json!(OPEN_WINDOW);
    let cfg = config(vec![
        model("Model0", DEVICE_IOPS, 1 << 20, DEVICE_LATENCY_US),
        band,
        setting("band0", "tag:1", json!(WEIGHTS[0])),
        setting("band0", "tag:2", json!(WEIGHTS[1])),
    ]);
    let jobs = (0..2u32)
        .map(|i| {
            job(
                &format!("t{}", i + 1),
                "band0",
                QUEUE_DEPTH,
                4096,
                Some(GroupKey::Tag(i + 1)),
                i % reactors,
            )
        })
        .collect();
    let narrow = set_device("band0", json!({"io_throttle": NARROW_WINDOW}));
    let events = vec![ControlEvent::new(
        t.change_s,
        "bdev_ioband_set_device",
        narrow["params"].clone(),
        "onset: the window narrows",
    )];
    let r = go_with_events(
        opts,
        &format!("onset {reactors} reactor(s)"),
        (0..reactors).collect(),
        &cfg,
        jobs,
        t.end_s,
        FINE_WINDOW_S,
        events,
    )?;
    evaluate(&r, t)
}

fn eval_json(e: &Eval) -> Value {
    json!({
        "max_share_error": e.max_share_error,
        "share_before_change": e.before,
        "windows": e.windows.iter().map(|(s, v)| json!({"start_s": s, "shares": v})).collect::<Vec<_>>(),
        "around_change_100ms": e.around.iter().map(|(s, v)| json!({"start_s": s, "shares": v})).collect::<Vec<_>>(),
    })
}

/// Runs the scenario.
pub(super) fn onset(opts: &BenchOptions, d: &Durations, out: &mut Out) -> Result<(), String> {
    let t = d.onset;
    let one = run_on(opts, &t, 1)?;
    let two = if machine_cpus() >= 2 {
        Some(run_on(opts, &t, 2)?)
    } else {
        None
    };
    let mut md = format!(
        "## 10. Onset: contention after an uncontended run (model: {DEVICE_IOPS} IOPS, \
         {DEVICE_LATENCY_US} µs; tag:1 weight {} and tag:2 weight {}, 1 job at QD {QUEUE_DEPTH} \
         each; io_throttle {OPEN_WINDOW} = io_limit until {} s, then {NARROW_WINDOW}; {} s)\n\n\
         | reactors | shares before the change | first 100 ms windows after it (tag:1) | \
         1 s windows from 0.5 s after (tag:1) | max share error |\n|---|---|---|---|---:|\n",
        WEIGHTS[0], WEIGHTS[1], t.change_s, t.end_s
    );
    for (label, e) in [("1", Some(&one)), ("2", two.as_ref())] {
        let Some(e) = e else {
            let _ = writeln!(md, "| {label} | not measured (one CPU) | | | |");
            continue;
        };
        let after: Vec<String> = e
            .around
            .iter()
            .filter(|(s, _)| *s >= t.change_s - 1e-9)
            .take(5)
            .map(|(_, v)| format!("{:.3}", v[0]))
            .collect();
        let windows: Vec<String> = e
            .windows
            .iter()
            .map(|(_, v)| format!("{:.4}", v[0]))
            .collect();
        let _ = writeln!(
            md,
            "| {label} | {:.3} / {:.3} | {} | {} | {:.2}% |",
            e.before[0],
            e.before[1],
            after.join(", "),
            windows.join(", "),
            e.max_share_error * 100.0
        );
    }
    let _ = writeln!(
        md,
        "\ntag:1 is due 1/3 once the window binds. `onset.max_share_error` = **{:.2}%** on one \
         reactor, {} on two (target ≤ {:.0}%).\n",
        one.max_share_error * 100.0,
        two.as_ref().map_or_else(
            || "not measured".to_owned(),
            |e| format!("**{:.2}%**", e.max_share_error * 100.0)
        ),
        SHARE_ERROR_MAX * 100.0
    );
    out.md.push_str(&md);
    out.json.insert(
        "onset".into(),
        json!({
            "workload": "tag:1 weight 100, tag:2 weight 200, 1 job QD 8 4 KiB randread each; model 100000 IOPS, 20 us",
            "change_s": t.change_s,
            "end_s": t.end_s,
            "io_throttle_before": OPEN_WINDOW,
            "io_throttle_after": NARROW_WINDOW,
            "max_share_error": one.max_share_error,
            "two_reactors_max_share_error": two.as_ref().map(|e| e.max_share_error),
            "one_reactor": eval_json(&one),
            "two_reactors": two.as_ref().map(eval_json),
        }),
    );
    Ok(())
}
