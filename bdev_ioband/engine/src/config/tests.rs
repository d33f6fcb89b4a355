//! Tests of the text language against an engine: applying writes, refusing bad ones without
//! a trace, the renderers' exact output, and the render → parse → replay round trip.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use proptest::prelude::*;

use super::*;
use crate::params::IDLE_GRACE_MAX_US;
use crate::{Engine, EngineError, GroupKey, GroupParams, GroupValue, Op, Policy, ShareParams};

const TICKS_PER_SEC: u64 = 1_000_000;
const HOST1: &str = "nqn.2014-08.org:host1";

fn host1() -> GroupKey {
    GroupKey::Initiator(HOST1.to_owned())
}

/// Share `gold` (weight, io_limit 64) with io0 (initiator host1 at weight 300) and io1;
/// share `silver` (range-bw, capacity 100000 KiB/s, idle grace 500 µs) with io2 (cgroup 7 at
/// 1000:20000).
fn fixture() -> Engine<u32> {
    let mut e = Engine::new(TICKS_PER_SEC);
    let gold = ShareParams {
        io_limit: 64,
        ..ShareParams::default()
    };
    let io0 = e.create_device("io0", "gold", Some(gold)).expect("io0");
    e.create_device("io1", "gold", None).expect("io1");
    let silver = ShareParams {
        policy: Policy::RangeBw,
        capacity_kib_per_sec: 100_000,
        idle_grace_us: 500,
        ..ShareParams::default()
    };
    let io2 = e.create_device("io2", "silver", Some(silver)).expect("io2");
    e.share_mut("gold")
        .expect("gold")
        .attach(io0.device, host1(), Some(GroupValue::Weight(300)))
        .expect("attach host1");
    let range = GroupValue::RangeBw {
        min_kib_per_sec: 1000,
        max_kib_per_sec: 20000,
    };
    e.share_mut("silver")
        .expect("silver")
        .attach(io2.device, GroupKey::Cgroup(7), Some(range))
        .expect("attach cgroup 7");
    e
}

/// Everything the control plane can see: knobs, devices, groups, parameters, counters.
fn snapshot<T>(e: &Engine<T>) -> String {
    let mut s = String::new();
    for share in e.shares() {
        let _ = writeln!(
            s,
            "{} {:?} weight_total={}",
            share.name(),
            share.params(),
            share.weight_total()
        );
        for (idx, device) in share.device_names() {
            let _ = writeln!(s, "  {device}");
            for (key, params, stats) in share.groups_of(idx).expect("listed device") {
                let _ = writeln!(s, "    {key} {params:?} {stats:?}");
            }
        }
    }
    let names: Vec<&str> = e.device_names().collect();
    let _ = writeln!(s, "devices {names:?}");
    s
}

fn group_params(e: &Engine<u32>, device: &str, key: &GroupKey) -> GroupParams {
    let r = e.device(device).expect("device");
    e.share(&r.share)
        .expect("share")
        .group_info(r.device, key)
        .expect("group")
        .0
}

#[test]
fn renders_devices_exactly() {
    let e = fixture();
    let expected =
        "gold policy=weight io_throttle=4 io_limit=64 token=256 carryover=8\n  io0\n  io1\n\
                    silver policy=range-bw io_throttle=4 io_limit=192 capacity=100000 \
                    idle_grace=500\n  io2\n";
    assert_eq!(render_devices(&e, None), Ok(expected.to_owned()));
    assert_eq!(
        render_devices(&e, Some("silver")),
        Ok(
            "silver policy=range-bw io_throttle=4 io_limit=192 capacity=100000 idle_grace=500\n  \
             io2\n"
                .into()
        )
    );
    assert_eq!(
        render_devices(&e, Some("io2")),
        Err(EngineError::NoSuchShare("io2".into()))
    );
    assert_eq!(
        render_devices(&Engine::<u32>::new(1), None),
        Ok(String::new())
    );
}

