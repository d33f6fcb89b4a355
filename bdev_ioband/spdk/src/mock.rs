//! A model of the C shim (`ioband_shim.c`) for the unit tests: [`MockShim`] implements
//! the shim's API ([`ShimApi`]) in Rust, with no SPDK, and [`Harness`] plays SPDK and the
//! shim's other half (the submit path, base completions, unregister and destruct, io_wait,
//! hot-remove, examine) by calling the `ioband_rs_*` entry points as the shim does.
//!
//! It follows the shim's own rules: a node counts the I/O that reached the owner and are
//! not completed (`outstanding`), its destruct waits for them, unregister and node free
//! run as later messages (as `spdk_bdev_unregister` and `spdk_io_device_unregister` do),
//! registering a bdev examines it at once. Every call Rust makes into the shim is recorded
//! ([`Call`]), so tests assert what was dispatched, completed, armed and replied, and in
//! which order. It checks the shim's preconditions too: an I/O completed twice, a wait
//! entry armed twice, or an I/O dispatched while its wait entry is armed panics.
//!
//! The state is thread-local; the Rust layer's state is one global, so a [`Harness`]
//! holds a process-wide lock for the length of a test.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::entry;
use crate::ffi::{
    method, Lane, ShimApi, DISPATCH_NOMEM, IO_READ, IO_WRITE, RS_IO_AREA, STATUS_BASE,
    STATUS_FAILED,
};

/// Ticks per second the harness initialises the module with.
pub const TICKS_PER_SEC: u64 = 1_000_000_000;

/// Index of an I/O made by [`Harness::submit`].
pub type IoId = usize;

/// One call from Rust into the shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `ioband_shim_pass_ticks`.
    PassTicks,
    /// `ioband_shim_bdev_exists`.
    BdevExists(String),
    /// `ioband_shim_node_create`.
    NodeCreate {
        /// ioband bdev name.
        name: String,
        /// Base bdev name.
        base: String,
        /// Rust's device id.
        dev_id: u64,
        /// Shared claim key.
        claim_key: u64,
    },
    /// `ioband_shim_node_unregister` of the node named so, with or without a request.
    NodeUnregister(String, bool),
    /// `ioband_shim_dispatch`.
    Dispatch(IoId),
    /// The shim's lane took the I/O straight to the base (no Rust on its path).
    LaneDispatch(IoId),
    /// `ioband_shim_io_wait`.
    IoWait(IoId),
    /// `ioband_shim_complete` with its status.
    Complete(IoId, c_int),
    /// A JSON-RPC reply (result or error).
    Reply,
    /// `ioband_shim_log`.
    Log(c_int, String),
}

/// A JSON-RPC reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A result.
    Ok(Value),
    /// An error: code and message.
    Err(i32, String),
}

impl Reply {
    /// The result; panics on an error.
    pub fn ok(self) -> Value {
        match self {
            Reply::Ok(v) => v,
            Reply::Err(code, msg) => panic!("RPC error {code}: {msg}"),
        }
    }

    /// The error code and message; panics on a result.
    pub fn err(self) -> (i32, String) {
        match self {
            Reply::Ok(v) => panic!("RPC result {v}, expected an error"),
            Reply::Err(code, msg) => (code, msg),
        }
    }
}

/// A bdev node of the model (struct ioband_node).
#[derive(Debug, Default)]
pub struct MockNode {
    /// ioband bdev name.
    pub name: String,
    /// Base bdev name.
    pub base: String,
    /// Rust's device id.
    pub dev_id: u64,
    /// Registered (not destructed yet).
    pub registered: bool,
    /// I/O that reached the owner and are not completed.
    pub outstanding: u64,
    /// Destruct waits for `outstanding` to reach 0.
    pub destruct_pending: bool,
    /// Unregister under way.
    pub unregistering: bool,
    /// The delete request to reply to once destructed.
    pub unregister_request: Option<usize>,
    /// Freed (ioband_rs_node_freed was called).
    pub freed: bool,
}

/// The Rust area of an I/O of the model (its `spdk_bdev_io` pointer points here).
#[repr(C, align(8))]
struct IoArea([u64; RS_IO_AREA / 8]);

