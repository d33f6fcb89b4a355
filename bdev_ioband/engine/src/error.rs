//! Typed errors of the engine's control plane.
//!
//! Every configuration call validates first and returns one of these without changing any
//! state. The hosts convert them to errno or JSON-RPC codes at their edges (see
//! [`EngineError::errno`]); nothing inside the engine deals in numbers.

use thiserror::Error;

/// What a control operation (create, attach, set, parse) can fail with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    /// No share of this name exists.
    #[error("no share named '{0}'")]
    NoSuchShare(String),
    /// No ioband device of this name exists.
    #[error("no ioband device named '{0}'")]
    NoSuchDevice(String),
    /// The group is not attached to the device.
    #[error("group '{group}' is not attached to ioband device '{device}'")]
    NoSuchGroup {
        /// ioband device name.
        device: String,
        /// Group key as text.
        group: String,
    },
    /// A device of this name exists already.
    #[error("an ioband device named '{0}' exists already")]
    DeviceExists(String),
    /// A share would take the name of a device of another share, or a device the name of
    /// another share: the text language could not tell them apart.
    #[error(
        "'{name}' is the name of {taken_by} already; a share and a device of another share \
         may not have the same name"
    )]
    NameTaken {
        /// The name asked for.
        name: String,
        /// What has it: "a share" or "an ioband device".
        taken_by: &'static str,
    },
    /// The group is attached already.
    #[error("group '{group}' is attached to ioband device '{device}' already")]
    GroupExists {
        /// ioband device name.
        device: String,
        /// Group key as text.
        group: String,
    },
    /// A name is empty, too long or has characters we do not accept.
    #[error("invalid name '{name}': {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The base bdev's name is one no bdev can have (empty, white space or control
    /// characters, too long), or the new device's own.
    #[error("invalid base_bdev_name '{name}': {reason}")]
    InvalidBase {
        /// The base name given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A numeric parameter is outside its range.
    #[error("{param} = {value} is out of range ({min}..={max})")]
    OutOfRange {
        /// Parameter name as the user writes it.
        param: &'static str,
        /// The value given.
        value: i64,
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// range-bw with min above max.
    #[error("range-bw min {min_kib_per_sec} KiB/s is above max {max_kib_per_sec} KiB/s")]
    MinAboveMax {
        /// Requested minimum.
        min_kib_per_sec: u32,
        /// Requested maximum.
        max_kib_per_sec: u32,
    },
    /// The sum of the minimums would exceed what the share can give.
    #[error(
        "share '{share}': the minimums would add up to {sum_kib_per_sec} KiB/s, \
         above the share's capacity of {capacity_kib_per_sec} KiB/s"
    )]
    MinSumExceeded {
        /// Share name.
        share: String,
        /// Σmin after the change.
        sum_kib_per_sec: u64,
        /// The limit it was checked against.
        capacity_kib_per_sec: u64,
    },
    /// io_throttle must not exceed io_limit (the one set, or the default one in force).
    #[error(
        "io_throttle {io_throttle} must not exceed io_limit {io_limit} \
         (set io_limit with it to raise the limit)"
    )]
    ThrottleAboveLimit {
        /// Requested or current io_throttle.
        io_throttle: u32,
        /// Requested or current io_limit.
        io_limit: u32,
    },
    /// The value does not fit the share's policy (a weight under range-bw, say).
    #[error("{what} does not apply to policy '{policy}'")]
    WrongPolicy {
        /// What was attempted.
        what: &'static str,
        /// The share's policy.
        policy: &'static str,
    },
    /// A group cannot be bound, attached or detached as asked: `none` bound, a group bound
    /// twice in one share, bound where it is attached already, attached where it is bound,
    /// or a bound group detached. Bad params: hosts answer -32602
    /// ([`crate::config::rpc::rpc_code`]).
    #[error("group '{group}' {reason}")]
    Binding {
        /// Group key as text.
        group: String,
        /// What is in the way, as the rest of the sentence.
        reason: String,
    },
    /// The default group cannot be attached or detached.
    #[error("the default group of ioband device '{0}' cannot be attached or detached")]
    DefaultGroup(String),
    /// A text or JSON value could not be parsed.
    #[error("parse error: {0}")]
    Parse(String),
    /// The engine found its own state inconsistent (a bug); nothing was changed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// The errno a host reports for this error (positive; SPDK negates it on the wire).
    pub fn errno(&self) -> i32 {
        const ENODEV: i32 = 19;
        const EEXIST: i32 = 17;
        const EINVAL: i32 = 22;
        const ENOENT: i32 = 2;
        const EIO: i32 = 5;
        match self {
            EngineError::NoSuchShare(_) | EngineError::NoSuchDevice(_) => ENODEV,
            EngineError::NoSuchGroup { .. } => ENOENT,
            EngineError::DeviceExists(_)
            | EngineError::GroupExists { .. }
            | EngineError::NameTaken { .. } => EEXIST,
            EngineError::Internal(_) => EIO,
            _ => EINVAL,
        }
    }
}
