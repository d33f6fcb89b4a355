//! The C shim's API (`src/shim/ioband_shim.h`), declared by hand: our own functions, no
//! SPDK type crosses (SPDK objects are opaque `*mut c_void`).
//!
//! The Rust layer reaches the shim only through the trait [`ShimApi`], whose one
//! implementation in use is [`Active`]: [`CShim`] (the C functions, linked from
//! `ioband_shim.c`) in a real build, [`crate::mock::MockShim`] (a recording model of the
//! shim, no SPDK) under `cfg(test)` or the `mock-shim` feature. The other direction, the
//! `ioband_rs_*` functions the shim calls, is [`crate::entry`], the same in both builds.
//!
//! Every function here must be called on the owner thread (the SPDK app thread), except
//! those of an I/O a replica scheduled (its own thread) and the messages (any thread).

use std::ffi::{c_char, c_int, c_void};

/// Bytes of the Rust area in each I/O's driver_ctx (`IOBAND_RS_IO_AREA`).
pub const RS_IO_AREA: usize = 48;

/// `IOBAND_IO_READ`.
pub const IO_READ: c_int = 0;
/// `IOBAND_IO_WRITE`.
pub const IO_WRITE: c_int = 1;
/// `IOBAND_IO_OTHER` (write zeroes, unmap, flush).
pub const IO_OTHER: c_int = 2;
/// `IOBAND_IO_RESET`.
pub const IO_RESET: c_int = 3;

/// `IOBAND_STATUS_BASE`: complete as the base did.
pub const STATUS_BASE: c_int = 0;
/// `IOBAND_STATUS_FAILED`.
pub const STATUS_FAILED: c_int = 1;
/// `IOBAND_STATUS_ABORTED`.
pub const STATUS_ABORTED: c_int = 2;

/// `-ENOMEM` from [`ShimApi::dispatch`]: no `spdk_bdev_io` for the base right now.
pub const DISPATCH_NOMEM: c_int = -12;

/// `struct ioband_lane` of `ioband_shim.h`: a lane's grant, written by Rust, and what
/// the shim counted since the last settle (see [`crate::replica`], lanes). Allocated by
/// Rust, used by the shim between `ioband_rs_thread_lane` and `ioband_rs_thread_lane_free`,
/// on the channel's thread only.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Lane {
    pub open: u32,
    pub sectors: u32,
    pub slot_limit: u64,
    pub cost_budget: u64,
    pub read_ios: u64,
    pub read_bytes: u64,
    pub write_ios: u64,
    pub write_bytes: u64,
    pub cost: u64,
    pub last_cost: u64,
    pub completed: u64,
    pub completed_cost: u64,
    pub completed_bytes: u64,
    pub latency_sum: u64,
    pub latency_min: u64,
    pub latency_min_drained: u64,
    pub first_tick: u64,
    pub last_tick: u64,
    pub at_base: u64,
    pub others: u64,
}

impl Lane {
    /// A closed lane with nothing counted: the minima and the first tick at their "none"
    /// (`u64::MAX`), everything else zero.
    pub fn cleared() -> Lane {
        Lane {
            latency_min: u64::MAX,
            latency_min_drained: u64::MAX,
            first_tick: u64::MAX,
            ..Lane::default()
        }
    }
}

/// `IOBAND_LANE_SIZE`: the C side asserts the same.
pub const LANE_SIZE: usize = 152;
const _: () = assert!(std::mem::size_of::<Lane>() == LANE_SIZE);

/// RPC method numbers (`IOBAND_RPC_*`).
pub mod method {
    use std::ffi::c_int;
    /// bdev_ioband_create
    pub const CREATE: c_int = 0;
    /// bdev_ioband_delete
    pub const DELETE: c_int = 1;
    /// bdev_ioband_get_devices
    pub const GET_DEVICES: c_int = 2;
    /// bdev_ioband_set_device
    pub const SET_DEVICE: c_int = 3;
    /// bdev_ioband_get_settings
    pub const GET_SETTINGS: c_int = 4;
    /// bdev_ioband_set_settings
    pub const SET_SETTINGS: c_int = 5;
    /// bdev_ioband_get_iostat
    pub const GET_IOSTAT: c_int = 6;
}