/// An ioband `spdk_bdev_io` of the model.
#[derive(Debug)]
pub struct MockIo {
    /// Its index.
    pub id: IoId,
    /// Its node's index.
    pub node: usize,
    /// `IOBAND_IO_*`.
    pub kind: c_int,
    /// Bytes.
    pub bytes: u64,
    /// Submitting SPDK thread's id.
    pub thread_id: u64,
    /// Every status it was completed with (exactly one, once done).
    pub completions: Vec<c_int>,
    /// The replica that took it (its pointer), when a replica scheduled it.
    pub rs: Option<usize>,
    /// Dispatched by a lane: the lane, its dispatch tick and cost.
    pub lane: Option<(usize, u64, u64)>,
}

/// A channel of the model with its lane (struct ioband_channel's lane).
#[derive(Debug, Clone, Copy)]
pub struct MockChannel {
    /// The replica of its thread.
    pub rs: usize,
    /// Its device.
    pub dev_id: u64,
    /// Its thread's id.
    pub thread_id: u64,
    /// The lane Rust gave it.
    pub lane: usize,
}

#[derive(Debug)]
enum Msg {
    Unregister(usize),
    FinishDestruct(usize),
    Free(usize),
    /// `ioband_rs_msg(arg)` on thread `.0`.
    Rs(u64, usize),
    /// `to_owner` of an I/O a replica gave up.
    ToOwner(IoId),
}

/// The owner thread's handle in the model.
pub const OWNER_THREAD: u64 = 1;

