//! The clock rule: at most one clock read per poll pass of a thread, never several per
//! I/O. The Rust layer reads no clock at all: it asks the shim for the pass tick
//! (`ioband_shim_pass_ticks`, which returns SPDK's per-thread pass tick) once per call
//! from the shim and passes it down; the C shim's only clock reads are inside that
//! function, at most one per pass.

use serde_json::json;

use super::{create, group_stat};
use crate::ffi::{IO_READ, STATUS_BASE, STATUS_FAILED};
use crate::mock::{Harness, NOMEM};

#[test]
fn one_pass_tick_per_submit_per_completion_per_poller_pass() {
    let h = Harness::new();
    for i in 0..3 {
        let (name, base) = (format!("io{i}"), format!("Null{i}"));
        h.add_base(&base);
        create(
            &h,
            &name,
            &base,
            json!({"share": format!("s{i}"), "io_limit": 1, "io_throttle": 1}),
        );
    }
    // A batch of submissions in one pass: one pass-tick read each, the same tick for all.
    h.set_ticks(1_000);
    let mark = h.mark();
    let first = h.submit("io0", IO_READ, 4096, 1);
    assert_eq!(h.pass_tick_reads_since(mark), 1);
    let rest: Vec<_> = (0..7).map(|_| h.submit("io0", IO_READ, 4096, 1)).collect();
    assert_eq!(h.pass_tick_reads_since(mark), 8);
    // A completion in a later pass: one read, and it releases the next I/O at that tick.
    h.set_ticks(5_000);
    let mark = h.mark();
    h.base_done(first);
    assert_eq!(h.pass_tick_reads_since(mark), 1);
    let stat = group_stat(&h, "io0", "none");
    assert_eq!(stat["throttled_ios"], 1);
    assert_eq!(
        stat["throttled_ticks"], 4_000,
        "the engine runs on pass ticks"
    );
    // One poller pass over three shares: one read.
    let mark = h.mark();
    h.poll();
    assert_eq!(h.pass_tick_reads_since(mark), 1);
    for io in rest {
        let mark = h.mark();
        h.base_done(io);
        assert_eq!(h.pass_tick_reads_since(mark), 1);
    }
    assert_eq!(h.all_completed_once(), [STATUS_BASE; 8]);
}

#[test]
fn a_batch_of_failed_dispatches_reads_the_pass_tick_once() {
    let h = Harness::new();
    h.add_base("Null0");
    create(&h, "io0", "Null0", json!({}));
    h.mock(|m| m.dispatch_rc.extend([NOMEM, -5, -5, -5]));
    for _ in 0..4 {
        h.submit("io0", IO_READ, 4096, 1);
    }
    let mark = h.mark();
    h.free_bdev_io(); // three refused, one at the base
    assert_eq!(h.pass_tick_reads_since(mark), 1);
    h.base_done_all();
    assert_eq!(
        h.all_completed_once(),
        [STATUS_FAILED, STATUS_FAILED, STATUS_FAILED, STATUS_BASE]
    );
}

/// The C source without its comments.
pub(super) fn strip_c_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        rest = rest[i..].find("*/").map_or("", |j| &rest[i + j + 2..]);
    }
    out.push_str(rest);
    out
}

#[test]
fn the_c_shim_reads_the_clock_only_in_ioband_shim_pass_ticks() {
    let src = strip_c_comments(include_str!("../shim/ioband_shim.c"));
    let start = src
        .find("ioband_shim_pass_ticks(void)\n{")
        .expect("ioband_shim_pass_ticks defined");
    let end = start + src[start..].find("\n}\n").expect("its body ends");
    let reads: Vec<usize> = src
        .match_indices("spdk_get_ticks()")
        .map(|(i, _)| i)
        .collect();
    assert!(!reads.is_empty());
    for at in &reads {
        assert!(
            (start..end).contains(at),
            "a clock read outside ioband_shim_pass_ticks: {}",
            &src[src[..*at].rfind('\n').unwrap_or(0)..*at + 20]
        );
    }
    // Inside it: one read off SPDK threads, one per pass in interrupt mode; the pass tick
    // in poll mode is SPDK's own reading.
    let body = &src[start..end];
    assert_eq!(reads.len(), 2, "{body}");
    assert!(body.contains("spdk_thread_get_last_tsc(thread)"), "{body}");
    // Nothing else in the shim or the Rust layer reads a clock.
    for (name, rs) in [
        ("io.rs", include_str!("../io.rs")),
        ("rpc.rs", include_str!("../rpc.rs")),
        ("state.rs", include_str!("../state.rs")),
        ("entry.rs", include_str!("../entry.rs")),
        ("shim.rs", include_str!("../shim.rs")),
    ] {
        for clock in ["Instant::now", "SystemTime::now", "rdtsc", "clock_gettime"] {
            assert!(!rs.contains(clock), "{name} reads a clock ({clock})");
        }
    }
}
