//! The exports: one listening socket each, its connections, and the registry of exports by
//! name that the RPC methods and `framework_get_config` use.
//!
//! Threading: the registry and every export belong to the main reactor; an export's poller
//! (run every pass) accepts, polls its connections and drops finished ones. Deleting an
//! export closes its listener and connections at once; the poller stays until the I/O they
//! had in flight has completed.

use std::cell::RefCell;
use std::io::ErrorKind;
use std::net::{IpAddr, TcpListener};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::rc::Rc;

use bdev_ioband_engine::GroupKey;
use serde_json::{json, Value};

use super::conn::{Conn, ExportInfo, Stream};
use super::{parse_group, peer, ExportConfig, NbdError};
use crate::bdev::{BdevRef, BdevRegistry, IoChannel};
use crate::reactor::{self, PollerHandle, PollerStatus};

/// Most connections an export serves at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// How often an export looks for new connections, in ticks (1 ms).
const ACCEPT_PERIOD_TICKS: u64 = 1_000_000;

#[derive(Debug)]
enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

struct Server {
    listener: Option<Listener>,
    unix_path: Option<PathBuf>,
    info: ExportInfo,
    ch: Rc<dyn IoChannel>,
    conns: Vec<Conn>,
    default_group: Option<GroupKey>,
    tcp_groups: Vec<(IpAddr, Option<GroupKey>)>,
    cgroup_mount: Option<(PathBuf, String)>,
    next_accept: u64,
    /// Keeps the bdev alive while I/O may still reach it.
    _bdev: BdevRef,
}

impl Server {
    fn poll(&mut self, now: u64) -> PollerStatus {
        let mut busy = false;
        if now >= self.next_accept {
            self.next_accept = now.saturating_add(ACCEPT_PERIOD_TICKS);
            busy |= self.accept();
        }
        let ch = &*self.ch;
        for c in &mut self.conns {
            busy |= c.poll(&self.info, ch);
        }
        self.conns.retain(|c| !c.finished());
        if self.listener.is_none() && self.conns.is_empty() {
            return PollerStatus::Done;
        }
        if busy {
            PollerStatus::Busy
        } else {
            PollerStatus::Idle
        }
    }

