//! Tests of the JSON-RPC types and handlers: decoding, the reply shapes (snapshots taken
//! with serde_json), the two forms of the set methods, and the error codes.

use serde::de::DeserializeOwned;
use serde_json::{from_value, json, to_value, Value};

use super::rpc::*;
use super::{apply_devices_text, render_devices};
use crate::{Engine, EngineError, GroupKey, GroupValue, Op, Policy, ShareParams};

const HOST1: &str = "nqn.2014-08.org:host1";

fn host1() -> GroupKey {
    GroupKey::Initiator(HOST1.to_owned())
}

/// `gold` (weight) with io0 (initiator host1 at weight 300) and io1; `silver` (range-bw,
/// capacity 100000, idle grace 500 µs) with io2 (cgroup 7 at 1000:20000).
fn fixture() -> Engine<u32> {
    let mut e = Engine::new(1_000_000);
    e.create_device("io0", "gold", None).expect("io0");
    e.create_device("io1", "gold", None).expect("io1");
    let silver = ShareParams {
        policy: Policy::RangeBw,
        capacity_kib_per_sec: 100_000,
        idle_grace_us: 500,
        ..ShareParams::default()
    };
    e.create_device("io2", "silver", Some(silver)).expect("io2");
    e.write_setting("io0", &host1(), Some(GroupValue::Weight(300)))
        .expect("host1");
    let range = GroupValue::RangeBw {
        min_kib_per_sec: 1000,
        max_kib_per_sec: 20000,
    };
    e.write_setting("io2", &GroupKey::Cgroup(7), Some(range))
        .expect("cgroup 7");
    e
}

fn decode<P: DeserializeOwned>(v: Value) -> Result<P, String> {
    from_value(v).map_err(|e| e.to_string())
}

fn json_of<R: serde::Serialize>(r: R) -> Value {
    to_value(r).expect("replies serialize")
}

#[test]
fn create_params_decode() {
    let p: CreateParams =
        decode(json!({"name": "io0", "base_bdev_name": "Nvme0n1"})).expect("minimal");
    assert_eq!(p.share_name(), "io0");
    assert_eq!(p.share_params(), None);

    let p: CreateParams = decode(json!({
        "name": "io1", "base_bdev_name": "Nvme0n1", "share": "gold", "policy": "weight-iosize",
        "io_throttle": 8, "io_limit": 64, "token": 0, "carryover": 2,
        "capacity_kib_per_sec": 400000, "idle_grace_us": 750
    }))
    .expect("full");
    assert_eq!(p.share_name(), "gold");
    assert_eq!(
        p.share_params(),
        Some(ShareParams {
            policy: Policy::WeightIosize,
            io_throttle: 8,
            io_limit: 64,
            token: 0,
            carryover: 2,
            capacity_kib_per_sec: 400000,
            idle_grace_us: 750,
            ..ShareParams::default()
        })
    );
    let p: CreateParams =
        decode(json!({"name": "a", "base_bdev_name": "b", "token": 5})).expect("one knob");
    assert_eq!(
        p.share_params(),
        Some(ShareParams {
            token: 5,
            ..ShareParams::default()
        })
    );
    let p: CreateParams = decode(json!({"name": "a", "base_bdev_name": "b", "idle_grace_us": 0}))
        .expect("idle grace alone is a knob");
    assert_eq!(p.share_params(), Some(ShareParams::default()));
    // Out of range decodes (it is a u32) and is refused when the share validates it.
    let p: CreateParams =
        decode(json!({"name": "a", "base_bdev_name": "b", "idle_grace_us": 1_000_001}))
            .expect("decodes");
    let err = Engine::<u32>::new(1)
        .create_device("a", "a", p.share_params())
        .expect_err("out of range");
    assert_eq!(rpc_code(&err), -22);
    assert!(
        err.to_string().contains("idle_grace") && err.to_string().contains("1000000"),
        "{err}"
    );

    for bad in [
        json!({"name": "io0"}),
        json!({"name": "io0", "base_bdev_name": "b", "colour": "red"}),
        json!({"name": "io0", "base_bdev_name": "b", "policy": "fifo"}),
        json!({"name": "io0", "base_bdev_name": "b", "io_limit": -1}),
        json!({"name": "io0", "base_bdev_name": "b", "io_limit": "5"}),
        json!({"name": "io0", "base_bdev_name": "b", "idle_grace_us": "5"}),
        json!({"name": "io0", "base_bdev_name": "b", "idle_grace_us": -1}),
        json!({"name": "io0", "base_bdev_name": "b", "idle_grace_us": 4294967296u64}),
        json!({"name": "io0", "base_bdev_name": "b", "idle_grace": 5}),
    ] {
        assert!(decode::<CreateParams>(bad.clone()).is_err(), "{bad}");
    }
    let err = decode::<CreateParams>(json!({"name": "x", "base_bdev_name": "b", "colour": 1}))
        .expect_err("unknown field");
    assert!(err.contains("colour"), "{err}");
    let p: DeleteParams = decode(json!({"name": "io0"})).expect("delete");
    assert_eq!(p.name, "io0");
    assert!(decode::<DeleteParams>(json!({"name": "io0", "force": true})).is_err());
}

