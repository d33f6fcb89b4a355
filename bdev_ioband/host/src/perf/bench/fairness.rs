//! Scenario `fairness`: a model device (100k IOPS, 20 µs, QD 128) saturated by 2, 8 and 64
//! groups with weights spread log-uniformly over 1..100; each group's queue depth is 2.5 ×
//! its entitled share of the in-flight limit (at least 4), so every group stays
//! backlogged. Share errors over 1 s windows (ten 100 ms windows each) and over 100 ms
//! windows.
//!
//! Runs on the bench thread.

use std::fmt::Write as _;

use bdev_ioband_engine::GroupKey;
use serde_json::{json, Value};

use super::super::report::ShareTable;
use super::super::svg::{line_chart, Series};
use super::{
    complete_fine_windows, config, go, ioband, job, model, pctv, rewindow, setting, BenchOptions,
    Durations, Out, FINE_WINDOW_S,
};

/// Weights spread log-uniformly over 1..=100.
pub fn spread_weights(n: usize) -> Vec<u32> {
    (0..n)
        .map(|i| {
            if n == 1 {
                100
            } else {
                let e = i as f64 / (n - 1) as f64;
                u32::try_from(super::super::sat_u64(100f64.powf(e).round()).clamp(1, 100))
                    .unwrap_or(100)
            }
        })
        .collect()
}

fn share_series(t: &ShareTable, with_configured: bool, n: usize) -> Vec<Series> {
    let mut s: Vec<Series> = t
        .groups
        .iter()
        .map(|g| Series {
            name: format!("{} (w {})", g.group, g.weight),
            points: g
                .window_share
                .iter()
                .take(n)
                .enumerate()
                .map(|(i, &v)| ((i as f64 + 0.5) * t.window_s, v * 100.0))
                .collect(),
            dashed: false,
        })
        .collect();
    if with_configured {
        for g in &t.groups {
            if let Some(c) = g.configured_share {
                s.push(Series {
                    name: format!("{} configured", g.group),
                    points: vec![
                        (0.5 * t.window_s, c * 100.0),
                        ((n as f64 - 0.5) * t.window_s, c * 100.0),
                    ],
                    dashed: true,
                });
            }
        }
    }
    s
}

