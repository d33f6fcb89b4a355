//! The ioband vbdev: a bdev over any base bdev that schedules every I/O through the QoS
//! engine by the group it carries ([`BdevIo::group`](crate::bdev::BdevIo::group); untagged
//! or unknown groups go to the device's default group).
//!
//! # Cross-core strategy: funnel to the owner reactor
//!
//! The [`Engine`](bdev_ioband_engine::Engine) and every share in it live on one reactor,
//! the **owner** (the main reactor, which also runs the control plane). An I/O submitted on
//! another reactor travels to the owner in a mailbox message, is scheduled there, goes to
//! the owner's channel of the base bdev, and its completion travels back to the submitting
//! reactor, where the caller's callback runs. This is what SPDK's own bdev QoS does.
//!
//! Why: the shares come out exact (one scheduler sees every I/O of a share, so weights,
//! minimums and maximums need no cross-core rebalancing epochs), the engine needs no
//! locks or atomics, and reconfiguration is a plain call on the owner. Cost: one
//! cross-core message each way per I/O when the submitter is not the owner, and the owner
//! core does all scheduling and base submission for every share. A later step can give
//! each share its own owner reactor without changing the channel side.
//!
//! On the owner reactor itself there is no hop and no copy: a channel there hands the
//! caller's descriptor as it is to the module (a direct call), the engine dispatches it
//! straight to the base, and the base's completion is completed to the caller from the
//! module's completion callback (a direct call again, through the module's table of local
//! channels). The caller's callback is kept once per channel for its first caller (see
//! [`channel`]).
//!
//! # Lifetimes and exactly-once completion
//!
//! - The base returning ENOMEM (`SubmitError::NoMem`) parks the I/O on the owner, in
//!   order, and the owner's poller retries it; nothing fails for lack of resources.
//! - Deleting an ioband bdev (directly, or because its base is removed): the I/O queued in
//!   the engine and the parked I/O complete at once with
//!   [`IoStatus::Aborted`](crate::bdev::IoStatus::Aborted); I/O in
//!   flight at the base completes normally (the base channel is kept until it drains); I/O
//!   submitted afterwards, or still in a mailbox, completes with `Aborted`.
//! - Completions never run inside `submit`: replies travel through the mailbox, except
//!   the reply to a base completion for a channel on the owner reactor, which is delivered
//!   inline from the base's completion (already outside any submit, module not borrowed).
//!
//! Threading: [`IobandModule`] (engine, per-device base channels, parked I/O) belongs to
//! the owner reactor; each [`channel`] belongs to the reactor that created it;
//! [`DeviceShared`] is immutable but for an atomic "removed" flag and per-core counters.

mod bdev;
mod channel;
mod group_cache;
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
