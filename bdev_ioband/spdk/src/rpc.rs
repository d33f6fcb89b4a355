//! The bdev_ioband_* JSON-RPC methods inside SPDK: the same names, params, replies and
//! error codes as the embedded host, decoded with the engine's serde types
//! ([`bdev_ioband_engine::config::rpc`]).
//!
//! The shim hands over the params as JSON text (re-encoded from SPDK's parsed values) and
//! the request; exactly one reply goes back, now, or (delete of a registered bdev) from the
//! shim once the bdev is unregistered.
//!
//! One difference from the embedded host, on purpose, as every SPDK vbdev does: creating
//! over a base that does not exist (yet) succeeds and is remembered; the bdev is
//! registered when the base appears (examine). `save_config` lists the vbdev modules'
//! creates before the bases, so this is what makes a saved config load.

use std::ffi::c_int;

use bdev_ioband_engine::config::decode::{bound_message, check_text, decode_value};
use bdev_ioband_engine::config::rpc::{
    self as types, config_params, rpc_code, CreateParams, DeleteParams, INVALID_PARAMS,
};
use bdev_ioband_engine::EngineError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::ffi::method;
use crate::io::run_effects;
use crate::shim::{self, JsonWriter, NodePtr, Request};
use crate::state::{with_state, Dev, Effects, State};

/// A JSON-RPC error: code and message.
#[derive(Debug)]
pub struct RpcError {
    /// SPDK's code: -32602 for params, a negative errno otherwise.
    pub code: i32,
    /// What went wrong, for a person.
    pub message: String,
}

impl From<EngineError> for RpcError {
    fn from(e: EngineError) -> RpcError {
        RpcError {
            code: rpc_code(&e),
            message: e.to_string(),
        }
    }
}

fn invalid_params(message: String) -> RpcError {
    RpcError {
        code: INVALID_PARAMS,
        message: format!("Invalid params: {message}"),
    }
}

fn errno_error(errno: i32, message: String) -> RpcError {
    RpcError {
        code: -errno.abs(),
        message,
    }
}

fn not_running() -> RpcError {
    errno_error(19, "the ioband module is not initialised".to_owned())
}

/// Decodes params as the embedded host does, with the engine's strict decoding: the text
/// is checked first (a key given twice, a `null`, a number out of range such as `1e309`,
/// more than the one request bound), then absent (or null) params are `{}`, a non-object
/// is -32602, a serde failure is -32602 with the field's path and serde's message.
fn decode<T: DeserializeOwned>(params: Option<&str>) -> Result<T, RpcError> {
    let value: Option<Value> = match params {
        None => None,
        Some(text) => {
            check_text(text).map_err(|e| invalid_params(e.to_string()))?;
            Some(serde_json::from_str(text).map_err(|e| invalid_params(e.to_string()))?)
        }
    };
    decode_value(value).map_err(|e| invalid_params(e.to_string()))
}

fn to_value<T: Serialize>(v: T) -> Result<Value, RpcError> {
    serde_json::to_value(v).map_err(|e| RpcError {
        code: -32603,
        message: e.to_string(),
    })
}

/// What to do with a request once its method ran.
#[derive(Debug)]
pub enum Step {
    /// Reply now.
    Reply(Result<Value, RpcError>),
    /// Unregister this node; the shim replies when it is gone.
    Unregister(NodePtr),
}

/// Sends the reply of `step` (or hands the request to the shim with the unregister).
pub fn finish(request: Request, step: Step) {
    match step {
        Step::Reply(Ok(v)) => shim::rpc_result(request, &v.to_string()),
        Step::Reply(Err(e)) => shim::rpc_error(request, e.code, &bound_message(&e.message)),
        Step::Unregister(node) => shim::node_unregister(node, Some(request)),
    }
}

/// Runs an engine-only handler.
fn engine_method<P: DeserializeOwned, R: Serialize>(
    params: Option<&str>,
    f: fn(&mut bdev_ioband_engine::Engine<shim::IoHandle>, P) -> Result<R, EngineError>,
) -> Result<Value, RpcError> {
    let p: P = decode(params)?;
    with_state(|st| {
        // Whatever it changed, the I/O path's cached group handles are stale now.
        st.adapter.config_changed();
        f(&mut st.engine, p)
            .map_err(RpcError::from)
            .and_then(to_value)
    })
    .unwrap_or_else(|| Err(not_running()))
}

