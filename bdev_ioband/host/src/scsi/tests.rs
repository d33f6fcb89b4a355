//! The SCSI layer against an in-memory disk: every command, sense data, data-out checks
//! and the transfer lengths residuals come from.

#![allow(clippy::cast_possible_truncation)]

use super::*;

const BS: u32 = 512;
const BLOCKS: u64 = 64;

fn lun() -> LunInfo {
    LunInfo {
        block_size: BS,
        num_blocks: BLOCKS,
        bdev_name: "Malloc0".into(),
        uuid: "2b4c6f0e-0000-4000-8000-000000000001".into(),
        target_name: "iqn.2016-06.io.spdk:disk1".into(),
        lun_id: 0,
    }
}

/// A disk in memory that counts what it was asked to do.
struct Disk {
    data: Vec<u8>,
    reqs: Vec<BlockReq>,
    fail: bool,
}

impl Disk {
    fn new() -> Disk {
        Disk {
            data: vec![0; (BS as u64 * BLOCKS) as usize],
            reqs: Vec::new(),
            fail: false,
        }
    }

    fn run(&mut self, cdb: &[u8], data_out: Vec<u8>) -> Response {
        self.run_on(cdb, Some(&lun()), data_out)
    }

    fn run_on(&mut self, cdb: &[u8], lun: Option<&LunInfo>, data_out: Vec<u8>) -> Response {
        let mut t = Task::new(cdb, lun, &[0, 3, 300], data_out);
        let mut buf = Vec::new();
        for _ in 0..10_000 {
            match t.next(&mut buf) {
                Next::Done => return t.into_response(),
                Next::Wait => panic!("nothing is in flight"),
                Next::Submit(r) => {
                    self.reqs.push(r);
                    let at = (r.offset_blocks * u64::from(BS)) as usize;
                    let len = (r.num_blocks * u64::from(BS)) as usize;
                    match r.op {
                        BlockOp::Read => {
                            assert_eq!(buf.len(), len);
                            buf.copy_from_slice(&self.data[at..at + len]);
                        }
                        BlockOp::Write => {
                            assert_eq!(buf.len(), len);
                            self.data[at..at + len].copy_from_slice(&buf);
                        }
                        BlockOp::Flush => {}
                    }
                    assert_eq!(t.next(&mut Vec::new()), Next::Wait);
                    t.complete(!self.fail, &mut buf);
                }
            }
        }
        panic!("task never finished");
    }
}

fn good(r: &Response) {
    assert_eq!(r.status, STATUS_GOOD, "{:?}", r.sense);
    assert!(r.sense.is_none());
}

fn check(r: &Response, key: SenseKey, asc: u8, ascq: u8) {
    assert_eq!(r.status, STATUS_CHECK_CONDITION);
    let s = r.sense.expect("sense");
    assert_eq!((s.key, s.asc, s.ascq), (key, asc, ascq), "{s:?}");
    assert!(r.data_in.is_empty());
}

fn cdb10(op: u8, flags: u8, lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = vec![op, flags];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&blocks.to_be_bytes());
    c.push(0);
    c
}

