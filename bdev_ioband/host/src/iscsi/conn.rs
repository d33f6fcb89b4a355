//! One iSCSI connection (and its session: one connection per session): socket buffers,
//! PDU framing, the sequence numbers (CmdSN window, StatSN), and the PDUs that are not
//! SCSI commands: NOP-Out, Text (SendTargets), Logout, SNACK and unknown opcodes (Reject).
//! The login phase is in `login.rs`, SCSI commands, data and task management in `cmd.rs`.
//!
//! Exactly once: every bdev I/O submitted is counted in `outstanding` until its completion
//! comes back through the connection's completion queue; a connection that closes
//! (malformed input, a socket error, the initiator gone) stops reading and replying at once
//! but lives on in the registry until that count is 0, so nothing submitted is lost or
//! completed twice. Descriptors and buffers are recycled through the connection's pool.
//!
//! Threading: owned by the iSCSI registry's poller on the main reactor; the completion
//! callback runs there too and only pushes onto the completion queue.

use std::cell::RefCell;
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;

use bdev_ioband_engine::GroupKey;
use serde_json::{json, Value};

use super::cmd::{Cmd, PendingTmf};
use super::pdu::{self, op, Bhs, Digests, Frame, Sns, RESERVED_TAG};
use super::server::{ig_allows, PortalGroup, Target};
use super::text::{self, Session};
use super::{InitiatorGroupConfig, Options};
use crate::bdev::{BdevIo, IoCallback, IoPool};
use crate::frontend::{self, Input, Output, READ_CHUNK};

/// Output bytes waiting above which input is not parsed.
const MAX_PENDING_OUTPUT: usize = 64 << 20;

/// What a connection sees of the registry while it is polled.
#[derive(Debug)]
pub struct Env<'a> {
    /// Target nodes.
    pub targets: &'a [Rc<Target>],
    /// Initiator groups.
    pub igs: &'a [InitiatorGroupConfig],
    /// Portal groups.
    pub pgs: &'a [super::server::PortalGroup],
    /// Options.
    pub opts: &'a Options,
}

