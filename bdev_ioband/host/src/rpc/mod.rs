//! The JSON-RPC server: JSON-RPC 2.0 over a Unix stream socket in SPDK's wire format
//! (requests and responses are concatenated JSON values with no framing; a top-level array
//! is a batch), polled by a poller on the main reactor, where every handler runs.
//!
//! Errors: -32700 parse error (then the connection closes, as SPDK does: there is no
//! resync point), -32600 invalid request, -32601 unknown method, -32602 invalid params
//! naming the field (a key given twice, a `null`, a number out of range such as `1e309`
//! included: params are checked as text, see `bdev_ioband_engine::config::decode`),
//! negative errno otherwise. A request larger than [`MAX_REQUEST_BYTES`] gets -32700 and
//! the connection closes; nothing a client sends reaches past its own connection. Error
//! messages echo at most 256 characters of any one word of input.
//!
//! Bounds ([`RpcOptions`]): the socket is created with mode 0600 whatever the umask
//! (`ioband_tgt --rpc-socket-mode` asks for another); at most [`MAX_CONNECTIONS`] clients
//! are served at once, and further ones wait in the listen backlog, unanswered but not
//! reset, until a slot frees; a connection stops being read while more than
//! [`MAX_OUTPUT_BYTES`] of its replies wait to be sent (a client that never reads cannot
//! make the server buffer without limit); a client that neither sends nor receives a byte
//! for the idle timeout ([`DEFAULT_IDLE_TIMEOUT_SECS`], `--rpc-idle-timeout`) is
//! disconnected, so idle clients cannot lock the others out.
//!
//! Threading: the server, its connections and the [`App`] it serves belong to the main
//! reactor.

mod bdevs;
pub mod config;
mod conn;
pub mod dispatch;
mod framework;
mod ioband;
mod iscsi;
mod listen;
mod nbd;
mod passthru;

use std::cell::RefCell;
use std::io::ErrorKind;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use thiserror::Error;

pub use conn::{process, Flow};
pub use dispatch::Methods;

use crate::app::App;
use crate::reactor::{self, PollerStatus, ReactorError};
use crate::ticks::TICKS_PER_SEC;

/// SPDK's default socket path.
pub const DEFAULT_RPC_SOCKET: &str = "/var/tmp/spdk.sock";
/// Largest request accepted (bytes of one JSON value, or of unparsed input): the engine's
/// one bound, which the SPDK host applies to params.
pub use bdev_ioband_engine::config::decode::MAX_REQUEST_BYTES;
/// Most connections served at once (SPDK: 64); more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// Replies waiting to be sent on one connection above which it is not read.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// Mode of the socket unless asked otherwise.
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;
/// Seconds without a byte in either direction after which a client is disconnected.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// How often the server polls its sockets, in ticks (1 ms).
pub const POLL_PERIOD_TICKS: u64 = 1_000_000;

/// What starting the server can fail with.
#[derive(Debug, Error)]
pub enum RpcServerError {
    /// Another process serves this path.
    #[error("RPC socket {0} is in use by another process")]
    InUse(PathBuf),
    /// Binding or configuring the socket failed.
    #[error("RPC socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not on a reactor.
    #[error(transparent)]
    Reactor(#[from] ReactorError),
}

/// What the server may be asked at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcOptions {
    /// Permission bits of the socket ([`DEFAULT_SOCKET_MODE`]).
    pub socket_mode: u32,
    /// Idle time after which a client is disconnected, in seconds (0 = never).
    pub idle_timeout_secs: u64,
}

impl Default for RpcOptions {
    fn default() -> Self {
        RpcOptions {
            socket_mode: DEFAULT_SOCKET_MODE,
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
        }
    }
}

/// The server.
#[derive(Debug)]
pub struct RpcServer {
    listener: UnixListener,
    path: PathBuf,
    conns: Vec<conn::Conn>,
    methods: Methods,
    app: Rc<App>,
    idle_timeout_ticks: Option<u64>,
}

impl RpcServer {
    /// [`RpcServer::start_with`] the default options.
    pub fn start(path: &Path, app: Rc<App>) -> Result<Rc<RefCell<RpcServer>>, RpcServerError> {
        RpcServer::start_with(path, app, RpcOptions::default())
    }

    /// Binds `path` (removing a stale socket no one listens on) with `options.socket_mode`
    /// and registers the server's poller on the current reactor.
    pub fn start_with(
        path: &Path,
        app: Rc<App>,
        options: RpcOptions,
    ) -> Result<Rc<RefCell<RpcServer>>, RpcServerError> {
        let io_err = |source| RpcServerError::Io {
            path: path.to_owned(),
            source,
        };
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(RpcServerError::InUse(path.to_owned()));
            }
            std::fs::remove_file(path).map_err(io_err)?;
        }
        let listener = listen::bind_with_mode(path, options.socket_mode).map_err(io_err)?;
        listener.set_nonblocking(true).map_err(io_err)?;
        let idle_timeout_ticks = (options.idle_timeout_secs > 0)
            .then(|| options.idle_timeout_secs.saturating_mul(TICKS_PER_SEC));
        let server = Rc::new(RefCell::new(RpcServer {
            listener,
            path: path.to_owned(),
            conns: Vec::new(),
            methods: Methods::new(),
            app,
            idle_timeout_ticks,
        }));
        let weak = Rc::downgrade(&server);
        reactor::register_poller("rpc_server", POLL_PERIOD_TICKS, move |now| {
            let Some(server) = weak.upgrade() else {
                return PollerStatus::Done;
            };
            let Ok(mut server) = server.try_borrow_mut() else {
                return PollerStatus::Idle;
            };
            server.poll(now)
        })?;
        Ok(server)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn poll(&mut self, now: u64) -> PollerStatus {
        let mut busy = false;
        // Past the limit, clients wait in the listen backlog until a slot frees.
        while self.conns.len() < MAX_CONNECTIONS {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    busy = true;
                    if stream.set_nonblocking(true).is_err() {
                        continue; // dropped: closed
                    }
                    self.conns.push(conn::Conn::new(stream, now));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        let (methods, app) = (&self.methods, &*self.app);
        for c in &mut self.conns {
            busy |= c.poll(methods, app, now);
        }
        let timeout = self.idle_timeout_ticks;
        self.conns
            .retain(|c| !c.finished() && !matches!(timeout, Some(t) if c.idle_for(now, t)));
        if busy {
            PollerStatus::Busy
        } else {
            PollerStatus::Idle
        }
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
