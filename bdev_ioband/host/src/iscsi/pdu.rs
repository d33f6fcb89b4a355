//! The iSCSI PDU codec (RFC 7143 section 11): the 48-byte basic header segment, framing
//! (AHS, header digest, data segment padded to 4 bytes, data digest), and the builders of
//! every PDU the target sends. Parsing never panics: a header is checked before any field
//! is trusted, lengths are bounded by the caller's limit.
//!
//! Threading: pure functions over byte buffers.

use thiserror::Error;

use super::crc32c::crc32c;

/// Length of the basic header segment.
pub const BHS_LEN: usize = 48;
/// The reserved tag: no task / no transfer tag.
pub const RESERVED_TAG: u32 = 0xffff_ffff;

/// Initiator opcodes.
pub mod op {
    /// NOP-Out.
    pub const NOP_OUT: u8 = 0x00;
    /// SCSI Command.
    pub const SCSI_CMD: u8 = 0x01;
    /// Task Management Function Request.
    pub const TMF_REQ: u8 = 0x02;
    /// Login Request.
    pub const LOGIN_REQ: u8 = 0x03;
    /// Text Request.
    pub const TEXT_REQ: u8 = 0x04;
    /// SCSI Data-Out.
    pub const DATA_OUT: u8 = 0x05;
    /// Logout Request.
    pub const LOGOUT_REQ: u8 = 0x06;
    /// SNACK Request.
    pub const SNACK: u8 = 0x10;
    /// NOP-In.
    pub const NOP_IN: u8 = 0x20;
    /// SCSI Response.
    pub const SCSI_RESP: u8 = 0x21;
    /// Task Management Function Response.
    pub const TMF_RESP: u8 = 0x22;
    /// Login Response.
    pub const LOGIN_RESP: u8 = 0x23;
    /// Text Response.
    pub const TEXT_RESP: u8 = 0x24;
    /// SCSI Data-In.
    pub const DATA_IN: u8 = 0x25;
    /// Logout Response.
    pub const LOGOUT_RESP: u8 = 0x26;
    /// Ready To Transfer.
    pub const R2T: u8 = 0x31;
    /// Reject.
    pub const REJECT: u8 = 0x3f;
}

/// Reject reasons.
pub mod reject {
    /// Data (payload) digest error.
    pub const DATA_DIGEST: u8 = 0x02;
    /// SNACK reject.
    pub const SNACK: u8 = 0x03;
    /// Protocol error.
    pub const PROTOCOL_ERROR: u8 = 0x04;
    /// Command not supported.
    pub const NOT_SUPPORTED: u8 = 0x05;
    /// Invalid PDU field.
    pub const INVALID_FIELD: u8 = 0x09;
}

/// Why input could not be framed; each closes the connection.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PduError {
    /// The data segment is longer than the receiver declared.
    #[error("data segment of {len} bytes exceeds MaxRecvDataSegmentLength {max}")]
    TooLong {
        /// Its length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// The header digest does not match.
    #[error("header digest mismatch")]
    HeaderDigest,
    /// The data digest does not match.
    #[error("data digest mismatch")]
    DataDigest,
}

/// A parsed basic header segment with the framing of its PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bhs {
    /// The raw 48 bytes.
    pub raw: [u8; BHS_LEN],
}

