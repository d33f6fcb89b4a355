//! The bounds of `ioband_tgt`'s RPC server (issue #10), on the process: the socket's mode
//! whatever the umask, clients past the connection limit waiting rather than reset, idle
//! clients dropped after the timeout, and a client that never reads held back instead of
//! buffered for without limit.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running ioband_tgt, killed when dropped.
struct Tgt {
    child: Child,
    sock: PathBuf,
}

impl Drop for Tgt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sock);
    }
}

/// Starts ioband_tgt under umask 000 with `extra` flags and waits until it listens.
fn start(tag: &str, extra: &[&str]) -> Tgt {
    let sock =
        std::env::temp_dir().join(format!("ioband_rpcsrv_{tag}_{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let child = Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_ioband_tgt"))
        .arg("-r")
        .arg(&sock)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ioband_tgt");
    let tgt = Tgt { child, sock };
    drop(connect(&tgt.sock));
    tgt
}

/// Connects, retrying while the process starts (process start-up, not test logic).
fn connect(sock: &Path) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = UnixStream::connect(sock) {
            s.set_read_timeout(Some(Duration::from_secs(20)))
                .expect("timeout");
            return s;
        }
        assert!(Instant::now() < deadline, "ioband_tgt did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const GET_METHODS: &[u8] = br#"{"jsonrpc":"2.0","method":"rpc_get_methods","id":1}"#;

/// Sends one request and reads its reply.
fn ask(s: &mut UnixStream) -> Value {
    s.write_all(GET_METHODS).expect("write");
    read_value(s).expect("a reply")
}

fn read_value(s: &mut UnixStream) -> std::io::Result<Value> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(Ok(v)) = serde_json::Deserializer::from_slice(&buf)
            .into_iter::<Value>()
            .next()
        {
            return Ok(v);
        }
        let got = s.read(&mut chunk)?;
        if got == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..got]);
    }
}

#[test]
fn the_socket_is_0600_whatever_the_umask_unless_asked() {
    let tgt = start("mode", &[]);
    let mode = std::fs::metadata(&tgt.sock)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    drop(tgt);
    let tgt = start("mode660", &["--rpc-socket-mode", "660"]);
    let mode = std::fs::metadata(&tgt.sock)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660, "{mode:o}");
    let mut s = connect(&tgt.sock);
    assert!(ask(&mut s)["result"].is_array());
}

#[test]
fn an_idle_client_is_dropped_after_the_timeout() {
    let tgt = start("idle", &["--rpc-idle-timeout", "1"]);
    let mut busy = connect(&tgt.sock);
    let mut idle = connect(&tgt.sock);
    let t0 = Instant::now();
    // The busy one keeps talking past the timeout and stays.
    while t0.elapsed() < Duration::from_millis(2500) {
        assert!(ask(&mut busy)["result"].is_array());
        std::thread::sleep(Duration::from_millis(300));
    }
    let err = read_value(&mut idle).expect_err("dropped");
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[test]
fn past_the_connection_limit_a_client_waits_and_is_then_served() {
    let tgt = start("limit", &[]);
    let mut held: Vec<UnixStream> = (0..64).map(|_| connect(&tgt.sock)).collect();
    // Every held connection is served (and so accepted) before the 65th arrives.
    for s in held.iter_mut().take(1) {
        assert!(ask(s)["result"].is_array());
    }
    for s in held.iter_mut().skip(1) {
        s.write_all(GET_METHODS).expect("write");
        read_value(s).expect("reply");
    }
    let mut late = connect(&tgt.sock);
    late.write_all(GET_METHODS).expect("write");
    late.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let err = read_value(&mut late).expect_err("waits");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "not reset: {err}"
    );
    held.truncate(63);
    late.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    assert!(read_value(&mut late).expect("served")["result"].is_array());
}

#[test]
fn a_client_that_never_reads_is_held_back() {
    let tgt = start("noread", &[]);
    let mut greedy = connect(&tgt.sock);
    greedy
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    // Each request is answered with about 1 KiB: without a bound the server would read all
    // of this and keep every reply.
    let batch = GET_METHODS.repeat(1000);
    let mut sent = 0usize;
    let blocked = loop {
        match greedy.write(&batch) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break true
            }
            Err(e) => panic!("write: {e}"),
        }
        if sent > 32 << 20 {
            break false;
        }
    };
    assert!(
        blocked,
        "the server read {sent} bytes from a client that never reads"
    );
    // Another client is served meanwhile.
    let mut other = connect(&tgt.sock);
    assert!(ask(&mut other)["result"].is_array());
}
