//! Connection tests over TCP loopback sockets and a malloc bdev, on a reactor stepped by
//! hand: login and negotiation, write/read round trips through R2T and immediate data,
//! data-in split by the initiator's segment length, sense data, NOP, Text, Logout, TMF,
//! the CmdSN window, malformed input closing only its connection, and an initiator that
//! goes away with I/O in flight (completed and counted once).

#![allow(clippy::cast_possible_truncation)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::bdev::malloc::MallocBdev;
use crate::bdev::{Bdev, BdevRef};
use crate::iscsi::server::{Lun, PortalGroup};
use crate::iscsi::{PgIgMap, TargetNodeConfig};
use crate::reactor::{Reactor, ReactorSet};
use crate::scsi::LunInfo;
use crate::ticks::Clock;

const TARGET: &str = "iqn.2016-06.io.spdk:disk1";
const INITIATOR: &str = "iqn.2016-06.io.test:init";

struct Rig {
    reactor: Reactor,
    bdev: Arc<MallocBdev>,
    targets: Vec<Rc<Target>>,
    igs: Vec<InitiatorGroupConfig>,
    pgs: Vec<PortalGroup>,
    opts: Options,
    listener: TcpListener,
    tsih: u16,
}

impl Rig {
    fn new() -> Rig {
        let (clock, _manual) = Clock::manual();
        let reactor = ReactorSet::new(&[0], clock, false)
            .build_all()
            .pop()
            .unwrap();
        let bdev = Arc::new(MallocBdev::new("m0", 512, 2048, None).unwrap());
        let dyn_bdev: BdevRef = bdev.clone();
        let ch = reactor.enter(|| bdev.get_io_channel().unwrap());
        let info = LunInfo {
            block_size: 512,
            num_blocks: 2048,
            bdev_name: "m0".into(),
            uuid: bdev.uuid().to_owned(),
            target_name: TARGET.into(),
            lun_id: 0,
        };
        let config = TargetNodeConfig {
            name: TARGET.into(),
            alias_name: "d1".into(),
            pg_ig_maps: vec![PgIgMap {
                pg_tag: 1,
                ig_tag: 1,
            }],
            luns: vec![],
            queue_depth: 8,
            disable_chap: true,
            require_chap: false,
            mutual_chap: false,
            chap_group: 0,
            header_digest: false,
            data_digest: false,
        };
        let target = Rc::new(Target {
            config,
            luns: vec![Lun::new(0, info, ch, dyn_bdev)],
            lun_ids: vec![0],
        });
        Rig {
            reactor,
            bdev,
            targets: vec![target],
            igs: vec![InitiatorGroupConfig {
                tag: 1,
                initiators: vec![INITIATOR.into()],
                netmasks: vec!["127.0.0.1/32".into()],
            }],
            pgs: vec![],
            opts: Options::default(),
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
            tsih: 0,
        }
    }

