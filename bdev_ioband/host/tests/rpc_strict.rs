//! The strict edge of the JSON-RPC server (issue #10): duplicate keys, `null`, numbers out
//! of range and huge echoed input, through the wire-format processor on a hand-stepped
//! main reactor. Every refusal is -32602 naming the field, changes nothing and keeps the
//! connection serving.

mod common;

use bdev_ioband_host::app::App;
use bdev_ioband_host::rpc::{process, Flow, Methods};
use common::Rig;
use serde_json::{json, Value};

fn exchange(rig: &Rig, app: &App, input: &str) -> (Vec<Value>, Flow) {
    let methods = Methods::new();
    let mut inbuf = input.as_bytes().to_vec();
    let mut out = Vec::new();
    let flow = rig.on(0, || process(&methods, app, &mut inbuf, &mut out));
    let values = serde_json::Deserializer::from_slice(&out)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .expect("responses are JSON");
    (values, flow)
}

/// One request written as raw text (`params` spliced in as given).
fn raw_call(rig: &Rig, app: &App, method: &str, params: &str) -> Value {
    let req = format!(r#"{{"jsonrpc":"2.0","method":"{method}","id":7,"params":{params}}}"#);
    let (mut out, flow) = exchange(rig, app, &req);
    assert_eq!(flow, Flow::Continue, "{req}: the connection goes on");
    assert_eq!(out.len(), 1, "{req}");
    out.remove(0)
}

fn ok(rig: &Rig, app: &App, method: &str, params: Value) -> Value {
    let r = raw_call(rig, app, method, &params.to_string());
    assert!(r.get("error").is_none(), "{method}: {r}");
    r["result"].clone()
}

/// io0 (share s0) over Null0, io0's default group at weight 3 and tag:7 at weight 50.
fn setup() -> (Rig, App) {
    let rig = Rig::new(2);
    let app = rig.on(0, App::new).expect("app");
    ok(
        &rig,
        &app,
        "bdev_null_create",
        json!({"name": "Null0", "num_blocks": 16, "block_size": 512}),
    );
    ok(
        &rig,
        &app,
        "bdev_ioband_create",
        json!({"name": "io0", "base_bdev_name": "Null0", "share": "s0"}),
    );
    ok(
        &rig,
        &app,
        "bdev_ioband_set_settings",
        json!({"name": "io0", "value": 3}),
    );
    ok(
        &rig,
        &app,
        "bdev_ioband_set_settings",
        json!({"name": "io0", "group": "tag:7", "value": 50}),
    );
    (rig, app)
}

fn state(rig: &Rig, app: &App) -> (Value, Value) {
    (
        ok(rig, app, "bdev_ioband_get_devices", json!({})),
        ok(rig, app, "bdev_ioband_get_settings", json!({})),
    )
}

fn refused(r: &Value, mention: &str) -> String {
    assert_eq!(r["id"], 7, "{r}");
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let message = r["error"]["message"].as_str().unwrap_or("").to_owned();
    assert!(message.contains(mention), "{mention}: {message}");
    message
}

#[test]
fn duplicate_keys_are_refused_naming_the_key() {
    let (rig, app) = setup();
    let before = state(&rig, &app);
    let r = raw_call(
        &rig,
        &app,
        "bdev_ioband_set_settings",
        r#"{"name": "io0", "value": 5, "value": 9}"#,
    );
    refused(&r, "duplicate field `value`");
    let r = raw_call(
        &rig,
        &app,
        "bdev_ioband_set_device",
        r#"{"name": "s0", "io_limit": 8, "io_limit": 16}"#,
    );
    refused(&r, "io_limit");
    assert_eq!(state(&rig, &app), before);
    // An unknown method stays "method not found", whatever its params.
    let r = raw_call(&rig, &app, "no_such", r#"{"a": 1, "a": 2}"#);
    assert_eq!(r["error"]["code"], -32601, "{r}");
}

#[test]
fn null_is_refused_and_detaches_nothing() {
    let (rig, app) = setup();
    let before = state(&rig, &app);
    for (params, field) in [
        (
            r#"{"name": "io0", "group": "tag:7", "value": null}"#,
            "value",
        ),
        (r#"{"name": "io0", "group": null, "value": 4}"#, "group"),
        (r#"{"name": null, "command": "io0 4"}"#, "name"),
    ] {
        let r = raw_call(&rig, &app, "bdev_ioband_set_settings", params);
        let message = refused(&r, field);
        assert!(message.contains("null"), "{message}");
    }
    let r = raw_call(
        &rig,
        &app,
        "bdev_ioband_create",
        r#"{"name": "io1", "base_bdev_name": "Null0", "io_limit": null}"#,
    );
    refused(&r, "io_limit");
    let r = raw_call(&rig, &app, "bdev_get_bdevs", r#"{"name": null}"#);
    refused(&r, "name");
    assert_eq!(state(&rig, &app), before);
    // Null params as a whole are absent params.
    let r = raw_call(&rig, &app, "bdev_ioband_get_devices", "null");
    assert!(r["result"].is_array(), "{r}");
}

#[test]
fn numbers_out_of_range_name_the_field_and_keep_the_connection() {
    let (rig, app) = setup();
    let before = state(&rig, &app);
    for (params, field) in [
        (r#"{"name": "s0", "io_limit": 1e309}"#, "io_limit"),
        (r#"{"name": "s0", "io_limit": -1e309}"#, "io_limit"),
        (r#"{"name": "s0", "token": 18446744073709551616}"#, "token"),
        (r#"{"name": "s0", "token": 4294967296}"#, "token"),
    ] {
        let r = raw_call(&rig, &app, "bdev_ioband_set_device", params);
        refused(&r, field);
    }
    let r = raw_call(
        &rig,
        &app,
        "bdev_ioband_set_settings",
        r#"{"name": "io0", "value": 1e309}"#,
    );
    refused(&r, "value");
    assert_eq!(state(&rig, &app), before);
    // A request after the bad one, in the same read, is served.
    let two = r#"{"jsonrpc":"2.0","method":"bdev_ioband_set_device","id":1,"params":{"name":"s0","io_limit":1e400}}{"jsonrpc":"2.0","method":"bdev_ioband_get_devices","id":2}"#;
    let (out, flow) = exchange(&rig, &app, two);
    assert_eq!(flow, Flow::Continue);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0]["error"]["code"], -32602, "{out:?}");
    assert!(out[1]["result"].is_array(), "{out:?}");
}

#[test]
fn a_huge_name_is_not_echoed_whole() {
    let (rig, app) = setup();
    let name = "A".repeat(900_000);
    for (method, params) in [
        (
            "bdev_ioband_set_settings",
            json!({"name": name, "value": 3}),
        ),
        (
            "bdev_ioband_create",
            json!({"name": name, "base_bdev_name": "Null0"}),
        ),
        (
            "bdev_ioband_set_device",
            json!({"command": format!("{name} io_limit 8")}),
        ),
        ("bdev_ioband_get_devices", json!({"share": name})),
        (
            "bdev_ioband_create",
            json!({"name": "x", "base_bdev_name": name}),
        ),
        (
            "bdev_ioband_get_settings",
            json!({"bogus": 1, name.clone(): 2}),
        ),
    ] {
        let r = raw_call(&rig, &app, method, &params.to_string());
        let message = r["error"]["message"].as_str().unwrap_or("").to_owned();
        assert!(!message.is_empty(), "{method}: {r}");
        assert!(
            message.len() < 1200,
            "{method}: {} bytes echoed",
            message.len()
        );
        assert!(message.contains("AAAA…"), "{method}: {message}");
    }
}

#[test]
fn a_notification_with_bad_params_gets_an_error_with_id_null() {
    let (rig, app) = setup();
    let (out, _) = exchange(
        &rig,
        &app,
        r#"{"jsonrpc":"2.0","method":"bdev_ioband_set_settings","params":{"name":"io0","value":null}}"#,
    );
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["id"], Value::Null);
    assert_eq!(out[0]["error"]["code"], -32602);
}