#[test]
fn renders_settings_exactly() {
    let e = fixture();
    assert_eq!(
        render_settings(&e, &GroupKey::None, None),
        Ok("io0 weight=100\nio1 weight=100\nio2 range-bw=0:0\n".into())
    );
    assert_eq!(
        render_settings(&e, &host1(), None),
        Ok("io0 weight=300\n".into())
    );
    assert_eq!(
        render_settings(&e, &GroupKey::Cgroup(7), None),
        Ok("io2 range-bw=1000:20000\n".into())
    );
    assert_eq!(
        render_settings(&e, &GroupKey::Tag(1), None),
        Ok(String::new())
    );
    assert_eq!(
        render_settings(&e, &GroupKey::None, Some("io1")),
        Ok("io1 weight=100\n".into())
    );
    assert!(matches!(
        render_settings(&e, &GroupKey::Tag(1), Some("io1")),
        Err(EngineError::NoSuchGroup { .. })
    ));
    assert_eq!(
        render_settings(&e, &GroupKey::None, Some("nope")),
        Err(EngineError::NoSuchDevice("nope".into()))
    );
}

#[test]
fn renders_iostat_and_resets_it() {
    let mut e = fixture();
    apply_devices_text(&mut e, "gold io_limit 1").expect("io_limit");
    let r = e.device("io0").expect("io0");
    let share = e.share_mut(&r.share).expect("gold");
    let id = share.group_id(r.device, &host1()).expect("group id");
    let mut sent = Vec::new();
    let mut sink = |io: u32, ticket| sent.push((io, ticket));
    for (io, op, bytes) in [
        (1, Op::Read, 4096),
        (2, Op::Read, 4096),
        (3, Op::Write, 8192),
    ] {
        let _ = share.submit(r.device, id, io, op, bytes, 10, &mut sink);
    }
    assert_eq!(sent.len(), 1, "io_limit 1 lets one I/O through");
    let expected = "io0 gold none 0 0 0 0 0 initiator:nqn.2014-08.org:host1 2 16 1 16 2\n\
                    io1 gold none 0 0 0 0 0\n\
                    io2 silver none 0 0 0 0 0 cgroup:7 0 0 0 0 0\n";
    assert_eq!(render_iostat(&e, None, None), Ok(expected.to_owned()));
    assert_eq!(
        render_iostat(&e, Some("io0"), Some(&host1())),
        Ok("io0 gold initiator:nqn.2014-08.org:host1 2 16 1 16 2\n".into())
    );
    assert_eq!(
        render_iostat(&e, None, Some(&GroupKey::Cgroup(7))),
        Ok("io2 silver cgroup:7 0 0 0 0 0\n".into())
    );

    // `reset` by share name acts on the share's first device, io0; the queue stays.
    apply_devices_text(&mut e, "gold reset").expect("reset");
    assert_eq!(
        render_iostat(&e, Some("io0"), None),
        Ok("io0 gold none 0 0 0 0 0 initiator:nqn.2014-08.org:host1 0 0 0 0 2\n".into())
    );
}

#[test]
fn devices_writes_apply() {
    let mut e = fixture();
    apply_devices_text(&mut e, "io1 io_throttle 8").expect("through a device");
    apply_devices_text(&mut e, "gold token 1000").expect("token");
    apply_devices_text(&mut e, "gold carryover 3").expect("carryover");
    apply_devices_text(&mut e, "silver capacity 0").expect("capacity");
    let gold = *e.share("gold").expect("gold").params();
    assert_eq!(
        (gold.io_throttle, gold.io_limit, gold.token, gold.carryover),
        (8, 64, 1000, 3),
        "io_limit stays, token and carryover are not reset"
    );
    apply_devices_text(&mut e, "gold io_limit 0").expect("io_limit back to default");
    assert_eq!(e.share("gold").expect("gold").params().token, 1000);

    apply_devices_text(&mut e, "io0 idle_grace 2000").expect("idle_grace through a device");
    assert_eq!(e.share("gold").expect("gold").params().idle_grace_us, 2000);
    assert!(render_devices(&e, Some("gold")).expect("gold").starts_with(
        "gold policy=weight io_throttle=8 io_limit=192 token=1000 carryover=3 \
                      idle_grace=2000\n"
    ));
    apply_devices_text(&mut e, "gold idle_grace 1000000").expect("the largest");
    assert_eq!(
        e.share("gold").expect("gold").params().idle_grace_us,
        1_000_000
    );
    apply_devices_text(&mut e, "gold idle_grace 0").expect("back to auto");
    let gold = *e.share("gold").expect("gold").params();
    assert_eq!(
        (gold.idle_grace_us, gold.token, gold.carryover),
        (0, 1000, 3),
        "idle_grace changes nothing else"
    );
    assert!(!render_devices(&e, Some("gold"))
        .expect("gold")
        .contains("idle_grace"));
    assert_eq!(
        e.share("silver").expect("silver").params().idle_grace_us,
        500
    );

    apply_devices_text(&mut e, "gold policy weight-iosize").expect("policy");
    assert_eq!(
        e.share("gold").expect("gold").policy(),
        Policy::WeightIosize
    );
    assert_eq!(
        group_params(&e, "io0", &host1()).weight,
        300,
        "a policy change keeps weights"
    );

    apply_devices_text(&mut e, "io1 attach tag:5").expect("attach");
    assert_eq!(
        group_params(&e, "io1", &GroupKey::Tag(5)),
        GroupParams::default()
    );
    apply_devices_text(&mut e, "io1 weight tag:5:50").expect("weight");
    apply_devices_text(&mut e, "io1 range-bw tag:5:10:20").expect("range under weight");
    let want = GroupParams {
        weight: 50,
        min_kib_per_sec: 10,
        max_kib_per_sec: 20,
    };
    assert_eq!(group_params(&e, "io1", &GroupKey::Tag(5)), want);
    apply_devices_text(&mut e, "io2 weight 7").expect("weight under range-bw");
    assert_eq!(group_params(&e, "io2", &GroupKey::None).weight, 7);
    apply_devices_text(&mut e, "io0 weight initiator:nqn.2014-08.org:host1:301").expect("nqn");
    assert_eq!(group_params(&e, "io0", &host1()).weight, 301);
    apply_devices_text(&mut e, "io1 detach tag:5").expect("detach");
    assert!(e
        .groups_of("io1")
        .expect("io1")
        .iter()
        .all(|(k, _, _)| *k != GroupKey::Tag(5)));

    // A share name addresses its first device for group messages.
    apply_devices_text(&mut e, "gold attach tag:6").expect("attach via share");
    assert!(e
        .groups_of("io0")
        .expect("io0")
        .iter()
        .any(|(k, _, _)| *k == GroupKey::Tag(6)));
}

