//! RPC params and error codes, create / delete / examine, save_config, dump_info.

use serde_json::{json, Value};

use super::{create, device_names};
use crate::ffi::IO_READ;
use crate::mock::{Call, Harness, Reply};
use crate::{entry, rpc};

const INVALID_PARAMS: i32 = -32602;

#[test]
fn params_decode_errors_name_the_field_and_change_nothing() {
    let h = Harness::new();
    h.add_base("Null0");

    // Absent params are {}: the first missing field is named.
    let (code, msg) = h.rpc("bdev_ioband_create", Value::Null).err();
    assert_eq!(code, INVALID_PARAMS);
    assert!(msg.contains("missing field `name`"), "{msg}");

    let (code, msg) = h.rpc("bdev_ioband_create", json!([1, 2])).err();
    assert_eq!(
        (code, msg.as_str()),
        (INVALID_PARAMS, "Invalid params: params must be an object")
    );

    let (code, msg) = h
        .rpc(
            "bdev_ioband_create",
            json!({"name": "io0", "base_bdev_name": "Null0", "io_limit": "x"}),
        )
        .err();
    assert_eq!(code, INVALID_PARAMS);
    assert!(
        msg.starts_with("Invalid params: io_limit: invalid type"),
        "{msg}"
    );

    let (code, msg) = h
        .rpc(
            "bdev_ioband_create",
            json!({"name": "io0", "base_bdev_name": "Null0", "bogus": 1}),
        )
        .err();
    assert_eq!(code, INVALID_PARAMS);
    assert!(msg.contains("bogus"), "{msg}");

    let (code, _) = h.rpc_text("bdev_ioband_create", "{\"name\":").err();
    assert_eq!(code, INVALID_PARAMS);

    // An unknown method number.
    let (code, msg) = h.rpc("no_such_method", json!({})).err();
    assert_eq!((code, msg.as_str()), (-32601, "Method not found"));

    // Null params decode as {} where every field is optional.
    assert_eq!(
        h.rpc("bdev_ioband_get_devices", Value::Null).ok(),
        json!([])
    );
    assert!(device_names(&h).is_empty());
    assert!(
        !h.calls()
            .iter()
            .any(|c| matches!(c, Call::NodeCreate { .. })),
        "bad input reached the shim"
    );
}

#[test]
fn engine_errors_map_to_spdk_codes() {
    let h = Harness::new();
    h.add_base("Null0");
    create(&h, "io0", "Null0", json!({}));
    let code = |r: Reply| r.err().0;
    // -19: no such device or share.
    assert_eq!(
        code(h.rpc(
            "bdev_ioband_set_settings",
            json!({"name": "nope", "value": 10})
        )),
        -19
    );
    assert_eq!(
        code(h.rpc("bdev_ioband_delete", json!({"name": "nope"}))),
        -19
    );
    assert_eq!(
        code(h.rpc(
            "bdev_ioband_set_device",
            json!({"name": "nope", "io_limit": 8})
        )),
        -19
    );
    // -22: out of range.
    assert_eq!(
        code(h.rpc(
            "bdev_ioband_set_settings",
            json!({"name": "io0", "value": 0})
        )),
        -22
    );
    // -2: a group that is not attached.
    assert_eq!(
        code(h.rpc(
            "bdev_ioband_get_iostat",
            json!({"name": "io0", "group": "tag:9"})
        )),
        -2
    );
    // -17: a bdev of that name exists (a base's name, or a live ioband bdev's).
    let (c, msg) = h
        .rpc(
            "bdev_ioband_create",
            json!({"name": "Null0", "base_bdev_name": "io0"}),
        )
        .err();
    assert_eq!(c, -17, "{msg}");
    assert_eq!(
        code(h.rpc(
            "bdev_ioband_create",
            json!({"name": "io0", "base_bdev_name": "Null0"})
        )),
        -17
    );
    assert_eq!(device_names(&h), ["io0"]);
}

