//! bdev_ioband inside real SPDK applications: the bdev module `ioband` and the
//! `bdev_ioband_*` JSON-RPC methods, over the pure engine ([`bdev_ioband_engine`]).
//!
//! Built as a `cdylib` (`libbdev_ioband_spdk.so`, loaded with `LD_PRELOAD` into an SPDK app
//! built `--with-shared`: spdk_tgt, nvmf_tgt, iscsi_tgt, bdevperf) and a `staticlib` (link
//! it into a custom app inside `-Wl,--whole-archive`: the module registers itself from ELF
//! constructors, which a plain static link drops). The shared library is built for one
//! SPDK ([`BUILT_FOR_SPDK`]) and, loaded into an app of another, registers nothing and says
//! so in one line (`src/shim/ioband_check.c`; README, *Which SPDK*).
//!
//! # Layers
//! - `src/shim/ioband_shim.c`: C, compiled against `$SPDK_DIR/include` at build time. All
//!   that needs SPDK's macros, inline functions or struct layouts: module and RPC
//!   registration, the bdev function table, nodes (bdev, base descriptor, shared-writer
//!   claim, io_device, channels), moving I/O between threads, one submission to the base,
//!   arming io_wait. Its API is our own header (`ioband_shim.h`); [`ffi`] declares it by
//!   hand, as the trait [`ffi::ShimApi`]: the one boundary between Rust and the shim.
//! - Rust: the engine, the device registry, RPC semantics, config and info JSON
//!   ([`rpc`]), the owner's scheduling path with ENOMEM parking ([`io`]), the per-thread
//!   replicas and the owner's exchange with them ([`replica`]).
//! - Tests: `cargo test` builds without SPDK. [`ffi::Active`] is then the mock
//!   (`src/mock.rs`), a recording model of the shim's behaviour (nodes, unregister and
//!   destruct, io_wait, the pass tick), and the unit tests drive the `ioband_rs_*` entry
//!   points as the C shim would.
//!
//! # Threading model: a replica of the shares per SPDK thread
//! The owner is the SPDK app thread, where module init, examine, RPC handlers and bdev
//! destruct run, and whose engine the control plane changes. Every other SPDK thread that
//! gets an ioband channel gets a replica ([`replica`]): `submit_request` there (after
//! getting a read buffer) schedules the I/O with the replica and submits what it releases
//! on that thread's own base channel; the base completes there. Once a millisecond the
//! replicas report to the owner and the owner's hub answers with grants (the engine's span
//! module), so a share's weights, reservations and limits hold across threads within a
//! bounded lag. I/O submitted on the app thread, resets, and I/O a replica cannot take yet
//! go to the owner with `spdk_thread_send_msg` and back, as they always did.
//!
//! # Group identity
//! See [`io`]: `tag:<spdk thread id>` and the default group are what SPDK lets a bdev
//! module see; `initiator:` and `cgroup:` groups are accepted by the RPCs and never
//! matched. Per-tenant QoS under NVMe-oF or iSCSI is by topology: one ioband bdev per
//! tenant (all in one share over the shared base), each exported to that tenant only
//! (`nvmf_ns_add_host` with `no_auto_visible`, or an iSCSI target node per tenant).
//!
//! # Ownership and safety
//! Every `unsafe` block says why it is sound. Nodes are the shim's (calloc at create, free
//! in the io_device unregister callback); the Rust state is one `Box` (into_raw at module
//! init, from_raw at module fini); every `extern "C"` entry catches panics.

// Without SPDK only the unit tests build (against the mock shim): build.rs sets
// `ioband_no_spdk` and compiles no C.
#[cfg(all(ioband_no_spdk, not(test), not(feature = "mock-shim")))]
compile_error!(
    "bdev_ioband_spdk needs SPDK: set SPDK_DIR to a built SPDK tree or install prefix \
     (e.g. SPDK_DIR=/opt/spdk-src), or make `pkg-config spdk_bdev` work \
     (`cargo test` alone builds without SPDK, against the mock shim)"
);

/// The SPDK version this library was built for (`MAJOR.MM.PATCH`, e.g. `25.09.0`, from
/// build.rs); `None` in a build without SPDK (unit tests, `mock-shim`).
pub const BUILT_FOR_SPDK: Option<&str> = option_env!("IOBAND_SPDK_VERSION");

pub mod entry;
pub mod ffi;
pub mod io;
#[cfg(any(test, feature = "mock-shim"))]
pub mod mock;
pub mod replica;
pub mod rpc;
pub mod shim;
pub mod state;

#[cfg(test)]
mod tests;