impl Bhs {
    /// The opcode (6 bits).
    pub fn opcode(&self) -> u8 {
        self.raw[0] & 0x3f
    }
    /// The immediate bit.
    pub fn immediate(&self) -> bool {
        self.raw[0] & 0x40 != 0
    }
    /// Byte 1 (the F bit and opcode-specific flags).
    pub fn flags(&self) -> u8 {
        self.raw[1]
    }
    /// The final bit.
    pub fn is_final(&self) -> bool {
        self.raw[1] & 0x80 != 0
    }
    /// TotalAHSLength in bytes.
    pub fn ahs_len(&self) -> usize {
        usize::from(self.raw[4]) * 4
    }
    /// DataSegmentLength.
    pub fn data_len(&self) -> u32 {
        u32::from_be_bytes([0, self.raw[5], self.raw[6], self.raw[7]])
    }
    /// The 8-byte LUN field.
    pub fn lun(&self) -> [u8; 8] {
        let mut l = [0u8; 8];
        l.copy_from_slice(&self.raw[8..16]);
        l
    }
    /// A big-endian u32 at `at` (callers pass offsets inside the header).
    pub fn u32_at(&self, at: usize) -> u32 {
        self.raw
            .get(at..at + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A big-endian u16 at `at`.
    pub fn u16_at(&self, at: usize) -> u16 {
        self.raw
            .get(at..at + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    }
    /// Initiator task tag.
    pub fn itt(&self) -> u32 {
        self.u32_at(16)
    }
    /// CmdSN (requests).
    pub fn cmd_sn(&self) -> u32 {
        self.u32_at(24)
    }
}

/// Digests in force on a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digests {
    /// CRC32C header digest.
    pub header: bool,
    /// CRC32C data digest.
    pub data: bool,
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// One framed PDU: its header and where its data segment lies in the input.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// The header.
    pub bhs: Bhs,
    /// Offset of the data segment in the buffer given to [`parse`].
    pub data_at: usize,
    /// Its length.
    pub data_len: usize,
    /// Bytes the whole PDU takes.
    pub total: usize,
}

/// Frames the PDU at the start of `buf`: `Ok(None)` until all of it is there.
pub fn parse(buf: &[u8], digests: Digests, max_data: u32) -> Result<Option<Frame>, PduError> {
    let Some(head) = buf.get(..BHS_LEN) else {
        return Ok(None);
    };
    let mut raw = [0u8; BHS_LEN];
    raw.copy_from_slice(head);
    let bhs = Bhs { raw };
    let len = bhs.data_len();
    if len > max_data {
        return Err(PduError::TooLong { len, max: max_data });
    }
    let header_end = BHS_LEN + bhs.ahs_len();
    let data_at = header_end + if digests.header { 4 } else { 0 };
    let data_len = len as usize;
    let dd = if digests.data && data_len > 0 { 4 } else { 0 };
    let total = data_at + data_len + pad4(data_len) + dd;
    if buf.len() < total {
        return Ok(None);
    }
    if digests.header {
        let got = le32(&buf[header_end..data_at]);
        if got != crc32c(&buf[..header_end]) {
            return Err(PduError::HeaderDigest);
        }
    }
    if dd == 4 {
        let padded_end = data_at + data_len + pad4(data_len);
        if le32(&buf[padded_end..total]) != crc32c(&buf[data_at..padded_end]) {
            return Err(PduError::DataDigest);
        }
    }
    Ok(Some(Frame {
        bhs,
        data_at,
        data_len,
        total,
    }))
}

fn le32(b: &[u8]) -> u32 {
    b.iter()
        .take(4)
        .enumerate()
        .fold(0, |v, (i, &x)| v | (u32::from(x) << (8 * i)))
}

/// Appends a PDU: `bhs` (its DataSegmentLength is set here), digests, `data` padded.
pub fn emit(out: &mut Vec<u8>, mut bhs: [u8; BHS_LEN], data: &[u8], digests: Digests) {
    let len = u32::try_from(data.len()).unwrap_or(0).min(0xff_ffff);
    bhs[4] = 0;
    bhs[5..8].copy_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&bhs);
    if digests.header {
        out.extend_from_slice(&crc32c(&bhs).to_le_bytes());
    }
    if data.is_empty() {
        return;
    }
    let start = out.len();
    out.extend_from_slice(data);
    out.extend(std::iter::repeat(0).take(pad4(data.len())));
    if digests.data {
        let crc = crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }
}

/// A header with `opcode`, byte 1 and the task tag set.
pub fn header(opcode: u8, flags: u8, itt: u32) -> [u8; BHS_LEN] {
    let mut h = [0u8; BHS_LEN];
    h[0] = opcode;
    h[1] = flags;
    h[16..20].copy_from_slice(&itt.to_be_bytes());
    h
}

/// Writes a big-endian u32 at `at`.
pub fn put32(h: &mut [u8; BHS_LEN], at: usize, v: u32) {
    if let Some(b) = h.get_mut(at..at + 4) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

/// Writes a big-endian u16 at `at`.
pub fn put16(h: &mut [u8; BHS_LEN], at: usize, v: u16) {
    if let Some(b) = h.get_mut(at..at + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

/// The sequence numbers every response carries: StatSN (24), ExpCmdSN (28), MaxCmdSN (32).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sns {
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
}

impl Sns {
    /// Writes them into a header.
    pub fn put(&self, h: &mut [u8; BHS_LEN]) {
        put32(h, 24, self.stat_sn);
        put32(h, 28, self.exp_cmd_sn);
        put32(h, 32, self.max_cmd_sn);
    }
}

/// A Reject of the PDU `rejected`.
pub fn reject(out: &mut Vec<u8>, reason: u8, rejected: &Bhs, sns: Sns, d: Digests) {
    let mut h = header(op::REJECT, 0x80, RESERVED_TAG);
    h[2] = reason;
    sns.put(&mut h);
    emit(out, h, &rejected.raw, d);
}

#[cfg(test)]
mod tests;
