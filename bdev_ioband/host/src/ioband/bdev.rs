//! The ioband bdev object, shared by every reactor: its identity, geometry (the base's)
//! and where its owner listens.
//!
//! Immutable after creation but for the `removed` flag and the per-core counters.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bdev_ioband_engine::adapter::{BaseIdx, DevHandle};

use super::channel::IobandChannel;
use crate::bdev::{Bdev, BdevError, BdevRef, IoChannel, IoStats};
use crate::reactor::EndpointId;

/// What every reactor knows about one ioband device.
#[derive(Debug)]
pub(crate) struct DeviceShared {
    pub(crate) name: String,
    pub(crate) uuid: String,
    pub(crate) base: BdevRef,
    /// The base's block size, kept here so the I/O path makes no virtual call for it.
    pub(crate) block_size: u32,
    pub(crate) share: String,
    /// Creation order (module-wide).
    pub(crate) seq: u64,
    /// Its handle in the owner's adapter, which the replicas mirror.
    pub(crate) handle: DevHandle,
    /// Its base's number for the adapter's parking queues.
    pub(crate) base_idx: BaseIdx,
    pub(crate) owner_core: u32,
    pub(crate) submit_endpoint: EndpointId,
    /// Which module owns it (see [`owner_module`](super::module::owner_module)).
    pub(crate) module_key: u64,
    pub(crate) removed: AtomicBool,
    pub(crate) stats: IoStats,
}

impl DeviceShared {
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }
}

/// An ioband bdev.
#[derive(Debug, Clone)]
pub struct IobandBdev {
    pub(crate) shared: Arc<DeviceShared>,
}

impl IobandBdev {
    /// The base bdev's name.
    pub fn base_name(&self) -> &str {
        self.shared.base.name()
    }

    /// The share's name.
    pub fn share_name(&self) -> &str {
        &self.shared.share
    }
}

impl Bdev for IobandBdev {
    fn name(&self) -> &str {
        &self.shared.name
    }
    fn product_name(&self) -> &'static str {
        "ioband"
    }
    fn block_size(&self) -> u32 {
        self.shared.base.block_size()
    }
    fn num_blocks(&self) -> u64 {
        self.shared.base.num_blocks()
    }
    fn uuid(&self) -> &str {
        &self.shared.uuid
    }
    fn stats(&self) -> &IoStats {
        &self.shared.stats
    }
    fn queue_depth(&self) -> u32 {
        self.shared.base.queue_depth()
    }
    fn get_io_channel(&self) -> Result<Rc<dyn IoChannel>, BdevError> {
        Ok(Rc::new(IobandChannel::new(self.shared.clone())?))
    }
    fn driver_specific(&self) -> serde_json::Value {
        serde_json::json!({"ioband": {
            "base_bdev_name": self.shared.base.name(), "share": self.shared.share,
        }})
    }
    fn config_entry(&self) -> Option<serde_json::Value> {
        // The ioband module writes its own entries (create, then the group settings).
        None
    }
}
