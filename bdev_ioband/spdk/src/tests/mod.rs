//! Unit tests of the Rust layer, run without SPDK against the mock of the shim
//! ([`crate::mock`]): the `ioband_rs_*` entry points are driven as the C shim drives them,
//! and what Rust asks of the shim is read back from the mock's record.

mod bound;
mod io;
mod lane;
mod load_check;
mod replica;
mod rpc;
mod ticks;

use serde_json::{json, Value};

use crate::mock::Harness;

/// `bdev_ioband_create` of `name` over `base` with extra params; the reply must be `name`.
fn create(h: &Harness, name: &str, base: &str, extra: Value) {
    let mut params = json!({"name": name, "base_bdev_name": base});
    if let (Some(p), Value::Object(extra)) = (params.as_object_mut(), extra) {
        p.extend(extra);
    }
    assert_eq!(
        h.rpc("bdev_ioband_create", params).ok(),
        json!(name),
        "create {name}"
    );
}

/// A group's counters from `bdev_ioband_get_iostat`.
fn group_stat(h: &Harness, device: &str, group: &str) -> Value {
    let stat = h
        .rpc("bdev_ioband_get_iostat", json!({"name": device}))
        .ok();
    stat["devices"][0]["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["group"] == group).cloned())
        .unwrap_or_else(|| panic!("{device} has no group {group}: {stat}"))
}

/// The ioband devices `bdev_ioband_get_devices` lists, by name.
fn device_names(h: &Harness) -> Vec<String> {
    let shares = h.rpc("bdev_ioband_get_devices", Value::Null).ok();
    let mut names: Vec<String> = shares
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["devices"].as_array().cloned().unwrap_or_default())
        .filter_map(|d| d.as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}