#[test]
fn create_over_a_present_base_registers_with_the_shared_claim() {
    let h = Harness::new();
    h.add_base("Null0");
    let mark = h.mark();
    create(
        &h,
        "io0",
        "Null0",
        json!({"share": "s", "policy": "weight"}),
    );
    assert_eq!(
        h.calls_since(mark),
        [
            Call::BdevExists("io0".into()),
            Call::NodeCreate {
                name: "io0".into(),
                base: "Null0".into(),
                dev_id: 1,
                claim_key: rpc::claim_key()
            },
            Call::Reply,
        ]
    );
    // Registering examined the new bdev (a call back into the module): no harm done.
    assert!(h.errors().is_empty(), "{:?}", h.errors());
    assert!(h.node_of("io0").is_some());
    // A second ioband bdev over the same base, in another share, takes the same key.
    create(&h, "io1", "Null0", json!({"share": "t"}));
    let keys: Vec<u64> = h
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::NodeCreate { claim_key, .. } => Some(*claim_key),
            _ => None,
        })
        .collect();
    assert_eq!(keys, [rpc::claim_key(); 2]);
    let info = h.dump_info("io0");
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].0.as_deref(), Some("ioband"));
    assert_eq!(info[0].1["base_bdev_name"], "Null0");
    assert_eq!(info[0].1["share"], "s");
    assert_eq!(info[0].1["policy"], "weight");
    assert_eq!(info[0].1["groups"], json!(["none"]));
}

#[test]
fn a_base_claimed_by_another_module_is_eperm_and_changes_nothing() {
    let h = Harness::new();
    h.add_base("Null0");
    h.mock(|m| m.claimed.insert("Null0".into()));
    let (code, msg) = h
        .rpc(
            "bdev_ioband_create",
            json!({"name": "io0", "base_bdev_name": "Null0"}),
        )
        .err();
    assert_eq!(code, -1);
    assert!(msg.contains("claimed by another module"), "{msg}");
    assert!(device_names(&h).is_empty());
    // The name and the share are free again.
    h.mock(|m| m.claimed.clear());
    create(&h, "io0", "Null0", json!({}));
    assert_eq!(device_names(&h), ["io0"]);
}

#[test]
fn create_before_the_base_waits_for_examine() {
    let h = Harness::new();
    create(&h, "io0", "Null0", json!({"share": "s"}));
    assert!(h.node_of("io0").is_none());
    assert_eq!(device_names(&h), ["io0"]);
    // Another bdev appearing does nothing.
    let mark = h.mark();
    h.add_base("Other");
    assert!(h.calls_since(mark).is_empty(), "{:?}", h.calls_since(mark));
    // The base appears: the remembered device is registered over it, I/O flows.
    h.add_base("Null0");
    assert!(h.calls_since(mark).contains(&Call::NodeCreate {
        name: "io0".into(),
        base: "Null0".into(),
        dev_id: 1,
        claim_key: rpc::claim_key()
    }));
    let io = h.submit("io0", IO_READ, 4096, 1);
    h.base_done(io);
    assert_eq!(h.all_completed_once(), [crate::ffi::STATUS_BASE]);
    assert!(h.errors().is_empty(), "{:?}", h.errors());
}

