//! Safe wrappers over [`crate::ffi::ShimApi`]: the only place that calls the shim (the C
//! shim in a real build, the mock in tests).
//!
//! Every wrapper runs on the owner thread (the SPDK app thread); the types here are not
//! `Send`, which keeps them there.

use std::ffi::{c_int, c_void, CString};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::ffi::{Active as Shim, ShimApi};

/// An ioband `spdk_bdev_io` the engine holds: owned by the bdev layer, lent to us from
/// `submit_request` until we complete it (exactly once, through [`complete`]).
#[derive(Debug)]
pub struct IoHandle(NonNull<c_void>);

impl IoHandle {
    /// Wraps a bdev_io the shim handed over; `None` for null.
    pub fn new(ptr: *mut c_void) -> Option<IoHandle> {
        NonNull::new(ptr).map(IoHandle)
    }

    /// The raw pointer.
    pub fn as_ptr(&self) -> *mut c_void {
        self.0.as_ptr()
    }
}

/// An ioband bdev node (struct ioband_node in the shim), owned by the shim: created by
/// [`node_create`], freed by the shim after the bdev layer destructs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePtr(NonNull<c_void>);

/// A JSON-RPC request awaiting its one reply.
#[derive(Debug)]
pub struct Request(NonNull<c_void>);

impl Request {
    /// Wraps the shim's request pointer; `None` for null.
    pub fn new(ptr: *mut c_void) -> Option<Request> {
        NonNull::new(ptr).map(Request)
    }
}

/// A JSON writer the shim lends for the duration of one callback.
#[derive(Debug, Clone, Copy)]
pub struct JsonWriter(NonNull<c_void>);

impl JsonWriter {
    /// Wraps the shim's writer pointer; `None` for null.
    pub fn new(ptr: *mut c_void) -> Option<JsonWriter> {
        NonNull::new(ptr).map(JsonWriter)
    }

    /// Writes one complete JSON value (as an array element).
    pub fn raw(&self, json: &str) {
        // SAFETY: the writer is live for the callback we are in (the shim lent it); the
        // pointer and length describe `json`, valid for the call.
        unsafe { Shim::json_write_raw(self.0.as_ptr(), json.as_ptr().cast(), json.len()) }
    }

    /// Writes `"name": <json>` (inside an object).
    pub fn named_raw(&self, name: &str, json: &str) {
        let name = c_string(name);
        // SAFETY: as in `raw`; `name` is NUL-terminated and outlives the call.
        unsafe {
            Shim::json_write_named_raw(
                self.0.as_ptr(),
                name.as_ptr(),
                json.as_ptr().cast(),
                json.len(),
            )
        }
    }
}

/// A C string of `s`, interior NULs replaced (names and messages are ours or validated).
pub fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

/// The tick of this thread's current poll pass: SPDK reads the clock once at the start of
/// each pass of a thread (and after each poller); this returns that reading and reads no
/// clock itself (interrupt mode aside: see `ioband_shim_pass_ticks`). The I/O path calls
/// it at most once per call from the shim (one submit, one completion, one poller pass).
pub fn pass_ticks() -> u64 {
    // SAFETY: no arguments; owner thread (every entry point runs there).
    unsafe { Shim::pass_ticks() }
}

/// Whether a bdev of that name exists.
pub fn bdev_exists(name: &str) -> bool {
    let name = c_string(name);
    // SAFETY: `name` is NUL-terminated and outlives the call; owner thread.
    unsafe { Shim::bdev_exists(name.as_ptr()) != 0 }
}

/// Opens and claims `base` and registers ioband bdev `name`; a negative errno on failure
/// (-ENODEV: the base does not exist yet).
///
/// May call back into the module (examine of the new bdev): call it with no state borrowed.
pub fn node_create(name: &str, base: &str, dev_id: u64, claim_key: u64) -> Result<NodePtr, i32> {
    let (name, base) = (c_string(name), c_string(base));
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: both strings are NUL-terminated and outlive the call; `out` is a valid place
    // for the node pointer; owner thread (RPC handlers and examine run there).
    let rc =
        unsafe { Shim::node_create(name.as_ptr(), base.as_ptr(), dev_id, claim_key, &mut out) };
    match (rc, NonNull::new(out)) {
        (0, Some(node)) => Ok(NodePtr(node)),
        (0, None) => Err(-libc_enomem()),
        (rc, _) => Err(rc),
    }
}

fn libc_enomem() -> i32 {
    12
}

