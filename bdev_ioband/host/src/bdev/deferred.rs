//! A channel helper that completes I/O at the reactor's next pass: the work is done at
//! submit (null, malloc), the callback runs later from a poller, never inside `submit`.
//!
//! Owned by the reactor that created it; its poller holds only a weak reference and goes
//! away with the channel.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use super::{BdevError, BdevIo, IoCallback, IoStats, IoStatus};
use crate::reactor::{self, PollerStatus};

/// Completions waiting for the next pass.
pub(crate) struct Deferred {
    core: u32,
    queue: RefCell<VecDeque<(Box<BdevIo>, IoCallback)>>,
    scratch: RefCell<VecDeque<(Box<BdevIo>, IoCallback)>>,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

/// Initial room for queued completions.
const INITIAL_DEPTH: usize = 256;

impl Deferred {
    /// A queue on the current reactor whose poller counts completions into `stats`.
    pub(crate) fn new<S: Send + Sync + 'static>(
        owner: Arc<S>,
        stats: fn(&S) -> &IoStats,
        block_size: u32,
    ) -> Result<Rc<Deferred>, BdevError> {
        let core = reactor::current_core()?;
        let d = Rc::new(Deferred {
            core,
            queue: RefCell::new(VecDeque::with_capacity(INITIAL_DEPTH)),
            scratch: RefCell::new(VecDeque::with_capacity(INITIAL_DEPTH)),
        });
        let weak: Weak<Deferred> = Rc::downgrade(&d);
        reactor::register_poller("bdev_deferred", 0, move |_now| {
            let Some(d) = weak.upgrade() else {
                return PollerStatus::Done;
            };
            d.drain(stats(&owner), block_size)
        })?;
        Ok(d)
    }

    /// Queues a completion.
    pub(crate) fn push(&self, mut io: Box<BdevIo>, status: IoStatus, done: &IoCallback) {
        io.status = status;
        self.queue.borrow_mut().push_back((io, done.clone()));
    }

    fn drain(&self, stats: &IoStats, block_size: u32) -> PollerStatus {
        let mut batch = self.scratch.borrow_mut();
        std::mem::swap(&mut *batch, &mut *self.queue.borrow_mut());
        if batch.is_empty() {
            return PollerStatus::Idle;
        }
        while let Some((io, done)) = batch.pop_front() {
            stats.record(
                self.core,
                io.io_type,
                io.len_bytes(block_size),
                io.status == IoStatus::Success,
            );
            done(io);
        }
        PollerStatus::Busy
    }
}
