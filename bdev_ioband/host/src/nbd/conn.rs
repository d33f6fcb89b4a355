//! One NBD client connection: the handshake, then the transmission phase, which turns each
//! request into bdev I/O tagged with the connection's group and each completion into a
//! reply: simple replies, or structured reply chunks once the client has negotiated
//! `NBD_OPT_STRUCTURED_REPLY` (then every reply is structured: a read's data comes in one
//! `OFFSET_DATA` chunk marked done, other successes as a `NONE` chunk, errors as an
//! `ERROR` chunk with a message, or `ERROR_OFFSET` where the bdev failed an I/O).
//!
//! Reads are never fragmented (one content chunk per read, as large as the read, at most
//! [`MAX_IO_BYTES`]), so `NBD_CMD_FLAG_DF` is honoured by construction; `NBD_FLAG_SEND_DF`
//! is advertised only to a client that negotiated structured replies, and a request with
//! DF from any other client gets `EINVAL`. No metadata context is offered:
//! `NBD_OPT_LIST_META_CONTEXT`/`SET_META_CONTEXT` (after structured replies) are answered
//! with zero contexts and `NBD_REP_ACK`, before them with `NBD_REP_ERR_INVALID`.
//! Extended headers (`NBD_OPT_EXTENDED_HEADERS`) are not supported (`NBD_REP_ERR_UNSUP`).
//!
//! Exactly once: every I/O submitted is counted in `outstanding` until its completion comes
//! back through the connection's completion queue; a connection that closes (malformed
//! input, a socket error, the client gone) stops reading and replying at once but lives on
//! in its server until that count is 0, so nothing submitted is lost. Descriptors and their
//! buffers are recycled through the connection's [`IoPool`].
//!
//! Threading: owned by its export's server on the reactor that polls it (the main one); the
//! completion callback runs there too and only pushes onto the completion queue.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use bdev_ioband_engine::GroupKey;

use super::proto::{self, ProtoError, Request};
use crate::bdev::{BdevIo, IoCallback, IoChannel, IoPool, IoStatus, IoType};
use crate::frontend::{self, Input, Output, READ_CHUNK};

/// Largest read or write, and the largest block size advertised (32 MiB, the protocol's
/// interoperable maximum).
pub const MAX_IO_BYTES: u32 = 32 << 20;
/// Chunk in which a write-zeroes is carried out (one chunk in flight per request).
const ZERO_CHUNK_BYTES: u64 = 1 << 20;
/// Requests in flight per connection above which input is not parsed.
const MAX_INFLIGHT: usize = 256;
/// Reply bytes waiting to be sent above which input is not parsed.
const MAX_PENDING_OUTPUT: usize = 64 << 20;

/// What the handshake tells a client about its export.
#[derive(Debug, Clone)]
pub struct ExportInfo {
    /// The export's name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// The bdev's block size: requests must be aligned to it.
    pub block_size: u32,
}

impl ExportInfo {
    /// Transmission flags advertised to a client that has (`structured`) or has not
    /// negotiated structured replies: `NBD_FLAG_SEND_DF` only with them (the protocol
    /// forbids it without).
    ///
    /// `NBD_FLAG_CAN_MULTI_CONN` always: the protocol asks that a flush (or FUA) answered
    /// on one connection cover every write answered before it on any connection of the
    /// export. That holds here because the front end keeps no cache of its own: a write is
    /// answered only once the bdev has completed it, every connection of an export submits
    /// to the same bdev (through the export's one channel), and a flush goes to that bdev as
    /// a whole, not to a connection's share of it. The bdevs behind it flush per device: the
    /// file bdev `fsync`s its file (which covers every completed write to it, whichever
    /// descriptor or ring it came through), malloc, null and model bdevs keep nothing
    /// volatile, and the ioband and passthru vbdevs forward the flush to their base.
    pub fn flags(&self, structured: bool) -> u16 {
        let df = if structured { proto::TFLAG_SEND_DF } else { 0 };
        proto::TFLAG_HAS_FLAGS
            | proto::TFLAG_SEND_FLUSH
            | proto::TFLAG_SEND_FUA
            | proto::TFLAG_SEND_TRIM
            | proto::TFLAG_SEND_WRITE_ZEROES
            | proto::TFLAG_CAN_MULTI_CONN
            | df
    }

