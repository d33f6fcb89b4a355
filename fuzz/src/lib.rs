//! The fuzz targets' bodies (issue #10), one function per target, each taking the raw input
//! and panicking when an invariant breaks. `fuzz_targets/*.rs` hand libFuzzer's input to
//! them; the host's `tests/fuzz_regressions.rs` includes this file and replays the seeds and
//! every kept crashing input (`fuzz/regressions/<target>/*`) through the same functions in
//! the normal `cargo test`.
//!
//! - [`rpc_wire`]: bytes as a client writes them to the socket, through the embedded host's
//!   own stream processor and method table ([`bdev_ioband_host::rpc::process`]) on a fresh
//!   target with two shares, without a socket. Every request's params take the strict
//!   decoding that both hosts share. Checked: no panic; every reply is a JSON-RPC 2.0
//!   response with a result or an error, whose message is within the engine's bound; a
//!   refused request changes no state (the `save_config` dump and the ioband listings
//!   before and after); a parse error closes the connection after one -32700; the replies
//!   do not depend on how the bytes were cut into reads.
//! - [`engine_rpc`]: a sequence of calls of the seven `bdev_ioband_*` methods, params text
//!   decoded exactly as the SPDK host decodes it (`check_text`, then `decode_value`), run by
//!   the engine's handlers on one engine, as the SPDK host runs them. Checked: no panic, a
//!   refused call changes nothing, an accepted one leaves a state whose dump replays.
//! - [`text_grammar`]: the `devices` and `settings` write languages, group and value text,
//!   the two listings, and the error-message bound. Checked: no panic; what parses prints
//!   back to text that parses to the same value; a write applied and refused changes
//!   nothing; bounded messages stay within the bound.
//!
//! The methods that open host files or allocate a device's memory (`bdev_malloc_create`,
//! `bdev_uring_create`, `bdev_aio_create`) are left out of [`rpc_wire`]'s method table: a
//! fuzzer would otherwise open arbitrary paths or map up to 16 GiB.
//!
//! - [`iscsi_conn`], [`nbd_conn`] (issue #11): bytes an initiator or an NBD client writes,
//!   to one connection of a live app's front end beside a well-behaved connection; see
//!   `iscsi_conn.rs`, `nbd_conn.rs` and `live.rs`.
//! - [`scsi_cdb`]: CDBs, data-out and geometry through the SCSI layer's task against a disk
//!   in memory; see `scsi_cdb.rs`.
//!
//! Single-threaded: each call builds its own reactors (stepped by hand) and engine.

mod iscsi_conn;
mod live;
mod nbd_conn;
mod scsi_cdb;

pub use iscsi_conn::iscsi_conn;
pub use nbd_conn::nbd_conn;
pub use scsi_cdb::scsi_cdb;

use std::fmt::Debug;

use bdev_ioband_engine::config::decode::{
    bound_message, check_text, decode_value, ParamsError, MAX_MESSAGE_BYTES,
};
use bdev_ioband_engine::config::rpc::{
    handle_get_devices, handle_get_iostat, handle_get_settings, handle_set_device,
    handle_set_settings, CreateParams, DeleteParams, GetDevicesParams, GetIostatParams,
    GetSettingsParams,
};
use bdev_ioband_engine::config::{
    apply_devices_text, apply_devices_write, apply_settings_text, dump_writes,
    parse_devices_listing, parse_group_value, parse_settings_listing, DevicesWrite, SettingsWrite,
};
use bdev_ioband_engine::{Engine, EngineError, GroupKey, Policy, ShareParams};
use bdev_ioband_host::app::App;
use bdev_ioband_host::reactor::{Reactor, ReactorSet};
use bdev_ioband_host::rpc::{process, Flow, Methods};
use bdev_ioband_host::ticks::Clock;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Methods [`rpc_wire`] does not call (they reach host files or allocate device memory).
pub const EXCLUDED_METHODS: &[&str] =
    &["bdev_malloc_create", "bdev_uring_create", "bdev_aio_create"];

/// The longest error message either host sends, in bytes (the bound and its `…`).
const MAX_WIRE_MESSAGE: usize = MAX_MESSAGE_BYTES + '…'.len_utf8();

// ---------------------------------------------------------------------------------------
// rpc_wire

/// A fresh embedded target without a socket: two reactors stepped by hand, the control
/// plane on the first, the server's method table less [`EXCLUDED_METHODS`].
struct Target {
    reactors: Vec<Reactor>,
    app: App,
    methods: Methods,
}

