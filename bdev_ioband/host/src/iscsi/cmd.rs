//! SCSI commands on a connection: collecting write data (immediate data, unsolicited
//! Data-Out, R2Ts within MaxBurstLength and MaxOutstandingR2T), running the SCSI task as
//! bdev I/O tagged with the session's group, answering with Data-In (status in the last
//! one when it is GOOD) or a SCSI Response with sense data and residuals; and task
//! management (ABORT TASK, ABORT TASK SET, CLEAR TASK SET, LUN RESET, TARGET WARM/COLD
//! RESET; CLEAR ACA and TASK REASSIGN answered as not supported at this level).
//!
//! Threading: runs inside the connection's poll on the main reactor.

use std::rc::Rc;

use super::conn::Conn;
use super::pdu::{self, op, Bhs, RESERVED_TAG};
use crate::bdev::{BdevIo, IoChannel, IoStatus, IoType};
use crate::frontend;
use crate::scsi::{
    self, BlockOp, Next, Response, Sense, Task, STATUS_CHECK_CONDITION, STATUS_GOOD,
};

/// Largest expected data transfer length accepted (larger is a protocol error).
const MAX_EDTL_BYTES: u32 = 64 << 20;

/// One outstanding R2T: its tag, offset and length, bytes received so far.
#[derive(Debug, Clone, Copy)]
struct R2t {
    ttt: u32,
    offset: u32,
    len: u32,
    got: u32,
    /// DataSN the next Data-Out of this R2T carries (each sequence counts from 0).
    next_datasn: u32,
}

/// A command in flight on the connection.
#[derive(Debug)]
pub(super) struct Cmd {
    itt: u32,
    lun_field: [u8; 8],
    lun: Option<u16>,
    cdb: [u8; 16],
    edtl: u32,
    read: bool,
    data_out: Vec<u8>,
    received: u32,
    /// Unsolicited Data-Out is still expected (F was clear in the command).
    unsolicited: bool,
    /// DataSN the next unsolicited Data-Out carries.
    unsolicited_datasn: u32,
    /// A Data-Out came out of DataSN order: the command ends with CHECK CONDITION once its
    /// data is in, without running.
    data_error: bool,
    r2ts: Vec<R2t>,
    next_r2t_offset: u32,
    r2t_sn: u32,
    task: Option<Task>,
    /// A bdev I/O of this command is in flight.
    io_in_flight: bool,
    aborted: bool,
}

/// A task management response waiting for aborted commands' I/O to finish.
#[derive(Debug)]
pub(super) struct PendingTmf {
    itt: u32,
    waiting: Vec<u32>,
    close_after: bool,
}

impl Conn {
    fn cmd(&mut self, slot: u32) -> Option<&mut Cmd> {
        self.cmds.get_mut(slot as usize).and_then(Option::as_mut)
    }

