//! SPDK's JSON config format for the `bdev` subsystem: what `framework_get_config` writes
//! (base bdevs in registration order, then each ioband bdev's create and group settings)
//! and what `ioband_tgt --json FILE` replays through the same method table.
//!
//! Runs on the main reactor.

use bdev_ioband_engine::{GroupKey, GroupParams, GroupValue};
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
    for bdev in module.bdevs() {
        let Ok(share) = engine.share(bdev.share_name()) else {
            continue;
        };
        let p = share.params();
        out.push(json!({"method": "bdev_ioband_create", "params": {
            "name": bdev_name(&bdev), "base_bdev_name": bdev.base_name(),
            "share": bdev.share_name(), "policy": p.policy, "io_throttle": p.io_throttle,
            "io_limit": p.io_limit, "token": p.token, "carryover": p.carryover,
            "capacity_kib_per_sec": p.capacity_kib_per_sec,
        }}));
    }
    for bdev in module.bdevs() {
        let name = bdev_name(&bdev);
        let (Ok(groups), Ok(share)) = (engine.groups_of(&name), engine.share(bdev.share_name()))
        else {
            continue;
        };
        for (key, params, _) in groups {
            if key == GroupKey::None && params == GroupParams::default() {
                continue;
            }
            let value = match GroupValue::of(share.policy(), &params) {
                GroupValue::Weight(w) => json!(w),
                range => json!(range.to_string()),
            };
            out.push(json!({"method": "bdev_ioband_set_settings", "params": {
                "name": name, "group": key.to_string(), "value": value,
            }}));
        }
    }
    out
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

/// Replays a JSON config (only the `bdev` subsystem; others are skipped, as SPDK skips
/// subsystems an app does not link).
pub fn load_config(app: &App, methods: &Methods, text: &str) -> Result<usize, ConfigError> {
    let root: Value = serde_json::from_str(text).map_err(|e| ConfigError::Shape(e.to_string()))?;
    let subsystems = root
        .get("subsystems")
        .and_then(Value::as_array)
        .ok_or_else(|| ConfigError::Shape("no \"subsystems\" array".into()))?;
    let mut done = 0;
    for sub in subsystems {
        if sub.get("subsystem").and_then(Value::as_str) != Some("bdev") {
            continue;
        }
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