/// The model's state.
#[derive(Debug, Default)]
pub struct Mock {
    /// Calls from Rust, in order.
    pub calls: Vec<Call>,
    /// The pass tick `ioband_shim_pass_ticks` returns.
    pub pass_ticks: u64,
    /// Bdevs that exist (bases and registered ioband bdevs).
    pub bdevs: BTreeSet<String>,
    /// Bases another module has claimed (a claim by ioband fails with -EPERM).
    pub claimed: BTreeSet<String>,
    /// Results of the next dispatches (0 once empty).
    pub dispatch_rc: VecDeque<c_int>,
    /// Results of the next io_wait arms (0 once empty).
    pub io_wait_rc: VecDeque<c_int>,
    /// I/O at the base (dispatched, not done), in dispatch order.
    pub at_base: Vec<IoId>,
    /// The I/O whose wait entry is armed.
    pub armed: Option<IoId>,
    /// Nodes made, in order (freed ones too).
    pub nodes: Vec<MockNode>,
    /// Their opaque pointers (a boxed index each).
    node_ptrs: Vec<*mut usize>,
    /// I/O made, in order.
    pub ios: Vec<MockIo>,
    /// Their Rust areas, which are their pointers.
    areas: Vec<*mut IoArea>,
    requests: Vec<*mut usize>,
    replies: BTreeMap<usize, Reply>,
    msgs: VecDeque<Msg>,
    /// How many of the next `send_msg` fail (0 once used up).
    pub msg_fail: usize,
    /// Channels with a lane.
    pub channels: Vec<MockChannel>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        for p in self.node_ptrs.drain(..) {
            // SAFETY: from Box::into_raw in node_create, freed once here.
            drop(unsafe { Box::from_raw(p) });
        }
        for p in self.areas.drain(..) {
            // SAFETY: from Box::into_raw in Harness::submit, freed once here.
            drop(unsafe { Box::from_raw(p) });
        }
        for p in self.requests.drain(..) {
            // SAFETY: from Box::into_raw in Harness::rpc, freed once here.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

thread_local! {
    static MOCK: RefCell<Mock> = RefCell::new(Mock::default());
}

fn with_mock<R>(f: impl FnOnce(&mut Mock) -> R) -> R {
    MOCK.with(|m| f(&mut m.borrow_mut()))
}

fn text(p: *const c_char) -> String {
    // SAFETY: the shim's contract: NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn bytes_text(p: *const c_char, len: usize) -> String {
    // SAFETY: the shim's contract: `len` readable bytes.
    let b = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    String::from_utf8_lossy(b).into_owned()
}

impl Mock {
    fn io_id(&self, p: *mut c_void) -> IoId {
        self.areas
            .iter()
            .position(|&a| a.cast::<c_void>() == p)
            .unwrap_or_else(|| panic!("not an I/O of the model: {p:?}"))
    }

    fn node_index(&self, p: *mut c_void) -> usize {
        self.node_ptrs
            .iter()
            .position(|&n| n.cast::<c_void>() == p)
            .unwrap_or_else(|| panic!("not a node of the model: {p:?}"))
    }

    fn reply(&mut self, request: *mut c_void, r: Reply) {
        let p = request.cast::<usize>();
        assert!(self.requests.contains(&p), "not a request of the model");
        // SAFETY: one of our live request allocations.
        let id = unsafe { *p };
        assert!(
            self.replies.insert(id, r).is_none(),
            "request {id} replied to twice"
        );
        self.calls.push(Call::Reply);
    }
}

/// The shim's API over the model.
#[derive(Debug)]
pub struct MockShim;

impl ShimApi for MockShim {
    unsafe fn pass_ticks() -> u64 {
        with_mock(|m| {
            m.calls.push(Call::PassTicks);
            m.pass_ticks
        })
    }

    unsafe fn bdev_exists(name: *const c_char) -> c_int {
        let name = text(name);
        with_mock(|m| {
            let e = m.bdevs.contains(&name);
            m.calls.push(Call::BdevExists(name));
            c_int::from(e)
        })
    }

    unsafe fn node_create(
        name: *const c_char,
        base: *const c_char,
        dev_id: u64,
        claim_key: u64,
        node_out: *mut *mut c_void,
    ) -> c_int {
        let (name, base) = (text(name), text(base));
        let rc = with_mock(|m| {
            m.calls.push(Call::NodeCreate {
                name: name.clone(),
                base: base.clone(),
                dev_id,
                claim_key,
            });
            if m.bdevs.contains(&name) {
                return -17;
            }
            if !m.bdevs.contains(&base) {
                return -19;
            }
            if m.claimed.contains(&base) {
                return -1;
            }
            let node = Box::into_raw(Box::new(m.nodes.len()));
            m.nodes.push(MockNode {
                name: name.clone(),
                base: base.clone(),
                dev_id,
                registered: true,
                ..MockNode::default()
            });
            m.node_ptrs.push(node);
            m.bdevs.insert(name.clone());
            // SAFETY: the caller passes a writable place.
            unsafe { *node_out = node.cast() };
            0
        });
        if rc == 0 {
            // spdk_bdev_register examines the new bdev at once (examine_config).
            let c = std::ffi::CString::new(name).expect("no NUL in names");
            // SAFETY: NUL-terminated, valid for the call.
            unsafe { entry::ioband_rs_examine(c.as_ptr()) };
        }
        rc
    }

    unsafe fn node_unregister(node: *mut c_void, request: *mut c_void) {
        with_mock(|m| {
            let i = m.node_index(node);
            let name = m.nodes[i].name.clone();
            m.calls.push(Call::NodeUnregister(name, !request.is_null()));
            if m.nodes[i].unregistering {
                // Already on its way out (hot-remove): the shim replies at once.
                if !request.is_null() {
                    m.reply(request, Reply::Ok(Value::Bool(true)));
                }
                return;
            }
            let n = &mut m.nodes[i];
            n.unregistering = true;
            // SAFETY: a live request allocation of ours (checked in `reply` later).
            n.unregister_request = (!request.is_null()).then(|| unsafe { *request.cast() });
            m.msgs.push_back(Msg::Unregister(i));
        })
    }

    unsafe fn io_area_offset() -> usize {
        // The mock's I/O handle is its area.
        0
    }

    unsafe fn dispatch(bdev_io: *mut c_void) -> c_int {
        with_mock(|m| {
            let id = m.io_id(bdev_io);
            assert_ne!(
                m.armed,
                Some(id),
                "I/O {id} dispatched while its io_wait entry is armed"
            );
            assert!(
                m.ios[id].completions.is_empty(),
                "I/O {id} dispatched after completion"
            );
            assert!(!m.at_base.contains(&id), "I/O {id} dispatched twice");
            m.calls.push(Call::Dispatch(id));
            let rc = m.dispatch_rc.pop_front().unwrap_or(0);
            if rc == 0 {
                m.at_base.push(id);
            }
            rc
        })
    }

    unsafe fn io_wait(bdev_io: *mut c_void) -> c_int {
        with_mock(|m| {
            let id = m.io_id(bdev_io);
            m.calls.push(Call::IoWait(id));
            assert!(m.armed.is_none(), "io_wait armed twice");
            let rc = m.io_wait_rc.pop_front().unwrap_or(0);
            if rc == 0 {
                m.armed = Some(id);
            }
            rc
        })
    }

    unsafe fn complete(bdev_io: *mut c_void, status: c_int) {
        with_mock(|m| {
            let id = m.io_id(bdev_io);
            let io = &mut m.ios[id];
            let node = io.node;
            assert!(
                io.completions.is_empty(),
                "I/O {id} completed twice ({:?} then {status})",
                io.completions
            );
            io.completions.push(status);
            assert!(
                !m.at_base.contains(&id),
                "I/O {id} completed while at the base"
            );
            m.calls.push(Call::Complete(id, status));
            if io.rs.is_some() {
                // A replica's I/O: the node does not count it (as the shim).
                return;
            }
            // node_io_done
            let n = &mut m.nodes[node];
            assert!(n.outstanding > 0, "node {} outstanding underflow", n.name);
            n.outstanding -= 1;
            if n.outstanding == 0 && n.destruct_pending {
                n.destruct_pending = false;
                m.msgs.push_back(Msg::FinishDestruct(node));
            }
        })
    }

    unsafe fn rpc_result(request: *mut c_void, json: *const c_char, len: usize) {
        let v: Value = serde_json::from_str(&bytes_text(json, len)).expect("one JSON value");
        with_mock(|m| m.reply(request, Reply::Ok(v)))
    }

    unsafe fn rpc_error(request: *mut c_void, code: c_int, message: *const c_char) {
        let msg = text(message);
        with_mock(|m| m.reply(request, Reply::Err(code, msg)))
    }

    unsafe fn json_write_raw(w: *mut c_void, json: *const c_char, len: usize) {
        let v: Value = serde_json::from_str(&bytes_text(json, len)).expect("one JSON value");
        // SAFETY: the writer is a Vec<(Option<String>, Value)> lent by the harness.
        unsafe { (*w.cast::<Vec<(Option<String>, Value)>>()).push((None, v)) }
    }

    unsafe fn json_write_named_raw(
        w: *mut c_void,
        name: *const c_char,
        json: *const c_char,
        len: usize,
    ) {
        let v: Value = serde_json::from_str(&bytes_text(json, len)).expect("one JSON value");
        let name = text(name);
        // SAFETY: as in json_write_raw.
        unsafe { (*w.cast::<Vec<(Option<String>, Value)>>()).push((Some(name), v)) }
    }

    unsafe fn log(level: c_int, message: *const c_char) {
        let msg = text(message);
        with_mock(|m| m.calls.push(Call::Log(level, msg)))
    }

    unsafe fn send_msg(thread: u64, arg: *mut c_void) -> c_int {
        with_mock(|m| {
            if m.msg_fail > 0 {
                m.msg_fail -= 1;
                return -12;
            }
            m.msgs.push_back(Msg::Rs(thread, arg as usize));
            0
        })
    }

    unsafe fn owner_thread() -> u64 {
        OWNER_THREAD
    }

    unsafe fn to_owner(bdev_io: *mut c_void) {
        with_mock(|m| {
            let id = m.io_id(bdev_io);
            m.msgs.push_back(Msg::ToOwner(id));
        })
    }
}

static LOCK: Mutex<()> = Mutex::new(());

/// One test's SPDK: the module initialised over a fresh model; fini on drop.
#[derive(Debug)]
pub struct Harness {
    _lock: MutexGuard<'static, ()>,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        entry::ioband_rs_fini();
        MOCK.with(|m| *m.borrow_mut() = Mock::default());
    }
}

fn method_number(name: &str) -> c_int {
    match name {
        "bdev_ioband_create" => method::CREATE,
        "bdev_ioband_delete" => method::DELETE,
        "bdev_ioband_get_devices" => method::GET_DEVICES,
        "bdev_ioband_set_device" => method::SET_DEVICE,
        "bdev_ioband_get_settings" => method::GET_SETTINGS,
        "bdev_ioband_set_settings" => method::SET_SETTINGS,
        "bdev_ioband_get_iostat" => method::GET_IOSTAT,
        _ => 99,
    }
}

impl Harness {
    /// Module init over a fresh model (no bdevs).
    pub fn new() -> Harness {
        let lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        MOCK.with(|m| *m.borrow_mut() = Mock::default());
        assert_eq!(entry::ioband_rs_init(TICKS_PER_SEC), 0);
        Harness { _lock: lock }
    }

