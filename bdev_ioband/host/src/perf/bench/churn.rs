//! Scenario `churn`: range-bw groups that arrive, leave and change their settings while the
//! device is saturated. A model device of 200 MiB/s (no IOPS limit, 20 µs, QD 128), one
//! ioband bdev with policy `range-bw` and default knobs, 64 KiB randread, every group deep
//! enough to stay backlogged (QD ≥ 16). Arrivals and departures are jobs' `startdelay` and
//! runtime; setting changes are the run's control schedule (`bdev_ioband_set_settings`,
//! `bdev_ioband_set_device`):
//!
//! - `tag:1` (min 50 MiB/s) runs alone for the first 3 s; then nine groups arrive: `tag:2`
//!   (min 1 MiB/s, raised to 50 MiB/s after it ran 2 s), `tag:3` (max 15 MiB/s, lowered to
//!   5 MiB/s mid-run), `tag:4` (min 20 MiB/s, leaves before the end), `tag:5` (weight 100,
//!   changed to 400 mid-run) and `tag:6`..`tag:10` (no min, no max, weight 100).
//!
//! range-bw takes no weight through `bdev_ioband_set_settings` (a weight is a `weight`
//! policy's value), so the weight change is a policy round trip at one instant: switch the
//! share to `weight`, set the weight, switch back to `range-bw` (a policy switch keeps every
//! group's weight and range).
//!
//! Evaluated over 1 s windows from the run's start: a (group, window) counts if the group
//! ran during the whole window and the window starts at least 1 s after the last change
//! affecting the share (an arrival, a departure or a setting change) with no change inside
//! it. `churn.range_min_met_ratio` = least achieved ÷ min over counted windows of groups
//! with a min; `churn.range_max_exceeded_ratio` = greatest max(0, achieved − max) ÷ max
//! over counted windows of groups with a max.
//!
//! Runs on the bench thread.

use std::fmt::Write as _;

use bdev_ioband_engine::GroupKey;
use serde_json::{json, Value};

use super::super::events::ControlEvent;
use super::super::report::{RunReport, ShareTable};
use super::super::svg::{line_chart, Series};
use super::{
    config, go_with_events, ioband, job, machine_cpus, model_qd, set_device, BenchOptions,
    Durations, Out, FINE_WINDOW_S,
};

/// The schedule's times, seconds after the run's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Times {
    /// The nine groups arrive (`tag:1` ran alone before).
    pub(super) arrive_s: f64,
    /// `tag:2`'s min goes from 1 to 50 MiB/s.
    pub(super) raise_s: f64,
    /// `tag:3`'s max is lowered and `tag:5`'s weight changed.
    pub(super) retune_s: f64,
    /// `tag:4` leaves.
    pub(super) leave_s: f64,
    /// The run ends.
    pub(super) end_s: f64,
}

impl Times {
    /// About 12 s.
    pub(super) const FULL: Times = Times {
        arrive_s: 3.0,
        raise_s: 5.0,
        retune_s: 7.0,
        leave_s: 9.0,
        end_s: 12.0,
    };
    /// About 8 s: the max, the weight and the min change at once.
    pub(super) const QUICK: Times = Times {
        arrive_s: 3.0,
        raise_s: 5.0,
        retune_s: 5.0,
        leave_s: 6.0,
        end_s: 8.0,
    };
}

/// A group's value from `from_s` on.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Setting {
    from_s: f64,
    min_kib_per_sec: u32,
    max_kib_per_sec: u32,
    weight: u32,
}

/// One group: its tag, what it is for, depth and active interval.
#[derive(Debug, Clone, PartialEq)]
struct Group {
    tag: u32,
    role: &'static str,
    queue_depth: u32,
    start_s: f64,
    end_s: f64,
    /// In time order; the first from 0.
    settings: Vec<Setting>,
}

impl Group {
    fn setting_at(&self, t_s: f64) -> Setting {
        self.settings
            .iter()
            .rev()
            .find(|s| s.from_s <= t_s + 1e-9)
            .or(self.settings.first())
            .copied()
            .unwrap_or(Setting {
                from_s: 0.0,
                min_kib_per_sec: 0,
                max_kib_per_sec: 0,
                weight: 100,
            })
    }
}

