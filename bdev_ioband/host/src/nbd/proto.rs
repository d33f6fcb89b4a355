//! The NBD wire format (the newstyle fixed handshake and the transmission phase, see
//! NetworkBlockDevice/nbd `doc/proto.md`): constants, and pure parsers and writers over
//! byte slices: option replies, simple replies and structured reply chunks. Nothing here
//! does I/O; the connection code feeds it what it has read. The writers append to a
//! caller's buffer, so a connection that reuses its output buffer does not allocate.
//!
//! Threading: plain functions, no state.

use thiserror::Error;

/// `NBDMAGIC`, the first 8 bytes the server sends.
pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: the second 8 bytes the server sends, and the magic of every option.
pub const IHAVEOPT: u64 = 0x4948_4156_454F_5054;
/// Magic of an option reply.
pub const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Magic of a request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Magic of a simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// Magic of a structured reply chunk.
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

/// Handshake flag: the server speaks the fixed newstyle.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1;
/// Handshake flag: the 124 zero bytes after `NBD_OPT_EXPORT_NAME` may be left out.
pub const FLAG_NO_ZEROES: u16 = 2;
/// Client flags the server knows (fixed newstyle, no zeroes).
pub const KNOWN_CLIENT_FLAGS: u32 = 0b11;

/// Transmission flags.
pub const TFLAG_HAS_FLAGS: u16 = 1;
/// The export takes `NBD_CMD_FLUSH`.
pub const TFLAG_SEND_FLUSH: u16 = 1 << 2;
/// The export takes `NBD_CMD_FLAG_FUA`.
pub const TFLAG_SEND_FUA: u16 = 1 << 3;
/// The export takes `NBD_CMD_TRIM`.
pub const TFLAG_SEND_TRIM: u16 = 1 << 5;
/// The export takes `NBD_CMD_WRITE_ZEROES`.
pub const TFLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;
/// The export takes `NBD_CMD_FLAG_DF` on reads (only with structured replies).
pub const TFLAG_SEND_DF: u16 = 1 << 7;
/// Flushes and FUA cover the writes of every connection to the export.
pub const TFLAG_CAN_MULTI_CONN: u16 = 1 << 8;

/// Options.
pub const OPT_EXPORT_NAME: u32 = 1;
/// Abort the handshake.
pub const OPT_ABORT: u32 = 2;
/// List the exports.
pub const OPT_LIST: u32 = 3;
/// Information about an export.
pub const OPT_INFO: u32 = 6;
/// Information, then the transmission phase.
pub const OPT_GO: u32 = 7;
/// Structured replies in the transmission phase.
pub const OPT_STRUCTURED_REPLY: u32 = 8;
/// List metadata contexts (after structured replies).
pub const OPT_LIST_META_CONTEXT: u32 = 9;
/// Select metadata contexts (after structured replies).
pub const OPT_SET_META_CONTEXT: u32 = 10;
/// Extended headers (not supported: answered `NBD_REP_ERR_UNSUP`).
pub const OPT_EXTENDED_HEADERS: u32 = 11;

/// Option reply types.
pub const REP_ACK: u32 = 1;
/// One export of a list.
pub const REP_SERVER: u32 = 2;
/// One piece of information.
pub const REP_INFO: u32 = 3;
/// One metadata context (none is offered: never sent).
pub const REP_META_CONTEXT: u32 = 4;
/// The option is not supported.
pub const REP_ERR_UNSUP: u32 = (1 << 31) | 1;
/// The option's data is malformed.
pub const REP_ERR_INVALID: u32 = (1 << 31) | 3;
/// No export of that name.
pub const REP_ERR_UNKNOWN: u32 = (1 << 31) | 6;

/// Information types of `NBD_OPT_INFO`/`NBD_OPT_GO`.
pub const INFO_EXPORT: u16 = 0;
/// Block size constraints.
pub const INFO_BLOCK_SIZE: u16 = 3;

