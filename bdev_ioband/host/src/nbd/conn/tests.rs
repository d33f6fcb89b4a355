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

/// Runs the handshake with `NBD_OPT_GO` on `conn` from client `s`; returns the
/// transmission flags.
fn handshake(rig: &mut Rig, conn: &mut Conn, s: &mut UnixStream) -> u16 {
    handshake_with(rig, conn, s, false)
}

/// The handshake, asking for structured replies first if `structured`.
fn handshake_with(rig: &mut Rig, conn: &mut Conn, s: &mut UnixStream, structured: bool) -> u16 {
    rig.step(&mut [conn]);
    let g = read_n(s, 18);
    assert_eq!(&g[..8], b"NBDMAGIC");
    s.write_all(&3u32.to_be_bytes()).unwrap();
    if structured {
        s.write_all(&opt(OPT_STRUCTURED_REPLY, &[])).unwrap();
        rig.step(&mut [conn]);
        assert_eq!(opt_reply(s), (OPT_STRUCTURED_REPLY, REP_ACK, vec![]));
    }
    s.write_all(&go(b"disk")).unwrap();
    rig.step(&mut [conn]);
    // INFO export (20 + 12), INFO block size (20 + 14), ACK (20).
    let r = read_n(s, 32 + 34 + 20);
    assert_eq!(u32::from_be_bytes(r[12..16].try_into().unwrap()), REP_INFO);
    assert_eq!(
        u64::from_be_bytes(r[22..30].try_into().unwrap()),
        rig.ex.size
    );
    assert_eq!(u32::from_be_bytes(r[78..82].try_into().unwrap()), REP_ACK);
    assert_eq!(conn.structured(), structured);
    u16::from_be_bytes(r[30..32].try_into().unwrap())
}

