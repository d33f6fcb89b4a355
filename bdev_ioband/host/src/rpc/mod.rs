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
//! Threading: the server, its connections and the [`App`] it serves belong to the main
//! reactor.

mod bdevs;
pub mod config;
mod conn;
pub mod dispatch;
mod framework;
mod ioband;
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

/// SPDK's default socket path.
pub const DEFAULT_RPC_SOCKET: &str = "/var/tmp/spdk.sock";
/// Largest request accepted (bytes of one JSON value, or of unparsed input): the engine's
/// one bound, which the SPDK host applies to params.
pub use bdev_ioband_engine::config::decode::MAX_REQUEST_BYTES;
/// Most connections served at once (SPDK: 64).
pub const MAX_CONNECTIONS: usize = 64;
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

/// The server.
#[derive(Debug)]
pub struct RpcServer {
    listener: UnixListener,
    path: PathBuf,
    conns: Vec<conn::Conn>,
    methods: Methods,
    app: Rc<App>,
}

impl RpcServer {
    /// Binds `path` (removing a stale socket no one listens on) and registers the server's
    /// poller on the current reactor.
    pub fn start(path: &Path, app: Rc<App>) -> Result<Rc<RefCell<RpcServer>>, RpcServerError> {
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
        let listener = UnixListener::bind(path).map_err(io_err)?;
        listener.set_nonblocking(true).map_err(io_err)?;
        let server = Rc::new(RefCell::new(RpcServer {
            listener,
            path: path.to_owned(),
            conns: Vec::new(),
            methods: Methods::new(),
            app,
        }));
        let weak = Rc::downgrade(&server);
        reactor::register_poller("rpc_server", POLL_PERIOD_TICKS, move |_now| {
            let Some(server) = weak.upgrade() else {
                return PollerStatus::Done;
            };
            let Ok(mut server) = server.try_borrow_mut() else {
                return PollerStatus::Idle;
            };
            server.poll()
        })?;
        Ok(server)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn poll(&mut self) -> PollerStatus {
        let mut busy = false;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    busy = true;
                    if self.conns.len() >= MAX_CONNECTIONS || stream.set_nonblocking(true).is_err()
                    {
                        continue; // dropped: closed
                    }
                    self.conns.push(conn::Conn::new(stream));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        let (methods, app) = (&self.methods, &*self.app);
        for c in &mut self.conns {
            busy |= c.poll(methods, app);
        }
        self.conns.retain(|c| !c.finished());
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
