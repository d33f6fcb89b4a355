//! bdev_ioband inside real SPDK applications: the bdev module `ioband` and the
//! `bdev_ioband_*` JSON-RPC methods, over the pure engine ([`bdev_ioband_engine`]).
//!
//! Built as a `cdylib` (`libbdev_ioband_spdk.so`, loaded with `LD_PRELOAD` into an SPDK app
//! built `--with-shared`: spdk_tgt, nvmf_tgt, iscsi_tgt, bdevperf) and a `staticlib` (link
//! it into a custom app inside `-Wl,--whole-archive`: the module registers itself from ELF
//! constructors, which a plain static link drops).
//!
//! # Layers
//! - `src/shim/ioband_shim.c`: C, compiled against `$SPDK_DIR/include` at build time. All
//!   that needs SPDK's macros, inline functions or struct layouts: module and RPC
//!   registration, the bdev function table, nodes (bdev, base descriptor, shared-writer
//!   claim, io_device, channels), moving I/O between threads, submitting to the base,
//!   io_wait. Its API is our own header (`ioband_shim.h`); [`ffi`] declares it by hand.
//! - Rust: the engine, the device registry, RPC semantics, config and info JSON
//!   ([`rpc`]), the scheduling path ([`io`]). Everything runs on one thread.
//!
//! # Threading model: funnel to one owner thread
//! The owner is the SPDK app thread, where module init, examine, RPC handlers and bdev
//! destruct run. `submit_request` on any thread (after getting a read buffer there) sends
//! the I/O to the owner with `spdk_thread_send_msg`; the owner classifies it, offers it to
//! its share's scheduler and submits what the scheduler releases to the base on the
//! owner's own base channel; the base completes on the owner, which returns the ticket to
//! the scheduler and sends the completion back to the submitting thread. This is how
//! SPDK's QoS was first built (one QoS thread per bdev owning the bucket). Why here: a
//! share's scheduler (virtual times, reservation and limit tags, queues, in-flight limit)
//! is exact only if one thread sees every I/O of the share; the alternative, per-core
//! budgets rebalanced by a conductor, trades that exactness for scalability and is not
//! implemented. Cost: up to two messages per I/O from other threads, and one thread's
//! worth of scheduling for every share of the app.
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

pub mod entry;
pub mod ffi;
pub mod io;
pub mod rpc;
pub mod shim;
pub mod state;