pub(super) fn fairness(opts: &BenchOptions, d: &Durations, out: &mut Out) -> Result<(), String> {
    let io_limit = 192.0; // 3/2 of the model's queue depth 128
    let mut cases = Vec::new();
    let mut err_series = Vec::new();
    let mut md = String::from(
        "## 2. Weight fairness (saturated model device: 100k IOPS, 20 µs, QD 128; weights log-spread 1..100)\n\n\
         | groups | max share error (1 s) | mean (1 s) | max abs error, points (1 s) | max share error (100 ms) | Jain (run) | IOPS |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for n in [2usize, 8, 64] {
        let weights = spread_weights(n);
        let wsum: u32 = weights.iter().sum();
        let mut entries = vec![
            model("Model0", 100_000, 0, 20),
            ioband("band0", "Model0", "weight"),
        ];
        for (i, w) in weights.iter().enumerate() {
            entries.push(setting("band0", &format!("tag:{}", i + 1), json!(w)));
        }
        let jobs = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let share = f64::from(w) / f64::from(wsum);
                let qd = u32::try_from(
                    super::super::sat_u64((2.5 * share * io_limit).ceil()).clamp(4, 256),
                )
                .unwrap_or(256);
                job(
                    &format!("g{}", i + 1),
                    "band0",
                    qd,
                    4096,
                    Some(GroupKey::Tag(u32::try_from(i + 1).unwrap_or(u32::MAX))),
                    0,
                )
            })
            .collect();
        let r = go(
            opts,
            &format!("fairness {n} groups"),
            vec![0],
            &config(entries),
            jobs,
            d.fairness,
            FINE_WINDOW_S,
        )?;
        let fine = r
            .shares
            .first()
            .cloned()
            .ok_or("fairness: no share table")?;
        let coarse = rewindow(
            &fine,
            super::super::sat_usize((1.0 / FINE_WINDOW_S).round()),
            d.fairness,
        );
        let _ = writeln!(
            md,
            "| {n} | {} | {} | {} | {} | {:.5} | {:.0} |",
            pctv(coarse.max_window_share_error),
            pctv(coarse.mean_window_share_error),
            ptsv(coarse.max_window_abs_share_error),
            pctv(fine.max_window_share_error),
            fine.jain_index.unwrap_or(0.0),
            r.total.iops
        );
        cases.push(json!({
            "groups": n,
            "weights": weights,
            "max_share_error": coarse.max_window_share_error,
            "mean_share_error": coarse.mean_window_share_error,
            "max_abs_share_error": coarse.max_window_abs_share_error,
            "max_share_error_100ms": fine.max_window_share_error,
            "mean_share_error_100ms": fine.mean_window_share_error,
            "run_max_share_error": fine.max_share_error,
            "jain_index": fine.jain_index,
            "iops": r.total.iops,
            "windows_1s": coarse.windows_used.len(),
        }));
        // Worst relative error per 100 ms window, for the plot.
        let nwin = fine
            .groups
            .iter()
            .map(|g| g.window_share.len())
            .max()
            .unwrap_or(0);
        let complete = super::super::sat_usize((d.fairness / FINE_WINDOW_S + 1e-9).floor());
        let pts: Vec<(f64, f64)> = (0..nwin.min(complete))
            .map(|w| {
                let worst = fine
                    .groups
                    .iter()
                    .filter_map(|g| {
                        let c = g.configured_share?;
                        Some((g.window_share.get(w)? - c).abs() / c * 100.0)
                    })
                    .fold(0.0, f64::max);
                ((w as f64 + 0.5) * FINE_WINDOW_S, worst)
            })
            .collect();
        err_series.push(Series {
            name: format!("{n} groups"),
            points: pts,
            dashed: false,
        });
        if n == 8 {
            out.svgs.push((
                "fairness_8_groups.svg".into(),
                line_chart(
                    "Weight: share over time, 8 groups (100 ms windows; dashed: configured)",
                    "seconds",
                    "share of I/Os (%)",
                    &share_series(&fine, true, complete_fine_windows(d.fairness)),
                    None,
                ),
            ));
        }
    }
    out.svgs.push((
        "fairness_error.svg".into(),
        line_chart(
            "Weight: worst relative share error per 100 ms window",
            "seconds",
            "max |achieved - configured| / configured (%)",
            &err_series,
            None,
        ),
    ));
    let worst = |key: &str| {
        cases
            .iter()
            .filter_map(|c| c.get(key).and_then(Value::as_f64))
            .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))))
    };
    let max_err = worst("max_share_error");
    let mean_err = {
        let v: Vec<f64> = cases
            .iter()
            .filter_map(|c| c["mean_share_error"].as_f64())
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let g64 = cases
        .iter()
        .find(|c| c["groups"] == 64)
        .cloned()
        .unwrap_or(Value::Null);
    let _ = writeln!(
        md,
        "\nShare error = |achieved − configured| / configured in I/Os per window; windows after the first \
         second. 64 groups: max **{}** over 1 s windows (target ≤ 2%).\n\n![share over time](fairness_8_groups.svg)\n![share error](fairness_error.svg)\n",
        pctv(g64["max_share_error"].as_f64())
    );
    out.md.push_str(&md);
    out.json.insert(
        "fairness".into(),
        json!({
            "window_s": 1.0,
            "max_share_error": max_err,
            "mean_share_error": mean_err,
            "max_abs_share_error": worst("max_abs_share_error"),
            "max_share_error_100ms": worst("max_share_error_100ms"),
            "groups_64_max_share_error": g64["max_share_error"],
            "cases": cases,
        }),
    );
    Ok(())
}

fn ptsv(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.3}", v * 100.0))
}
