//! The `nbd_conn` target: bytes an NBD client writes, fed in reads of a size the input's
//! first byte picks to one connection of a live app's NBD export `disk` (a Unix socket;
//! its bdev is the witness over an ioband bdev over a malloc bdev), beside a well-behaved
//! client that negotiated (fixed newstyle, `NBD_OPT_GO`) before it.
//!
//! Checked: no panic; the witness sees no I/O outside the export, no buffer of the wrong
//! length and no I/O completed twice; the well-behaved client writes a pattern after the
//! hostile bytes (error 0) and, once the hostile client has gone (half-close, then the
//! socket dropped) and the app has run until idle, reads it back; once both have gone,
//! every I/O submitted has completed exactly once and the export has no connection left.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use bdev_ioband_host::nbd::proto;
use bdev_ioband_host::nbd::ExportConfig;

use super::live::{chunk_size, Client, Live, BLOCK, EXPORTED};

/// The export's name.
pub const EXPORT: &str = "disk";
/// Passes of the app allowed for a drain.
const DRAIN_PASSES: usize = 20_000;

/// A socket path of its own per app (the process id and a counter).
fn socket_path() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("ioband-fuzz-nbd-{}-{n}.sock", std::process::id()))
}

fn nbd_app() -> (Live, PathBuf) {
    let live = Live::new();
    let path = socket_path();
    live.on(|app| {
        let config = ExportConfig {
            name: EXPORT.into(),
            bdev_name: EXPORTED.into(),
            unix_path: Some(path.to_string_lossy().into_owned()),
            tcp_address: None,
            default_group: None,
            tcp_groups: Vec::new(),
        };
        let mut registry = app.bdevs.borrow_mut();
        app.nbd
            .borrow_mut()
            .create(&mut registry, config)
            .expect("the export");
    });
    (live, path)
}

fn connect(path: &PathBuf) -> Client<UnixStream> {
    let s = UnixStream::connect(path).expect("connect");
    s.set_nonblocking(true).expect("nonblocking");
    Client::new(s)
}

/// Waits (running the app) for `n` bytes from `c`; `None` if the server closed first.
fn recv(live: &mut Live, c: &mut Client<UnixStream>, n: usize) -> Option<Vec<u8>> {
    for _ in 0..200 {
        c.pump();
        if c.inbuf.len() >= n {
            return Some(c.take(n));
        }
        if c.gone {
            return None;
        }
        live.settle(64);
    }
    None
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The well-behaved client's handshake: fixed newstyle, no zeroes, `NBD_OPT_GO` on the
/// export, simple replies.
fn good_handshake(live: &mut Live, c: &mut Client<UnixStream>) {
    let greeting = recv(live, c, 18).expect("a greeting");
    assert_eq!(greeting[..8], proto::NBDMAGIC.to_be_bytes());
    let mut out = Vec::new();
    out.extend_from_slice(&3u32.to_be_bytes());
    out.extend_from_slice(&proto::IHAVEOPT.to_be_bytes());
    out.extend_from_slice(&proto::OPT_GO.to_be_bytes());
    let name = EXPORT.as_bytes();
    let name_len = u32::try_from(name.len()).expect("a short name");
    out.extend_from_slice(&(4 + name_len + 2).to_be_bytes());
    out.extend_from_slice(&name_len.to_be_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(&0u16.to_be_bytes());
    assert!(c.send(live, &out));
    loop {
        let h = recv(live, c, 20).expect("an option reply");
        assert_eq!(h[..8], proto::OPT_REPLY_MAGIC.to_be_bytes());
        let kind = be32(&h, 12);
        let len = be32(&h, 16) as usize;
        recv(live, c, len).expect("its data");
        match kind {
            proto::REP_INFO => {}
            proto::REP_ACK => return,
            other => panic!("NBD_OPT_GO answered {other:#x}"),
        }
    }
}

/// The well-behaved client's request: WRITE or READ of 4 blocks at byte 51200.
fn good_io(
    live: &mut Live,
    c: &mut Client<UnixStream>,
    cookie: u64,
    write: Option<&[u8]>,
) -> Vec<u8> {
    let len = 4 * BLOCK;
    let mut out = Vec::new();
    out.extend_from_slice(&proto::REQUEST_MAGIC.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    let cmd = if write.is_some() {
        proto::CMD_WRITE
    } else {
        proto::CMD_READ
    };
    out.extend_from_slice(&cmd.to_be_bytes());
    out.extend_from_slice(&cookie.to_be_bytes());
    out.extend_from_slice(&(100 * u64::from(BLOCK)).to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    if let Some(data) = write {
        out.extend_from_slice(data);
    }
    assert!(
        c.send(live, &out),
        "the well-behaved client's request is taken"
    );
    let h = recv(live, c, 16).expect("a reply to the well-behaved client");
    assert_eq!(be32(&h, 0), proto::SIMPLE_REPLY_MAGIC);
    assert_eq!(be32(&h, 4), 0, "no error");
    assert_eq!(h[8..16], cookie.to_be_bytes());
    if write.is_some() {
        Vec::new()
    } else {
        recv(live, c, len as usize).expect("the data read")
    }
}

/// The `nbd_conn` target (see the module doc).
pub fn nbd_conn(data: &[u8]) {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let chunk = chunk_size(pick);
    let (mut live, path) = nbd_app();
    let mut good = connect(&path);
    let mut bad = connect(&path);
    live.settle(64);
    good_handshake(&mut live, &mut good);

    for piece in input.chunks(chunk.min(input.len().max(1))) {
        let taken = bad.send(&mut live, piece);
        live.settle(256);
        bad.pump();
        bad.inbuf.clear();
        if !taken || bad.gone {
            break;
        }
    }
    let pattern: Vec<u8> = (0..4 * BLOCK).map(|i| (i * 13 % 251) as u8).collect();
    assert!(!good.gone, "the well-behaved client was closed");
    good_io(&mut live, &mut good, 0x5a01, Some(&pattern));
    let _ = bad.s.shutdown(std::net::Shutdown::Write);
    for _ in 0..DRAIN_PASSES / 64 {
        live.settle(64);
        bad.pump();
        bad.inbuf.clear();
        if bad.gone {
            break;
        }
    }
    drop(bad);
    live.settle(DRAIN_PASSES);
    let back = good_io(&mut live, &mut good, 0x5a02, None);
    assert_eq!(back, pattern, "the well-behaved read");
    assert!(live.counts.get().0 >= 2, "the witness is in the I/O path");
    drop(good);
    live.settle(DRAIN_PASSES);
    live.check_all_completed("nbd_conn");
    let left = live.on(|app| {
        app.nbd
            .borrow()
            .iter()
            .map(|e| e.describe()["connections"].clone())
            .collect::<Vec<_>>()
    });
    assert_eq!(left, vec![serde_json::json!([])], "connections left");
    drop(live);
    let _ = std::fs::remove_file(path);
}