    fn accept(&mut self) -> bool {
        let mut busy = false;
        while self.conns.len() < MAX_CONNECTIONS {
            let conn = match &self.listener {
                Some(Listener::Unix(l)) => match l.accept() {
                    Ok((s, _)) => self.unix_conn(s),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                },
                Some(Listener::Tcp(l)) => match l.accept() {
                    Ok((s, addr)) => {
                        if s.set_nonblocking(true).is_err() {
                            continue;
                        }
                        let _ = s.set_nodelay(true);
                        let group = self
                            .tcp_groups
                            .iter()
                            .find(|(a, _)| *a == addr.ip())
                            .map_or_else(|| self.default_group.clone(), |(_, g)| g.clone());
                        Some(Conn::new(Stream::Tcp(s), format!("tcp {addr}"), group))
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                },
                None => break,
            };
            busy = true;
            if let Some(c) = conn {
                self.conns.push(c);
            }
        }
        busy
    }

    fn unix_conn(&self, s: UnixStream) -> Option<Conn> {
        s.set_nonblocking(true).ok()?;
        let pid = peer::peer_pid(&s);
        let cgroup = pid.as_ref().map_err(ToString::to_string).and_then(|&pid| {
            let mount = self
                .cgroup_mount
                .as_ref()
                .ok_or_else(|| peer::PeerError::NoCgroup2.to_string())?;
            peer::cgroup_id_of_pid(pid, mount).map_err(|e| e.to_string())
        });
        let who = match &pid {
            Ok(pid) => format!("unix pid {pid}"),
            Err(_) => "unix peer".to_owned(),
        };
        let group = match cgroup {
            Ok(id) => Some(GroupKey::Cgroup(id)),
            Err(e) => {
                eprintln!(
                    "nbd: export '{}': {who}: no cgroup ({e}); using the default group",
                    self.info.name
                );
                self.default_group.clone()
            }
        };
        Some(Conn::new(Stream::Unix(s), who, group))
    }

    fn stop(&mut self) {
        self.listener = None;
        if let Some(p) = self.unix_path.take() {
            let _ = std::fs::remove_file(p);
        }
        for c in &mut self.conns {
            c.close("export deleted", &self.info.name);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(p) = self.unix_path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// One export; see the module doc.
pub struct NbdExport {
    config: ExportConfig,
    server: Rc<RefCell<Server>>,
    poller: PollerHandle,
}

impl std::fmt::Debug for NbdExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NbdExport")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NbdExport {
    /// What it was created with.
    pub fn config(&self) -> &ExportConfig {
        &self.config
    }

    /// What `ioband_nbd_get_exports` shows of it.
    pub fn describe(&self) -> Value {
        let conns: Vec<Value> = match self.server.try_borrow() {
            Ok(s) => s
                .conns
                .iter()
                .map(|c| {
                    let group = c
                        .group
                        .as_ref()
                        .map_or_else(|| "none".to_owned(), ToString::to_string);
                    json!({"peer": c.peer, "group": group, "outstanding": c.outstanding()})
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let mut v = serde_json::to_value(&self.config).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("connections".into(), Value::Array(conns));
        }
        v
    }
}

/// The exports by name.
#[derive(Debug, Default)]
pub struct NbdExports {
    exports: Vec<NbdExport>,
}

fn claim_name(export: &str) -> String {
    format!("nbd:{export}")
}

impl NbdExports {
    /// Creates an export, claims its bdev and starts listening (on the current reactor).
    pub fn create(
        &mut self,
        registry: &mut BdevRegistry,
        config: ExportConfig,
    ) -> Result<(), NbdError> {
        if config.name.is_empty() || config.name.len() > 4096 {
            return Err(NbdError::Invalid {
                param: "name",
                reason: "an export name is 1 to 4096 bytes".into(),
            });
        }
        if self.exports.iter().any(|e| e.config.name == config.name) {
            return Err(NbdError::Exists(config.name));
        }
        let bdev = registry.get(&config.bdev_name)?;
        let default_group = match &config.default_group {
            Some(g) => parse_group("default_group", g)?,
            None => None,
        };
        let tcp_groups = config
            .tcp_groups
            .iter()
            .map(|t| Ok((t.address, parse_group("tcp_groups", &t.group)?)))
            .collect::<Result<Vec<_>, NbdError>>()?;
        let ch = bdev.get_io_channel()?;
        let io_err = |what: String| move |source| NbdError::Io { what, source };
        let (listener, unix_path) = match (&config.unix_path, &config.tcp_address) {
            (Some(path), None) => {
                let path = PathBuf::from(path);
                if path.exists() {
                    if UnixStream::connect(&path).is_ok() {
                        return Err(NbdError::Invalid {
                            param: "unix_path",
                            reason: format!("{} is in use", path.display()),
                        });
                    }
                    std::fs::remove_file(&path)
                        .map_err(io_err(format!("remove {}", path.display())))?;
                }
                let l = UnixListener::bind(&path)
                    .map_err(io_err(format!("bind {}", path.display())))?;
                l.set_nonblocking(true)
                    .map_err(io_err(format!("listen {}", path.display())))?;
                (Listener::Unix(l), Some(path))
            }
            (None, Some(addr)) => {
                let l = TcpListener::bind(addr.as_str()).map_err(io_err(format!("bind {addr}")))?;
                l.set_nonblocking(true)
                    .map_err(io_err(format!("listen {addr}")))?;
                (Listener::Tcp(l), None)
            }
            _ => {
                return Err(NbdError::Invalid {
                    param: "unix_path",
                    reason: "give exactly one of unix_path and tcp_address".into(),
                })
            }
        };
        let info = ExportInfo {
            name: config.name.clone(),
            size: bdev
                .num_blocks()
                .saturating_mul(u64::from(bdev.block_size())),
            block_size: bdev.block_size(),
        };
        let server = Rc::new(RefCell::new(Server {
            listener: Some(listener),
            unix_path,
            info,
            ch,
            conns: Vec::new(),
            default_group,
            tcp_groups,
            cgroup_mount: peer::cgroup2_mount(),
            next_accept: 0,
            _bdev: bdev.clone(),
        }));
        let polled = server.clone();
        let poller =
            reactor::register_poller("nbd_export", 0, move |now| match polled.try_borrow_mut() {
                Ok(mut s) => s.poll(now),
                Err(_) => PollerStatus::Idle,
            });
        let poller = match poller {
            Ok(p) => p,
            Err(e) => {
                server.borrow_mut().stop();
                return Err(e.into());
            }
        };
        registry.claim(bdev.name(), &claim_name(&config.name));
        self.exports.push(NbdExport {
            config,
            server,
            poller,
        });
        Ok(())
    }

    /// Deletes an export: stops listening, closes its connections and releases its bdev;
    /// I/O in flight still completes.
    pub fn delete(&mut self, registry: &mut BdevRegistry, name: &str) -> Result<(), NbdError> {
        let i = self
            .exports
            .iter()
            .position(|e| e.config.name == name)
            .ok_or_else(|| NbdError::NotFound(name.to_owned()))?;
        let e = self.exports.remove(i);
        if let Ok(mut s) = e.server.try_borrow_mut() {
            s.stop();
        }
        registry.release(&e.config.bdev_name, &claim_name(name));
        // The poller ends by itself once the connections have drained.
        let _ = e.poller;
        Ok(())
    }

    /// The exports, in creation order.
    pub fn iter(&self) -> impl Iterator<Item = &NbdExport> {
        self.exports.iter()
    }

    /// Deletes every export (the host is stopping).
    pub fn clear(&mut self, registry: &mut BdevRegistry) {
        let names: Vec<String> = self.exports.iter().map(|e| e.config.name.clone()).collect();
        for n in names {
            let _ = self.delete(registry, &n);
        }
    }
}
