//! The benchmark's targets: which `report.json` key each one reads, its bound, and whether
//! the run met it. `report.json` gets `summary` (one entry per target: key, value, target,
//! met) and `targets_met` (the same flags by name); a target whose scenario did not run is
//! `null`, never a pass.
//!
//! Pure: reads the scenarios' JSON, runs on the bench thread.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

/// How a value is compared with its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    AtLeast,
    AtMost,
}

/// One target: a flag name, the dotted key it reads, the comparison and its bound.
struct Target {
    flag: &'static str,
    key: &'static str,
    bound: Bound,
    limit: f64,
}

const TARGETS: &[Target] = &[
    Target {
        flag: "overhead_ratio_ge_0_90",
        key: "overhead.ioband_vs_passthru_iops_ratio",
        bound: Bound::AtLeast,
        limit: 0.90,
    },
    Target {
        flag: "overhead_default_knobs_ratio_ge_0_90",
        key: "overhead.ioband_default_knobs_vs_passthru_iops_ratio",
        bound: Bound::AtLeast,
        limit: 0.90,
    },
    Target {
        flag: "share_error_64_groups_le_2pct",
        key: "fairness.groups_64_max_share_error",
        bound: Bound::AtMost,
        limit: 0.02,
    },
    Target {
        flag: "share_error_64_groups_100ms_le_5pct",
        key: "fairness.max_share_error_100ms",
        bound: Bound::AtMost,
        limit: 0.05,
    },
    Target {
        flag: "range_bw_min_met_ge_0_98",
        key: "range_bw.min_met_ratio",
        bound: Bound::AtLeast,
        limit: 0.98,
    },
    Target {
        flag: "range_bw_max_exceeded_le_1pct",
        key: "range_bw.max_exceeded_ratio",
        bound: Bound::AtMost,
        limit: 0.01,
    },
    Target {
        flag: "closed_loop_slowdown_le_2",
        key: "closed_loop.low_depth_slowdown",
        bound: Bound::AtMost,
        limit: 2.0,
    },
    Target {
        flag: "closed_loop_utilization_ge_0_90",
        key: "closed_loop.device_utilization",
        bound: Bound::AtLeast,
        limit: 0.90,
    },
    Target {
        flag: "victim_p99_ratio_le_2",
        key: "victim.p99_ratio",
        bound: Bound::AtMost,
        limit: 2.0,
    },
    Target {
        flag: "churn_min_met_ge_0_98",
        key: "churn.range_min_met_ratio",
        bound: Bound::AtLeast,
        limit: 0.98,
    },
    Target {
        flag: "churn_max_exceeded_le_1pct",
        key: "churn.range_max_exceeded_ratio",
        bound: Bound::AtMost,
        limit: 0.01,
    },
    Target {
        flag: "churn_two_reactors_min_met_ge_0_98",
        key: "churn.two_reactors_range_min_met_ratio",
        bound: Bound::AtLeast,
        limit: 0.98,
    },
    Target {
        flag: "churn_two_reactors_max_exceeded_le_1pct",
        key: "churn.two_reactors_range_max_exceeded_ratio",
        bound: Bound::AtMost,
        limit: 0.01,
    },
    Target {
        flag: "scaling_ioband_vs_passthru_1_reactor_ge_0_90",
        key: "scaling.ioband_vs_passthru_1_reactor",
        bound: Bound::AtLeast,
        limit: 0.90,
    },
    Target {
        flag: "scaling_ioband_vs_passthru_2_reactors_ge_0_90",
        key: "scaling.ioband_vs_passthru_2_reactors",
        bound: Bound::AtLeast,
        limit: 0.90,
    },
    Target {
        flag: "scaling_ioband_2_vs_1_reactor_ge_1_8",
        key: "scaling.ioband_2_vs_1_reactor_ratio",
        bound: Bound::AtLeast,
        limit: 1.8,
    },
    Target {
        flag: "share_error_two_reactors_le_2pct",
        key: "fairness.two_reactors_max_share_error",
        bound: Bound::AtMost,
        limit: 0.02,
    },
    Target {
        flag: "closed_loop_two_reactors_slowdown_le_2",
        key: "closed_loop.two_reactors_low_depth_slowdown",
        bound: Bound::AtMost,
        limit: 2.0,
    },
    Target {
        flag: "closed_loop_two_reactors_utilization_ge_0_90",
        key: "closed_loop.two_reactors_device_utilization",
        bound: Bound::AtLeast,
        limit: 0.90,
    },
    Target {
        flag: "slow_io_others_ratio_ge_0_95",
        key: "slow_io.others_ratio",
        bound: Bound::AtLeast,
        limit: 0.95,
    },
    Target {
        flag: "slow_io_two_reactors_others_ratio_ge_0_95",
        key: "slow_io.two_reactors_others_ratio",
        bound: Bound::AtLeast,
        limit: 0.95,
    },
    Target {
        flag: "victim_two_reactors_p99_ratio_le_2",
        key: "victim.two_reactors_p99_ratio",
        bound: Bound::AtMost,
        limit: 2.0,
    },
    Target {
        flag: "onset_share_error_le_2pct",
        key: "onset.max_share_error",
        bound: Bound::AtMost,
        limit: 0.02,
    },
    Target {
        flag: "onset_two_reactors_share_error_le_2pct",
        key: "onset.two_reactors_max_share_error",
        bound: Bound::AtMost,
        limit: 0.02,
    },
];

