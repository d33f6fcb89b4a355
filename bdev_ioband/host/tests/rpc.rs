//! JSON-RPC tests through the wire-format processor (no socket), on a hand-stepped main
//! reactor.

mod common;

use bdev_ioband_host::app::App;
use bdev_ioband_host::rpc::config::load_config;
use bdev_ioband_host::rpc::{process, Flow, Methods, MAX_REQUEST_BYTES};
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

fn call(rig: &Rig, app: &App, method: &str, params: Value) -> Value {
    let req = json!({"jsonrpc": "2.0", "method": method, "id": 1, "params": params});
    let (mut out, _) = exchange(rig, app, &req.to_string());
    assert_eq!(out.len(), 1);
    out.remove(0)
}

fn setup() -> (Rig, App) {
    let rig = Rig::new(2);
    let app = rig.on(0, App::new).expect("app");
    (rig, app)
}

/// A new host that loaded `config` (a `bdev` subsystem's entries) as `--json` does; and
/// how many entries it ran.
fn replay(config: &Value) -> (Rig, App, usize) {
    let (rig, app) = setup();
    let file = json!({"subsystems": [{"subsystem": "bdev", "config": config}]}).to_string();
    let n = rig
        .on(0, || load_config(&app, &Methods::new(), &file))
        .expect("replay");
    (rig, app, n)
}

#[test]
fn concatenated_requests_and_partial_input() {
    let (rig, app) = setup();
    let methods = Methods::new();
    let two = r#"{"jsonrpc":"2.0","method":"spdk_get_version","id":1}{"jsonrpc":"2.0","method":"framework_wait_init","id":2}{"jsonrpc":"2.0","met"#;
    let mut inbuf = two.as_bytes().to_vec();
    let mut out = Vec::new();
    assert_eq!(
        rig.on(0, || process(&methods, &app, &mut inbuf, &mut out)),
        Flow::Continue
    );
    let text = String::from_utf8(out).expect("utf8");
    assert_eq!(text.lines().count(), 2, "{text}");
    assert_eq!(
        inbuf,
        br#"{"jsonrpc":"2.0","met"#.to_vec(),
        "the partial request stays buffered"
    );
}

