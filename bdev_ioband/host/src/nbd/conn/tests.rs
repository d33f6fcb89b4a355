//! Connection tests over socket pairs and a malloc bdev, on a reactor stepped by hand: the
//! handshake, every command, error replies, malformed input closing only its connection,
//! and a client that goes away mid-command.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use super::*;
use crate::bdev::malloc::MallocBdev;
use crate::bdev::Bdev;
use crate::nbd::proto::*;
use crate::reactor::{Reactor, ReactorSet};
use crate::ticks::Clock;

struct Rig {
    reactor: Reactor,
    bdev: Rc<MallocBdev>,
    ch: Rc<dyn IoChannel>,
    ex: ExportInfo,
}

impl Rig {
    fn new() -> Rig {
        let (clock, _manual) = Clock::manual();
        let reactor = ReactorSet::new(&[0], clock, false)
            .build_all()
            .pop()
            .unwrap();
        let bdev = Rc::new(MallocBdev::new("m0", 512, 2048, None).unwrap());
        let ch = reactor.enter(|| bdev.get_io_channel().unwrap());
        let ex = ExportInfo {
            name: "disk".into(),
            size: 512 * 2048,
            block_size: 512,
        };
        Rig {
            reactor,
            bdev,
            ch,
            ex,
        }
    }

    fn conn(&self) -> (Conn, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        (Conn::new(Stream::Unix(a), "test".into(), None), b)
    }

    fn step(&mut self, conns: &mut [&mut Conn]) {
        for _ in 0..4 {
            for c in conns.iter_mut() {
                self.reactor.enter(|| c.poll(&self.ex, &*self.ch));
            }
            self.reactor.poll_once();
        }
    }
}

fn read_n(s: &mut UnixStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v).unwrap();
    v
}

fn go(name: &[u8]) -> Vec<u8> {
    let mut d = u32::try_from(name.len()).unwrap().to_be_bytes().to_vec();
    d.extend_from_slice(name);
    d.extend_from_slice(&1u16.to_be_bytes());
    d.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
    let mut v = IHAVEOPT.to_be_bytes().to_vec();
    v.extend_from_slice(&OPT_GO.to_be_bytes());
    v.extend_from_slice(&u32::try_from(d.len()).unwrap().to_be_bytes());
    v.extend_from_slice(&d);
    v
}

/// Runs the handshake with `NBD_OPT_GO` on `conn` from client `s`.
fn handshake(rig: &mut Rig, conn: &mut Conn, s: &mut UnixStream) {
    rig.step(&mut [conn]);
    let g = read_n(s, 18);
    assert_eq!(&g[..8], b"NBDMAGIC");
    s.write_all(&3u32.to_be_bytes()).unwrap();
    s.write_all(&go(b"disk")).unwrap();
    rig.step(&mut [conn]);
    // INFO export (20 + 12), INFO block size (20 + 14), ACK (20).
    let r = read_n(s, 32 + 34 + 20);
    assert_eq!(u32::from_be_bytes(r[12..16].try_into().unwrap()), REP_INFO);
    assert_eq!(
        u64::from_be_bytes(r[22..30].try_into().unwrap()),
        512 * 2048
    );
    assert_eq!(u32::from_be_bytes(r[78..82].try_into().unwrap()), REP_ACK);
}

fn req(cmd: u16, handle: u64, offset: u64, len: u32) -> Vec<u8> {
    super::super::proto::tests::request(cmd, handle, offset, len)
}

/// Reads one simple reply: (error, handle).
fn reply(s: &mut UnixStream) -> (u32, u64) {
    let r = read_n(s, SIMPLE_REPLY_LEN);
    assert_eq!(r[..4], SIMPLE_REPLY_MAGIC.to_be_bytes());
    (
        u32::from_be_bytes(r[4..8].try_into().unwrap()),
        u64::from_be_bytes(r[8..16].try_into().unwrap()),
    )
}

