//! Bound groups (issue #12): per-tenant ioband bdevs over one base, each created bound to
//! its tenant's group of one share; their I/O (on the owner and on a replica) counts to
//! the tenant by name; bad bindings are -32602 and reach no shim call; a reset's drain,
//! save_config and its reload keep the binding.

use serde_json::{json, Value};

use super::{create, group_stat};
use crate::ffi::{IO_READ, IO_RESET, STATUS_BASE};
use crate::mock::{Call, Harness, TICKS_PER_SEC};

const INVALID_PARAMS: i32 = -32602;
const PERIOD: u64 = TICKS_PER_SEC / 1000;

fn host(i: usize) -> String {
    format!("initiator:nqn.2016-06.io.spdk:host{i}")
}

/// t0..t2 over Null0 in share `tenants`, bound to host0..host2, weights 4:2:1 set by the
/// tenants' names through the share.
fn tenants() -> Harness {
    let h = Harness::new();
    h.add_base("Null0");
    for (i, w) in [4, 2, 1].into_iter().enumerate() {
        create(
            &h,
            &format!("t{i}"),
            "Null0",
            json!({"share": "tenants", "group": host(i)}),
        );
        assert_eq!(
            h.rpc(
                "bdev_ioband_set_settings",
                json!({"name": "tenants", "group": host(i), "value": w}),
            )
            .ok(),
            json!(true)
        );
    }
    h
}

fn settings(h: &Harness) -> Value {
    h.rpc("bdev_ioband_get_settings", json!({})).ok()
}

