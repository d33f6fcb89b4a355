//! What the property tests share: microsecond ticks, a tenant and a simulation with the
//! usual defaults, and the exactly-once check every run ends with.

// Each test binary uses its own subset of these.
#![allow(dead_code)]

use bdev_ioband_engine::sim::{Arrival, ModelDevice, SimConfig, SimReport, Tenant};
use bdev_ioband_engine::{GroupKey, GroupValue, Op, ShareParams};
use proptest::prelude::*;

/// Microsecond ticks.
pub const TPS: u64 = 1_000_000;
/// One second in ticks.
pub const SEC: u64 = TPS;

/// Tenant `i` (group `tag:i+1`), reading from ioband device 0, submitting as soon as a
/// completion comes back.
pub fn tenant(i: usize, value: GroupValue, io_bytes: u64, arrival: Arrival) -> Tenant {
    Tenant {
        key: GroupKey::Tag(u32::try_from(i + 1).unwrap_or(u32::MAX)),
        value,
        device: 0,
        op: Op::Read,
        io_bytes,
        arrival,
        think_ticks: 0,
        slow_ticks: 0,
    }
}

/// A run of `secs` seconds in 1 s windows over `ioband_devices` devices of one share.
pub fn config(
    params: ShareParams,
    device: ModelDevice,
    tenants: Vec<Tenant>,
    secs: u64,
    ioband_devices: usize,
) -> SimConfig {
    SimConfig {
        params,
        ticks_per_sec: TPS,
        device,
        ioband_devices,
        tenants,
        duration_ticks: secs * SEC,
        window_ticks: SEC,
        actions: Vec::new(),
    }
}

/// Every I/O was dispatched once and completed.
pub fn assert_exactly_once(r: &SimReport) -> Result<(), TestCaseError> {
    prop_assert_eq!(r.dispatched_twice, 0);
    prop_assert_eq!(r.never_dispatched, 0);
    prop_assert_eq!(&r.submitted, &r.completed);
    Ok(())
}