/// An option from the client.
fn opt(option: u32, data: &[u8]) -> Vec<u8> {
    let mut v = IHAVEOPT.to_be_bytes().to_vec();
    v.extend_from_slice(&option.to_be_bytes());
    v.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// Reads one option reply: (option, reply type, data).
fn opt_reply(s: &mut UnixStream) -> (u32, u32, Vec<u8>) {
    let r = read_n(s, 20);
    assert_eq!(r[..8], OPT_REPLY_MAGIC.to_be_bytes());
    let len = u32::from_be_bytes(r[16..20].try_into().unwrap());
    (
        u32::from_be_bytes(r[8..12].try_into().unwrap()),
        u32::from_be_bytes(r[12..16].try_into().unwrap()),
        read_n(s, len as usize),
    )
}

/// The data of a metadata context option.
fn meta(name: &[u8], queries: &[&[u8]]) -> Vec<u8> {
    let mut d = u32::try_from(name.len()).unwrap().to_be_bytes().to_vec();
    d.extend_from_slice(name);
    d.extend_from_slice(&u32::try_from(queries.len()).unwrap().to_be_bytes());
    for q in queries {
        d.extend_from_slice(&u32::try_from(q.len()).unwrap().to_be_bytes());
        d.extend_from_slice(q);
    }
    d
}

/// One structured reply chunk.
#[derive(Debug, PartialEq, Eq)]
struct Chunk {
    flags: u16,
    kind: u16,
    handle: u64,
    payload: Vec<u8>,
}

/// Reads one structured reply chunk (and fails on a simple reply).
fn chunk(s: &mut UnixStream) -> Chunk {
    let r = read_n(s, STRUCTURED_REPLY_LEN);
    assert_eq!(
        r[..4],
        STRUCTURED_REPLY_MAGIC.to_be_bytes(),
        "a structured chunk"
    );
    let len = u32::from_be_bytes(r[16..20].try_into().unwrap());
    Chunk {
        flags: u16::from_be_bytes(r[4..6].try_into().unwrap()),
        kind: u16::from_be_bytes(r[6..8].try_into().unwrap()),
        handle: u64::from_be_bytes(r[8..16].try_into().unwrap()),
        payload: read_n(s, len as usize),
    }
}

/// A final `NONE` chunk.
fn none(handle: u64) -> Chunk {
    Chunk {
        flags: REPLY_FLAG_DONE,
        kind: REPLY_TYPE_NONE,
        handle,
        payload: vec![],
    }
}

/// Reads an error chunk marked done: (type, error, message, offset if any).
fn error_chunk(s: &mut UnixStream, handle: u64) -> (u16, u32, String, Option<u64>) {
    let c = chunk(s);
    assert_eq!((c.flags, c.handle), (REPLY_FLAG_DONE, handle));
    let p = &c.payload;
    let error = u32::from_be_bytes(p[..4].try_into().unwrap());
    let len = usize::from(u16::from_be_bytes(p[4..6].try_into().unwrap()));
    let message = String::from_utf8(p[6..6 + len].to_vec()).unwrap();
    let offset = match c.kind {
        REPLY_TYPE_ERROR => {
            assert_eq!(p.len(), 6 + len);
            None
        }
        REPLY_TYPE_ERROR_OFFSET => {
            assert_eq!(p.len(), 6 + len + 8);
            Some(u64::from_be_bytes(p[6 + len..].try_into().unwrap()))
        }
        k => panic!("not an error chunk: {k:#x}"),
    };
    (c.kind, error, message, offset)
}

fn with_flags(mut r: Vec<u8>, flags: u16) -> Vec<u8> {
    r[4..6].copy_from_slice(&flags.to_be_bytes());
    r
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
    assert_ne!(rig.ex.flags(false) & TFLAG_SEND_FUA, 0);
}

#[test]
fn structured_replies_once_negotiated() {
    let mut rig = Rig::new();
    let (mut c, mut s) = rig.conn();
    let flags = handshake_with(&mut rig, &mut c, &mut s, true);
    assert_ne!(flags & TFLAG_SEND_DF, 0);
    assert_ne!(flags & TFLAG_CAN_MULTI_CONN, 0);
    let data: Vec<u8> = (0..1024u32).map(|i| (i % 253) as u8).collect();
    let mut w = req(CMD_WRITE, 1, 1024, 1024);
    w.extend_from_slice(&data);
    s.write_all(&w).unwrap();
    rig.step(&mut [&mut c]);
    assert_eq!(chunk(&mut s), none(1));
    // A read: one OFFSET_DATA chunk marked done, with and without DF.
    for (handle, flags) in [(2, 0), (3, CMD_FLAG_DF)] {
        s.write_all(&with_flags(req(CMD_READ, handle, 1024, 1024), flags))
            .unwrap();
        rig.step(&mut [&mut c]);
        let got = chunk(&mut s);
        assert_eq!(
            (got.flags, got.kind, got.handle),
            (REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, handle)
        );
        assert_eq!(got.payload[..8], 1024u64.to_be_bytes());
        assert_eq!(got.payload[8..], data);
    }
    // Everything else: a NONE chunk.
    s.write_all(&req(CMD_FLUSH, 4, 0, 0)).unwrap();
    rig.step(&mut [&mut c]);
    assert_eq!(chunk(&mut s), none(4));
    s.write_all(&req(CMD_TRIM, 5, 0, 512)).unwrap();
    rig.step(&mut [&mut c]);
    assert_eq!(chunk(&mut s), none(5));
    s.write_all(&with_flags(
        req(CMD_WRITE_ZEROES, 6, 1024, 512),
        CMD_FLAG_NO_HOLE,
    ))
    .unwrap();
    rig.step(&mut [&mut c]);
    assert_eq!(chunk(&mut s), none(6));
    s.write_all(&req(CMD_READ, 7, 1024, 1024)).unwrap();
    rig.step(&mut [&mut c]);
    let got = chunk(&mut s);
    assert!(got.payload[8..8 + 512].iter().all(|&b| b == 0));
    assert_eq!(got.payload[8 + 512..], data[512..]);
    // Errors, reads included: ERROR chunks with an errno and a message, never a simple reply.
    s.write_all(&req(CMD_READ, 8, 100, 512)).unwrap();
    s.write_all(&req(CMD_READ, 9, 512 * 2048, 512)).unwrap();
    s.write_all(&req(CMD_READ, 10, 0, MAX_IO_BYTES + 512))
        .unwrap();
    s.write_all(&req(99, 11, 0, 512)).unwrap();
    let mut w = req(CMD_WRITE, 12, 512 * 2047, 1024);
    w.extend_from_slice(&[0u8; 1024]);
    s.write_all(&w).unwrap();
    s.write_all(&req(CMD_TRIM, 13, 0, 100)).unwrap();
    rig.step(&mut [&mut c]);
    for (handle, errno) in [
        (8, EINVAL),
        (9, EINVAL),
        (10, EOVERFLOW),
        (11, EINVAL),
        (12, ENOSPC),
        (13, EINVAL),
    ] {
        let (kind, error, message, offset) = error_chunk(&mut s, handle);
        assert_eq!((kind, error, offset), (REPLY_TYPE_ERROR, errno, None));
        assert!(!message.is_empty());
    }
    s.write_all(&req(CMD_DISC, 14, 0, 0)).unwrap();
    rig.step(&mut [&mut c]);
    assert!(c.finished());
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing after the last reply");
}

#[test]
fn without_structured_replies_everything_stays_simple() {
    let mut rig = Rig::new();
    let (mut c, mut s) = rig.conn();
    let flags = handshake(&mut rig, &mut c, &mut s);
    assert_eq!(flags & TFLAG_SEND_DF, 0, "DF needs structured replies");
    assert_ne!(flags & TFLAG_CAN_MULTI_CONN, 0);
    // DF was not advertised: refused, in a simple reply.
    s.write_all(&with_flags(req(CMD_READ, 1, 0, 512), CMD_FLAG_DF))
        .unwrap();
    s.write_all(&req(CMD_READ, 2, 0, 512)).unwrap();
    rig.step(&mut [&mut c]);
    assert_eq!(reply(&mut s), (EINVAL, 1));
    assert_eq!(reply(&mut s), (0, 2));
    assert_eq!(read_n(&mut s, 512).len(), 512);
    assert!(!c.finished());
    assert_eq!(rig.bdev.stats().snapshot().num_read_ops, 1);
}

#[test]
fn structured_only_options_before_negotiation_are_refused() {
    let mut rig = Rig::new();
    let (mut c, mut s) = rig.conn();
    rig.step(&mut [&mut c]);
    read_n(&mut s, 18);
    s.write_all(&3u32.to_be_bytes()).unwrap();
    let query = meta(b"disk", &[b"base:allocation"]);
    s.write_all(&opt(OPT_SET_META_CONTEXT, &query)).unwrap();
    s.write_all(&opt(OPT_LIST_META_CONTEXT, &query)).unwrap();
    s.write_all(&opt(OPT_STRUCTURED_REPLY, &[0])).unwrap();
    s.write_all(&opt(OPT_EXTENDED_HEADERS, &[])).unwrap();
    rig.step(&mut [&mut c]);
    assert_eq!(
        opt_reply(&mut s),
        (OPT_SET_META_CONTEXT, REP_ERR_INVALID, vec![])
    );
    assert_eq!(
        opt_reply(&mut s),
        (OPT_LIST_META_CONTEXT, REP_ERR_INVALID, vec![])
    );
    assert_eq!(
        opt_reply(&mut s),
        (OPT_STRUCTURED_REPLY, REP_ERR_INVALID, vec![]),
        "the option takes no data"
    );
    assert_eq!(
        opt_reply(&mut s),
        (OPT_EXTENDED_HEADERS, REP_ERR_UNSUP, vec![])
    );
    assert!(!c.structured());
    // Now negotiated: metadata options are answered with no context (and an ACK).
    s.write_all(&opt(OPT_STRUCTURED_REPLY, &[])).unwrap();
    s.write_all(&opt(OPT_SET_META_CONTEXT, &query)).unwrap();
    s.write_all(&opt(OPT_LIST_META_CONTEXT, &meta(b"disk", &[])))
        .unwrap();
    s.write_all(&opt(OPT_LIST_META_CONTEXT, &query[..query.len() - 1]))
        .unwrap();
    s.write_all(&opt(
        OPT_SET_META_CONTEXT,
        &meta(b"nope", &[b"base:allocation"]),
    ))
    .unwrap();
    rig.step(&mut [&mut c]);
    assert_eq!(opt_reply(&mut s), (OPT_STRUCTURED_REPLY, REP_ACK, vec![]));
    assert_eq!(opt_reply(&mut s), (OPT_SET_META_CONTEXT, REP_ACK, vec![]));
    assert_eq!(opt_reply(&mut s), (OPT_LIST_META_CONTEXT, REP_ACK, vec![]));
    assert_eq!(
        opt_reply(&mut s),
        (OPT_LIST_META_CONTEXT, REP_ERR_INVALID, vec![]),
        "truncated"
    );
    assert_eq!(
        opt_reply(&mut s),
        (OPT_SET_META_CONTEXT, REP_ERR_UNKNOWN, vec![])
    );
    // EXPORT_NAME reports DF too, and the transmission is structured.
    s.write_all(&opt(OPT_EXPORT_NAME, &[])).unwrap();
    rig.step(&mut [&mut c]);
    let r = read_n(&mut s, 10);
    let flags = u16::from_be_bytes(r[8..10].try_into().unwrap());
    assert_ne!(flags & TFLAG_SEND_DF, 0);
    assert!(c.structured());
    s.write_all(&req(CMD_FLUSH, 1, 0, 0)).unwrap();
    rig.step(&mut [&mut c]);
    assert_eq!(chunk(&mut s), none(1));
}

#[test]
fn failed_io_is_an_error_offset_chunk_at_the_failure() {
    let mut rig = Rig::new();
    // The export claims twice the bdev: I/O past the bdev's end passes the range check and
    // fails in the bdev.
    rig.ex.size = 512 * 4096;
    let (mut c, mut s) = rig.conn();
    handshake_with(&mut rig, &mut c, &mut s, true);
    s.write_all(&req(CMD_READ, 1, 512 * 3000, 512)).unwrap();
    rig.step(&mut [&mut c]);
    let (kind, error, message, offset) = error_chunk(&mut s, 1);
    assert_eq!(
        (kind, error, offset),
        (REPLY_TYPE_ERROR_OFFSET, EIO, Some(512 * 3000))
    );
    assert_eq!(message, "I/O error");
    // Write zeroes over the whole export, with FUA: the first 1 MiB chunk is written, the
    // second fails; the error names the second's offset, and no flush follows.
    s.write_all(&with_flags(
        req(CMD_WRITE_ZEROES, 2, 0, 512 * 4096),
        CMD_FLAG_FUA,
    ))
    .unwrap();
    for _ in 0..3 {
        rig.step(&mut [&mut c]);
    }
    let (kind, error, _, offset) = error_chunk(&mut s, 2);
    assert_eq!(
        (kind, error, offset),
        (REPLY_TYPE_ERROR_OFFSET, EIO, Some(1 << 20))
    );
    let stats = rig.bdev.stats().snapshot();
    assert_eq!(stats.num_other_ops, 0, "no flush after a failed write");
    assert!(!c.finished());
    assert_eq!(c.outstanding(), 0);

    // Without structured replies: a simple EIO and no data.
    let (mut c, mut s) = rig.conn();
    handshake(&mut rig, &mut c, &mut s);
    s.write_all(&req(CMD_READ, 3, 512 * 3000, 512)).unwrap();
    s.write_all(&req(CMD_FLUSH, 4, 0, 0)).unwrap();
    rig.step(&mut [&mut c]);
    let mut got = [reply(&mut s), reply(&mut s)];
    got.sort_by_key(|r| r.1);
    assert_eq!(got, [(EIO, 3), (0, 4)]);
}
