//! One SCSI command as a state machine: [`Task::new`] decodes and checks the CDB against
//! the unit and the data-out buffer; [`Task::next`] yields the block requests one at a
//! time (filling or sizing the caller's buffer); [`Task::complete`] takes each result back;
//! when `next` says [`Next::Done`], [`Task::into_response`] gives status, sense and
//! data-in.
//!
//! Threading: plain data, owned by the connection that runs it.

use super::pages::{self, PERIPHERAL_NONE};
use super::{LunInfo, Sense, CHUNK_BYTES, MAX_COMPARE_AND_WRITE_BLOCKS, MAX_TRANSFER_BYTES};
use super::{MAX_UNMAP_DESCRIPTORS, STATUS_CHECK_CONDITION, STATUS_GOOD};

/// What a block request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockOp {
    /// Read the range into the buffer.
    Read,
    /// Write the buffer to the range.
    Write,
    /// Flush the device's cache.
    Flush,
}

/// One block request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockReq {
    /// What to do.
    pub op: BlockOp,
    /// First block.
    pub offset_blocks: u64,
    /// Blocks (0 for a flush).
    pub num_blocks: u64,
}

/// What a task wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Submit this request (the buffer given to `next` holds its data or room for it).
    Submit(BlockReq),
    /// A request is in flight: wait for its completion.
    Wait,
    /// Finished: take the response.
    Done,
}

/// The outcome of a command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// SCSI status.
    pub status: u8,
    /// Sense data for CHECK CONDITION.
    pub sense: Option<Sense>,
    /// Data-in, already cut to the allocation length.
    pub data_in: Vec<u8>,
    /// The transfer length the command itself implies (bytes of data-out it needs, or of
    /// data-in it produced): a transport's residual is the difference to its own.
    pub transfer_bytes: u64,
}

#[derive(Debug)]
enum State {
    Done,
    Read {
        lba: u64,
        blocks: u64,
    },
    Write {
        lba: u64,
        blocks: u64,
        fua: bool,
        verify: bool,
    },
    /// Data-out ends inside its last block: read that block to complete it, then write.
    ReadTail {
        lba: u64,
        blocks: u64,
        fua: bool,
        verify: bool,
    },
    Flush,
    /// Write `pattern` (one block; empty: zeros) over each range, a chunk at a time.
    Fill {
        ranges: Vec<(u64, u64)>,
        pattern: Vec<u8>,
    },
    /// Read the range a chunk at a time; compare with data-out (`Some(true)`: one block
    /// repeated, `Some(false)`: the whole range) or not at all.
    Verify {
        lba: u64,
        blocks: u64,
        done: u64,
        compare: Option<bool>,
    },
    /// COMPARE AND WRITE: read, compare with the first half of data-out, write the second.
    CompareAndWrite {
        lba: u64,
        blocks: u64,
        written: bool,
    },
}

/// One command; see the module doc.
#[derive(Debug)]
pub struct Task {
    state: State,
    in_flight: Option<BlockOp>,
    flush_pending: bool,
    block_size: u64,
    data_out: Vec<u8>,
    resp: Response,
}

type Checked<T> = Result<T, Sense>;