#[test]
fn delete_replies_once_the_bdev_is_gone() {
    let h = Harness::new();
    h.add_base("Null0");
    // A device without a bdev (its base absent) goes at once.
    create(&h, "io9", "Null9", json!({}));
    let mark = h.mark();
    assert_eq!(
        h.rpc("bdev_ioband_delete", json!({"name": "io9"})).ok(),
        json!(true)
    );
    assert_eq!(h.calls_since(mark), [Call::Reply]);

    create(&h, "io0", "Null0", json!({}));
    let node = h.node_of("io0").expect("registered");
    let id = h.call("bdev_ioband_delete", Some(json!({"name": "io0"})));
    // The reply waits for the unregister (a later turn of the owner thread).
    assert_eq!(h.reply(id), None);
    assert!(h
        .calls()
        .contains(&Call::NodeUnregister("io0".into(), true)));
    h.run_msgs();
    assert_eq!(h.reply(id), Some(Reply::Ok(json!(true))));
    assert_eq!(h.node_state(node), (false, 0, true));
    assert!(device_names(&h).is_empty());
    // Gone for good: a second delete is -19, the name can be taken again.
    assert_eq!(
        h.rpc("bdev_ioband_delete", json!({"name": "io0"})).err().0,
        -19
    );
    create(&h, "io0", "Null0", json!({}));
    assert!(h.errors().is_empty(), "{:?}", h.errors());
}

#[test]
fn delete_during_hot_remove_replies_at_once() {
    let h = Harness::new();
    h.add_base("Null0");
    create(&h, "io0", "Null0", json!({}));
    h.hot_remove("Null0"); // the unregister is under way, destruct not run yet
    let id = h.call("bdev_ioband_delete", Some(json!({"name": "io0"})));
    assert_eq!(h.reply(id), Some(Reply::Ok(json!(true))));
    h.run_msgs();
    assert!(device_names(&h).is_empty());
    // Deleted: the base coming back brings nothing back.
    let mark = h.mark();
    h.add_base("Null0");
    assert!(h.calls_since(mark).is_empty());
}