const MIB: u32 = 1024; // KiB
const DEVICE_MIB_PER_SEC: u64 = 200;
const IO_SIZE: u64 = 64 << 10;
const MIN_MET_MIN: f64 = 0.98;
const MAX_EXCEEDED_MAX: f64 = 0.01;

fn from(from_s: f64, min: u32, max: u32, weight: u32) -> Setting {
    Setting {
        from_s,
        min_kib_per_sec: min,
        max_kib_per_sec: max,
        weight,
    }
}

fn groups(t: &Times) -> Vec<Group> {
    let g = |tag, role, queue_depth, start_s, end_s, settings| Group {
        tag,
        role,
        queue_depth,
        start_s,
        end_s,
        settings,
    };
    let mut out = vec![
        g(
            1,
            "min 50 MiB/s, alone first",
            96,
            0.0,
            t.end_s,
            vec![from(0.0, 50 * MIB, 0, 100)],
        ),
        g(
            2,
            "min 1 -> 50 MiB/s",
            96,
            t.arrive_s,
            t.end_s,
            vec![from(0.0, MIB, 0, 100), from(t.raise_s, 50 * MIB, 0, 100)],
        ),
        g(
            3,
            "max 15 -> 5 MiB/s",
            32,
            t.arrive_s,
            t.end_s,
            vec![
                from(0.0, 0, 15 * MIB, 100),
                from(t.retune_s, 0, 5 * MIB, 100),
            ],
        ),
        g(
            4,
            "min 20 MiB/s, leaves",
            48,
            t.arrive_s,
            t.leave_s,
            vec![from(0.0, 20 * MIB, 0, 100)],
        ),
        g(
            5,
            "weight 100 -> 400",
            16,
            t.arrive_s,
            t.end_s,
            vec![from(0.0, 0, 0, 100), from(t.retune_s, 0, 0, 400)],
        ),
    ];
    for tag in 6..=10 {
        out.push(g(
            tag,
            "weight 100",
            16,
            t.arrive_s,
            t.end_s,
            vec![from(0.0, 0, 0, 100)],
        ));
    }
    out
}

/// The control schedule: the setting changes after the start.
fn events(t: &Times) -> Vec<ControlEvent> {
    let set = |at_s: f64, tag: u32, value: Value, what: &str| {
        ControlEvent::new(
            at_s,
            "bdev_ioband_set_settings",
            json!({"name": "band0", "group": format!("tag:{tag}"), "value": value}),
            what,
        )
    };
    let dev = |at_s: f64, policy: &str, what: &str| {
        let p = set_device("band0", json!({"policy": policy}));
        ControlEvent::new(at_s, "bdev_ioband_set_device", p["params"].clone(), what)
    };
    vec![
        set(
            t.raise_s,
            2,
            json!(format!("{}:0", 50 * MIB)),
            "churn: raise tag:2's min",
        ),
        set(
            t.retune_s,
            3,
            json!(format!("0:{}", 5 * MIB)),
            "churn: lower tag:3's max",
        ),
        dev(t.retune_s, "weight", "churn: weight change (policy weight)"),
        set(t.retune_s, 5, json!(400), "churn: tag:5's weight"),
        dev(
            t.retune_s,
            "range-bw",
            "churn: weight change (back to range-bw)",
        ),
    ]
}

/// Times at which something that affects the share changes.
fn changes(t: &Times) -> Vec<f64> {
    vec![0.0, t.arrive_s, t.raise_s, t.retune_s, t.leave_s, t.end_s]
}

/// Whether the 1 s window from `w_s` counts for a group active in `[start_s, end_s)`.
fn counted(changes: &[f64], start_s: f64, end_s: f64, w_s: f64) -> bool {
    const EPS: f64 = 1e-9;
    start_s <= w_s + EPS
        && w_s + 1.0 <= end_s + EPS
        && changes
            .iter()
            .all(|&c| c <= w_s - 1.0 + EPS || c >= w_s + 1.0 - EPS)
}

/// The evaluation over counted windows.
#[derive(Debug, Clone, Default, PartialEq)]
struct Eval {
    min_met_ratio: Option<f64>,
    max_exceeded_ratio: Option<f64>,
    counted_min: usize,
    counted_max: usize,
    /// (group, window, misses as JSON).
    misses: Vec<Value>,
    /// Per group, the counted windows' starts.
    counted_windows: Vec<Vec<usize>>,
}

