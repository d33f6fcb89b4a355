//! Passthru methods with SPDK's parameter shapes: `bdev_passthru_create`
//! (`base_bdev_name`, `name`) and `bdev_passthru_delete` (`name`).
//!
//! Handlers run on the main reactor.

use std::collections::BTreeMap;

use jsonrpc_core::{Error, Params, Value};
use serde::Deserialize;

use super::dispatch::{bdev_error, decode, ioband_error, Handler};
use crate::app::App;
use crate::bdev::passthru;

pub(super) fn register(t: &mut BTreeMap<&'static str, Handler>) {
    t.insert("bdev_passthru_create", bdev_passthru_create);
    t.insert("bdev_passthru_delete", bdev_passthru_delete);
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateParams {
    base_bdev_name: String,
    name: String,
    /// Accepted for SPDK compatibility (its passthru takes an optional UUID); ignored.
    #[serde(default)]
    uuid: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteParams {
    name: String,
}

fn bdev_passthru_create(app: &App, params: Params) -> Result<Value, Error> {
    let p: CreateParams = decode(params)?;
    let _ = p.uuid;
    passthru::create(app, &p.name, &p.base_bdev_name).map_err(bdev_error)?;
    Ok(Value::String(p.name))
}

fn bdev_passthru_delete(app: &App, params: Params) -> Result<Value, Error> {
    let p: DeleteParams = decode(params)?;
    passthru::delete(app, &p.name).map_err(ioband_error)?;
    Ok(Value::Bool(true))
}