    fn find_itt(&self, itt: u32) -> Option<u32> {
        self.cmds
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.itt == itt && !c.aborted))
            .and_then(|p| u32::try_from(p).ok())
    }

    fn new_slot(&mut self, cmd: Cmd) -> u32 {
        match self.free_cmds.pop() {
            Some(i) => {
                if let Some(s) = self.cmds.get_mut(i as usize) {
                    *s = Some(cmd);
                }
                i
            }
            None => {
                self.cmds.push(Some(cmd));
                u32::try_from(self.cmds.len() - 1).unwrap_or(u32::MAX)
            }
        }
    }

    /// Empties `slot` for reuse; a task management response waiting for it may go.
    fn release(&mut self, slot: u32) {
        if let Some(s) = self.cmds.get_mut(slot as usize) {
            *s = None;
        }
        self.free_cmds.push(slot);
        let mut ready = Vec::new();
        self.tmfs.retain_mut(|t| {
            t.waiting.retain(|&w| w != slot);
            if t.waiting.is_empty() {
                ready.push((t.itt, t.close_after));
                false
            } else {
                true
            }
        });
        for (itt, close) in ready {
            self.tmf_reply(itt, 0);
            if close {
                self.draining = true;
            }
        }
    }

    /// A SCSI Command PDU.
    pub(super) fn scsi_command(&mut self, bhs: &Bhs, data: &[u8]) -> Result<(), String> {
        let flags = bhs.flags();
        let (read, write) = (flags & 0x40 != 0, flags & 0x20 != 0);
        let edtl = bhs.u32_at(20);
        if edtl > MAX_EDTL_BYTES {
            return Err(format!(
                "expected data transfer length {edtl} over {MAX_EDTL_BYTES}"
            ));
        }
        if !data.is_empty() && (!write || !self.session.immediate_data) {
            return Err("immediate data without the W bit or with ImmediateData=No".into());
        }
        if data.len() as u64 > u64::from(edtl.min(self.session.first_burst_bytes)) {
            return Err("immediate data over FirstBurstLength or the transfer length".into());
        }
        if self.find_itt(bhs.itt()).is_some() {
            return Err(format!("task tag {:#x} already in use", bhs.itt()));
        }
        let mut cdb = [0u8; 16];
        cdb.copy_from_slice(&bhs.raw[32..48]);
        let target = self.target.clone();
        let lun = scsi::decode_lun(bhs.lun())
            .filter(|id| target.as_ref().is_some_and(|t| t.lun(*id).is_some()));
        let mut data_out = Vec::new();
        if write {
            // What may come without an R2T; the rest grows as the solicited data arrives
            // (reserving the whole transfer length up front would let an initiator claim
            // gigabytes with a queue of commands that never send their data).
            let unsolicited_max = edtl.min(self.session.first_burst_bytes);
            data_out.reserve_exact(unsolicited_max as usize);
            data_out.extend_from_slice(data);
        }
        let received = u32::try_from(data.len()).unwrap_or(0);
        let unsolicited = write && !bhs.is_final() && !self.session.initial_r2t && received < edtl;
        let cmd = Cmd {
            itt: bhs.itt(),
            lun_field: bhs.lun(),
            lun,
            cdb,
            edtl,
            read,
            data_out,
            received,
            unsolicited,
            unsolicited_datasn: 0,
            data_error: false,
            r2ts: Vec::new(),
            next_r2t_offset: received,
            r2t_sn: 0,
            task: None,
            io_in_flight: false,
            aborted: false,
        };
        let slot = self.new_slot(cmd);
        if write && received < edtl {
            if !unsolicited {
                self.send_r2ts(slot);
            }
            Ok(())
        } else {
            self.start(slot);
            Ok(())
        }
    }

    /// Sends R2Ts for the data not yet asked for, up to MaxOutstandingR2T.
    fn send_r2ts(&mut self, slot: u32) {
        let max_out = self.session.max_outstanding_r2t.max(1) as usize;
        let burst = self.session.max_burst_bytes.max(512);
        let mut next_ttt = self.next_ttt;
        let mut pdus = Vec::new();
        let Some(c) = self.cmds.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        while c.r2ts.len() < max_out && c.next_r2t_offset < c.edtl {
            let len = (c.edtl - c.next_r2t_offset).min(burst);
            let r = R2t {
                ttt: next_ttt,
                offset: c.next_r2t_offset,
                len,
                got: 0,
                next_datasn: 0,
            };
            next_ttt = next_ttt.wrapping_add(1);
            if next_ttt == RESERVED_TAG {
                next_ttt = 1;
            }
            c.r2ts.push(r);
            c.next_r2t_offset += len;
            pdus.push((c.itt, c.lun_field, r, c.r2t_sn));
            c.r2t_sn = c.r2t_sn.wrapping_add(1);
        }
        self.next_ttt = next_ttt;
        for (itt, lun, r, sn) in pdus {
            let mut h = pdu::header(op::R2T, 0x80, itt);
            h[8..16].copy_from_slice(&lun);
            pdu::put32(&mut h, 20, r.ttt);
            self.sns(false).put(&mut h);
            pdu::put32(&mut h, 36, sn);
            pdu::put32(&mut h, 40, r.offset);
            pdu::put32(&mut h, 44, r.len);
            pdu::emit(&mut self.outbuf, h, &[], self.digests);
        }
    }

    /// A Data-Out PDU.
    pub(super) fn data_out(&mut self, bhs: &Bhs, data: &[u8]) -> Result<(), String> {
        let Some(slot) = self.find_itt(bhs.itt()) else {
            // Data of a command aborted or unknown: dropped (RFC 7143 11.7.2).
            return Ok(());
        };
        let ttt = bhs.u32_at(20);
        let datasn = bhs.u32_at(36);
        let offset = bhs.u32_at(40);
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let final_pdu = bhs.is_final();
        let first_burst = self.session.first_burst_bytes;
        let Some(c) = self.cmd(slot) else {
            return Ok(());
        };
        if c.task.is_some() {
            return Err("Data-Out after all the data arrived".into());
        }
        let end = offset.checked_add(len).filter(|&e| e <= c.edtl);
        let Some(end) = end else {
            return Err(format!(
                "Data-Out at {offset}+{len} beyond the transfer length {}",
                c.edtl
            ));
        };
        if offset != c.received {
            return Err(format!(
                "Data-Out at offset {offset}, expected {} (DataPDUInOrder)",
                c.received
            ));
        }
        let mut r2t_done = false;
        if ttt == RESERVED_TAG {
            if !c.unsolicited || end > first_burst {
                return Err("unsolicited Data-Out not allowed here".into());
            }
            // A DataSN gap means a Data-Out was lost (RFC 7143 7.6): with
            // ErrorRecoveryLevel 0 nothing asks for it again, so the command fails.
            c.data_error |= datasn != c.unsolicited_datasn;
            c.unsolicited_datasn = c.unsolicited_datasn.wrapping_add(1);
            if final_pdu {
                c.unsolicited = false;
                c.next_r2t_offset = end;
                r2t_done = true;
            }
        } else {
            let Some(r) = c.r2ts.iter_mut().find(|r| r.ttt == ttt) else {
                return Err(format!(
                    "Data-Out with unknown target transfer tag {ttt:#x}"
                ));
            };
            if offset < r.offset || end > r.offset + r.len {
                return Err("Data-Out outside its R2T".into());
            }
            c.data_error |= datasn != r.next_datasn;
            r.next_datasn = r.next_datasn.wrapping_add(1);
            r.got += len;
            if final_pdu && r.got < r.len {
                // Nothing would ask for the rest again: the command could never complete.
                return Err(format!(
                    "Data-Out sequence for R2T {ttt:#x} ended after {} of {} bytes",
                    r.got, r.len
                ));
            }
            if final_pdu || r.got >= r.len {
                c.r2ts.retain(|r| r.ttt != ttt);
                r2t_done = true;
            }
        }
        c.data_out.extend_from_slice(data);
        c.received = end;
        let complete = c.received >= c.edtl;
        if complete {
            self.start(slot);
        } else if r2t_done {
            self.send_r2ts(slot);
        }
        Ok(())
    }

    /// All data is in: build the SCSI task and run it.
    fn start(&mut self, slot: u32) {
        if self.cmd(slot).is_some_and(|c| c.data_error) {
            return self.fail_data(slot);
        }
        let target = self.target.clone();
        let Some(c) = self.cmd(slot) else { return };
        let data_out = std::mem::take(&mut c.data_out);
        let lun = c.lun.and_then(|id| target.as_ref().and_then(|t| t.lun(id)));
        let luns: &[u16] = target.as_ref().map_or(&[], |t| &t.lun_ids);
        c.task = Some(Task::new(&c.cdb, lun.map(|l| &l.info), luns, data_out));
        self.drive(slot, None);
    }

    /// Ends a command whose write data came out of DataSN order: CHECK CONDITION, ABORTED
    /// COMMAND, PROTOCOL SERVICE CRC ERROR (RFC 7143 7.8.1), nothing written.
    fn fail_data(&mut self, slot: u32) {
        let Some(c) = self.cmds.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        if !c.aborted && !self.closed {
            let r = Response {
                status: STATUS_CHECK_CONDITION,
                sense: Some(Sense::PROTOCOL_SERVICE_CRC_ERROR),
                data_in: Vec::new(),
                transfer_bytes: u64::from(c.edtl),
            };
            self.respond(c.itt, c.edtl, c.read, &c.lun_field, r);
        }
        self.completed_cmds += 1;
        self.release(slot);
    }

    /// Advances the task in `slot`: submits its next request or answers it.
    fn drive(&mut self, slot: u32, io: Option<Box<BdevIo>>) {
        let target = self.target.clone();
        let mut io = io.unwrap_or_else(|| self.pool.get());
        let Some(c) = self.cmd(slot) else {
            return self.pool.put(io);
        };
        let lun = c.lun;
        let aborted = c.aborted;
        let Some(task) = c.task.as_mut() else {
            return self.pool.put(io);
        };
        let next = if aborted {
            Next::Done
        } else {
            task.next(&mut io.buf)
        };
        match next {
            Next::Submit(req) => {
                let ch = lun.and_then(|id| {
                    target
                        .as_ref()
                        .and_then(|t| t.lun(id))
                        .map(|l| l.ch.clone())
                });
                let Some(ch) = ch else {
                    // Cannot happen: a task without its LUN asks for no I/O.
                    if let Some(t) = c.task.as_mut() {
                        t.complete(false, &mut io.buf);
                    }
                    return self.drive(slot, Some(io));
                };
                c.io_in_flight = true;
                io.io_type = match req.op {
                    BlockOp::Read => IoType::Read,
                    BlockOp::Write => IoType::Write,
                    BlockOp::Flush => IoType::Flush,
                };
                io.offset_blocks = req.offset_blocks;
                io.num_blocks = req.num_blocks;
                self.submit(&ch, io, slot);
            }
            Next::Wait => self.pool.put(io),
            Next::Done => {
                self.pool.put(io);
                let Some(c) = self.cmds.get_mut(slot as usize).and_then(Option::take) else {
                    return;
                };
                if !c.aborted && !self.closed {
                    if let Some(task) = c.task {
                        self.respond(c.itt, c.edtl, c.read, &c.lun_field, task.into_response());
                    }
                }
                self.completed_cmds += 1;
                self.release(slot);
            }
        }
    }

    fn submit(&mut self, ch: &Rc<dyn IoChannel>, mut io: Box<BdevIo>, slot: u32) {
        io.status = IoStatus::Pending;
        io.set_group(&self.group);
        io.user_ctx = u64::from(slot);
        frontend::submit_or_park(&**ch, io, &self.cb, &mut self.outstanding, &mut self.parked);
    }

    /// Resubmits I/O the bdev refused for lack of resources.
    pub(super) fn retry_parked(&mut self) -> bool {
        if self.parked.is_empty() {
            return false;
        }
        let parked = std::mem::take(&mut self.parked);
        let mut busy = false;
        for io in parked {
            let slot = u32::try_from(io.user_ctx).unwrap_or(u32::MAX);
            let lun = self
                .cmds
                .get(slot as usize)
                .and_then(Option::as_ref)
                .and_then(|c| c.lun);
            let ch = lun.and_then(|id| {
                self.target
                    .as_ref()
                    .and_then(|t| t.lun(id))
                    .map(|l| l.ch.clone())
            });
            let Some(ch) = ch else {
                self.pool.put(io);
                continue;
            };
            if !self.parked.is_empty() {
                self.parked.push(io);
                continue;
            }
            busy |= frontend::submit_or_park(
                &*ch,
                io,
                &self.cb,
                &mut self.outstanding,
                &mut self.parked,
            );
        }
        busy
    }

    /// Handles the completions queued since the last pass.
    pub(super) fn reap(&mut self) -> bool {
        std::mem::swap(&mut *self.done.borrow_mut(), &mut self.done_spare);
        if self.done_spare.is_empty() {
            return false;
        }
        let mut done = std::mem::take(&mut self.done_spare);
        for mut io in done.drain(..) {
            self.outstanding = self.outstanding.saturating_sub(1);
            let slot = u32::try_from(io.user_ctx).unwrap_or(u32::MAX);
            let ok = io.status == IoStatus::Success;
            match self.cmd(slot) {
                Some(c) => {
                    c.io_in_flight = false;
                    if let Some(t) = c.task.as_mut() {
                        t.complete(ok, &mut io.buf);
                    }
                    io.reset();
                    self.drive(slot, Some(io));
                }
                None => self.pool.put(io),
            }
        }
        self.done_spare = done;
        true
    }

    /// Data-In PDUs (the status in the last when GOOD) or a SCSI Response.
    fn respond(&mut self, itt: u32, edtl: u32, read: bool, lun: &[u8; 8], r: Response) {
        let spdtl = r.transfer_bytes;
        let (resid_flag, residual) = match spdtl.cmp(&u64::from(edtl)) {
            std::cmp::Ordering::Greater => (
                0x04u8,
                u32::try_from(spdtl - u64::from(edtl)).unwrap_or(u32::MAX),
            ),
            std::cmp::Ordering::Less => (0x02u8, edtl - u32::try_from(spdtl).unwrap_or(edtl)),
            std::cmp::Ordering::Equal => (0, 0),
        };
        let mut data = r.data_in;
        if !read {
            data.clear();
        }
        data.truncate(edtl as usize);
        let good = r.status == STATUS_GOOD && r.sense.is_none();
        let seg = self.session.send_data_segment_bytes.max(512) as usize;
        let burst = self.session.max_burst_bytes.max(512) as usize;
        let mut data_sn = 0u32;
        let mut offset = 0usize;
        while offset < data.len() {
            let len = seg.min(data.len() - offset).min(burst - offset % burst);
            let last = offset + len == data.len();
            let end_of_burst = (offset + len) % burst == 0;
            let with_status = last && good;
            let mut flags = if last || end_of_burst { 0x80 } else { 0 };
            if with_status {
                flags |= 0x01 | resid_flag;
            }
            let mut h = pdu::header(op::DATA_IN, flags, itt);
            h[8..16].copy_from_slice(lun);
            pdu::put32(&mut h, 20, RESERVED_TAG);
            let sns = self.sns(with_status);
            pdu::put32(&mut h, 28, sns.exp_cmd_sn);
            pdu::put32(&mut h, 32, sns.max_cmd_sn);
            if with_status {
                h[3] = r.status;
                pdu::put32(&mut h, 24, sns.stat_sn);
                pdu::put32(&mut h, 44, residual);
            }
            pdu::put32(&mut h, 36, data_sn);
            pdu::put32(&mut h, 40, u32::try_from(offset).unwrap_or(0));
            pdu::emit(
                &mut self.outbuf,
                h,
                &data[offset..offset + len],
                self.digests,
            );
            data_sn += 1;
            offset += len;
            if with_status {
                return;
            }
        }
        let mut h = pdu::header(op::SCSI_RESP, 0x80 | resid_flag, itt);
        h[2] = 0; // command completed at target
        h[3] = r.status;
        self.sns(true).put(&mut h);
        pdu::put32(&mut h, 36, data_sn);
        pdu::put32(&mut h, 44, residual);
        let sense = r.sense.map(|s| {
            let mut v = 18u16.to_be_bytes().to_vec();
            v.extend_from_slice(&s.to_fixed());
            v
        });
        pdu::emit(
            &mut self.outbuf,
            h,
            sense.as_deref().unwrap_or(&[]),
            self.digests,
        );
    }

    /// A Task Management Function Request.
    pub(super) fn tmf(&mut self, bhs: &Bhs) {
        let function = bhs.flags() & 0x7f;
        let rtt = bhs.u32_at(20);
        let lun = scsi::decode_lun(bhs.lun());
        let lun_ok =
            lun.is_some_and(|id| self.target.as_ref().is_some_and(|t| t.lun(id).is_some()));
        let (victims, close_after): (Vec<u32>, bool) = match function {
            // ABORT TASK.
            1 => match self.find_itt(rtt) {
                Some(s) => (vec![s], false),
                None => {
                    // Not here (RFC 7143 11.5.1): a RefCmdSN not yet received (in the
                    // CmdSN window, before the request's own) is "function complete"; a
                    // task received and answered already "does not exist".
                    let ref_sn = bhs.u32_at(32);
                    let sns = self.sns(false);
                    let in_window = ref_sn.wrapping_sub(sns.exp_cmd_sn)
                        <= sns.max_cmd_sn.wrapping_sub(sns.exp_cmd_sn);
                    let before =
                        ref_sn != bhs.cmd_sn() && bhs.cmd_sn().wrapping_sub(ref_sn) < 1 << 31;
                    let response = if in_window && before { 0 } else { 1 };
                    return self.tmf_reply(bhs.itt(), response);
                }
            },
            // ABORT TASK SET, CLEAR TASK SET, LUN RESET.
            2 | 4 | 5 => {
                if !lun_ok {
                    return self.tmf_reply(bhs.itt(), 2);
                }
                (self.slots_where(|c| c.lun == lun), false)
            }
            // TARGET WARM RESET, TARGET COLD RESET.
            6 | 7 => (self.slots_where(|_| true), function == 7),
            // CLEAR ACA (no ACA here), TASK REASSIGN (ErrorRecoveryLevel 0).
            3 => return self.tmf_reply(bhs.itt(), 5),
            8 => return self.tmf_reply(bhs.itt(), 4),
            _ => return self.tmf_reply(bhs.itt(), 255),
        };
        let mut waiting = Vec::new();
        for s in victims {
            let Some(c) = self.cmd(s) else { continue };
            c.aborted = true;
            if c.io_in_flight {
                waiting.push(s);
            } else {
                // No I/O of its own in flight: it goes now, unanswered.
                self.release(s);
            }
        }
        if waiting.is_empty() {
            self.tmf_reply(bhs.itt(), 0);
            if close_after {
                self.draining = true;
            }
        } else {
            self.tmfs.push(PendingTmf {
                itt: bhs.itt(),
                waiting,
                close_after,
            });
        }
    }

    fn slots_where(&self, f: impl Fn(&Cmd) -> bool) -> Vec<u32> {
        self.cmds
            .iter()
            .enumerate()
            .filter(|(_, c)| c.as_ref().is_some_and(|c| !c.aborted && f(c)))
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect()
    }

    fn tmf_reply(&mut self, itt: u32, response: u8) {
        if self.closed {
            return;
        }
        let mut h = pdu::header(op::TMF_RESP, 0x80, itt);
        h[2] = response;
        self.sns(true).put(&mut h);
        pdu::emit(&mut self.outbuf, h, &[], self.digests);
    }
}