    /// Runs `f` on the model.
    pub fn mock<R>(&self, f: impl FnOnce(&mut Mock) -> R) -> R {
        with_mock(f)
    }

    /// The calls recorded so far.
    pub fn calls(&self) -> Vec<Call> {
        with_mock(|m| m.calls.clone())
    }

    /// How many calls are recorded (a mark for [`Harness::calls_since`]).
    pub fn mark(&self) -> usize {
        with_mock(|m| m.calls.len())
    }

    /// The calls since `mark`, pass-tick reads left out.
    pub fn calls_since(&self, mark: usize) -> Vec<Call> {
        with_mock(|m| {
            m.calls[mark..]
                .iter()
                .filter(|c| **c != Call::PassTicks)
                .cloned()
                .collect()
        })
    }

    /// Pass-tick reads since `mark`.
    pub fn pass_tick_reads_since(&self, mark: usize) -> usize {
        with_mock(|m| {
            m.calls[mark..]
                .iter()
                .filter(|c| **c == Call::PassTicks)
                .count()
        })
    }

    /// Sets the pass tick (a new pass of the owner thread).
    pub fn set_ticks(&self, t: u64) {
        with_mock(|m| m.pass_ticks = t);
    }

    /// A bdev appears (a base): it exists, and the module examines it.
    pub fn add_base(&self, name: &str) {
        with_mock(|m| m.bdevs.insert(name.to_owned()));
        let c = std::ffi::CString::new(name).expect("no NUL");
        // SAFETY: NUL-terminated, valid for the call.
        unsafe { entry::ioband_rs_examine(c.as_ptr()) };
    }

