//! The `model` bdev: a device with finite IOPS, bandwidth, a fixed latency and an internal
//! queue depth, evaluated in ticks by a poller, so that contention exists on any machine.
//!
//! Service model: one server. Each I/O occupies it for `max(1/iops, bytes/bandwidth)`,
//! starting when it is free, and completes `latency` after its service ends. At most
//! `queue_depth` I/Os are inside the device (all channels together); past that, `submit`
//! answers [`SubmitError::NoMem`] and the caller parks the I/O. No data is stored.
//!
//! A FLUSH is served like any I/O unless the device has a flush latency (`flush_latency_us`
//! of `bdev_model_create`, [`ModelBdev::with_flush_latency`]): then it completes that long
//! after its submission without occupying the server (a cache flush that takes its time
//! while the media keeps serving), though it still holds one of the `queue_depth` places.
//!
//! Threading: the server's "free at" tick and the occupancy are shared atomics (they are the
//! device's own state, one device for every core); each channel keeps its I/Os in a heap on
//! its reactor and completes them from its poller.

use std::cell::{Cell, RefCell};
use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::json;

use super::{
    check_geometry, Bdev, BdevError, BdevIo, IoCallback, IoChannel, IoStats, IoStatus, IoType,
    SubmitError,
};
use crate::reactor::{self, PollerStatus};
use crate::ticks::TICKS_PER_SEC;

/// The device's performance envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelParams {
    /// Bytes per block.
    pub block_size: u32,
    /// Blocks.
    pub num_blocks: u64,
    /// I/Os per second (0 = no IOPS limit).
    pub iops: u64,
    /// Bytes per second (0 = no bandwidth limit).
    pub bandwidth_bytes_per_sec: u64,
    /// Added to every I/O after its service, in ticks.
    pub latency_ticks: u64,
    /// Most I/Os inside the device at once.
    pub queue_depth: u32,
}

#[derive(Debug)]
struct Inner {
    name: String,
    uuid: String,
    params: ModelParams,
    /// 0: a FLUSH is served like any I/O; else it completes this long after submission
    /// without booking the server.
    flush_latency_ticks: u64,
    free_at_ticks: AtomicU64,
    inside: AtomicU32,
    stats: IoStats,
}

/// A model bdev.
#[derive(Debug)]
pub struct ModelBdev {
    inner: Arc<Inner>,
}

impl ModelBdev {
    /// Makes one (not yet registered).
    pub fn new(
        name: &str,
        params: ModelParams,
        uuid: Option<String>,
    ) -> Result<ModelBdev, BdevError> {
        ModelBdev::with_flush_latency(name, params, 0, uuid)
    }

    /// Makes one whose FLUSHes complete `flush_latency_ticks` after submission without
    /// occupying the server (0: served like any I/O, as [`ModelBdev::new`]).
    pub fn with_flush_latency(
        name: &str,
        params: ModelParams,
        flush_latency_ticks: u64,
        uuid: Option<String>,
    ) -> Result<ModelBdev, BdevError> {
        check_geometry(params.block_size, params.num_blocks)?;
        if params.queue_depth == 0 {
            return Err(BdevError::Invalid {
                param: "queue_depth",
                reason: "it is 0".into(),
            });
        }
        Ok(ModelBdev {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                uuid: uuid.unwrap_or_else(|| super::make_uuid(name)),
                params,
                flush_latency_ticks,
                free_at_ticks: AtomicU64::new(0),
                inside: AtomicU32::new(0),
                stats: IoStats::default(),
            }),
        })
    }

    /// The envelope.
    pub fn params(&self) -> ModelParams {
        self.inner.params
    }

    /// Ticks a FLUSH takes when it does not occupy the server (0: it is served like any
    /// I/O).
    pub fn flush_latency_ticks(&self) -> u64 {
        self.inner.flush_latency_ticks
    }
}

impl Inner {
    fn service_ticks(&self, bytes: u64) -> u64 {
        let p = &self.params;
        let per_io = TICKS_PER_SEC.checked_div(p.iops).unwrap_or(0);
        let per_bytes = if p.bandwidth_bytes_per_sec == 0 {
            0
        } else {
            let t = u128::from(bytes) * u128::from(TICKS_PER_SEC)
                / u128::from(p.bandwidth_bytes_per_sec);
            u64::try_from(t).unwrap_or(u64::MAX)
        };
        per_io.max(per_bytes)
    }

    /// Books the server for `service` ticks from `now`; returns when the service ends.
    fn book(&self, now_ticks: u64, service_ticks: u64) -> u64 {
        let mut free_at = self.free_at_ticks.load(Ordering::Relaxed);
        loop {
            let end = free_at.max(now_ticks).saturating_add(service_ticks);
            match self.free_at_ticks.compare_exchange_weak(
                free_at,
                end,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return end,
                Err(seen) => free_at = seen,
            }
        }
    }
}