#[test]
fn every_params_struct_refuses_unknown_fields() {
    let extra = json!({"bogus": 1});
    assert!(decode::<GetDevicesParams>(extra.clone()).is_err());
    assert!(decode::<SetDeviceParams>(extra.clone()).is_err());
    assert!(decode::<GetSettingsParams>(extra.clone()).is_err());
    assert!(decode::<SetSettingsParams>(extra.clone()).is_err());
    assert!(decode::<GetIostatParams>(extra).is_err());
    // ... and accept an empty object for the optional ones.
    assert_eq!(
        decode::<GetDevicesParams>(json!({})),
        Ok(GetDevicesParams::default())
    );
    assert_eq!(
        decode::<GetSettingsParams>(json!({})),
        Ok(GetSettingsParams::default())
    );
    assert_eq!(
        decode::<GetIostatParams>(json!({})),
        Ok(GetIostatParams::default())
    );
    let err = decode::<GetSettingsParams>(json!({"group": "user:1"})).expect_err("bad group");
    assert!(err.contains("unknown group type 'user'"), "{err}");
    assert!(decode::<GetDevicesParams>(json!({"format": "xml"})).is_err());
}

#[test]
fn get_devices_json_shape() {
    let mut e = fixture();
    apply_devices_text(&mut e, "gold io_limit 64").expect("io_limit");
    let reply = handle_get_devices(&mut e, GetDevicesParams::default()).expect("get");
    assert_eq!(
        json_of(reply),
        json!([
            {
                "share": "gold", "policy": "weight", "io_throttle": 4, "io_limit": 64,
                "token": 256, "carryover": 8, "capacity_kib_per_sec": 0, "idle_grace_us": 0,
                "devices": ["io0", "io1"],
                "configured": {
                    "io_throttle": 0, "io_limit": 64, "token": 0, "carryover": 0,
                    "idle_grace_us": 0, "nr_requests": 128
                }
            },
            {
                "share": "silver", "policy": "range-bw", "io_throttle": 4, "io_limit": 192,
                "token": 6144, "carryover": 2, "capacity_kib_per_sec": 100000,
                "idle_grace_us": 500,
                "devices": ["io2"],
                "configured": {
                    "io_throttle": 0, "io_limit": 0, "token": 0, "carryover": 0,
                    "idle_grace_us": 500, "nr_requests": 128
                }
            }
        ])
    );
    let params: GetDevicesParams = decode(json!({"share": "silver"})).expect("filter");
    let reply = handle_get_devices(&mut e, params).expect("filtered");
    assert!(matches!(&reply, GetDevicesReply::Shares(s) if s.len() == 1 && s[0].share == "silver"));
    let params: GetDevicesParams = decode(json!({"share": "io2"})).expect("filter");
    let err = handle_get_devices(&mut e, params).expect_err("not a share");
    assert_eq!(rpc_code(&err), -19);
}

