//! Tests of the write and listing parsers: acceptance, rejection, round trips.

use super::*;
use proptest::prelude::*;

fn cmd(line: &str) -> DeviceCommand {
    match DevicesWrite::parse(line) {
        Ok(w) => w.command,
        Err(e) => panic!("'{line}' should parse: {e}"),
    }
}

fn nqn(name: &str) -> GroupKey {
    GroupKey::Initiator(name.to_owned())
}

#[test]
fn devices_writes_parse() {
    assert_eq!(
        DevicesWrite::parse("share1 io_limit 256"),
        Ok(DevicesWrite {
            target: "share1".into(),
            command: DeviceCommand::IoLimit(256)
        })
    );
    assert_eq!(
        cmd("s policy default"),
        DeviceCommand::Policy(Policy::Weight)
    );
    assert_eq!(
        cmd("s policy weight-iosize"),
        DeviceCommand::Policy(Policy::WeightIosize)
    );
    assert_eq!(
        cmd(" s\tpolicy  range-bw \n"),
        DeviceCommand::Policy(Policy::RangeBw)
    );
    assert_eq!(cmd("s io_throttle 0"), DeviceCommand::IoThrottle(0));
    assert_eq!(cmd("s io_throttle 32767"), DeviceCommand::IoThrottle(32767));
    assert_eq!(cmd("s token 2147483647"), DeviceCommand::Token(2147483647));
    assert_eq!(cmd("s carryover 3"), DeviceCommand::Carryover(3));
    assert_eq!(
        cmd("s capacity 1000000"),
        DeviceCommand::Capacity(1_000_000)
    );
    assert_eq!(cmd("s idle_grace 0"), DeviceCommand::IdleGrace(0));
    assert_eq!(cmd("s idle_grace 250"), DeviceCommand::IdleGrace(250));
    assert_eq!(
        cmd("s idle_grace 1000000"),
        DeviceCommand::IdleGrace(IDLE_GRACE_MAX_US)
    );
    assert!(DeviceCommand::IdleGrace(0).is_share_knob());
    assert_eq!(DeviceCommand::IdleGrace(7).to_string(), "idle_grace 7");
    assert_eq!(
        cmd("d attach cgroup:42"),
        DeviceCommand::Attach(GroupKey::Cgroup(42))
    );
    assert_eq!(
        cmd("d detach tag:7"),
        DeviceCommand::Detach(GroupKey::Tag(7))
    );
    assert_eq!(cmd("d attach -1"), DeviceCommand::Attach(GroupKey::None));
    assert_eq!(cmd("d reset"), DeviceCommand::Reset);
    assert_eq!(
        cmd("d weight 300"),
        DeviceCommand::Weight {
            group: GroupKey::None,
            weight: 300
        }
    );
    for default in ["none", "default", "-1", ""] {
        assert_eq!(
            cmd(&format!("d weight {default}:5")),
            DeviceCommand::Weight {
                group: GroupKey::None,
                weight: 5
            }
        );
    }
    assert_eq!(
        cmd("d range-bw 100:200"),
        DeviceCommand::RangeBw {
            group: GroupKey::None,
            min_kib_per_sec: 100,
            max_kib_per_sec: 200
        }
    );
    assert_eq!(
        cmd("d range-bw -1:0:0"),
        DeviceCommand::RangeBw {
            group: GroupKey::None,
            min_kib_per_sec: 0,
            max_kib_per_sec: 0
        }
    );
    assert_eq!(
        cmd("d range-bw tag:3:500:0"),
        DeviceCommand::RangeBw {
            group: GroupKey::Tag(3),
            min_kib_per_sec: 500,
            max_kib_per_sec: 0
        }
    );
}

