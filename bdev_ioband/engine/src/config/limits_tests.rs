//! Tests of refusals of issue #10: an io_throttle above the io_limit in force (the default
//! one too, which it used to raise silently), a share and a device of another share with
//! one name, and a base name that no bdev can have.

use serde_json::{from_value, json};

use super::apply_devices_text;
use super::rpc::{
    handle_get_devices, handle_set_device, CreateParams, GetDevicesParams, GetDevicesReply,
};
use crate::{Engine, EngineError, ShareParams};

fn io_limit_in_force(e: &mut Engine<u32>, share: &str) -> u32 {
    let p = GetDevicesParams {
        share: Some(share.to_owned()),
        ..GetDevicesParams::default()
    };
    match handle_get_devices(e, p).expect("get") {
        GetDevicesReply::Shares(s) => s[0].io_limit,
        GetDevicesReply::Text(_) => unreachable!("json asked"),
    }
}

#[test]
fn io_throttle_above_the_default_io_limit_is_refused() {
    let mut e = Engine::<u32>::new(1_000_000);
    // nr_requests 128: the default io_limit is 192.
    let err = e
        .create_device(
            "io0",
            "s",
            Some(ShareParams {
                io_throttle: 300,
                ..ShareParams::default()
            }),
        )
        .expect_err("above the default");
    assert_eq!(
        err,
        EngineError::ThrottleAboveLimit {
            io_throttle: 300,
            io_limit: 192
        }
    );
    e.create_device("io0", "s", None).expect("io0");
    let before = *e.share("s").expect("s").params();
    for line in ["s io_throttle 193", "io0 io_throttle 32767"] {
        let err = apply_devices_text(&mut e, line).expect_err(line);
        assert!(err.to_string().contains("io_limit 192"), "{line}: {err}");
    }
    let p = from_value(json!({"name": "s", "io_throttle": 200})).expect("decodes");
    assert!(matches!(
        handle_set_device(&mut e, p),
        Err(EngineError::ThrottleAboveLimit { .. })
    ));
    assert_eq!(*e.share("s").expect("s").params(), before);
    assert_eq!(io_limit_in_force(&mut e, "s"), 192, "the cap stays");
    // Up to the default limit, and above it with a limit set in the same call.
    apply_devices_text(&mut e, "s io_throttle 192").expect("at the limit");
    let p = from_value(json!({"name": "s", "io_throttle": 300, "io_limit": 400})).expect("p");
    handle_set_device(&mut e, p).expect("both");
    assert_eq!(io_limit_in_force(&mut e, "s"), 400);
    // Back to the default limit under a throttle above it: refused too.
    let err = apply_devices_text(&mut e, "s io_limit 0").expect_err("limit 0");
    assert!(
        matches!(err, EngineError::ThrottleAboveLimit { .. }),
        "{err}"
    );
}

#[test]
fn a_share_and_a_device_of_another_share_may_not_share_a_name() {
    let mut e = Engine::<u32>::new(1_000_000);
    // The default: a device's share takes its name; more devices may join it.
    e.create_device("a", "a", None).expect("a in a");
    e.create_device("b", "a", None).expect("b in a");
    e.create_device("c", "c", None).expect("c in c");
    let before = (
        e.device_names().map(str::to_owned).collect::<Vec<_>>(),
        e.shares().map(|s| s.name().to_owned()).collect::<Vec<_>>(),
    );
    let err = e
        .create_device("x", "b", None)
        .expect_err("share named like device b");
    assert_eq!(
        err,
        EngineError::NameTaken {
            name: "b".into(),
            taken_by: "an ioband device"
        }
    );
    assert_eq!(err.errno(), 17);
    let err = e
        .create_device("c", "a", None)
        .expect_err("device c exists");
    assert_eq!(err, EngineError::DeviceExists("c".into()));
    e.delete_device("c").expect("delete c");
    e.create_device("c", "c", None).expect("c again");
    let err = e.create_device("a2", "x", None).map(|_| ());
    assert!(err.is_ok(), "{err:?}");
    e.delete_device("a2").expect("delete a2");
    let err = e.create_device("c2", "a", None).map(|_| ());
    assert!(err.is_ok(), "{err:?}");
    e.delete_device("c2").expect("delete c2");
    // A device named like another share.
    e.delete_device("c").expect("delete c");
    e.create_device("d", "c", None).expect("d in share c");
    let err = e
        .create_device("c", "a", None)
        .expect_err("device named like share c");
    assert_eq!(
        err,
        EngineError::NameTaken {
            name: "c".into(),
            taken_by: "a share"
        }
    );
    e.delete_device("d").expect("delete d");
    e.create_device("c", "c", None).expect("c again");
    let after = (
        e.device_names().map(str::to_owned).collect::<Vec<_>>(),
        e.shares().map(|s| s.name().to_owned()).collect::<Vec<_>>(),
    );
    assert_eq!(after, before);
}

#[test]
fn create_params_refuse_a_base_that_can_never_match() {
    let create = |name: &str, base: &str| CreateParams {
        name: name.into(),
        base_bdev_name: base.into(),
        ..CreateParams::default()
    };
    for base in ["", "a b", "a\u{0}", "\n", &"x".repeat(256), "io0"] {
        let err = create("io0", base).validate().expect_err(base);
        assert!(
            matches!(err, EngineError::InvalidBase { .. }),
            "{base:?}: {err}"
        );
        assert!(err.to_string().contains("base_bdev_name"), "{err}");
        assert_eq!(err.errno(), 22);
    }
    assert!(matches!(
        create("", "Null0").validate(),
        Err(EngineError::InvalidName { .. })
    ));
    assert_eq!(create("io0", "Null0").validate(), Ok(()));
}