#[test]
fn get_devices_text() {
    let mut e = fixture();
    let params: GetDevicesParams = decode(json!({"format": "text"})).expect("text");
    let reply = handle_get_devices(&mut e, params).expect("get");
    let text = render_devices(&e, None).expect("render");
    assert_eq!(json_of(reply), Value::String(text));
}

#[test]
fn set_device_knobs_and_command() {
    let mut e = fixture();
    let p: SetDeviceParams =
        decode(json!({"name": "io1", "io_limit": 32, "token": 100})).expect("knobs");
    assert_eq!(handle_set_device(&mut e, p), Ok(true));
    let gold = *e.share("gold").expect("gold").params();
    assert_eq!((gold.io_limit, gold.token), (32, 100));

    let p: SetDeviceParams =
        decode(json!({"name": "gold", "idle_grace_us": 1_000_000})).expect("k");
    assert_eq!(handle_set_device(&mut e, p), Ok(true));
    let gold = *e.share("gold").expect("gold").params();
    assert_eq!(
        (gold.idle_grace_us, gold.io_limit, gold.token),
        (1_000_000, 32, 100),
        "only idle_grace changes"
    );
    let p: SetDeviceParams = decode(json!({"command": "io0 idle_grace 300"})).expect("command");
    assert_eq!(handle_set_device(&mut e, p), Ok(true));
    assert_eq!(e.share("gold").expect("gold").params().idle_grace_us, 300);

    let p: SetDeviceParams =
        decode(json!({"command": "gold policy weight-iosize"})).expect("command");
    assert_eq!(handle_set_device(&mut e, p), Ok(true));
    assert_eq!(
        e.share("gold").expect("gold").policy(),
        Policy::WeightIosize
    );

    let p: SetDeviceParams =
        decode(json!({"command": "io0 weight initiator:nqn.2014-08.org:host1:42"})).expect("c");
    assert_eq!(handle_set_device(&mut e, p), Ok(true));
    assert_eq!(e.groups_of("io0").expect("io0")[1].1.weight, 42);

    let before = format!("{:?}", e.groups_of("io0")) + &render_devices(&e, None).expect("r");
    for (bad, code) in [
        (json!({"name": "gold"}), -22),
        (json!({}), -22),
        (json!({"name": "gold", "command": "gold io_limit 1"}), -22),
        (json!({"command": "gold io_limit 1", "io_limit": 2}), -22),
        (json!({"command": "gold io_limit x"}), -22),
        (json!({"name": "gold", "io_throttle": 40}), -22),
        (json!({"name": "gold", "io_limit": 40000}), -22),
        (json!({"name": "gold", "idle_grace_us": 1_000_001}), -22),
        (
            json!({"name": "io1", "io_limit": 8, "idle_grace_us": 4_000_000}),
            -22,
        ),
        (json!({"command": "gold idle_grace 1000001"}), -22),
        (json!({"command": "gold idle_grace_us 5"}), -22),
        (
            json!({"command": "gold idle_grace 5", "idle_grace_us": 5}),
            -22,
        ),
        (json!({"name": "nosuch", "idle_grace_us": 4}), -19),
        (json!({"name": "nosuch", "io_limit": 4}), -19),
        (json!({"command": "io0 detach tag:1"}), -2),
        (
            json!({"command": "io0 attach initiator:nqn.2014-08.org:host1"}),
            -17,
        ),
    ] {
        let p: SetDeviceParams = decode(bad.clone()).expect("decodes");
        let err = handle_set_device(&mut e, p).expect_err("refused");
        assert_eq!(rpc_code(&err), code, "{bad}: {err}");
        let after = format!("{:?}", e.groups_of("io0")) + &render_devices(&e, None).expect("r");
        assert_eq!(after, before, "{bad} changed the engine");
    }
    let p: SetDeviceParams = decode(json!({"name": "gold"})).expect("decodes");
    let msg = handle_set_device(&mut e, p)
        .expect_err("no knob")
        .to_string();
    assert!(
        msg.contains("no parameter to change for 'gold'")
            && msg.contains("io_limit")
            && msg.contains("\"idle_grace_us\""),
        "{msg}"
    );
    let p: SetDeviceParams =
        decode(json!({"name": "gold", "idle_grace_us": 1_000_001})).expect("d");
    let msg = handle_set_device(&mut e, p)
        .expect_err("out of range")
        .to_string();
    assert_eq!(msg, "idle_grace = 1000001 is out of range (0..=1000000)");
    for bad in [
        json!({"name": "gold", "idle_grace_us": "5"}),
        json!({"name": "gold", "idle_grace_us": -5}),
        json!({"name": "gold", "idle_grace_us": 2.5}),
        json!({"name": "gold", "idle_grace": 5}),
    ] {
        assert!(decode::<SetDeviceParams>(bad.clone()).is_err(), "{bad}");
    }
}