/// The requests that load a [`Target`]: share0 (weight, io0:io1 = 3:1, an initiator and a
/// cgroup group) and share1 (range-bw, io2 with a tag group), over a null and a model bdev.
const SETUP: &[(&str, &str)] = &[
    (
        "bdev_null_create",
        r#"{"name":"Null0","num_blocks":64,"block_size":512}"#,
    ),
    (
        "bdev_model_create",
        r#"{"name":"Model0","block_size":512,"num_blocks":1024,"iops":1000,"latency_us":10,"queue_depth":8}"#,
    ),
    (
        "bdev_ioband_create",
        r#"{"name":"io0","base_bdev_name":"Null0","share":"share0"}"#,
    ),
    (
        "bdev_ioband_create",
        r#"{"name":"io1","base_bdev_name":"Null0","share":"share0"}"#,
    ),
    ("bdev_ioband_set_settings", r#"{"name":"io0","value":3}"#),
    (
        "bdev_ioband_set_settings",
        r#"{"name":"io0","group":"initiator:nqn.2014-08.org.example:host1","value":200}"#,
    ),
    (
        "bdev_ioband_set_settings",
        r#"{"name":"io1","group":"cgroup:4242","value":50}"#,
    ),
    (
        "bdev_ioband_create",
        r#"{"name":"io2","base_bdev_name":"Model0","share":"share1","policy":"range-bw","capacity_kib_per_sec":1000000}"#,
    ),
    (
        "bdev_ioband_set_settings",
        r#"{"name":"io2","value":"1000:5000"}"#,
    ),
    (
        "bdev_ioband_set_settings",
        r#"{"name":"io2","group":"tag:7","value":"100:200"}"#,
    ),
];

/// What a refused request must leave as it was.
const SNAPSHOT: &[(&str, &str)] = &[
    ("framework_get_config", r#"{"name":"bdev"}"#),
    ("bdev_get_bdevs", "{}"),
    ("bdev_ioband_get_devices", "{}"),
    ("bdev_ioband_get_settings", "{}"),
    ("bdev_ioband_get_iostat", "{}"),
];

impl Target {
    fn new() -> Target {
        let (clock, _manual) = Clock::manual();
        let reactors = ReactorSet::new(&[0, 1], clock, false).build_all();
        let app = reactors[0]
            .enter(App::new)
            .expect("the control plane starts");
        let mut t = Target {
            reactors,
            app,
            methods: Methods::new().without(EXCLUDED_METHODS),
        };
        for (method, params) in SETUP {
            t.call(method, params);
        }
        t
    }

    /// Runs `input` through the server's processor as one read; returns the replies.
    fn feed(&mut self, inbuf: &mut Vec<u8>) -> (Vec<u8>, Flow) {
        let mut out = Vec::new();
        let (methods, app) = (&self.methods, &self.app);
        let flow = self.reactors[0].enter(|| process(methods, app, inbuf, &mut out));
        self.settle();
        (out, flow)
    }

    /// Lets deferred work (messages between reactors, tasks) run out.
    fn settle(&mut self) {
        for _ in 0..8 {
            let work: usize = self.reactors.iter_mut().map(Reactor::poll_once).sum();
            if work == 0 {
                break;
            }
        }
    }

    /// One request that must succeed; its result.
    fn call(&mut self, method: &str, params: &str) -> Value {
        let req = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#);
        let (out, flow) = self.feed(&mut req.into_bytes());
        assert_eq!(flow, Flow::Continue);
        let mut replies = replies(&out);
        assert_eq!(replies.len(), 1, "{method} {params}");
        let reply = replies.remove(0);
        assert!(reply.get("error").is_none(), "{method} {params}: {reply}");
        reply["result"].clone()
    }

    fn snapshot(&mut self) -> Vec<Value> {
        SNAPSHOT.iter().map(|(m, p)| self.call(m, p)).collect()
    }
}

/// The replies in `out`, each checked: JSON, newline-terminated, a well-formed response.
fn replies(out: &[u8]) -> Vec<Value> {
    assert!(
        out.is_empty() || out.ends_with(b"\n"),
        "replies end in a newline"
    );
    let values: Vec<Value> = serde_json::Deserializer::from_slice(out)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("the replies are JSON");
    for v in &values {
        match v {
            Value::Array(items) => {
                assert!(!items.is_empty(), "an empty batch reply: {v}");
                items.iter().for_each(check_response);
            }
            other => check_response(other),
        }
    }
    values
}

fn check_response(r: &Value) {
    let Value::Object(map) = r else {
        panic!("a reply that is not an object: {r}");
    };
    assert_eq!(map.get("jsonrpc"), Some(&json!("2.0")), "{r}");
    assert!(map.contains_key("id"), "a reply without id: {r}");
    match (map.get("result"), map.get("error")) {
        (Some(_), None) => {}
        (None, Some(e)) => {
            assert!(e["code"].is_i64(), "an error without a code: {r}");
            let message = e["message"].as_str().expect("an error message");
            assert!(!message.is_empty(), "an empty error message: {r}");
            assert!(
                message.len() <= MAX_WIRE_MESSAGE,
                "an error message of {} bytes",
                message.len()
            );
        }
        _ => panic!("a reply with neither or both of result and error: {r}"),
    }
}

/// Whether `reply` refuses: one error, or a batch of errors only.
fn is_refusal(reply: &Value) -> bool {
    match reply {
        Value::Array(items) => items.iter().all(is_refusal),
        other => other.get("error").is_some(),
    }
}

/// The wire target. `data[0]` picks how the rest is fed: odd, request by request with the
/// state compared around every refused one; even, in reads of `data[1] % 61 + 1` bytes,
/// whose replies must equal those of the same bytes in one read.
pub fn rpc_wire(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        wire_by_request(rest);
    } else {
        let Some((&chunk, rest)) = rest.split_first() else {
            return;
        };
        wire_by_reads(rest, usize::from(chunk % 61) + 1);
    }
}

/// Request by request, each read ending where the server's parser ends a value: what only
/// refuses changes nothing. (A number that ends a read waits for the next one, so a read
/// may answer two values, or none.)
fn wire_by_request(input: &[u8]) {
    let mut t = Target::new();
    let mut stream = serde_json::Deserializer::from_slice(input).into_iter::<&RawValue>();
    let mut inbuf = Vec::new();
    let mut start = 0;
    loop {
        match stream.next() {
            Some(Ok(_)) => {
                let end = stream.byte_offset();
                let before = t.snapshot();
                inbuf.extend_from_slice(&input[start..end]);
                let (out, flow) = t.feed(&mut inbuf);
                assert_eq!(flow, Flow::Continue, "whole values never close");
                let got = replies(&out);
                assert!(
                    got.len() <= 2,
                    "one value (and a number before it) per read"
                );
                if got.iter().all(is_refusal) {
                    assert_eq!(t.snapshot(), before, "a refused request changed state");
                }
                start = end;
            }
            None => return,
            Some(Err(e)) => {
                inbuf.extend_from_slice(&input[start..]);
                let (out, flow) = t.feed(&mut inbuf);
                let got = replies(&out);
                assert!(got.len() <= 2, "{e}");
                // The server also waits on a number cut where a digit must follow, which
                // serde_json calls a syntax error.
                let cut_number = matches!(input.last(), Some(b'-' | b'+' | b'.' | b'e' | b'E'));
                if e.is_eof() || (cut_number && flow == Flow::Continue) {
                    assert_eq!(flow, Flow::Continue, "{e}");
                    assert!(
                        got.iter().all(|r| r["error"]["code"] == -32600),
                        "no reply to a request not yet whole, but to a number before it"
                    );
                } else {
                    assert_eq!(flow, Flow::Close, "{e}");
                    let last = got.last().expect("a reply to a parse error");
                    assert_eq!(last["error"]["code"], -32700, "{last}");
                }
                return;
            }
        }
    }
}

/// The same bytes in one read and in reads of `chunk` bytes give the same replies.
fn wire_by_reads(input: &[u8], chunk: usize) {
    let whole = {
        let mut t = Target::new();
        let mut inbuf = input.to_vec();
        let (out, flow) = t.feed(&mut inbuf);
        replies(&out);
        (out, flow)
    };
    let mut t = Target::new();
    let mut inbuf = Vec::new();
    let mut out = Vec::new();
    let mut flow = Flow::Continue;
    for piece in input.chunks(chunk) {
        inbuf.extend_from_slice(piece);
        let (more, f) = t.feed(&mut inbuf);
        out.extend_from_slice(&more);
        flow = f;
        if f == Flow::Close {
            break;
        }
    }
    assert_eq!(flow, whole.1, "the flow depends on the reads");
    // A parse error's position counts from the start of what was buffered, which the reads
    // decide; the rest of the replies must be the same.
    let unplaced = |out: &[u8]| -> Vec<Value> {
        let mut values = replies(out);
        for v in &mut values {
            if v["error"]["code"] == -32700 {
                v["error"]["message"] = json!("Parse error");
            }
        }
        values
    };
    assert_eq!(
        unplaced(&out),
        unplaced(&whole.0),
        "the replies depend on the reads"
    );
}

// ---------------------------------------------------------------------------------------
// engine_rpc

/// The engine's configured state, its listings and counters: what a refused call keeps.
fn engine_state(e: &mut Engine<u32>) -> String {
    let writes = dump_writes(e).expect("the dump of a consistent engine");
    let devices = handle_get_devices(e, GetDevicesParams::default()).expect("get_devices");
    let settings = handle_get_settings(e, GetSettingsParams::default()).expect("get_settings");
    let iostat = handle_get_iostat(e, GetIostatParams::default()).expect("get_iostat");
    format!("{writes:?}\n{devices:?}\n{settings:?}\n{iostat:?}")
}

/// An engine with the shares of [`SETUP`] (no bdevs: the engine alone).
fn loaded_engine() -> Engine<u32> {
    let mut e = Engine::new(1_000_000_000);
    e.create_device("io0", "share0", None).expect("io0");
    e.create_device("io1", "share0", None).expect("io1");
    let range = ShareParams {
        policy: Policy::RangeBw,
        capacity_kib_per_sec: 1_000_000,
        ..ShareParams::default()
    };
    e.create_device("io2", "share1", Some(range)).expect("io2");
    apply_settings_text(&mut e, &GroupKey::None, "io0 3").expect("io0 3");
    let nqn = GroupKey::parse("initiator:nqn.2014-08.org.example:host1").expect("nqn");
    apply_settings_text(&mut e, &nqn, "io0 200").expect("io0 200");
    apply_settings_text(&mut e, &GroupKey::Cgroup(4242), "io1 50").expect("io1 50");
    apply_settings_text(&mut e, &GroupKey::None, "io2 1000:5000").expect("io2");
    apply_settings_text(&mut e, &GroupKey::Tag(7), "io2 100:200").expect("tag 7");
    e
}

/// Params as the SPDK host decodes them (`bdev_ioband/spdk/src/rpc.rs`): absent, or text
/// checked strictly, parsed, then decoded into the method's type.
fn spdk_decode<T: DeserializeOwned>(params: Option<&str>) -> Result<T, ParamsError> {
    let value = match params {
        None => None,
        Some(text) => {
            check_text(text)?;
            Some(
                serde_json::from_str(text).map_err(|e| ParamsError::Invalid {
                    path: String::new(),
                    message: e.to_string(),
                })?,
            )
        }
    };
    decode_value(value)
}

/// Why a call was refused.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug only
enum Refusal {
    Params(ParamsError),
    Engine(EngineError),
}

fn run<P: DeserializeOwned, R: Debug>(
    e: &mut Engine<u32>,
    params: Option<&str>,
    handler: fn(&mut Engine<u32>, P) -> Result<R, EngineError>,
) -> Result<(), Refusal> {
    let p = spdk_decode(params).map_err(Refusal::Params)?;
    handler(e, p).map(|_| ()).map_err(Refusal::Engine)
}

/// `bdev_ioband_create` as the SPDK host runs it, less the bdev: names checked, a name
/// that a bdev has (`Null0`, `Model0`) refused, then the engine's device (the base may
/// appear later).
fn create(e: &mut Engine<u32>, p: CreateParams) -> Result<bool, EngineError> {
    p.validate()?;
    if ["Null0", "Model0"].contains(&p.name.as_str()) {
        return Err(EngineError::DeviceExists(p.name));
    }
    e.create_device(&p.name, p.share_name(), p.share_params())?;
    Ok(true)
}

fn delete(e: &mut Engine<u32>, p: DeleteParams) -> Result<bool, EngineError> {
    e.delete_device(&p.name).map(|_| true)
}

/// The engine target: lines, each a call: its first byte picks the method (of seven), the
/// rest of the line is the params text (none when empty).
pub fn engine_rpc(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut e = loaded_engine();
    for line in text.split('\n').take(64) {
        let mut chars = line.chars();
        let Some(pick) = chars.next() else {
            continue;
        };
        let rest = chars.as_str();
        let params = (!rest.is_empty()).then_some(rest);
        let before = engine_state(&mut e);
        let r = match u32::from(pick) % 7 {
            0 => run(&mut e, params, create),
            1 => run(&mut e, params, delete),
            2 => run(&mut e, params, handle_get_devices),
            3 => run(&mut e, params, handle_set_device),
            4 => run(&mut e, params, handle_get_settings),
            5 => run(&mut e, params, handle_set_settings),
            _ => run(&mut e, params, handle_get_iostat),
        };
        match r {
            Err(why) => {
                let message = match &why {
                    Refusal::Params(p) => p.to_string(),
                    Refusal::Engine(e) => e.to_string(),
                };
                assert!(bound_message(&message).len() <= MAX_WIRE_MESSAGE);
                assert_eq!(
                    engine_state(&mut e),
                    before,
                    "refused ({why:?}) yet changed"
                );
            }
            Ok(()) => check_dump_replays(&e),
        }
    }
}

/// The engine's dump, replayed into an engine with the same devices, gives the same dump.
fn check_dump_replays(e: &Engine<u32>) {
    let dump = dump_writes(e).expect("dump");
    let mut fresh: Engine<u32> = Engine::new(1_000_000_000);
    for share in e.shares() {
        for (_, device) in share.device_names() {
            fresh
                .create_device(device, share.name(), None)
                .expect("the same devices");
        }
    }
    for w in &dump {
        apply_devices_write(&mut fresh, w).unwrap_or_else(|err| panic!("replay of '{w}': {err}"));
    }
    assert_eq!(dump_writes(&fresh).expect("dump"), dump, "the dump replays");
}

// ---------------------------------------------------------------------------------------
// text_grammar

/// Parses `text` as `T` from its display and checks it comes back equal.
fn round_trip<T: PartialEq + Debug + std::fmt::Display>(
    value: &T,
    parse: impl Fn(&str) -> Result<T, EngineError>,
) {
    let text = value.to_string();
    match parse(&text) {
        Ok(again) => assert_eq!(&again, value, "'{text}' parses to another value"),
        Err(e) => panic!("'{text}', printed from {value:?}, does not parse: {e}"),
    }
}

/// The text target: `data[0]` picks the grammar, the rest is its text.
pub fn text_grammar(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let text = text.as_ref();
    match pick % 7 {
        0 => {
            if let Ok(w) = DevicesWrite::parse(text) {
                round_trip(&w, DevicesWrite::parse);
            }
            let mut e = loaded_engine();
            let before = engine_state(&mut e);
            match apply_devices_text(&mut e, text) {
                Err(_) => assert_eq!(engine_state(&mut e), before, "refused '{text}' changed"),
                Ok(()) => check_dump_replays(&e),
            }
        }
        1 | 2 => {
            if let Ok(w) = SettingsWrite::parse(text) {
                round_trip(&w, SettingsWrite::parse);
            }
            let group = match pick % 3 {
                0 => GroupKey::None,
                1 => GroupKey::Tag(7),
                _ => GroupKey::Initiator("nqn.2014-08.org.example:host1".to_owned()),
            };
            let mut e = loaded_engine();
            let before = engine_state(&mut e);
            match apply_settings_text(&mut e, &group, text) {
                Err(_) => assert_eq!(engine_state(&mut e), before, "refused '{text}' changed"),
                Ok(()) => check_dump_replays(&e),
            }
        }
        3 => {
            if let Ok(v) = parse_group_value(text) {
                round_trip(&v, parse_group_value);
            }
            if let Ok(g) = GroupKey::parse(text) {
                round_trip(&g, GroupKey::parse);
            }
            if let Ok(p) = Policy::parse(text) {
                round_trip(&p, Policy::parse);
            }
        }
        4 => {
            if let Ok(listing) = parse_devices_listing(text) {
                let printed: String = listing.iter().map(ToString::to_string).collect();
                let again = parse_devices_listing(&printed)
                    .unwrap_or_else(|e| panic!("'{printed}' does not parse: {e}"));
                assert_eq!(again, listing, "'{printed}'");
                for share in &listing {
                    for w in share.writes() {
                        round_trip(&w, DevicesWrite::parse);
                    }
                }
            }
        }
        5 => {
            if let Ok(lines) = parse_settings_listing(text) {
                let printed: String = lines.iter().map(|l| format!("{l}\n")).collect();
                let again = parse_settings_listing(&printed)
                    .unwrap_or_else(|e| panic!("'{printed}' does not parse: {e}"));
                assert_eq!(again, lines, "'{printed}'");
                for l in &lines {
                    round_trip(&l.to_write(), SettingsWrite::parse);
                }
            }
        }
        _ => {
            let bounded = bound_message(text);
            assert!(bounded.len() <= MAX_WIRE_MESSAGE, "{} bytes", bounded.len());
            if text.len() <= MAX_MESSAGE_BYTES && text.chars().count() <= 256 {
                assert_eq!(bounded, text, "a short message is sent as it is");
            }
        }
    }
}