    fn name_matches(&self, name: &[u8]) -> bool {
        name.is_empty() || name == self.name.as_bytes()
    }
}

/// A connected socket, Unix or TCP.
#[derive(Debug)]
pub enum Stream {
    /// A Unix stream socket.
    Unix(UnixStream),
    /// A TCP socket.
    Tcp(TcpStream),
}

impl Stream {
    fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the client's flags.
    Flags,
    /// Option haggling.
    Options,
    /// Requests.
    Transmission,
}

/// A request in flight.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    handle: u64,
    /// The request's range (a read's data chunk says where its data is from).
    offset: u64,
    len: u32,
    error: u32,
    /// Where in the request the bdev failed (`None` for a flush).
    error_at: Option<u64>,
    read: bool,
    /// Write-zeroes: next byte to zero and the end (next == end when done).
    zero_next: u64,
    zero_end: u64,
    /// Force unit access: a flush follows the write before the reply.
    fua: bool,
}

type DoneQueue = Rc<RefCell<Vec<Box<BdevIo>>>>;

/// A request that is answered with an error without any I/O: the errno and, for a
/// structured reply, a message.
type Refusal = (u32, &'static str);

const MSG_MISALIGNED: &str = "offset or length is not a multiple of the block size, or 0";
const MSG_PAST_END: &str = "request runs past the end of the export";
const MSG_TOO_LONG: &str = "read longer than the 32 MiB maximum";
const MSG_UNKNOWN_CMD: &str = "unknown command";
const MSG_DF: &str = "NBD_CMD_FLAG_DF without structured replies";
const MSG_IO: &str = "I/O error";

/// One connection; see the module doc.
pub struct Conn {
    stream: Stream,
    /// Who the client is, for logs.
    pub(super) peer: String,
    /// The group every I/O of the connection is tagged with.
    pub(super) group: Option<GroupKey>,
    phase: Phase,
    no_zeroes: bool,
    /// The client negotiated structured replies.
    structured: bool,
    inbuf: Vec<u8>,
    /// What the socket is read into (see [`frontend`]).
    scratch: Box<[u8]>,
    in_pos: usize,
    outbuf: Vec<u8>,
    out_pos: usize,
    /// No more input is taken: close once what is in flight is answered.
    draining: bool,
    /// The socket is closed: nothing more is read or written.
    closed: bool,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    /// I/Os submitted and not yet completed.
    outstanding: u32,
    pool: IoPool,
    done: DoneQueue,
    // Boxes on purpose: descriptors travel as `Box`es without reallocating.
    #[allow(clippy::vec_box)]
    done_spare: Vec<Box<BdevIo>>,
    cb: IoCallback,
    #[allow(clippy::vec_box)]
    parked: Vec<Box<BdevIo>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("peer", &self.peer)
            .field("group", &self.group)
            .field("outstanding", &self.outstanding)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A new connection; queues the server's greeting.
    pub fn new(stream: Stream, peer: String, group: Option<GroupKey>) -> Conn {
        let done: DoneQueue = Rc::new(RefCell::new(Vec::with_capacity(MAX_INFLIGHT)));
        let queue = done.clone();
        let cb: IoCallback = Rc::new(move |io| queue.borrow_mut().push(io));
        let mut outbuf = Vec::with_capacity(4096);
        proto::greeting(&mut outbuf);
        Conn {
            stream,
            peer,
            group,
            phase: Phase::Flags,
            no_zeroes: false,
            structured: false,
            inbuf: Vec::new(),
            scratch: frontend::scratch(),
            in_pos: 0,
            outbuf,
            out_pos: 0,
            draining: false,
            closed: false,
            slots: Vec::new(),
            free_slots: Vec::new(),
            outstanding: 0,
            pool: IoPool::default(),
            done,
            done_spare: Vec::with_capacity(MAX_INFLIGHT),
            cb,
            parked: Vec::new(),
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

    /// Whether the client negotiated structured replies.
    pub fn structured(&self) -> bool {
        self.structured
    }

    /// Closes the socket now (the server is going away); what is in flight still completes.
    pub fn close(&mut self, reason: &str, export: &str) {
        if !self.closed {
            eprintln!(
                "nbd: export '{export}': closing connection from {}: {reason}",
                self.peer
            );
            self.closed = true;
            self.stream.shutdown();
        }
    }

    /// One pass: completions, parked submissions, input, output. Returns whether anything
    /// happened.
    pub fn poll(&mut self, ex: &ExportInfo, ch: &dyn IoChannel) -> bool {
        let mut busy = self.reap(ex, ch);
        busy |= self.retry_parked(ch);
        if !self.closed && !self.draining {
            busy |= self.read_input(ex);
            if let Err(e) = self.process(ex, ch) {
                self.close(&e.to_string(), &ex.name);
                busy = true;
            }
        }
        busy |= self.write_output(ex);
        if self.draining
            && !self.closed
            && self.outstanding == 0
            && self.parked.is_empty()
            && self.out_pos == self.outbuf.len()
        {
            self.closed = true;
            self.stream.shutdown();
        }
        busy
    }

    fn read_input(&mut self, ex: &ExportInfo) -> bool {
        // Enough for any request: do not read further while requests wait for room.
        let cap = MAX_IO_BYTES as usize + proto::REQUEST_LEN + READ_CHUNK;
        match frontend::read_some(
            &mut self.stream,
            &mut self.scratch,
            &mut self.inbuf,
            self.in_pos,
            cap,
        ) {
            Input::Read(busy) => busy,
            Input::Eof => {
                // The client is gone or half-closed: answer what is in flight, then go.
                self.draining = true;
                true
            }
            Input::Failed(e) => {
                self.close(&format!("read failed: {e}"), &ex.name);
                true
            }
        }
    }

    fn write_output(&mut self, ex: &ExportInfo) -> bool {
        if self.closed {
            self.outbuf.clear();
            self.out_pos = 0;
            return false;
        }
        match frontend::write_some(&mut self.stream, &mut self.outbuf, &mut self.out_pos) {
            Output::Wrote(busy) => busy,
            Output::Failed(e) => {
                self.close(&format!("write failed: {e}"), &ex.name);
                true
            }
        }
    }

    /// Parses and handles what input there is, as far as room allows.
    fn process(&mut self, ex: &ExportInfo, ch: &dyn IoChannel) -> Result<(), ProtoError> {
        while !self.draining && !self.closed {
            let buf = &self.inbuf[self.in_pos..];
            match self.phase {
                Phase::Flags => {
                    let Some(flags) = proto::parse_client_flags(buf)? else {
                        break;
                    };
                    self.in_pos += 4;
                    self.no_zeroes = flags & u32::from(proto::FLAG_NO_ZEROES) != 0;
                    self.phase = Phase::Options;
                }
                Phase::Options => {
                    let Some(h) = proto::parse_option_header(buf)? else {
                        break;
                    };
                    let total = proto::OPTION_HEADER_LEN + h.len as usize;
                    if buf.len() < total {
                        break;
                    }
                    let data = buf[proto::OPTION_HEADER_LEN..total].to_vec();
                    self.in_pos += total;
                    self.option(ex, h.option, &data);
                }
                Phase::Transmission => {
                    if self.slots.len() - self.free_slots.len() >= MAX_INFLIGHT
                        || !self.parked.is_empty()
                        || self.outbuf.len() - self.out_pos > MAX_PENDING_OUTPUT
                    {
                        break;
                    }
                    let Some(req) = proto::parse_request(buf, MAX_IO_BYTES)? else {
                        break;
                    };
                    let total = proto::REQUEST_LEN + req.payload_len();
                    if buf.len() < total {
                        break;
                    }
                    let start = self.in_pos + proto::REQUEST_LEN;
                    self.in_pos += total;
                    self.request(ex, ch, req, start);
                }
            }
        }
        if self.in_pos > 0 {
            self.inbuf.drain(..self.in_pos);
            self.in_pos = 0;
        }
        Ok(())
    }

    fn option(&mut self, ex: &ExportInfo, option: u32, data: &[u8]) {
        let out = &mut self.outbuf;
        let flags = ex.flags(self.structured);
        match option {
            proto::OPT_EXPORT_NAME => {
                if ex.name_matches(data) {
                    proto::export_name_reply(out, ex.size, flags, self.no_zeroes);
                    self.phase = Phase::Transmission;
                } else {
                    // The protocol has no error reply here: the server closes.
                    let name = String::from_utf8_lossy(data).into_owned();
                    self.close(&format!("no export named '{name}'"), &ex.name);
                }
            }
            proto::OPT_ABORT => {
                proto::option_reply(out, option, proto::REP_ACK, &[]);
                self.draining = true;
            }
            proto::OPT_LIST => {
                if data.is_empty() {
                    let mut d = Vec::with_capacity(4 + ex.name.len());
                    let len = u32::try_from(ex.name.len()).unwrap_or(u32::MAX);
                    d.extend_from_slice(&len.to_be_bytes());
                    d.extend_from_slice(ex.name.as_bytes());
                    proto::option_reply(out, option, proto::REP_SERVER, &d);
                    proto::option_reply(out, option, proto::REP_ACK, &[]);
                } else {
                    proto::option_reply(out, option, proto::REP_ERR_INVALID, &[]);
                }
            }
            proto::OPT_INFO | proto::OPT_GO => match proto::parse_info_request(data) {
                None => proto::option_reply(out, option, proto::REP_ERR_INVALID, &[]),
                Some((name, _)) if !ex.name_matches(name) => {
                    proto::option_reply(out, option, proto::REP_ERR_UNKNOWN, &[]);
                }
                Some(_) => {
                    let info = proto::info_export(ex.size, flags);
                    proto::option_reply(out, option, proto::REP_INFO, &info);
                    let preferred = ex.block_size.max(4096);
                    let bs = proto::info_block_size(ex.block_size, preferred, MAX_IO_BYTES);
                    proto::option_reply(out, option, proto::REP_INFO, &bs);
                    proto::option_reply(out, option, proto::REP_ACK, &[]);
                    if option == proto::OPT_GO {
                        self.phase = Phase::Transmission;
                    }
                }
            },
            proto::OPT_STRUCTURED_REPLY => {
                // The option takes no data; asking twice is harmless.
                if data.is_empty() {
                    self.structured = true;
                    proto::option_reply(out, option, proto::REP_ACK, &[]);
                } else {
                    proto::option_reply(out, option, proto::REP_ERR_INVALID, &[]);
                }
            }
            proto::OPT_LIST_META_CONTEXT | proto::OPT_SET_META_CONTEXT => {
                let reply = if !self.structured {
                    // Metadata needs structured replies first.
                    proto::REP_ERR_INVALID
                } else {
                    match proto::parse_meta_context_request(data) {
                        None => proto::REP_ERR_INVALID,
                        Some((name, _)) if !ex.name_matches(name) => proto::REP_ERR_UNKNOWN,
                        // No context is offered: none listed, none selected.
                        Some(_) => proto::REP_ACK,
                    }
                };
                proto::option_reply(out, option, reply, &[]);
            }
            _ => proto::option_reply(out, option, proto::REP_ERR_UNSUP, &[]),
        }
    }

    /// Checks a request's range: blocks (offset, count), or the error to reply.
    fn range(ex: &ExportInfo, req: &Request, past_end: u32) -> Result<(u64, u64), Refusal> {
        let bs = u64::from(ex.block_size);
        let (offset, len) = (req.offset, u64::from(req.len));
        if len == 0 || offset % bs != 0 || len % bs != 0 {
            return Err((proto::EINVAL, MSG_MISALIGNED));
        }
        match offset.checked_add(len) {
            Some(end) if end <= ex.size => Ok((offset / bs, len / bs)),
            _ => Err((past_end, MSG_PAST_END)),
        }
    }

    /// Appends the reply to a request that ends without data: success (`error` 0) or an
    /// error, with `message` and (an I/O error) where in the request it happened when
    /// the reply is structured.
    fn reply_status(&mut self, handle: u64, error: u32, message: &str, at: Option<u64>) {
        let out = &mut self.outbuf;
        match (self.structured, error) {
            (false, _) => proto::simple_reply(out, error, handle),
            (true, 0) => proto::chunk_none(out, handle),
            (true, _) => proto::chunk_error(out, handle, error, message, at),
        }
    }

    fn refuse(&mut self, handle: u64, (error, message): Refusal) {
        self.reply_status(handle, error, message, None);
    }

    /// Appends the reply to a successful read of `data` from `offset`.
    fn reply_read(&mut self, handle: u64, offset: u64, data: &[u8]) {
        if !self.structured {
            proto::simple_reply(&mut self.outbuf, 0, handle);
            self.outbuf.extend_from_slice(data);
        } else if proto::chunk_offset_data(&mut self.outbuf, handle, offset, data, true).is_none() {
            // Reads are at most MAX_IO_BYTES: a chunk always holds them.
            self.refuse(handle, (proto::EOVERFLOW, MSG_TOO_LONG));
        }
    }

    fn request(&mut self, ex: &ExportInfo, ch: &dyn IoChannel, req: Request, payload_at: usize) {
        if req.flags & proto::CMD_FLAG_DF != 0 && !self.structured && req.cmd != proto::CMD_DISC {
            // DF is not advertised without structured replies.
            return self.refuse(req.handle, (proto::EINVAL, MSG_DF));
        }
        match req.cmd {
            proto::CMD_DISC => self.draining = true,
            proto::CMD_READ | proto::CMD_WRITE => {
                let write = req.cmd == proto::CMD_WRITE;
                let past_end = if write { proto::ENOSPC } else { proto::EINVAL };
                if !write && req.len > MAX_IO_BYTES {
                    return self.refuse(req.handle, (proto::EOVERFLOW, MSG_TOO_LONG));
                }
                let (offset_blocks, num_blocks) = match Self::range(ex, &req, past_end) {
                    Ok(r) => r,
                    Err(e) => return self.refuse(req.handle, e),
                };
                let slot = self.take_slot(&req, !write);
                self.set_fua(slot, write && req.flags & proto::CMD_FLAG_FUA != 0);
                let mut io = self.pool.get();
                io.io_type = if write { IoType::Write } else { IoType::Read };
                io.offset_blocks = offset_blocks;
                io.num_blocks = num_blocks;
                if write {
                    let end = payload_at + req.len as usize;
                    io.buf.extend_from_slice(&self.inbuf[payload_at..end]);
                } else {
                    io.buf.resize(req.len as usize, 0);
                }
                self.submit(ch, io, slot);
            }
            proto::CMD_FLUSH => {
                let slot = self.take_slot(&req, false);
                let mut io = self.pool.get();
                io.io_type = IoType::Flush;
                self.submit(ch, io, slot);
            }
            proto::CMD_TRIM => {
                // A hint the protocol lets a server ignore; the range is still checked.
                let (error, message) = Self::range(ex, &req, proto::EINVAL)
                    .err()
                    .unwrap_or((0, ""));
                self.reply_status(req.handle, error, message, None);
            }
            proto::CMD_WRITE_ZEROES => match Self::range(ex, &req, proto::ENOSPC) {
                Err(e) => self.refuse(req.handle, e),
                Ok(_) => {
                    let slot = self.take_slot(&req, false);
                    if let Some(s) = self.slots.get_mut(slot as usize) {
                        s.fua = req.flags & proto::CMD_FLAG_FUA != 0;
                        s.zero_next = req.offset;
                        s.zero_end = req.offset + u64::from(req.len);
                    }
                    let io = self.pool.get();
                    self.submit_zero_chunk(ch, ex.block_size, io, slot);
                }
            },
            _ => self.refuse(req.handle, (proto::EINVAL, MSG_UNKNOWN_CMD)),
        }
    }

    fn set_fua(&mut self, slot: u32, fua: bool) {
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.fua = fua;
        }
    }

    fn take_slot(&mut self, req: &Request, read: bool) -> u32 {
        let slot = Slot {
            handle: req.handle,
            offset: req.offset,
            len: req.len,
            read,
            ..Slot::default()
        };
        match self.free_slots.pop() {
            Some(i) => {
                if let Some(s) = self.slots.get_mut(i as usize) {
                    *s = slot;
                }
                i
            }
            None => {
                self.slots.push(slot);
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        }
    }

    /// Fills `io` with the next chunk of the write-zeroes in `slot` and submits it.
    fn submit_zero_chunk(&mut self, ch: &dyn IoChannel, bs: u32, mut io: Box<BdevIo>, slot: u32) {
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return self.pool.put(io);
        };
        let len = (s.zero_end - s.zero_next).min(ZERO_CHUNK_BYTES);
        let bs = u64::from(bs);
        io.io_type = IoType::Write;
        io.offset_blocks = s.zero_next / bs;
        io.num_blocks = len / bs;
        io.buf.clear();
        io.buf.resize(usize::try_from(len).unwrap_or(0), 0);
        s.zero_next += len;
        self.submit(ch, io, slot);
    }

    fn submit(&mut self, ch: &dyn IoChannel, mut io: Box<BdevIo>, slot: u32) {
        io.status = IoStatus::Pending;
        io.set_group(&self.group);
        io.user_ctx = u64::from(slot);
        frontend::submit_or_park(ch, io, &self.cb, &mut self.outstanding, &mut self.parked);
    }

    fn retry_parked(&mut self, ch: &dyn IoChannel) -> bool {
        if self.parked.is_empty() {
            return false;
        }
        let parked = std::mem::take(&mut self.parked);
        let mut busy = false;
        for io in parked {
            if !self.parked.is_empty() {
                self.parked.push(io);
                continue;
            }
            busy |=
                frontend::submit_or_park(ch, io, &self.cb, &mut self.outstanding, &mut self.parked);
        }
        busy
    }

    /// Handles the completions queued since the last pass.
    fn reap(&mut self, ex: &ExportInfo, ch: &dyn IoChannel) -> bool {
        std::mem::swap(&mut *self.done.borrow_mut(), &mut self.done_spare);
        if self.done_spare.is_empty() {
            return false;
        }
        let mut done = std::mem::take(&mut self.done_spare);
        for io in done.drain(..) {
            self.complete(ex, ch, io);
        }
        self.done_spare = done;
        true
    }

    fn complete(&mut self, ex: &ExportInfo, ch: &dyn IoChannel, io: Box<BdevIo>) {
        self.outstanding = self.outstanding.saturating_sub(1);
        let slot = u32::try_from(io.user_ctx).unwrap_or(u32::MAX);
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return self.pool.put(io);
        };
        if io.status != IoStatus::Success && s.error == 0 {
            s.error = proto::EIO;
            // Where the failed I/O starts (a write-zeroes chunk's start), if it lies in
            // the request as the protocol requires.
            let at = io.offset_blocks.saturating_mul(u64::from(ex.block_size));
            let end = s.offset.saturating_add(u64::from(s.len));
            s.error_at =
                (io.io_type != IoType::Flush && (s.offset..end).contains(&at)).then_some(at);
        }
        if s.error == 0 && s.zero_next < s.zero_end && !self.closed {
            return self.submit_zero_chunk(ch, ex.block_size, io, slot);
        }
        if s.error == 0 && s.fua && !self.closed {
            // The data is written: make it durable before the reply.
            s.fua = false;
            let mut io = io;
            io.reset();
            io.io_type = IoType::Flush;
            return self.submit(ch, io, slot);
        }
        let s = *s;
        if !self.closed {
            if s.read && s.error == 0 {
                self.reply_read(s.handle, s.offset, &io.buf);
            } else {
                self.reply_status(s.handle, s.error, MSG_IO, s.error_at);
            }
        }
        self.free_slots.push(slot);
        self.pool.put(io);
    }
}

#[cfg(test)]
mod tests;