#[test]
fn every_command_round_trips() {
    let mut rig = Rig::new();
    let (mut c, mut s) = rig.conn();
    handshake(&mut rig, &mut c, &mut s);
    let data: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
    let mut w = req(CMD_WRITE, 1, 1024, 1024);
    w.extend_from_slice(&data);
    s.write_all(&w).unwrap();
    rig.step(&mut [&mut c]);
    assert_eq!(reply(&mut s), (0, 1));
    s.write_all(&req(CMD_READ, 2, 1024, 1024)).unwrap();
    rig.step(&mut [&mut c]);
    assert_eq!(reply(&mut s), (0, 2));
    assert_eq!(read_n(&mut s, 1024), data);
    s.write_all(&req(CMD_FLUSH, 3, 0, 0)).unwrap();
    s.write_all(&req(CMD_TRIM, 4, 0, 512)).unwrap();
    rig.step(&mut [&mut c]);
    let mut got = [reply(&mut s), reply(&mut s)];
    got.sort_by_key(|r| r.1);
    assert_eq!(got, [(0, 3), (0, 4)]);
    // Write zeroes over the first half of the data, then read it all back.
    s.write_all(&req(CMD_WRITE_ZEROES, 5, 1024, 512)).unwrap();
    rig.step(&mut [&mut c]);
    assert_eq!(reply(&mut s), (0, 5));
    s.write_all(&req(CMD_READ, 6, 1024, 1024)).unwrap();
    rig.step(&mut [&mut c]);
    assert_eq!(reply(&mut s), (0, 6));
    let back = read_n(&mut s, 1024);
    assert!(back[..512].iter().all(|&b| b == 0));
    assert_eq!(back[512..], data[512..]);
    // Well formed but wrong: an error reply, the connection stays.
    s.write_all(&req(CMD_READ, 7, 100, 512)).unwrap();
    s.write_all(&req(CMD_READ, 8, 512 * 2048, 512)).unwrap();
    s.write_all(&req(99, 9, 0, 512)).unwrap();
    let mut w = req(CMD_WRITE, 10, 512 * 2047, 1024);
    w.extend_from_slice(&[0u8; 1024]);
    s.write_all(&w).unwrap();
    rig.step(&mut [&mut c]);
    assert_eq!(reply(&mut s), (EINVAL, 7));
    assert_eq!(reply(&mut s), (EINVAL, 8));
    assert_eq!(reply(&mut s), (EINVAL, 9));
    assert_eq!(reply(&mut s), (ENOSPC, 10));
    s.write_all(&req(CMD_DISC, 11, 0, 0)).unwrap();
    rig.step(&mut [&mut c]);
    assert!(c.finished());
    let stats = rig.bdev.stats().snapshot();
    assert_eq!(stats.num_write_ops, 2);
    assert_eq!(stats.num_read_ops, 2);
}

#[test]
fn malformed_input_closes_only_its_connection() {
    let mut rig = Rig::new();
    let (mut a, mut sa) = rig.conn();
    let (mut b, mut sb) = rig.conn();
    handshake(&mut rig, &mut a, &mut sa);
    handshake(&mut rig, &mut b, &mut sb);
    let mut bad = req(CMD_READ, 1, 0, 512);
    bad[0] = 0;
    sa.write_all(&bad).unwrap();
    sb.write_all(&req(CMD_READ, 2, 0, 512)).unwrap();
    rig.step(&mut [&mut a, &mut b]);
    assert!(a.finished());
    let mut buf = [0u8; 1];
    assert_eq!(sa.read(&mut buf).unwrap(), 0, "closed without a reply");
    assert!(!b.finished());
    assert_eq!(reply(&mut sb), (0, 2));
    assert_eq!(read_n(&mut sb, 512).len(), 512);

    // Bad option magic, unknown client flags and an oversized write close too.
    for bytes in [
        {
            let mut v = 3u32.to_be_bytes().to_vec();
            v.extend_from_slice(&[0u8; 16]);
            v
        },
        vec![0, 0, 0, 0x80],
    ] {
        let (mut c, mut s) = rig.conn();
        rig.step(&mut [&mut c]);
        read_n(&mut s, 18);
        s.write_all(&bytes).unwrap();
        rig.step(&mut [&mut c]);
        assert!(c.finished());
    }
    let (mut c, mut s) = rig.conn();
    handshake(&mut rig, &mut c, &mut s);
    s.write_all(&req(CMD_WRITE, 1, 0, MAX_IO_BYTES + 512))
        .unwrap();
    rig.step(&mut [&mut c, &mut b]);
    assert!(c.finished());
    assert!(!b.finished());
}

