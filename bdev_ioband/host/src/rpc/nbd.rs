//! NBD front-end methods: `ioband_nbd_create_export` (params: [`ExportConfig`]),
//! `ioband_nbd_delete_export` (`name`), `ioband_nbd_get_exports` (optional `name`). SPDK's
//! `nbd_start_disk` attaches a bdev to a kernel `/dev/nbdX`; these serve the NBD protocol
//! themselves, hence their own names. `framework_get_config` saves the exports as the
//! `nbd` subsystem's `ioband_nbd_create_export` entries.
//!
//! Handlers run on the main reactor.

use std::collections::BTreeMap;

use jsonrpc_core::{Error, Params, Value};
use serde::Deserialize;
use serde_json::json;

use super::dispatch::{decode, errno_error, reply, Handler};
use crate::app::App;
use crate::nbd::{ExportConfig, NbdError};

pub(super) fn register(t: &mut BTreeMap<&'static str, Handler>) {
    t.insert("ioband_nbd_create_export", ioband_nbd_create_export);
    t.insert("ioband_nbd_delete_export", ioband_nbd_delete_export);
    t.insert("ioband_nbd_get_exports", ioband_nbd_get_exports);
}

fn nbd_error(e: NbdError) -> Error {
    errno_error(e.errno(), e.to_string())
}

fn ioband_nbd_create_export(app: &App, params: Params) -> Result<Value, Error> {
    let config: ExportConfig = decode(params)?;
    let name = config.name.clone();
    app.nbd
        .borrow_mut()
        .create(&mut app.bdevs.borrow_mut(), config)
        .map_err(nbd_error)?;
    Ok(Value::String(name))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NameParams {
    name: String,
}

fn ioband_nbd_delete_export(app: &App, params: Params) -> Result<Value, Error> {
    let p: NameParams = decode(params)?;
    app.nbd
        .borrow_mut()
        .delete(&mut app.bdevs.borrow_mut(), &p.name)
        .map_err(nbd_error)?;
    Ok(Value::Bool(true))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetParams {
    #[serde(default)]
    name: Option<String>,
}

fn ioband_nbd_get_exports(app: &App, params: Params) -> Result<Value, Error> {
    let p: GetParams = decode(params)?;
    let exports = app.nbd.borrow();
    let list: Vec<Value> = exports
        .iter()
        .filter(|e| p.name.as_ref().map_or(true, |n| *n == e.config().name))
        .map(|e| e.describe())
        .collect();
    if let Some(n) = &p.name {
        if list.is_empty() {
            return Err(nbd_error(NbdError::NotFound(n.clone())));
        }
    }
    reply(list)
}

/// The `nbd` subsystem's config entries.
pub fn nbd_config(app: &App) -> Vec<Value> {
    app.nbd
        .borrow()
        .iter()
        .map(|e| json!({"method": "ioband_nbd_create_export", "params": e.config()}))
        .collect()
}
