//! The NBD front end: each export serves one bdev over the NBD protocol (the fixed
//! newstyle handshake with `NBD_OPT_GO`/`INFO`/`LIST`/`EXPORT_NAME`/`STRUCTURED_REPLY`,
//! simple or structured replies, `READ`/`WRITE`/`FLUSH`/`TRIM`/`WRITE_ZEROES`) on a Unix or
//! a TCP socket, and tags every I/O of a connection with the connection's group: on a Unix
//! socket `cgroup:<id>` of the client process (`SO_PEERCRED`, its `0::` line of
//! `/proc/<pid>/cgroup`, the inode of that directory in the cgroup2 mount), on TCP the group
//! mapped to the client's address or the export's default group. FUA is honoured (a flush
//! follows the write before the reply); `NBD_FLAG_CAN_MULTI_CONN` is advertised (why it is
//! safe: [`conn::ExportInfo::flags`]), and each connection of a client is tagged on its
//! own, so the connections of one process all land in its cgroup's group. No metadata
//! context (`base:allocation`) and no extended headers are offered (see [`conn`]).
//!
//! Malformed input (bad magic, unknown client flags, an option or a write too long, an
//! unknown export name with `NBD_OPT_EXPORT_NAME`) closes that connection with a logged
//! reason; requests that are well formed but wrong (misaligned, out of range, unknown
//! command) get an error reply. I/O submitted before a connection goes completes and is
//! counted (see [`conn`]).
//!
//! Threading: exports, their listeners and connections belong to the main reactor, which
//! polls them (a poller per export that runs every pass); the registry ([`NbdExports`])
//! lives in the [`crate::app::App`].

pub mod conn;
mod peer;
pub mod proto;
mod server;

use std::net::IpAddr;

use bdev_ioband_engine::GroupKey;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use peer::{cgroup2_mount, cgroup_id_of_pid, peer_pid, PeerError};
pub use server::{NbdExport, NbdExports};

use crate::bdev::BdevError;
use crate::reactor::ReactorError;

/// A TCP client address and the group its I/O goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpGroup {
    /// The client's IP address.
    pub address: IpAddr,
    /// Its group (`tag:1`, `initiator:<name>`, `cgroup:<id>`, `none`).
    pub group: String,
}

/// What an export is configured with (the params of `ioband_nbd_create_export`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// The export's name (what clients ask for; the empty name also reaches it).
    pub name: String,
    /// The bdev it serves.
    pub bdev_name: String,
    /// Unix socket path to listen on (exactly one of this and `tcp_address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_path: Option<String>,
    /// `host:port` to listen on over TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_address: Option<String>,
    /// Group of clients whose identity maps to none (TCP clients not in `tcp_groups`, Unix
    /// clients whose cgroup cannot be read). Absent: the bdev's default group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_group: Option<String>,
    /// Groups of TCP clients by address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_groups: Vec<TcpGroup>,
}

/// Errors of the NBD control path.
#[derive(Debug, Error)]
pub enum NbdError {
    /// No export of this name.
    #[error("no NBD export named '{0}'")]
    NotFound(String),
    /// An export of this name exists already.
    #[error("an NBD export named '{0}' exists already")]
    Exists(String),
    /// A parameter is not acceptable.
    #[error("invalid {param}: {reason}")]
    Invalid {
        /// The parameter.
        param: &'static str,
        /// Why.
        reason: String,
    },
    /// The bdev could not be used.
    #[error(transparent)]
    Bdev(#[from] BdevError),
    /// The listening socket could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not on a reactor.
    #[error(transparent)]
    Reactor(#[from] ReactorError),
}

impl NbdError {
    /// The errno a host reports for this error (positive).
    pub fn errno(&self) -> i32 {
        match self {
            NbdError::NotFound(_) => 19,
            NbdError::Exists(_) => 17,
            NbdError::Invalid { .. } => 22,
            NbdError::Bdev(e) => e.errno(),
            NbdError::Io { source, .. } => source.raw_os_error().unwrap_or(5),
            NbdError::Reactor(_) => 5,
        }
    }
}

/// Parses a configured group (`none`/`default` mean untagged).
pub(crate) fn parse_group(param: &'static str, text: &str) -> Result<Option<GroupKey>, NbdError> {
    match GroupKey::parse(text) {
        Ok(GroupKey::None) => Ok(None),
        Ok(k) => Ok(Some(k)),
        Err(e) => Err(NbdError::Invalid {
            param,
            reason: e.to_string(),
        }),
    }
}
