//! One reactor's channel to an ioband bdev: keeps the caller's descriptor and callback in
//! a slot, sends a descriptor of its own (from its pool) to the owner reactor, and
//! completes the caller's I/O when that descriptor comes back.
//!
//! Owned by the reactor that created it; the reply endpoint registered there is the only
//! way back in.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::DeviceShared;
use crate::bdev::io::BandCtx;
use crate::bdev::{BdevError, BdevIo, IoCallback, IoChannel, IoPool, IoStatus, SubmitError};
use crate::reactor::{self, EndpointId};

/// Descriptors a new channel starts with.
const INITIAL_POOL: usize = 256;

#[derive(Default)]
struct Slots {
    slots: Vec<Option<(Box<BdevIo>, IoCallback)>>,
    free: Vec<u32>,
    pool: IoPool,
}

impl Slots {
    fn insert(&mut self, io: Box<BdevIo>, done: IoCallback) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some((io, done));
                i
            }
            None => {
                self.slots.push(Some((io, done)));
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        }
    }
}

pub(crate) struct IobandChannel {
    shared: Arc<DeviceShared>,
    slots: Rc<RefCell<Slots>>,
    core: u32,
    endpoint: EndpointId,
    /// On the owner reactor: the owner's submit callback itself, called without the
    /// endpoint table (what `deliver_io` would do inline, minus the lookups).
    owner_submit: Option<IoCallback>,
}

impl IobandChannel {
    pub(crate) fn new(shared: Arc<DeviceShared>) -> Result<IobandChannel, BdevError> {
        let core = reactor::current_core()?;
        let slots = Rc::new(RefCell::new(Slots {
            slots: Vec::with_capacity(INITIAL_POOL),
            free: Vec::with_capacity(INITIAL_POOL),
            pool: IoPool::with_capacity(INITIAL_POOL),
        }));
        let (s, sh) = (slots.clone(), shared.clone());
        let endpoint =
            reactor::register_endpoint(Rc::new(move |child| reply(&s, &sh, core, child)))?;
        let owner_submit = if core == shared.owner_core {
            reactor::endpoint_callback(shared.submit_endpoint)?
        } else {
            None
        };
        Ok(IobandChannel {
            shared,
            slots,
            core,
            endpoint,
            owner_submit,
        })
    }
}

/// A descriptor came back from the owner: complete the caller's I/O.
fn reply(slots: &RefCell<Slots>, shared: &DeviceShared, core: u32, mut child: Box<BdevIo>) {
    let (mut parent, done) = {
        let mut s = slots.borrow_mut();
        let slot = child.band.slot;
        let Some((parent, done)) = s.slots.get_mut(slot as usize).and_then(Option::take) else {
            // Not ours (cannot happen: slots are only freed here).
            s.pool.put(child);
            return;
        };
        s.free.push(slot);
        let mut parent = parent;
        parent.buf = std::mem::take(&mut child.buf);
        parent.group = child.group.take();
        parent.status = match child.status {
            IoStatus::Pending => IoStatus::Failed,
            status => status,
        };
        s.pool.put(child);
        (parent, done)
    };
    let bytes = parent.len_bytes(shared.block_size);
    shared.stats.record(
        core,
        parent.io_type,
        bytes,
        parent.status == IoStatus::Success,
    );
    parent.band = BandCtx::default();
    done(parent);
}

impl IoChannel for IobandChannel {
    fn submit(&self, mut parent: Box<BdevIo>, done: &IoCallback) -> Result<(), SubmitError> {
        let child = {
            let mut s = self.slots.borrow_mut();
            let mut child = s.pool.get();
            child.io_type = parent.io_type;
            child.offset_blocks = parent.offset_blocks;
            child.num_blocks = parent.num_blocks;
            child.buf = std::mem::take(&mut parent.buf);
            child.group = parent.group.take();
            let slot = s.insert(parent, done.clone());
            child.band = BandCtx {
                reply_core: self.core,
                reply_endpoint: Some(self.endpoint),
                slot,
                device_id: self.shared.device_id,
                ticket: None,
            };
            child
        };
        let sent = if self.shared.is_removed() {
            let mut child = child;
            child.status = IoStatus::Aborted;
            reactor::send_io(self.core, self.endpoint, child)
        } else if let Some(owner_submit) = &self.owner_submit {
            owner_submit(child);
            Ok(())
        } else {
            reactor::deliver_io(self.shared.owner_core, self.shared.submit_endpoint, child)
        };
        // Only a stopped host fails to deliver; its I/O dies with it.
        let _ = sent;
        Ok(())
    }
}

impl Drop for IobandChannel {
    fn drop(&mut self) {
        // Off its reactor (at teardown) there is nothing left to unregister from.
        if reactor::current_core() == Ok(self.core) {
            let _ = reactor::unregister_endpoint(self.endpoint);
        }
    }
}