/// Evaluates `kib[g][w]` (KiB/s of group `g` in the 1 s window `w`).
fn evaluate(groups: &[Group], changes: &[f64], kib: &[Vec<f64>]) -> Eval {
    let mut e = Eval::default();
    for (g, series) in groups.iter().zip(kib) {
        let mut windows = Vec::new();
        for (w, &achieved) in series.iter().enumerate() {
            let w_s = w as f64;
            if !counted(changes, g.start_s, g.end_s, w_s) {
                continue;
            }
            windows.push(w);
            let s = g.setting_at(w_s);
            if s.min_kib_per_sec > 0 {
                let r = achieved / f64::from(s.min_kib_per_sec);
                e.counted_min += 1;
                e.min_met_ratio = Some(e.min_met_ratio.map_or(r, |a| a.min(r)));
                if r < MIN_MET_MIN {
                    e.misses.push(
                        json!({"group": format!("tag:{}", g.tag), "window_start_s": w_s,
                        "kind": "min", "min_kib_per_sec": s.min_kib_per_sec,
                        "achieved_kib_per_sec": achieved, "ratio": r}),
                    );
                }
            }
            if s.max_kib_per_sec > 0 {
                let max = f64::from(s.max_kib_per_sec);
                let x = (achieved - max).max(0.0) / max;
                e.counted_max += 1;
                e.max_exceeded_ratio = Some(e.max_exceeded_ratio.map_or(x, |a| a.max(x)));
                if x > MAX_EXCEEDED_MAX {
                    e.misses.push(
                        json!({"group": format!("tag:{}", g.tag), "window_start_s": w_s,
                        "kind": "max", "max_kib_per_sec": s.max_kib_per_sec,
                        "achieved_kib_per_sec": achieved, "ratio": x}),
                    );
                }
            }
        }
        e.counted_windows.push(windows);
    }
    e
}

/// The device's KiB/s per second: the groups' sum.
fn totals_of(kib: &[Vec<f64>]) -> Vec<f64> {
    let seconds = kib.iter().map(Vec::len).max().unwrap_or(0);
    (0..seconds)
        .map(|w| kib.iter().map(|k| k.get(w).copied().unwrap_or(0.0)).sum())
        .collect()
}