#[test]
fn save_config_lists_creates_then_settings_and_restores() {
    let saved = {
        let h = Harness::new();
        h.add_base("Null0");
        create(
            &h,
            "io0",
            "Null0",
            json!({"share": "s", "policy": "weight", "io_limit": 64, "io_throttle": 8}),
        );
        create(&h, "io1", "Null9", json!({"share": "s"})); // base absent: saved too
        create(&h, "io2", "Null0", json!({"share": "t"}));
        for (name, group, value) in [
            ("io0", "tag:3", json!(300)),
            ("io1", "none", json!(50)),
            ("io2", "tag:4", json!(20)),
        ] {
            h.rpc(
                "bdev_ioband_set_settings",
                json!({"name": name, "group": group, "value": value}),
            )
            .ok();
        }
        h.rpc("bdev_ioband_delete", json!({"name": "io2"})).ok();
        let saved = h.config_json();
        let methods: Vec<(&str, &str)> = saved
            .iter()
            .map(|e| {
                (
                    e["method"].as_str().unwrap_or(""),
                    e["params"]["name"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            methods,
            [
                ("bdev_ioband_create", "io0"),
                ("bdev_ioband_create", "io1"),
                ("bdev_ioband_set_settings", "io0"),
                ("bdev_ioband_set_settings", "io1"),
            ]
        );
        assert_eq!(saved[0]["params"]["base_bdev_name"], "Null0");
        assert_eq!(saved[0]["params"]["share"], "s");
        assert_eq!(saved[0]["params"]["io_limit"], 64);
        assert_eq!(saved[0]["params"]["io_throttle"], 8);
        assert_eq!(saved[1]["params"]["base_bdev_name"], "Null9");
        assert_eq!(saved[2]["params"]["group"], "tag:3");
        assert_eq!(saved[2]["params"]["value"], 300);
        assert_eq!(saved[3]["params"]["value"], 50);
        let settings = h.rpc("bdev_ioband_get_settings", json!({})).ok();
        (saved, settings)
    };
    // Loading the saved entries into a fresh module gives the same settings.
    let h = Harness::new();
    h.add_base("Null0");
    for e in &saved.0 {
        let method = e["method"].as_str().expect("method");
        h.rpc(method, e["params"].clone()).ok();
    }
    assert_eq!(h.rpc("bdev_ioband_get_settings", json!({})).ok(), saved.1);
    assert_eq!(h.config_json(), saved.0);
}

#[test]
fn calls_before_init_or_after_fini_answer_enodev() {
    let h = Harness::new();
    entry::ioband_rs_fini();
    let (code, msg) = h.rpc("bdev_ioband_get_devices", json!({})).err();
    assert_eq!(code, -19);
    assert!(msg.contains("not initialised"), "{msg}");
    assert!(h.config_json().is_empty());
}

/// Issue #10: params are checked as text, as SPDK's decoders would: a key given twice, a
/// `null`, a number out of range are -32602 naming the field, and change nothing; a huge
/// name is not echoed whole.
#[test]
fn strict_params_duplicates_null_numbers_and_echo() {
    let h = Harness::new();
    h.add_base("Null0");
    create(&h, "io0", "Null0", json!({"share": "s0"}));
    h.rpc(
        "bdev_ioband_set_settings",
        json!({"name": "io0", "group": "tag:7", "value": 50}),
    )
    .ok();
    let state = |h: &Harness| {
        (
            h.rpc("bdev_ioband_get_devices", Value::Null).ok(),
            h.rpc("bdev_ioband_get_settings", Value::Null).ok(),
        )
    };
    let before = state(&h);
    for (method, params, mention) in [
        (
            "bdev_ioband_set_settings",
            r#"{"name": "io0", "value": 5, "value": 9}"#,
            "duplicate field `value`",
        ),
        (
            "bdev_ioband_set_settings",
            r#"{"name": "io0", "group": "tag:7", "value": null}"#,
            "value: null",
        ),
        (
            "bdev_ioband_create",
            r#"{"name": "io1", "base_bdev_name": "Null0", "share": null}"#,
            "share: null",
        ),
        (
            "bdev_ioband_set_device",
            r#"{"name": "s0", "io_limit": 1e309}"#,
            "io_limit: number out of range",
        ),
        (
            "bdev_ioband_set_device",
            r#"{"name": "s0", "token": 18446744073709551616}"#,
            "token: ",
        ),
    ] {
        let (code, msg) = h.rpc_text(method, params).err();
        assert_eq!(code, INVALID_PARAMS, "{params}: {msg}");
        assert!(msg.contains(mention), "{params}: {msg}");
    }
    assert_eq!(state(&h), before);

    let name = "A".repeat(900_000);
    let (_, msg) = h
        .rpc(
            "bdev_ioband_set_settings",
            json!({"name": name, "value": 3}),
        )
        .err();
    assert!(
        msg.len() < 1200 && msg.contains("AAAA…"),
        "{} bytes",
        msg.len()
    );
    let big = format!(r#"{{"name": "{}"}}"#, "B".repeat(2 << 20));
    let (code, msg) = h.rpc_text("bdev_ioband_delete", &big).err();
    assert_eq!(code, INVALID_PARAMS, "{msg}");
    assert!(msg.contains("above the limit"), "{msg}");
}

/// Issue #10: a base name that no bdev can have, or the device's own, is refused (-22,
/// naming base_bdev_name) as on the embedded host, instead of waiting for it forever.
#[test]
fn a_base_name_that_can_never_match_is_refused() {
    let h = Harness::new();
    h.add_base("Null0");
    for base in ["", "Null 0", "Null0\u{0}", "\t", "io9"] {
        let (code, msg) = h
            .rpc(
                "bdev_ioband_create",
                json!({"name": "io9", "base_bdev_name": base}),
            )
            .err();
        assert_eq!(code, -22, "{base:?}: {msg}");
        assert!(msg.contains("base_bdev_name"), "{base:?}: {msg}");
    }
    assert!(device_names(&h).is_empty());
    assert!(
        !h.calls()
            .iter()
            .any(|c| matches!(c, Call::NodeCreate { .. })),
        "bad input reached the shim"
    );
    // A base that does not exist yet is still waited for.
    create(&h, "io9", "Later0", json!({}));
    assert_eq!(device_names(&h), ["io9"]);
}
