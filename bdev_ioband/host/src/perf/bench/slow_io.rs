//! Scenario `slow_io`: does one tenant's slow I/O hold the others back? Three tenants
//! (`tag:1`..`tag:3`, each 1 job at QD 8, 4 KiB randread) share the
//! [`closed_loop`](super::closed_loop) device (20000 IOPS, 200 µs, QD 32) whose FLUSHes take
//! 50 ms without occupying its server (`flush_latency_us` 50000); weight policy, equal
//! weights, default knobs. Run once alone and once beside a fourth tenant (`tag:4`) that
//! keeps exactly one FLUSH outstanding (1 job, QD 1, `rw=flush`): the three tenants' total
//! IOPS with the slow tenant ÷ without. With two CPUs, again with the tenants spread over
//! two reactors (`tag:1` and `tag:3` on reactor 0, `tag:2` and the FLUSH tenant on reactor
//! 1: the share spans both).
//!
//! Runs on the bench thread.

use std::fmt::Write as _;

use bdev_ioband_engine::GroupKey;
use serde_json::json;

use super::super::opts::Workload;
use super::super::report::{JobReport, RunReport};
use super::closed_loop::{device_config, iops_of, DEVICE_IOPS};
use super::{go, job, BenchOptions, Durations, Out, FINE_WINDOW_S};

/// The model's flush latency, µs.
const FLUSH_LATENCY_US: u64 = 50_000;
/// Target.
const OTHERS_RATIO_MIN: f64 = 0.95;

/// Runs the scenario.
pub(super) fn slow_io(opts: &BenchOptions, d: &Durations, out: &mut Out) -> Result<(), String> {
    let secs = d.slow_io_s;
    let cfg = device_config(&[100, 100, 100, 100], None, FLUSH_LATENCY_US);
    // The jobs; on `reactors` reactors, tenant t on reactor (t + 1) mod 2 and the FLUSH
    // tenant on reactor 1.
    let tenants = |with_flush: bool, reactors: u32| {
        let core = |t: u32| if reactors > 1 { (t + 1) % 2 } else { 0 };
        let mut jobs: Vec<_> = (1..=3u32)
            .map(|t| {
                job(
                    &format!("t{t}"),
                    "band0",
                    8,
                    4096,
                    Some(GroupKey::Tag(t)),
                    core(t),
                )
            })
            .collect();
        if with_flush {
            let mut f = job("flusher", "band0", 1, 4096, Some(GroupKey::Tag(4)), core(2));
            f.workload = Workload::FLUSH;
            jobs.push(f);
        }
        jobs
    };
    let pair = |reactors: u32| -> Result<_, String> {
        let on = if reactors > 1 { ", two reactors" } else { "" };
        let cores: Vec<u32> = (0..reactors).collect();
        let alone = go(
            opts,
            &format!("slow_io three tenants{on}"),
            cores.clone(),
            &cfg,
            tenants(false, reactors),
            secs,
            FINE_WINDOW_S,
        )?;
        let beside = go(
            opts,
            &format!("slow_io beside a FLUSH tenant{on}"),
            cores,
            &cfg,
            tenants(true, reactors),
            secs,
            FINE_WINDOW_S,
        )?;
        Ok((alone, beside))
    };
    let others = |r: &RunReport| -> f64 { (1..=3).map(|t| iops_of(r, &format!("tag:{t}"))).sum() };
    let ratio_of = |without: f64, with: f64| if without > 0.0 { with / without } else { 0.0 };
    let (alone, beside) = pair(1)?;
    let (without, with) = (others(&alone), others(&beside));
    let ratio = ratio_of(without, with);
    let two = if super::machine_cpus() >= 2 {
        Some(pair(2)?)
    } else {
        None
    };
    let ratio_two = two.as_ref().map(|(a, b)| ratio_of(others(a), others(b)));
    fn flusher(r: &RunReport) -> Option<&JobReport> {
        r.results.iter().find(|j| j.job == "flusher")
    }
    let flushes = |r: &RunReport| flusher(r).map_or(0.0, |j| j.iops);
    let flush_iops = flushes(&beside);
    let flush_p50_us = flusher(&beside).map_or(0.0, |j| j.p50_latency_us);
    let knobs = beside.shares.first().map(|s| (s.io_throttle, s.io_limit));
    let per_tenant =
        |r: &RunReport| -> Vec<f64> { (1..=3).map(|t| iops_of(r, &format!("tag:{t}"))).collect() };
    let mut md = format!(
        "## 9. Slow I/O: three tenants beside one that keeps a 50 ms FLUSH outstanding \
         (model: {DEVICE_IOPS} IOPS, flush_latency_us {FLUSH_LATENCY_US}; weight policy, equal weights, default knobs)\n\n\
         | run | tag:1 IOPS | tag:2 IOPS | tag:3 IOPS | three tenants IOPS | FLUSHes/s |\n\
         |---|---:|---:|---:|---:|---:|\n"
    );
    let mut rows = vec![
        ("alone", &alone, None),
        ("beside the FLUSH tenant", &beside, Some(flush_iops)),
    ];
    if let Some((a, b)) = two.as_ref() {
        rows.push(("alone, two reactors", a, None));
        rows.push(("beside the FLUSH tenant, two reactors", b, Some(flushes(b))));
    }
    for (name, r, f) in rows {
        let t = per_tenant(r);
        let _ = writeln!(
            md,
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
            t[0],
            t[1],
            t[2],
            others(r),
            f.map_or("-".into(), |v| format!("{v:.1}"))
        );
    }
    let _ = writeln!(
        md,
        "\n`slow_io.others_ratio` = **{ratio:.3}** (target ≥ {OTHERS_RATIO_MIN}); the FLUSH tenant's \
         median latency {:.0} µs. Spread over two reactors (`slow_io.two_reactors_others_ratio`, \
         same target): {}.\n",
        flush_p50_us,
        ratio_two.map_or("not measured (one CPU)".into(), |v| format!("**{v:.3}**"))
    );
    out.md.push_str(&md);
    out.json.insert(
        "slow_io".into(),
        json!({
            "workload": "tag:1..3: 1 job QD 8 4 KiB randread each; tag:4: 1 job QD 1 FLUSH; weights 100 each",
            "flush_latency_us": FLUSH_LATENCY_US,
            "others_iops_alone": without,
            "others_iops_beside_flush": with,
            "others_ratio": ratio,
            "tenant_iops_alone": per_tenant(&alone),
            "tenant_iops_beside_flush": per_tenant(&beside),
            "flush_iops": flush_iops,
            "flush_p50_latency_us": flush_p50_us,
            "knobs": knobs.map(|(t, l)| json!({"io_throttle": t, "io_limit": l})),
            "two_reactors_others_ratio": ratio_two,
            "two_reactors_tenant_iops_alone": two.as_ref().map(|(a, _)| per_tenant(a)),
            "two_reactors_tenant_iops_beside_flush": two.as_ref().map(|(_, b)| per_tenant(b)),
            "two_reactors_flush_iops": two.as_ref().map(|(_, b)| flushes(b)),
        }),
    );
    Ok(())
}