impl Env<'_> {
    /// Whether `initiator` at `addr`, on portal group `pg_tag`, may reach `target`.
    pub fn allowed(
        &self,
        target: &Target,
        pg_tag: u16,
        initiator: &str,
        addr: Option<std::net::IpAddr>,
    ) -> bool {
        target.config.pg_ig_maps.iter().any(|m| {
            m.pg_tag == i32::from(pg_tag)
                && self
                    .igs
                    .iter()
                    .any(|g| g.tag == m.ig_tag && ig_allows(g, initiator, addr))
        })
    }

    /// `TargetAddress` values of the public portals of portal group `tag`.
    pub fn addresses(&self, tag: i32) -> Vec<String> {
        self.pgs
            .iter()
            .filter(|p: &&PortalGroup| p.config.tag == tag && !p.config.private)
            .flat_map(|p| {
                p.config.portals.iter().map(move |a| {
                    let host = if a.host.contains(':') && !a.host.starts_with('[') {
                        format!("[{}]", a.host)
                    } else {
                        a.host.clone()
                    };
                    format!("{host}:{},{}", a.port, p.config.tag)
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Login,
    FullFeature,
}

pub(super) type DoneQueue = Rc<RefCell<Vec<Box<BdevIo>>>>;

/// One connection; see the module doc.
pub struct Conn {
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) local: Option<SocketAddr>,
    pub(super) pg_tag: u16,
    pub(super) phase: Phase,
    pub(super) digests: Digests,
    pub(super) session: Session,
    /// Login state: current stage, accumulated text of a continued request.
    pub(super) login_stage: u8,
    pub(super) login_text: Vec<u8>,
    pub(super) login_answered_security: bool,
    pub(super) initiator: Option<String>,
    pub(super) discovery: bool,
    pub(super) target: Option<Rc<Target>>,
    pub(super) isid: [u8; 6],
    pub(super) tsih: u16,
    pub(super) cid: u16,
    pub(super) new_session: bool,
    pub(super) queue_depth: u32,
    /// The group every I/O is tagged with: `initiator:<IQN>`.
    pub(super) group: Option<GroupKey>,
    pub(super) stat_sn: u32,
    pub(super) exp_cmd_sn: u32,
    pub(super) inbuf: Vec<u8>,
    /// What the socket is read into (see [`frontend`]).
    scratch: Box<[u8]>,
    pub(super) in_pos: usize,
    pub(super) outbuf: Vec<u8>,
    pub(super) out_pos: usize,
    /// No more input is taken: close once what is in flight is answered.
    pub(super) draining: bool,
    /// The socket is closed.
    pub(super) closed: bool,
    /// A Logout waits for the commands in flight.
    pub(super) logout: Option<Bhs>,
    pub(super) cmds: Vec<Option<Cmd>>,
    pub(super) free_cmds: Vec<u32>,
    pub(super) tmfs: Vec<PendingTmf>,
    pub(super) next_ttt: u32,
    /// I/Os submitted and not completed.
    pub(super) outstanding: u32,
    pub(super) pool: IoPool,
    pub(super) done: DoneQueue,
    #[allow(clippy::vec_box)]
    pub(super) done_spare: Vec<Box<BdevIo>>,
    pub(super) cb: IoCallback,
    #[allow(clippy::vec_box)]
    pub(super) parked: Vec<Box<BdevIo>>,
    /// Counters for `iscsi_get_connections`.
    pub(super) completed_cmds: u64,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("peer", &self.peer)
            .field("initiator", &self.initiator)
            .field("outstanding", &self.outstanding)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A new connection accepted on portal group `pg_tag`.
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        pg_tag: u16,
    ) -> Conn {
        let done: DoneQueue = Rc::new(RefCell::new(Vec::with_capacity(128)));
        let queue = done.clone();
        let cb: IoCallback = Rc::new(move |io| queue.borrow_mut().push(io));
        Conn {
            stream,
            peer,
            local,
            pg_tag,
            phase: Phase::Login,
            digests: Digests::default(),
            session: Session::default(),
            login_stage: 0,
            login_text: Vec::new(),
            login_answered_security: false,
            initiator: None,
            discovery: false,
            target: None,
            isid: [0; 6],
            tsih: 0,
            cid: 0,
            new_session: false,
            queue_depth: 1,
            group: None,
            stat_sn: 0,
            exp_cmd_sn: 0,
            inbuf: Vec::new(),
            scratch: frontend::scratch(),
            in_pos: 0,
            outbuf: Vec::with_capacity(4096),
            out_pos: 0,
            draining: false,
            closed: false,
            logout: None,
            cmds: Vec::new(),
            free_cmds: Vec::new(),
            tmfs: Vec::new(),
            next_ttt: 1,
            outstanding: 0,
            pool: IoPool::default(),
            done,
            done_spare: Vec::with_capacity(128),
            cb,
            parked: Vec::new(),
            completed_cmds: 0,
        }
    }

    /// Whether the connection is over: closed (or drained and flushed) with nothing in
    /// flight.
    pub fn finished(&self) -> bool {
        let quiet = self.outstanding == 0 && self.parked.is_empty();
        quiet && (self.closed || (self.draining && self.out_pos == self.outbuf.len()))
    }

    /// I/Os submitted and not completed.
    pub fn outstanding(&self) -> u32 {
        self.outstanding
    }

    /// The target of a normal session.
    pub fn target(&self) -> Option<&Rc<Target>> {
        self.target.as_ref()
    }

    /// (initiator, ISID, target) of a logged-in normal session.
    pub fn session_key(&self) -> Option<(String, [u8; 6], String)> {
        match (&self.initiator, &self.target, self.phase, self.closed) {
            (Some(i), Some(t), Phase::FullFeature, false) => {
                Some((i.to_ascii_lowercase(), self.isid, t.config.name.clone()))
            }
            _ => None,
        }
    }

    /// Whether a normal session was opened since the last call.
    pub fn take_new_session(&mut self) -> bool {
        std::mem::take(&mut self.new_session)
    }

    /// What `iscsi_get_connections` shows (logged-in connections only).
    pub fn describe(&self) -> Option<Value> {
        if self.phase != Phase::FullFeature || self.closed {
            return None;
        }
        let group = self
            .group
            .as_ref()
            .map_or_else(|| "none".to_owned(), ToString::to_string);
        Some(json!({
            "id": self.cid,
            "cid": self.cid,
            "tsih": self.tsih,
            "initiator_addr": self.peer.ip().to_string(),
            "target_addr": self.local.map(|l| l.ip().to_string()).unwrap_or_default(),
            "target_node_name": self.target.as_ref().map(|t| t.config.name.clone()).unwrap_or_default(),
            "initiator_name": self.initiator.clone().unwrap_or_default(),
            "session_type": if self.discovery { "discovery" } else { "normal" },
            "group": group,
            "outstanding": self.outstanding,
            "completed_commands": self.completed_cmds,
        }))
    }

    pub(super) fn who(&self) -> String {
        match &self.initiator {
            Some(i) => format!("{i} at {}", self.peer),
            None => self.peer.to_string(),
        }
    }

    /// Closes the socket now; what is in flight still completes (and is not answered).
    pub fn close(&mut self, reason: &str) {
        if !self.closed {
            eprintln!("iscsi: closing connection from {}: {reason}", self.who());
            self.closed = true;
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Sequence numbers for a response; `advance` for one that carries a status.
    pub(super) fn sns(&mut self, advance: bool) -> Sns {
        let in_flight = u32::try_from(self.cmds.len() - self.free_cmds.len()).unwrap_or(u32::MAX);
        let window = self.queue_depth.saturating_sub(in_flight);
        let sns = Sns {
            stat_sn: self.stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.exp_cmd_sn.wrapping_add(window).wrapping_sub(1),
        };
        if advance {
            self.stat_sn = self.stat_sn.wrapping_add(1);
        }
        sns
    }

    /// One pass: completions, parked submissions, input, output. Returns whether anything
    /// happened.
    pub fn poll(&mut self, env: &Env<'_>, next_tsih: &mut u16) -> bool {
        let mut busy = self.reap();
        busy |= self.retry_parked();
        if !self.closed && !self.draining {
            busy |= self.read_input();
            if let Err(reason) = self.process(env, next_tsih) {
                self.close(&reason);
                busy = true;
            }
        }
        busy |= self.finish_logout();
        busy |= self.write_output();
        if self.draining
            && !self.closed
            && self.outstanding == 0
            && self.parked.is_empty()
            && self.out_pos == self.outbuf.len()
        {
            self.closed = true;
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
        }
        busy
    }

    fn read_input(&mut self) -> bool {
        let cap = 2 * READ_CHUNK + 16 * 1024 * 1024;
        match frontend::read_some(
            &mut self.stream,
            &mut self.scratch,
            &mut self.inbuf,
            self.in_pos,
            cap,
        ) {
            Input::Read(busy) => busy,
            Input::Eof => {
                // The initiator is gone: finish what is in flight, then go.
                self.draining = true;
                true
            }
            Input::Failed(e) => {
                self.close(&format!("read failed: {e}"));
                true
            }
        }
    }

    fn write_output(&mut self) -> bool {
        if self.closed {
            self.outbuf.clear();
            self.out_pos = 0;
            return false;
        }
        match frontend::write_some(&mut self.stream, &mut self.outbuf, &mut self.out_pos) {
            Output::Wrote(busy) => busy,
            Output::Failed(e) => {
                self.close(&format!("write failed: {e}"));
                true
            }
        }
    }

    /// Frames and handles what input there is, as far as room allows.
    fn process(&mut self, env: &Env<'_>, next_tsih: &mut u16) -> Result<(), String> {
        while !self.draining && !self.closed && self.logout.is_none() {
            if self.outbuf.len() - self.out_pos > MAX_PENDING_OUTPUT {
                break;
            }
            let max = match self.phase {
                Phase::Login => 8192.max(env.opts.max_recv_data_segment_length),
                Phase::FullFeature => env.opts.max_recv_data_segment_length,
            };
            let frame = match pdu::parse(&self.inbuf[self.in_pos..], self.digests, max) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(e.to_string()),
            };
            let at = self.in_pos;
            self.in_pos += frame.total;
            let data_range = at + frame.data_at..at + frame.data_at + frame.data_len;
            let data = std::mem::take(&mut self.inbuf);
            let result = self.dispatch(env, next_tsih, &frame, &data[data_range]);
            self.inbuf = data;
            result?;
        }
        if self.in_pos > 0 {
            self.inbuf.drain(..self.in_pos);
            self.in_pos = 0;
        }
        Ok(())
    }

    fn dispatch(
        &mut self,
        env: &Env<'_>,
        next_tsih: &mut u16,
        f: &Frame,
        data: &[u8],
    ) -> Result<(), String> {
        let bhs = &f.bhs;
        if self.phase == Phase::Login {
            if bhs.opcode() != op::LOGIN_REQ {
                return Err(format!(
                    "opcode {:#04x} before the login completed",
                    bhs.opcode()
                ));
            }
            return self.login(env, next_tsih, bhs, data);
        }
        match bhs.opcode() {
            op::DATA_OUT => return self.data_out(bhs, data),
            op::SNACK => {
                let sns = self.sns(true);
                pdu::reject(&mut self.outbuf, pdu::reject::SNACK, bhs, sns, self.digests);
                return Ok(());
            }
            op::LOGIN_REQ => return Err("a Login Request in full feature phase".into()),
            _ => {}
        }
        // Requests with a CmdSN.
        if !self.check_cmd_sn(bhs) {
            return Ok(());
        }
        match bhs.opcode() {
            op::NOP_OUT => self.nop_out(bhs, data),
            // A discovery session carries no SCSI commands or task management.
            op::SCSI_CMD | op::TMF_REQ if self.discovery => {
                let sns = self.sns(true);
                pdu::reject(
                    &mut self.outbuf,
                    pdu::reject::PROTOCOL_ERROR,
                    bhs,
                    sns,
                    self.digests,
                );
                Ok(())
            }
            op::SCSI_CMD => self.scsi_command(bhs, data),
            op::TMF_REQ => {
                self.tmf(bhs);
                Ok(())
            }
            op::TEXT_REQ => self.text_request(env, bhs, data),
            op::LOGOUT_REQ => {
                self.logout = Some(*bhs);
                Ok(())
            }
            _ => {
                let sns = self.sns(true);
                pdu::reject(
                    &mut self.outbuf,
                    pdu::reject::NOT_SUPPORTED,
                    bhs,
                    sns,
                    self.digests,
                );
                Ok(())
            }
        }
    }

    /// Applies the CmdSN rules: an immediate request carries the next CmdSN and does not
    /// advance it; a non-immediate one must be the next in order, else it is dropped
    /// (outside the window, RFC 7143 4.2.2.1) with a log line.
    fn check_cmd_sn(&mut self, bhs: &Bhs) -> bool {
        let sn = bhs.cmd_sn();
        if bhs.immediate() {
            return true;
        }
        if sn == self.exp_cmd_sn {
            self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
            return true;
        }
        eprintln!(
            "iscsi: {}: dropping opcode {:#04x} with CmdSN {sn}, expected {}",
            self.who(),
            bhs.opcode(),
            self.exp_cmd_sn
        );
        false
    }

    fn nop_out(&mut self, bhs: &Bhs, data: &[u8]) -> Result<(), String> {
        if bhs.itt() == RESERVED_TAG {
            // A reply to a NOP-In of ours (we send none) or a ping that wants no answer.
            return Ok(());
        }
        let mut h = pdu::header(op::NOP_IN, 0x80, bhs.itt());
        h[8..16].copy_from_slice(&bhs.lun());
        pdu::put32(&mut h, 20, RESERVED_TAG);
        self.sns(true).put(&mut h);
        let len = data
            .len()
            .min(self.session.send_data_segment_bytes as usize);
        pdu::emit(&mut self.outbuf, h, &data[..len], self.digests);
        Ok(())
    }

    fn text_request(&mut self, env: &Env<'_>, bhs: &Bhs, data: &[u8]) -> Result<(), String> {
        let Some(pairs) = text::parse_pairs(data) else {
            let sns = self.sns(true);
            pdu::reject(
                &mut self.outbuf,
                pdu::reject::PROTOCOL_ERROR,
                bhs,
                sns,
                self.digests,
            );
            return Ok(());
        };
        let mut out = Vec::new();
        for (k, v) in &pairs {
            if k == "SendTargets" {
                self.send_targets(env, v, &mut out);
            } else {
                text::push_pair(&mut out, k, "NotUnderstood");
            }
        }
        // One response PDU; a longer list is cut at the initiator's segment length.
        let max = self.session.send_data_segment_bytes as usize;
        if out.len() > max {
            let cut = out[..max]
                .iter()
                .rposition(|&b| b == 0)
                .map_or(0, |p| p + 1);
            out.truncate(cut);
        }
        let mut h = pdu::header(op::TEXT_RESP, 0x80, bhs.itt());
        h[8..16].copy_from_slice(&bhs.lun());
        pdu::put32(&mut h, 20, RESERVED_TAG);
        self.sns(true).put(&mut h);
        pdu::emit(&mut self.outbuf, h, &out, self.digests);
        Ok(())
    }

    /// SendTargets: in a discovery session `All` lists every target this initiator may
    /// reach through this portal group (a name lists that one); in a normal session, the
    /// session's own target.
    fn send_targets(&self, env: &Env<'_>, value: &str, out: &mut Vec<u8>) {
        let initiator = self.initiator.as_deref().unwrap_or("");
        let addr = Some(self.peer.ip());
        for t in env.targets {
            let wanted = if self.discovery {
                value == "All" || t.config.name.eq_ignore_ascii_case(value)
            } else {
                self.target.as_ref().is_some_and(|own| Rc::ptr_eq(own, t))
                    && (value.is_empty()
                        || value == "All"
                        || t.config.name.eq_ignore_ascii_case(value))
            };
            if !wanted || !env.allowed(t, self.pg_tag, initiator, addr) {
                continue;
            }
            text::push_pair(out, "TargetName", &t.config.name);
            for m in &t.config.pg_ig_maps {
                for a in env.addresses(m.pg_tag) {
                    text::push_pair(out, "TargetAddress", &a);
                }
            }
        }
    }

    /// Sends the Logout Response once nothing is in flight, then drains.
    fn finish_logout(&mut self) -> bool {
        let Some(bhs) = self.logout else {
            return false;
        };
        if self.closed {
            self.logout = None;
            return false;
        }
        if self.cmds.iter().any(Option::is_some) || self.outstanding > 0 {
            return false;
        }
        self.logout = None;
        let reason = bhs.flags() & 0x7f;
        let mut h = pdu::header(op::LOGOUT_RESP, 0x80, bhs.itt());
        // 0 closes the session or the connection; 2 (recovery) is not supported.
        h[2] = match reason {
            0 => 0,
            1 if bhs.u16_at(20) == self.cid => 0,
            1 => 1,
            _ => 2,
        };
        self.sns(true).put(&mut h);
        pdu::emit(&mut self.outbuf, h, &[], self.digests);
        if h[2] == 0 {
            self.draining = true;
        }
        true
    }
}

#[cfg(test)]
mod tests;
