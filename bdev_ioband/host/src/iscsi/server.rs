//! The registry of portal groups, initiator groups and target nodes that the RPC methods
//! and `framework_get_config` use, the listening sockets, and the one poller that accepts
//! and polls every connection.
//!
//! Threading: everything here belongs to the main reactor. The poller borrows the
//! registry's state only while it runs; RPC handlers run between its passes. Deleting a
//! target node closes its connections at once; they stay (holding the node's LUN channels)
//! until the I/O they had in flight has completed.

use std::cell::RefCell;
use std::io::ErrorKind;
use std::net::{IpAddr, TcpListener};
use std::rc::Rc;

use serde_json::{json, Value};

use super::conn::{Conn, Env};
use super::{
    validate_iscsi_name, InitiatorGroupConfig, IscsiError, Options, PortalGroupConfig,
    TargetNodeConfig,
};
use crate::bdev::{BdevRef, BdevRegistry, IoChannel};
use crate::reactor::{self, PollerHandle, PollerStatus};
use crate::scsi::LunInfo;

/// Most connections at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 256;

/// One LUN of a target node: its bdev, channel and geometry.
pub struct Lun {
    /// LUN number.
    pub id: u16,
    /// What the SCSI layer sees.
    pub info: LunInfo,
    /// The channel I/O goes through (main reactor).
    pub ch: Rc<dyn IoChannel>,
    /// Keeps the bdev alive while I/O may still reach it.
    _bdev: BdevRef,
}

impl Lun {
    /// A LUN over `bdev` through channel `ch`.
    pub fn new(id: u16, info: LunInfo, ch: Rc<dyn IoChannel>, bdev: BdevRef) -> Lun {
        Lun {
            id,
            info,
            ch,
            _bdev: bdev,
        }
    }
}

impl std::fmt::Debug for Lun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lun")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A target node.
#[derive(Debug)]
pub struct Target {
    /// Its config, with the full name.
    pub config: TargetNodeConfig,
    /// LUNs by number, ascending.
    pub luns: Vec<Lun>,
    /// Their numbers.
    pub lun_ids: Vec<u16>,
}

impl Target {
    /// The LUN numbered `id`.
    pub fn lun(&self, id: u16) -> Option<&Lun> {
        self.luns.iter().find(|l| l.id == id)
    }
}

/// A portal group and its listeners.
#[derive(Debug)]
pub struct PortalGroup {
    /// Its config.
    pub config: PortalGroupConfig,
    listeners: Vec<TcpListener>,
}

#[derive(Debug, Default)]
struct State {
    opts: Options,
    pgs: Vec<PortalGroup>,
    igs: Vec<InitiatorGroupConfig>,
    targets: Vec<Rc<Target>>,
    conns: Vec<Conn>,
    next_tsih: u16,
}

impl State {
    fn poll(&mut self) -> PollerStatus {
        let mut busy = self.accept();
        let State {
            opts,
            pgs,
            igs,
            targets,
            conns,
            next_tsih,
        } = self;
        let env = Env {
            targets,
            igs,
            pgs,
            opts,
        };
        let mut new_sessions = Vec::new();
        for (i, c) in conns.iter_mut().enumerate() {
            busy |= c.poll(&env, next_tsih);
            if c.take_new_session() {
                new_sessions.push(i);
            }
        }
        // Session reinstatement: a new session of the same initiator, ISID and target
        // replaces the old one (RFC 7143 6.3.5); ErrorRecoveryLevel 0, so it just goes.
        for i in new_sessions {
            let Some(key) = conns.get(i).and_then(Conn::session_key) else {
                continue;
            };
            for (j, c) in conns.iter_mut().enumerate() {
                if j != i && c.session_key().as_ref() == Some(&key) {
                    c.close("session reinstated by a new login");
                }
            }
        }
        conns.retain(|c| !c.finished());
        if busy {
            PollerStatus::Busy
        } else {
            PollerStatus::Idle
        }
    }