#[test]
fn a_name_that_is_a_share_and_a_device_names_one_share() {
    let mut e = fixture();
    // A device named like another share is refused (issue #10): a name is both a share
    // and a device only when the device is in that share, so both lookups agree.
    assert!(matches!(
        e.create_device("gold", "silver", None),
        Err(EngineError::NameTaken { .. })
    ));
    e.create_device("bronze", "bronze", None)
        .expect("device bronze");
    apply_devices_text(&mut e, "bronze io_limit 7").expect("share knob");
    assert_eq!(e.share("bronze").expect("bronze").params().io_limit, 7);
    apply_devices_text(&mut e, "bronze attach tag:1").expect("group message");
    assert!(e
        .groups_of("bronze")
        .expect("bronze")
        .iter()
        .any(|(k, _, _)| *k == GroupKey::Tag(1)));
}

/// Found by the fuzzer (fuzz/regressions/text_grammar): a device named `#o` was listed as
/// `#o weight=…` but no write could name it (`#` begins a comment). Such names are refused.
#[test]
fn a_name_that_starts_a_comment_is_refused() {
    let mut e = fixture();
    for (device, share) in [("#o", "gold"), ("io9", "#s")] {
        assert!(
            matches!(
                e.create_device(device, share, None),
                Err(EngineError::InvalidName { .. })
            ),
            "{device} in {share}"
        );
    }
    assert!(parse_settings_listing("#o weight=3").is_err());
    assert!(parse_devices_listing("gold policy=weight io_throttle=4 io_limit=64\n  #o\n").is_err());
    // Inside a name, `#` is an ordinary character.
    e.create_device("io#9", "gold", None).expect("io#9");
    apply_settings_text(&mut e, &GroupKey::Tag(3), "io#9 30").expect("settings write");
    assert_eq!(group_params(&e, "io#9", &GroupKey::Tag(3)).weight, 30);
}

#[test]
fn settings_writes_apply() {
    let mut e = fixture();
    let tag8 = GroupKey::Tag(8);
    apply_settings_text(&mut e, &tag8, "io1 70").expect("attach with a value");
    assert_eq!(group_params(&e, "io1", &tag8).weight, 70);
    apply_settings_text(&mut e, &tag8, "io1 80").expect("set");
    assert_eq!(group_params(&e, "io1", &tag8).weight, 80);
    apply_settings_text(&mut e, &tag8, "io1").expect("detach");
    assert_eq!(render_settings(&e, &tag8, None), Ok(String::new()));
    apply_settings_text(&mut e, &GroupKey::None, "io2 5:50").expect("default group range");
    let want = GroupParams {
        weight: 100,
        min_kib_per_sec: 5,
        max_kib_per_sec: 50,
    };
    assert_eq!(group_params(&e, "io2", &GroupKey::None), want);
}

