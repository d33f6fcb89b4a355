//! The `scsi_cdb` target: a CDB, a data-out buffer and a LUN geometry, all from the input,
//! through the SCSI layer's task ([`Task`]) against a disk in memory whose requests may
//! fail.
//!
//! Input: `[geometry, fail mask, cdb length, cdb..., data-out...]`. Checked: no panic; every
//! block request lies within the LUN and its buffer has the request's length; the task ends
//! (at most a bounded number of requests, never waiting with nothing in flight); data-in is
//! never longer than the allocation length of the commands that have one, nor than the
//! transfer length of a READ; a failed request ends the command with CHECK CONDITION.

use bdev_ioband_host::scsi::{BlockOp, LunInfo, Next, Task, STATUS_CHECK_CONDITION};

/// The allocation length of `cdb`'s command, for those with one.
fn allocation_length(cdb: &[u8]) -> Option<usize> {
    let be = |at: usize, n: usize| -> Option<usize> {
        cdb.get(at..at + n)
            .map(|b| b.iter().fold(0usize, |v, &x| (v << 8) | usize::from(x)))
    };
    match *cdb.first()? {
        // INQUIRY, MODE SENSE(6): 2 bytes at 3 / 1 byte at 4.
        0x12 => be(3, 2),
        0x03 | 0x1a => be(4, 1),
        // MODE SENSE(10).
        0x5a => be(7, 2),
        // REPORT LUNS.
        0xa0 => be(6, 4),
        // READ CAPACITY(16) (SERVICE ACTION IN 0x10).
        0x9e if cdb.get(1).map(|b| b & 0x1f) == Some(0x10) => be(10, 4),
        // READ CAPACITY(10): 8 bytes.
        0x25 => Some(8),
        _ => None,
    }
}

/// The bytes a READ(6/10/12/16) transfers, for those.
fn read_length(cdb: &[u8], block_size: usize) -> Option<usize> {
    let be = |at: usize, n: usize| -> Option<usize> {
        cdb.get(at..at + n)
            .map(|b| b.iter().fold(0usize, |v, &x| (v << 8) | usize::from(x)))
    };
    let blocks = match *cdb.first()? {
        0x08 => be(4, 1).map(|n| if n == 0 { 256 } else { n }),
        0x28 => be(7, 2),
        0xa8 => be(6, 4),
        0x88 => be(10, 4),
        _ => None,
    }?;
    Some(blocks.saturating_mul(block_size))
}

/// The `scsi_cdb` target (see the module doc).
pub fn scsi_cdb(data: &[u8]) {
    let [geometry, fail_mask, cdb_len, rest @ ..] = data else {
        return;
    };
    let block_size: u32 = if geometry & 0x80 != 0 { 4096 } else { 512 };
    let num_blocks = match geometry & 0x7f {
        0 => 0,
        g @ 1..=0x3f => u64::from(g),
        g => u64::from(g - 0x3f) * 97,
    };
    let cdb_len = usize::from(*cdb_len % 17).min(rest.len());
    let (cdb, data_out) = rest.split_at(cdb_len);
    let lun = LunInfo {
        block_size,
        num_blocks,
        bdev_name: "m0".into(),
        uuid: "5a5a5a5a-0000-4000-8000-000000000001".into(),
        target_name: "iqn.2016-06.io.spdk:disk1".into(),
        lun_id: 0,
    };
    let lun_opt = (fail_mask & 0x80 == 0).then_some(&lun);
    let mut disk = vec![0u8; usize::try_from(num_blocks * u64::from(block_size)).unwrap_or(0)];
    let mut t = Task::new(cdb, lun_opt, &[0, 3, 300], data_out.to_vec());
    let mut buf = Vec::new();
    let mut failed = false;
    let mut n = 0u32;
    loop {
        n += 1;
        assert!(n < 100_000, "the task never ends");
        match t.next(&mut buf) {
            Next::Done => break,
            Next::Wait => panic!("a task waits with nothing in flight"),
            Next::Submit(r) => {
                assert!(lun_opt.is_some(), "a request for a LUN that does not exist");
                let bs = usize::try_from(block_size).unwrap_or(512);
                let fail = fail_mask & (1 << (n % 7)) != 0 && fail_mask & 0x40 != 0;
                if r.op != BlockOp::Flush {
                    let end = r.offset_blocks.checked_add(r.num_blocks);
                    assert!(
                        r.num_blocks > 0 && end.is_some_and(|e| e <= num_blocks),
                        "a request outside the LUN: {r:?} of {num_blocks} blocks"
                    );
                    let at = usize::try_from(r.offset_blocks).unwrap_or(0) * bs;
                    let len = usize::try_from(r.num_blocks).unwrap_or(0) * bs;
                    assert_eq!(buf.len(), len, "{r:?}: the buffer's length");
                    match r.op {
                        BlockOp::Read => buf.copy_from_slice(&disk[at..at + len]),
                        BlockOp::Write => disk[at..at + len].copy_from_slice(&buf),
                        BlockOp::Flush => {}
                    }
                }
                assert_eq!(t.next(&mut Vec::new()), Next::Wait, "one request at a time");
                failed |= fail;
                t.complete(!fail, &mut buf);
            }
        }
    }
    assert!(t.is_done());
    let resp = t.into_response();
    if failed {
        assert_eq!(resp.status, STATUS_CHECK_CONDITION, "a failed request");
    }
    if let Some(alloc) = allocation_length(cdb) {
        assert!(
            resp.data_in.len() <= alloc,
            "{} bytes of data-in, allocation length {alloc}",
            resp.data_in.len()
        );
    }
    if let Some(len) = read_length(cdb, usize::try_from(block_size).unwrap_or(512)) {
        assert!(
            resp.data_in.len() <= len,
            "a READ returned more than it asked"
        );
    }
    if resp.status == STATUS_CHECK_CONDITION {
        assert!(resp.sense.is_some(), "CHECK CONDITION without sense");
    }
}
