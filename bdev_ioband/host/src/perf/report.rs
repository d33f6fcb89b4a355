//! What a run reports: one row per job and a total (bdevperf's columns plus p50/p99/p99.9),
//! and for each ioband target a share table (configured versus achieved share in the
//! policy's cost unit, over the whole run and over fixed windows). Rendered as bdevperf's
//! text table or as JSON with stable keys (see PERF.md).
//!
//! Pure: the share math takes plain numbers, so it is tested without a host.

use std::fmt::Write as _;

use bdev_ioband_engine::Policy;
use serde::Serialize;

use super::events::EventReport;
use super::hist::Histogram;

/// Version of the JSON schema; bumped only when a key changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// One job's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobReport {
    /// Job name.
    pub job: String,
    /// Target bdev.
    pub bdev: String,
    /// Lcore it ran on.
    pub core: u32,
    /// Its core as a mask, `0x..`.
    pub core_mask: String,
    /// `read`, `randrw`...
    pub workload: String,
    /// Percentage of reads.
    pub percentage: u8,
    /// Outstanding I/Os.
    pub queue_depth: u32,
    /// Bytes per I/O.
    pub io_size: u64,
    /// Group tag (`tag:1`...), `null` if untagged.
    pub group: Option<String>,
    /// Seconds after the run's start before its first I/O (`startdelay`).
    pub start_delay_s: f64,
    /// `finished`, `terminated` (interrupted) or `failed`.
    pub status: String,
    /// Seconds it submitted for.
    pub runtime: f64,
    /// Successful I/Os per second.
    pub iops: f64,
    /// MiB (2^20 bytes) per second.
    pub mibps: f64,
    /// Successful I/Os.
    pub ios: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Failed or aborted I/Os.
    pub io_failed: u64,
    /// Timed-out I/Os (always 0: no timeout is armed).
    pub io_timeout: u64,
    /// Failed I/Os per second.
    pub fail_per_s: f64,
    /// Timed-out I/Os per second.
    pub timeout_per_s: f64,
    /// Mean latency, µs.
    pub avg_latency_us: f64,
    /// Least latency, µs.
    pub min_latency_us: f64,
    /// Greatest latency, µs.
    pub max_latency_us: f64,
    /// Median latency, µs.
    pub p50_latency_us: f64,
    /// 99th percentile latency, µs.
    pub p99_latency_us: f64,
    /// 99.9th percentile latency, µs.
    pub p999_latency_us: f64,
}

/// The sum over jobs.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct TotalReport {
    /// Sum of IOPS.
    pub iops: f64,
    /// Sum of MiB/s.
    pub mibps: f64,
    /// Sum of failures per second.
    pub fail_per_s: f64,
    /// Sum of time-outs per second.
    pub timeout_per_s: f64,
    /// Mean latency over every I/O, µs.
    pub avg_latency_us: f64,
    /// Least latency, µs.
    pub min_latency_us: f64,
    /// Greatest latency, µs.
    pub max_latency_us: f64,
    /// Median over every I/O, µs.
    pub p50_latency_us: f64,
    /// 99th percentile over every I/O, µs.
    pub p99_latency_us: f64,
    /// 99.9th percentile over every I/O, µs.
    pub p999_latency_us: f64,
}

/// One group in a share table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupShare {
    /// `none`, `tag:1`, `initiator:...`, `cgroup:7`.
    pub group: String,
    /// Jobs that drove it.
    pub jobs: usize,
    /// Its weight.
    pub weight: u32,
    /// range-bw minimum, KiB/s (0 = none).
    pub min_kib_per_sec: u32,
    /// range-bw maximum, KiB/s (0 = none).
    pub max_kib_per_sec: u32,
    /// weight / Σweight of the active groups (weight policies; `null` for range-bw).
    pub configured_share: Option<f64>,
    /// cost / Σcost over the run.
    pub achieved_share: f64,
    /// (achieved − configured) / configured over the run (weight policies).
    pub share_error: Option<f64>,
    /// achieved − configured, in share points (weight policies).
    pub abs_share_error: Option<f64>,
    /// Largest |relative error| over the windows used (weight policies).
    pub worst_window_share_error: Option<f64>,
    /// I/Os per second.
    pub iops: f64,
    /// KiB per second.
    pub kib_per_sec: f64,
    /// Cost over the run (I/Os or bytes).
    pub cost: u64,
    /// Cost in each window from the run's start (every window, partial ones too).
    pub window_cost: Vec<u64>,
    /// Achieved share in each window.
    pub window_share: Vec<f64>,
    /// KiB/s achieved in each window from the run's start (bytes ÷ 1024 ÷ window), under
    /// every policy.
    pub window_kib_per_sec: Vec<f64>,
    /// Least KiB/s ÷ min over the windows used (range-bw with a min).
    pub min_met_ratio: Option<f64>,
    /// Greatest KiB/s ÷ max − 1 over the windows used (range-bw with a max; ≤ 0: never
    /// above).
    pub max_exceeded_ratio: Option<f64>,
}

