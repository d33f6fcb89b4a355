//! A share spread over cores: the multi-core simulation (one replica per core, a hub
//! exchanging with them every period, reports and grants each delayed by a period) keeps
//! weights across cores within 2% per 1 s window, and the lag of every core's view stays
//! within the bound the share module documents.

// Test arithmetic on small, bounded values.
#![allow(clippy::cast_precision_loss)]

use bdev_ioband_engine::sim::{self, Arrival, ModelDevice, SpanConfig, SpanReport};
use bdev_ioband_engine::{GroupValue, ShareParams};

mod common;

use common::tenant;

/// The exchange period and one-way delay: one poller period of the hosts (1 ms).
const PERIOD: u64 = 1000;

fn nvme() -> ModelDevice {
    ModelDevice {
        iops: 200_000,
        bytes_per_sec: 1 << 40,
        latency_ticks: 80,
    }
}

/// Runs `weights` (one saturating tenant each, tenant i on core i mod `cores`) for `secs`.
fn run(cores: usize, weights: &[u32], depth: u32, secs: u64) -> SpanReport {
    let span = SpanConfig {
        cores,
        tenant_cores: Vec::new(),
        spread: Vec::new(),
        period_ticks: PERIOD,
        delay_ticks: PERIOD,
    };
    run_on(&span, weights, depth, secs)
}

/// Runs `weights` (one saturating tenant each) for `secs`, placed on cores as `span` says.
fn run_on(span: &SpanConfig, weights: &[u32], depth: u32, secs: u64) -> SpanReport {
    let tenants = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            tenant(
                i,
                GroupValue::Weight(w),
                4096,
                Arrival::Saturating { queue_depth: depth },
            )
        })
        .collect();
    let config = common::config(ShareParams::default(), nvme(), tenants, secs, 1);
    sim::run_span(&config, span).unwrap()
}

/// Largest relative share error over the 1 s windows after the first.
fn max_error(r: &SpanReport, weights: &[u32]) -> f64 {
    let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    let mut worst: f64 = 0.0;
    for w in 1..r.sim.windows.len() {
        let got = r.sim.cost_shares(w);
        for (t, &wt) in weights.iter().enumerate() {
            let want = f64::from(wt) / total;
            worst = worst.max((got[t] - want).abs() / want);
        }
    }
    worst
}

fn check(r: &SpanReport) {
    assert_eq!(r.sim.dispatched_twice, 0);
    assert_eq!(r.sim.never_dispatched, 0);
    assert_eq!(r.sim.submitted, r.sim.completed);
    assert!(
        r.max_lag_cost <= r.lag_bound_cost,
        "lag {} above its bound {}",
        r.max_lag_cost,
        r.lag_bound_cost
    );
    assert!(r.rounds > 0);
}

fn utilization(r: &SpanReport) -> f64 {
    let ios: u64 = r.sim.windows[1..]
        .iter()
        .flat_map(|w| w.iter().map(|s| s.ios))
        .sum();
    ios as f64 / ((r.sim.windows.len() - 1) as f64 * nvme().iops as f64)
}

#[test]
fn two_cores_eight_groups_weights_one_to_a_hundred() {
    let weights = [1, 3, 7, 15, 30, 50, 75, 100];
    let r = run(2, &weights, 32, 4);
    check(&r);
    let err = max_error(&r, &weights);
    eprintln!(
        "2 cores: error {err:.4}, lag {} of {}, utilization {:.3}",
        r.max_lag_cost,
        r.lag_bound_cost,
        utilization(&r)
    );
    assert!(err <= 0.02, "share error {err:.4}");
    assert!(
        utilization(&r) >= 0.90,
        "utilization {:.3}",
        utilization(&r)
    );
}

fn many(cores: usize) {
    let weights: Vec<u32> = (0..64u32).map(|i| 10 + (i * 37) % 91).collect();
    let r = run(cores, &weights, 8, 4);
    check(&r);
    let err = max_error(&r, &weights);
    eprintln!(
        "{cores} cores: error {err:.4}, lag {} of {}, utilization {:.3}",
        r.max_lag_cost,
        r.lag_bound_cost,
        utilization(&r)
    );
    assert!(err <= 0.02, "{cores} cores: share error {err:.4}");
    assert!(
        utilization(&r) >= 0.90,
        "utilization {:.3}",
        utilization(&r)
    );
}

#[test]
fn sixteen_cores_sixty_four_groups() {
    many(16);
}

#[test]
fn sixty_four_cores_sixty_four_groups() {
    many(64);
}

#[test]
fn a_group_served_on_both_cores_gets_its_weight_beside_groups_on_one() {
    // Group 0 (weight 300) submits on both cores in turn, as jobs on two cores sharing
    // one bdev; groups 1 and 2 (weight 100 each) on core 0 and core 1.
    let weights = [300, 100, 100];
    let span = SpanConfig {
        cores: 2,
        tenant_cores: vec![0, 0, 1],
        spread: vec![0],
        period_ticks: PERIOD,
        delay_ticks: PERIOD,
    };
    let r = run_on(&span, &weights, 32, 4);
    check(&r);
    let err = max_error(&r, &weights);
    assert!(err <= 0.02, "share error {err:.4}");
    assert!(
        utilization(&r) >= 0.90,
        "utilization {:.3}",
        utilization(&r)
    );
}