    /// A base is hot-removed: every ioband bdev over it is unregistered (base_event_cb);
    /// the unregister runs with the next [`Harness::run_msgs`].
    pub fn hot_remove(&self, base: &str) {
        with_mock(|m| {
            m.bdevs.remove(base);
            for (i, n) in m.nodes.iter_mut().enumerate() {
                if n.base == base && n.registered && !n.unregistering {
                    n.unregistering = true;
                    m.msgs.push_back(Msg::Unregister(i));
                }
            }
        });
    }

    /// Runs the owner thread's pending messages (unregister, destruct done, node free).
    pub fn run_msgs(&self) {
        while let Some(msg) = with_mock(|m| m.msgs.pop_front()) {
            match msg {
                Msg::Unregister(i) => {
                    // spdk_bdev_unregister -> ioband_destruct
                    let dev_id = with_mock(|m| {
                        let n = &mut m.nodes[i];
                        n.registered = false;
                        let name = n.name.clone();
                        m.bdevs.remove(&name);
                        n.dev_id
                    });
                    entry::ioband_rs_node_destruct(dev_id);
                    with_mock(|m| {
                        let n = &mut m.nodes[i];
                        if n.outstanding > 0 {
                            n.destruct_pending = true;
                        } else {
                            m.msgs.push_back(Msg::FinishDestruct(i));
                        }
                    });
                }
                Msg::FinishDestruct(i) => with_mock(|m| {
                    // The bdev layer's unregister callback, then the io_device's free.
                    if let Some(req) = m.nodes[i].unregister_request.take() {
                        m.replies.insert(req, Reply::Ok(Value::Bool(true)));
                    }
                    m.msgs.push_back(Msg::Free(i));
                }),
                Msg::Free(i) => {
                    let dev_id = with_mock(|m| {
                        let n = &mut m.nodes[i];
                        n.freed = true;
                        n.dev_id
                    });
                    entry::ioband_rs_node_freed(dev_id);
                }
                Msg::Rs(_thread, arg) => entry::ioband_rs_msg(arg as *mut c_void),
                Msg::ToOwner(id) => {
                    with_mock(|m| m.ios[id].rs = None);
                    owner_submit(id);
                }
            }
        }
    }

    fn new_request(&self) -> (*mut usize, usize) {
        with_mock(|m| {
            let id = m.requests.len() + 1;
            let p = Box::into_raw(Box::new(id));
            m.requests.push(p);
            (p, id)
        })
    }

    /// Starts one JSON-RPC call; its request id, for [`Harness::reply`].
    pub fn call(&self, name: &str, params: Option<Value>) -> usize {
        let (req, id) = self.new_request();
        let text = params.map(|p| p.to_string());
        let (ptr, len) = text
            .as_deref()
            .map_or((ptr::null(), 0), |t| (t.as_ptr().cast::<c_char>(), t.len()));
        // SAFETY: a fresh request; `ptr` is null or `len` bytes of `text`, alive here.
        unsafe { entry::ioband_rs_rpc(method_number(name), req.cast(), ptr, len) };
        id
    }

    /// The reply to request `id`, if it has come (taken).
    pub fn reply(&self, id: usize) -> Option<Reply> {
        with_mock(|m| m.replies.remove(&id))
    }

    /// One JSON-RPC call with raw params text (for malformed JSON).
    pub fn rpc_text(&self, name: &str, params: &str) -> Reply {
        let (req, id) = self.new_request();
        // SAFETY: a fresh request; `params` is alive for the call.
        unsafe {
            entry::ioband_rs_rpc(
                method_number(name),
                req.cast(),
                params.as_ptr().cast(),
                params.len(),
            )
        };
        with_mock(|m| m.replies.remove(&id)).expect("a reply")
    }

