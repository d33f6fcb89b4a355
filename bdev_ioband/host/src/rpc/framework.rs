//! Framework methods: `rpc_get_methods`, `spdk_get_version`, `spdk_kill_instance`,
//! `framework_get_reactors`, `framework_get_subsystems`, `framework_get_config`,
//! `framework_wait_init`.
//!
//! Handlers run on the main reactor.

use std::collections::BTreeMap;

use jsonrpc_core::{Error, Params, Value};
use serde::Deserialize;
use serde_json::json;

use super::dispatch::{decode, errno_error, no_params, reply, Handler, Methods};
use crate::app::App;
use crate::reactor;
use crate::ticks::TICKS_PER_SEC;

pub(super) fn register(t: &mut BTreeMap<&'static str, Handler>) {
    t.insert("rpc_get_methods", rpc_get_methods);
    t.insert("spdk_get_version", spdk_get_version);
    t.insert("spdk_kill_instance", spdk_kill_instance);
    t.insert("framework_get_reactors", framework_get_reactors);
    t.insert("framework_get_subsystems", framework_get_subsystems);
    t.insert("framework_get_config", framework_get_config);
    t.insert("framework_wait_init", framework_wait_init);
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetMethodsParams {
    #[serde(default)]
    current: bool,
    #[serde(default)]
    include_aliases: bool,
}

fn rpc_get_methods(_app: &App, params: Params) -> Result<Value, Error> {
    // Every method is callable at any time and there are no aliases: both flags are
    // accepted and change nothing.
    let p: GetMethodsParams = decode(params)?;
    let _ = (p.current, p.include_aliases);
    reply(Methods::new().names().collect::<Vec<_>>())
}

fn spdk_get_version(_app: &App, params: Params) -> Result<Value, Error> {
    no_params(params)?;
    let version = env!("CARGO_PKG_VERSION");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    Ok(json!({
        "version": format!("bdev_ioband ioband_tgt {version}"),
        "fields": {
            "major": parts.next().unwrap_or(0),
            "minor": parts.next().unwrap_or(0),
            "patch": parts.next().unwrap_or(0),
            "suffix": "",
        }
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KillParams {
    sig_name: String,
}

fn spdk_kill_instance(_app: &App, params: Params) -> Result<Value, Error> {
    let p: KillParams = decode(params)?;
    match p.sig_name.as_str() {
        "SIGINT" | "SIGTERM" | "SIGKILL" | "SIGQUIT" | "SIGHUP" => {}
        other => return Err(errno_error(22, format!("unsupported signal '{other}'"))),
    }
    reactor::request_stop().map_err(|e| errno_error(5, e.to_string()))?;
    Ok(Value::Bool(true))
}

fn framework_get_reactors(_app: &App, params: Params) -> Result<Value, Error> {
    no_params(params)?;
    let count = reactor::core_count().map_err(|e| errno_error(5, e.to_string()))?;
    let reactors: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "lcore": reactor::lcore_of(i).unwrap_or(i),
                "in_interrupt": false,
                "lw_threads": [{"name": format!("reactor_{i}"), "id": i}],
            })
        })
        .collect();
    Ok(json!({"tick_rate": TICKS_PER_SEC, "pid": std::process::id(), "reactors": reactors}))
}

fn framework_get_subsystems(_app: &App, params: Params) -> Result<Value, Error> {
    no_params(params)?;
    Ok(json!([
        {"subsystem": "bdev", "depends_on": []},
        {"subsystem": "nbd", "depends_on": ["bdev"]},
        {"subsystem": "iscsi", "depends_on": ["bdev"]},
    ]))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetConfigParams {
    name: String,
    #[serde(default)]
    with_batches: bool,
}

fn framework_get_config(app: &App, params: Params) -> Result<Value, Error> {
    let p: GetConfigParams = decode(params)?;
    let _ = p.with_batches;
    match p.name.as_str() {
        "bdev" => Ok(Value::Array(super::config::bdev_config(app))),
        "nbd" => Ok(Value::Array(super::nbd::nbd_config(app))),
        "iscsi" => Ok(Value::Array(super::iscsi::iscsi_config(app))),
        _ => Err(errno_error(19, format!("no subsystem named '{}'", p.name))),
    }
}

fn framework_wait_init(_app: &App, params: Params) -> Result<Value, Error> {
    no_params(params)?;
    // Initialisation is finished before the server listens.
    Ok(Value::Bool(true))
}
