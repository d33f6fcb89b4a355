//! The C shim's API (`src/shim/ioband_shim.h`), declared by hand: our own functions, no
//! SPDK type crosses (SPDK objects are opaque `*mut c_void`).
//!
//! Every function here must be called on the owner thread (the SPDK app thread).

use std::ffi::{c_char, c_int, c_void};

/// Bytes of the Rust area in each I/O's driver_ctx (`IOBAND_RS_IO_AREA`).
pub const RS_IO_AREA: usize = 48;

/// `IOBAND_IO_READ`.
pub const IO_READ: c_int = 0;
/// `IOBAND_IO_WRITE`.
pub const IO_WRITE: c_int = 1;
/// `IOBAND_IO_RESET`.
pub const IO_RESET: c_int = 3;

/// `IOBAND_STATUS_BASE`: complete as the base did.
pub const STATUS_BASE: c_int = 0;
/// `IOBAND_STATUS_FAILED`.
pub const STATUS_FAILED: c_int = 1;
/// `IOBAND_STATUS_ABORTED`.
pub const STATUS_ABORTED: c_int = 2;

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

extern "C" {
    /// `spdk_get_ticks()`.
    pub fn ioband_shim_ticks() -> u64;
    /// Whether a bdev of that name exists.
    pub fn ioband_shim_bdev_exists(name: *const c_char) -> c_int;
    /// Opens, claims and registers; 0 with `*node_out` set, or a negative errno.
    pub fn ioband_shim_node_create(
        name: *const c_char,
        base: *const c_char,
        dev_id: u64,
        claim_key: u64,
        node_out: *mut *mut c_void,
    ) -> c_int;
    /// Unregisters the node's bdev; replies to `request` (may be null) when done.
    pub fn ioband_shim_node_unregister(node: *mut c_void, request: *mut c_void);
    /// The Rust area of an I/O ([`RS_IO_AREA`] bytes, 8-aligned).
    pub fn ioband_shim_io_area(bdev_io: *mut c_void) -> *mut c_void;
    /// Submits a dispatched I/O to the base; 0 or a negative errno.
    pub fn ioband_shim_dispatch(node: *mut c_void, bdev_io: *mut c_void) -> c_int;
    /// Completes an ioband I/O (on its own thread, by message if needed).
    pub fn ioband_shim_complete(bdev_io: *mut c_void, status: c_int);
    /// A JSON-RPC result (`json`: one JSON value).
    pub fn ioband_shim_rpc_result(request: *mut c_void, json: *const c_char, len: usize);
    /// A JSON-RPC error.
    pub fn ioband_shim_rpc_error(request: *mut c_void, code: c_int, message: *const c_char);
    /// Writes one raw JSON value.
    pub fn ioband_shim_json_write_raw(w: *mut c_void, json: *const c_char, len: usize);
    /// Writes a name and one raw JSON value.
    pub fn ioband_shim_json_write_named_raw(
        w: *mut c_void,
        name: *const c_char,
        json: *const c_char,
        len: usize,
    );
    /// SPDK log: 0 error, 1 warning, 2 notice.
    pub fn ioband_shim_log(level: c_int, message: *const c_char);
}