/// Commands.
pub const CMD_READ: u16 = 0;
/// Write.
pub const CMD_WRITE: u16 = 1;
/// Disconnect.
pub const CMD_DISC: u16 = 2;
/// Flush.
pub const CMD_FLUSH: u16 = 3;
/// Trim (a hint: the data may be discarded).
pub const CMD_TRIM: u16 = 4;
/// Write zeroes.
pub const CMD_WRITE_ZEROES: u16 = 6;
/// Block status (needs a metadata context; none is offered).
pub const CMD_BLOCK_STATUS: u16 = 7;
/// Command flag: force unit access.
pub const CMD_FLAG_FUA: u16 = 1;
/// Command flag of write-zeroes: do not leave a hole (always so here).
pub const CMD_FLAG_NO_HOLE: u16 = 1 << 1;
/// Command flag of reads: at most one content chunk (only with `TFLAG_SEND_DF`).
pub const CMD_FLAG_DF: u16 = 1 << 2;

/// Structured reply flag: the last chunk of its reply.
pub const REPLY_FLAG_DONE: u16 = 1;
/// Chunk type: nothing (the reply is done; success unless an error chunk came before).
pub const REPLY_TYPE_NONE: u16 = 0;
/// Chunk type: data at an offset.
pub const REPLY_TYPE_OFFSET_DATA: u16 = 1;
/// Chunk type: an error, with a message.
pub const REPLY_TYPE_ERROR: u16 = (1 << 15) | 1;
/// Chunk type: an error at an offset, with a message.
pub const REPLY_TYPE_ERROR_OFFSET: u16 = (1 << 15) | 2;

/// Error values of replies (Linux errno numbers, as the protocol defines them).
pub const EIO: u32 = 5;
/// Invalid argument (misaligned, out of range, unknown command).
pub const EINVAL: u32 = 22;
/// Write past the end.
pub const ENOSPC: u32 = 28;
/// Request larger than the server takes.
pub const EOVERFLOW: u32 = 75;
/// The server is going away.
pub const ESHUTDOWN: u32 = 108;

/// Bytes of an option header (magic, option, length).
pub const OPTION_HEADER_LEN: usize = 16;
/// Bytes of a request header.
pub const REQUEST_LEN: usize = 28;
/// Bytes of a simple reply header.
pub const SIMPLE_REPLY_LEN: usize = 16;
/// Bytes of a structured reply chunk header.
pub const STRUCTURED_REPLY_LEN: usize = 20;
/// Bytes of an `NBD_REPLY_TYPE_OFFSET_DATA` payload before the data (the offset).
pub const OFFSET_DATA_PREFIX: usize = 8;
/// Longest error message sent in an error chunk (the protocol's string limit).
pub const MAX_ERROR_MESSAGE: usize = 4096;
/// Longest option data accepted (names are at most 4096 bytes in the protocol).
pub const MAX_OPTION_LEN: u32 = 64 * 1024;

/// Why a client's bytes are malformed: the connection closes with this as its reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtoError {
    /// Client flags with bits the server does not know.
    #[error("unknown client flags {0:#x}")]
    ClientFlags(u32),
    /// An option without the `IHAVEOPT` magic.
    #[error("option magic {0:#x} is not IHAVEOPT")]
    OptionMagic(u64),
    /// An option whose data is longer than [`MAX_OPTION_LEN`].
    #[error("option {option} announces {len} bytes (at most {MAX_OPTION_LEN})")]
    OptionTooLong {
        /// The option.
        option: u32,
        /// Its announced length.
        len: u32,
    },
    /// A request without the request magic.
    #[error("request magic {0:#x} is not {REQUEST_MAGIC:#x}")]
    RequestMagic(u32),
    /// A write larger than the server takes.
    #[error("write of {len} bytes is larger than {max}")]
    WriteTooLong {
        /// Its length.
        len: u32,
        /// The most taken.
        max: u32,
    },
}

fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

/// The server's first 18 bytes.
pub fn greeting(out: &mut Vec<u8>) {
    out.extend_from_slice(&NBDMAGIC.to_be_bytes());
    out.extend_from_slice(&IHAVEOPT.to_be_bytes());
    out.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
}

/// The client's flags, once 4 bytes are there.
pub fn parse_client_flags(buf: &[u8]) -> Result<Option<u32>, ProtoError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let flags = be_u32(buf, 0);
    if flags & !KNOWN_CLIENT_FLAGS != 0 {
        return Err(ProtoError::ClientFlags(flags));
    }
    Ok(Some(flags))
}