#[test]
fn initiator_names_keep_their_colons() {
    assert_eq!(
        cmd("d weight initiator:nqn.2014-08.org:host1:300"),
        DeviceCommand::Weight {
            group: nqn("nqn.2014-08.org:host1"),
            weight: 300
        }
    );
    assert_eq!(
        cmd("d range-bw initiator:nqn.2014-08.org.nvmexpress:uuid:1234:10:20"),
        DeviceCommand::RangeBw {
            group: nqn("nqn.2014-08.org.nvmexpress:uuid:1234"),
            min_kib_per_sec: 10,
            max_kib_per_sec: 20
        }
    );
    assert_eq!(
        cmd("d attach initiator:nqn.2014-08.org:host1"),
        DeviceCommand::Attach(nqn("nqn.2014-08.org:host1"))
    );
}

#[test]
fn devices_writes_are_refused_with_typed_errors() {
    let parse = |line: &str| DevicesWrite::parse(line).expect_err(line);
    let is_parse = |line: &str| assert!(matches!(parse(line), EngineError::Parse(_)), "{line}");
    for line in [
        "",
        "   ",
        "share",
        "share io_limit",
        "share io_limit 1 2",
        "share reset now",
        "share frobnicate 1",
        "share type cgroup",
        "share io_limit ten",
        "share io_limit 0x10",
        "share io_limit 1.5",
        "share idle_grace",
        "share idle_grace 1ms",
        "share idle_grace 0x10",
        "share idle_grace 1 2",
        "share io_limit 99999999999999999999",
        "share policy fifo",
        "d weight initiator:x:",
        "d weight 10:",
        "d range-bw 10",
        "d range-bw 1:2:3:4:5",
        "d attach user:1",
        "d attach cgroup:-1",
        "d weight tag:4294967296:10",
        "d attach 42",
    ] {
        is_parse(line);
    }
    let out_of_range = |line: &str, want: &str, value: i64| match parse(line) {
        EngineError::OutOfRange {
            param, value: v, ..
        } => {
            assert_eq!((param, v), (want, value), "{line}")
        }
        other => panic!("{line}: {other:?}"),
    };
    out_of_range("s io_throttle 32768", "io_throttle", 32768);
    out_of_range("s io_limit -1", "io_limit", -1);
    out_of_range("s token -5", "token", -5);
    out_of_range("s token 2147483648", "token", 2147483648);
    out_of_range("s capacity 4294967296", "capacity", 4294967296);
    out_of_range("s idle_grace 1000001", "idle_grace", 1_000_001);
    out_of_range("s idle_grace -1", "idle_grace", -1);
    out_of_range("s idle_grace 4294967296", "idle_grace", 4294967296);
    out_of_range("d weight 0", "weight", 0);
    out_of_range("d weight tag:1:-3", "weight", -3);
    out_of_range("d weight 32768", "weight", 32768);
    out_of_range("d range-bw none:1073741824:0", "range-bw min", 1073741824);
    out_of_range("d range-bw none:0:-1", "range-bw max", -1);
    assert_eq!(
        parse("d range-bw tag:1:20:10"),
        EngineError::MinAboveMax {
            min_kib_per_sec: 20,
            max_kib_per_sec: 10
        }
    );
    assert!(matches!(
        parse("d weight initiator::5"),
        EngineError::InvalidName { .. }
    ));
    let long = "x".repeat(300);
    assert!(matches!(
        parse(&format!("{long} reset")),
        EngineError::InvalidName { .. }
    ));
}

