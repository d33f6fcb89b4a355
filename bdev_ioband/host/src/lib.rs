//! The embedded polled-mode host of bdev_ioband: reactors (one per core, pollers, an
//! async-task executor, crossbeam mailboxes), a bdev layer with `null`, `malloc` and
//! `model` base bdevs, the ioband vbdev over any of them, the NBD front end ([`nbd`]), the
//! iSCSI front end ([`iscsi`], over the SCSI layer [`scsi`]), and
//! (in [`rpc`]) the JSON-RPC server that `ioband_tgt` runs.
//!
//! Threading in one line: every object belongs to one reactor; other reactors reach it by
//! message. The control plane (bdev registry, the QoS engine, RPC handlers) lives on the
//! main reactor (index 0).

pub mod app;
pub mod bdev;
pub(crate) mod frontend;
pub mod ioband;
pub mod iscsi;
pub mod nbd;
pub mod perf;
pub mod reactor;
pub mod rpc;
pub mod scsi;
pub mod ticks;