/// What a refused write must fail with.
type Expect = fn(&EngineError) -> bool;

#[test]
fn bad_writes_change_nothing() {
    let mut e = fixture();
    let before = snapshot(&e);
    let devices_cases: &[(&str, Expect)] = &[
        ("gold frob 1", |e| matches!(e, EngineError::Parse(_))),
        ("gold io_limit -1", |e| {
            matches!(e, EngineError::OutOfRange { .. })
        }),
        ("gold io_limit", |e| matches!(e, EngineError::Parse(_))),
        ("nosuch io_limit 5", |e| {
            matches!(e, EngineError::NoSuchDevice(_))
        }),
        ("nosuch attach tag:1", |e| {
            matches!(e, EngineError::NoSuchDevice(_))
        }),
        ("gold io_throttle 65", |e| {
            matches!(e, EngineError::ThrottleAboveLimit { .. })
        }),
        ("silver capacity 500", |e| {
            matches!(e, EngineError::MinSumExceeded { .. })
        }),
        ("silver idle_grace 1000001", |e| {
            matches!(
                e,
                EngineError::OutOfRange {
                    param: "idle_grace",
                    ..
                }
            )
        }),
        ("io0 idle_grace -1", |e| {
            matches!(e, EngineError::OutOfRange { .. })
        }),
        ("gold idle_grace", |e| matches!(e, EngineError::Parse(_))),
        ("gold idle_grace 1.5", |e| {
            matches!(e, EngineError::Parse(_))
        }),
        ("nosuch idle_grace 5", |e| {
            matches!(e, EngineError::NoSuchDevice(_))
        }),
        ("io2 range-bw cgroup:7:200000:0", |e| {
            matches!(e, EngineError::MinSumExceeded { .. })
        }),
        ("io2 range-bw cgroup:7:10:5", |e| {
            matches!(e, EngineError::MinAboveMax { .. })
        }),
        ("io0 attach initiator:nqn.2014-08.org:host1", |e| {
            matches!(e, EngineError::GroupExists { .. })
        }),
        ("io0 attach none", |e| {
            matches!(e, EngineError::DefaultGroup(_))
        }),
        ("io0 detach -1", |e| {
            matches!(e, EngineError::DefaultGroup(_))
        }),
        ("io0 detach tag:9", |e| {
            matches!(e, EngineError::NoSuchGroup { .. })
        }),
        ("io0 weight tag:9:5", |e| {
            matches!(e, EngineError::NoSuchGroup { .. })
        }),
        ("io0 weight 0", |e| {
            matches!(e, EngineError::OutOfRange { .. })
        }),
    ];
    for (line, expected) in devices_cases {
        let err = apply_devices_text(&mut e, line).expect_err(line);
        assert!(expected(&err), "{line}: {err:?}");
        assert_eq!(snapshot(&e), before, "{line} changed the engine");
    }
    let settings_cases: &[(GroupKey, &str, Expect)] = &[
        (GroupKey::None, "io0 5:2000000000", |e| {
            matches!(e, EngineError::OutOfRange { .. })
        }),
        (GroupKey::None, "io0 10:5", |e| {
            matches!(e, EngineError::MinAboveMax { .. })
        }),
        (GroupKey::None, "io0", |e| {
            matches!(e, EngineError::DefaultGroup(_))
        }),
        (GroupKey::Tag(9), "io0", |e| {
            matches!(e, EngineError::NoSuchGroup { .. })
        }),
        (GroupKey::None, "nosuch 5", |e| {
            matches!(e, EngineError::NoSuchDevice(_))
        }),
        (GroupKey::Cgroup(7), "io2 200000:0", |e| {
            matches!(e, EngineError::MinSumExceeded { .. })
        }),
        (GroupKey::Cgroup(8), "io2 200000:0", |e| {
            matches!(e, EngineError::MinSumExceeded { .. })
        }),
        (GroupKey::None, "io0 1 2", |e| {
            matches!(e, EngineError::Parse(_))
        }),
        (GroupKey::None, "io0 x", |e| {
            matches!(e, EngineError::Parse(_))
        }),
    ];
    for (group, line, expected) in settings_cases {
        let err = apply_settings_text(&mut e, group, line).expect_err(line);
        assert!(expected(&err), "{group} {line}: {err:?}");
        assert_eq!(snapshot(&e), before, "{group} {line} changed the engine");
    }
}