#[test]
fn error_codes_follow_spdk() {
    let (rig, app) = setup();
    let r = call(&rig, &app, "no_such_method", json!({}));
    assert_eq!(r["error"]["code"], -32601);
    let r = call(
        &rig,
        &app,
        "bdev_null_create",
        json!({"name": "n", "num_blocks": 8, "block_size": 512, "colour": 1}),
    );
    assert_eq!(r["error"]["code"], -32602);
    assert!(r["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("colour"));
    let r = call(
        &rig,
        &app,
        "bdev_null_create",
        json!({"num_blocks": 8, "block_size": 512}),
    );
    assert_eq!(r["error"]["code"], -32602);
    let r = call(&rig, &app, "bdev_ioband_delete", json!({"name": "ghost"}));
    assert_eq!(r["error"]["code"], -19);
    let r = call(
        &rig,
        &app,
        "bdev_null_create",
        json!({"name": "n", "num_blocks": 8, "block_size": 500}),
    );
    assert_eq!(r["error"]["code"], -22);
    let (out, _) = exchange(&rig, &app, r#"{"jsonrpc":"2.0","id":4,"method":5}"#);
    assert_eq!(out[0]["error"]["code"], -32600);
    let (out, _) = exchange(&rig, &app, "[]");
    assert_eq!(out[0]["error"]["code"], -32600);
    let (out, flow) = exchange(&rig, &app, r#"{"jsonrpc": nope}"#);
    assert_eq!(out[0]["error"]["code"], -32700);
    assert_eq!(flow, Flow::Close);
}

#[test]
fn oversized_request_is_refused_and_closes() {
    let (rig, app) = setup();
    let big = format!(
        r#"{{"jsonrpc":"2.0","method":"x","id":1,"params":{{"a":"{}"#,
        "y".repeat(MAX_REQUEST_BYTES + 10)
    );
    let (out, flow) = exchange(&rig, &app, &big);
    assert_eq!(out[0]["error"]["code"], -32700);
    assert_eq!(flow, Flow::Close);
}

#[test]
fn batches_and_notifications() {
    let (rig, app) = setup();
    let batch = json!([
        {"jsonrpc": "2.0", "method": "bdev_null_create", "id": 1, "params": {"name": "Null0", "num_blocks": 16, "block_size": 512}},
        {"jsonrpc": "2.0", "method": "framework_wait_init"},
        {"jsonrpc": "2.0", "method": "bdev_get_bdevs", "id": 2, "params": {"name": "Null0"}},
    ]);
    let (out, _) = exchange(&rig, &app, &batch.to_string());
    let replies = out[0].as_array().expect("batch reply");
    assert_eq!(replies.len(), 2, "the notification gets no reply");
    assert_eq!(replies[0]["result"], "Null0");
    assert_eq!(replies[1]["result"][0]["num_blocks"], 16);
}

#[test]
fn ioband_methods_and_config_round_trip() {
    let (rig, app) = setup();
    let steps = [
        (
            "bdev_model_create",
            json!({"name": "Model0", "block_size": 4096, "num_blocks": 1024, "iops": 1000, "bandwidth_mib_per_sec": 10, "latency_us": 50, "queue_depth": 16}),
        ),
        (
            "bdev_malloc_create",
            json!({"name": "Malloc0", "block_size": 512, "num_blocks": 64}),
        ),
        (
            "bdev_ioband_create",
            json!({"name": "band0", "base_bdev_name": "Model0", "share": "s0", "io_limit": 8}),
        ),
        (
            "bdev_ioband_create",
            json!({"name": "band1", "base_bdev_name": "Model0", "share": "s0", "io_limit": 8}),
        ),
        (
            "bdev_ioband_set_settings",
            json!({"name": "band0", "group": "tag:7", "value": 40}),
        ),
        (
            "bdev_ioband_set_settings",
            json!({"name": "band1", "value": 300}),
        ),
        (
            "bdev_ioband_set_device",
            json!({"name": "s0", "io_throttle": 2}),
        ),
    ];
    for (m, p) in steps {
        let r = call(&rig, &app, m, p);
        assert!(r.get("result").is_some(), "{m}: {r}");
    }
    let r = call(
        &rig,
        &app,
        "bdev_ioband_get_iostat",
        json!({"name": "band0"}),
    );
    assert_eq!(r["result"]["devices"][0]["groups"][1]["group"], "tag:7");
    let config =
        call(&rig, &app, "framework_get_config", json!({"name": "bdev"}))["result"].clone();

    let (rig2, app2, n) = replay(&config);
    assert!(n >= 6);
    let again = call(
        &rig2,
        &app2,
        "framework_get_config",
        json!({"name": "bdev"}),
    )["result"]
        .clone();
    assert_eq!(config, again);
    let s1 = call(&rig, &app, "bdev_ioband_get_settings", json!({}));
    let s2 = call(&rig2, &app2, "bdev_ioband_get_settings", json!({}));
    assert_eq!(s1, s2);

    // Deleting the base takes both ioband bdevs with it; their devices, share and
    // settings stay (as in SPDK), in the config too, and come back with the base.
    let r = call(&rig, &app, "bdev_model_delete", json!({"name": "Model0"}));
    assert_eq!(r["result"], true);
    let r = call(&rig, &app, "bdev_get_bdevs", json!({}));
    assert_eq!(r["result"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        call(&rig, &app, "bdev_ioband_get_settings", json!({})),
        s1,
        "settings kept"
    );
    let waiting =
        call(&rig, &app, "framework_get_config", json!({"name": "bdev"}))["result"].clone();
    let creates = |c: &Value| {
        c.as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["method"] == "bdev_ioband_create")
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(creates(&waiting), 2, "{waiting}");
    // The saved config replays without the base: the devices wait for it there too.
    let (rig3, app3, _) = replay(&waiting);
    assert_eq!(
        call(&rig3, &app3, "bdev_ioband_get_settings", json!({})),
        s1
    );
    // A device waiting for its base can be deleted.
    let r = call(&rig3, &app3, "bdev_ioband_delete", json!({"name": "band1"}));
    assert_eq!(r["result"], true, "{r}");
    // The base returns: so do both bdevs, with their settings.
    let r = call(
        &rig,
        &app,
        "bdev_model_create",
        json!({"name": "Model0", "block_size": 4096, "num_blocks": 1024, "iops": 1000, "bandwidth_mib_per_sec": 10, "latency_us": 50, "queue_depth": 16}),
    );
    assert_eq!(r["result"], "Model0", "{r}");
    let r = call(&rig, &app, "bdev_get_bdevs", json!({}));
    assert_eq!(r["result"].as_array().map(Vec::len), Some(4), "{r}");
    // The same config (the re-created base is registered later, so it is listed later).
    let sorted = |c: &Value| {
        let mut v: Vec<String> = c
            .as_array()
            .map(|a| a.iter().map(Value::to_string).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let back = call(&rig, &app, "framework_get_config", json!({"name": "bdev"}))["result"].clone();
    assert_eq!(sorted(&back), sorted(&config));
}

/// The whole observable state a refused call must leave as it was.
fn snapshot(rig: &Rig, app: &App) -> Value {
    json!({
        "bdevs": call(rig, app, "bdev_get_bdevs", json!({}))["result"].clone(),
        "config": call(rig, app, "framework_get_config", json!({"name": "bdev"}))["result"].clone(),
        "settings": call(rig, app, "bdev_ioband_get_settings", json!({}))["result"].clone(),
    })
}

#[test]
fn a_refused_delete_changes_nothing() {
    let (rig, app) = setup();
    for (m, p) in [
        (
            "bdev_malloc_create",
            json!({"name": "Malloc0", "block_size": 512, "num_blocks": 64}),
        ),
        (
            "bdev_ioband_create",
            json!({"name": "band0", "base_bdev_name": "Malloc0", "share": "s0"}),
        ),
        (
            "bdev_ioband_set_settings",
            json!({"name": "band0", "group": "tag:7", "value": 40}),
        ),
        // A passthru on the ioband bdev, and one beside it on the base.
        (
            "bdev_passthru_create",
            json!({"name": "PTonBand", "base_bdev_name": "band0"}),
        ),
        (
            "bdev_passthru_create",
            json!({"name": "PTonBase", "base_bdev_name": "Malloc0"}),
        ),
    ] {
        let r = call(&rig, &app, m, p);
        assert!(r.get("result").is_some(), "{m}: {r}");
    }
    let before = snapshot(&rig, &app);

    // The ioband bdev has a passthru on it: refused (EBUSY), naming who holds it.
    let r = call(&rig, &app, "bdev_ioband_delete", json!({"name": "band0"}));
    assert_eq!(r["error"]["code"], -16, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("PTonBand"),
        "{r}"
    );
    assert_eq!(snapshot(&rig, &app), before);

    // The base carries a passthru besides the ioband bdev: refused before anything goes.
    let r = call(&rig, &app, "bdev_malloc_delete", json!({"name": "Malloc0"}));
    assert_eq!(r["error"]["code"], -16, "{r}");
    assert_eq!(snapshot(&rig, &app), before);

    // Once the holders are gone, both deletes go through and nothing is left behind.
    for (m, name) in [
        ("bdev_passthru_delete", "PTonBand"),
        ("bdev_passthru_delete", "PTonBase"),
        ("bdev_ioband_delete", "band0"),
    ] {
        let r = call(&rig, &app, m, json!({"name": name}));
        assert_eq!(r["result"], true, "{m} {name}: {r}");
    }
    // The name is free again.
    let r = call(
        &rig,
        &app,
        "bdev_ioband_create",
        json!({"name": "band0", "base_bdev_name": "Malloc0", "share": "s0"}),
    );
    assert_eq!(r["result"], "band0", "{r}");
}

/// Bound groups over JSON-RPC (issue #12): `group` on create, the tenant addressed by the
/// share and its name, iostat by name, -32602 for a bad binding (nothing created), and a
/// saved config that loads to the same tenants.
#[test]
fn bound_groups_by_rpc_and_config_round_trip() {
    let (rig, app) = setup();
    let h = |i: u32| format!("initiator:nqn.2014-08.org.example:host{i}");
    let r = call(
        &rig,
        &app,
        "bdev_null_create",
        json!({"name": "Null0", "num_blocks": 1024, "block_size": 512}),
    );
    assert!(r.get("result").is_some(), "{r}");
    for i in 1..=3 {
        let r = call(
            &rig,
            &app,
            "bdev_ioband_create",
            json!({"name": format!("t{i}"), "base_bdev_name": "Null0", "share": "tenants", "group": h(i)}),
        );
        assert_eq!(r["result"], format!("t{i}"), "{r}");
        let r = call(
            &rig,
            &app,
            "bdev_ioband_set_settings",
            json!({"name": "tenants", "group": h(i), "value": 1 << (3 - i)}),
        );
        assert_eq!(r["result"], true, "{r}");
    }
    let before = call(&rig, &app, "bdev_ioband_get_settings", json!({}));
    let bad = [
        json!({"name": "t9", "base_bdev_name": "Null0", "share": "tenants", "group": h(2)}),
        json!({"name": "t9", "base_bdev_name": "Null0", "group": "none"}),
        json!({"name": "t9", "base_bdev_name": "Null0", "group": "initiator:"}),
        json!({"name": "t9", "base_bdev_name": "Null0", "group": "tag:x"}),
    ];
    for p in bad {
        let r = call(&rig, &app, "bdev_ioband_create", p.clone());
        assert_eq!(r["error"]["code"], -32602, "{p}: {r}");
    }
    let r = call(
        &rig,
        &app,
        "bdev_ioband_set_settings",
        json!({"name": "t2", "group": h(2)}),
    );
    assert_eq!(r["error"]["code"], -32602, "detach a bound group: {r}");
    let r = call(&rig, &app, "bdev_get_bdevs", json!({"name": "t9"}));
    assert!(r.get("error").is_some(), "{r}");
    assert_eq!(
        call(&rig, &app, "bdev_ioband_get_settings", json!({})),
        before
    );

    let r = call(
        &rig,
        &app,
        "bdev_ioband_get_iostat",
        json!({"name": "tenants"}),
    );
    let names: Vec<Value> = r["result"]["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["groups"][0]["group"].clone())
        .collect();
    assert_eq!(names, [json!(h(1)), json!(h(2)), json!(h(3))]);
    let r = call(
        &rig,
        &app,
        "bdev_ioband_get_iostat",
        json!({"group": h(3), "format": "text"}),
    );
    assert_eq!(r["result"], format!("t3 tenants {} 0 0 0 0 0\n", h(3)));

    let config =
        call(&rig, &app, "framework_get_config", json!({"name": "bdev"}))["result"].clone();
    let (rig2, app2, _) = replay(&config);
    assert_eq!(
        call(&rig2, &app2, "bdev_ioband_get_settings", json!({})),
        before
    );
    let again = call(
        &rig2,
        &app2,
        "framework_get_config",
        json!({"name": "bdev"}),
    )["result"]
        .clone();
    assert_eq!(config, again);
}