/// An option header: which option and how many data bytes follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionHeader {
    /// The option.
    pub option: u32,
    /// Bytes of data after the header.
    pub len: u32,
}

/// Parses an option header once [`OPTION_HEADER_LEN`] bytes are there.
pub fn parse_option_header(buf: &[u8]) -> Result<Option<OptionHeader>, ProtoError> {
    if buf.len() < OPTION_HEADER_LEN {
        return Ok(None);
    }
    let magic = be_u64(buf, 0);
    if magic != IHAVEOPT {
        return Err(ProtoError::OptionMagic(magic));
    }
    let (option, len) = (be_u32(buf, 8), be_u32(buf, 12));
    if len > MAX_OPTION_LEN {
        return Err(ProtoError::OptionTooLong { option, len });
    }
    Ok(Some(OptionHeader { option, len }))
}

/// The data of `NBD_OPT_INFO`/`NBD_OPT_GO`: the export name and the information types
/// asked for; `None` when the data does not have that shape (answered `ERR_INVALID`).
pub fn parse_info_request(data: &[u8]) -> Option<(&[u8], Vec<u16>)> {
    if data.len() < 4 {
        return None;
    }
    let name_len = be_u32(data, 0) as usize;
    let rest = &data[4..];
    if rest.len() < name_len.checked_add(2)? {
        return None;
    }
    let name = &rest[..name_len];
    let count = usize::from(be_u16(rest, name_len));
    let infos = &rest[name_len + 2..];
    if infos.len() != count * 2 {
        return None;
    }
    Some((name, (0..count).map(|i| be_u16(infos, i * 2)).collect()))
}

/// Splits a 32-bit big-endian length and that many bytes off the front of `data`.
fn take_string(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = take_u32(data)?;
    let len = usize::try_from(len).ok()?;
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

/// Splits a 32-bit big-endian number off the front of `data`.
fn take_u32(data: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = data.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*head), rest))
}

/// The data of `NBD_OPT_LIST_META_CONTEXT`/`NBD_OPT_SET_META_CONTEXT`: the export name and
/// the queries; `None` when the data does not have that shape (a length past the end, bytes
/// left over), which is answered `ERR_INVALID`. The query count is not trusted: each query
/// takes at least 4 bytes of data, so at most a quarter of the data's length are read.
pub fn parse_meta_context_request(data: &[u8]) -> Option<(&[u8], Vec<&[u8]>)> {
    let (name, rest) = take_string(data)?;
    let (count, mut rest) = take_u32(rest)?;
    let mut queries = Vec::new();
    for _ in 0..count {
        let (q, r) = take_string(rest)?;
        queries.push(q);
        rest = r;
    }
    rest.is_empty().then_some((name, queries))
}

/// Appends an option reply.
pub fn option_reply(out: &mut Vec<u8>, option: u32, reply: u32, data: &[u8]) {
    out.extend_from_slice(&OPT_REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&reply.to_be_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(data);
}

/// The data of `NBD_INFO_EXPORT`.
pub fn info_export(size: u64, flags: u16) -> [u8; 12] {
    let mut d = [0u8; 12];
    d[..2].copy_from_slice(&INFO_EXPORT.to_be_bytes());
    d[2..10].copy_from_slice(&size.to_be_bytes());
    d[10..].copy_from_slice(&flags.to_be_bytes());
    d
}

/// The data of `NBD_INFO_BLOCK_SIZE`.
pub fn info_block_size(min: u32, preferred: u32, max: u32) -> [u8; 14] {
    let mut d = [0u8; 14];
    d[..2].copy_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
    d[2..6].copy_from_slice(&min.to_be_bytes());
    d[6..10].copy_from_slice(&preferred.to_be_bytes());
    d[10..].copy_from_slice(&max.to_be_bytes());
    d
}

/// The reply to `NBD_OPT_EXPORT_NAME`: size, flags and (unless the client asked for no
/// zeroes) 124 zero bytes.
pub fn export_name_reply(out: &mut Vec<u8>, size: u64, flags: u16, no_zeroes: bool) {
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    if !no_zeroes {
        out.extend_from_slice(&[0u8; 124]);
    }
}

/// One request of the transmission phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Command flags.
    pub flags: u16,
    /// The command.
    pub cmd: u16,
    /// The client's handle, echoed in the reply.
    pub handle: u64,
    /// Byte offset.
    pub offset: u64,
    /// Byte length.
    pub len: u32,
}