struct Entry {
    done_at_ticks: u64,
    seq: u64,
    io: Box<BdevIo>,
    done: IoCallback,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.done_at_ticks, self.seq) == (other.done_at_ticks, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (self.done_at_ticks, self.seq).cmp(&(other.done_at_ticks, other.seq))
    }
}

struct ModelChannel {
    inner: Arc<Inner>,
    core: u32,
    seq: Cell<u64>,
    heap: RefCell<BinaryHeap<Reverse<Entry>>>,
}

impl ModelChannel {
    fn poll(&self, now_ticks: u64) -> PollerStatus {
        let mut fired = false;
        loop {
            let entry = {
                let mut heap = self.heap.borrow_mut();
                match heap.peek() {
                    Some(Reverse(e)) if e.done_at_ticks <= now_ticks => heap.pop(),
                    _ => None,
                }
            };
            let Some(Reverse(Entry { mut io, done, .. })) = entry else {
                break;
            };
            fired = true;
            self.inner.inside.fetch_sub(1, Ordering::AcqRel);
            if io.status == IoStatus::Pending {
                io.status = IoStatus::Success;
            }
            let bytes = io.len_bytes(self.inner.params.block_size);
            self.inner
                .stats
                .record(self.core, io.io_type, bytes, io.status == IoStatus::Success);
            done(io);
        }
        if fired {
            PollerStatus::Busy
        } else {
            PollerStatus::Idle
        }
    }
}

impl IoChannel for ModelChannel {
    fn submit(&self, mut io: Box<BdevIo>, done: &IoCallback) -> Result<(), SubmitError> {
        let p = &self.inner.params;
        let inside = self.inner.inside.fetch_add(1, Ordering::AcqRel);
        if inside >= p.queue_depth {
            self.inner.inside.fetch_sub(1, Ordering::AcqRel);
            return Err(SubmitError::NoMem(io));
        }
        let now = reactor::now_ticks();
        let flush_ticks = self.inner.flush_latency_ticks;
        let done_at_ticks = if !io.fits(p.block_size, p.num_blocks) {
            io.status = IoStatus::Failed;
            now
        } else if io.io_type == IoType::Flush && flush_ticks > 0 {
            now.saturating_add(flush_ticks)
        } else {
            let service = self.inner.service_ticks(io.len_bytes(p.block_size));
            self.inner
                .book(now, service)
                .saturating_add(p.latency_ticks)
        };
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        self.heap.borrow_mut().push(Reverse(Entry {
            done_at_ticks,
            seq,
            io,
            done: done.clone(),
        }));
        Ok(())
    }
}

impl Bdev for ModelBdev {
    fn name(&self) -> &str {
        &self.inner.name
    }
    fn product_name(&self) -> &'static str {
        "Model disk"
    }
    fn block_size(&self) -> u32 {
        self.inner.params.block_size
    }
    fn num_blocks(&self) -> u64 {
        self.inner.params.num_blocks
    }
    fn uuid(&self) -> &str {
        &self.inner.uuid
    }
    fn stats(&self) -> &IoStats {
        &self.inner.stats
    }
    fn queue_depth(&self) -> u32 {
        self.inner.params.queue_depth
    }
    fn depth_is_shared(&self) -> bool {
        true
    }
    fn get_io_channel(&self) -> Result<Rc<dyn IoChannel>, BdevError> {
        let core = reactor::current_core()?;
        let ch = Rc::new(ModelChannel {
            inner: self.inner.clone(),
            core,
            seq: Cell::new(0),
            heap: RefCell::new(BinaryHeap::with_capacity(
                self.inner.params.queue_depth as usize,
            )),
        });
        let weak: Weak<ModelChannel> = Rc::downgrade(&ch);
        reactor::register_poller("bdev_model", 0, move |now| match weak.upgrade() {
            Some(ch) => ch.poll(now),
            None => PollerStatus::Done,
        })?;
        Ok(ch)
    }
    fn driver_specific(&self) -> serde_json::Value {
        let p = &self.inner.params;
        json!({"model": {
            "iops": p.iops, "bandwidth_bytes_per_sec": p.bandwidth_bytes_per_sec,
            "latency_us": p.latency_ticks / 1000, "queue_depth": p.queue_depth,
            "flush_latency_us": self.inner.flush_latency_ticks / 1000,
        }})
    }
    fn config_entry(&self) -> Option<serde_json::Value> {
        let p = &self.inner.params;
        let mut entry = json!({"method": "bdev_model_create", "params": {
            "name": self.inner.name, "uuid": self.inner.uuid,
            "block_size": p.block_size, "num_blocks": p.num_blocks, "iops": p.iops,
            "bandwidth_bytes_per_sec": p.bandwidth_bytes_per_sec,
            "latency_us": p.latency_ticks / 1000, "queue_depth": p.queue_depth,
        }});
        // Written only when set, so configs of devices without it read as before.
        if self.inner.flush_latency_ticks > 0 {
            entry["params"]["flush_latency_us"] = json!(self.inner.flush_latency_ticks / 1000);
        }
        Some(entry)
    }
}
