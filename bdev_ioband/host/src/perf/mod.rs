//! `ioband_perf`: a load generator in the manner of SPDK's bdevperf, running in-process on
//! the embedded host's reactors. Each job keeps `queue_depth` I/Os outstanding on one bdev
//! from one reactor, tagged with one group, so a single run acts as many tenants; the
//! report is bdevperf's table (plus p50/p99/p99.9), and for ioband targets a table of
//! configured against achieved shares.
//!
//! Split by concern: [`opts`] (sizes, masks, workloads, the job description), [`jobs`]
//! (the INI jobs file), [`events`] (the control schedule: timed JSON-RPC calls), [`job`]
//! (the I/O loop on a reactor), [`hist`] (latency histogram), [`run`] (host start-up, job
//! placement, control events, collection), [`report`] (figures, share math,
//! text and JSON), [`svg`] (plots for the benchmark report) and [`bench`] (the standard
//! scenarios behind `scripts/bench`).

pub mod bench;
pub mod events;
pub mod hist;
pub mod job;
pub mod jobs;
pub mod opts;
pub mod report;
pub mod run;
pub mod svg;

/// Seconds, shares and rates are `f64`; counts, ticks and indices derived from them are
/// integers. Rust's `as` from `f64` saturates at the target's bounds and maps NaN to 0,
/// which is the wanted behaviour for every such conversion here, so it is allowed once in
/// these helpers.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub(crate) fn sat_u64(v: f64) -> u64 {
    v as u64
}

/// [`sat_u64`] into a `usize`.
pub(crate) fn sat_usize(v: f64) -> usize {
    to_usize(sat_u64(v))
}

/// A `u64` count as an index (saturating on 32-bit targets).
pub(crate) fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}