/// What save_config writes (config_params) carries the idle grace as set, and creating the
/// devices from it again gives the same share knobs.
#[test]
fn config_params_carry_idle_grace() {
    let mut e = fixture();
    apply_devices_text(&mut e, "gold idle_grace 1000000").expect("gold");
    let mut replayed = Engine::<u32>::new(1_000_000);
    for device in ["io0", "io1", "io2"] {
        let (create, _) = config_params(&e, device, "base").expect("config params");
        let want = e
            .share(create.share_name())
            .expect("share")
            .params()
            .idle_grace_us;
        assert_eq!(create.idle_grace_us, Some(want), "{device}");
        let v = json_of(&create);
        assert_eq!(v["idle_grace_us"], json!(want), "{device}: {v}");
        let create: CreateParams = decode(v).expect("saved params decode");
        replayed
            .create_device(&create.name, create.share_name(), create.share_params())
            .expect("create from the saved params");
    }
    for share in ["gold", "silver"] {
        assert_eq!(
            replayed.share(share).expect("share").params(),
            e.share(share).expect("share").params(),
            "{share}"
        );
    }
    assert_eq!(
        render_devices(&replayed, None).expect("r"),
        render_devices(&e, None).expect("r")
    );
}

#[test]
fn get_settings_json_shape_and_filters() {
    let mut e = fixture();
    let reply = handle_get_settings(&mut e, GetSettingsParams::default()).expect("all");
    let row =
        |name: &str, share: &str, group: &str, ty: &str, id: &str, w: u32, min: u32, max: u32| {
            json!({
                "name": name, "share": share, "group": group, "type": ty, "id": id,
                "weight": w, "min_kib_per_sec": min, "max_kib_per_sec": max
            })
        };
    assert_eq!(
        json_of(reply),
        json!([
            row("io0", "gold", "none", "none", "", 100, 0, 0),
            row(
                "io0",
                "gold",
                "initiator:nqn.2014-08.org:host1",
                "initiator",
                HOST1,
                300,
                0,
                0
            ),
            row("io1", "gold", "none", "none", "", 100, 0, 0),
            row("io2", "silver", "none", "none", "", 100, 0, 0),
            row("io2", "silver", "cgroup:7", "cgroup", "7", 100, 1000, 20000),
        ])
    );
    let p: GetSettingsParams = decode(json!({"group": "cgroup:7"})).expect("group filter");
    let reply = handle_get_settings(&mut e, p).expect("filtered");
    assert_eq!(
        json_of(reply),
        json!([row(
            "io2", "silver", "cgroup:7", "cgroup", "7", 100, 1000, 20000
        )])
    );
    let p: GetSettingsParams = decode(json!({"name": "io1"})).expect("device filter");
    let reply = handle_get_settings(&mut e, p).expect("filtered");
    assert_eq!(
        json_of(reply),
        json!([row("io1", "gold", "none", "none", "", 100, 0, 0)])
    );

    let p: GetSettingsParams = decode(json!({"name": "io1", "group": "tag:3"})).expect("both");
    assert_eq!(
        handle_get_settings(&mut e, p).map_err(|e| rpc_code(&e)),
        Err(-2)
    );
    let p: GetSettingsParams = decode(json!({"name": "nosuch"})).expect("unknown");
    assert_eq!(
        handle_get_settings(&mut e, p).map_err(|e| rpc_code(&e)),
        Err(-19)
    );

    let p: GetSettingsParams = decode(json!({"format": "text"})).expect("text");
    assert_eq!(
        json_of(handle_get_settings(&mut e, p).expect("text")),
        json!("io0 weight=100\nio1 weight=100\nio2 range-bw=0:0\n")
    );
    let p: GetSettingsParams =
        decode(json!({"format": "text", "group": "initiator:nqn.2014-08.org:host1"})).expect("t");
    assert_eq!(
        json_of(handle_get_settings(&mut e, p).expect("text")),
        json!("io0 weight=300\n")
    );
}

