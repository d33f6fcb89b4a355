//! The `passthru` vbdev: forwards every I/O to its base bdev and back, with no policy. It
//! is the baseline that the ioband vbdev's own cost is measured against (`ioband_perf`,
//! `scripts/bench`), as SPDK's `module/bdev/passthru` is the template of a vbdev.
//!
//! Per I/O it does what any stacked vbdev must: keep the caller's descriptor and callback
//! in a per-channel slot, send a descriptor of its own (from a per-channel pool, so nothing
//! is allocated in steady state) to the base, and complete the caller's I/O when that one
//! comes back. The slot index travels in the child's `user_ctx`, which belongs to the
//! submitter of the child: the passthru.
//!
//! Threading: the bdev object is shared by every reactor; each channel (slots, pool, the
//! base channel) lives on the reactor that made it. The base completes on that reactor
//! from one of its pollers, so the caller's callback never runs inside `submit`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use serde_json::json;

use super::forward::ChildTable;
use super::{
    make_uuid, Bdev, BdevError, BdevIo, BdevRef, IoCallback, IoChannel, IoStats, IoStatus,
    SubmitError,
};
use crate::app::App;
use crate::reactor;

/// The product name `bdev_get_bdevs` shows.
pub const PRODUCT_NAME: &str = "passthru";

/// Descriptors a new channel starts with.
const INITIAL_POOL: usize = 256;

#[derive(Debug)]
struct Inner {
    name: String,
    uuid: String,
    base: BdevRef,
    stats: IoStats,
}

/// A passthru bdev over a base bdev.
#[derive(Debug)]
pub struct PassthruBdev {
    inner: Arc<Inner>,
}

impl PassthruBdev {
    /// Makes one over `base` (not yet registered).
    pub fn new(name: &str, base: BdevRef) -> PassthruBdev {
        PassthruBdev {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                uuid: make_uuid(name),
                base,
                stats: IoStats::default(),
            }),
        }
    }

    /// The base bdev's name.
    pub fn base_name(&self) -> &str {
        self.inner.base.name()
    }
}

/// Creates passthru bdev `name` over `base` and registers it, claiming the base.
pub fn create(app: &App, name: &str, base: &str) -> Result<BdevRef, BdevError> {
    bdev_ioband_engine::validate_name(name).map_err(|e| BdevError::Invalid {
        param: "name",
        reason: e.to_string(),
    })?;
    if app.bdev(name).is_ok() {
        return Err(BdevError::Exists(name.to_owned()));
    }
    let base = app.bdev(base)?;
    let bdev: BdevRef = Arc::new(PassthruBdev::new(name, base.clone()));
    // Through the app, as every base: an ioband device waiting for this name gets its bdev.
    app.register(bdev.clone())?;
    app.bdevs.borrow_mut().claim(base.name(), name);
    Ok(bdev)
}

/// Deletes passthru bdev `name` (and the ioband bdevs stacked on it), releasing its base.
pub fn delete(app: &App, name: &str) -> Result<(), crate::ioband::IobandError> {
    let bdev = app.bdev(name)?;
    if bdev.product_name() != PRODUCT_NAME {
        return Err(BdevError::NotFound(name.to_owned()).into());
    }
    let base = bdev
        .driver_specific()
        .pointer("/passthru/base_bdev_name")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .unwrap_or_default();
    app.delete_base(name, Some(PRODUCT_NAME))?;
    app.bdevs.borrow_mut().release(&base, name);
    Ok(())
}

struct PassthruChannel {
    base_ch: Rc<dyn IoChannel>,
    slots: Rc<RefCell<ChildTable>>,
    done: IoCallback,
}

/// The base finished the child: restore the caller's descriptor and complete it.
fn child_done(slots: &RefCell<ChildTable>, inner: &Inner, core: u32, child: Box<BdevIo>) {
    let slot = u32::try_from(child.user_ctx).unwrap_or(u32::MAX);
    let Some((parent, done)) = slots.borrow_mut().complete(slot, child) else {
        return;
    };
    let bytes = parent.len_bytes(inner.base.block_size());
    inner.stats.record(
        core,
        parent.io_type,
        bytes,
        parent.status == IoStatus::Success,
    );
    done(parent);
}

impl IoChannel for PassthruChannel {
    fn submit(&self, parent: Box<BdevIo>, done: &IoCallback) -> Result<(), SubmitError> {
        let (mut child, slot) = self.slots.borrow_mut().lend(parent, done);
        child.user_ctx = u64::from(slot);
        match self.base_ch.submit(child, &self.done) {
            Ok(()) => Ok(()),
            Err(SubmitError::NoMem(child)) => {
                // Give the caller its descriptor back, as it was.
                match self.slots.borrow_mut().refuse(slot, child) {
                    Some(parent) => Err(SubmitError::NoMem(parent)),
                    // Cannot happen: the slot was filled just above.
                    None => Ok(()),
                }
            }
        }
    }
}

impl Bdev for PassthruBdev {
    fn name(&self) -> &str {
        &self.inner.name
    }
    fn product_name(&self) -> &'static str {
        PRODUCT_NAME
    }
    fn block_size(&self) -> u32 {
        self.inner.base.block_size()
    }
    fn num_blocks(&self) -> u64 {
        self.inner.base.num_blocks()
    }
    fn uuid(&self) -> &str {
        &self.inner.uuid
    }
    fn stats(&self) -> &IoStats {
        &self.inner.stats
    }
    fn queue_depth(&self) -> u32 {
        self.inner.base.queue_depth()
    }
    fn depth_is_shared(&self) -> bool {
        self.inner.base.depth_is_shared()
    }
    fn get_io_channel(&self) -> Result<Rc<dyn IoChannel>, BdevError> {
        let core = reactor::current_core()?;
        let base_ch = self.inner.base.get_io_channel()?;
        let slots = Rc::new(RefCell::new(ChildTable::with_capacity(
            INITIAL_POOL,
            INITIAL_POOL,
        )));
        let (s, inner) = (Rc::downgrade(&slots), self.inner.clone());
        let done: IoCallback = Rc::new(move |child| match s.upgrade() {
            Some(slots) => child_done(&slots, &inner, core, child),
            // The channel is gone with I/O outstanding: the caller broke the contract.
            None => drop(child),
        });
        Ok(Rc::new(PassthruChannel {
            base_ch,
            slots,
            done,
        }))
    }
    fn driver_specific(&self) -> serde_json::Value {
        json!({"passthru": {"name": self.inner.name, "base_bdev_name": self.inner.base.name()}})
    }
    fn config_entry(&self) -> Option<serde_json::Value> {
        Some(json!({"method": "bdev_passthru_create", "params": {
            "base_bdev_name": self.inner.base.name(), "name": self.inner.name,
        }}))
    }
}