/// Configured versus achieved shares in one share (over every ioband bdev of it that a job
/// drove: their groups compete with each other).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShareTable {
    /// The ioband bdev, or the share's driven ioband bdevs joined by commas.
    pub bdev: String,
    /// Its share.
    pub share: String,
    /// The share's policy.
    pub policy: String,
    /// `io` (weight) or `byte` (weight-iosize, range-bw).
    pub cost_unit: String,
    /// Window length, seconds.
    pub window_s: f64,
    /// Indices of the windows the window figures use: complete windows, without the first
    /// (ramp-up) when there are two or more.
    pub windows_used: Vec<usize>,
    /// The active groups (driven by at least one job).
    pub groups: Vec<GroupShare>,
    /// Largest |share_error| over the run (weight policies).
    pub max_share_error: Option<f64>,
    /// Mean |share_error| over the run (weight policies).
    pub mean_share_error: Option<f64>,
    /// Largest |relative error| of any group in any window used (weight policies).
    pub max_window_share_error: Option<f64>,
    /// Mean |relative error| over groups × windows used (weight policies).
    pub mean_window_share_error: Option<f64>,
    /// Largest |achieved − configured| in share points in any window used.
    pub max_window_abs_share_error: Option<f64>,
    /// Jain's fairness index of cost ÷ weight over the run (weight policies; 1 = exact).
    pub jain_index: Option<f64>,
    /// Least min_met_ratio over groups (range-bw).
    pub min_met_ratio: Option<f64>,
    /// Greatest max_exceeded_ratio over groups (range-bw).
    pub max_exceeded_ratio: Option<f64>,
    /// Σ KiB/s of the active groups.
    pub total_kib_per_sec: f64,
    /// The share's io_throttle in force at the end of the run (`null` where unknown).
    pub io_throttle: Option<u32>,
    /// The share's io_limit in force at the end of the run (`null` where unknown).
    pub io_limit: Option<u32>,
}

/// A run's report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunReport {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub version: u32,
    /// The run's core mask.
    pub core_mask: String,
    /// Reactors.
    pub core_count: usize,
    /// `-t`, seconds.
    pub runtime: f64,
    /// Seconds from the start to the latest end of any job (at least `runtime`); share
    /// tables' rates are over it.
    pub duration_s: f64,
    /// Share window, seconds.
    pub window_s: f64,
    /// The control events that ran, in order.
    pub events: Vec<EventReport>,
    /// `bdev_ioband_get_iostat` once every job has drained (null without ioband bdevs'
    /// module answering).
    pub iostat_end: serde_json::Value,
    /// Per job.
    pub results: Vec<JobReport>,
    /// Sum.
    pub total: TotalReport,
    /// Per ioband target.
    pub shares: Vec<ShareTable>,
}

pub(crate) fn us(ns: f64) -> f64 {
    ns / 1000.0
}

/// The total row from the jobs and their merged histogram.
pub fn total_of(jobs: &[JobReport], hist: &Histogram) -> TotalReport {
    TotalReport {
        iops: jobs.iter().map(|j| j.iops).sum(),
        mibps: jobs.iter().map(|j| j.mibps).sum(),
        fail_per_s: jobs.iter().map(|j| j.fail_per_s).sum(),
        timeout_per_s: 0.0,
        avg_latency_us: us(hist.mean()),
        min_latency_us: us(hist.min() as f64),
        max_latency_us: us(hist.max() as f64),
        p50_latency_us: us(hist.percentile(50.0) as f64),
        p99_latency_us: us(hist.percentile(99.0) as f64),
        p999_latency_us: us(hist.percentile(99.9) as f64),
    }
}