#[test]
fn set_settings_forms() {
    let mut e = fixture();
    let weight = |e: &Engine<u32>, dev: &str, key: &GroupKey| {
        let r = e.device(dev).expect("device");
        e.share(&r.share)
            .expect("share")
            .group_info(r.device, key)
            .map(|(p, _)| p)
    };
    let set = |e: &mut Engine<u32>, v: Value| {
        let p: SetSettingsParams = decode(v).expect("decodes");
        handle_set_settings(e, p)
    };
    assert_eq!(set(&mut e, json!({"name": "io1", "value": 50})), Ok(true));
    assert_eq!(weight(&e, "io1", &GroupKey::None).map(|p| p.weight), Ok(50));
    assert_eq!(
        set(
            &mut e,
            json!({"name": "io1", "group": "tag:4", "value": "60"})
        ),
        Ok(true)
    );
    assert_eq!(
        weight(&e, "io1", &GroupKey::Tag(4)).map(|p| p.weight),
        Ok(60)
    );
    assert_eq!(
        set(&mut e, json!({"name": "io1", "group": "tag:4"})),
        Ok(true)
    );
    assert!(
        weight(&e, "io1", &GroupKey::Tag(4)).is_err(),
        "no value detaches"
    );
    assert_eq!(
        set(&mut e, json!({"command": "io2 10:30", "group": "cgroup:9"})),
        Ok(true)
    );
    assert_eq!(
        weight(&e, "io2", &GroupKey::Cgroup(9)).map(|p| (p.min_kib_per_sec, p.max_kib_per_sec)),
        Ok((10, 30))
    );
    assert_eq!(
        set(&mut e, json!({"command": "io2", "group": "cgroup:9"})),
        Ok(true)
    );

    let before = format!(
        "{:?}{:?}{:?}",
        e.groups_of("io0"),
        e.groups_of("io1"),
        e.groups_of("io2")
    );
    for (bad, code) in [
        (json!({"name": "io1", "value": 0}), -22),
        (json!({"name": "io1", "value": -3}), -22),
        (json!({"name": "io1", "value": "1:2:3"}), -22),
        (json!({"name": "io2", "value": "5:99999999999"}), -22),
        (json!({"name": "io1"}), -22),
        (json!({"name": "io1", "group": "tag:77"}), -2),
        (json!({"name": "nosuch", "value": 5}), -19),
        (json!({"command": "io1 5", "value": 5}), -22),
        (json!({"command": "io1 5", "name": "io1"}), -22),
        (json!({"group": "tag:1"}), -22),
        (json!({"command": "io1 5 6"}), -22),
    ] {
        let err = set(&mut e, bad.clone()).expect_err("refused");
        assert_eq!(rpc_code(&err), code, "{bad}: {err}");
        let after = format!(
            "{:?}{:?}{:?}",
            e.groups_of("io0"),
            e.groups_of("io1"),
            e.groups_of("io2")
        );
        assert_eq!(after, before, "{bad} changed the engine");
    }
    let err = decode::<SetSettingsParams>(json!({"name": "io1", "value": 1.5})).expect_err("float");
    assert!(err.contains("an integer weight"), "{err}");
    let err = decode::<SetSettingsParams>(json!({"name": "io1", "value": [1]})).expect_err("array");
    assert!(err.contains("an integer weight"), "{err}");
}