    fn conn(&self) -> (Conn, TcpStream) {
        let client = TcpStream::connect(self.listener.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        // Small PDUs back to back: no Nagle delay between them.
        client.set_nodelay(true).unwrap();
        let (server, peer) = self.listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        server.set_nodelay(true).unwrap();
        let local = server.local_addr().ok();
        (Conn::new(server, peer, local, 1), client)
    }

    fn step(&mut self, conns: &mut [&mut Conn]) {
        for _ in 0..6 {
            std::thread::sleep(Duration::from_millis(2));
            for c in conns.iter_mut() {
                let env = Env {
                    targets: &self.targets,
                    igs: &self.igs,
                    pgs: &self.pgs,
                    opts: &self.opts,
                };
                let tsih = &mut self.tsih;
                self.reactor.enter(|| c.poll(&env, tsih));
            }
            self.reactor.poll_once();
        }
    }
}

/// A received PDU: header and data.
fn recv(s: &mut TcpStream) -> ([u8; 48], Vec<u8>) {
    let mut h = [0u8; 48];
    s.read_exact(&mut h).unwrap();
    let len = u32::from_be_bytes([0, h[5], h[6], h[7]]) as usize;
    let mut d = vec![0u8; len + (4 - len % 4) % 4];
    s.read_exact(&mut d).unwrap();
    d.truncate(len);
    (h, d)
}

fn send(s: &mut TcpStream, h: [u8; 48], data: &[u8]) {
    let mut out = Vec::new();
    pdu::emit(&mut out, h, data, Digests::default());
    s.write_all(&out).unwrap();
}

fn kv(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut v = Vec::new();
    for (k, val) in pairs {
        text::push_pair(&mut v, k, val);
    }
    v
}

fn login_pdu(flags: u8, cmd_sn: u32) -> [u8; 48] {
    let mut h = pdu::header(0x40 | op::LOGIN_REQ, flags, 1);
    h[8..14].copy_from_slice(&[0x80, 0, 0, 1, 2, 3]);
    pdu::put32(&mut h, 24, cmd_sn);
    h
}

/// Logs in (security then operational stage); returns the answers.
fn login(
    rig: &mut Rig,
    c: &mut Conn,
    s: &mut TcpStream,
    ops: &[(&str, &str)],
) -> Vec<(String, String)> {
    send(
        s,
        login_pdu(0x81, 1),
        &kv(&[
            ("InitiatorName", INITIATOR),
            ("SessionType", "Normal"),
            ("TargetName", TARGET),
            ("AuthMethod", "None"),
        ]),
    );
    rig.step(&mut [c]);
    let (h, d) = recv(s);
    assert_eq!((h[0] & 0x3f, h[36], h[37]), (op::LOGIN_RESP, 0, 0));
    let answers = text::parse_pairs(&d).unwrap();
    assert_eq!(text::get(&answers, "TargetPortalGroupTag"), Some("1"));
    assert_eq!(text::get(&answers, "AuthMethod"), Some("None"));
    send(s, login_pdu(0x87, 1), &kv(ops));
    rig.step(&mut [c]);
    let (h, d) = recv(s);
    assert_eq!((h[36], h[37]), (0, 0));
    assert_eq!(h[1], 0x87, "transit to full feature phase");
    assert_ne!(u16::from_be_bytes([h[14], h[15]]), 0, "a TSIH");
    text::parse_pairs(&d).unwrap()
}

fn scsi_cmd(
    itt: u32,
    cmd_sn: u32,
    cdb: &[u8],
    edtl: u32,
    read: bool,
    write: bool,
    final_: bool,
) -> [u8; 48] {
    let flags = (if final_ { 0x80 } else { 0 })
        | if read { 0x40 } else { 0 }
        | if write { 0x20 } else { 0 }
        | 1;
    let mut h = pdu::header(op::SCSI_CMD, flags, itt);
    pdu::put32(&mut h, 20, edtl);
    pdu::put32(&mut h, 24, cmd_sn);
    h[32..32 + cdb.len()].copy_from_slice(cdb);
    h
}

fn rw10(op: u8, lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = vec![op, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&blocks.to_be_bytes());
    c.push(0);
    c
}

fn data_out(itt: u32, ttt: u32, datasn: u32, offset: u32, final_: bool) -> [u8; 48] {
    let mut h = pdu::header(op::DATA_OUT, if final_ { 0x80 } else { 0 }, itt);
    pdu::put32(&mut h, 20, ttt);
    pdu::put32(&mut h, 36, datasn);
    pdu::put32(&mut h, 40, offset);
    h
}

/// Reads Data-In PDUs until the one with status; returns (data, status, residual flags).
fn read_data_in(s: &mut TcpStream) -> (Vec<u8>, u8, u8, u32, usize) {
    let mut data = Vec::new();
    let mut pdus = 0;
    loop {
        let (h, d) = recv(s);
        assert_eq!(h[0] & 0x3f, op::DATA_IN);
        assert_eq!(
            u32::from_be_bytes(h[36..40].try_into().unwrap()),
            pdus as u32,
            "DataSN"
        );
        assert_eq!(
            u32::from_be_bytes(h[40..44].try_into().unwrap()) as usize,
            data.len()
        );
        data.extend_from_slice(&d);
        pdus += 1;
        if h[1] & 0x01 != 0 {
            return (
                data,
                h[3],
                h[1] & 0x06,
                u32::from_be_bytes(h[44..48].try_into().unwrap()),
                pdus,
            );
        }
    }
}

#[test]
fn login_write_through_r2t_and_read_back_split_by_segment_length() {
    let mut rig = Rig::new();
    let (mut c, mut s) = rig.conn();
    let a = login(
        &mut rig,
        &mut c,
        &mut s,
        &[
            ("HeaderDigest", "None"),
            ("MaxRecvDataSegmentLength", "4096"),
            ("ImmediateData", "Yes"),
            ("InitialR2T", "Yes"),
            ("FirstBurstLength", "1024"),
            ("MaxBurstLength", "8192"),
            ("MaxOutstandingR2T", "1"),
        ],
    );
    assert_eq!(text::get(&a, "MaxBurstLength"), Some("8192"));
    assert_eq!(text::get(&a, "InitialR2T"), Some("Yes"));
    assert_eq!(c.group, Some(GroupKey::Initiator(INITIATOR.into())));
    // WRITE 32 blocks: 1024 bytes immediate, then R2Ts of at most 8192 bytes, one at a time.
    let data: Vec<u8> = (0..16384u32).map(|i| (i * 7 % 251) as u8).collect();
    send(
        &mut s,
        scsi_cmd(10, 1, &rw10(0x2a, 100, 32), 16384, false, true, true),
        &data[..1024],
    );
    rig.step(&mut [&mut c]);
    let mut offset = 1024;
    let mut r2ts = 0;
    while offset < data.len() {
        let (h, _) = recv(&mut s);
        assert_eq!(h[0] & 0x3f, op::R2T);
        let ttt = u32::from_be_bytes(h[20..24].try_into().unwrap());
        let at = u32::from_be_bytes(h[40..44].try_into().unwrap()) as usize;
        let len = u32::from_be_bytes(h[44..48].try_into().unwrap()) as usize;
        assert_eq!(
            u32::from_be_bytes(h[36..40].try_into().unwrap()),
            r2ts,
            "R2TSN"
        );
        assert_eq!(at, offset);
        assert!(len <= 8192);
        // Two Data-Out PDUs per R2T.
        let half = len / 2;
        send(
            &mut s,
            data_out(10, ttt, 0, at as u32, false),
            &data[at..at + half],
        );
        send(
            &mut s,
            data_out(10, ttt, 1, (at + half) as u32, true),
            &data[at + half..at + len],
        );
        rig.step(&mut [&mut c]);
        offset += len;
        r2ts += 1;
    }
    assert_eq!(r2ts, 2);
    let (h, d) = recv(&mut s);
    assert_eq!((h[0] & 0x3f, h[2], h[3]), (op::SCSI_RESP, 0, 0));
    assert!(d.is_empty());
    // READ them back: Data-In PDUs of at most 4096 bytes, status in the last.
    send(
        &mut s,
        scsi_cmd(11, 2, &rw10(0x28, 100, 32), 16384, true, false, true),
        &[],
    );
    rig.step(&mut [&mut c]);
    let (back, status, resid, _, pdus) = read_data_in(&mut s);
    assert_eq!((status, resid, pdus), (0, 0, 4));
    assert_eq!(back, data);
    assert_eq!(rig.bdev.stats().snapshot().num_write_ops, 1);
    // A short EDTL: overflow residual, only EDTL bytes sent.
    send(
        &mut s,
        scsi_cmd(12, 3, &rw10(0x28, 100, 2), 200, true, false, true),
        &[],
    );
    rig.step(&mut [&mut c]);
    let (back, status, resid, residual, _) = read_data_in(&mut s);
    assert_eq!((back.len(), status, resid, residual), (200, 0, 0x04, 824));
    // Out of range: CHECK CONDITION with sense ILLEGAL REQUEST / LBA OUT OF RANGE.
    send(
        &mut s,
        scsi_cmd(13, 4, &rw10(0x28, 2048, 1), 512, true, false, true),
        &[],
    );
    rig.step(&mut [&mut c]);
    let (h, d) = recv(&mut s);
    assert_eq!((h[0] & 0x3f, h[3]), (op::SCSI_RESP, 2));
    assert_eq!(u16::from_be_bytes([d[0], d[1]]), 18);
    assert_eq!((d[2 + 2] & 0x0f, d[2 + 12]), (5, 0x21));
}

#[test]
fn nop_text_unknown_opcode_cmdsn_window_and_logout() {
    let mut rig = Rig::new();
    let (mut c, mut s) = rig.conn();
    login(&mut rig, &mut c, &mut s, &[]);
    let mut nop = pdu::header(0x40 | op::NOP_OUT, 0x80, 77);
    pdu::put32(&mut nop, 20, RESERVED_TAG);
    pdu::put32(&mut nop, 24, 1);
    send(&mut s, nop, b"ping");
    rig.step(&mut [&mut c]);
    let (h, d) = recv(&mut s);
    assert_eq!((h[0] & 0x3f, d.as_slice()), (op::NOP_IN, &b"ping"[..]));
    assert_eq!(u32::from_be_bytes(h[16..20].try_into().unwrap()), 77);
    let exp = u32::from_be_bytes(h[28..32].try_into().unwrap());
    let max = u32::from_be_bytes(h[32..36].try_into().unwrap());
    assert_eq!((exp, max), (1, 8), "queue depth 8");
    // An opcode the target does not know: Reject with the header; the connection stays.
    let mut bad = pdu::header(0x1c, 0x80, 5);
    pdu::put32(&mut bad, 24, 1);
    send(&mut s, bad, &[]);
    rig.step(&mut [&mut c]);
    let (h, d) = recv(&mut s);
    assert_eq!(
        (h[0] & 0x3f, h[2]),
        (op::REJECT, pdu::reject::NOT_SUPPORTED)
    );
    assert_eq!(&d[..48], &bad[..]);
    // A command outside the CmdSN window is dropped; the next in order is served.
    send(
        &mut s,
        scsi_cmd(20, 500, &[0; 6], 0, false, false, true),
        &[],
    );
    send(&mut s, scsi_cmd(21, 2, &[0; 6], 0, false, false, true), &[]);
    rig.step(&mut [&mut c]);
    let (h, _) = recv(&mut s);
    assert_eq!(
        (
            h[0] & 0x3f,
            u32::from_be_bytes(h[16..20].try_into().unwrap())
        ),
        (op::SCSI_RESP, 21)
    );
    // SendTargets in a normal session: the session's target.
    let mut t = pdu::header(op::TEXT_REQ, 0x80, 30);
    pdu::put32(&mut t, 20, RESERVED_TAG);
    pdu::put32(&mut t, 24, 3);
    send(&mut s, t, &kv(&[("SendTargets", "All")]));
    rig.step(&mut [&mut c]);
    let (h, d) = recv(&mut s);
    assert_eq!(h[0] & 0x3f, op::TEXT_RESP);
    let p = text::parse_pairs(&d).unwrap();
    assert_eq!(text::get(&p, "TargetName"), Some(TARGET));
    // Logout: response 0, then the connection closes.
    let mut l = pdu::header(0x40 | op::LOGOUT_REQ, 0x80, 31);
    pdu::put32(&mut l, 24, 4);
    send(&mut s, l, &[]);
    rig.step(&mut [&mut c]);
    let (h, _) = recv(&mut s);
    assert_eq!((h[0] & 0x3f, h[2]), (op::LOGOUT_RESP, 0));
    assert!(c.finished());
}

#[test]
fn login_refusals_name_the_reason() {
    let mut rig = Rig::new();
    for (target, initiator, detail) in [
        ("iqn.2016-06.io.spdk:nope", INITIATOR, 0x03),
        (TARGET, "iqn.2016-06.io.test:other", 0x02),
    ] {
        let (mut c, mut s) = rig.conn();
        send(
            &mut s,
            login_pdu(0x81, 1),
            &kv(&[
                ("InitiatorName", initiator),
                ("TargetName", target),
                ("AuthMethod", "None"),
            ]),
        );
        rig.step(&mut [&mut c]);
        let (h, _) = recv(&mut s);
        assert_eq!((h[0] & 0x3f, h[36], h[37]), (op::LOGIN_RESP, 2, detail));
        assert!(c.finished());
    }
    // CHAP only: authentication failure.
    let (mut c, mut s) = rig.conn();
    send(
        &mut s,
        login_pdu(0x81, 1),
        &kv(&[
            ("InitiatorName", INITIATOR),
            ("TargetName", TARGET),
            ("AuthMethod", "CHAP"),
        ]),
    );
    rig.step(&mut [&mut c]);
    let (h, _) = recv(&mut s);
    assert_eq!((h[36], h[37]), (2, 0x01));
}

#[test]
fn malformed_input_closes_only_its_connection() {
    let mut rig = Rig::new();
    let (mut good, mut gs) = rig.conn();
    let (mut bad, mut bs) = rig.conn();
    login(&mut rig, &mut good, &mut gs, &[]);
    login(&mut rig, &mut bad, &mut bs, &[]);
    // A data segment longer than the target declared.
    let mut h = scsi_cmd(1, 1, &rw10(0x2a, 0, 1), 512, false, true, true);
    h[5..8].copy_from_slice(&[0x7f, 0xff, 0xff]);
    bs.write_all(&h).unwrap();
    rig.step(&mut [&mut good, &mut bad]);
    assert!(bad.finished() && bad.closed);
    let mut buf = [0u8; 1];
    assert!(matches!(bs.read(&mut buf), Ok(0) | Err(_)));
    // The other session is unaffected.
    send(&mut gs, scsi_cmd(2, 1, &[0; 6], 0, false, false, true), &[]);
    rig.step(&mut [&mut good, &mut bad]);
    let (h, _) = recv(&mut gs);
    assert_eq!((h[0] & 0x3f, h[3]), (op::SCSI_RESP, 0));
    assert!(!good.closed);
    // Data-Out with a tag no R2T gave: protocol error, closed.
    let (mut c3, mut s3) = rig.conn();
    login(&mut rig, &mut c3, &mut s3, &[("InitialR2T", "Yes")]);
    send(
        &mut s3,
        scsi_cmd(3, 1, &rw10(0x2a, 0, 4), 2048, false, true, true),
        &[],
    );
    rig.step(&mut [&mut c3]);
    let _r2t = recv(&mut s3);
    send(&mut s3, data_out(3, 0x1234_5678, 0, 0, true), &[0u8; 512]);
    rig.step(&mut [&mut c3]);
    assert!(c3.closed);
    // Bytes before a login: closed too.
    let (mut c4, mut s4) = rig.conn();
    send(&mut s4, scsi_cmd(1, 1, &[0; 6], 0, false, false, true), &[]);
    rig.step(&mut [&mut c4]);
    assert!(c4.closed);
}

/// Data-Out whose DataSN is not the next of its sequence (iscsi-test-cu's
/// iSCSIDataSnInvalid: a repeated 0, a jump, a wrap to -1, two PDUs swapped): the write
/// ends CHECK CONDITION, ABORTED COMMAND, PROTOCOL SERVICE CRC ERROR with nothing written,
/// and the session goes on; in order, the same write goes through.
#[test]
fn a_data_out_out_of_datasn_order_fails_its_command() {
    let mut rig = Rig::new();
    let (mut c, mut s) = rig.conn();
    login(&mut rig, &mut c, &mut s, &[("InitialR2T", "Yes")]);
    let writes = rig.bdev.stats().snapshot().num_write_ops;
    let cases = [(0, 0), (0, 27), (0, u32::MAX), (1, 0), (0, 1)];
    for (i, (first, second)) in cases.into_iter().enumerate() {
        let itt = 5 + i as u32;
        send(
            &mut s,
            scsi_cmd(
                itt,
                1 + i as u32,
                &rw10(0x2a, 0, 2),
                1024,
                false,
                true,
                true,
            ),
            &[],
        );
        rig.step(&mut [&mut c]);
        let (h, _) = recv(&mut s);
        assert_eq!(h[0] & 0x3f, op::R2T);
        let ttt = u32::from_be_bytes(h[20..24].try_into().unwrap());
        send(&mut s, data_out(itt, ttt, first, 0, false), &[1u8; 512]);
        send(&mut s, data_out(itt, ttt, second, 512, true), &[2u8; 512]);
        rig.step(&mut [&mut c]);
        let (h, d) = recv(&mut s);
        assert_eq!(h[0] & 0x3f, op::SCSI_RESP);
        assert!(!c.closed);
        if (first, second) == (0, 1) {
            assert_eq!(h[3], 0, "in order: GOOD");
        } else {
            assert_eq!(h[3], 0x02, "DataSN {first}, {second}: CHECK CONDITION");
            // The data segment: sense length, then fixed-format sense.
            assert_eq!((d[2 + 2] & 0x0f, d[2 + 12], d[2 + 13]), (0x0b, 0x47, 0x05));
        }
    }
    assert_eq!(
        rig.bdev.stats().snapshot().num_write_ops,
        writes + 1,
        "only the write in order reached the disk"
    );
}

/// A Data-Out with F set that ends its R2T's sequence short: the missing bytes would never
/// be asked for again (the command would hang until the connection goes), so it is a
/// protocol error that closes the connection.
#[test]
fn a_final_data_out_short_of_its_r2t_closes_the_connection() {
    let mut rig = Rig::new();
    let (mut c, mut s) = rig.conn();
    login(&mut rig, &mut c, &mut s, &[("InitialR2T", "Yes")]);
    send(
        &mut s,
        scsi_cmd(9, 1, &rw10(0x2a, 0, 2), 1024, false, true, true),
        &[],
    );
    rig.step(&mut [&mut c]);
    let (h, _) = recv(&mut s);
    assert_eq!(h[0] & 0x3f, op::R2T);
    let ttt = u32::from_be_bytes(h[20..24].try_into().unwrap());
    // The R2T asked for 1024 bytes; the sequence ends after 512.
    send(&mut s, data_out(9, ttt, 0, 0, true), &[1u8; 512]);
    rig.step(&mut [&mut c]);
    assert!(c.closed);
}

#[test]
fn an_initiator_leaving_with_io_in_flight_loses_nothing() {
    let mut rig = Rig::new();
    let (mut c, mut s) = rig.conn();
    login(&mut rig, &mut c, &mut s, &[]);
    let before = rig.bdev.stats().snapshot().num_write_ops;
    send(
        &mut s,
        scsi_cmd(1, 1, &rw10(0x2a, 0, 1), 512, false, true, true),
        &[7u8; 512],
    );
    std::thread::sleep(Duration::from_millis(5));
    // Submitted, not yet completed (completions come from a later reactor pass).
    {
        let env = Env {
            targets: &rig.targets,
            igs: &rig.igs,
            pgs: &rig.pgs,
            opts: &rig.opts,
        };
        let tsih = &mut rig.tsih;
        rig.reactor.enter(|| c.poll(&env, tsih));
    }
    assert_eq!(c.outstanding(), 1);
    drop(s);
    {
        let env = Env {
            targets: &rig.targets,
            igs: &rig.igs,
            pgs: &rig.pgs,
            opts: &rig.opts,
        };
        let tsih = &mut rig.tsih;
        std::thread::sleep(Duration::from_millis(5));
        rig.reactor.enter(|| c.poll(&env, tsih));
    }
    assert!(!c.finished(), "waits for its I/O");
    rig.step(&mut [&mut c]);
    assert!(c.finished());
    assert_eq!(c.outstanding(), 0);
    assert_eq!(rig.bdev.stats().snapshot().num_write_ops, before + 1);
}

/// ABORT TASK of a task not here (RFC 7143 11.5.1, iscsi-test-cu's AbortTaskSimpleAsync):
/// a write answered already "does not exist" (1); a RefCmdSN not yet received, in the
/// window and before the request's own CmdSN, "function complete" (0).
#[test]
fn abort_task_of_a_task_not_here_says_whether_it_was_received() {
    let mut rig = Rig::new();
    let (mut c, mut s) = rig.conn();
    login(&mut rig, &mut c, &mut s, &[]);
    send(
        &mut s,
        scsi_cmd(1, 1, &rw10(0x2a, 0, 1), 512, false, true, true),
        &[5u8; 512],
    );
    rig.step(&mut [&mut c]);
    let (h, _) = recv(&mut s);
    assert_eq!((h[0] & 0x3f, h[3]), (op::SCSI_RESP, 0));
    // Immediate TMF, CmdSN 2 (the next), for the write of CmdSN 1, answered.
    let mut tmf = pdu::header(0x40 | op::TMF_REQ, 0x80 | 1, 60);
    pdu::put32(&mut tmf, 20, 1);
    pdu::put32(&mut tmf, 24, 2);
    pdu::put32(&mut tmf, 32, 1);
    send(&mut s, tmf, &[]);
    rig.step(&mut [&mut c]);
    let (h, _) = recv(&mut s);
    assert_eq!(
        (h[0] & 0x3f, h[2]),
        (op::TMF_RESP, 1),
        "task does not exist"
    );
    // A TMF of CmdSN 3 for a task of CmdSN 2 that never came: function complete.
    let mut tmf = pdu::header(0x40 | op::TMF_REQ, 0x80 | 1, 61);
    pdu::put32(&mut tmf, 20, 7);
    pdu::put32(&mut tmf, 24, 3);
    pdu::put32(&mut tmf, 32, 2);
    send(&mut s, tmf, &[]);
    rig.step(&mut [&mut c]);
    let (h, _) = recv(&mut s);
    assert_eq!((h[0] & 0x3f, h[2]), (op::TMF_RESP, 0), "function complete");
}

#[test]
fn abort_task_and_lun_reset_answer_after_the_io_they_wait_for() {
    let mut rig = Rig::new();
    let (mut c, mut s) = rig.conn();
    login(
        &mut rig,
        &mut c,
        &mut s,
        &[("InitialR2T", "Yes"), ("ImmediateData", "No")],
    );
    // A write waiting for its data: aborted at once, never answered.
    send(
        &mut s,
        scsi_cmd(1, 1, &rw10(0x2a, 0, 4), 2048, false, true, true),
        &[],
    );
    rig.step(&mut [&mut c]);
    let (h, _) = recv(&mut s);
    assert_eq!(h[0] & 0x3f, op::R2T);
    let mut tmf = pdu::header(0x40 | op::TMF_REQ, 0x80 | 1, 50);
    pdu::put32(&mut tmf, 20, 1);
    pdu::put32(&mut tmf, 24, 2);
    send(&mut s, tmf, &[]);
    rig.step(&mut [&mut c]);
    let (h, _) = recv(&mut s);
    assert_eq!((h[0] & 0x3f, h[2]), (op::TMF_RESP, 0));
    // LUN RESET of a LUN that does not exist; then of LUN 0 with a read in flight.
    let mut reset = pdu::header(0x40 | op::TMF_REQ, 0x80 | 5, 51);
    reset[9] = 9;
    pdu::put32(&mut reset, 24, 2);
    send(&mut s, reset, &[]);
    rig.step(&mut [&mut c]);
    let (h, _) = recv(&mut s);
    assert_eq!(h[2], 2, "LUN does not exist");
    // The read and the reset in one segment: the read is submitted, not completed, when
    // the reset is handled.
    reset[9] = 0;
    reset[16..20].copy_from_slice(&52u32.to_be_bytes());
    pdu::put32(&mut reset, 24, 3);
    let mut both = Vec::new();
    let read = scsi_cmd(2, 2, &rw10(0x28, 0, 1), 512, true, false, true);
    pdu::emit(&mut both, read, &[], Digests::default());
    pdu::emit(&mut both, reset, &[], Digests::default());
    s.write_all(&both).unwrap();
    rig.step(&mut [&mut c]);
    let (h, _) = recv(&mut s);
    assert_eq!(
        (h[0] & 0x3f, h[2]),
        (op::TMF_RESP, 0),
        "the read is aborted, not answered"
    );
    assert_eq!(u32::from_be_bytes(h[16..20].try_into().unwrap()), 52);
    assert_eq!(c.outstanding(), 0);
    // The connection goes on.
    send(&mut s, scsi_cmd(3, 3, &[0; 6], 0, false, false, true), &[]);
    rig.step(&mut [&mut c]);
    let (h, _) = recv(&mut s);
    assert_eq!(h[0] & 0x3f, op::SCSI_RESP);
}