fn be(cdb: &[u8; 16], at: usize, n: usize) -> u64 {
    cdb.get(at..at + n)
        .map_or(0, |b| b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
}

fn check_range(lun: &LunInfo, lba: u64, blocks: u64) -> Checked<()> {
    match lba.checked_add(blocks) {
        Some(end) if end <= lun.num_blocks && lba <= lun.num_blocks => Ok(()),
        _ => Err(Sense::LBA_OUT_OF_RANGE),
    }
}

fn bytes(blocks: u64, lun: &LunInfo) -> u64 {
    blocks.saturating_mul(u64::from(lun.block_size))
}

impl Task {
    /// Decodes `cdb` for `lun` (`None`: no such LUN) with the target's `luns` (for REPORT
    /// LUNS) and the data-out the initiator sent.
    pub fn new(cdb: &[u8], lun: Option<&LunInfo>, luns: &[u16], data_out: Vec<u8>) -> Task {
        let mut c = [0u8; 16];
        let n = cdb.len().min(16);
        c[..n].copy_from_slice(&cdb[..n]);
        let mut t = Task {
            state: State::Done,
            in_flight: None,
            flush_pending: false,
            block_size: lun.map_or(512, |l| u64::from(l.block_size.max(1))),
            data_out,
            resp: Response::default(),
        };
        if let Err(sense) = t.decode(&c, lun, luns) {
            t.fail(sense);
        }
        t
    }

    fn fail(&mut self, sense: Sense) {
        self.state = State::Done;
        self.resp.status = STATUS_CHECK_CONDITION;
        self.resp.sense = Some(sense);
        self.resp.data_in.clear();
    }

    /// Data-in cut to `alloc` bytes.
    fn data(&mut self, mut d: Vec<u8>, alloc: u64) {
        d.truncate(usize::try_from(alloc).unwrap_or(usize::MAX));
        self.resp.transfer_bytes = d.len() as u64;
        self.resp.data_in = d;
    }

    /// Checks that data-out holds exactly `need` bytes.
    fn need_out(&mut self, need: u64) -> Checked<()> {
        self.resp.transfer_bytes = need;
        if self.data_out.len() as u64 == need {
            Ok(())
        } else {
            Err(Sense::INVALID_FIELD_IN_INFORMATION_UNIT)
        }
    }

    fn decode(&mut self, c: &[u8; 16], lun: Option<&LunInfo>, luns: &[u16]) -> Checked<()> {
        let op = c[0];
        // Commands that work without a LUN.
        match op {
            0x12 => return self.inquiry(c, lun),
            0xa0 => {
                let alloc = be(c, 6, 4);
                if alloc < 16 || c[2] > 2 {
                    return Err(Sense::INVALID_FIELD_IN_CDB);
                }
                self.data(pages::report_luns(luns), alloc);
                return Ok(());
            }
            0x03 => {
                let sense = if lun.is_some() {
                    Sense {
                        key: super::SenseKey::NoSense,
                        asc: 0,
                        ascq: 0,
                        information: None,
                        field: None,
                    }
                } else {
                    Sense::LUN_NOT_SUPPORTED
                };
                let d = if c[1] & 1 != 0 {
                    sense.to_descriptor().to_vec()
                } else {
                    sense.to_fixed().to_vec()
                };
                self.data(d, be(c, 4, 1));
                return Ok(());
            }
            _ => {}
        }
        let Some(lun) = lun else {
            return Err(Sense::LUN_NOT_SUPPORTED);
        };
        match op {
            0x00 | 0x1b | 0x1e => self.need_out(0),
            // READ/WRITE 6.
            0x08 | 0x0a => {
                let lba = be(c, 1, 3) & 0x1f_ffff;
                let blocks = match c[4] {
                    0 => 256,
                    n => u64::from(n),
                };
                self.rw(lun, op == 0x0a, lba, blocks, false, false)
            }
            // READ/WRITE/WRITE AND VERIFY 10, 12, 16.
            0x28 | 0x2a | 0x2e | 0xa8 | 0xaa | 0xae | 0x88 | 0x8a | 0x8e => {
                let (lba, blocks) = match op {
                    0x28 | 0x2a | 0x2e => (be(c, 2, 4), be(c, 7, 2)),
                    0xa8 | 0xaa | 0xae => (be(c, 2, 4), be(c, 6, 4)),
                    _ => (be(c, 2, 8), be(c, 10, 4)),
                };
                if c[1] >> 5 != 0 {
                    // RDPROTECT/WRPROTECT: no protection information here.
                    return Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(1));
                }
                let write = !matches!(op, 0x28 | 0xa8 | 0x88);
                let verify = matches!(op, 0x2e | 0xae | 0x8e);
                if verify && c[1] & 0x04 != 0 {
                    return Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(1));
                }
                self.rw(lun, write, lba, blocks, c[1] & 0x08 != 0, verify)
            }
            // VERIFY 10, 12, 16.
            0x2f | 0xaf | 0x8f => {
                let (lba, blocks) = match op {
                    0x2f => (be(c, 2, 4), be(c, 7, 2)),
                    0xaf => (be(c, 2, 4), be(c, 6, 4)),
                    _ => (be(c, 2, 8), be(c, 10, 4)),
                };
                if c[1] >> 5 != 0 {
                    return Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(1));
                }
                let compare = match (c[1] >> 1) & 3 {
                    0 => None,
                    1 => Some(false),
                    3 => Some(true),
                    _ => return Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(1)),
                };
                let need = match compare {
                    None => 0,
                    Some(false) => bytes(blocks, lun),
                    Some(true) => u64::from(lun.block_size).min(bytes(blocks, lun)),
                };
                self.need_out(need)?;
                check_range(lun, lba, blocks)?;
                if blocks > 0 {
                    self.state = State::Verify {
                        lba,
                        blocks,
                        done: 0,
                        compare,
                    };
                }
                Ok(())
            }
            // SYNCHRONIZE CACHE 10, 16.
            0x35 | 0x91 => {
                let (lba, blocks) = if op == 0x35 {
                    (be(c, 2, 4), be(c, 7, 2))
                } else {
                    (be(c, 2, 8), be(c, 10, 4))
                };
                self.need_out(0)?;
                check_range(lun, lba, blocks)?;
                self.state = State::Flush;
                Ok(())
            }
            // WRITE SAME 10, 16.
            0x41 | 0x93 => {
                let (lba, blocks) = if op == 0x41 {
                    (be(c, 2, 4), be(c, 7, 2))
                } else {
                    (be(c, 2, 8), be(c, 10, 4))
                };
                let ndob = op == 0x93 && c[1] & 0x01 != 0;
                if c[1] >> 5 != 0 || c[1] & 0x10 != 0 {
                    // WRPROTECT, ANCHOR.
                    return Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(1));
                }
                self.need_out(if ndob { 0 } else { u64::from(lun.block_size) })?;
                if blocks == 0 {
                    // WSNZ is set in the block limits page.
                    return Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(if op == 0x41 {
                        7
                    } else {
                        10
                    }));
                }
                check_range(lun, lba, blocks)?;
                let mut pattern = std::mem::take(&mut self.data_out);
                if pattern.iter().all(|&b| b == 0) {
                    pattern.clear();
                }
                self.state = State::Fill {
                    ranges: vec![(lba, blocks)],
                    pattern,
                };
                Ok(())
            }
            0x42 => self.unmap(c, lun),
            0x89 => {
                let lba = be(c, 2, 8);
                let blocks = u64::from(c[13]);
                if c[1] >> 5 != 0 {
                    return Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(1));
                }
                if c[13] > MAX_COMPARE_AND_WRITE_BLOCKS {
                    return Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(13));
                }
                let implied = self.data_out.len() as u64 / (2 * u64::from(lun.block_size.max(1)));
                if implied > u64::from(MAX_COMPARE_AND_WRITE_BLOCKS) {
                    // NUMBER OF LOGICAL BLOCKS wrapped past the limit the page reports.
                    return Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(13));
                }
                self.need_out(2 * bytes(blocks, lun))?;
                check_range(lun, lba, blocks)?;
                if blocks > 0 {
                    self.state = State::CompareAndWrite {
                        lba,
                        blocks,
                        written: false,
                    };
                }
                Ok(())
            }
            0x25 => {
                if c[8] & 1 == 0 && be(c, 2, 4) != 0 {
                    return Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(2));
                }
                self.data(pages::read_capacity10(lun), 8);
                Ok(())
            }
            0x9e => match c[1] & 0x1f {
                0x10 => {
                    self.data(pages::read_capacity16(lun), be(c, 10, 4));
                    Ok(())
                }
                _ => Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(1)),
            },
            0x1a | 0x5a => {
                let ten = op == 0x5a;
                let dbd = c[1] & 0x08 != 0;
                let d = pages::mode_sense(lun, ten, c[2], c[3], dbd)?;
                let alloc = if ten { be(c, 7, 2) } else { be(c, 4, 1) };
                self.data(d, alloc);
                Ok(())
            }
            _ => Err(Sense::INVALID_OPCODE),
        }
    }

    fn inquiry(&mut self, c: &[u8; 16], lun: Option<&LunInfo>) -> Checked<()> {
        let alloc = be(c, 3, 2);
        let evpd = c[1] & 0x01 != 0;
        if c[1] & 0x02 != 0 || (!evpd && c[2] != 0) {
            return Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(if evpd { 1 } else { 2 }));
        }
        let d = match (evpd, lun) {
            (false, lun) => pages::standard_inquiry(lun),
            (true, Some(lun)) => pages::vpd_page(lun, c[2])?,
            (true, None) => {
                let mut d = pages::vpd_page(&LunInfo::placeholder(), c[2])?;
                if let Some(p) = d.first_mut() {
                    *p = PERIPHERAL_NONE;
                }
                d
            }
        };
        self.data(d, alloc);
        Ok(())
    }

    fn rw(
        &mut self,
        lun: &LunInfo,
        write: bool,
        lba: u64,
        blocks: u64,
        fua: bool,
        verify: bool,
    ) -> Checked<()> {
        let len = bytes(blocks, lun);
        let mut blocks = blocks;
        let mut tail = false;
        if write {
            // A transport length that differs from the CDB's (FCP-4 / SAM residuals): the
            // command runs, only the bytes both allow are written; a partial last block
            // is merged with what the medium holds.
            self.resp.transfer_bytes = len;
            let have = self.data_out.len() as u64;
            if have > len {
                self.data_out.truncate(usize::try_from(len).unwrap_or(0));
            } else if have < len {
                let bs = u64::from(lun.block_size.max(1));
                blocks = have.div_ceil(bs);
                tail = have % bs != 0;
            }
        } else {
            // Data-out sent with a read (the transport flagged it a write) is ignored.
            self.resp.transfer_bytes = len;
        }
        check_range(lun, lba, blocks)?;
        if len > u64::from(MAX_TRANSFER_BYTES) {
            return Err(Sense::INVALID_FIELD_IN_CDB);
        }
        if tail {
            self.state = State::ReadTail {
                lba,
                blocks,
                fua,
                verify,
            };
        } else if blocks > 0 {
            self.state = if write {
                State::Write {
                    lba,
                    blocks,
                    fua,
                    verify,
                }
            } else {
                State::Read { lba, blocks }
            };
        }
        Ok(())
    }

    fn unmap(&mut self, c: &[u8; 16], lun: &LunInfo) -> Checked<()> {
        if c[1] & 0x01 != 0 {
            return Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(1)); // ANCHOR
        }
        let list_len = be(c, 7, 2);
        self.need_out(list_len)?;
        if list_len == 0 {
            return Ok(());
        }
        if list_len < 8 {
            return Err(Sense::PARAMETER_LIST_LENGTH_ERROR);
        }
        let p = std::mem::take(&mut self.data_out);
        let desc_len = p
            .get(2..4)
            .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
        let descs = p.get(8..).unwrap_or(&[]);
        let desc_len = desc_len.min(descs.len()) / 16 * 16;
        if desc_len / 16 > MAX_UNMAP_DESCRIPTORS as usize {
            return Err(Sense::INVALID_FIELD_IN_PARAMETER_LIST);
        }
        let mut ranges = Vec::with_capacity(desc_len / 16);
        for d in descs[..desc_len].chunks_exact(16) {
            let lba = d[..8].iter().fold(0u64, |v, &x| (v << 8) | u64::from(x));
            let count = d[8..12].iter().fold(0u64, |v, &x| (v << 8) | u64::from(x));
            check_range(lun, lba, count)?;
            if count > 0 {
                ranges.push((lba, count));
            }
        }
        // Zeroing is idempotent: overlapping and adjacent ranges merge into one write
        // sequence (a list of one-block descriptors costs one pass, not one per block).
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (lba, count) in ranges {
            match merged.last_mut() {
                Some((l, c)) if lba <= *l + *c => *c = (*c).max(lba + count - *l),
                _ => merged.push((lba, count)),
            }
        }
        self.state = State::Fill {
            ranges: merged,
            pattern: Vec::new(),
        };
        Ok(())
    }

    /// The next request: `buf` is filled with a write's data or sized for a read's.
    pub fn next(&mut self, buf: &mut Vec<u8>) -> Next {
        if self.in_flight.is_some() {
            return Next::Wait;
        }
        let bs = self.block_size;
        let chunk_blocks = (CHUNK_BYTES / bs).max(1);
        let req = |op, offset_blocks, num_blocks| BlockReq {
            op,
            offset_blocks,
            num_blocks,
        };
        if self.flush_pending {
            self.flush_pending = false;
            return self.submit(req(BlockOp::Flush, 0, 0));
        }
        let r = match &mut self.state {
            State::Done => return Next::Done,
            State::Flush => req(BlockOp::Flush, 0, 0),
            State::ReadTail { lba, blocks, .. } => {
                buf.clear();
                buf.resize(usize::try_from(bs).unwrap_or(0), 0);
                req(BlockOp::Read, *lba + *blocks - 1, 1)
            }
            State::Read { lba, blocks } => {
                buf.clear();
                buf.resize(usize::try_from(*blocks * bs).unwrap_or(0), 0);
                req(BlockOp::Read, *lba, *blocks)
            }
            State::Write {
                lba,
                blocks,
                verify,
                ..
            } => {
                if *verify {
                    buf.clear();
                    buf.extend_from_slice(&self.data_out);
                } else {
                    std::mem::swap(buf, &mut self.data_out);
                }
                req(BlockOp::Write, *lba, *blocks)
            }
            State::Fill { ranges, pattern } => {
                let Some((lba, count)) = ranges.first_mut() else {
                    self.state = State::Done;
                    return Next::Done;
                };
                let n = (*count).min(chunk_blocks);
                let r = req(BlockOp::Write, *lba, n);
                *lba += n;
                *count -= n;
                if *count == 0 {
                    ranges.remove(0);
                }
                buf.clear();
                if pattern.is_empty() {
                    buf.resize(usize::try_from(n * bs).unwrap_or(0), 0);
                } else {
                    for _ in 0..n {
                        buf.extend_from_slice(pattern);
                    }
                }
                r
            }
            State::Verify {
                lba, blocks, done, ..
            } => {
                let n = (*blocks - *done).min(chunk_blocks);
                buf.clear();
                buf.resize(usize::try_from(n * bs).unwrap_or(0), 0);
                req(BlockOp::Read, *lba + *done, n)
            }
            State::CompareAndWrite {
                lba,
                blocks,
                written,
            } => {
                buf.clear();
                let half = usize::try_from(*blocks * bs).unwrap_or(0);
                if *written {
                    buf.extend_from_slice(self.data_out.get(half..).unwrap_or(&[]));
                    req(BlockOp::Write, *lba, *blocks)
                } else {
                    buf.resize(half, 0);
                    req(BlockOp::Read, *lba, *blocks)
                }
            }
        };
        self.submit(r)
    }

    fn submit(&mut self, r: BlockReq) -> Next {
        self.in_flight = Some(r.op);
        Next::Submit(r)
    }

    /// The result of the request in flight; `buf` is its buffer (a read's data).
    pub fn complete(&mut self, ok: bool, buf: &mut Vec<u8>) {
        let Some(op) = self.in_flight.take() else {
            return;
        };
        if !ok {
            return self.fail(match op {
                BlockOp::Read => Sense::READ_ERROR,
                _ => Sense::WRITE_ERROR,
            });
        }
        let bs = self.block_size;
        match &mut self.state {
            State::Done => {}
            State::Flush => self.state = State::Done,
            State::ReadTail {
                lba,
                blocks,
                fua,
                verify,
            } => {
                let rem = self.data_out.len() % usize::try_from(bs).unwrap_or(1).max(1);
                self.data_out
                    .extend_from_slice(buf.get(rem..).unwrap_or(&[]));
                self.state = State::Write {
                    lba: *lba,
                    blocks: *blocks,
                    fua: *fua,
                    verify: *verify,
                };
            }
            State::Read { .. } => {
                std::mem::swap(&mut self.resp.data_in, buf);
                self.state = State::Done;
            }
            State::Write {
                lba,
                blocks,
                fua,
                verify,
            } => {
                if *verify && op == BlockOp::Write {
                    // Read back what was written and compare it with data-out.
                    self.state = State::Verify {
                        lba: *lba,
                        blocks: *blocks,
                        done: 0,
                        compare: Some(false),
                    };
                } else {
                    self.flush_pending = *fua && op == BlockOp::Write;
                    self.state = State::Done;
                }
            }
            State::Fill { ranges, .. } => {
                if ranges.is_empty() {
                    self.state = State::Done;
                }
            }
            State::Verify {
                blocks,
                done,
                compare,
                ..
            } => {
                let offset = usize::try_from(*done * bs).unwrap_or(usize::MAX);
                let bs_usize = usize::try_from(bs).unwrap_or(512);
                let mismatch = match compare {
                    None => None,
                    Some(false) => first_mismatch(buf, self.data_out.get(offset..)),
                    Some(true) => buf.chunks(bs_usize).enumerate().find_map(|(i, blk)| {
                        first_mismatch(blk, Some(&self.data_out)).map(|m| i * bs_usize + m)
                    }),
                };
                if let Some(m) = mismatch {
                    let at = u32::try_from(offset + m).unwrap_or(u32::MAX);
                    return self.fail(Sense::MISCOMPARE.with_information(at));
                }
                *done += buf.len() as u64 / bs;
                if *done >= *blocks {
                    self.state = State::Done;
                }
            }
            State::CompareAndWrite { written, .. } => {
                if *written {
                    self.state = State::Done;
                } else if let Some(m) = first_mismatch(buf, Some(&self.data_out)) {
                    let at = u32::try_from(m).unwrap_or(u32::MAX);
                    self.fail(Sense::MISCOMPARE.with_information(at));
                } else {
                    *written = true;
                }
            }
        }
    }

    /// Whether the task has finished (its response is ready).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done) && self.in_flight.is_none() && !self.flush_pending
    }

    /// The response; call once [`Task::next`] said [`Next::Done`].
    pub fn into_response(self) -> Response {
        self.resp
    }

    /// The response's status so far (for logs and tests).
    pub fn status(&self) -> u8 {
        if self.resp.sense.is_some() {
            STATUS_CHECK_CONDITION
        } else {
            STATUS_GOOD
        }
    }
}

/// The offset of the first byte where `got` differs from `want` (a missing `want` byte
/// counts as a difference).
fn first_mismatch(got: &[u8], want: Option<&[u8]>) -> Option<usize> {
    let want = want.unwrap_or(&[]);
    got.iter()
        .enumerate()
        .find(|&(i, b)| want.get(i) != Some(b))
        .map(|(i, _)| i)
}

impl LunInfo {
    /// A unit with no identity, for pages asked of a LUN that does not exist.
    fn placeholder() -> LunInfo {
        LunInfo {
            block_size: 512,
            num_blocks: 0,
            bdev_name: String::new(),
            uuid: String::new(),
            target_name: String::new(),
            lun_id: 0,
        }
    }
}