#[test]
fn io_through_a_bound_bdev_counts_to_its_tenant_by_name() {
    let h = tenants();
    // Thread ids 3 and 4: no tag group is attached, so the bound group takes them.
    for (i, n) in [(0, 3), (1, 2), (2, 1)] {
        for k in 0..n {
            h.submit(&format!("t{i}"), IO_READ, 4096, 3 + k % 2);
        }
    }
    h.base_done_all();
    let stat = h.rpc("bdev_ioband_get_iostat", json!({})).ok();
    let rows: Vec<(Value, Value, Value)> = stat["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| {
            let g = &d["groups"][0];
            (d["name"].clone(), g["group"].clone(), g["read_ios"].clone())
        })
        .collect();
    assert_eq!(
        rows,
        [
            (json!("t0"), json!(host(0)), json!(3)),
            (json!("t1"), json!(host(1)), json!(2)),
            (json!("t2"), json!(host(2)), json!(1)),
        ]
    );
    assert!(stat["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|d| d["groups"].as_array().map(Vec::len) == Some(1)));
    let text = h
        .rpc(
            "bdev_ioband_get_iostat",
            json!({"group": host(1), "format": "text"}),
        )
        .ok();
    assert_eq!(text, json!(format!("t1 tenants {} 2 16 0 0 0\n", host(1))));
    // A thread's tag group, when attached, still takes precedence on that bdev.
    h.rpc(
        "bdev_ioband_set_settings",
        json!({"name": "t0", "group": "tag:9", "value": 10}),
    )
    .ok();
    h.submit("t0", IO_READ, 4096, 9);
    h.submit("t0", IO_READ, 4096, 8);
    h.base_done_all();
    assert_eq!(group_stat(&h, "t0", "tag:9")["read_ios"], 1);
    assert_eq!(group_stat(&h, "t0", &host(0))["read_ios"], 4);
    h.all_completed_once();
    let info = h.dump_info("t1");
    assert_eq!(info[0].1["bound_group"], json!(host(1)));
    assert_eq!(info[0].1["groups"], json!([host(1)]));
}

#[test]
fn a_replica_counts_a_bound_bdev_s_io_to_its_tenant() {
    let h = tenants();
    let rs = h.thread_create(7);
    h.run_msgs();
    h.set_ticks(PERIOD);
    h.poll();
    h.run_msgs();
    let mark = h.mark();
    let a = h.thread_submit(rs, "t2", IO_READ, 4096, 7);
    let b = h.thread_submit(rs, "t1", IO_READ, 4096, 7);
    assert_eq!(h.calls_since(mark), [Call::Dispatch(a), Call::Dispatch(b)]);
    h.base_done_all();
    // The replica's counters reach the owner with its next report.
    h.set_ticks(2 * PERIOD);
    h.thread_poll(rs);
    h.run_msgs();
    h.set_ticks(3 * PERIOD);
    h.poll();
    h.run_msgs();
    assert_eq!(group_stat(&h, "t2", &host(2))["read_ios"], 1);
    assert_eq!(group_stat(&h, "t1", &host(1))["read_ios"], 1);
    assert_eq!(h.all_completed_once(), [STATUS_BASE; 2]);
    h.thread_leave(rs);
    h.run_msgs();
    assert!(h.thread_left(rs));
    h.thread_destroy(rs);
}

#[test]
fn bad_bindings_are_invalid_params_and_change_nothing() {
    let h = tenants();
    h.add_base("Null1");
    h.rpc(
        "bdev_ioband_set_settings",
        json!({"name": "t0", "group": "tag:9", "value": 10}),
    )
    .ok();
    let before = settings(&h);
    let mark = h.mark();
    let cases = [
        // bound twice in one share
        json!({"name": "t9", "base_bdev_name": "Null1", "share": "tenants", "group": host(1)}),
        // bound where it is attached
        json!({"name": "t9", "base_bdev_name": "Null1", "share": "tenants", "group": "tag:9"}),
        // `none`, and malformed groups
        json!({"name": "t9", "base_bdev_name": "Null1", "group": "none"}),
        json!({"name": "t9", "base_bdev_name": "Null1", "group": "initiator:"}),
        json!({"name": "t9", "base_bdev_name": "Null1", "group": "cgroup:-1"}),
        json!({"name": "t9", "base_bdev_name": "Null1", "group": "host:1"}),
        json!({"name": "t9", "base_bdev_name": "Null1", "group": 5}),
    ];
    for p in cases {
        let (code, msg) = h.rpc("bdev_ioband_create", p.clone()).err();
        assert_eq!(code, INVALID_PARAMS, "{p}: {msg}");
    }
    let (_, msg) = h
        .rpc(
            "bdev_ioband_create",
            json!({"name": "t9", "base_bdev_name": "Null1", "share": "tenants", "group": host(1)}),
        )
        .err();
    assert_eq!(
        msg,
        format!(
            "group '{}' is bound to ioband bdev 't1' of share 'tenants' already",
            host(1)
        )
    );
    // Attaching a bound group elsewhere in its share, or detaching it.
    for p in [
        json!({"name": "t0", "group": host(2), "value": 5}),
        json!({"name": "t2", "group": host(2)}),
        json!({"command": "t2", "group": host(2)}),
    ] {
        let (code, msg) = h.rpc("bdev_ioband_set_settings", p.clone()).err();
        assert_eq!(code, INVALID_PARAMS, "{p}: {msg}");
    }
    assert!(
        !h.calls_since(mark)
            .iter()
            .any(|c| matches!(c, Call::NodeCreate { .. })),
        "bad input reached the shim"
    );
    assert_eq!(settings(&h), before);
    // The same tenant in another share is another group.
    create(
        &h,
        "o1",
        "Null1",
        json!({"share": "other", "group": host(1)}),
    );
}

#[test]
fn a_reset_s_drain_keeps_the_binding() {
    let h = Harness::new();
    h.add_base("Null0");
    create(
        &h,
        "t0",
        "Null0",
        json!({"share": "s", "io_limit": 1, "io_throttle": 1, "group": host(0)}),
    );
    h.rpc(
        "bdev_ioband_set_settings",
        json!({"name": "t0", "group": host(0), "value": 30}),
    )
    .ok();
    let a = h.submit("t0", IO_READ, 4096, 1);
    let _queued = h.submit("t0", IO_READ, 4096, 1);
    let r = h.submit("t0", IO_RESET, 0, 1);
    h.base_done(r);
    h.base_done(a);
    let s = settings(&h);
    assert_eq!(
        (&s[0]["group"], &s[0]["weight"]),
        (&json!(host(0)), &json!(30))
    );
    assert_eq!(s.as_array().map(Vec::len), Some(1));
    // The next I/O counts to the bound group too (beside the two before the reset: a
    // drain keeps the device's counters).
    h.submit("t0", IO_READ, 4096, 1);
    h.base_done_all();
    assert_eq!(group_stat(&h, "t0", &host(0))["read_ios"], 3);
    assert!(h.errors().is_empty(), "{:?}", h.errors());
}

#[test]
fn save_config_keeps_the_tenants_and_reloads() {
    let (saved, before) = {
        let h = tenants();
        let saved = h.config_json();
        let creates: Vec<(Value, Value)> = saved
            .iter()
            .filter(|e| e["method"] == "bdev_ioband_create")
            .map(|e| (e["params"]["name"].clone(), e["params"]["group"].clone()))
            .collect();
        assert_eq!(
            creates,
            (0..3)
                .map(|i| (json!(format!("t{i}")), json!(host(i))))
                .collect::<Vec<_>>()
        );
        (saved, settings(&h))
    };
    let h = Harness::new();
    h.add_base("Null0");
    for e in &saved {
        let method = e["method"].as_str().expect("method");
        let want = match method {
            "bdev_ioband_create" => e["params"]["name"].clone(),
            _ => json!(true),
        };
        assert_eq!(h.rpc(method, e["params"].clone()).ok(), want, "{e}");
    }
    assert_eq!(settings(&h), before);
    assert_eq!(h.config_json(), saved);
}