fn cdb16(op: u8, flags: u8, lba: u64, blocks: u32) -> Vec<u8> {
    let mut c = vec![op, flags];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&blocks.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

fn cdb12(op: u8, lba: u32, blocks: u32) -> Vec<u8> {
    let mut c = vec![op, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&blocks.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

fn pattern(blocks: u64, seed: u8) -> Vec<u8> {
    (0..blocks * u64::from(BS))
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

#[test]
fn write_then_read_round_trips_in_every_size() {
    let mut d = Disk::new();
    let data = pattern(4, 1);
    good(&d.run(&cdb10(0x2a, 0, 8, 4), data.clone()));
    let r = d.run(&cdb10(0x28, 0, 8, 4), Vec::new());
    good(&r);
    assert_eq!(r.data_in, data);
    assert_eq!(r.transfer_bytes, 4 * 512);
    let r = d.run(&cdb12(0xa8, 8, 4), Vec::new());
    assert_eq!(r.data_in, data);
    let r = d.run(&cdb16(0x88, 0, 8, 4), Vec::new());
    assert_eq!(r.data_in, data);
    // READ 6 and WRITE 6: 21-bit LBA, 0 blocks means 256 (out of range on this disk).
    let data6 = pattern(2, 9);
    good(&d.run(&[0x0a, 0, 0, 20, 2, 0], data6.clone()));
    assert_eq!(d.run(&[0x08, 0, 0, 20, 2, 0], Vec::new()).data_in, data6);
    let r = d.run(&[0x08, 0, 0, 0, 0, 0], Vec::new());
    check(&r, SenseKey::IllegalRequest, 0x21, 0);
    good(&d.run(&cdb12(0xaa, 30, 1), pattern(1, 3)));
    good(&d.run(&cdb16(0x8a, 0, 31, 1), pattern(1, 4)));
    assert_eq!(d.run(&cdb10(0x28, 0, 30, 2), Vec::new()).data_in, {
        let mut v = pattern(1, 3);
        v.extend(pattern(1, 4));
        v
    });
}

#[test]
fn ranges_protection_and_lengths_are_checked() {
    let mut d = Disk::new();
    check(
        &d.run(&cdb10(0x28, 0, 63, 2), Vec::new()),
        SenseKey::IllegalRequest,
        0x21,
        0,
    );
    check(
        &d.run(&cdb16(0x88, 0, u64::MAX, 1), Vec::new()),
        SenseKey::IllegalRequest,
        0x21,
        0,
    );
    check(
        &d.run(&cdb10(0x28, 0, 65, 0), Vec::new()),
        SenseKey::IllegalRequest,
        0x21,
        0,
    );
    good(&d.run(&cdb10(0x28, 0, 0, 0), Vec::new()));
    // RDPROTECT set: no protection information.
    check(
        &d.run(&cdb10(0x28, 0x20, 0, 1), Vec::new()),
        SenseKey::IllegalRequest,
        0x24,
        0,
    );
    // Data-out shorter than the CDB asks (a transport residual): only what came is
    // written, a partial block merged with the medium; the CDB's length is reported.
    d.data[..1024].iter_mut().for_each(|b| *b = 0xaa);
    let r = d.run(&cdb10(0x2a, 0, 0, 2), vec![1; 700]);
    good(&r);
    assert_eq!(r.transfer_bytes, 1024);
    assert!(d.data[..700].iter().all(|&b| b == 1));
    assert!(d.data[700..1024].iter().all(|&b| b == 0xaa));
    // Longer: cut to the CDB's length.
    good(&d.run(&cdb10(0x2a, 0, 0, 1), vec![2; 1024]));
    assert!(d.data[512..700].iter().all(|&b| b == 1));
    good(&d.run(&cdb10(0x2a, 0, 0, 1), Vec::new()));
    d.data[..1024].iter_mut().for_each(|b| *b = 0);
    d.reqs.clear();
    // No I/O for a refused command.
    check(
        &d.run(&[0xff, 0, 0, 0, 0, 0], Vec::new()),
        SenseKey::IllegalRequest,
        0x20,
        0,
    );
    assert!(d.reqs.is_empty());
}

#[test]
fn fua_adds_a_flush_and_synchronize_cache_flushes() {
    let mut d = Disk::new();
    good(&d.run(&cdb10(0x2a, 0x08, 0, 1), pattern(1, 0)));
    assert_eq!(d.reqs.len(), 2);
    assert_eq!(d.reqs[1].op, BlockOp::Flush);
    d.reqs.clear();
    good(&d.run(&cdb10(0x35, 0, 0, 0), Vec::new()));
    good(&d.run(&cdb16(0x91, 0, 0, 64), Vec::new()));
    assert!(d.reqs.iter().all(|r| r.op == BlockOp::Flush) && d.reqs.len() == 2);
    check(
        &d.run(&cdb16(0x91, 0, 60, 8), Vec::new()),
        SenseKey::IllegalRequest,
        0x21,
        0,
    );
}

#[test]
fn device_failures_become_medium_errors() {
    let mut d = Disk::new();
    d.fail = true;
    check(
        &d.run(&cdb10(0x28, 0, 0, 1), Vec::new()),
        SenseKey::MediumError,
        0x11,
        0,
    );
    check(
        &d.run(&cdb10(0x2a, 0, 0, 1), pattern(1, 0)),
        SenseKey::MediumError,
        0x0c,
        0,
    );
}

#[test]
fn unmap_and_write_same_write_zeros_or_the_pattern() {
    let mut d = Disk::new();
    d.data.iter_mut().for_each(|b| *b = 0xaa);
    // UNMAP two ranges.
    let mut p = vec![0u8; 8];
    p[0..2].copy_from_slice(&(6u16 + 32).to_be_bytes());
    p[2..4].copy_from_slice(&32u16.to_be_bytes());
    for (lba, n) in [(2u64, 3u32), (10, 1)] {
        p.extend_from_slice(&lba.to_be_bytes());
        p.extend_from_slice(&n.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
    }
    let mut c = vec![0x42, 0, 0, 0, 0, 0, 0];
    c.extend_from_slice(&(p.len() as u16).to_be_bytes());
    c.push(0);
    good(&d.run(&c, p.clone()));
    let r = d.run(&cdb10(0x28, 0, 0, 12), Vec::new());
    for blk in 0..12usize {
        let zero = (2..5).contains(&blk) || blk == 10;
        let b = &r.data_in[blk * 512..(blk + 1) * 512];
        assert!(
            b.iter().all(|&x| x == if zero { 0 } else { 0xaa }),
            "block {blk}"
        );
    }
    // Out of range descriptor: nothing written.
    let mut bad = p.clone();
    bad[8..16].copy_from_slice(&63u64.to_be_bytes());
    d.reqs.clear();
    check(&d.run(&c, bad), SenseKey::IllegalRequest, 0x21, 0);
    assert!(d.reqs.is_empty());
    // A list shorter than its header.
    let mut short = vec![0x42, 0, 0, 0, 0, 0, 0, 0, 4, 0];
    check(
        &d.run(&short, vec![0; 4]),
        SenseKey::IllegalRequest,
        0x1a,
        0,
    );
    short[8] = 0;
    good(&d.run(&short, Vec::new()));
    // WRITE SAME 10 with a pattern, WRITE SAME 16 with UNMAP and NDOB.
    let blk = pattern(1, 5);
    good(&d.run(&cdb10(0x41, 0, 20, 3), blk.clone()));
    let r = d.run(&cdb10(0x28, 0, 20, 3), Vec::new());
    assert!(r.data_in.chunks(512).all(|c| c == blk.as_slice()));
    good(&d.run(&cdb16(0x93, 0x08 | 0x01, 20, 2), Vec::new()));
    let r = d.run(&cdb10(0x28, 0, 20, 3), Vec::new());
    assert!(r.data_in[..1024].iter().all(|&b| b == 0));
    assert_eq!(&r.data_in[1024..], blk.as_slice());
    // 0 blocks (WSNZ), beyond the end, ANCHOR.
    check(
        &d.run(&cdb10(0x41, 0, 0, 0), blk.clone()),
        SenseKey::IllegalRequest,
        0x24,
        0,
    );
    check(
        &d.run(&cdb16(0x93, 0, 63, 2), blk.clone()),
        SenseKey::IllegalRequest,
        0x21,
        0,
    );
    check(
        &d.run(&cdb10(0x41, 0x10, 0, 1), blk),
        SenseKey::IllegalRequest,
        0x24,
        0,
    );
}

#[test]
fn compare_and_write_writes_only_on_a_match_and_reports_the_offset() {
    let mut d = Disk::new();
    let old = pattern(2, 1);
    let new = pattern(2, 2);
    good(&d.run(&cdb10(0x2a, 0, 4, 2), old.clone()));
    let mut c = vec![0x89, 0];
    c.extend_from_slice(&4u64.to_be_bytes());
    c.extend_from_slice(&[0, 0, 0, 2, 0, 0]);
    let mut out = old.clone();
    out.extend_from_slice(&new);
    good(&d.run(&c, out));
    assert_eq!(d.run(&cdb10(0x28, 0, 4, 2), Vec::new()).data_in, new);
    // The verify data differs at byte 700: MISCOMPARE with that offset, nothing written.
    let mut wrong = new.clone();
    wrong[700] ^= 0xff;
    wrong.extend_from_slice(&old);
    let r = d.run(&c, wrong);
    check(&r, SenseKey::Miscompare, 0x1d, 0);
    assert_eq!(r.sense.unwrap().information, Some(700));
    let fixed = r.sense.unwrap().to_fixed();
    assert_eq!(fixed[0], 0xf0);
    assert_eq!(u32::from_be_bytes(fixed[3..7].try_into().unwrap()), 700);
    assert_eq!(d.run(&cdb10(0x28, 0, 4, 2), Vec::new()).data_in, new);
}

#[test]
fn verify_reads_and_compares() {
    let mut d = Disk::new();
    let data = pattern(3, 8);
    good(&d.run(&cdb10(0x2a, 0, 0, 3), data.clone()));
    good(&d.run(&cdb10(0x2f, 0, 0, 3), Vec::new()));
    good(&d.run(&cdb10(0x2f, 0x02, 0, 3), data.clone()));
    good(&d.run(&cdb16(0x8f, 0x02, 0, 3), data.clone()));
    let mut wrong = data.clone();
    wrong[1025] ^= 1;
    let r = d.run(&cdb10(0x2f, 0x02, 0, 3), wrong);
    check(&r, SenseKey::Miscompare, 0x1d, 0);
    assert_eq!(r.sense.unwrap().information, Some(1025));
    // BYTCHK 3: one block compared with each.
    good(&d.run(&cdb10(0x41, 0, 10, 4), pattern(1, 4)));
    good(&d.run(&cdb10(0x2f, 0x06, 10, 4), pattern(1, 4)));
    let r = d.run(&cdb10(0x2f, 0x06, 9, 4), pattern(1, 4));
    check(&r, SenseKey::Miscompare, 0x1d, 0);
    check(
        &d.run(&cdb10(0x2f, 0x04, 0, 1), Vec::new()),
        SenseKey::IllegalRequest,
        0x24,
        0,
    );
    // WRITE AND VERIFY writes then reads back.
    good(&d.run(&cdb10(0x2e, 0x02, 40, 2), pattern(2, 6)));
    assert_eq!(
        d.run(&cdb10(0x28, 0, 40, 2), Vec::new()).data_in,
        pattern(2, 6)
    );
}

#[test]
fn inquiry_standard_and_vpd_pages() {
    let mut d = Disk::new();
    let r = d.run(&[0x12, 0, 0, 0, 255, 0], Vec::new());
    good(&r);
    assert_eq!(r.data_in.len(), 96);
    assert_eq!(r.data_in[0], 0);
    assert_eq!(r.data_in[3] & 0x0f, 2);
    assert_eq!(&r.data_in[8..16], b"IOBAND  ");
    // Cut to the allocation length: the transfer length follows.
    let r = d.run(&[0x12, 0, 0, 0, 36, 0], Vec::new());
    assert_eq!((r.data_in.len(), r.transfer_bytes), (36, 36));
    let r = d.run(&[0x12, 1, 0, 0, 255, 0], Vec::new());
    assert_eq!(&r.data_in[4..], &[0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
    let r = d.run(&[0x12, 1, 0x80, 0, 255, 0], Vec::new());
    assert_eq!(&r.data_in[4..], b"Malloc0");
    let r = d.run(&[0x12, 1, 0x83, 0, 255, 0], Vec::new());
    assert_eq!(r.data_in[4..8], [0x01, 0x03, 0x00, 16]);
    assert_eq!(r.data_in[8] >> 4, 6, "NAA 6");
    let r = d.run(&[0x12, 1, 0xb0, 0, 255, 0], Vec::new());
    assert_eq!(r.data_in.len(), 64);
    assert_eq!(r.data_in[5], MAX_COMPARE_AND_WRITE_BLOCKS);
    assert_eq!(
        u32::from_be_bytes(r.data_in[8..12].try_into().unwrap()),
        MAX_TRANSFER_BYTES / 512
    );
    let r = d.run(&[0x12, 1, 0xb1, 0, 255, 0], Vec::new());
    assert_eq!(u16::from_be_bytes([r.data_in[4], r.data_in[5]]), 1);
    let r = d.run(&[0x12, 1, 0xb2, 0, 255, 0], Vec::new());
    assert_eq!(r.data_in[5] & 0xe0, 0xe0, "LBPU, LBPWS, LBPWS10");
    assert_eq!((r.data_in[5] >> 2) & 7, 1, "LBPRZ");
    check(
        &d.run(&[0x12, 1, 0x99, 0, 255, 0], Vec::new()),
        SenseKey::IllegalRequest,
        0x24,
        0,
    );
    check(
        &d.run(&[0x12, 0, 0x80, 0, 255, 0], Vec::new()),
        SenseKey::IllegalRequest,
        0x24,
        0,
    );
    // A LUN that does not exist: qualifier 3 for INQUIRY, LUN NOT SUPPORTED otherwise.
    let r = d.run_on(&[0x12, 0, 0, 0, 96, 0], None, Vec::new());
    assert_eq!(r.data_in[0], 0x7f);
    check(
        &d.run_on(&cdb10(0x28, 0, 0, 1), None, Vec::new()),
        SenseKey::IllegalRequest,
        0x25,
        0,
    );
}

#[test]
fn capacity_luns_sense_mode_pages() {
    let mut d = Disk::new();
    let r = d.run(&cdb10(0x25, 0, 0, 0), Vec::new());
    assert_eq!(r.data_in, [0, 0, 0, 63, 0, 0, 2, 0]);
    check(
        &d.run(&cdb10(0x25, 0, 5, 0), Vec::new()),
        SenseKey::IllegalRequest,
        0x24,
        0,
    );
    let mut c = vec![0x9e, 0x10];
    c.extend_from_slice(&[0; 8]);
    c.extend_from_slice(&32u32.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    let r = d.run(&c, Vec::new());
    assert_eq!(u64::from_be_bytes(r.data_in[..8].try_into().unwrap()), 63);
    assert_eq!(r.data_in[14] & 0xc0, 0xc0, "LBPME, LBPRZ");
    // REPORT LUNS: peripheral and flat addressing.
    let mut c = vec![0xa0, 0, 0, 0, 0, 0];
    c.extend_from_slice(&64u32.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    let r = d.run(&c, Vec::new());
    assert_eq!(&r.data_in[..4], &24u32.to_be_bytes());
    assert_eq!(&r.data_in[8..10], &[0, 0]);
    assert_eq!(&r.data_in[16..18], &[0, 3]);
    assert_eq!(&r.data_in[24..26], &[0x41, 44]);
    assert_eq!(decode_lun(encode_lun(300)), Some(300));
    c[9] = 8;
    c[8] = 0;
    check(&d.run(&c, Vec::new()), SenseKey::IllegalRequest, 0x24, 0);
    // REQUEST SENSE: no pending sense, fixed or descriptor.
    let r = d.run(&[0x03, 0, 0, 0, 18, 0], Vec::new());
    assert_eq!((r.data_in[0], r.data_in[2]), (0x70, 0));
    let r = d.run(&[0x03, 1, 0, 0, 18, 0], Vec::new());
    assert_eq!(r.data_in[0], 0x72);
    // MODE SENSE 6: all pages with a block descriptor; caching page alone; saved values.
    let r = d.run(&[0x1a, 0, 0x3f, 0, 255, 0], Vec::new());
    assert_eq!(usize::from(r.data_in[0]) + 1, r.data_in.len());
    assert_eq!(r.data_in[3], 8);
    assert_eq!(r.data_in[12], 0x08);
    assert_eq!(r.data_in[32], 0x0a);
    let r = d.run(&[0x1a, 0x08, 0x08, 0, 255, 0], Vec::new());
    assert_eq!(r.data_in.len(), 4 + 20);
    assert_eq!(r.data_in[6] & 0x04, 0x04, "WCE");
    check(
        &d.run(&[0x1a, 0, 0xc8, 0, 255, 0], Vec::new()),
        SenseKey::IllegalRequest,
        0x39,
        0,
    );
    check(
        &d.run(&[0x1a, 0, 0x19, 0, 255, 0], Vec::new()),
        SenseKey::IllegalRequest,
        0x24,
        0,
    );
    let r = d.run(&[0x5a, 0, 0x0a, 0, 0, 0, 0, 0, 255, 0], Vec::new());
    assert_eq!(
        u16::from_be_bytes([r.data_in[0], r.data_in[1]]) as usize + 2,
        r.data_in.len()
    );
    assert_eq!(r.data_in[16], 0x0a);
    // TEST UNIT READY, START STOP UNIT.
    good(&d.run(&[0; 6], Vec::new()));
    good(&d.run(&[0x1b, 0, 0, 0, 1, 0], Vec::new()));
    assert!(d.reqs.is_empty());
}