    /// One JSON-RPC call that must be replied to, now or once the owner thread's messages
    /// have run (a delete's unregister).
    pub fn rpc(&self, name: &str, params: Value) -> Reply {
        let params = (!params.is_null()).then_some(params);
        let id = self.call(name, params);
        if let Some(r) = self.reply(id) {
            return r;
        }
        self.run_msgs();
        self.reply(id).unwrap_or_else(|| panic!("{name}: no reply"))
    }

    /// The module's save_config entries.
    pub fn config_json(&self) -> Vec<Value> {
        let mut w: Vec<(Option<String>, Value)> = Vec::new();
        entry::ioband_rs_config_json(ptr::addr_of_mut!(w).cast());
        w.into_iter().map(|(_, v)| v).collect()
    }

    /// bdev_get_bdevs' `driver_specific` of the ioband bdev `name`.
    pub fn dump_info(&self, name: &str) -> Vec<(Option<String>, Value)> {
        let dev_id = self.node_of(name).map(|i| with_mock(|m| m.nodes[i].dev_id));
        let mut w: Vec<(Option<String>, Value)> = Vec::new();
        if let Some(dev_id) = dev_id {
            entry::ioband_rs_dump_info(dev_id, ptr::addr_of_mut!(w).cast());
        }
        w
    }

    /// The registered node named `name`.
    pub fn node_of(&self, name: &str) -> Option<usize> {
        with_mock(|m| m.nodes.iter().position(|n| n.name == name && n.registered))
    }

    /// A node's state: (registered, outstanding, freed).
    pub fn node_state(&self, i: usize) -> (bool, u64, bool) {
        with_mock(|m| {
            let n = &m.nodes[i];
            (n.registered, n.outstanding, n.freed)
        })
    }

    /// An I/O submitted to the ioband bdev `name` on SPDK thread `thread_id`, as the shim's
    /// owner_submit does it (failed at once if Rust refuses it).
    pub fn submit(&self, name: &str, kind: c_int, bytes: u64, thread_id: u64) -> IoId {
        let id = self.new_io(name, kind, bytes, thread_id, None);
        owner_submit(id);
        id
    }

    /// A new I/O of the model on the ioband bdev `name` (not submitted anywhere yet).
    fn new_io(
        &self,
        name: &str,
        kind: c_int,
        bytes: u64,
        thread_id: u64,
        rs: Option<usize>,
    ) -> IoId {
        let node = self
            .node_of(name)
            .unwrap_or_else(|| panic!("no registered ioband bdev {name}"));
        with_mock(|m| {
            let id = m.ios.len();
            m.ios.push(MockIo {
                id,
                node,
                kind,
                bytes,
                thread_id,
                completions: Vec::new(),
                rs,
                lane: None,
            });
            m.areas
                .push(Box::into_raw(Box::new(IoArea([0; RS_IO_AREA / 8]))));
            id
        })
    }

    /// The base completes I/O `id` (base_io_done), to the owner or to the replica that
    /// scheduled it.
    pub fn base_done(&self, id: IoId) {
        let (p, dev_id, rs) = with_mock(|m| {
            let pos = m
                .at_base
                .iter()
                .position(|&x| x == id)
                .unwrap_or_else(|| panic!("I/O {id} is not at the base"));
            m.at_base.remove(pos);
            (m.areas[id], m.nodes[m.ios[id].node].dev_id, m.ios[id].rs)
        });
        if let Some((lane, tick, cost)) = with_mock(|m| m.ios[id].lane) {
            self.lane_done(id, rs.unwrap_or(0), lane, tick, cost);
            return;
        }
        match rs {
            Some(rs) => {
                let now = with_mock(|m| m.pass_ticks);
                entry::ioband_rs_thread_done(rs as *mut c_void, p.cast(), now)
            }
            None => entry::ioband_rs_done(dev_id, p.cast()),
        }
    }

    /// A thread gets its first ioband channel: its replica (the shim's thread_ctx_create).
    pub fn thread_create(&self, thread: u64) -> *mut c_void {
        entry::ioband_rs_thread_create(thread)
    }

    /// The thread's last ioband channel goes; returns whether the replica could be freed
    /// at once (the owner acknowledged: run messages between the two).
    pub fn thread_leave(&self, rs: *mut c_void) {
        entry::ioband_rs_thread_leave(rs);
    }

