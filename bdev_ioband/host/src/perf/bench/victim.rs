//! Scenario `victim`: the latency a QD-1 tenant (A = `tag:1`, 1 job at QD 1) suffers beside
//! a deep one (B = `tag:2`, 1 job at QD 128) of equal weight, on the
//! [`closed_loop`](super::closed_loop) device (20000 IOPS, 200 µs, QD 32), 4 KiB randread:
//! A's p99 latency beside B ÷ A's p99 alone, with the default knobs and with `io_throttle`
//! 5 set on the share (the tuned run); with two CPUs, again with B on reactor 1 (the share
//! spans both reactors, each schedules its own tenant's I/O).
//!
//! Runs on the bench thread.

use std::fmt::Write as _;

use serde_json::json;

use super::closed_loop::{
    run_pair, run_pair_on, Deep, DEVICE_IOPS, DEVICE_LATENCY_US, DEVICE_QUEUE_DEPTH,
};
use super::{BenchOptions, Durations, Out};

/// `io_throttle` of the tuned run.
const TUNED_IO_THROTTLE: u32 = 5;
/// Target of the ratio.
const P99_RATIO_MAX: f64 = 2.0;

/// Runs the scenario.
pub(super) fn victim(opts: &BenchOptions, d: &Durations, out: &mut Out) -> Result<(), String> {
    let secs = d.victim_s;
    let deep = Deep {
        jobs: 1,
        queue_depth: 128,
    };
    let solo = run_pair(opts, "victim A alone", secs, (100, 100), None, None)?;
    let beside = run_pair(
        opts,
        "victim A beside B",
        secs,
        (100, 100),
        Some(deep),
        None,
    )?;
    let tuned_knobs = json!({"io_throttle": TUNED_IO_THROTTLE});
    let tuned = run_pair(
        opts,
        "victim A beside B, tuned",
        secs,
        (100, 100),
        Some(deep),
        Some(tuned_knobs.clone()),
    )?;
    let two = if super::machine_cpus() >= 2 {
        Some(run_pair_on(
            opts,
            "victim A beside B, B on reactor 1",
            secs,
            (100, 100),
            Some(deep),
            None,
            1,
        )?)
    } else {
        None
    };
    let ratio = |p: f64| {
        if solo.a_p99_us > 0.0 {
            p / solo.a_p99_us
        } else {
            0.0
        }
    };
    let (r, r_tuned) = (ratio(beside.a_p99_us), ratio(tuned.a_p99_us));
    let r_two = two.as_ref().map(|p| ratio(p.a_p99_us));
    let mut md = format!(
        "## 7. Victim latency: a QD-1 tenant beside a QD-128 one (model: {DEVICE_IOPS} IOPS, \
         {DEVICE_LATENCY_US} µs, QD {DEVICE_QUEUE_DEPTH}; equal weights; 4 KiB randread)\n\n\
         | run | knobs | A IOPS | B IOPS | A p99 µs | p99 ÷ alone |\n|---|---|---:|---:|---:|---:|\n"
    );
    let knobs = |p: &super::closed_loop::Pair| {
        format!(
            "io_throttle {}, io_limit {}",
            p.io_throttle.map_or("?".into(), |v| v.to_string()),
            p.io_limit.map_or("?".into(), |v| v.to_string())
        )
    };
    let mut rows = vec![
        ("A alone", &solo, 1.0),
        ("A beside B", &beside, r),
        ("A beside B, tuned", &tuned, r_tuned),
    ];
    if let (Some(p), Some(r2)) = (two.as_ref(), r_two) {
        rows.push(("A beside B, B on reactor 1", p, r2));
    }
    for (name, p, ratio) in rows {
        let _ = writeln!(
            md,
            "| {name} | {} | {:.0} | {:.0} | {:.0} | {ratio:.2} |",
            knobs(p),
            p.a_iops,
            p.b_iops,
            p.a_p99_us
        );
    }
    let _ = writeln!(
        md,
        "\n`victim.p99_ratio` = **{r:.2}** (target ≤ {P99_RATIO_MAX}); with io_throttle \
         {TUNED_IO_THROTTLE}: {r_tuned:.2}; with B on reactor 1 \
         (`victim.two_reactors_p99_ratio`, same target): {}.\n",
        r_two.map_or("not measured (one CPU)".into(), |v| format!("**{v:.2}**"))
    );
    out.md.push_str(&md);
    out.json.insert(
        "victim".into(),
        json!({
            "workload": "4 KiB randread; A = tag:1, 1 job QD 1; B = tag:2, 1 job QD 128; weights 100:100",
            "solo_p99_latency_us": solo.a_p99_us,
            "solo_iops": solo.a_iops,
            "p99_latency_us": beside.a_p99_us,
            "p99_ratio": r,
            "a_iops": beside.a_iops,
            "b_iops": beside.b_iops,
            "knobs": {"io_throttle": beside.io_throttle, "io_limit": beside.io_limit},
            "p99_latency_us_tuned": tuned.a_p99_us,
            "p99_ratio_tuned": r_tuned,
            "a_iops_tuned": tuned.a_iops,
            "b_iops_tuned": tuned.b_iops,
            "tuned_knobs": tuned_knobs,
            "two_reactors_p99_latency_us": two.as_ref().map(|p| p.a_p99_us),
            "two_reactors_p99_ratio": r_two,
            "two_reactors_a_iops": two.as_ref().map(|p| p.a_iops),
            "two_reactors_b_iops": two.as_ref().map(|p| p.b_iops),
        }),
    );
    Ok(())
}