/// Unregisters a node's bdev; the shim replies to `request` when it is gone.
pub fn node_unregister(node: NodePtr, request: Option<Request>) {
    let req = request.map_or(std::ptr::null_mut(), |r| r.0.as_ptr());
    // SAFETY: `node` is live (the shim frees it only after destruct, which forgets it here
    // first); `req` is null or a request that has not been replied to, whose reply now
    // belongs to the shim.
    unsafe { Shim::node_unregister(node.0.as_ptr(), req) }
}

/// Submits a dispatched I/O to its base once: 0, [`crate::ffi::DISPATCH_NOMEM`] (not
/// submitted: no bdev_io now) or another negative errno.
pub fn dispatch(io: &IoHandle) -> c_int {
    // SAFETY: `io` is an ioband bdev_io we own (not completed); the shim finds its node in
    // the I/O's context; owner thread.
    unsafe { Shim::dispatch(io.as_ptr()) }
}

/// Arms io_wait with a parked I/O's wait entry: `ioband_rs_io_wait_done` follows once a
/// bdev_io may be free. Whether it was armed (if not, the owner poller retries).
pub fn io_wait(io: &IoHandle) -> bool {
    // SAFETY: `io` is an ioband bdev_io we own and hold parked; its wait entry is not armed
    // (io.rs arms only the head of the parked queue, once per io_wait_done).
    unsafe { Shim::io_wait(io.as_ptr()) == 0 }
}

/// Completes an ioband I/O; consumes the handle (exactly once).
pub fn complete(io: IoHandle, status: c_int) {
    // SAFETY: `io` is an ioband bdev_io we own and have not completed; ownership goes back
    // to the bdev layer here, and the handle is consumed.
    unsafe { Shim::complete(io.as_ptr(), status) }
}

/// Offset of the Rust area in an I/O (see [`init_io_area`]).
static IO_AREA_OFFSET: AtomicUsize = AtomicUsize::new(0);

/// Learns where the Rust area of an I/O is (module init, before any I/O).
pub fn init_io_area() {
    // SAFETY: no arguments; the shim is initialised (it calls our init).
    let offset = unsafe { Shim::io_area_offset() };
    IO_AREA_OFFSET.store(offset, Ordering::Relaxed);
}

/// The Rust area of an I/O's driver_ctx (pointer arithmetic only: dereferencing it is
/// the caller's business).
#[inline]
pub fn io_area(io: &IoHandle) -> *mut c_void {
    io.as_ptr()
        .cast::<u8>()
        .wrapping_add(IO_AREA_OFFSET.load(Ordering::Relaxed))
        .cast()
}

/// Sends a JSON-RPC result.
pub fn rpc_result(request: Request, json: &str) {
    // SAFETY: `request` has not been replied to (consumed here); `json` is valid for the call.
    unsafe { Shim::rpc_result(request.0.as_ptr(), json.as_ptr().cast(), json.len()) }
}

/// Sends a JSON-RPC error.
pub fn rpc_error(request: Request, code: i32, message: &str) {
    let message = c_string(message);
    // SAFETY: `request` has not been replied to (consumed here); `message` is NUL-terminated.
    unsafe { Shim::rpc_error(request.0.as_ptr(), code, message.as_ptr()) }
}

/// Logs through SPDK's log (0 error, 1 warning, 2 notice).
pub fn log(level: c_int, message: &str) {
    let message = c_string(&format!("ioband: {message}"));
    // SAFETY: `message` is NUL-terminated and outlives the call.
    unsafe { Shim::log(level, message.as_ptr()) }
}

/// Sends a message to `thread` (its `ioband_rs_msg` gets it there); `false`: not sent
/// (no message buffer), and the envelope is dropped.
pub fn send_msg(thread: u64, env: Box<crate::replica::Envelope>) -> bool {
    let p = Box::into_raw(env);
    // SAFETY: thread handles come from the shim (thread create, owner_thread) and are used
    // only while their replica is registered with the owner (see crate::replica); the
    // argument is a boxed envelope, which `ioband_rs_msg` takes back.
    if unsafe { Shim::send_msg(thread, p.cast()) } == 0 {
        return true;
    }
    // SAFETY: not sent, so still ours: from Box::into_raw just above.
    drop(unsafe { Box::from_raw(p) });
    false
}

/// The owner thread's handle.
pub fn owner_thread() -> u64 {
    // SAFETY: called between module init and fini (from the module's own callbacks).
    unsafe { Shim::owner_thread() }
}

/// Gives a replica's I/O (not at the base, its ticket returned) to the owner.
pub fn to_owner(io: IoHandle) {
    // SAFETY: the handle is a live ioband I/O the caller (a replica) holds and no longer
    // tracks; it becomes the owner's.
    unsafe { Shim::to_owner(io.as_ptr()) }
}