/// The shim's functions (`ioband_shim_*`), one for one. Only [`crate::shim`] calls them.
///
/// Every function is `unsafe` as its C counterpart is: pointers must be what the shim
/// handed over (live, not yet consumed), strings NUL-terminated or `len` bytes long, and
/// the caller must be on the owner thread.
pub trait ShimApi {
    /// The tick of the calling thread's current poll pass (`ioband_shim_pass_ticks`):
    /// SPDK's per-thread pass tick, no clock read of our own (see the shim).
    ///
    /// # Safety
    /// Owner thread.
    unsafe fn pass_ticks() -> u64;
    /// Whether a bdev of that name exists.
    ///
    /// # Safety
    /// `name` is NUL-terminated.
    unsafe fn bdev_exists(name: *const c_char) -> c_int;
    /// Opens, claims and registers; 0 with `*node_out` set, or a negative errno.
    ///
    /// # Safety
    /// Strings NUL-terminated, `node_out` writable.
    unsafe fn node_create(
        name: *const c_char,
        base: *const c_char,
        dev_id: u64,
        claim_key: u64,
        node_out: *mut *mut c_void,
    ) -> c_int;
    /// Unregisters the node's bdev; replies to `request` (may be null) when done.
    ///
    /// # Safety
    /// `node` live; `request` null or not yet replied to (the shim replies).
    unsafe fn node_unregister(node: *mut c_void, request: *mut c_void);
    /// Where the Rust area of an I/O ([`RS_IO_AREA`] bytes, 8-aligned) is, in bytes from
    /// the start of its `spdk_bdev_io` (the same for every I/O: read once, at init, so
    /// that the I/O path makes no call for it).
    ///
    /// # Safety
    /// None beyond the shim being initialised.
    unsafe fn io_area_offset() -> usize;
    /// Submits a dispatched I/O to its base once: 0, [`DISPATCH_NOMEM`] (nothing was
    /// submitted; park it and [`ShimApi::io_wait`]), or another negative errno.
    ///
    /// # Safety
    /// `bdev_io` is an ioband I/O not yet completed.
    unsafe fn dispatch(bdev_io: *mut c_void) -> c_int;
    /// Asks for `ioband_rs_io_wait_done` once a `spdk_bdev_io` may be free (io_wait on the
    /// I/O's base channel, with the I/O's own wait entry); 0 when armed, a negative errno
    /// when not (the owner poller retries then).
    ///
    /// # Safety
    /// `bdev_io` is a parked ioband I/O whose wait entry is not armed already.
    unsafe fn io_wait(bdev_io: *mut c_void) -> c_int;
    /// Completes an ioband I/O (on its own thread, by message if needed).
    ///
    /// # Safety
    /// `bdev_io` is an ioband I/O not yet completed; it is the bdev layer's again after.
    unsafe fn complete(bdev_io: *mut c_void, status: c_int);
    /// A JSON-RPC result (`json`: one JSON value).
    ///
    /// # Safety
    /// `request` not yet replied to; `json` is `len` bytes.
    unsafe fn rpc_result(request: *mut c_void, json: *const c_char, len: usize);
    /// A JSON-RPC error.
    ///
    /// # Safety
    /// `request` not yet replied to; `message` NUL-terminated.
    unsafe fn rpc_error(request: *mut c_void, code: c_int, message: *const c_char);
    /// Writes one raw JSON value.
    ///
    /// # Safety
    /// `w` is the writer lent to the current callback; `json` is `len` bytes.
    unsafe fn json_write_raw(w: *mut c_void, json: *const c_char, len: usize);
    /// Writes a name and one raw JSON value.
    ///
    /// # Safety
    /// As [`ShimApi::json_write_raw`]; `name` NUL-terminated.
    unsafe fn json_write_named_raw(
        w: *mut c_void,
        name: *const c_char,
        json: *const c_char,
        len: usize,
    );
    /// SPDK log: 0 error, 1 warning, 2 notice.
    ///
    /// # Safety
    /// `message` NUL-terminated.
    unsafe fn log(level: c_int, message: *const c_char);
    /// Sends `ioband_rs_msg(arg)` to `thread`: 0, or a negative errno (not sent: `arg`
    /// stays the caller's). Any thread.
    ///
    /// # Safety
    /// `thread` is a live thread handle (from `ioband_rs_thread_create`, or
    /// [`ShimApi::owner_thread`]); `arg` is what `ioband_rs_msg` expects.
    unsafe fn send_msg(thread: u64, arg: *mut c_void) -> c_int;
    /// The owner thread's handle. Any thread.
    ///
    /// # Safety
    /// Between module init and fini.
    unsafe fn owner_thread() -> u64;
    /// Gives a replica's I/O (not at the base, no ticket) to the owner.
    ///
    /// # Safety
    /// `bdev_io` is an ioband I/O a replica holds, not at the base, not yet completed;
    /// the owner's after this.
    unsafe fn to_owner(bdev_io: *mut c_void);
}

