//! The I/O descriptor, its completion callback and a per-channel descriptor pool.
//!
//! A descriptor is owned by whoever holds the `Box` (submitter, then each layer in turn,
//! then the submitter again in its callback); it is `Send` so that a vbdev can carry it to
//! another reactor. Descriptors are recycled through [`IoPool`]s, so the steady-state I/O
//! path allocates nothing.

use std::rc::Rc;

use bdev_ioband_engine::adapter::IoTag;
use bdev_ioband_engine::{GroupKey, Op};

use crate::reactor::EndpointId;

/// The kind of an I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoType {
    /// Read `num_blocks` into `buf`.
    #[default]
    Read,
    /// Write `buf` to `num_blocks`.
    Write,
    /// Flush the device's cache.
    Flush,
}

impl IoType {
    /// The engine's view of the direction.
    pub fn op(self) -> Op {
        match self {
            IoType::Read => Op::Read,
            IoType::Write => Op::Write,
            IoType::Flush => Op::Other,
        }
    }
}

/// Outcome of an I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoStatus {
    /// Not completed yet.
    #[default]
    Pending,
    /// Done.
    Success,
    /// The device failed it (or it was out of range).
    Failed,
    /// Dropped unexecuted because its device went away.
    Aborted,
}

/// Called with the descriptor when the I/O completes, on the submitting reactor.
pub type IoCallback = Rc<dyn Fn(Box<BdevIo>)>;

/// The ioband vbdev's private context in a descriptor it created (SPDK's `driver_ctx`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BandCtx {
    /// Reactor of the submitting channel.
    pub(crate) reply_core: u32,
    /// Endpoint of the submitting channel there.
    pub(crate) reply_endpoint: Option<EndpointId>,
    /// Slot of the parent I/O (or of its callback) in that channel.
    pub(crate) slot: u32,
    /// The descriptor is the caller's own (an owner-local channel hands it to the engine
    /// as it is), not a child from the channel's pool.
    pub(crate) parent: bool,
    /// For such a descriptor, its channel's index in the owner's table of local channels,
    /// if it has one (the completion then skips the endpoint table).
    pub(crate) local: Option<u32>,
    /// Which ioband device, and (while the engine counts the I/O in flight) the share
    /// incarnation that dispatched it with its ticket: the engine adapter's tag.
    pub(crate) tag: IoTag,
}

/// One I/O.
#[derive(Debug, Default)]
pub struct BdevIo {
    /// What to do.
    pub io_type: IoType,
    /// First block.
    pub offset_blocks: u64,
    /// Blocks.
    pub num_blocks: u64,
    /// Data: exactly `num_blocks × block_size` bytes for reads and writes.
    pub buf: Vec<u8>,
    /// The group that issued it; `None` goes to the default group of an ioband bdev.
    pub group: Option<GroupKey>,
    /// Set by the device before the callback.
    pub status: IoStatus,
    /// The group of the descriptor's previous use, kept by [`BdevIo::reset`] so that
    /// [`BdevIo::set_group`] can reuse it (an `initiator:` key owns a string).
    pub(crate) spare_group: Option<GroupKey>,
    /// The submitter's own cookie; no layer touches it.
    pub user_ctx: u64,
    pub(crate) band: BandCtx,
}

impl BdevIo {
    /// Bytes the I/O moves.
    pub fn len_bytes(&self, block_size: u32) -> u64 {
        match self.io_type {
            IoType::Read | IoType::Write => self.num_blocks.saturating_mul(u64::from(block_size)),
            IoType::Flush => 0,
        }
    }

    /// Whether the I/O fits a device of this geometry and its buffer has the right length.
    pub fn fits(&self, block_size: u32, num_blocks: u64) -> bool {
        let in_range = self
            .offset_blocks
            .checked_add(self.num_blocks)
            .is_some_and(|end| end <= num_blocks);
        match self.io_type {
            IoType::Flush => in_range || self.num_blocks == 0,
            IoType::Read | IoType::Write => {
                in_range
                    && self.num_blocks > 0
                    && self.buf.len() as u64 == self.len_bytes(block_size)
            }
        }
    }

    /// Clears everything but the buffer's capacity (and the last group, kept aside for
    /// [`BdevIo::set_group`]), for reuse.
    pub fn reset(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let spare_group = self.group.take().or_else(|| self.spare_group.take());
        *self = BdevIo {
            buf,
            spare_group,
            ..BdevIo::default()
        };
    }

    /// Tags the I/O with `group`. A pooled descriptor that carried the same key before
    /// takes it back instead of cloning it, so a connection tagging every I/O with its
    /// initiator's name does not allocate per I/O.
    pub fn set_group(&mut self, group: &Option<GroupKey>) {
        let Some(key) = group else {
            self.group = None;
            return;
        };
        let mut slot = self.group.take().or_else(|| self.spare_group.take());
        match &mut slot {
            Some(old) if old == key => {}
            _ => slot = Some(key.clone()),
        }
        self.group = slot;
    }
}

/// A free list of descriptors, grown only when the outstanding count passes its previous
/// high-water mark.
#[derive(Debug, Default)]
pub struct IoPool {
    // Boxes on purpose: descriptors are handed out as `Box`es without reallocating.
    #[allow(clippy::vec_box)]
    free: Vec<Box<BdevIo>>,
}

impl IoPool {
    /// A pool with `n` descriptors ready.
    pub fn with_capacity(n: usize) -> IoPool {
        IoPool {
            free: (0..n).map(|_| Box::default()).collect(),
        }
    }

    /// A clean descriptor.
    pub fn get(&mut self) -> Box<BdevIo> {
        self.free.pop().unwrap_or_default()
    }

    /// Returns a descriptor.
    pub fn put(&mut self, mut io: Box<BdevIo>) {
        io.reset();
        self.free.push(io);
    }

    /// Descriptors ready.
    pub fn available(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_ptr(io: &BdevIo) -> *const u8 {
        match &io.group {
            Some(GroupKey::Initiator(name)) => name.as_ptr(),
            other => panic!("not an initiator group: {other:?}"),
        }
    }

    #[test]
    fn a_pooled_descriptor_keeps_its_initiator_name_across_uses() {
        let key = Some(GroupKey::Initiator(
            "iqn.2026-01.com.example:tenant-a".into(),
        ));
        let mut pool = IoPool::with_capacity(1);
        let mut io = pool.get();
        io.set_group(&key);
        assert_eq!(io.group, key);
        let first = name_ptr(&io);
        pool.put(io);
        let mut io = pool.get();
        assert_eq!(io.group, None, "a reset descriptor carries no group");
        io.set_group(&key);
        assert_eq!(io.group, key);
        assert_eq!(name_ptr(&io), first, "the same allocation, not a clone");
        // Another key replaces it; no key clears it.
        let other = Some(GroupKey::Initiator(
            "iqn.2026-01.com.example:tenant-b".into(),
        ));
        io.set_group(&other);
        assert_eq!(io.group, other);
        io.set_group(&None);
        assert_eq!(io.group, None);
        io.set_group(&Some(GroupKey::Tag(3)));
        assert_eq!(io.group, Some(GroupKey::Tag(3)));
    }
}
