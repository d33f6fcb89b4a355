//! One reactor's channel to an ioband bdev.
//!
//! On the owner reactor the caller's descriptor itself goes to the engine and on to the
//! base: the channel only stamps it with its band context (where to reply, which device,
//! its index in the module's table of local channels) and remembers the caller's
//! callback: once for the first caller of the channel (a closed-loop submitter passes the
//! same callback every time; the channel keeps that one until it is dropped, so it should
//! not own the channel, as no callback should), or per I/O in a slot for any other. The
//! module is called directly, and completes such an I/O directly too. A descriptor whose
//! band context is already in use (an ioband stacked on an ioband) goes the other way.
//!
//! On any other reactor (and for such stacked descriptors) the channel keeps the caller's
//! descriptor and callback in a slot, sends a descriptor of its own (from its pool) to the
//! owner reactor, and completes the caller's I/O when that descriptor comes back.
//!
//! Owned by the reactor that created it; the reply endpoint registered there is the only
//! way back in.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use bdev_ioband_engine::adapter::IoTag;

use super::module::{owner_module, submit_on_owner, IobandModule};
use super::DeviceShared;
use crate::bdev::forward::ChildTable;
use crate::bdev::io::BandCtx;
use crate::bdev::{BdevError, BdevIo, IoCallback, IoChannel, IoStatus, SubmitError};
use crate::reactor::{self, EndpointId};

/// Descriptors a new channel starts with.
const INITIAL_POOL: usize = 256;
/// The slot of an owner-local I/O whose callback is the channel's first caller's.
const FIRST_CALLER: u32 = u32::MAX;

#[derive(Default)]
struct Slots {
    /// Parents of the child descriptors in flight, and the children's pool.
    children: ChildTable,
    /// Callbacks of owner-local I/O of callers other than the first.
    callbacks: Vec<Option<IoCallback>>,
    free_callbacks: Vec<u32>,
}

impl Slots {
    fn insert_callback(&mut self, done: IoCallback) -> u32 {
        match self.free_callbacks.pop() {
            Some(i) => {
                self.callbacks[i as usize] = Some(done);
                i
            }
            None => {
                self.callbacks.push(Some(done));
                u32::try_from(self.callbacks.len() - 1).unwrap_or(u32::MAX)
            }
        }
    }
}

/// What the channel, its reply endpoint and (on the owner reactor) the module share.
pub(crate) struct State {
    slots: RefCell<Slots>,
    /// The first caller's callback, kept for the channel's life.
    first: OnceCell<IoCallback>,
    shared: Arc<DeviceShared>,
    core: u32,
    endpoint: Cell<EndpointId>,
}

impl State {
    /// The channel's reply endpoint.
    pub(crate) fn endpoint(&self) -> EndpointId {
        self.endpoint.get()
    }
}

pub(crate) struct IobandChannel {
    state: Rc<State>,
    core: u32,
    endpoint: EndpointId,
    /// On the owner reactor: the module, called directly (without the endpoint table).
    owner: Option<Weak<RefCell<IobandModule>>>,
    /// That module's submit endpoint (where a re-entered submit waits for a pass).
    local_submit: Option<EndpointId>,
    /// This channel's index in the owner's table of local channels.
    local: Option<u32>,
}

impl IobandChannel {
    pub(crate) fn new(shared: Arc<DeviceShared>) -> Result<IobandChannel, BdevError> {
        let core = reactor::current_core()?;
        // This reactor's module: the owner's, or its replica here (none yet: the replica
        // is still being started, and the owner schedules this channel's I/O).
        let (owner, local_submit) = match owner_module(shared.module_key) {
            Some((m, e)) => (Some(m), Some(e)),
            None => (None, None),
        };
        let state = Rc::new(State {
            slots: RefCell::new(Slots {
                // An owner-local channel needs children only for stacked descriptors.
                children: ChildTable::with_capacity(
                    INITIAL_POOL,
                    if owner.is_some() { 0 } else { INITIAL_POOL },
                ),
                callbacks: Vec::new(),
                free_callbacks: Vec::new(),
            }),
            first: OnceCell::new(),
            shared,
            core,
            endpoint: Cell::new(EndpointId::NONE),
        });
        let s = state.clone();
        let endpoint = reactor::register_endpoint(Rc::new(move |io| reply(&s, io)))?;
        state.endpoint.set(endpoint);
        // Made while the module is busy (by the module itself, for an ioband stacked on
        // an ioband): no entry, completions take the endpoint.
        let local = owner
            .as_ref()
            .and_then(Weak::upgrade)
            .and_then(|m| {
                m.try_borrow_mut()
                    .ok()
                    .map(|mut m| m.add_local_channel(Rc::downgrade(&state)))
            })
            .flatten();
        Ok(IobandChannel {
            state,
            core,
            endpoint,
            owner,
            local_submit,
            local,
        })
    }

