//! Per-bdev I/O counters, one cache-padded block per reactor: each reactor writes only its
//! own block (relaxed atomics, no shared line written per I/O); readers sum them.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use serde::Serialize;

use super::IoType;

/// Most reactors a host runs (cores of a 64-bit mask).
pub const MAX_CORES: usize = 64;

#[derive(Debug, Default)]
struct CoreStats {
    read_ops: AtomicU64,
    read_bytes: AtomicU64,
    write_ops: AtomicU64,
    write_bytes: AtomicU64,
    other_ops: AtomicU64,
    failed_ops: AtomicU64,
}

/// Counters of one bdev.
#[derive(Debug)]
pub struct IoStats {
    cores: Box<[CachePadded<CoreStats>]>,
}

impl Default for IoStats {
    fn default() -> Self {
        IoStats {
            cores: (0..MAX_CORES)
                .map(|_| CachePadded::new(CoreStats::default()))
                .collect(),
        }
    }
}

/// A summed snapshot, as `bdev_get_iostat` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IoStatsSnapshot {
    /// Reads completed.
    pub num_read_ops: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Writes completed.
    pub num_write_ops: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Other I/Os (flush) completed.
    pub num_other_ops: u64,
    /// I/Os completed with an error or aborted.
    pub num_failed_ops: u64,
}

impl IoStats {
    /// Counts one completed I/O on reactor `core`. Only that reactor's thread calls this
    /// with that `core`, so each counter has a single writer: a relaxed load and store
    /// (plain moves) instead of a locked read-modify-write; readers still see whole values.
    #[inline]
    pub fn record(&self, core: u32, io_type: IoType, bytes: u64, ok: bool) {
        #[inline]
        fn add(counter: &AtomicU64, v: u64) {
            counter.store(
                counter.load(Ordering::Relaxed).wrapping_add(v),
                Ordering::Relaxed,
            );
        }
        let Some(c) = self.cores.get(core as usize) else {
            return;
        };
        if !ok {
            add(&c.failed_ops, 1);
            return;
        }
        match io_type {
            IoType::Read => {
                add(&c.read_ops, 1);
                add(&c.read_bytes, bytes);
            }
            IoType::Write => {
                add(&c.write_ops, 1);
                add(&c.write_bytes, bytes);
            }
            IoType::Flush => add(&c.other_ops, 1),
        }
    }

    /// The sum over every reactor.
    pub fn snapshot(&self) -> IoStatsSnapshot {
        let mut s = IoStatsSnapshot::default();
        for c in self.cores.iter() {
            s.num_read_ops += c.read_ops.load(Ordering::Relaxed);
            s.bytes_read += c.read_bytes.load(Ordering::Relaxed);
            s.num_write_ops += c.write_ops.load(Ordering::Relaxed);
            s.bytes_written += c.write_bytes.load(Ordering::Relaxed);
            s.num_other_ops += c.other_ops.load(Ordering::Relaxed);
            s.num_failed_ops += c.failed_ops.load(Ordering::Relaxed);
        }
        s
    }
}
