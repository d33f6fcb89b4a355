//! The `iscsi_conn` target: bytes an initiator writes, fed in reads of a size the input's
//! first byte picks to one connection of a live app's iSCSI target (portal group 1 on
//! loopback, initiator group ANY, target node `disk1` whose LUN 0 is the witness over an
//! ioband bdev over a malloc bdev), beside a well-behaved connection logged in before it.
//!
//! Checked: no panic; the witness sees no I/O outside the LUN, no buffer of the wrong
//! length and no I/O completed twice; the well-behaved connection, logged in before the
//! hostile bytes, writes a pattern after them (status GOOD) and, once the hostile initiator
//! has gone (half-close, then a reset) and the app has run until idle, reads it back; once
//! both have gone, every I/O submitted has completed exactly once and no connection is
//! left.

use std::net::{TcpListener, TcpStream};

use bdev_ioband_host::iscsi::pdu::{self, op, Digests};
use bdev_ioband_host::iscsi::text;
use bdev_ioband_host::iscsi::{
    InitiatorGroupConfig, LunConfig, PgIgMap, Portal, PortalGroupConfig, TargetNodeConfig,
};

use super::live::{chunk_size, Client, Live, BLOCK, EXPORTED};

/// The target node's full name.
pub const TARGET: &str = "iqn.2016-06.io.spdk:disk1";
/// The well-behaved initiator's name (the hostile one that takes it may reinstate its
/// session, which is the protocol: then the well-behaved checks are skipped).
const GOOD_INITIATOR: &str = "iqn.2026-01.org.witness:good-initiator";
/// Passes of the app allowed for a drain.
const DRAIN_PASSES: usize = 20_000;

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    l.local_addr().expect("its address").port()
}

fn connect(port: u16) -> Client<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.set_nonblocking(true).expect("nonblocking");
    Client::new(s)
}

/// Drops the socket with a reset (SO_LINGER 0): no TIME_WAIT left behind per input.
fn abort(c: Client<TcpStream>) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a `linger` of the size given.
    unsafe {
        libc::setsockopt(
            c.s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::linger>()).unwrap_or(8),
        );
    }
}

/// The app with the target of the module doc; returns it and the portal's port.
fn iscsi_app() -> (Live, u16) {
    let live = Live::new();
    let port = live.on(|app| {
        let mut port = 0;
        for _ in 0..16 {
            port = free_port();
            let pg = PortalGroupConfig {
                tag: 1,
                portals: vec![Portal {
                    host: "127.0.0.1".into(),
                    port: port.to_string(),
                }],
                private: false,
                wait: false,
            };
            if app.iscsi.borrow_mut().create_portal_group(pg).is_ok() {
                break;
            }
        }
        let ig = InitiatorGroupConfig {
            tag: 1,
            initiators: vec!["ANY".into()],
            netmasks: vec!["ANY".into()],
        };
        app.iscsi
            .borrow_mut()
            .create_initiator_group(ig)
            .expect("ig 1");
        let node = TargetNodeConfig {
            name: "disk1".into(),
            alias_name: "d1".into(),
            pg_ig_maps: vec![PgIgMap {
                pg_tag: 1,
                ig_tag: 1,
            }],
            luns: vec![LunConfig {
                bdev_name: EXPORTED.into(),
                lun_id: 0,
            }],
            queue_depth: 16,
            disable_chap: true,
            require_chap: false,
            mutual_chap: false,
            chap_group: 0,
            header_digest: false,
            data_digest: false,
        };
        let mut registry = app.bdevs.borrow_mut();
        app.iscsi
            .borrow_mut()
            .create_target_node(&mut registry, node)
            .expect("disk1");
        port
    });
    (live, port)
}

/// One whole PDU (no digests) from `c`, letting the app run for it; `None` when the server
/// closed the connection first or nothing came.
fn recv(live: &mut Live, c: &mut Client<TcpStream>) -> Option<([u8; 48], Vec<u8>)> {
    for _ in 0..200 {
        c.pump();
        if c.inbuf.len() >= 48 {
            let ahs = usize::from(c.inbuf[4]) * 4;
            let len = u32::from_be_bytes([0, c.inbuf[5], c.inbuf[6], c.inbuf[7]]) as usize;
            let total = 48 + ahs + len.div_ceil(4) * 4;
            if c.inbuf.len() >= total {
                let bytes = c.take(total);
                let mut h = [0u8; 48];
                h.copy_from_slice(&bytes[..48]);
                return Some((h, bytes[48 + ahs..48 + ahs + len].to_vec()));
            }
        }
        if c.gone {
            return None;
        }
        live.settle(64);
    }
    None
}

fn pdu_bytes(h: [u8; 48], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    pdu::emit(&mut out, h, data, Digests::default());
    out
}

fn kv(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut v = Vec::new();
    for (k, val) in pairs {
        text::push_pair(&mut v, k, val);
    }
    v
}

fn login_pdu(flags: u8, isid: [u8; 6]) -> [u8; 48] {
    let mut h = pdu::header(0x40 | op::LOGIN_REQ, flags, 1);
    h[8..14].copy_from_slice(&isid);
    pdu::put32(&mut h, 24, 1);
    h
}