/// The implementation the crate is built with.
#[cfg(not(any(test, feature = "mock-shim")))]
pub type Active = CShim;
/// The implementation the crate is built with.
#[cfg(any(test, feature = "mock-shim"))]
pub type Active = crate::mock::MockShim;

/// The C shim (`ioband_shim.c`, compiled and linked by build.rs).
#[cfg(not(any(test, feature = "mock-shim")))]
#[derive(Debug)]
pub struct CShim;

#[cfg(not(any(test, feature = "mock-shim")))]
mod sys {
    use std::ffi::{c_char, c_int, c_void};

    extern "C" {
        pub fn ioband_shim_pass_ticks() -> u64;
        pub fn ioband_shim_bdev_exists(name: *const c_char) -> c_int;
        pub fn ioband_shim_node_create(
            name: *const c_char,
            base: *const c_char,
            dev_id: u64,
            claim_key: u64,
            node_out: *mut *mut c_void,
        ) -> c_int;
        pub fn ioband_shim_node_unregister(node: *mut c_void, request: *mut c_void);
        pub fn ioband_shim_io_area_offset() -> usize;
        pub fn ioband_shim_dispatch(bdev_io: *mut c_void) -> c_int;
        pub fn ioband_shim_io_wait(bdev_io: *mut c_void) -> c_int;
        pub fn ioband_shim_complete(bdev_io: *mut c_void, status: c_int);
        pub fn ioband_shim_rpc_result(request: *mut c_void, json: *const c_char, len: usize);
        pub fn ioband_shim_rpc_error(request: *mut c_void, code: c_int, message: *const c_char);
        pub fn ioband_shim_json_write_raw(w: *mut c_void, json: *const c_char, len: usize);
        pub fn ioband_shim_json_write_named_raw(
            w: *mut c_void,
            name: *const c_char,
            json: *const c_char,
            len: usize,
        );
        pub fn ioband_shim_log(level: c_int, message: *const c_char);
        pub fn ioband_shim_send_msg(thread: u64, arg: *mut c_void) -> c_int;
        pub fn ioband_shim_owner_thread() -> u64;
        pub fn ioband_shim_to_owner(bdev_io: *mut c_void);
    }
}

// SAFETY (of every call below): each forwards to the C function of the same name, whose
// contract the trait method's own `# Safety` states and its caller upholds.
#[cfg(not(any(test, feature = "mock-shim")))]
impl ShimApi for CShim {
    unsafe fn pass_ticks() -> u64 {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_pass_ticks() }
    }
    unsafe fn bdev_exists(name: *const c_char) -> c_int {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_bdev_exists(name) }
    }
    unsafe fn node_create(
        name: *const c_char,
        base: *const c_char,
        dev_id: u64,
        claim_key: u64,
        node_out: *mut *mut c_void,
    ) -> c_int {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_node_create(name, base, dev_id, claim_key, node_out) }
    }
    unsafe fn node_unregister(node: *mut c_void, request: *mut c_void) {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_node_unregister(node, request) }
    }
    unsafe fn io_area_offset() -> usize {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_io_area_offset() }
    }
    unsafe fn dispatch(bdev_io: *mut c_void) -> c_int {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_dispatch(bdev_io) }
    }
    unsafe fn io_wait(bdev_io: *mut c_void) -> c_int {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_io_wait(bdev_io) }
    }
    unsafe fn complete(bdev_io: *mut c_void, status: c_int) {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_complete(bdev_io, status) }
    }
    unsafe fn rpc_result(request: *mut c_void, json: *const c_char, len: usize) {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_rpc_result(request, json, len) }
    }
    unsafe fn rpc_error(request: *mut c_void, code: c_int, message: *const c_char) {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_rpc_error(request, code, message) }
    }
    unsafe fn json_write_raw(w: *mut c_void, json: *const c_char, len: usize) {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_json_write_raw(w, json, len) }
    }
    unsafe fn json_write_named_raw(
        w: *mut c_void,
        name: *const c_char,
        json: *const c_char,
        len: usize,
    ) {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_json_write_named_raw(w, name, json, len) }
    }
    unsafe fn log(level: c_int, message: *const c_char) {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_log(level, message) }
    }
    unsafe fn send_msg(thread: u64, arg: *mut c_void) -> c_int {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_send_msg(thread, arg) }
    }
    unsafe fn owner_thread() -> u64 {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_owner_thread() }
    }
    unsafe fn to_owner(bdev_io: *mut c_void) {
        // SAFETY: see the impl's comment.
        unsafe { sys::ioband_shim_to_owner(bdev_io) }
    }
}