#[test]
fn unknown_export_and_options() {
    let mut rig = Rig::new();
    let (mut c, mut s) = rig.conn();
    rig.step(&mut [&mut c]);
    read_n(&mut s, 18);
    s.write_all(&3u32.to_be_bytes()).unwrap();
    s.write_all(&go(b"nope")).unwrap();
    // LIST, then an unsupported option (STARTTLS).
    for opt in [OPT_LIST, 5] {
        let mut v = IHAVEOPT.to_be_bytes().to_vec();
        v.extend_from_slice(&opt.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        s.write_all(&v).unwrap();
    }
    rig.step(&mut [&mut c]);
    let r = read_n(&mut s, 20);
    assert_eq!(
        u32::from_be_bytes(r[12..16].try_into().unwrap()),
        REP_ERR_UNKNOWN
    );
    let r = read_n(&mut s, 28);
    assert_eq!(
        u32::from_be_bytes(r[12..16].try_into().unwrap()),
        REP_SERVER
    );
    assert_eq!(&r[24..], b"disk");
    let r = read_n(&mut s, 20);
    assert_eq!(u32::from_be_bytes(r[12..16].try_into().unwrap()), REP_ACK);
    let r = read_n(&mut s, 20);
    assert_eq!(
        u32::from_be_bytes(r[12..16].try_into().unwrap()),
        REP_ERR_UNSUP
    );
    // EXPORT_NAME with the empty name reaches the export.
    let mut v = IHAVEOPT.to_be_bytes().to_vec();
    v.extend_from_slice(&OPT_EXPORT_NAME.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    s.write_all(&v).unwrap();
    rig.step(&mut [&mut c]);
    let r = read_n(&mut s, 10);
    assert_eq!(u64::from_be_bytes(r[..8].try_into().unwrap()), 512 * 2048);
    assert!(!c.finished());
}

#[test]
fn io_in_flight_when_the_client_goes_completes_and_is_counted() {
    let mut rig = Rig::new();
    let (mut c, mut s) = rig.conn();
    handshake(&mut rig, &mut c, &mut s);
    let mut w = req(CMD_WRITE, 1, 0, 512);
    w.extend_from_slice(&[7u8; 512]);
    s.write_all(&w).unwrap();
    // Submitted, not yet completed (completions come from a later reactor pass).
    rig.reactor.enter(|| c.poll(&rig.ex, &*rig.ch));
    assert_eq!(c.outstanding(), 1);
    drop(s);
    rig.reactor.enter(|| c.poll(&rig.ex, &*rig.ch));
    assert!(!c.finished(), "waits for its I/O");
    rig.step(&mut [&mut c]);
    assert!(c.finished());
    assert_eq!(c.outstanding(), 0);
    assert_eq!(rig.bdev.stats().snapshot().num_write_ops, 1);
}

#[test]
fn fua_writes_are_flushed_before_the_reply() {
    let mut rig = Rig::new();
    let (mut c, mut s) = rig.conn();
    handshake(&mut rig, &mut c, &mut s);
    let mut w = req(CMD_WRITE, 1, 0, 512);
    w[4..6].copy_from_slice(&CMD_FLAG_FUA.to_be_bytes());
    w.extend_from_slice(&[9u8; 512]);
    s.write_all(&w).unwrap();
    let mut z = req(CMD_WRITE_ZEROES, 2, 512, 512);
    z[4..6].copy_from_slice(&CMD_FLAG_FUA.to_be_bytes());
    s.write_all(&z).unwrap();
    rig.step(&mut [&mut c]);
    rig.step(&mut [&mut c]);
    let mut got = [reply(&mut s), reply(&mut s)];
    got.sort_by_key(|r| r.1);
    assert_eq!(got, [(0, 1), (0, 2)]);
    let stats = rig.bdev.stats().snapshot();
    assert_eq!((stats.num_write_ops, stats.num_other_ops), (2, 2));
    assert_ne!(rig.ex.flags() & TFLAG_SEND_FUA, 0);
}
