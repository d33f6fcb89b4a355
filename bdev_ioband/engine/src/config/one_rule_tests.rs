//! Tests of the one rule for the text and JSON forms (issue #10): a value says what it
//! sets under every policy, `default` is a policy in both forms, a word starting with `#`
//! begins a comment, and the README's own examples run as written.

use serde_json::{from_value, json};

use super::rpc::{handle_set_device, handle_set_settings, CreateParams, SetDeviceParams};
use super::{apply_devices_text, apply_settings_text};
use crate::{Engine, GroupKey, GroupParams, Policy, ShareParams};

/// `w` (weight) with io0; `r` (range-bw, capacity 100000 KiB/s) with io1.
fn fixture() -> Engine<u32> {
    let mut e = Engine::new(1_000_000);
    e.create_device("io0", "w", None).expect("io0");
    let r = ShareParams {
        policy: Policy::RangeBw,
        capacity_kib_per_sec: 100_000,
        ..ShareParams::default()
    };
    e.create_device("io1", "r", Some(r)).expect("io1");
    e
}

fn params(e: &Engine<u32>, device: &str, key: &GroupKey) -> Option<GroupParams> {
    e.groups_of(device)
        .expect("device")
        .into_iter()
        .find(|(k, _, _)| k == key)
        .map(|(_, p, _)| p)
}

fn set_settings(e: &mut Engine<u32>, v: serde_json::Value) {
    let p = from_value(v.clone()).expect("decodes");
    if let Err(err) = handle_set_settings(e, p) {
        panic!("{v}: {err}");
    }
}

/// One way of writing the same values.
type Form = dyn Fn(&mut Engine<u32>);

#[test]
fn a_value_sets_what_it_says_under_every_policy_in_every_form() {
    // The same writes in the three forms give the same groups.
    let forms: [&Form; 3] = [
        &|e| {
            apply_devices_text(e, "io0 attach tag:1").expect("attach");
            apply_devices_text(e, "io0 range-bw tag:1:10:20").expect("range under weight");
            apply_devices_text(e, "io1 attach tag:1").expect("attach");
            apply_devices_text(e, "io1 weight tag:1:300").expect("weight under range-bw");
        },
        &|e| {
            let tag = GroupKey::Tag(1);
            apply_settings_text(e, &tag, "io0 10:20").expect("range under weight");
            apply_settings_text(e, &tag, "io1 300").expect("weight under range-bw");
        },
        &|e| {
            set_settings(
                e,
                json!({"name": "io0", "group": "tag:1", "value": "10:20"}),
            );
            set_settings(e, json!({"name": "io1", "group": "tag:1", "value": 300}));
        },
    ];
    let want0 = GroupParams {
        weight: 100,
        min_kib_per_sec: 10,
        max_kib_per_sec: 20,
    };
    let want1 = GroupParams {
        weight: 300,
        ..GroupParams::default()
    };
    for (i, form) in forms.iter().enumerate() {
        let mut e = fixture();
        form(&mut e);
        assert_eq!(
            params(&e, "io0", &GroupKey::Tag(1)),
            Some(want0),
            "form {i}"
        );
        assert_eq!(
            params(&e, "io1", &GroupKey::Tag(1)),
            Some(want1),
            "form {i}"
        );
        // The other field of an attached group is kept.
        set_settings(&mut e, json!({"name": "io0", "group": "tag:1", "value": 7}));
        let want = GroupParams { weight: 7, ..want0 };
        assert_eq!(params(&e, "io0", &GroupKey::Tag(1)), Some(want), "form {i}");
    }
}

#[test]
fn a_refused_range_attaches_nothing() {
    let mut e = fixture();
    let err = apply_settings_text(&mut e, &GroupKey::Tag(2), "io1 200000:0").expect_err("Σmin");
    assert!(err.to_string().contains("capacity"), "{err}");
    assert_eq!(params(&e, "io1", &GroupKey::Tag(2)), None);
}

#[test]
fn default_is_a_policy_in_json_as_in_text() {
    let mut e = fixture();
    apply_devices_text(&mut e, "w policy weight-iosize").expect("policy");
    apply_devices_text(&mut e, "w policy default").expect("text default");
    assert_eq!(e.share("w").expect("w").policy(), Policy::Weight);
    apply_devices_text(&mut e, "w policy range-bw").expect("policy");
    let p: SetDeviceParams =
        from_value(json!({"name": "w", "policy": "default"})).expect("json default");
    handle_set_device(&mut e, p).expect("set");
    assert_eq!(e.share("w").expect("w").policy(), Policy::Weight);
    let c: CreateParams = from_value(json!({"name": "a", "base_bdev_name": "b",
        "policy": "default"}))
    .expect("create default");
    assert_eq!(c.policy, Some(Policy::Weight));
}

#[test]
fn a_word_starting_with_hash_begins_a_comment() {
    let mut e = fixture();
    apply_devices_text(&mut e, "w token 5").expect("token");
    apply_devices_text(&mut e, "w token 0   # back to the default").expect("comment");
    assert_eq!(e.share("w").expect("w").params().token, 0);
    apply_settings_text(&mut e, &GroupKey::None, "io0 50 # the default group").expect("s");
    assert_eq!(
        params(&e, "io0", &GroupKey::None).map(|p| p.weight),
        Some(50)
    );
    // `#` inside a word is part of it.
    apply_devices_text(&mut e, "io0 attach initiator:a#b").expect("attach");
    assert!(params(&e, "io0", &GroupKey::Initiator("a#b".into())).is_some());
    assert!(apply_devices_text(&mut e, "# only a comment").is_err());
}

/// The README's `devices` and `settings` examples, run as written.
#[test]
fn the_readme_examples_run() {
    let readme = include_str!("../../../../README.md");
    let block = |after: &str| -> Vec<String> {
        let start = readme.find(after).expect("section") + after.len();
        let rest = &readme[start..];
        let open = rest.find("```\n").expect("block") + 4;
        let close = rest[open..].find("```").expect("end") + open;
        rest[open..close].lines().map(str::to_owned).collect()
    };
    let mut e = Engine::<u32>::new(1_000_000);
    e.create_device("ioband1", "share1", None).expect("ioband1");
    e.create_device("ioband2", "share1", None).expect("ioband2");
    for group in ["tag:7", "cgroup:1234"] {
        apply_devices_text(&mut e, &format!("ioband1 attach {group}")).expect("attach");
    }
    let devices = block("`devices` writes:");
    assert!(devices.len() >= 8, "{devices:?}");
    for line in &devices {
        apply_devices_text(&mut e, line).unwrap_or_else(|err| panic!("{line}: {err}"));
    }
    let tag = GroupKey::Tag(9);
    for line in block("`settings` writes, for one group:") {
        apply_settings_text(&mut e, &tag, &line).unwrap_or_else(|err| panic!("{line}: {err}"));
    }
}
