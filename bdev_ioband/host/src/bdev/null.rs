//! The `null` bdev: completes every I/O successfully at the reactor's next pass; reads
//! leave the buffer as it was.
//!
//! The bdev object is shared by all reactors; each channel (and its completion queue) lives
//! on the reactor that made it.

use std::rc::Rc;
use std::sync::Arc;

use serde_json::json;

use super::deferred::Deferred;
use super::{
    check_geometry, Bdev, BdevError, BdevIo, IoCallback, IoChannel, IoStats, IoStatus, SubmitError,
};

#[derive(Debug)]
struct Inner {
    name: String,
    uuid: String,
    block_size: u32,
    num_blocks: u64,
    stats: IoStats,
}

/// A null bdev.
#[derive(Debug)]
pub struct NullBdev {
    inner: Arc<Inner>,
}

impl NullBdev {
    /// Makes one (not yet registered).
    pub fn new(
        name: &str,
        block_size: u32,
        num_blocks: u64,
        uuid: Option<String>,
    ) -> Result<NullBdev, BdevError> {
        check_geometry(block_size, num_blocks)?;
        Ok(NullBdev {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                uuid: uuid.unwrap_or_else(|| super::make_uuid(name)),
                block_size,
                num_blocks,
                stats: IoStats::default(),
            }),
        })
    }
}

struct NullChannel {
    inner: Arc<Inner>,
    deferred: Rc<Deferred>,
}

impl IoChannel for NullChannel {
    fn submit(&self, io: Box<BdevIo>, done: &IoCallback) -> Result<(), SubmitError> {
        let status = if io.fits(self.inner.block_size, self.inner.num_blocks) {
            IoStatus::Success
        } else {
            IoStatus::Failed
        };
        self.deferred.push(io, status, done);
        Ok(())
    }
}

impl Bdev for NullBdev {
    fn name(&self) -> &str {
        &self.inner.name
    }
    fn product_name(&self) -> &'static str {
        "Null disk"
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
        Ok(Rc::new(NullChannel {
            inner: self.inner.clone(),
            deferred,
        }))
    }
    fn config_entry(&self) -> Option<serde_json::Value> {
        let i = &self.inner;
        Some(json!({"method": "bdev_null_create", "params": {
            "name": i.name, "num_blocks": i.num_blocks, "block_size": i.block_size, "uuid": i.uuid,
        }}))
    }
}