/// The number at a dotted key (`closed_loop.low_depth_slowdown`).
fn lookup(json: &Map<String, Value>, key: &str) -> Option<f64> {
    let mut parts = key.split('.');
    let mut v = json.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    v.as_f64()
}

/// `(summary, targets_met)` of the scenarios' JSON.
pub(super) fn summarize(json: &Map<String, Value>) -> (Value, Value) {
    let mut summary = Vec::new();
    let mut flags = Map::new();
    for t in TARGETS {
        let value = lookup(json, t.key);
        let met = value.map(|v| match t.bound {
            Bound::AtLeast => v >= t.limit,
            Bound::AtMost => v <= t.limit,
        });
        let target = match t.bound {
            Bound::AtLeast => format!(">= {}", t.limit),
            Bound::AtMost => format!("<= {}", t.limit),
        };
        summary.push(
            json!({"key": t.key, "value": value, "target": target, "met": met, "flag": t.flag}),
        );
        flags.insert(t.flag.to_owned(), json!(met));
    }
    (Value::Array(summary), Value::Object(flags))
}

/// The summary as a markdown table.
pub(super) fn render_md(summary: &Value) -> String {
    let mut md = String::from("## Targets\n\n| key | value | target | met |\n|---|---:|---|---|\n");
    for e in summary.as_array().into_iter().flatten() {
        let value = e["value"]
            .as_f64()
            .map_or_else(|| "not measured".to_owned(), |v| format!("{v:.4}"));
        let met = match e["met"].as_bool() {
            Some(true) => "**yes**",
            Some(false) => "**no**",
            None => "-",
        };
        let _ = writeln!(
            md,
            "| `{}` | {value} | {} | {met} |",
            e["key"].as_str().unwrap_or_default(),
            e["target"].as_str().unwrap_or_default()
        );
    }
    md.push('\n');
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_the_values() {
        let json = json!({
            "closed_loop": {"low_depth_slowdown": 2.5, "device_utilization": 0.95},
            "slow_io": {"others_ratio": 0.95},
        });
        let (summary, flags) = summarize(json.as_object().expect("object"));
        assert_eq!(flags["closed_loop_slowdown_le_2"], json!(false));
        assert_eq!(flags["closed_loop_utilization_ge_0_90"], json!(true));
        assert_eq!(flags["slow_io_others_ratio_ge_0_95"], json!(true));
        assert_eq!(flags["victim_p99_ratio_le_2"], Value::Null, "not measured");
        let entries = summary.as_array().expect("list");
        assert_eq!(entries.len(), TARGETS.len());
        let e = entries
            .iter()
            .find(|e| e["key"] == "closed_loop.low_depth_slowdown")
            .expect("entry");
        assert_eq!(
            (e["value"].as_f64(), e["target"].as_str()),
            (Some(2.5), Some("<= 2"))
        );
        let md = render_md(&summary);
        assert!(md.contains("| `closed_loop.low_depth_slowdown` | 2.5000 | <= 2 | **no** |"));
        assert!(md.contains("| `victim.p99_ratio` | not measured | <= 2 | - |"));
    }
}