/// Runs method `m` with `params`; what to reply comes back.
pub fn dispatch(m: c_int, params: Option<&str>) -> Step {
    let r = match m {
        method::CREATE => create(params),
        method::DELETE => return delete(params),
        method::GET_DEVICES => engine_method(params, types::handle_get_devices),
        method::SET_DEVICE => engine_method(params, types::handle_set_device),
        method::GET_SETTINGS => engine_method(params, types::handle_get_settings),
        method::SET_SETTINGS => engine_method(params, types::handle_set_settings),
        method::GET_IOSTAT => engine_method(params, types::handle_get_iostat),
        _ => Err(RpcError {
            code: -32601,
            message: "Method not found".to_owned(),
        }),
    };
    Step::Reply(r)
}

/// The shared-writer claim key of every ioband bdev: any number of ioband bdevs, of any
/// shares, may stack on one base (as dm-ioband devices of several groups may sit on
/// partitions of one disk), while other modules' writer claims are refused. A per-share
/// key would forbid two shares on one base, which the embedded host allows.
pub fn claim_key() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"bdev_ioband".iter() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

fn strerror(errno: i32) -> &'static str {
    match errno.abs() {
        1 => "Operation not permitted",
        2 => "No such file or directory",
        12 => "Cannot allocate memory",
        16 => "Device or resource busy",
        17 => "File exists",
        19 => "No such device",
        22 => "Invalid argument",
        _ => "error",
    }
}

fn create(params: Option<&str>) -> Result<Value, RpcError> {
    let p: CreateParams = decode(params)?;
    // As the embedded host does: a base name no bdev can have, or the device's own, is
    // refused here rather than waited for.
    p.validate()?;
    if shim::bdev_exists(&p.name) {
        return Err(errno_error(
            17,
            format!("a bdev named '{}' exists already", p.name),
        ));
    }
    let share = p.share_name().to_owned();
    let id = with_state(|st| -> Result<u64, RpcError> {
        let dref =
            st.engine
                .create_device_bound(&p.name, &share, p.share_params(), p.group.as_ref())?;
        let id = st.next_id;
        st.next_id += 1;
        let base_idx = st.bases.index(&p.base_bdev_name);
        let handle = st
            .adapter
            .add_device(dref.share_id, dref.device, base_idx, ());
        st.devs.insert(
            id,
            Dev {
                name: p.name.clone(),
                base: p.base_bdev_name.clone(),
                share: share.clone(),
                node: None,
                deleted: false,
                handle,
                base_idx,
            },
        );
        st.names.insert(p.name.clone(), id);
        Ok(id)
    })
    .unwrap_or_else(|| Err(not_running()))?;

    // With the state released: registering calls examine, which calls back into us.
    match shim::node_create(&p.name, &p.base_bdev_name, id, claim_key()) {
        Ok(node) => {
            with_state(|st| {
                if let Some(dev) = st.devs.get_mut(&id) {
                    dev.node = Some(node);
                }
            });
            Ok(Value::String(p.name))
        }
        Err(-19) => {
            shim::log(
                2,
                &format!(
                    "'{}' waits for its base bdev '{}' (created when it appears)",
                    p.name, p.base_bdev_name
                ),
            );
            Ok(Value::String(p.name))
        }
        Err(rc) => {
            // Bad input changes nothing: take the device back out of the engine.
            with_state(|st| {
                let _ = st.engine.delete_device(&p.name);
                st.remove_dev(id);
                st.names.remove(&p.name);
            });
            let why = match rc {
                -1 => format!(
                    "base bdev '{}' is claimed by another module",
                    p.base_bdev_name
                ),
                _ => format!(
                    "cannot create '{}' over '{}': {}",
                    p.name,
                    p.base_bdev_name,
                    strerror(rc)
                ),
            };
            Err(errno_error(rc, why))
        }
    }
}