#[test]
fn dump_reproduces_the_fixture() {
    let e = fixture();
    let lines: Vec<String> = dump_writes(&e)
        .expect("dump")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "gold policy weight",
            "gold io_limit 64",
            "gold io_throttle 0",
            "gold token 0",
            "gold carryover 0",
            "gold capacity 0",
            "gold idle_grace 0",
            "io0 weight 100",
            "io0 range-bw none:0:0",
            "io0 attach initiator:nqn.2014-08.org:host1",
            "io0 weight initiator:nqn.2014-08.org:host1:300",
            "io0 range-bw initiator:nqn.2014-08.org:host1:0:0",
            "io1 weight 100",
            "io1 range-bw none:0:0",
            "silver policy range-bw",
            "silver io_limit 0",
            "silver io_throttle 0",
            "silver token 0",
            "silver carryover 0",
            "silver capacity 100000",
            "silver idle_grace 500",
            "io2 weight 100",
            "io2 range-bw none:0:0",
            "io2 attach cgroup:7",
            "io2 weight cgroup:7:100",
            "io2 range-bw cgroup:7:1000:20000",
        ]
    );
}

// ----- the round trip ---------------------------------------------------------------------

#[derive(Debug, Clone)]
struct DeviceSpec {
    name: String,
    share: String,
    /// The default group's parameters, then the other groups'.
    default_group: GroupParams,
    groups: Vec<(GroupKey, GroupParams)>,
}

fn arb_key() -> impl Strategy<Value = GroupKey> {
    prop_oneof![
        (0u32..4).prop_map(|n| GroupKey::Initiator(format!("nqn.2014-08.org.example:host{n}"))),
        (0u32..3)
            .prop_map(|n| GroupKey::Initiator(format!("nqn.2014-08.org.nvmexpress:uuid:{n}:{n}"))),
        (0u64..4).prop_map(GroupKey::Cgroup),
        (0u32..4).prop_map(GroupKey::Tag),
    ]
}

fn arb_group_params() -> impl Strategy<Value = GroupParams> {
    let min = prop_oneof![Just(0u32), 1u32..5000];
    let extra = prop_oneof![Just(None), (0u32..10_000).prop_map(Some)];
    (1u32..=32767, min, extra).prop_map(|(weight, min, extra)| GroupParams {
        weight,
        min_kib_per_sec: min,
        max_kib_per_sec: extra.map_or(0, |x| min + x.max(1)),
    })
}

fn arb_share_params() -> impl Strategy<Value = (ShareParams, Option<u32>)> {
    let policy = prop_oneof![
        Just(Policy::Weight),
        Just(Policy::WeightIosize),
        Just(Policy::RangeBw)
    ];
    (
        policy,
        0u32..50,
        prop_oneof![Just(None), (0u32..300).prop_map(Some)],
        prop_oneof![Just(0u32), 1u32..5000],
        prop_oneof![Just(0u32), 1u32..10],
        1u32..=256,
        prop_oneof![Just(None), (0u32..50_000).prop_map(Some)],
        prop_oneof![Just(0u32), Just(IDLE_GRACE_MAX_US), 1u32..IDLE_GRACE_MAX_US],
    )
        .prop_map(
            |(policy, io_throttle, io_limit, token, carryover, nr_requests, spare, idle_grace)| {
                // A set io_throttle stays within the io_limit in force, the default too.
                let derived = (nr_requests * 3 / 2).max(1);
                let io_throttle = if io_limit.is_none() {
                    io_throttle.min(derived)
                } else {
                    io_throttle
                };
                let params = ShareParams {
                    policy,
                    io_throttle,
                    io_limit: io_limit.map_or(0, |l| io_throttle + l),
                    token,
                    carryover,
                    capacity_kib_per_sec: 0,
                    idle_grace_us: idle_grace,
                    nr_requests,
                };
                (params, spare)
            },
        )
}