    /// Whether the owner acknowledged the leave.
    pub fn thread_left(&self, rs: *mut c_void) -> bool {
        entry::ioband_rs_thread_left(rs) != 0
    }

    /// Frees a replica.
    pub fn thread_destroy(&self, rs: *mut c_void) {
        entry::ioband_rs_thread_destroy(rs);
    }

    /// The replica's poller runs once.
    pub fn thread_poll(&self, rs: *mut c_void) -> bool {
        entry::ioband_rs_thread_poll(rs) != 0
    }

    /// An I/O submitted to `name` on the replica's thread, as the shim's submit_here does
    /// it: the replica takes it, or it goes to the owner, or it fails.
    pub fn thread_submit(
        &self,
        rs: *mut c_void,
        name: &str,
        kind: c_int,
        bytes: u64,
        thread_id: u64,
    ) -> IoId {
        let id = self.new_io(name, kind, bytes, thread_id, Some(rs as usize));
        let (p, dev_id, now) =
            with_mock(|m| (m.areas[id], m.nodes[m.ios[id].node].dev_id, m.pass_ticks));
        if self.lane_submit(rs, id, dev_id, kind, bytes, thread_id, now) {
            return id;
        }
        match entry::ioband_rs_thread_submit(rs, dev_id, p.cast(), kind, bytes, thread_id, now) {
            0 => {}
            1 => {
                // To the owner, as to_owner does.
                with_mock(|m| m.ios[id].rs = None);
                owner_submit(id);
            }
            _ => {
                // SAFETY: the I/O is live and Rust refused it.
                unsafe { MockShim::complete(p.cast(), STATUS_FAILED) };
            }
        }
        id
    }

    /// A channel of `name` is created on the replica's thread (`thread_id`): it gets its
    /// lane, as the shim's ioband_ch_create does.
    pub fn thread_channel(&self, rs: *mut c_void, name: &str, thread_id: u64) -> *mut Lane {
        let dev_id = self
            .node_of(name)
            .map(|i| with_mock(|m| m.nodes[i].dev_id))
            .unwrap_or_else(|| panic!("no registered ioband bdev {name}"));
        let lane = entry::ioband_rs_thread_lane(rs, dev_id, thread_id);
        if !lane.is_null() {
            with_mock(|m| {
                m.channels.push(MockChannel {
                    rs: rs as usize,
                    dev_id,
                    thread_id,
                    lane: lane as usize,
                })
            });
        }
        lane
    }

    /// The channel of `lane` goes (ioband_ch_destroy).
    pub fn thread_channel_destroy(&self, rs: *mut c_void, lane: *mut Lane) {
        with_mock(|m| m.channels.retain(|c| c.lane != lane as usize));
        entry::ioband_rs_thread_lane_free(rs, lane);
    }

    /// A copy of a lane as the shim sees it.
    pub fn lane(&self, lane: *mut Lane) -> Lane {
        let p = with_mock(|m| {
            m.channels
                .iter()
                .find(|c| c.lane == lane as usize)
                .map(|c| c.lane)
        })
        .expect("a lane of a live channel of the model");
        // SAFETY: a lane Rust gave a channel of the model that is still listed (so not
        // freed); nothing else touches it during the read.
        unsafe { *(p as *const Lane) }
    }

    /// The shim's lane_submit: whether the channel's lane took the I/O.
    #[allow(clippy::too_many_arguments)]
    fn lane_submit(
        &self,
        rs: *mut c_void,
        id: IoId,
        dev_id: u64,
        kind: c_int,
        bytes: u64,
        thread_id: u64,
        now: u64,
    ) -> bool {
        let chan = with_mock(|m| {
            m.channels
                .iter()
                .find(|c| c.rs == rs as usize && c.dev_id == dev_id && c.thread_id == thread_id)
                .copied()
        });
        let Some(chan) = chan else { return false };
        let lp = chan.lane as *mut Lane;
        // SAFETY: as in `lane`: live while its channel is listed; no Rust call runs
        // while this reference is used.
        let l = unsafe { &mut *lp };
        let read = kind == IO_READ;
        if l.open == 0
            || l.at_base >= l.slot_limit
            || l.cost >= l.cost_budget
            || (!read && kind != IO_WRITE)
        {
            return false;
        }
        let cost = if l.sectors != 0 {
            (bytes >> 9).max(1)
        } else {
            1
        };
        let rc = with_mock(|m| m.dispatch_rc.pop_front().unwrap_or(0));
        if rc != 0 {
            // The base refused it: the slow path takes it.
            return false;
        }
        if l.first_tick == u64::MAX {
            l.first_tick = now;
        }
        l.last_tick = now;
        l.at_base += 1;
        if read {
            l.read_ios += 1;
            l.read_bytes += bytes;
        } else {
            l.write_ios += 1;
            l.write_bytes += bytes;
        }
        l.cost += cost;
        l.last_cost = cost;
        with_mock(|m| {
            m.ios[id].lane = Some((chan.lane, now, cost));
            m.at_base.push(id);
            m.calls.push(Call::LaneDispatch(id));
        });
        true
    }

