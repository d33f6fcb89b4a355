//! Forwarding a caller's I/O to a base as a child descriptor: the caller's descriptor is
//! parked in a slot with its callback while a child from a pool carries its data, and is
//! restored (data, group, status) when the child comes back. Shared by the passthru and
//! ioband vbdevs.
//!
//! Owned by one channel, on the reactor that made it; no allocation once the slot table and
//! the pool have grown to the channel's working depth.

use super::{BdevIo, IoCallback, IoPool, IoStatus};

/// Parked caller descriptors and the pool of children that stand in for them.
#[derive(Default)]
pub(crate) struct ChildTable {
    parents: Vec<Option<(Box<BdevIo>, IoCallback)>>,
    free: Vec<u32>,
    pool: IoPool,
}

impl ChildTable {
    /// A table with room for `slots` I/Os in flight and `pool` children before it grows.
    pub(crate) fn with_capacity(slots: usize, pool: usize) -> ChildTable {
        ChildTable {
            parents: Vec::with_capacity(slots),
            free: Vec::with_capacity(slots),
            pool: IoPool::with_capacity(pool),
        }
    }

    /// Moves the caller's request (type, range, buffer, group) into a child and parks the
    /// caller's descriptor with `done`. Returns the child and the slot that names the parent.
    pub(crate) fn lend(
        &mut self,
        mut parent: Box<BdevIo>,
        done: &IoCallback,
    ) -> (Box<BdevIo>, u32) {
        let mut child = self.pool.get();
        child.io_type = parent.io_type;
        child.offset_blocks = parent.offset_blocks;
        child.num_blocks = parent.num_blocks;
        child.buf = std::mem::take(&mut parent.buf);
        child.group = parent.group.take();
        let entry = Some((parent, done.clone()));
        let slot = match self.free.pop() {
            Some(i) => {
                self.parents[i as usize] = entry;
                i
            }
            None => {
                self.parents.push(entry);
                u32::try_from(self.parents.len() - 1).unwrap_or(u32::MAX)
            }
        };
        (child, slot)
    }

    /// Takes the parent of `slot` back, with the child's buffer and group, and recycles the
    /// child. `None` if the slot holds nothing (the child was not one of ours).
    fn take_back(&mut self, slot: u32, child: &mut BdevIo) -> Option<(Box<BdevIo>, IoCallback)> {
        let (mut parent, done) = self.parents.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        parent.buf = std::mem::take(&mut child.buf);
        parent.group = child.group.take();
        Some((parent, done))
    }

    /// The child of `slot` completed: the parent, carrying the child's status (a child
    /// that never got one counts as failed), and the caller's callback.
    pub(crate) fn complete(
        &mut self,
        slot: u32,
        mut child: Box<BdevIo>,
    ) -> Option<(Box<BdevIo>, IoCallback)> {
        let back = self.take_back(slot, &mut child);
        let status = child.status;
        self.pool.put(child);
        back.map(|(mut parent, done)| {
            parent.status = match status {
                IoStatus::Pending => IoStatus::Failed,
                status => status,
            };
            (parent, done)
        })
    }

    /// The child of `slot` was refused before it ran: the parent as the caller gave it.
    pub(crate) fn refuse(&mut self, slot: u32, mut child: Box<BdevIo>) -> Option<Box<BdevIo>> {
        let back = self.take_back(slot, &mut child);
        self.pool.put(child);
        back.map(|(parent, _)| parent)
    }
}
