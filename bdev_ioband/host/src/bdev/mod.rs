//! The bdev layer: the [`Bdev`] trait, per-reactor I/O channels, the I/O descriptor and the
//! base bdevs (`null`, `malloc`, `model`, and `file`: a file or block device over io_uring).
//!
//! Threading: a bdev object is shared by every reactor (`Arc<dyn Bdev>`); its channels are
//! per reactor and never leave the reactor that created them. A submission's completion
//! callback runs on the reactor that submitted it, from a poller or a mailbox pass, never
//! inside `submit` itself. The [`registry`] of bdevs by name belongs to the main reactor.

mod deferred;
pub mod file;
pub(crate) mod forward;
pub mod io;
pub mod malloc;
pub mod model;
pub mod null;
pub mod passthru;
pub mod registry;
pub mod stats;

use std::rc::Rc;
use std::sync::Arc;

use thiserror::Error;

pub use io::{BdevIo, IoCallback, IoPool, IoStatus, IoType};
pub use registry::BdevRegistry;
pub use stats::IoStats;

use crate::reactor::ReactorError;

/// Errors of the bdev layer's control path.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BdevError {
    /// No bdev of this name.
    #[error("no bdev named '{0}'")]
    NotFound(String),
    /// A bdev of this name exists already.
    #[error("a bdev named '{0}' exists already")]
    Exists(String),
    /// A parameter is not acceptable.
    #[error("invalid {param}: {reason}")]
    Invalid {
        /// The parameter as the user names it.
        param: &'static str,
        /// Why.
        reason: String,
    },
    /// The bdev is claimed by a vbdev and cannot go by this call.
    #[error("bdev '{bdev}' is in use by '{by}'")]
    Busy {
        /// The bdev.
        bdev: String,
        /// Who holds it.
        by: String,
    },
    /// The call must run on a reactor.
    #[error(transparent)]
    Reactor(#[from] ReactorError),
    /// The operating system refused (open, ioctl, io_uring setup); its errno is passed on.
    #[error("{message}")]
    System {
        /// What failed and why.
        message: String,
        /// The OS error number (positive).
        errno: i32,
    },
}

impl BdevError {
    /// The errno a host reports for this error (positive).
    pub fn errno(&self) -> i32 {
        match self {
            BdevError::NotFound(_) => 19,
            BdevError::Exists(_) => 17,
            BdevError::Invalid { .. } => 22,
            BdevError::Busy { .. } => 16,
            BdevError::Reactor(_) => 5,
            BdevError::System { errno, .. } => *errno,
        }
    }
}

/// Why a submission was not taken.
#[derive(Debug)]
pub enum SubmitError {
    /// Out of resources for now (queue full): park the I/O and submit it again later.
    NoMem(Box<BdevIo>),
}

/// One reactor's channel to a bdev. Not `Send`: it lives on the reactor that made it.
pub trait IoChannel {
    /// Submits `io`; `done` is called with it exactly once, later, on this reactor, unless
    /// this returns [`SubmitError::NoMem`] (then the caller still owns it).
    fn submit(&self, io: Box<BdevIo>, done: &IoCallback) -> Result<(), SubmitError>;
}

/// A block device.
pub trait Bdev: Send + Sync + std::fmt::Debug {
    /// Its unique name.
    fn name(&self) -> &str;
    /// What kind of bdev it is, as `bdev_get_bdevs` shows it.
    fn product_name(&self) -> &'static str;
    /// Bytes per block.
    fn block_size(&self) -> u32;
    /// Blocks in the device.
    fn num_blocks(&self) -> u64;
    /// Its UUID as text.
    fn uuid(&self) -> &str;
    /// A channel for the current reactor.
    fn get_io_channel(&self) -> Result<Rc<dyn IoChannel>, BdevError>;
    /// Its I/O counters (per core, summed when read).
    fn stats(&self) -> &IoStats;
    /// How many I/Os it takes at once (the `nr_requests` an ioband share derives from).
    fn queue_depth(&self) -> u32 {
        128
    }
    /// Whether `queue_depth` counts the I/Os of every channel together (one queue for the
    /// device: when it answers ENOMEM the device is full, whichever channel asked) rather
    /// than each channel's own. A share spread over reactors learns such a base's depth
    /// from its refusals (see the engine's span module).
    fn depth_is_shared(&self) -> bool {
        false
    }
    /// Module-specific information for `bdev_get_bdevs`.
    fn driver_specific(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// The `{method, params}` that recreates it, for `framework_get_config`; `None` for
    /// bdevs that another module's entry recreates.
    fn config_entry(&self) -> Option<serde_json::Value>;
    /// Called once when the bdev is unregistered: fail or drain what it must.
    fn on_unregister(&self) {}
}

/// Shared pointer to a bdev.
pub type BdevRef = Arc<dyn Bdev>;

/// Checks the common geometry of a new bdev.
pub(crate) fn check_geometry(block_size: u32, num_blocks: u64) -> Result<(), BdevError> {
    if block_size < 512 || !block_size.is_power_of_two() {
        return Err(BdevError::Invalid {
            param: "block_size",
            reason: format!("{block_size} is not a power of two of at least 512"),
        });
    }
    if num_blocks == 0 {
        return Err(BdevError::Invalid {
            param: "num_blocks",
            reason: "it is 0".into(),
        });
    }
    Ok(())
}

/// A v4-shaped UUID made from a name and a counter (no randomness source needed).
pub(crate) fn make_uuid(name: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    let a = h.finish();
    h.write_u8(0x5a);
    let b = h.finish();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}
