//! The QoS engine of bdev_ioband: dm-ioband's shares, groups and policies as a pure,
//! deterministic library.
//!
//! No threads, no clock reads, no unsafe code: every call that depends on time takes `now`
//! in ticks. A host (the embedded polled-mode host or the SPDK module) owns each [`Share`]
//! on one thread, offers I/O with [`Share::submit`], receives what may go through a
//! dispatch sink, and returns completions with [`Share::complete`]. The control plane talks
//! to the [`Engine`] registry by name, directly or through the text language of
//! [`config`]. Between a host's I/O and the engine sits the host-neutral [`adapter`]
//! (classification by device handle, tickets checked against device and share
//! incarnations, ENOMEM parking per base), which both hosts use.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adapter;
pub mod config;
mod engine;
mod error;
mod group;
mod heap;
mod params;
mod share;
pub mod sim;

pub use engine::{validate_base_name, validate_name, DeviceRef, Engine, ShareId, MAX_NAME_LEN};
pub use error::EngineError;
pub use group::{GroupId, GroupKey, GroupStats, GroupType, Op, Release, Ticket, MAX_INITIATOR_LEN};
pub use params::{
    GroupParams, GroupValue, Policy, ShareParams, DEFAULT_IO_THROTTLE, DEFAULT_NR_REQUESTS,
    DEFAULT_TOKENPOOL, DEFAULT_WEIGHT, IDLE_GRACE_MAX_US, RANGE_BW_MAX_KIB_PER_SEC, SECTOR_BYTES,
    SHORT_MAX, TOKEN_MAX,
};
pub use share::{
    Admit, Batch, CoreReport, DeviceIdx, Grant, GroupGrant, GroupReport, Hub, LaneCounts,
    LaneGrant, LaneRequest, Share, ShareLayout, SlotLayout, BASE_DEPTH_TTL_MS, FLOOR_TTL_MS,
    LANE_SLOTS_MAX, QUEUE_DELAY_MIN_US, RESERVE_LAG_MAX_MS,
};