impl Request {
    /// Bytes of payload that follow the header (a write's data).
    pub fn payload_len(&self) -> usize {
        if self.cmd == CMD_WRITE {
            self.len as usize
        } else {
            0
        }
    }
}

/// Parses a request header once [`REQUEST_LEN`] bytes are there; a write longer than
/// `max_write` is malformed (its payload cannot be taken).
pub fn parse_request(buf: &[u8], max_write: u32) -> Result<Option<Request>, ProtoError> {
    if buf.len() < REQUEST_LEN {
        return Ok(None);
    }
    let magic = be_u32(buf, 0);
    if magic != REQUEST_MAGIC {
        return Err(ProtoError::RequestMagic(magic));
    }
    let req = Request {
        flags: be_u16(buf, 4),
        cmd: be_u16(buf, 6),
        handle: be_u64(buf, 8),
        offset: be_u64(buf, 16),
        len: be_u32(buf, 24),
    };
    if req.cmd == CMD_WRITE && req.len > max_write {
        return Err(ProtoError::WriteTooLong {
            len: req.len,
            max: max_write,
        });
    }
    Ok(Some(req))
}

/// Appends a simple reply header.
pub fn simple_reply(out: &mut Vec<u8>, error: u32, handle: u64) {
    out.extend_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(&handle.to_be_bytes());
}

/// Appends a structured reply chunk header whose payload (`len` bytes) the caller appends.
pub fn chunk_header(out: &mut Vec<u8>, flags: u16, kind: u16, handle: u64, len: u32) {
    out.extend_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&handle.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
}

/// Appends the final `NBD_REPLY_TYPE_NONE` chunk: the request succeeded (no error chunk
/// came before it).
pub fn chunk_none(out: &mut Vec<u8>, handle: u64) {
    chunk_header(out, REPLY_FLAG_DONE, REPLY_TYPE_NONE, handle, 0);
}

/// Appends an `NBD_REPLY_TYPE_OFFSET_DATA` chunk with `data`, read from `offset`; `done`
/// marks it the last chunk of its reply. `None` (nothing appended) when `data` does not fit
/// a chunk (more than 2^32 - 9 bytes).
pub fn chunk_offset_data(
    out: &mut Vec<u8>,
    handle: u64,
    offset: u64,
    data: &[u8],
    done: bool,
) -> Option<()> {
    let len = u32::try_from(data.len().checked_add(OFFSET_DATA_PREFIX)?).ok()?;
    let flags = if done { REPLY_FLAG_DONE } else { 0 };
    chunk_header(out, flags, REPLY_TYPE_OFFSET_DATA, handle, len);
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(data);
    Some(())
}

/// Appends the final error chunk of a reply: `NBD_REPLY_TYPE_ERROR_OFFSET` when `offset`
/// is given (where in the request the error is), else `NBD_REPLY_TYPE_ERROR`. `error` is
/// an errno value (an error of 0 would read as success: it is sent as `EIO`); `message`
/// is for a human and cut to [`MAX_ERROR_MESSAGE`] bytes (on a character boundary).
pub fn chunk_error(out: &mut Vec<u8>, handle: u64, error: u32, message: &str, offset: Option<u64>) {
    let error = if error == 0 { EIO } else { error };
    let mut cut = message.len().min(MAX_ERROR_MESSAGE);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let message = message.as_bytes().get(..cut).unwrap_or_default();
    // At most 4096 bytes: the casts cannot truncate.
    let msg_len = u16::try_from(message.len()).unwrap_or(0);
    let (kind, tail) = match offset {
        Some(_) => (REPLY_TYPE_ERROR_OFFSET, 8),
        None => (REPLY_TYPE_ERROR, 0),
    };
    let len = 6 + u32::from(msg_len) + tail;
    chunk_header(out, REPLY_FLAG_DONE, kind, handle, len);
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(&msg_len.to_be_bytes());
    out.extend_from_slice(message.get(..usize::from(msg_len)).unwrap_or_default());
    if let Some(offset) = offset {
        out.extend_from_slice(&offset.to_be_bytes());
    }
}

#[cfg(test)]
pub(crate) mod tests;
