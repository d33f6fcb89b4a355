//! SPDK's JSON config format for the `bdev` subsystem: what `framework_get_config` writes
//! (base bdevs in registration order, then each ioband bdev's create and group settings)
//! and what `ioband_tgt --json FILE` replays through the same method table.
//!
//! Runs on the main reactor.

use bdev_ioband_engine::config::rpc::config_params;
use jsonrpc_core::Params;
use serde_json::{json, Value};
use thiserror::Error;

use super::dispatch::Methods;
use crate::app::App;

/// Why a config file did not load.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Not JSON, or not of the `{"subsystems": [...]}` shape.
    #[error("config is not a JSON config of the form {{\"subsystems\": [...]}}: {0}")]
    Shape(String),
    /// An entry failed.
    #[error("config entry {index} ({method}) failed: {message} (code {code})")]
    Entry {
        /// Position in the bdev subsystem's list.
        index: usize,
        /// Its method.
        method: String,
        /// The error's message.
        message: String,
        /// The error's code.
        code: i64,
    },
}

/// The `bdev` subsystem's config entries.
pub fn bdev_config(app: &App) -> Vec<Value> {
    let mut out: Vec<Value> = app
        .bdevs
        .borrow()
        .iter()
        .filter_map(|b| b.config_entry())
        .collect();
    let module = app.ioband.borrow();
    let engine = module.engine();
    let mut settings = Vec::new();
    for bdev in module.bdevs() {
        let Ok((create, groups)) = config_params(engine, &bdev_name(&bdev), bdev.base_name())
        else {
            continue;
        };
        out.push(json!({"method": "bdev_ioband_create", "params": create}));
        settings.extend(groups);
    }
    // Devices waiting for their base: created again (waiting) by the same call.
    for (name, base) in module.waiting() {
        let Ok((create, groups)) = config_params(engine, name, base) else {
            continue;
        };
        out.push(json!({"method": "bdev_ioband_create", "params": create}));
        settings.extend(groups);
    }
    let mut out = in_dependency_order(out);
    // Every create before any setting, so that a setting never precedes its device.
    for p in settings {
        out.push(json!({"method": "bdev_ioband_set_settings", "params": p}));
    }
    out
}

/// Orders create entries so that each comes after the entry that creates its base
/// (`params.base_bdev_name`), whatever the stacking (passthru over ioband, ioband over
/// passthru, ...); otherwise keeps their order. A base that no entry creates (or a cycle,
/// which cannot be built) leaves the entry in place at the end.
fn in_dependency_order(entries: Vec<Value>) -> Vec<Value> {
    let name_of = |e: &Value| e["params"]["name"].as_str().map(str::to_owned);
    let creates: std::collections::HashSet<String> = entries.iter().filter_map(name_of).collect();
    let mut done: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut pending = entries;
    let mut out = Vec::with_capacity(pending.len());
    loop {
        let before = pending.len();
        let mut rest = Vec::new();
        for e in pending {
            let ready = match e["params"]["base_bdev_name"].as_str() {
                Some(base) => !creates.contains(base) || done.contains(base),
                None => true,
            };
            if ready {
                if let Some(n) = name_of(&e) {
                    done.insert(n);
                }
                out.push(e);
            } else {
                rest.push(e);
            }
        }
        if rest.is_empty() || rest.len() == before {
            out.extend(rest);
            return out;
        }
        pending = rest;
    }
}

fn bdev_name(bdev: &crate::ioband::IobandBdev) -> String {
    use crate::bdev::Bdev;
    bdev.name().to_owned()
}

fn params_of(v: Option<&Value>) -> Params {
    match v {
        Some(Value::Object(m)) => Params::Map(m.clone()),
        Some(Value::Array(a)) => Params::Array(a.clone()),
        _ => Params::None,
    }
}

/// The subsystems a config replays, in order: `bdev`, then the front ends that depend on it.
pub const ALL_SUBSYSTEMS: &[&str] = &["bdev", "nbd", "iscsi"];

/// Replays a JSON config: the `bdev` subsystem, then `nbd` and `iscsi` (which depend on it);
/// others are skipped, as SPDK skips subsystems an app does not link.
pub fn load_config(app: &App, methods: &Methods, text: &str) -> Result<usize, ConfigError> {
    load_subsystems(app, methods, text, ALL_SUBSYSTEMS)
}

/// Replays the listed subsystems of a JSON config, in the order listed (`ioband_perf` loads
/// only `bdev`: a load generator in the process serves no initiators, and a config's
/// portals and sockets may be in use by a running `ioband_tgt`).
pub fn load_subsystems(
    app: &App,
    methods: &Methods,
    text: &str,
    names: &[&str],
) -> Result<usize, ConfigError> {
    let root: Value = serde_json::from_str(text).map_err(|e| ConfigError::Shape(e.to_string()))?;
    let subsystems = root
        .get("subsystems")
        .and_then(Value::as_array)
        .ok_or_else(|| ConfigError::Shape("no \"subsystems\" array".into()))?;
    let mut done = 0;
    let ordered = names.iter().flat_map(|&name| {
        subsystems
            .iter()
            .filter(move |s| s.get("subsystem").and_then(Value::as_str) == Some(name))
    });
    for sub in ordered {
        let Some(entries) = sub.get("config").and_then(Value::as_array) else {
            continue;
        };
        let flat = entries.iter().flat_map(|e| match e {
            Value::Array(batch) => batch.iter().collect::<Vec<_>>(),
            single => vec![single],
        });
        for (index, entry) in flat.enumerate() {
            let method = entry.get("method").and_then(Value::as_str).ok_or_else(|| {
                ConfigError::Shape(format!("bdev entry {index} has no \"method\""))
            })?;
            methods
                .call(app, method, params_of(entry.get("params")))
                .map_err(|e| ConfigError::Entry {
                    index,
                    method: method.to_owned(),
                    message: e.message,
                    code: e.code.code(),
                })?;
            done += 1;
        }
    }
    Ok(done)
}