    fn accept(&mut self) -> bool {
        let mut busy = false;
        for pg in &self.pgs {
            for l in &pg.listeners {
                while self.conns.len() < MAX_CONNECTIONS {
                    match l.accept() {
                        Ok((s, addr)) => {
                            busy = true;
                            if s.set_nonblocking(true).is_err() {
                                continue;
                            }
                            let _ = s.set_nodelay(true);
                            let local = s.local_addr().ok();
                            let tag = u16::try_from(pg.config.tag).unwrap_or(0);
                            self.conns.push(Conn::new(s, addr, local, tag));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
            }
        }
        busy
    }
}

/// The iSCSI subsystem of a host: see the module doc.
#[derive(Default)]
pub struct Iscsi {
    state: Rc<RefCell<State>>,
    poller: Option<PollerHandle>,
}

impl std::fmt::Debug for Iscsi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iscsi").finish_non_exhaustive()
    }
}

fn tag16(param: &'static str, tag: i32) -> Result<u16, IscsiError> {
    u16::try_from(tag)
        .ok()
        .filter(|&t| t > 0)
        .ok_or_else(|| IscsiError::Invalid {
            param,
            reason: format!("{tag} is not a tag in 1..=65535"),
        })
}

fn claim_name(target: &str) -> String {
    format!("iscsi:{target}")
}

/// Whether initiator `name` at `addr` passes initiator group `ig`: a `!` entry denies, then
/// a name entry (or `ANY`) and a netmask (or `ANY`) must both match.
pub(super) fn ig_allows(ig: &InitiatorGroupConfig, name: &str, addr: Option<IpAddr>) -> bool {
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    if ig.initiators.iter().any(|i| {
        i.strip_prefix('!')
            .is_some_and(|n| eq(n, name) || eq(n, "ANY"))
    }) {
        return false;
    }
    let name_ok = ig
        .initiators
        .iter()
        .any(|i| !i.starts_with('!') && (eq(i, "ANY") || eq(i, name)));
    let net_ok = ig.netmasks.iter().any(|m| netmask_matches(m, addr));
    name_ok && net_ok
}

fn parse_netmask(mask: &str) -> Option<(IpAddr, u8)> {
    if mask.eq_ignore_ascii_case("ANY") {
        return Some((IpAddr::from([0u8, 0, 0, 0]), 0));
    }
    let (ip, len) = match mask.split_once('/') {
        Some((ip, len)) => (ip, Some(len.parse::<u8>().ok()?)),
        None => (mask, None),
    };
    let ip: IpAddr = ip.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((ip, len))
}

fn netmask_matches(mask: &str, addr: Option<IpAddr>) -> bool {
    if mask.eq_ignore_ascii_case("ANY") {
        return true;
    }
    let (Some((net, len)), Some(addr)) = (parse_netmask(mask), addr) else {
        return false;
    };
    let to_bits = |a: IpAddr| match a {
        IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, true),
        IpAddr::V6(v) => match v.to_ipv4_mapped() {
            Some(v4) => (u128::from(u32::from(v4)) << 96, true),
            None => (u128::from(v), false),
        },
    };
    let ((n, n4), (a, a4)) = (to_bits(net), to_bits(addr));
    if n4 != a4 {
        return false;
    }
    let keep = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    (n & keep) == (a & keep)
}

impl Iscsi {
    fn ensure_poller(&mut self) -> Result<(), IscsiError> {
        if self.poller.is_some() {
            return Ok(());
        }
        let state = self.state.clone();
        let handle =
            reactor::register_poller("iscsi", 0, move |_now| match state.try_borrow_mut() {
                Ok(mut s) => s.poll(),
                Err(_) => PollerStatus::Idle,
            })?;
        self.poller = Some(handle);
        Ok(())
    }

    /// The options in force.
    pub fn options(&self) -> Options {
        self.state.borrow().opts.clone()
    }

    /// Replaces the options (checked first; nothing changes on error). Sessions already
    /// logged in keep what they negotiated.
    pub fn set_options(&self, opts: Options) -> Result<(), IscsiError> {
        opts.validate()?;
        self.state.borrow_mut().opts = opts;
        Ok(())
    }

