//! Tests of bound groups (issue #12): one ioband device per tenant over one base, each
//! bound to the tenant's group of one share, addressed by the tenant's name.

use std::collections::VecDeque;

use serde_json::{from_value, json, Value};

use super::rpc::{
    config_params, handle_get_iostat, handle_get_settings, handle_set_device, handle_set_settings,
    iostat, rpc_code, CreateParams, GetIostatParams, GetIostatReply, GetSettingsParams,
    SetDeviceParams, SetSettingsParams, INVALID_PARAMS,
};
use super::{apply_devices_text, dump_writes, render_iostat, render_settings};
use crate::{Engine, EngineError, GroupKey, GroupValue, Op, Ticket};

const HOSTS: [&str; 3] = [
    "nqn.2014-08.org.example:host1",
    "nqn.2014-08.org.example:host2",
    "nqn.2014-08.org.example:host3",
];

fn host(i: usize) -> GroupKey {
    GroupKey::Initiator(HOSTS[i].to_owned())
}

/// Share `tenants` with t0..t2 bound to host1..host3 (weights 4:2:1 set by group name,
/// through the share's name), and `other` with a plain device.
fn fixture() -> Engine<u32> {
    let mut e = Engine::new(1_000_000);
    for (i, w) in [4, 2, 1].into_iter().enumerate() {
        let name = format!("t{i}");
        e.create_device_bound(&name, "tenants", None, Some(&host(i)))
            .expect("create bound");
        let p: SetSettingsParams = from_value(json!({
            "name": "tenants", "group": host(i).to_string(), "value": w
        }))
        .expect("params");
        handle_set_settings(&mut e, p).expect("set by share and group");
    }
    e.create_device("plain", "other", None).expect("plain");
    e
}

/// What the control plane shows of an engine: every setting and the share listing.
fn snapshot(e: &mut Engine<u32>) -> Value {
    let settings = handle_get_settings(e, GetSettingsParams::default()).expect("settings");
    let devices = super::rpc::handle_get_devices(e, Default::default()).expect("devices");
    json!([settings, devices])
}

fn json_of<R: serde::Serialize>(r: R) -> Value {
    serde_json::to_value(r).expect("serializable")
}