fn scsi_cmd(itt: u32, cmd_sn: u32, cdb: &[u8], edtl: u32, read: bool, write: bool) -> [u8; 48] {
    let flags = 0x80 | if read { 0x40 } else { 0 } | if write { 0x20 } else { 0 } | 1;
    let mut h = pdu::header(op::SCSI_CMD, flags, itt);
    pdu::put32(&mut h, 20, edtl);
    pdu::put32(&mut h, 24, cmd_sn);
    h[32..32 + cdb.len()].copy_from_slice(cdb);
    h
}

fn rw10(opcode: u8, lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = vec![opcode, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&blocks.to_be_bytes());
    c.push(0);
    c
}

/// The well-behaved initiator: logs in (security, then operational stage, no digests).
fn good_login(live: &mut Live, c: &mut Client<TcpStream>) {
    let isid = [0x80, 0x5a, 0x5a, 0, 0, 7];
    let sec = kv(&[
        ("InitiatorName", GOOD_INITIATOR),
        ("SessionType", "Normal"),
        ("TargetName", TARGET),
        ("AuthMethod", "None"),
    ]);
    assert!(c.send(live, &pdu_bytes(login_pdu(0x81, isid), &sec)));
    let (h, _) = recv(live, c).expect("a security stage answer");
    assert_eq!((h[0] & 0x3f, h[36], h[37]), (op::LOGIN_RESP, 0, 0));
    let ops = kv(&[
        ("HeaderDigest", "None"),
        ("DataDigest", "None"),
        ("ImmediateData", "Yes"),
        ("InitialR2T", "Yes"),
        ("MaxRecvDataSegmentLength", "65536"),
    ]);
    assert!(c.send(live, &pdu_bytes(login_pdu(0x87, isid), &ops)));
    let (h, _) = recv(live, c).expect("an operational stage answer");
    assert_eq!((h[36], h[37], h[1]), (0, 0, 0x87), "logged in");
}

/// The well-behaved initiator's command `cmd_sn`: WRITE (immediate data) or READ of 4
/// blocks at LBA 100; returns the data read.
fn good_io(
    live: &mut Live,
    c: &mut Client<TcpStream>,
    cmd_sn: u32,
    write: Option<&[u8]>,
) -> Option<Vec<u8>> {
    let len = 4 * BLOCK;
    let itt = 0x5a00 + cmd_sn;
    let sent = match write {
        Some(data) => c.send(
            live,
            &pdu_bytes(
                scsi_cmd(itt, cmd_sn, &rw10(0x2a, 100, 4), len, false, true),
                data,
            ),
        ),
        None => c.send(
            live,
            &pdu_bytes(
                scsi_cmd(itt, cmd_sn, &rw10(0x28, 100, 4), len, true, false),
                &[],
            ),
        ),
    };
    assert!(sent, "the well-behaved connection takes a command");
    let mut data = Vec::new();
    loop {
        let (h, d) = recv(live, c).expect("an answer to the well-behaved connection");
        assert_eq!(pdu::Bhs { raw: h }.itt(), itt, "{:#04x}", h[0]);
        match h[0] & 0x3f {
            op::DATA_IN => {
                data.extend_from_slice(&d);
                if h[1] & 0x01 != 0 {
                    assert_eq!(h[3], 0, "status GOOD");
                    return Some(data);
                }
            }
            op::SCSI_RESP => {
                assert_eq!((h[2], h[3]), (0, 0), "status GOOD");
                return Some(data);
            }
            other => panic!("opcode {other:#04x} answers the well-behaved connection"),
        }
    }
}

/// The `iscsi_conn` target (see the module doc).
pub fn iscsi_conn(data: &[u8]) {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let chunk = chunk_size(pick);
    let (mut live, port) = iscsi_app();
    let mut good = connect(port);
    let mut bad = connect(port);
    live.settle(64);
    good_login(&mut live, &mut good);

    for piece in input.chunks(chunk.min(input.len().max(1))) {
        let taken = bad.send(&mut live, piece);
        live.settle(256);
        bad.pump();
        bad.inbuf.clear();
        if !taken || bad.gone {
            break;
        }
    }
    // The initiator that takes the well-behaved one's name (and ISID) replaces its session.
    let reinstated = input
        .windows(GOOD_INITIATOR.len())
        .any(|w| w.eq_ignore_ascii_case(GOOD_INITIATOR.as_bytes()));
    let pattern: Vec<u8> = (0..4 * BLOCK).map(|i| (i * 13 % 251) as u8).collect();
    let mut good_ok = !reinstated && !good.gone;
    if good_ok {
        good_ok = good_io(&mut live, &mut good, 1, Some(&pattern)).is_some();
    }
    // The hostile initiator goes: half-close, the rest of its answers, then a reset.
    let _ = bad.s.shutdown(std::net::Shutdown::Write);
    for _ in 0..DRAIN_PASSES / 64 {
        live.settle(64);
        bad.pump();
        bad.inbuf.clear();
        if bad.gone {
            break;
        }
    }
    abort(bad);
    live.settle(DRAIN_PASSES);
    if good_ok {
        let back = good_io(&mut live, &mut good, 2, None);
        assert_eq!(back.as_deref(), Some(&pattern[..]), "the well-behaved read");
        assert!(live.counts.get().0 >= 2, "the witness is in the I/O path");
    }
    abort(good);
    live.settle(DRAIN_PASSES);
    live.check_all_completed("iscsi_conn");
    let left = live.on(|app| app.iscsi.borrow().connections());
    assert!(left.is_empty(), "connections left: {left:?}");
}