#[test]
fn get_iostat_shape() {
    let mut e = fixture();
    let r = e.device("io0").expect("io0");
    let share = e.share_mut(&r.share).expect("gold");
    let id = share.group_id(r.device, &host1()).expect("id");
    let mut tickets = Vec::new();
    let _ = share.submit(r.device, id, 1u32, Op::Read, 4096, 5, &mut |_, t| {
        tickets.push(t)
    });
    let _ = share.submit(r.device, id, 2u32, Op::Write, 512, 6, &mut |_, t| {
        tickets.push(t)
    });
    let first = tickets[0];
    share.complete(first, 9, &mut |_, _| {});

    let p: GetIostatParams = decode(json!({"name": "io0", "group": HOST1_KEY})).expect("params");
    let reply = handle_get_iostat(&mut e, p).expect("iostat");
    assert_eq!(
        json_of(reply),
        json!({
            "tick_rate": 1_000_000,
            "devices": [{
                "name": "io0", "share": "gold",
                "groups": [{
                    "group": "initiator:nqn.2014-08.org:host1",
                    "read_ios": 1, "read_bytes": 4096, "write_ios": 1, "write_bytes": 512,
                    "other_ios": 0, "dispatched_ios": 2, "dispatched_bytes": 4608,
                    "throttled_ios": 0, "throttled_ticks": 0, "queue_depth": 0,
                    "in_flight": 1, "completed_ios": 1
                }]
            }]
        })
    );
    let all = iostat(&mut e, GetIostatParams::default()).expect("all");
    let names: Vec<(String, usize)> = all
        .devices
        .iter()
        .map(|d| (d.name.clone(), d.groups.len()))
        .collect();
    assert_eq!(
        names,
        [("io0".into(), 2), ("io1".into(), 1), ("io2".into(), 2)]
    );
    let empty = handle_get_iostat(&mut Engine::<u32>::new(7), GetIostatParams::default());
    assert_eq!(
        json_of(empty.expect("empty")),
        json!({"tick_rate": 0, "devices": []})
    );
}

const HOST1_KEY: &str = "initiator:nqn.2014-08.org:host1";

#[test]
fn error_codes_follow_spdk() {
    let cases = [
        (EngineError::NoSuchDevice("x".into()), -19),
        (EngineError::NoSuchShare("x".into()), -19),
        (EngineError::DeviceExists("x".into()), -17),
        (
            EngineError::GroupExists {
                device: "x".into(),
                group: "tag:1".into(),
            },
            -17,
        ),
        (
            EngineError::NoSuchGroup {
                device: "x".into(),
                group: "tag:1".into(),
            },
            -2,
        ),
        (EngineError::Parse("x".into()), -22),
        (EngineError::DefaultGroup("x".into()), -22),
        (
            EngineError::MinAboveMax {
                min_kib_per_sec: 2,
                max_kib_per_sec: 1,
            },
            -22,
        ),
    ];
    for (err, code) in cases {
        assert_eq!(rpc_code(&err), code, "{err:?}");
    }
    assert_eq!(INVALID_PARAMS, -32602);
}

#[test]
fn params_serialize_to_what_they_decode_from() {
    let p = SetSettingsParams {
        name: Some("io0".into()),
        group: Some(host1()),
        value: Some(SettingValue::Text("10:20".into())),
        command: None,
    };
    let v = json_of(&p);
    assert_eq!(
        v,
        json!({"name": "io0", "group": HOST1_KEY, "value": "10:20"})
    );
    assert_eq!(decode::<SetSettingsParams>(v), Ok(p));
    let p = GetDevicesParams {
        share: None,
        format: OutputFormat::Text,
    };
    assert_eq!(json_of(&p), json!({"format": "text"}));
    assert_eq!(json_of(GetDevicesParams::default()), json!({}));
}
