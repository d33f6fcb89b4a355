//! The `malloc` bdev: memory-backed, real data.
//!
//! The memory is shared by every reactor as 64-bit atomic words (relaxed), so concurrent
//! I/O from several cores is defined behaviour without a lock; as on any disk, overlapping
//! concurrent writes give no ordering guarantee. The copy happens at submit, the
//! completion at the submitting reactor's next pass.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::json;

use super::deferred::Deferred;
use super::{
    check_geometry, Bdev, BdevError, BdevIo, IoCallback, IoChannel, IoStats, IoStatus, IoType,
    SubmitError,
};

/// Largest malloc bdev (bytes), to keep a typo from taking the machine's memory.
pub const MAX_MALLOC_BYTES: u64 = 16 << 30;

#[derive(Debug)]
struct Inner {
    name: String,
    uuid: String,
    block_size: u32,
    num_blocks: u64,
    words: Box<[AtomicU64]>,
    stats: IoStats,
}

/// A malloc bdev.
#[derive(Debug)]
pub struct MallocBdev {
    inner: Arc<Inner>,
}

impl MallocBdev {
    /// Makes one, zero-filled (not yet registered).
    pub fn new(
        name: &str,
        block_size: u32,
        num_blocks: u64,
        uuid: Option<String>,
    ) -> Result<MallocBdev, BdevError> {
        check_geometry(block_size, num_blocks)?;
        let bytes = num_blocks
            .checked_mul(u64::from(block_size))
            .filter(|b| *b <= MAX_MALLOC_BYTES);
        let Some(bytes) = bytes else {
            return Err(BdevError::Invalid {
                param: "num_blocks",
                reason: format!("the device would exceed {MAX_MALLOC_BYTES} bytes"),
            });
        };
        let words = usize::try_from(bytes / 8).map_err(|_| BdevError::Invalid {
            param: "num_blocks",
            reason: "too large for this machine".into(),
        })?;
        Ok(MallocBdev {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                uuid: uuid.unwrap_or_else(|| super::make_uuid(name)),
                block_size,
                num_blocks,
                words: (0..words).map(|_| AtomicU64::new(0)).collect(),
                stats: IoStats::default(),
            }),
        })
    }
}

impl Inner {
    fn copy(&self, io: &mut BdevIo) {
        let Ok(first) = usize::try_from(io.offset_blocks * u64::from(self.block_size) / 8) else {
            return;
        };
        match io.io_type {
            IoType::Read => {
                for (chunk, word) in io.buf.chunks_exact_mut(8).zip(&self.words[first..]) {
                    chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
                }
            }
            IoType::Write => {
                for (chunk, word) in io.buf.chunks_exact(8).zip(&self.words[first..]) {
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(chunk);
                    word.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
                }
            }
            IoType::Flush => {}
        }
    }
}

struct MallocChannel {
    inner: Arc<Inner>,
    deferred: Rc<Deferred>,
}

impl IoChannel for MallocChannel {
    fn submit(&self, mut io: Box<BdevIo>, done: &IoCallback) -> Result<(), SubmitError> {
        let status = if io.fits(self.inner.block_size, self.inner.num_blocks) {
            self.inner.copy(&mut io);
            IoStatus::Success
        } else {
            IoStatus::Failed
        };
        self.deferred.push(io, status, done);
        Ok(())
    }
}

impl Bdev for MallocBdev {
    fn name(&self) -> &str {
        &self.inner.name
    }
    fn product_name(&self) -> &'static str {
        "Malloc disk"
    }
    fn block_size(&self) -> u32 {
        self.inner.block_size
    }
    fn num_blocks(&self) -> u64 {
        self.inner.num_blocks
    }
    fn uuid(&self) -> &str {
        &self.inner.uuid
    }
    fn stats(&self) -> &IoStats {
        &self.inner.stats
    }
    fn get_io_channel(&self) -> Result<Rc<dyn IoChannel>, BdevError> {
        let deferred = Deferred::new(
            self.inner.clone(),
            |i: &Inner| &i.stats,
            self.inner.block_size,
        )?;
        Ok(Rc::new(MallocChannel {
            inner: self.inner.clone(),
            deferred,
        }))
    }
    fn config_entry(&self) -> Option<serde_json::Value> {
        let i = &self.inner;
        Some(json!({"method": "bdev_malloc_create", "params": {
            "name": i.name, "num_blocks": i.num_blocks, "block_size": i.block_size, "uuid": i.uuid,
        }}))
    }
}
