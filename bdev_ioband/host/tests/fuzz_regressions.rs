//! The fuzz targets in `cargo test` (issue #10): their seed corpora and every input that
//! once made one fail (`fuzz/regressions/<target>/*`) replayed through the targets' own
//! bodies (`fuzz/src/lib.rs`, included here), which assert the invariants; and the bugs
//! they found, each as a plain test of the code that had it.

#[path = "../../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

mod common;

use std::path::{Path, PathBuf};

use bdev_ioband_engine::config::decode::MAX_MESSAGE_BYTES;
use bdev_ioband_host::app::App;
use bdev_ioband_host::rpc::{process, Flow, Methods};
use common::Rig;
use serde_json::{json, Value};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `fuzz/<kind>/<target>`, sorted (none when the folder does not exist).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `body` on every seed and regression input of `target`; returns how many ran.
fn replay(target: &str, body: fn(&[u8])) -> (usize, usize) {
    let seeds = inputs("seeds", target);
    let regressions = inputs("regressions", target);
    for file in seeds.iter().chain(&regressions) {
        let data = std::fs::read(file).expect("an input");
        eprintln!("replaying {}", file.display());
        body(&data);
    }
    (seeds.len(), regressions.len())
}

#[test]
fn rpc_wire_seeds_and_regressions_hold() {
    let (seeds, regressions) = replay("rpc_wire", harness::rpc_wire);
    assert!(seeds >= 100, "the seed corpus is there ({seeds})");
    assert!(
        regressions >= 1,
        "the regressions are there ({regressions})"
    );
}

#[test]
fn engine_rpc_seeds_and_regressions_hold() {
    let (seeds, _) = replay("engine_rpc", harness::engine_rpc);
    assert!(seeds >= 100, "the seed corpus is there ({seeds})");
}

#[test]
fn text_grammar_seeds_and_regressions_hold() {
    let (seeds, regressions) = replay("text_grammar", harness::text_grammar);
    assert!(seeds >= 30, "the seed corpus is there ({seeds})");
    assert!(
        regressions >= 1,
        "the regressions are there ({regressions})"
    );
}

#[test]
fn iscsi_conn_seeds_and_regressions_hold() {
    let (seeds, _) = replay("iscsi_conn", harness::iscsi_conn);
    assert!(seeds >= 60, "the seed corpus is there ({seeds})");
}

#[test]
fn nbd_conn_seeds_and_regressions_hold() {
    let (seeds, _) = replay("nbd_conn", harness::nbd_conn);
    assert!(seeds >= 25, "the seed corpus is there ({seeds})");
}

#[test]
fn scsi_cdb_seeds_and_regressions_hold() {
    let (seeds, _) = replay("scsi_cdb", harness::scsi_cdb);
    assert!(seeds >= 200, "the seed corpus is there ({seeds})");
}

/// Feeds `reads` one after the other to the server's processor, as a connection would,
/// up to a parse error (which closes); returns the replies.
fn feed(reads: &[&str]) -> Vec<Value> {
    let rig = Rig::new(1);
    let app = rig.on(0, App::new).expect("app");
    let methods = Methods::new();
    let mut inbuf = Vec::new();
    let mut out = Vec::new();
    for read in reads {
        inbuf.extend_from_slice(read.as_bytes());
        if rig.on(0, || process(&methods, &app, &mut inbuf, &mut out)) == Flow::Close {
            break;
        }
    }
    serde_json::Deserializer::from_slice(&out)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("replies are JSON")
}