    /// Where the callback of an owner-local I/O is kept.
    #[inline]
    fn remember(&self, done: &IoCallback) -> u32 {
        match self.state.first.get() {
            Some(first) if Rc::ptr_eq(first, done) => FIRST_CALLER,
            Some(_) => self.state.slots.borrow_mut().insert_callback(done.clone()),
            None => {
                let _ = self.state.first.set(done.clone());
                FIRST_CALLER
            }
        }
    }
}

/// A descriptor came back from the owner: complete the caller's I/O.
fn reply(state: &State, io: Box<BdevIo>) {
    if io.band.parent {
        complete_parent(state, io);
    } else {
        complete_child(state, io);
    }
}

/// An owner-local I/O is done: the descriptor is the caller's.
#[inline]
pub(crate) fn complete_parent(state: &State, mut io: Box<BdevIo>) {
    let slot = io.band.slot;
    io.band = BandCtx::default();
    if io.status == IoStatus::Pending {
        io.status = IoStatus::Failed;
    }
    let shared = &state.shared;
    shared.stats.record(
        state.core,
        io.io_type,
        io.len_bytes(shared.block_size),
        io.status == IoStatus::Success,
    );
    if slot == FIRST_CALLER {
        if let Some(done) = state.first.get() {
            done(io);
        }
        return;
    }
    let done = {
        let mut s = state.slots.borrow_mut();
        let done = s.callbacks.get_mut(slot as usize).and_then(Option::take);
        if done.is_some() {
            s.free_callbacks.push(slot);
        }
        done
    };
    if let Some(done) = done {
        done(io);
    }
}

/// A child descriptor came back: restore the caller's descriptor and complete it.
fn complete_child(state: &State, child: Box<BdevIo>) {
    let slot = child.band.slot;
    // `None`: not ours (cannot happen: slots are only freed here).
    let Some((parent, done)) = state.slots.borrow_mut().children.complete(slot, child) else {
        return;
    };
    let shared = &state.shared;
    let bytes = parent.len_bytes(shared.block_size);
    shared.stats.record(
        state.core,
        parent.io_type,
        bytes,
        parent.status == IoStatus::Success,
    );
    // The parent's band context is its submitter's (an ioband above this one): untouched.
    done(parent);
}

impl IoChannel for IobandChannel {
    fn submit(&self, mut parent: Box<BdevIo>, done: &IoCallback) -> Result<(), SubmitError> {
        let shared = &self.state.shared;
        if let Some(owner) = &self.owner {
            if parent.band.reply_endpoint.is_none() {
                parent.band = BandCtx {
                    reply_core: self.core,
                    reply_endpoint: Some(self.endpoint),
                    slot: self.remember(done),
                    tag: IoTag::new(shared.handle),
                    parent: true,
                    local: self.local,
                };
                if shared.is_removed() {
                    parent.status = IoStatus::Aborted;
                    // Only a stopped host fails to deliver; its I/O dies with it.
                    let _ = reactor::send_io(self.core, self.endpoint, parent);
                } else {
                    submit_on_owner(owner, self.local_submit, parent);
                }
                return Ok(());
            }
        }
        let child = {
            let (mut child, slot) = self.state.slots.borrow_mut().children.lend(parent, done);
            child.band = BandCtx {
                reply_core: self.core,
                reply_endpoint: Some(self.endpoint),
                slot,
                tag: IoTag::new(shared.handle),
                parent: false,
                local: None,
            };
            child
        };
        let sent = if shared.is_removed() {
            let mut child = child;
            child.status = IoStatus::Aborted;
            reactor::send_io(self.core, self.endpoint, child)
        } else if let Some(owner) = &self.owner {
            submit_on_owner(owner, self.local_submit, child);
            Ok(())
        } else {
            reactor::deliver_io(shared.owner_core, shared.submit_endpoint, child)
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
