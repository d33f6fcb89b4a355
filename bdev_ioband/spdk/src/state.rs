//! The module's state on the owner thread: the engine, the ioband devices (remembered
//! configs, with or without a registered bdev), and the side effects a call leaves to do
//! once the state is released.
//!
//! One owner: [`init`] puts the state in a `Box` and hands its pointer to a static;
//! [`fini`] takes it back with `Box::from_raw`, once. Between the two, only the owner
//! thread touches it, through [`with_state`], whose `RefCell` turns an unexpected
//! re-entrance (a shim call that calls back into the module) into a refusal rather than
//! two `&mut` to the same state.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::c_int;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use bdev_ioband_engine::adapter::{Adapter, BaseIdx, BaseNames, DevHandle};
use bdev_ioband_engine::{Engine, ShareId};

use crate::shim::{self, IoHandle, NodePtr};

/// One ioband device: created by `bdev_ioband_create`, gone after `bdev_ioband_delete`
/// (and after its node is freed).
#[derive(Debug)]
pub struct Dev {
    /// The ioband bdev's name.
    pub name: String,
    /// The base bdev's name.
    pub base: String,
    /// The share it belongs to.
    pub share: String,
    /// The registered bdev, when the base is present.
    pub node: Option<NodePtr>,
    /// Deleted: kept only until the node is freed, so that late completions find their
    /// share.
    pub deleted: bool,
    /// Its handle in the I/O adapter (and the replicas' mirrors of it).
    pub handle: DevHandle,
    /// Its base's number, for parking per base.
    pub base_idx: BaseIdx,
}

/// Everything the module knows.
#[derive(Debug)]
pub struct State {
    /// Shares, devices and groups.
    pub engine: Engine<IoHandle>,
    /// The I/O path's side of the devices: handles, group caches, tickets (see [`crate::io`]).
    pub adapter: Adapter<IoHandle, ()>,
    /// Base names, numbered for parking per base (never shrinks; a few entries).
    pub bases: BaseNames,
    /// Devices by id (creation order).
    pub devs: BTreeMap<u64, Dev>,
    /// Live (not deleted) devices by name.
    pub names: BTreeMap<String, u64>,
    /// Next device id.
    pub next_id: u64,
    /// The poller's list of shares to drive, kept to reuse its allocation.
    pub poll_ids: Vec<ShareId>,
    /// The replicas on the other threads, and the hubs (see [`crate::replica`]).
    pub span: crate::replica::OwnerSpan,
}

/// Work left for after the state is released: completing or submitting an I/O may call
/// straight back into the module (a submitter's completion callback submits again; a base
/// that is itself an ioband bdev submits to the owner).
#[derive(Debug, Default)]
pub struct Effects {
    /// I/O to complete, with the shim status.
    pub complete: Vec<(IoHandle, c_int)>,
    /// I/O to submit to their base.
    pub dispatch: Vec<IoHandle>,
}

thread_local! {
    /// Spent effect lists of this (the owner) thread, reused so that the I/O path does
    /// not allocate once the lists have grown to their working size.
    static SPARE_EFFECTS: RefCell<Vec<Effects>> = const { RefCell::new(Vec::new()) };
}

impl Effects {
    /// An empty effect list, reusing a spent one's allocation when there is one.
    pub fn take() -> Effects {
        SPARE_EFFECTS
            .with(|spare| spare.try_borrow_mut().ok().and_then(|mut s| s.pop()))
            .unwrap_or_default()
    }

    /// Hands a drained effect list back for reuse.
    pub fn recycle(mut self) {
        self.complete.clear();
        self.dispatch.clear();
        SPARE_EFFECTS.with(|spare| {
            if let Ok(mut s) = spare.try_borrow_mut() {
                if s.len() < 8 {
                    s.push(self);
                }
            }
        });
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.complete.is_empty() && self.dispatch.is_empty()
    }
}

static STATE: AtomicPtr<RefCell<State>> = AtomicPtr::new(ptr::null_mut());

/// Creates the state (module init).
pub fn init(ticks_per_sec: u64) {
    let state = Box::new(RefCell::new(State {
        engine: Engine::new(ticks_per_sec.max(1)),
        adapter: Adapter::new(),
        bases: BaseNames::default(),
        devs: BTreeMap::new(),
        names: BTreeMap::new(),
        next_id: 1,
        poll_ids: Vec::new(),
        span: crate::replica::OwnerSpan::default(),
    }));
    let old = STATE.swap(Box::into_raw(state), Ordering::AcqRel);
    if !old.is_null() {
        // SAFETY: a non-null value in STATE always comes from Box::into_raw above and is
        // taken out (swapped) exactly once, here or in `fini`.
        drop(unsafe { Box::from_raw(old) });
    }
}

/// Frees the state (module fini). I/O still held is forgotten: by then the bdev layer has
/// destructed every ioband bdev, which completed their queues.
pub fn fini() {
    let old = STATE.swap(ptr::null_mut(), Ordering::AcqRel);
    if !old.is_null() {
        // SAFETY: as in `init`: the pointer came from Box::into_raw and is taken once.
        drop(unsafe { Box::from_raw(old) });
    }
}

impl State {
    /// Forgets device `id` (its node is gone, or it never had one).
    pub fn remove_dev(&mut self, id: u64) {
        if let Some(dev) = self.devs.remove(&id) {
            self.adapter.devices.remove(dev.handle);
            self.adapter.config_changed();
        }
    }
}

/// Runs `f` on the state; `None` before init, after fini, or on re-entrance.
pub fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    let p = STATE.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: p is live between init and fini (only fini frees it, on the owner thread,
    // after every other module callback); every caller runs on the owner thread, so the
    // RefCell is never touched from two threads.
    let cell = unsafe { &*p };
    let Ok(mut state) = cell.try_borrow_mut() else {
        shim::log(0, "re-entrant call refused (internal error)");
        return None;
    };
    Some(f(&mut state))
}