fn delete(params: Option<&str>) -> Step {
    let p: DeleteParams = match decode(params) {
        Ok(p) => p,
        Err(e) => return Step::Reply(Err(e)),
    };
    let mut fx = Effects::take();
    let out = with_state(|st| delete_locked(st, &mut fx, &p.name));
    run_effects(fx);
    match out {
        None => Step::Reply(Err(not_running())),
        Some(Err(e)) => Step::Reply(Err(e)),
        Some(Ok(Some(node))) => Step::Unregister(node),
        Some(Ok(None)) => Step::Reply(Ok(Value::Bool(true))),
    }
}

fn delete_locked(
    st: &mut State,
    fx: &mut Effects,
    name: &str,
) -> Result<Option<NodePtr>, RpcError> {
    let id = *st
        .names
        .get(name)
        .ok_or_else(|| EngineError::NoSuchDevice(name.to_owned()))?;
    for io in st.engine.delete_device(name)? {
        fx.complete.push((io, crate::ffi::STATUS_ABORTED));
    }
    st.names.remove(name);
    let node = st.devs.get(&id).and_then(|d| d.node);
    match node {
        Some(_) => {
            if let Some(dev) = st.devs.get_mut(&id) {
                dev.deleted = true;
                st.adapter.devices.mark_deleted(dev.handle);
                st.adapter.config_changed();
            }
        }
        None => st.remove_dev(id),
    }
    Ok(node)
}

/// A bdev appeared: register the remembered ioband bdevs that wait for it.
pub fn examine(base: &str) {
    let waiting: Vec<(u64, String)> = with_state(|st| {
        st.devs
            .iter()
            .filter(|(_, d)| !d.deleted && d.node.is_none() && d.base == base)
            .map(|(id, d)| (*id, d.name.clone()))
            .collect()
    })
    .unwrap_or_default();
    for (id, name) in waiting {
        match shim::node_create(&name, base, id, claim_key()) {
            Ok(node) => {
                with_state(|st| {
                    if let Some(dev) = st.devs.get_mut(&id) {
                        dev.node = Some(node);
                    }
                });
                shim::log(2, &format!("created '{name}' over '{base}'"));
            }
            Err(rc) => shim::log(
                0,
                &format!("cannot create '{name}' over '{base}': {}", strerror(rc)),
            ),
        }
    }
}

/// save_config: for each device, its create (with its share's knobs), then the values of
/// its groups, as the embedded host writes them.
pub fn config_json(w: JsonWriter) {
    let entries = with_state(|st| config_entries(st)).unwrap_or_default();
    for e in entries {
        w.raw(&e.to_string());
    }
}

fn config_entries(st: &State) -> Vec<Value> {
    let live: Vec<&Dev> = st.devs.values().filter(|d| !d.deleted).collect();
    let mut creates = Vec::new();
    let mut settings = Vec::new();
    for d in &live {
        // The same entries as the embedded host writes (the engine's config_params).
        let Ok((create, groups)) = config_params(&st.engine, &d.name, &d.base) else {
            continue;
        };
        creates.push(json!({"method": "bdev_ioband_create", "params": create}));
        settings.extend(
            groups
                .into_iter()
                .map(|p| json!({"method": "bdev_ioband_set_settings", "params": p})),
        );
    }
    creates.extend(settings);
    creates
}

/// bdev_get_bdevs: the `"ioband"` member of a device's driver_specific.
pub fn dump_info(dev_id: u64, w: JsonWriter) {
    let info = with_state(|st| {
        let d = st.devs.get(&dev_id)?;
        let policy = st.engine.share(&d.share).ok().map(|s| s.policy());
        let groups: Vec<String> = st
            .engine
            .groups_of(&d.name)
            .map(|g| g.into_iter().map(|(k, _, _)| k.to_string()).collect())
            .unwrap_or_default();
        let bound = st.engine.bound_group(&d.name).ok().flatten();
        let classification = match &bound {
            Some(key) => format!("tag:<spdk thread id> when attached, else the bound group {key}"),
            None => "tag:<spdk thread id> when attached, else the default group".to_owned(),
        };
        Some(json!({
            "name": d.name, "base_bdev_name": d.base, "share": d.share,
            "policy": policy, "groups": groups,
            "bound_group": bound.map(|k| k.to_string()),
            "classification": classification,
        }))
    })
    .flatten();
    if let Some(info) = info {
        w.named_raw("ioband", &info.to_string());
    }
}