fn arb_world() -> impl Strategy<Value = (Vec<DeviceSpec>, Vec<(ShareParams, Option<u32>)>)> {
    const SHARES: [&str; 3] = ["a", "b", "c"];
    const DEVICES: [&str; 5] = ["a", "b", "c", "d", "e"];
    let device = (
        0usize..SHARES.len(),
        arb_group_params(),
        prop::collection::btree_map(arb_key(), arb_group_params(), 0..4),
    );
    (
        prop::sample::subsequence(DEVICES.to_vec(), 1..=DEVICES.len()),
        prop::collection::vec(device, DEVICES.len()),
        prop::collection::vec(arb_share_params(), SHARES.len()),
    )
        .prop_map(|(names, devices, shares)| {
            // A device may have a share's name only as a member of that share.
            let specs = names
                .into_iter()
                .zip(devices)
                .map(|(name, (share, default_group, groups))| DeviceSpec {
                    name: name.to_owned(),
                    share: SHARES
                        .into_iter()
                        .find(|s| *s == name)
                        .unwrap_or(SHARES[share])
                        .to_owned(),
                    default_group,
                    groups: groups.into_iter().collect(),
                })
                .collect();
            (specs, shares)
        })
}

/// Builds the engine through the engine's own calls (not through the text language).
fn build(devices: &[DeviceSpec], shares: &[(ShareParams, Option<u32>)]) -> Engine<u32> {
    let mut e = Engine::new(TICKS_PER_SEC);
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let members: Vec<&DeviceSpec> = devices.iter().filter(|d| d.share == *name).collect();
        let min_sum: u32 = members
            .iter()
            .flat_map(|d| std::iter::once(&d.default_group).chain(d.groups.iter().map(|(_, p)| p)))
            .map(|p| p.min_kib_per_sec)
            .sum();
        let (mut params, spare) = shares[i];
        params.capacity_kib_per_sec = spare.map_or(0, |s| min_sum + s);
        for (n, d) in members.iter().enumerate() {
            let r = e
                .create_device(&d.name, name, (n == 0).then_some(params))
                .expect("create");
            let share = e.share_mut(name).expect("share");
            share
                .set_group(r.device, &GroupKey::None, d.default_group)
                .expect("default group");
            for (key, p) in &d.groups {
                share.attach(r.device, key.clone(), None).expect("attach");
                share.set_group(r.device, key, *p).expect("set group");
            }
        }
    }
    e
}

fn all_keys<T>(e: &Engine<T>) -> BTreeSet<GroupKey> {
    e.device_names()
        .flat_map(|d| {
            e.groups_of(d)
                .expect("device")
                .into_iter()
                .map(|(k, _, _)| k)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Render `devices` and `settings` (for every group), parse them back as writes, replay
    /// them into a fresh engine with the same devices: the rendered state is the same.
    #[test]
    fn rendered_state_replays((devices, shares) in arb_world()) {
        let original = build(&devices, &shares);
        let devices_text = render_devices(&original, None).expect("render devices");
        let keys = all_keys(&original);
        let settings: Vec<(GroupKey, String)> = keys
            .iter()
            .map(|k| (k.clone(), render_settings(&original, k, None).expect("render settings")))
            .collect();

        let mut replayed = Engine::<u32>::new(TICKS_PER_SEC);
        for listing in parse_devices_listing(&devices_text).expect("parse devices") {
            for device in &listing.devices {
                replayed.create_device(device, &listing.share, None).expect("create");
            }
            for write in listing.writes() {
                apply_devices_write(&mut replayed, &write).expect("devices write");
            }
        }
        for (key, text) in &settings {
            for line in parse_settings_listing(text).expect("parse settings") {
                apply_settings_write(&mut replayed, key, &line.to_write()).expect("settings write");
            }
        }

        prop_assert_eq!(render_devices(&replayed, None).expect("render"), devices_text);
        prop_assert_eq!(all_keys(&replayed), keys);
        for (key, text) in &settings {
            prop_assert_eq!(&render_settings(&replayed, key, None).expect("render"), text);
        }
    }

    /// The dump, as text, replayed into fresh shares with the same devices, reproduces every
    /// knob and every group exactly.
    #[test]
    fn dump_replays_exactly((devices, shares) in arb_world()) {
        let original = build(&devices, &shares);
        let mut replayed = Engine::<u32>::new(TICKS_PER_SEC);
        for share in original.shares() {
            let nr_requests = share.params().nr_requests;
            let params = ShareParams { nr_requests, ..ShareParams::default() };
            for (n, (_, device)) in share.device_names().enumerate() {
                let params = (n == 0).then_some(params);
                replayed.create_device(device, share.name(), params).expect("create");
            }
        }
        for write in dump_writes(&original).expect("dump") {
            let line = write.to_string();
            apply_devices_text(&mut replayed, &line)
                .map_err(|e| TestCaseError::fail(format!("{line}: {e}")))?;
        }
        prop_assert_eq!(snapshot(&replayed), snapshot(&original));
    }
}
