//! The functions the shim calls (`ioband_rs_*` in `src/shim/ioband_shim.h`): each catches
//! panics (none may cross into C) and turns raw pointers into the safe types of
//! [`crate::shim`].

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::shim::{self, JsonWriter, Request};
use crate::{io, replica, rpc, state};

/// Runs `f`, turning a panic into `on_panic` (and a log line).
fn guard<R>(what: &str, on_panic: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            // Logging allocates; if that panics too, give up quietly.
            let _ = catch_unwind(|| shim::log(0, &format!("internal error (panic) in {what}")));
            on_panic
        }
    }
}

/// Module init.
#[no_mangle]
pub extern "C" fn ioband_rs_init(ticks_per_sec: u64) -> c_int {
    guard("init", -12, || {
        io::forget_parked();
        shim::init_io_area();
        state::init(ticks_per_sec);
        replica::init(ticks_per_sec);
        0
    })
}

/// Module fini.
#[no_mangle]
pub extern "C" fn ioband_rs_fini() {
    guard("fini", (), || {
        io::forget_parked();
        state::fini();
    })
}

/// One RPC call.
///
/// # Safety
/// `request` is a JSON-RPC request not yet replied to; `params` is null or points at
/// `params_len` bytes of JSON text, valid for the call.
#[no_mangle]
pub unsafe extern "C" fn ioband_rs_rpc(
    method: c_int,
    request: *mut c_void,
    params: *const c_char,
    params_len: usize,
) {
    let Some(request) = Request::new(request) else {
        return;
    };
    let text = if params.is_null() {
        None
    } else {
        // SAFETY: the caller guarantees `params_len` readable bytes at `params`.
        let bytes = unsafe { std::slice::from_raw_parts(params.cast::<u8>(), params_len) };
        Some(String::from_utf8_lossy(bytes).into_owned())
    };
    // The method runs under the guard; the one reply is sent after it, whatever happened.
    let step = guard("rpc", None, || Some(rpc::dispatch(method, text.as_deref())));
    guard("rpc reply", (), move || match step {
        Some(step) => rpc::finish(request, step),
        None => shim::rpc_error(request, -32603, "internal error"),
    })
}

/// A bdev appeared.
///
/// # Safety
/// `bdev_name` is a NUL-terminated string valid for the call.
#[no_mangle]
pub unsafe extern "C" fn ioband_rs_examine(bdev_name: *const c_char) {
    if bdev_name.is_null() {
        return;
    }
    // SAFETY: the caller guarantees a NUL-terminated string valid for the call.
    let name = unsafe { CStr::from_ptr(bdev_name) }
        .to_string_lossy()
        .into_owned();
    guard("examine", (), || rpc::examine(&name))
}

/// save_config.
#[no_mangle]
pub extern "C" fn ioband_rs_config_json(w: *mut c_void) {
    if let Some(w) = JsonWriter::new(w) {
        guard("config_json", (), || rpc::config_json(w))
    }
}

/// bdev_get_bdevs.
#[no_mangle]
pub extern "C" fn ioband_rs_dump_info(dev_id: u64, w: *mut c_void) {
    if let Some(w) = JsonWriter::new(w) {
        guard("dump_info", (), || rpc::dump_info(dev_id, w))
    }
}

/// An I/O reached the owner thread.
#[no_mangle]
pub extern "C" fn ioband_rs_submit(
    dev_id: u64,
    bdev_io: *mut c_void,
    kind: c_int,
    bytes: u64,
    thread_id: u64,
) -> c_int {
    guard("submit", -5, || {
        io::submit(dev_id, bdev_io, kind, bytes, thread_id)
    })
}

/// The base completed a dispatched I/O.
#[no_mangle]
pub extern "C" fn ioband_rs_done(dev_id: u64, bdev_io: *mut c_void) {
    guard("done", (), || io::done(dev_id, bdev_io))
}

/// A bdev_io may be free again (the io_wait entry of the head of the parked queue fired,
/// or the shim's fallback message when io_wait could not be armed).
#[no_mangle]
pub extern "C" fn ioband_rs_io_wait_done() {
    guard("io_wait_done", (), io::io_wait_done)
}