/// Found by `rpc_wire` (fuzz/regressions/rpc_wire): a top-level number cut by a read was
/// answered as two values, so the replies depended on how the kernel split the bytes.
#[test]
fn a_number_cut_by_a_read_is_one_value() {
    let whole = feed(&["1234 "]);
    assert_eq!(whole.len(), 1, "{whole:?}");
    assert_eq!(whole[0]["error"]["code"], -32600);
    assert_eq!(feed(&["12", "34 "]), whole);
    // A number or a literal at the end of what was read waits for what follows it.
    assert!(feed(&["12"]).is_empty());
    assert!(feed(&["true"]).is_empty());
    let garbage = feed(&["trueonjss"]);
    assert_eq!(garbage.len(), 1, "{garbage:?}");
    assert_eq!(garbage[0]["error"]["code"], -32700);
    for cut in 0..=9 {
        assert_eq!(feed(&[&"trueonjss"[..cut], &"trueonjss"[cut..]]), garbage);
    }
    let literal = feed(&["null "]);
    assert_eq!(literal[0]["error"]["code"], -32600, "{literal:?}");
    assert_eq!(feed(&["nu", "ll", " "]), literal);
    let get = r#"{"jsonrpc":"2.0","id":1,"method":"bdev_ioband_get_devices"}"#;
    let replies = feed(&["-5", get]);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[0]["error"]["code"], -32600);
    assert!(replies[1]["result"].is_array(), "{replies:?}");
}

/// Found by `rpc_wire` (fuzz/regressions/rpc_wire): a read that ended inside a number,
/// after its `-`, `.`, `e` or exponent sign, was a parse error that closed the connection,
/// though the next read completed a valid request.
#[test]
fn a_request_cut_inside_a_number_is_served() {
    let call =
        r#"{"jsonrpc":"2.0","id":1,"method":"bdev_get_bdevs","params":{"timeout":-12.5e+3}}"#;
    let whole = feed(&[call]);
    assert_eq!(whole.len(), 1, "{whole:?}");
    assert_eq!(whole[0]["error"]["code"], -32602, "{whole:?}");
    for cut in 0..=call.len() {
        assert_eq!(feed(&[&call[..cut], &call[cut..]]), whole, "cut at {cut}");
    }
    let get = r#"{"jsonrpc":"2.0","id":1,"method":"bdev_ioband_get_devices"}"#;
    let replies = feed(&["-", "1 ", get]);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[0]["error"]["code"], -32600, "-1 is not a request");
    assert!(replies[1]["result"].is_array(), "{replies:?}");
}

/// A syntax error at the end of what was read is still one, at once.
#[test]
fn a_syntax_error_at_the_end_of_a_read_closes() {
    for input in [
        r#"{"id":x"#,
        r#"{"id":1-"#,
        r#"{"id":--"#,
        r#"{"id":1.e"#,
        "[1,]",
    ] {
        let rig = Rig::new(1);
        let app = rig.on(0, App::new).expect("app");
        let mut inbuf = input.as_bytes().to_vec();
        let mut out = Vec::new();
        let flow = rig.on(0, || process(&Methods::new(), &app, &mut inbuf, &mut out));
        assert_eq!(flow, Flow::Close, "{input}");
        let reply: Value = serde_json::from_slice(&out).expect("one reply");
        assert_eq!(reply["error"]["code"], -32700, "{input}");
    }
}

/// Found by `text_grammar` (fuzz/regressions/text_grammar), here as it reached the wire: an
/// unknown field's name is echoed in the message, and a space that ended at the bound was
/// not counted, so the message came out 1028 bytes long (the bound is 1024 and `…`).
#[test]
fn an_echoed_key_with_spaces_stays_within_the_bound() {
    let bound = MAX_MESSAGE_BYTES + '…'.len_utf8();
    for lead in 0..10 {
        let key = format!("{} {}", "a".repeat(lead), "aaaa ".repeat(300));
        let params = json!({"name": "x", "base_bdev_name": "y", key: 1});
        let req =
            json!({"jsonrpc": "2.0", "id": 1, "method": "bdev_ioband_create", "params": params});
        let replies = feed(&[&req.to_string()]);
        assert_eq!(replies[0]["error"]["code"], -32602, "{:?}", replies[0]);
        let message = replies[0]["error"]["message"].as_str().unwrap_or_default();
        assert!(message.len() <= bound, "{lead}: {} bytes", message.len());
        assert!(message.starts_with("Invalid params: "), "{message}");
    }
}