/// One active group's inputs to [`share_table`].
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInput {
    /// Its key as text.
    pub group: String,
    /// Jobs that drove it.
    pub jobs: usize,
    /// Weight.
    pub weight: u32,
    /// range-bw min, KiB/s.
    pub min_kib_per_sec: u32,
    /// range-bw max, KiB/s.
    pub max_kib_per_sec: u32,
    /// Successful I/Os in the run.
    pub ios: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Per window: (I/Os, bytes).
    pub windows: Vec<(u64, u64)>,
}

/// Which windows the window figures use: the complete ones, without the first when there
/// are two or more.
pub fn windows_used(complete: usize) -> Vec<usize> {
    match complete {
        0 => Vec::new(),
        1 => vec![0],
        n => (1..n).collect(),
    }
}

fn max_f(it: impl Iterator<Item = f64>) -> Option<f64> {
    it.fold(None, |acc, v| Some(acc.map_or(v, |a: f64| a.max(v))))
}

fn min_f(it: impl Iterator<Item = f64>) -> Option<f64> {
    it.fold(None, |acc, v| Some(acc.map_or(v, |a: f64| a.min(v))))
}

fn mean_f(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Computes a share table. `runtime_s` turns totals into rates; `complete_windows` is how
/// many windows of `window_s` lie entirely inside the run.
pub fn share_table(
    bdev: &str,
    share: &str,
    policy: Policy,
    inputs: &[GroupInput],
    runtime_s: f64,
    window_s: f64,
    complete_windows: usize,
) -> ShareTable {
    let by_io = policy == Policy::Weight;
    let cost_of = |ios: u64, bytes: u64| if by_io { ios } else { bytes };
    let weighted = policy.is_weight();
    let used = windows_used(complete_windows);
    let total_cost: u64 = inputs.iter().map(|g| cost_of(g.ios, g.bytes)).sum();
    let weight_total: u64 = inputs.iter().map(|g| u64::from(g.weight)).sum();
    let n_windows = inputs.iter().map(|g| g.windows.len()).max().unwrap_or(0);
    let window_totals: Vec<u64> = (0..n_windows)
        .map(|w| {
            inputs
                .iter()
                .map(|g| g.windows.get(w).map_or(0, |&(i, b)| cost_of(i, b)))
                .sum()
        })
        .collect();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let kib_rate = |bytes: u64, secs: f64| {
        if secs > 0.0 {
            bytes as f64 / 1024.0 / secs
        } else {
            0.0
        }
    };
    let mut window_errors = Vec::new();
    let mut window_abs = Vec::new();
    let groups: Vec<GroupShare> = inputs
        .iter()
        .map(|g| {
            let cost = cost_of(g.ios, g.bytes);
            let achieved = ratio(cost, total_cost);
            let configured =
                (weighted && weight_total > 0).then(|| f64::from(g.weight) / weight_total as f64);
            let window_cost: Vec<u64> = (0..n_windows)
                .map(|w| g.windows.get(w).map_or(0, |&(i, b)| cost_of(i, b)))
                .collect();
            let window_share: Vec<f64> = window_cost
                .iter()
                .zip(&window_totals)
                .map(|(&c, &t)| ratio(c, t))
                .collect();
            let window_kib_per_sec: Vec<f64> = (0..n_windows)
                .map(|w| kib_rate(g.windows.get(w).map_or(0, |&(_, b)| b), window_s))
                .collect();
            let worst = configured.and_then(|c| {
                max_f(used.iter().filter_map(|&w| {
                    let s = *window_share.get(w)?;
                    let e = (s - c).abs() / c;
                    window_errors.push(e);
                    window_abs.push((s - c).abs());
                    Some(e)
                }))
            });
            let window_kib = |w: usize| kib_rate(g.windows.get(w).map_or(0, |&(_, b)| b), window_s);
            let min_met = (!weighted && g.min_kib_per_sec > 0).then(|| {
                min_f(
                    used.iter()
                        .map(|&w| window_kib(w) / f64::from(g.min_kib_per_sec)),
                )
                .unwrap_or(kib_rate(g.bytes, runtime_s) / f64::from(g.min_kib_per_sec))
            });
            let max_exc = (!weighted && g.max_kib_per_sec > 0).then(|| {
                max_f(
                    used.iter()
                        .map(|&w| window_kib(w) / f64::from(g.max_kib_per_sec)),
                )
                .unwrap_or(kib_rate(g.bytes, runtime_s) / f64::from(g.max_kib_per_sec))
                    - 1.0
            });
            GroupShare {
                group: g.group.clone(),
                jobs: g.jobs,
                weight: g.weight,
                min_kib_per_sec: g.min_kib_per_sec,
                max_kib_per_sec: g.max_kib_per_sec,
                configured_share: configured,
                achieved_share: achieved,
                share_error: configured.map(|c| (achieved - c) / c),
                abs_share_error: configured.map(|c| achieved - c),
                worst_window_share_error: worst,
                iops: if runtime_s > 0.0 {
                    g.ios as f64 / runtime_s
                } else {
                    0.0
                },
                kib_per_sec: kib_rate(g.bytes, runtime_s),
                cost,
                window_cost,
                window_share,
                window_kib_per_sec,
                min_met_ratio: min_met,
                max_exceeded_ratio: max_exc,
            }
        })
        .collect();
    let errors: Vec<f64> = groups
        .iter()
        .filter_map(|g| g.share_error.map(f64::abs))
        .collect();
    let jain = weighted.then(|| {
        let x: Vec<f64> = groups
            .iter()
            .map(|g| g.cost as f64 / f64::from(g.weight.max(1)))
            .collect();
        let (s, s2) = (x.iter().sum::<f64>(), x.iter().map(|v| v * v).sum::<f64>());
        if s2 == 0.0 {
            1.0
        } else {
            s * s / (x.len() as f64 * s2)
        }
    });
    ShareTable {
        bdev: bdev.to_owned(),
        share: share.to_owned(),
        policy: policy.as_str().to_owned(),
        cost_unit: if by_io { "io" } else { "byte" }.to_owned(),
        window_s,
        windows_used: used,
        max_share_error: max_f(errors.iter().copied()),
        mean_share_error: mean_f(&errors),
        max_window_share_error: max_f(window_errors.iter().copied()),
        mean_window_share_error: mean_f(&window_errors),
        max_window_abs_share_error: max_f(window_abs.iter().copied()),
        jain_index: jain,
        min_met_ratio: min_f(groups.iter().filter_map(|g| g.min_met_ratio)),
        max_exceeded_ratio: max_f(groups.iter().filter_map(|g| g.max_exceeded_ratio)),
        total_kib_per_sec: groups.iter().map(|g| g.kib_per_sec).sum(),
        io_throttle: None,
        io_limit: None,
        groups,
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{:.2}%", v * 100.0))
}

/// bdevperf's table, with p50/p99/p99.9 columns, then a share table per ioband target.
pub fn render_text(r: &RunReport) -> String {
    let mut out = String::new();
    let head = format!(
        "{:<28}: {:>10} {:>12} {:>10} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "Device Information",
        "runtime(s)",
        "IOPS",
        "MiB/s",
        "Fail/s",
        "TO/s",
        "Average",
        "min",
        "max",
        "p50",
        "p99",
        "p99.9"
    );
    let _ = writeln!(out, "{:>width$}", "Latency(us)", width = head.len());
    let _ = writeln!(out, "{head}");
    for j in &r.results {
        let mix = if j.workload.ends_with("rw") {
            format!(", percentage: {}", j.percentage)
        } else {
            String::new()
        };
        let group = j
            .group
            .as_ref()
            .map(|g| format!(", group: {g}"))
            .unwrap_or_default();
        let delay = if j.start_delay_s > 0.0 {
            format!(", startdelay: {} s", j.start_delay_s)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "Job: {} (Core Mask {}, workload: {}{}, depth: {}, IO size: {}{}{})",
            j.job, j.core_mask, j.workload, mix, j.queue_depth, j.io_size, group, delay
        );
        let _ = writeln!(
            out,
            "\t {:<26}: {:>10.2} {:>12.2} {:>10.2} {:>8.2} {:>8.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            j.bdev,
            j.runtime,
            j.iops,
            j.mibps,
            j.fail_per_s,
            j.timeout_per_s,
            j.avg_latency_us,
            j.min_latency_us,
            j.max_latency_us,
            j.p50_latency_us,
            j.p99_latency_us,
            j.p999_latency_us
        );
    }
    let _ = writeln!(out, "{}", "=".repeat(head.len()));
    let t = &r.total;
    let _ = writeln!(
        out,
        "{:<28}: {:>10} {:>12.2} {:>10.2} {:>8.2} {:>8.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
        "Total",
        "",
        t.iops,
        t.mibps,
        t.fail_per_s,
        t.timeout_per_s,
        t.avg_latency_us,
        t.min_latency_us,
        t.max_latency_us,
        t.p50_latency_us,
        t.p99_latency_us,
        t.p999_latency_us
    );
    for s in &r.shares {
        out.push('\n');
        out.push_str(&render_share_table(s));
    }
    out
}

/// One share table as text.
pub fn render_share_table(s: &ShareTable) -> String {
    let mut out = String::new();
    let unit = if s.cost_unit == "io" { "I/Os" } else { "bytes" };
    let _ = writeln!(
        out,
        "Shares of {} (share {}, policy {}, cost unit: {}, {} s windows, {} used)",
        s.bdev,
        s.share,
        s.policy,
        unit,
        s.window_s,
        s.windows_used.len()
    );
    if s.policy == "range-bw" {
        let _ = writeln!(
            out,
            "{:<32} {:>10} {:>10} {:>14} {:>9} {:>16} {:>16}",
            "Group",
            "Min KiB/s",
            "Max KiB/s",
            "Achieved KiB/s",
            "Share",
            "Min met (worst)",
            "Max excess (worst)"
        );
        for g in &s.groups {
            let _ = writeln!(
                out,
                "{:<32} {:>10} {:>10} {:>14.1} {:>9} {:>16} {:>16}",
                g.group,
                g.min_kib_per_sec,
                g.max_kib_per_sec,
                g.kib_per_sec,
                pct(Some(g.achieved_share)),
                g.min_met_ratio
                    .map_or_else(|| "-".to_owned(), |v| format!("{:.2}%", v * 100.0)),
                pct(g.max_exceeded_ratio),
            );
        }
        let _ = writeln!(
            out,
            "total {:.1} KiB/s; worst min met {}; worst max excess {}",
            s.total_kib_per_sec,
            pct(s.min_met_ratio),
            pct(s.max_exceeded_ratio)
        );
    } else {
        let _ = writeln!(
            out,
            "{:<32} {:>7} {:>11} {:>10} {:>9} {:>13} {:>12} {:>12}",
            "Group", "Weight", "Configured", "Achieved", "Error", "Worst window", "IOPS", "KiB/s"
        );
        for g in &s.groups {
            let _ = writeln!(
                out,
                "{:<32} {:>7} {:>11} {:>10} {:>9} {:>13} {:>12.1} {:>12.1}",
                g.group,
                g.weight,
                pct(g.configured_share),
                pct(Some(g.achieved_share)),
                pct(g.share_error),
                pct(g.worst_window_share_error),
                g.iops,
                g.kib_per_sec
            );
        }
        let _ = writeln!(
            out,
            "share error (relative): max {}, mean {}; over windows: max {}, mean {}; Jain {:.5}",
            pct(s.max_share_error),
            pct(s.mean_share_error),
            pct(s.max_window_share_error),
            pct(s.mean_window_share_error),
            s.jain_index.unwrap_or(1.0)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(name: &str, weight: u32, ios: u64, bytes: u64, windows: Vec<(u64, u64)>) -> GroupInput {
        GroupInput {
            group: name.into(),
            jobs: 1,
            weight,
            min_kib_per_sec: 0,
            max_kib_per_sec: 0,
            ios,
            bytes,
            windows,
        }
    }

    #[test]
    fn weight_shares_count_ios() {
        let inputs = [
            g(
                "tag:1",
                300,
                7_000,
                1,
                vec![(100, 0), (700, 0), (690, 0), (0, 0)],
            ),
            g(
                "tag:2",
                100,
                3_000,
                999_999,
                vec![(100, 0), (300, 0), (310, 0), (0, 0)],
            ),
        ];
        let t = share_table("b", "s", Policy::Weight, &inputs, 10.0, 1.0, 3);
        assert_eq!(t.cost_unit, "io");
        assert_eq!(t.windows_used, vec![1, 2]);
        let a = &t.groups[0];
        assert_eq!(a.configured_share, Some(0.75));
        assert!((a.achieved_share - 0.7).abs() < 1e-12);
        assert!((a.share_error.expect("weight") + 0.05 / 0.75).abs() < 1e-12);
        assert!((a.abs_share_error.expect("weight") + 0.05).abs() < 1e-12);
        // Window 2: tag:2 has 310/1000 against 0.25: +24%.
        let b = &t.groups[1];
        assert!((b.worst_window_share_error.expect("w") - 0.24).abs() < 1e-9);
        assert!((t.max_window_share_error.expect("w") - 0.24).abs() < 1e-9);
        assert!((t.max_share_error.expect("w") - 0.2).abs() < 1e-9);
        assert_eq!(b.window_cost, vec![100, 300, 310, 0]);
        assert!((a.iops - 700.0).abs() < 1e-9);
        let jain = t.jain_index.expect("weight");
        assert!(jain < 1.0 && jain > 0.9);
        assert_eq!(t.min_met_ratio, None);
    }

    #[test]
    fn iosize_shares_count_bytes() {
        let inputs = [
            g(
                "tag:1",
                100,
                1_000,
                4 << 20,
                vec![(1, 2 << 20), (1, 2 << 20)],
            ),
            g("tag:2", 100, 32, 4 << 20, vec![(1, 2 << 20), (1, 2 << 20)]),
        ];
        let t = share_table("b", "s", Policy::WeightIosize, &inputs, 2.0, 1.0, 2);
        assert_eq!(t.cost_unit, "byte");
        assert_eq!(t.windows_used, vec![1]);
        assert!(t
            .groups
            .iter()
            .all(|g| (g.achieved_share - 0.5).abs() < 1e-12));
        assert_eq!(t.max_share_error, Some(0.0));
        assert_eq!(t.jain_index, Some(1.0));
    }

    #[test]
    fn range_bw_min_and_max() {
        let mut a = g(
            "tag:1",
            100,
            0,
            3 * 1024 * 1000,
            vec![(0, 1024 * 900), (0, 1024 * 1000), (0, 1024 * 1100)],
        );
        a.min_kib_per_sec = 1000;
        let mut b = g(
            "tag:2",
            100,
            0,
            3 * 1024 * 505,
            vec![(0, 1024 * 500), (0, 1024 * 505), (0, 1024 * 500)],
        );
        b.max_kib_per_sec = 500;
        let t = share_table("b", "s", Policy::RangeBw, &[a, b], 3.0, 1.0, 3);
        let (a, b) = (&t.groups[0], &t.groups[1]);
        assert_eq!(a.configured_share, None);
        assert_eq!(a.share_error, None);
        // Windows 1 and 2 are used: 1000 and 1100 against min 1000.
        assert!((a.min_met_ratio.expect("min") - 1.0).abs() < 1e-12);
        assert_eq!(a.max_exceeded_ratio, None);
        assert!((b.max_exceeded_ratio.expect("max") - 0.01).abs() < 1e-12);
        assert_eq!(a.window_kib_per_sec, vec![900.0, 1000.0, 1100.0]);
        assert!((t.max_exceeded_ratio.expect("max") - 0.01).abs() < 1e-12);
        assert!((t.total_kib_per_sec - 1505.0).abs() < 1e-9);
        assert_eq!(t.jain_index, None);
        let text = render_share_table(&t);
        assert!(text.contains("Min KiB/s") && text.contains("tag:2"));
    }

    #[test]
    fn window_selection() {
        assert!(windows_used(0).is_empty());
        assert_eq!(windows_used(1), vec![0]);
        assert_eq!(windows_used(4), vec![1, 2, 3]);
    }
}