/// A bdev is being destructed.
#[no_mangle]
pub extern "C" fn ioband_rs_node_destruct(dev_id: u64) {
    guard("node_destruct", (), || io::node_destruct(dev_id))
}

/// A node was freed.
#[no_mangle]
pub extern "C" fn ioband_rs_node_freed(dev_id: u64) {
    guard("node_freed", (), || io::node_freed(dev_id))
}

/// Owner poller.
#[no_mangle]
pub extern "C" fn ioband_rs_poll() -> c_int {
    guard("poll", 0, || c_int::from(io::poll()))
}

/// A thread gets its replica (null: none).
#[no_mangle]
pub extern "C" fn ioband_rs_thread_create(thread: u64) -> *mut c_void {
    guard("thread_create", std::ptr::null_mut(), || {
        replica::create(thread)
    })
}

/// The thread's last ioband channel is gone.
#[no_mangle]
pub extern "C" fn ioband_rs_thread_leave(rs: *mut c_void) {
    guard("thread_leave", (), || replica::leave(rs))
}

/// Whether the owner acknowledged the leave.
#[no_mangle]
pub extern "C" fn ioband_rs_thread_left(rs: *mut c_void) -> c_int {
    // On a panic: say yes, so that the thread is not held forever.
    guard("thread_left", 1, || c_int::from(replica::left(rs)))
}

/// Frees a replica.
#[no_mangle]
pub extern "C" fn ioband_rs_thread_destroy(rs: *mut c_void) {
    guard("thread_destroy", (), || replica::destroy(rs))
}

/// An I/O submitted on a replica's thread, at the thread's pass tick `now_ticks`.
#[no_mangle]
pub extern "C" fn ioband_rs_thread_submit(
    rs: *mut c_void,
    dev_id: u64,
    bdev_io: *mut c_void,
    kind: c_int,
    bytes: u64,
    thread_id: u64,
    now_ticks: u64,
) -> c_int {
    guard("thread_submit", -5, || {
        replica::submit(rs, dev_id, bdev_io, kind, bytes, thread_id, now_ticks)
    })
}

/// The base completed an I/O a replica dispatched (`now_ticks`: the pass tick).
#[no_mangle]
pub extern "C" fn ioband_rs_thread_done(rs: *mut c_void, bdev_io: *mut c_void, now_ticks: u64) {
    guard("thread_done", (), || replica::done(rs, bdev_io, now_ticks))
}

/// A replica's wait entry fired.
#[no_mangle]
pub extern "C" fn ioband_rs_thread_io_wait_done(rs: *mut c_void) {
    guard("thread_io_wait_done", (), || replica::io_wait_done(rs))
}

/// A replica's poller.
#[no_mangle]
pub extern "C" fn ioband_rs_thread_poll(rs: *mut c_void) -> c_int {
    guard("thread_poll", 0, || c_int::from(replica::poll(rs)))
}

/// A channel's lane (null: none).
#[no_mangle]
pub extern "C" fn ioband_rs_thread_lane(
    rs: *mut c_void,
    dev_id: u64,
    thread_id: u64,
) -> *mut crate::ffi::Lane {
    guard("thread_lane", std::ptr::null_mut(), || {
        replica::lane_new(rs, dev_id, thread_id)
    })
}

/// A channel's lane goes (settled first).
#[no_mangle]
pub extern "C" fn ioband_rs_thread_lane_free(rs: *mut c_void, lane: *mut crate::ffi::Lane) {
    guard("thread_lane_free", (), || replica::lane_free(rs, lane))
}

/// A lane's I/O completed while the lane was closed: settle now.
#[no_mangle]
pub extern "C" fn ioband_rs_thread_lane_settle(rs: *mut c_void) {
    guard("thread_lane_settle", (), || replica::lane_settle(rs))
}

/// A message between the owner and a replica arrived.
#[no_mangle]
pub extern "C" fn ioband_rs_msg(arg: *mut c_void) {
    guard("msg", (), || replica::on_msg(arg))
}
