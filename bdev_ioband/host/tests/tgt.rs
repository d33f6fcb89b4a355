//! `ioband_tgt` as a process: JSON config at start, the socket server in SPDK's wire
//! format, and a clean stop by `spdk_kill_instance` and by SIGTERM.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn socket_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ioband_tgt_test_{tag}_{}.sock", std::process::id()))
}

fn start(sock: &Path, extra: &[&str]) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_ioband_tgt"))
        .args(["-m", "0x3", "-r"])
        .arg(sock)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ioband_tgt");
    child
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
        assert!(
            Instant::now() < deadline,
            "ioband_tgt did not listen on {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads until `n` complete JSON values have arrived.
fn read_values(s: &mut UnixStream, n: usize) -> Vec<Value> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let values: Vec<Value> = serde_json::Deserializer::from_slice(&buf)
            .into_iter::<Value>()
            .map_while(Result::ok)
            .collect();
        if values.len() >= n {
            return values;
        }
        let got = s.read(&mut chunk).expect("read");
        assert!(got > 0, "connection closed early");
        buf.extend_from_slice(&chunk[..got]);
    }
}

fn wait_exit(mut child: Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            return;
        }
        assert!(Instant::now() < deadline, "ioband_tgt did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serves_the_example_config_and_stops_on_kill_instance() {
    let sock = socket_path("kill");
    // The example as it is, but for where it listens: its NBD socket and iSCSI portal move
    // to a private path and a free port, so that the test runs beside a live ioband_tgt.
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/etc/ioband_tgt.json"))
            .expect("example config");
    let nbd_path = socket_path("kill_nbd");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    assert!(example.contains("\"/var/tmp/ioband-band0.nbd\"") && example.contains("\"3260\""));
    let patched = example
        .replace("/var/tmp/ioband-band0.nbd", &nbd_path.to_string_lossy())
        .replace("\"3260\"", &format!("\"{port}\""));
    let config = socket_path("kill_config").with_extension("json");
    std::fs::write(&config, patched).expect("write config");
    let child = start(&sock, &["--json", config.to_str().expect("utf-8 path")]);
    let mut s = connect(&sock);
    // Two requests in one write, no framing.
    let two = format!(
        "{}{}",
        json!({"jsonrpc": "2.0", "method": "bdev_ioband_get_devices", "id": 1}),
        json!({"jsonrpc": "2.0", "method": "bdev_ioband_get_settings", "id": 2})
    );
    s.write_all(two.as_bytes()).expect("write");
    let replies = read_values(&mut s, 2);
    // band0 is exported over both front ends.
    let fronts = format!(
        "{}{}",
        json!({"jsonrpc": "2.0", "method": "ioband_nbd_get_exports", "id": 4}),
        json!({"jsonrpc": "2.0", "method": "iscsi_get_target_nodes", "id": 5})
    );
    s.write_all(fronts.as_bytes()).expect("write");
    let fronts = read_values(&mut s, 2);
    assert_eq!(fronts[0]["result"][0]["bdev_name"], "band0", "{fronts:?}");
    assert_eq!(
        fronts[1]["result"][0]["name"], "iqn.2016-06.io.spdk:band0",
        "{fronts:?}"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(UnixStream::connect(&nbd_path).is_ok());
    assert_eq!(
        replies[0]["result"][0]["devices"],
        json!(["band0", "band1"])
    );
    let weights: Vec<&Value> = replies[1]["result"]
        .as_array()
        .expect("settings")
        .iter()
        .map(|g| &g["weight"])
        .collect();
    assert_eq!(weights, [&json!(300), &json!(100)]);
    let kill = json!({"jsonrpc": "2.0", "method": "spdk_kill_instance", "id": 3,
                      "params": {"sig_name": "SIGTERM"}});
    s.write_all(kill.to_string().as_bytes()).expect("write");
    assert_eq!(read_values(&mut s, 1)[0]["result"], true);
    wait_exit(child);
    assert!(!sock.exists(), "the socket is removed at exit");
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_file(&nbd_path);
}

#[test]
fn a_parse_error_closes_only_that_connection_and_sigterm_stops() {
    let sock = socket_path("sigterm");
    let child = start(&sock, &[]);
    let mut bad = connect(&sock);
    bad.write_all(b"{\"jsonrpc\": oops").expect("write");
    assert_eq!(read_values(&mut bad, 1)[0]["error"]["code"], -32700);
    let mut rest = Vec::new();
    assert_eq!(
        bad.read_to_end(&mut rest).expect("eof"),
        0,
        "closed after the parse error"
    );

    let mut good = connect(&sock);
    let req = json!({"jsonrpc": "2.0", "method": "spdk_get_version", "id": 1});
    good.write_all(req.to_string().as_bytes()).expect("write");
    assert!(read_values(&mut good, 1)[0]["result"]["version"].is_string());

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(status.expect("kill").success());
    wait_exit(child);
}