#[test]
fn a_bound_device_s_groups_are_the_tenant_s_name() {
    let mut e = fixture();
    let reply = handle_get_settings(&mut e, GetSettingsParams::default()).expect("settings");
    let rows: Vec<(String, String, u64)> = json_of(reply)
        .as_array()
        .expect("array")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["group"].as_str().unwrap_or_default().to_owned(),
                s["weight"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let want: Vec<(String, String, u64)> = vec![
        ("plain".into(), "none".into(), 100),
        ("t0".into(), host(0).to_string(), 4),
        ("t1".into(), host(1).to_string(), 2),
        ("t2".into(), host(2).to_string(), 1),
    ];
    assert_eq!(rows, want);
    assert_eq!(e.bound_group("t1"), Ok(Some(host(1))));
    assert_eq!(e.bound_group("plain"), Ok(None));

    // iostat, JSON and text, by name; filtered by the share, or by the group alone.
    let p = GetIostatParams {
        name: Some("tenants".into()),
        ..Default::default()
    };
    let stats = iostat(&mut e, p).expect("iostat");
    let groups: Vec<(String, Vec<String>)> = stats
        .devices
        .iter()
        .map(|d| {
            let keys = d.groups.iter().map(|g| g.group.to_string()).collect();
            (d.name.clone(), keys)
        })
        .collect();
    assert_eq!(
        groups,
        (0..3)
            .map(|i| (format!("t{i}"), vec![host(i).to_string()]))
            .collect::<Vec<_>>()
    );
    let text = render_iostat(&e, None, Some(&host(2))).expect("text");
    assert_eq!(text, format!("t2 tenants {} 0 0 0 0 0\n", host(2)));
    let p: GetIostatParams = from_value(json!({"format": "text"})).expect("params");
    let GetIostatReply::Text(all) = handle_get_iostat(&mut e, p).expect("text") else {
        panic!("text asked for");
    };
    assert_eq!(all.lines().count(), 4, "{all}");
    assert!(
        all.lines()
            .all(|l| !l.contains(" none ") || l.starts_with("plain ")),
        "{all}"
    );

    // `none` selects each device's default group: on a bound device, its bound group.
    assert_eq!(
        render_settings(&e, &GroupKey::None, None).expect("none"),
        "plain weight=100\nt0 weight=4\nt1 weight=2\nt2 weight=1\n"
    );
}

#[test]
fn io_through_a_bound_device_counts_to_its_group_and_shares_are_exact() {
    let mut e = fixture();
    let r: Vec<_> = (0..3)
        .map(|i| e.device(&format!("t{i}")).expect("device"))
        .collect();
    let share_id = r[0].share_id;
    let share = e.share_by_id_mut(share_id).expect("share");
    let p = crate::ShareParams {
        io_limit: 4,
        io_throttle: 4,
        ..*share.params()
    };
    share.set_params(p).expect("knobs");
    // Untagged I/O, and I/O whose tag has no group, go to the bound group.
    let untagged: Vec<_> = r
        .iter()
        .map(|d| share.group_id(d.device, &GroupKey::None).expect("id"))
        .collect();
    for (d, id) in r.iter().zip(&untagged) {
        assert_eq!(share.group_id(d.device, &GroupKey::Tag(7)), Ok(*id));
    }
    // Every tenant backlogged; the base completes in order.
    let mut in_flight: VecDeque<Ticket> = VecDeque::new();
    let mut now = 0;
    for n in 0..600u32 {
        let i = (n % 3) as usize;
        let _ = share.submit(
            r[i].device,
            untagged[i],
            n,
            Op::Read,
            4096,
            now,
            &mut |_, t| in_flight.push_back(t),
        );
    }
    let mut served = [0u64; 3];
    for _ in 0..350 {
        now += 10;
        let Some(t) = in_flight.pop_front() else {
            break;
        };
        let mut out = Vec::new();
        share.complete(t, now, &mut |io, t| out.push((io, t)));
        for (io, t) in out {
            served[io as usize % 3] += 1;
            in_flight.push_back(t);
        }
    }
    // 4:2:1 of what was served (about 350), within two I/Os each (fair queuing's bound).
    let total: u64 = served.iter().sum();
    assert!(total >= 340, "{served:?}");
    for (got, w) in served.iter().zip([4u64, 2, 1]) {
        assert!((got * 7).abs_diff(total * w) <= 14, "{served:?}");
    }
    let stats = iostat(&mut e, GetIostatParams::default()).expect("iostat");
    let t0 = &stats.devices[1];
    assert_eq!((t0.name.as_str(), t0.groups.len()), ("t0", 1));
    assert_eq!(t0.groups[0].group, host(0));
    assert_eq!(t0.groups[0].read_ios, 200);
    assert!(t0.groups[0].dispatched_ios >= served[0]);
}

#[test]
fn bad_bindings_are_invalid_params_and_change_nothing() {
    let mut e = fixture();
    e.write_setting("plain", &GroupKey::Tag(9), Some(GroupValue::Weight(5)))
        .expect("attach tag:9 to plain");
    let before = snapshot(&mut e);
    let cases: Vec<(&str, Result<_, EngineError>)> = vec![
        (
            "bound twice",
            e.create_device_bound("t9", "tenants", None, Some(&host(1))),
        ),
        (
            "bound where attached",
            e.create_device_bound("p2", "other", None, Some(&GroupKey::Tag(9))),
        ),
        (
            "none bound",
            e.create_device_bound("t9", "tenants", None, Some(&GroupKey::None)),
        ),
    ];
    for (what, r) in cases {
        let err = r.expect_err(what);
        assert!(
            matches!(err, EngineError::Binding { .. }),
            "{what}: {err:?}"
        );
        assert_eq!(rpc_code(&err), INVALID_PARAMS, "{what}");
    }
    let msg = e
        .create_device_bound("t9", "tenants", None, Some(&host(1)))
        .expect_err("twice")
        .to_string();
    assert_eq!(
        msg,
        format!(
            "group '{}' is bound to ioband bdev 't1' of share 'tenants' already",
            host(1)
        )
    );
    // Attach a bound group to another device of its share; detach a bound group.
    let attach = e.write_setting("t0", &host(1), Some(GroupValue::Weight(3)));
    assert!(
        matches!(attach, Err(EngineError::Binding { .. })),
        "{attach:?}"
    );
    let detach = e.write_setting("t1", &host(1), None);
    assert!(
        matches!(detach, Err(EngineError::Binding { .. })),
        "{detach:?}"
    );
    let text = apply_devices_text(&mut e, &format!("t1 detach {}", host(1)));
    assert!(matches!(text, Err(EngineError::Binding { .. })), "{text:?}");
    let again = apply_devices_text(&mut e, &format!("t1 attach {}", host(1)));
    assert!(
        matches!(again, Err(EngineError::GroupExists { .. })),
        "{again:?}"
    );
    // A create's params: `none` is refused before any state is looked at.
    let p: CreateParams = from_value(json!({
        "name": "t9", "base_bdev_name": "B", "share": "tenants", "group": "none"
    }))
    .expect("decodes");
    let err = p.validate().expect_err("none");
    assert_eq!(rpc_code(&err), INVALID_PARAMS);
    // A malformed group does not decode (the host answers -32602 naming the field).
    let bad = from_value::<CreateParams>(json!({
        "name": "t9", "base_bdev_name": "B", "group": "initiator:"
    }));
    assert!(bad.is_err());
    assert!(e.device("t9").is_err() && e.device("p2").is_err());
    assert_eq!(snapshot(&mut e), before);

    // The same tenant may be bound in another share (a host with namespaces on two bases).
    e.create_device_bound("o1", "other", None, Some(&host(1)))
        .expect("another share");
}

#[test]
fn a_tenant_is_addressed_by_the_share_and_its_name() {
    let mut e = fixture();
    // set_settings by share name + group, get_settings by group alone or by share name.
    let p: SetSettingsParams = from_value(json!({
        "name": "tenants", "group": host(2).to_string(), "value": "0:5000"
    }))
    .expect("params");
    handle_set_settings(&mut e, p).expect("range by share");
    let p: GetSettingsParams = from_value(json!({"group": host(2).to_string()})).expect("params");
    let got = json_of(handle_get_settings(&mut e, p).expect("by group"));
    assert_eq!(got[0]["name"], "t2");
    assert_eq!(
        (
            got[0]["weight"].as_u64(),
            got[0]["max_kib_per_sec"].as_u64()
        ),
        (Some(1), Some(5000))
    );
    // The settings write language and the devices write language, by share name.
    let p: SetSettingsParams = from_value(json!({
        "command": "tenants 7", "group": host(2).to_string()
    }))
    .expect("params");
    handle_set_settings(&mut e, p).expect("settings text by share");
    let p: SetDeviceParams = from_value(json!({
        "command": format!("tenants weight {}:9", host(1))
    }))
    .expect("params");
    handle_set_device(&mut e, p).expect("devices text by share");
    assert_eq!(
        render_settings(&e, &host(1), Some("tenants")).expect("by share"),
        "t1 weight=9\n"
    );
    assert_eq!(
        render_settings(&e, &host(2), None).expect("t2"),
        "t2 weight=7\n"
    );
    // By the bound device's own name, `none` or the group's name reach the same group.
    e.write_setting("t0", &GroupKey::None, Some(GroupValue::Weight(40)))
        .expect("none on t0");
    assert_eq!(
        render_settings(&e, &host(0), None).expect("t0"),
        "t0 weight=40\n"
    );
    // A share without the group, a name that is nothing.
    let p: SetSettingsParams = from_value(json!({
        "name": "tenants", "group": "tag:5", "value": 3
    }))
    .expect("params");
    let err = handle_set_settings(&mut e, p).expect_err("no such group in share");
    assert!(matches!(err, EngineError::NoSuchGroup { .. }), "{err:?}");
    let p: SetSettingsParams = from_value(json!({
        "name": "nothing", "group": host(0).to_string(), "value": 3
    }))
    .expect("params");
    let err = handle_set_settings(&mut e, p).expect_err("nothing");
    assert!(matches!(err, EngineError::NoSuchDevice(_)), "{err:?}");
    let p: GetIostatParams = from_value(json!({"name": "tenants", "group": "tag:5"})).expect("p");
    assert!(matches!(
        iostat(&mut e, p),
        Err(EngineError::NoSuchGroup { .. })
    ));
}

#[test]
fn saved_config_and_devices_writes_round_trip_bound_groups() {
    let mut e = fixture();
    e.write_setting("t1", &GroupKey::Tag(3), Some(GroupValue::Weight(11)))
        .expect("a tag beside the bound group");
    let before = snapshot(&mut e);

    // save_config: each device's create (with its group) and its settings.
    let mut again = Engine::<u32>::new(1_000_000);
    for name in ["t0", "t1", "t2", "plain"] {
        let (create, settings) = config_params(&e, name, "Base0").expect("config");
        let create: CreateParams = from_value(json_of(&create)).expect("create decodes");
        if name != "plain" {
            assert_eq!(create.group, e.bound_group(name).expect("bound"));
        }
        create.validate().expect("valid");
        again
            .create_device_bound(
                &create.name,
                create.share_name(),
                create.share_params(),
                create.group.as_ref(),
            )
            .expect("create");
        for s in settings {
            let s: SetSettingsParams = from_value(json_of(&s)).expect("settings decode");
            handle_set_settings(&mut again, s).expect("settings");
        }
    }
    assert_eq!(snapshot(&mut again), before);

    // The devices writes replay into devices created bound as they were.
    let mut replayed = Engine::<u32>::new(1_000_000);
    for name in ["t0", "t1", "t2", "plain"] {
        let r = e.device(name).expect("device");
        let bound = e.bound_group(name).expect("bound");
        replayed
            .create_device_bound(name, &r.share, None, bound.as_ref())
            .expect("create");
    }
    for w in dump_writes(&e).expect("writes") {
        apply_devices_text(&mut replayed, &w.to_string())
            .unwrap_or_else(|err| panic!("{w}: {err}"));
    }
    assert_eq!(snapshot(&mut replayed), before);
}

#[test]
fn a_replica_classifies_to_the_bound_group() {
    let mut e = fixture();
    e.write_setting("t1", &GroupKey::Tag(3), Some(GroupValue::Weight(11)))
        .expect("tag");
    let owner = e.share("tenants").expect("share");
    let mut replica: crate::Share<u32> =
        crate::Share::new("tenants", *owner.params(), 1_000_000).expect("replica");
    assert!(replica.mirror(&owner.layout()).is_empty());
    assert_eq!(replica.layout(), owner.layout());
    for i in 0..3 {
        let d = owner.device_by_name(&format!("t{i}")).expect("device");
        assert_eq!(replica.bound_group(d), Ok(Some(&host(i))));
        for key in [GroupKey::None, GroupKey::Tag(3), GroupKey::Tag(4), host(i)] {
            assert_eq!(
                replica.group_id(d, &key),
                owner.group_id(d, &key),
                "t{i} {key}"
            );
        }
    }
    let t1 = owner.device_by_name("t1").expect("t1");
    assert_ne!(
        replica.group_id(t1, &GroupKey::Tag(3)),
        replica.group_id(t1, &GroupKey::None)
    );
    // Bad bindings are refused on a replica too (its device tables are the owner's).
    assert!(matches!(
        replica.attach(t1, host(0), None),
        Err(EngineError::Binding { .. })
    ));
}