    /// `iscsi_create_portal_group`: binds every portal (all or nothing).
    pub fn create_portal_group(&mut self, config: PortalGroupConfig) -> Result<(), IscsiError> {
        let tag = tag16("tag", config.tag)?;
        if config.portals.is_empty() {
            return Err(IscsiError::Invalid {
                param: "portals",
                reason: "at least one portal is needed".into(),
            });
        }
        if self
            .state
            .borrow()
            .pgs
            .iter()
            .any(|p| p.config.tag == i32::from(tag))
        {
            return Err(IscsiError::Exists(format!("portal group {tag}")));
        }
        let mut listeners = Vec::new();
        for p in &config.portals {
            let port: u16 = p.port.parse().map_err(|_| IscsiError::Invalid {
                param: "portals",
                reason: format!("port '{}' is not a TCP port", p.port),
            })?;
            let host = p.host.trim_matches(|c| c == '[' || c == ']');
            let addr = format!(
                "{}:{port}",
                if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.to_owned()
                }
            );
            let l = TcpListener::bind(addr.as_str()).map_err(|source| IscsiError::Io {
                what: format!("bind {addr}"),
                source,
            })?;
            l.set_nonblocking(true).map_err(|source| IscsiError::Io {
                what: format!("listen {addr}"),
                source,
            })?;
            listeners.push(l);
        }
        self.ensure_poller()?;
        self.state
            .borrow_mut()
            .pgs
            .push(PortalGroup { config, listeners });
        Ok(())
    }

    /// `iscsi_delete_portal_group`: refused while a target node maps it.
    pub fn delete_portal_group(&mut self, tag: i32) -> Result<(), IscsiError> {
        let mut s = self.state.borrow_mut();
        let i = s
            .pgs
            .iter()
            .position(|p| p.config.tag == tag)
            .ok_or_else(|| IscsiError::NotFound(format!("portal group {tag}")))?;
        if let Some(t) = s
            .targets
            .iter()
            .find(|t| t.config.pg_ig_maps.iter().any(|m| m.pg_tag == tag))
        {
            return Err(IscsiError::Busy(format!(
                "portal group {tag} is mapped by target node {}",
                t.config.name
            )));
        }
        s.pgs.remove(i);
        Ok(())
    }

    /// `iscsi_create_initiator_group`.
    pub fn create_initiator_group(
        &mut self,
        config: InitiatorGroupConfig,
    ) -> Result<(), IscsiError> {
        tag16("tag", config.tag)?;
        let bad = |param, reason: String| IscsiError::Invalid { param, reason };
        if config.initiators.is_empty() || config.netmasks.is_empty() {
            return Err(bad(
                "initiators",
                "initiators and netmasks are both needed".into(),
            ));
        }
        for i in &config.initiators {
            let n = i.strip_prefix('!').unwrap_or(i);
            if !n.eq_ignore_ascii_case("ANY") {
                validate_iscsi_name(n).map_err(|r| bad("initiators", format!("'{i}': {r}")))?;
            }
        }
        for m in &config.netmasks {
            parse_netmask(m).ok_or_else(|| {
                bad(
                    "netmasks",
                    format!("'{m}' is not ANY, an address or address/length"),
                )
            })?;
        }
        let mut s = self.state.borrow_mut();
        if s.igs.iter().any(|g| g.tag == config.tag) {
            return Err(IscsiError::Exists(format!(
                "initiator group {}",
                config.tag
            )));
        }
        s.igs.push(config);
        Ok(())
    }

    /// `iscsi_delete_initiator_group`: refused while a target node maps it.
    pub fn delete_initiator_group(&mut self, tag: i32) -> Result<(), IscsiError> {
        let mut s = self.state.borrow_mut();
        let i = s
            .igs
            .iter()
            .position(|g| g.tag == tag)
            .ok_or_else(|| IscsiError::NotFound(format!("initiator group {tag}")))?;
        if let Some(t) = s
            .targets
            .iter()
            .find(|t| t.config.pg_ig_maps.iter().any(|m| m.ig_tag == tag))
        {
            return Err(IscsiError::Busy(format!(
                "initiator group {tag} is mapped by target node {}",
                t.config.name
            )));
        }
        s.igs.remove(i);
        Ok(())
    }

    /// The full name of a target node given as `name`.
    pub fn full_name(&self, name: &str) -> String {
        let lower = name.to_ascii_lowercase();
        if ["iqn.", "eui.", "naa."]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            name.to_owned()
        } else {
            format!("{}:{name}", self.state.borrow().opts.node_base)
        }
    }

    /// `iscsi_create_target_node`: checks everything, then claims the bdevs.
    pub fn create_target_node(
        &mut self,
        registry: &mut BdevRegistry,
        mut config: TargetNodeConfig,
    ) -> Result<String, IscsiError> {
        let bad = |param, reason: String| IscsiError::Invalid { param, reason };
        config.name = self.full_name(&config.name);
        validate_iscsi_name(&config.name).map_err(|r| bad("name", r.to_owned()))?;
        if config.require_chap || config.mutual_chap || config.chap_group != 0 {
            return Err(bad(
                "require_chap",
                "CHAP is not supported by this host".into(),
            ));
        }
        let max_qd = self.state.borrow().opts.max_queue_depth;
        if u32::try_from(config.queue_depth).map_or(true, |q| q < 1 || q > max_qd) {
            return Err(bad("queue_depth", format!("must be 1..={max_qd}")));
        }
        if config.luns.is_empty() {
            return Err(bad("luns", "at least one LUN is needed".into()));
        }
        {
            let s = self.state.borrow();
            if s.targets
                .iter()
                .any(|t| t.config.name.eq_ignore_ascii_case(&config.name))
            {
                return Err(IscsiError::Exists(format!("target node {}", config.name)));
            }
            if config.pg_ig_maps.is_empty() {
                return Err(bad("pg_ig_maps", "at least one mapping is needed".into()));
            }
            for m in &config.pg_ig_maps {
                if !s.pgs.iter().any(|p| p.config.tag == m.pg_tag) {
                    return Err(IscsiError::NotFound(format!("portal group {}", m.pg_tag)));
                }
                if !s.igs.iter().any(|g| g.tag == m.ig_tag) {
                    return Err(IscsiError::NotFound(format!(
                        "initiator group {}",
                        m.ig_tag
                    )));
                }
            }
        }
        let mut luns: Vec<Lun> = Vec::new();
        for l in &config.luns {
            let id = u16::try_from(l.lun_id)
                .ok()
                .filter(|&i| i < 16384)
                .ok_or_else(|| bad("luns", format!("lun_id {} is not in 0..=16383", l.lun_id)))?;
            if luns.iter().any(|x| x.id == id) {
                return Err(bad("luns", format!("lun_id {id} appears twice")));
            }
            let bdev = registry.get(&l.bdev_name)?;
            let ch = bdev.get_io_channel()?;
            let info = LunInfo {
                block_size: bdev.block_size(),
                num_blocks: bdev.num_blocks(),
                bdev_name: bdev.name().to_owned(),
                uuid: bdev.uuid().to_owned(),
                target_name: config.name.clone(),
                lun_id: id,
            };
            luns.push(Lun {
                id,
                info,
                ch,
                _bdev: bdev,
            });
        }
        luns.sort_by_key(|l| l.id);
        for l in &config.luns {
            registry.claim(&l.bdev_name, &claim_name(&config.name));
        }
        let name = config.name.clone();
        let lun_ids = luns.iter().map(|l| l.id).collect();
        self.state.borrow_mut().targets.push(Rc::new(Target {
            config,
            luns,
            lun_ids,
        }));
        Ok(name)
    }

    /// `iscsi_delete_target_node`: closes its sessions (their I/O in flight completes) and
    /// releases its bdevs.
    pub fn delete_target_node(
        &mut self,
        registry: &mut BdevRegistry,
        name: &str,
    ) -> Result<(), IscsiError> {
        let full = self.full_name(name);
        let mut s = self.state.borrow_mut();
        let i = s
            .targets
            .iter()
            .position(|t| t.config.name.eq_ignore_ascii_case(&full))
            .ok_or_else(|| IscsiError::NotFound(format!("target node {full}")))?;
        let t = s.targets.remove(i);
        for c in &mut s.conns {
            if c.target().is_some_and(|ct| Rc::ptr_eq(ct, &t)) {
                c.close("target node deleted");
            }
        }
        for l in &t.config.luns {
            registry.release(&l.bdev_name, &claim_name(&t.config.name));
        }
        Ok(())
    }

    /// `iscsi_get_portal_groups`.
    pub fn portal_groups(&self) -> Vec<Value> {
        self.state
            .borrow()
            .pgs
            .iter()
            .map(|p| json!({"tag": p.config.tag, "portals": p.config.portals, "private": p.config.private}))
            .collect()
    }

    /// `iscsi_get_initiator_groups`.
    pub fn initiator_groups(&self) -> Vec<Value> {
        self.state
            .borrow()
            .igs
            .iter()
            .map(|g| serde_json::to_value(g).unwrap_or(Value::Null))
            .collect()
    }

    /// `iscsi_get_target_nodes`.
    pub fn target_nodes(&self) -> Vec<Value> {
        self.state
            .borrow()
            .targets
            .iter()
            .map(|t| serde_json::to_value(&t.config).unwrap_or(Value::Null))
            .collect()
    }

    /// `iscsi_get_connections`.
    pub fn connections(&self) -> Vec<Value> {
        match self.state.try_borrow() {
            Ok(s) => s.conns.iter().filter_map(Conn::describe).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The `iscsi` subsystem's config entries: options, portal groups, initiator groups,
    /// target nodes, in the order that replays.
    pub fn config_entries(&self) -> Vec<Value> {
        let s = self.state.borrow();
        let mut out = vec![json!({"method": "iscsi_set_options", "params": s.opts})];
        for p in &s.pgs {
            out.push(json!({"method": "iscsi_create_portal_group", "params": p.config}));
        }
        for g in &s.igs {
            out.push(json!({"method": "iscsi_create_initiator_group", "params": g}));
        }
        for t in &s.targets {
            out.push(json!({"method": "iscsi_create_target_node", "params": t.config}));
        }
        out
    }

    /// Stops everything (the host is stopping): closes connections, releases bdevs.
    pub fn clear(&mut self, registry: &mut BdevRegistry) {
        let names: Vec<String> = self
            .state
            .borrow()
            .targets
            .iter()
            .map(|t| t.config.name.clone())
            .collect();
        for n in names {
            let _ = self.delete_target_node(registry, &n);
        }
        let mut s = self.state.borrow_mut();
        s.pgs.clear();
        s.igs.clear();
    }
}