/// KiB/s figures for the report: whole numbers, comma-separated.
fn fmt_kib(v: &[f64]) -> String {
    v.iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// KiB/s of `tag` in each whole second from the start, from a table of 100 ms windows.
fn per_second(t: &ShareTable, tag: u32, seconds: usize) -> Vec<f64> {
    let per = super::super::sat_usize((1.0 / FINE_WINDOW_S).round()).max(1);
    let label = format!("tag:{tag}");
    let fine = t
        .groups
        .iter()
        .find(|g| g.group == label)
        .map(|g| g.window_kib_per_sec.clone())
        .unwrap_or_default();
    (0..seconds)
        .map(|s| {
            (0..per)
                .map(|i| fine.get(s * per + i).copied().unwrap_or(0.0))
                .sum::<f64>()
                / per as f64
        })
        .collect()
}

fn fmt_setting(s: &Setting) -> String {
    format!(
        "{}:{} KiB/s, w {}",
        s.min_kib_per_sec, s.max_kib_per_sec, s.weight
    )
}

/// One run with the groups' jobs spread over `reactors` reactors (round robin by tag);
/// the report, each group's KiB/s per second, and the evaluation.
fn run_once(
    opts: &BenchOptions,
    t: &Times,
    groups: &[Group],
    reactors: u32,
) -> Result<(RunReport, Vec<Vec<f64>>, Eval), String> {
    let mut entries = vec![
        model_qd("Model0", 0, DEVICE_MIB_PER_SEC, 20, 128),
        ioband("band0", "Model0", "range-bw"),
    ];
    for g in groups {
        let s = g.setting_at(0.0);
        entries.push(super::setting(
            "band0",
            &format!("tag:{}", g.tag),
            json!(format!("{}:{}", s.min_kib_per_sec, s.max_kib_per_sec)),
        ));
    }
    let jobs = groups
        .iter()
        .map(|g| {
            let mut j = job(
                &format!("g{}", g.tag),
                "band0",
                g.queue_depth,
                IO_SIZE,
                Some(GroupKey::Tag(g.tag)),
                g.tag % reactors,
            );
            j.start_delay_s = g.start_s;
            j.runtime_s = Some(g.end_s - g.start_s);
            j
        })
        .collect();
    let r = go_with_events(
        opts,
        &format!("churn {reactors} reactor(s)"),
        (0..reactors).collect(),
        &config(entries),
        jobs,
        t.end_s,
        FINE_WINDOW_S,
        events(t),
    )?;
    let table = r.shares.first().ok_or("churn: no share table")?;
    let seconds = super::super::sat_usize(t.end_s.floor());
    let kib: Vec<Vec<f64>> = groups
        .iter()
        .map(|g| per_second(table, g.tag, seconds))
        .collect();
    let e = evaluate(groups, &changes(t), &kib);
    Ok((r, kib, e))
}

/// Runs the scenario.
pub(super) fn churn(opts: &BenchOptions, d: &Durations, out: &mut Out) -> Result<(), String> {
    let t = d.churn;
    let groups = groups(&t);
    let (r, kib, e) = run_once(opts, &t, &groups, 1)?;
    let two = if machine_cpus() >= 2 {
        let (_, kib2, e2) = run_once(opts, &t, &groups, 2)?;
        Some((e2, kib2))
    } else {
        None
    };
    let table = r.shares.first().ok_or("churn: no share table")?;
    let changes = changes(&t);
    let totals = totals_of(&kib);

    let mut md = format!(
        "## 8. Churn: range-bw groups arriving, leaving and changing (model: {DEVICE_MIB_PER_SEC} MiB/s, \
         20 µs, QD 128; 64 KiB randread; default knobs; {} s)\n\n\
         Changes at {} s. A (group, 1 s window) counts if the group ran the whole window and the \
         window starts ≥ 1 s after the last change, with none inside it.\n\n\
         | group | role | QD | active (s) | settings (from s: min:max, weight) | counted windows | KiB/s per second |\n\
         |---|---|---:|---|---|---|---|\n",
        t.end_s,
        changes
            .iter()
            .map(|c| format!("{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut gjson = Vec::new();
    for ((g, k), windows) in groups.iter().zip(&kib).zip(&e.counted_windows) {
        let settings: Vec<String> = g
            .settings
            .iter()
            .map(|s| format!("{}: {}", s.from_s, fmt_setting(s)))
            .collect();
        let _ = writeln!(
            md,
            "| tag:{} | {} | {} | {}–{} | {} | {:?} | {} |",
            g.tag,
            g.role,
            g.queue_depth,
            g.start_s,
            g.end_s,
            settings.join("; "),
            windows,
            k.iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        gjson.push(json!({
            "group": format!("tag:{}", g.tag), "role": g.role, "queue_depth": g.queue_depth,
            "start_s": g.start_s, "end_s": g.end_s,
            "settings": g.settings.iter().map(|s| json!({"from_s": s.from_s,
                "min_kib_per_sec": s.min_kib_per_sec, "max_kib_per_sec": s.max_kib_per_sec,
                "weight": s.weight})).collect::<Vec<_>>(),
            "kib_per_sec_1s": k,
            "counted_windows": windows,
        }));
    }
    let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.2}%", v * 100.0));
    let _ = writeln!(
        md,
        "\n`churn.range_min_met_ratio` = **{}** over {} counted windows with a min (target ≥ 98%); \
         `churn.range_max_exceeded_ratio` = **{}** over {} with a max (target ≤ 1%); {} misses. \
         Device total per second: {} KiB/s (of {}).\n",
        pct(e.min_met_ratio),
        e.counted_min,
        pct(e.max_exceeded_ratio),
        e.counted_max,
        e.misses.len(),
        fmt_kib(&totals),
        DEVICE_MIB_PER_SEC * 1024
    );
    for m in e.misses.iter().take(20) {
        let w = m["window_start_s"].as_f64().unwrap_or(0.0);
        let (kind, bound) = if m["kind"] == "min" {
            ("min", &m["min_kib_per_sec"])
        } else {
            ("max", &m["max_kib_per_sec"])
        };
        let _ = writeln!(
            md,
            "- miss: {} in [{w}, {}) s: {:.0} KiB/s against its {kind} {bound}",
            m["group"].as_str().unwrap_or_default(),
            w + 1.0,
            m["achieved_kib_per_sec"].as_f64().unwrap_or(0.0),
        );
    }
    match &two {
        Some((e2, kib2)) => {
            let _ = writeln!(
                md,
                "\nThe same with the groups' jobs spread over two reactors (by tag, round robin; \
                 the share spans both): `churn.two_reactors_range_min_met_ratio` = **{}** over {} \
                 windows, `churn.two_reactors_range_max_exceeded_ratio` = **{}** over {}; {} misses. \
                 Device total per second: {} KiB/s.",
                pct(e2.min_met_ratio),
                e2.counted_min,
                pct(e2.max_exceeded_ratio),
                e2.counted_max,
                e2.misses.len(),
                fmt_kib(&totals_of(kib2))
            );
        }
        None => {
            let _ = writeln!(md, "\nTwo reactors: not measured (one CPU).");
        }
    }
    let _ = writeln!(md, "\n![churn](churn.svg)\n");
    out.svgs
        .push(("churn.svg".into(), plot(table, &groups, &t)));
    out.md.push_str(&md);
    out.json.insert(
        "churn".into(),
        json!({
            "device": {"iops": 0, "bandwidth_mib_per_sec": DEVICE_MIB_PER_SEC, "latency_us": 20,
                "queue_depth": 128},
            "workload": "64 KiB randread, range-bw, default knobs",
            "window_s": 1.0,
            "duration_s": t.end_s,
            "changes_s": changes,
            "schedule": events(&t).iter().map(|e| json!({"at_s": e.at_s, "method": e.method,
                "params": e.params, "what": e.origin})).collect::<Vec<_>>(),
            "events_ran": r.events,
            "range_min_met_ratio": e.min_met_ratio,
            "range_max_exceeded_ratio": e.max_exceeded_ratio,
            "two_reactors_range_min_met_ratio": two.as_ref().and_then(|(e, _)| e.min_met_ratio),
            "two_reactors_range_max_exceeded_ratio": two.as_ref().and_then(|(e, _)| e.max_exceeded_ratio),
            "two_reactors_misses": two.as_ref().map(|(e, _)| e.misses.clone()),
            "two_reactors_total_kib_per_sec_1s": two.as_ref().map(|(_, k)| totals_of(k)),
            "two_reactors_kib_per_sec_1s": two.as_ref().map(|(_, k)| {
                groups.iter().zip(k).map(|(g, k)| json!({"group": format!("tag:{}", g.tag), "kib_per_sec_1s": k}))
                    .collect::<Vec<_>>()
            }),
            "windows_counted_min": e.counted_min,
            "windows_counted_max": e.counted_max,
            "misses": e.misses,
            "groups": gjson,
            "total_kib_per_sec_1s": totals,
            "knobs": {"io_throttle": table.io_throttle, "io_limit": table.io_limit},
        }),
    );
    Ok(())
}

/// KiB/s per group over time (100 ms windows), with the groups' min or max as dashed steps.
fn plot(table: &ShareTable, groups: &[Group], t: &Times) -> String {
    let n = super::super::sat_usize((t.end_s / FINE_WINDOW_S + 1e-9).floor());
    let mut series: Vec<Series> = groups
        .iter()
        .map(|g| {
            let label = format!("tag:{}", g.tag);
            let fine = table
                .groups
                .iter()
                .find(|s| s.group == label)
                .map(|s| s.window_kib_per_sec.clone())
                .unwrap_or_default();
            Series {
                name: format!("{label} {}", g.role),
                points: fine
                    .iter()
                    .take(n)
                    .enumerate()
                    .map(|(w, &v)| ((w as f64 + 0.5) * FINE_WINDOW_S, v))
                    .collect(),
                dashed: false,
            }
        })
        .collect();
    // Dashed series take the colour of the solid one of the same rank: the limits of
    // tag:1..tag:4, in that order, are drawn in their groups' colours.
    for g in groups.iter().take(4) {
        let value = |s: &Setting| {
            if s.min_kib_per_sec > 0 {
                s.min_kib_per_sec
            } else {
                s.max_kib_per_sec
            }
        };
        let mut points = Vec::new();
        for (i, s) in g.settings.iter().enumerate() {
            let from = s.from_s.max(g.start_s);
            let to = g
                .settings
                .get(i + 1)
                .map_or(g.end_s, |n| n.from_s.max(g.start_s));
            if to > from {
                points.push((from, f64::from(value(s))));
                points.push((to, f64::from(value(s))));
            }
        }
        let what = if g.settings[0].min_kib_per_sec > 0 {
            "min"
        } else {
            "max"
        };
        series.push(Series {
            name: format!("tag:{} {what}", g.tag),
            points,
            dashed: true,
        });
    }
    line_chart(
        "churn: KiB/s per group over time (100 ms windows; dashed: min or max)",
        "seconds",
        "KiB/s",
        &series,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_only_away_from_changes() {
        let c = [0.0, 3.0, 5.0];
        // Alone from 0: [1,2) and [2,3) count; [0,1) is within 1 s of the start.
        assert!(!counted(&c, 0.0, 8.0, 0.0));
        assert!(counted(&c, 0.0, 8.0, 1.0) && counted(&c, 0.0, 8.0, 2.0));
        // [3,4) starts at a change; [4,5) has the change at 5 at its end: counts.
        assert!(!counted(&c, 0.0, 8.0, 3.0));
        assert!(counted(&c, 0.0, 8.0, 4.0));
        // [5,6) starts at a change, [6,7) counts, [7,8) too; not for a group that ended at 7.5.
        assert!(!counted(&c, 0.0, 8.0, 5.0));
        assert!(counted(&c, 0.0, 8.0, 6.0));
        assert!(!counted(&c, 0.0, 7.5, 7.0));
        // A group arriving at 3 does not count before.
        assert!(!counted(&c, 3.0, 8.0, 2.0));
    }

    #[test]
    fn evaluation_uses_the_setting_in_force() {
        let t = Times::QUICK;
        let groups = groups(&t);
        let changes = changes(&t);
        // Everyone gets 40 MiB/s every second.
        let kib: Vec<Vec<f64>> = groups.iter().map(|_| vec![40.0 * 1024.0; 8]).collect();
        let e = evaluate(&groups, &changes, &kib);
        // tag:1 (min 50 MiB/s): 40/50 = 0.8 is the least; tag:2 at min 1 MiB/s meets it
        // before the raise.
        assert!((e.min_met_ratio.expect("min") - 0.8).abs() < 1e-12);
        // tag:3's max: 15 MiB/s in [4,5) (40/15 - 1), 5 MiB/s in [7,8) (40/5 - 1 = 7).
        assert!((e.max_exceeded_ratio.expect("max") - 7.0).abs() < 1e-12);
        // Counted: tag:1 in 1, 2, 4, 7; the arrivals in 4 and 7; tag:4 (left at 6) in 4.
        assert_eq!(e.counted_windows[0], vec![1, 2, 4, 7]);
        assert_eq!(e.counted_windows[1], vec![4, 7]);
        assert_eq!(e.counted_windows[3], vec![4]);
        let misses_min = e.misses.iter().filter(|m| m["kind"] == "min").count();
        // tag:1 four times, tag:2 once (after the raise), tag:4 never (40 > 20).
        assert_eq!(misses_min, 5);
        assert_eq!(groups[1].setting_at(7.0).min_kib_per_sec, 50 * MIB);
        assert_eq!(groups[1].setting_at(4.0).min_kib_per_sec, MIB);
    }

    #[test]
    fn schedule_is_well_formed() {
        for t in [Times::QUICK, Times::FULL] {
            assert!(t.arrive_s >= 3.0 && t.raise_s - t.arrive_s >= 2.0);
            assert!(t.retune_s >= t.raise_s && t.leave_s > t.retune_s && t.end_s > t.leave_s);
            let ev = events(&t);
            assert!(ev.iter().all(|e| e.at_s > 0.0 && e.at_s < t.end_s));
            assert!(groups(&t).iter().all(|g| g.queue_depth >= 8));
        }
    }
}