    /// The shim's lane_done: counted, completed, settled at once if the lane is closed.
    fn lane_done(&self, id: IoId, rs: usize, lane: usize, tick: u64, cost: u64) {
        let (now, bytes) = with_mock(|m| (m.pass_ticks, m.ios[id].bytes));
        // SAFETY: as in `lane`.
        let l = unsafe { &mut *(lane as *mut Lane) };
        let latency = now - tick;
        if l.first_tick == u64::MAX {
            l.first_tick = now;
        }
        l.last_tick = now;
        l.completed += 1;
        l.completed_cost += cost;
        l.completed_bytes += bytes;
        l.latency_sum += latency;
        l.at_base -= 1;
        l.latency_min = l.latency_min.min(latency);
        if l.at_base + l.others < 2 {
            l.latency_min_drained = l.latency_min_drained.min(latency);
        }
        let open = l.open != 0;
        with_mock(|m| {
            let io = &mut m.ios[id];
            assert!(io.completions.is_empty(), "lane I/O {id} completed twice");
            io.completions.push(STATUS_BASE);
            m.calls.push(Call::Complete(id, STATUS_BASE));
        });
        if !open {
            entry::ioband_rs_thread_lane_settle(rs as *mut c_void);
        }
    }

    /// The base completes everything it holds, in order.
    pub fn base_done_all(&self) {
        while let Some(id) = with_mock(|m| m.at_base.first().copied()) {
            self.base_done(id);
        }
    }

    /// A bdev_io is freed on the owner thread: the armed wait entry fires.
    pub fn free_bdev_io(&self) {
        if with_mock(|m| m.armed.take()).is_some() {
            entry::ioband_rs_io_wait_done();
        }
    }

    /// The owner poller runs once.
    pub fn poll(&self) -> bool {
        entry::ioband_rs_poll() != 0
    }

    /// The statuses I/O `id` was completed with.
    pub fn completions(&self, id: IoId) -> Vec<c_int> {
        with_mock(|m| m.ios[id].completions.clone())
    }

    /// Every I/O made so far has completed exactly once; their statuses.
    pub fn all_completed_once(&self) -> Vec<c_int> {
        with_mock(|m| {
            m.ios
                .iter()
                .map(|io| {
                    let c = &io.completions;
                    assert_eq!(c.len(), 1, "I/O {} completions {c:?}", io.id);
                    c[0]
                })
                .collect()
        })
    }

    /// The I/O at the base, in dispatch order.
    pub fn at_base(&self) -> Vec<IoId> {
        with_mock(|m| m.at_base.clone())
    }

    /// Error and warning log lines so far.
    pub fn errors(&self) -> Vec<String> {
        with_mock(|m| {
            m.calls
                .iter()
                .filter_map(|c| match c {
                    Call::Log(l, s) if *l < 2 => Some(s.clone()),
                    _ => None,
                })
                .collect()
        })
    }
}

/// The shim's owner_submit of I/O `id`: counted by its node from now on, offered to Rust on
/// the owner, failed at once if Rust refuses it.
fn owner_submit(id: IoId) {
    let (p, dev_id, kind, bytes, thread_id) = with_mock(|m| {
        let io = &m.ios[id];
        let (node, kind, bytes, thread_id) = (io.node, io.kind, io.bytes, io.thread_id);
        m.nodes[node].outstanding += 1;
        (m.areas[id], m.nodes[node].dev_id, kind, bytes, thread_id)
    });
    if entry::ioband_rs_submit(dev_id, p.cast(), kind, bytes, thread_id) != 0 {
        // SAFETY: the I/O is live and Rust refused it (it holds no handle).
        unsafe { MockShim::complete(p.cast(), STATUS_FAILED) };
    }
}

/// `-ENOMEM` for [`Mock::dispatch_rc`].
pub const NOMEM: c_int = DISPATCH_NOMEM;
