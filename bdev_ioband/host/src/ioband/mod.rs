//! The ioband vbdev: a bdev over any base bdev that schedules every I/O through the QoS
//! engine by the group it carries ([`BdevIo::group`](crate::bdev::BdevIo::group); untagged
//! or unknown groups go to the device's default group).
//!
//! # Cross-core strategy: a replica of each share on every reactor
//!
//! The [`Engine`](bdev_ioband_engine::Engine) that the control plane talks to lives on one
//! reactor, the **owner** (the main reactor). With more than one reactor, every other
//! reactor runs a **replica** of the module: the same shares, devices and groups
//! (mirrored from the owner after every change), its own channel to each base, and its
//! own poller. An I/O is scheduled on the reactor that submitted it, by that reactor's
//! replica of its share, and goes to that reactor's channel of the base; its completion
//! comes back on the same reactor. No message, lock or shared cache line per I/O. Once
//! per millisecond the replicas report to the owner and the owner's hub answers with
//! grants, which keep weights, reservations and limits across reactors within a bounded
//! lag (the engine's span module has the design and the bound; `module/span.rs` has the
//! host's side). The owner's counters include the replicas' (as of their last report).
//!
//! Until a replica has heard of a device (the first pass after it is created), and on a
//! reactor whose replica is not started yet, I/O travels to the owner in a mailbox
//! message, is scheduled there, and its completion travels back: SPDK's old QoS funnel,
//! kept as the fallback.
//!
//! On any reactor with a module there is no hop and no copy: a channel there hands the
//! caller's descriptor as it is to the module (a direct call), the engine dispatches it
//! straight to the base, and the base's completion is completed to the caller from the
//! module's completion callback (a direct call again, through the module's table of local
//! channels). The caller's callback is kept once per channel for its first caller (see
//! [`channel`]).
//!
//! # Lifetimes and exactly-once completion
//!
//! - The base returning ENOMEM (`SubmitError::NoMem`) parks the I/O in that base's queue
//!   on the reactor that dispatched it (the engine's I/O adapter, shared with the SPDK
//!   host: I/O to another base goes on, order is kept per base), and that reactor's poller
//!   retries it; nothing fails for lack of resources.
//! - A completion returns its ticket to the share incarnation that dispatched it and
//!   counts back on the device incarnation it was submitted to, or to nothing if either
//!   was deleted meanwhile (the adapter's generation-checked handles).
//! - Deleting an ioband bdev (directly, or because its base is removed): the I/O queued in
//!   the engine and the parked I/O complete at once with
//!   [`IoStatus::Aborted`](crate::bdev::IoStatus::Aborted); I/O in
//!   flight at the base completes normally (the base channel is kept until it drains); I/O
//!   submitted afterwards, or still in a mailbox, completes with `Aborted`.
//! - Completions never run inside `submit`: replies travel through the mailbox, except
//!   the reply to a base completion for a channel on the owner reactor, which is delivered
//!   inline from the base's completion (already outside any submit, module not borrowed).
//!
//! Threading: each [`IobandModule`] (engine, per-device base channels, parked I/O)
//! belongs to its reactor (the owner's, or a replica's); each [`channel`] belongs to the reactor that created it;
//! [`DeviceShared`] is immutable but for an atomic "removed" flag and per-core counters.

mod bdev;
mod channel;
mod module;

use thiserror::Error;

pub use bdev::IobandBdev;
pub use module::{IobandHandle, IobandModule};

pub(crate) use bdev::DeviceShared;

use crate::bdev::BdevError;
use bdev_ioband_engine::EngineError;

/// What creating or deleting an ioband bdev can fail with.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IobandError {
    /// The engine refused (names, parameters, unknown device).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The bdev layer refused (no base, name taken).
    #[error(transparent)]
    Bdev(#[from] BdevError),
}

impl IobandError {
    /// The errno a host reports for this error (positive).
    pub fn errno(&self) -> i32 {
        match self {
            IobandError::Engine(e) => e.errno(),
            IobandError::Bdev(e) => e.errno(),
        }
    }
}