#[test]
fn errors_say_what_to_do() {
    let msg = DevicesWrite::parse("s frob 1")
        .expect_err("unknown")
        .to_string();
    assert!(
        msg.contains("unknown parameter 'frob'") && msg.contains("io_throttle"),
        "{msg}"
    );
    let msg = DevicesWrite::parse("s io_limit")
        .expect_err("no value")
        .to_string();
    assert!(msg.contains("'io_limit' needs a value"), "{msg}");
    let msg = DevicesWrite::parse("s idle_grace")
        .expect_err("no value")
        .to_string();
    assert!(
        msg.contains("'idle_grace' needs a value") && msg.contains("idle_grace,"),
        "{msg}"
    );
    let msg = DevicesWrite::parse("s idle_grace 2000000")
        .expect_err("range")
        .to_string();
    assert_eq!(msg, "idle_grace = 2000000 is out of range (0..=1000000)");
    let msg = DevicesWrite::parse("s io_limit x")
        .expect_err("nan")
        .to_string();
    assert_eq!(
        msg,
        "parse error: io_limit 'x' is not a decimal number (expected 0..=32767)"
    );
    let msg = DevicesWrite::parse("s io_limit 40000")
        .expect_err("range")
        .to_string();
    assert_eq!(msg, "io_limit = 40000 is out of range (0..=32767)");
}

#[test]
fn settings_writes_parse_and_refuse() {
    assert_eq!(
        SettingsWrite::parse("dev0 300"),
        Ok(SettingsWrite {
            device: "dev0".into(),
            value: Some(GroupValue::Weight(300))
        })
    );
    assert_eq!(
        SettingsWrite::parse("dev0 10:0\n"),
        Ok(SettingsWrite {
            device: "dev0".into(),
            value: Some(GroupValue::RangeBw {
                min_kib_per_sec: 10,
                max_kib_per_sec: 0
            })
        })
    );
    assert_eq!(
        SettingsWrite::parse("dev0"),
        Ok(SettingsWrite {
            device: "dev0".into(),
            value: None
        })
    );
    for bad in ["", "dev0 1 2", "dev0 w", "dev0 1:2:3", "dev0 :5", "dev0 5:"] {
        assert!(
            matches!(SettingsWrite::parse(bad), Err(EngineError::Parse(_))),
            "{bad}"
        );
    }
    for bad in ["dev0 0", "dev0 -1", "dev0 40000", "dev0 1:2147483647"] {
        assert!(
            matches!(
                SettingsWrite::parse(bad),
                Err(EngineError::OutOfRange { .. })
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        SettingsWrite::parse("dev0 9:8"),
        Err(EngineError::MinAboveMax { .. })
    ));
}

#[test]
fn listings_parse_back() {
    let text = "s1 policy=weight io_throttle=4 io_limit=192 token=768 carryover=2\n  a\n  b\n\
                s2 policy=range-bw io_throttle=4 io_limit=10 capacity=5000 idle_grace=250\n  c\n\
                s3 policy=weight io_throttle=4 io_limit=10 token=40 carryover=51 \
                idle_grace=1000000\n";
    let listings = parse_devices_listing(text).expect("listing parses");
    assert_eq!(listings.len(), 3);
    assert_eq!(listings[0].devices, ["a", "b"]);
    assert_eq!(
        (listings[0].token, listings[0].carryover),
        (Some(768), Some(2))
    );
    assert_eq!(listings[0].idle_grace_us, 0, "not shown: auto");
    assert_eq!(listings[1].capacity_kib_per_sec, 5000);
    assert_eq!(listings[1].idle_grace_us, 250);
    assert_eq!(listings[2].idle_grace_us, IDLE_GRACE_MAX_US);
    assert_eq!(
        listings[1]
            .writes()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "s2 policy range-bw",
            "s2 io_limit 10",
            "s2 io_throttle 4",
            "s2 capacity 5000",
            "s2 idle_grace 250",
        ]
    );
    // idle_grace=0 is accepted on input (auto) and not shown again.
    let auto = parse_devices_listing("s policy=weight io_throttle=1 io_limit=1 idle_grace=0\n")
        .expect("explicit auto");
    assert_eq!(auto[0].idle_grace_us, 0);
    assert_eq!(
        auto[0].to_string(),
        "s policy=weight io_throttle=1 io_limit=1\n"
    );
    assert_eq!(
        listings.iter().map(|l| l.to_string()).collect::<String>(),
        text
    );

    for bad in [
        "  a\n",
        "s policy=weight io_limit=1\n",
        "s policy=weight io_throttle=1 io_limit=1 io_limit=2\n",
        "s policy=weight io_throttle=1 io_limit=1 colour=red\n",
        "s policy=weight io_throttle=1 io_limit=1 token\n",
        "s policy=weight io_throttle=1 io_limit=1 idle_grace=1 idle_grace=2\n",
        "s policy=weight io_throttle=1 io_limit=1 idle_grace=soon\n",
        "s policy=weight io_throttle=1 io_limit=1 idle_grace_us=5\n",
    ] {
        assert!(
            matches!(parse_devices_listing(bad), Err(EngineError::Parse(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        parse_devices_listing("s policy=weight io_throttle=1 io_limit=1 idle_grace=1000001\n"),
        Err(EngineError::OutOfRange {
            param: "idle_grace",
            ..
        })
    ));

    let text = "a weight=100\nb range-bw=10:20\n";
    let lines = parse_settings_listing(text).expect("settings listing parses");
    assert_eq!(lines[1].to_write().to_string(), "b 10:20");
    assert_eq!(
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        text
    );
    for bad in [
        "a\n",
        "a weight=0\n",
        "a colour=red\n",
        "a range-bw=5\n",
        "a b c\n",
    ] {
        assert!(parse_settings_listing(bad).is_err(), "{bad}");
    }
}

fn arb_group() -> impl Strategy<Value = GroupKey> {
    prop_oneof![
        Just(GroupKey::None),
        "[a-z0-9.:-]{1,40}".prop_map(GroupKey::Initiator),
        any::<u64>().prop_map(GroupKey::Cgroup),
        any::<u32>().prop_map(GroupKey::Tag),
    ]
}

fn arb_command() -> impl Strategy<Value = DeviceCommand> {
    let range = (0..=RANGE_BW_MAX_KIB_PER_SEC, 0..=RANGE_BW_MAX_KIB_PER_SEC).prop_map(|(a, b)| {
        if b == 0 {
            (a, 0)
        } else {
            (a.min(b), a.max(b))
        }
    });
    prop_oneof![
        prop_oneof![
            Just(Policy::Weight),
            Just(Policy::WeightIosize),
            Just(Policy::RangeBw)
        ]
        .prop_map(DeviceCommand::Policy),
        (0..=SHORT_MAX).prop_map(DeviceCommand::IoThrottle),
        (0..=SHORT_MAX).prop_map(DeviceCommand::IoLimit),
        (0..=TOKEN_MAX).prop_map(DeviceCommand::Token),
        (0..=TOKEN_MAX).prop_map(DeviceCommand::Carryover),
        (0..=TOKEN_MAX).prop_map(DeviceCommand::Capacity),
        (0..=IDLE_GRACE_MAX_US).prop_map(DeviceCommand::IdleGrace),
        arb_group().prop_map(DeviceCommand::Attach),
        arb_group().prop_map(DeviceCommand::Detach),
        (arb_group(), 1..=SHORT_MAX)
            .prop_map(|(group, weight)| DeviceCommand::Weight { group, weight }),
        (arb_group(), range).prop_map(|(group, (min_kib_per_sec, max_kib_per_sec))| {
            DeviceCommand::RangeBw {
                group,
                min_kib_per_sec,
                max_kib_per_sec,
            }
        }),
        Just(DeviceCommand::Reset),
    ]
}

proptest! {
    #[test]
    fn display_then_parse_is_identity(
        target in "[a-zA-Z0-9_.:-]{1,20}",
        command in arb_command(),
    ) {
        let write = DevicesWrite { target, command };
        prop_assert_eq!(DevicesWrite::parse(&write.to_string()), Ok(write));
    }

    #[test]
    fn parsing_never_panics(line in "\\PC{0,60}") {
        let _ = DevicesWrite::parse(&line);
        let _ = SettingsWrite::parse(&line);
        let _ = parse_devices_listing(&line);
        let _ = parse_settings_listing(&line);
    }
}
