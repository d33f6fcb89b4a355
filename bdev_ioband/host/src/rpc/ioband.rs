//! The ioband methods. Their params and reply types, and the handlers of the methods that
//! touch only the engine, are the engine's (`bdev_ioband_engine::config::rpc`); create and
//! delete are handled here because they touch bdevs.
//!
//! Handlers run on the main reactor, the owner of the engine.

use std::collections::BTreeMap;

use bdev_ioband_engine::config::rpc::{
    self as types, CreateParams, DeleteParams, METHOD_CREATE, METHOD_DELETE, METHOD_GET_DEVICES,
    METHOD_GET_IOSTAT, METHOD_GET_SETTINGS, METHOD_SET_DEVICE, METHOD_SET_SETTINGS,
};
use bdev_ioband_engine::{ShareParams, SHORT_MAX};
use jsonrpc_core::{Error, Params, Value};

use super::dispatch::{decode, engine_error, ioband_error, reply, Handler};
use crate::app::App;

pub(super) fn register(t: &mut BTreeMap<&'static str, Handler>) {
    t.insert(METHOD_CREATE, create);
    t.insert(METHOD_DELETE, delete);
    t.insert(METHOD_GET_DEVICES, get_devices);
    t.insert(METHOD_SET_DEVICE, set_device);
    t.insert(METHOD_GET_SETTINGS, get_settings);
    t.insert(METHOD_SET_SETTINGS, set_settings);
    t.insert(METHOD_GET_IOSTAT, get_iostat);
}

fn create(app: &App, params: Params) -> Result<Value, Error> {
    let p: CreateParams = decode(params)?;
    p.validate().map_err(engine_error)?;
    let Ok(base) = app.bdev(&p.base_bdev_name) else {
        // No such base yet: the device waits for it (as in SPDK), with the default queue
        // depth behind its share's default io_limit.
        app.create_ioband_waiting(
            &p.name,
            &p.base_bdev_name,
            p.share_name(),
            p.share_params(),
            p.group.as_ref(),
        )
        .map_err(ioband_error)?;
        return Ok(Value::String(p.name));
    };
    let nr_requests = base.queue_depth().clamp(1, SHORT_MAX);
    let share_params = p.share_params().map(|sp| ShareParams { nr_requests, ..sp });
    app.create_ioband_bound(
        &p.name,
        &p.base_bdev_name,
        p.share_name(),
        share_params,
        p.group.as_ref(),
    )
    .map_err(ioband_error)?;
    Ok(Value::String(p.name))
}

fn delete(app: &App, params: Params) -> Result<Value, Error> {
    let p: DeleteParams = decode(params)?;
    app.delete_ioband(&p.name).map_err(ioband_error)?;
    Ok(Value::Bool(true))
}

/// Runs an engine-only handler on the engine.
macro_rules! engine_method {
    ($fn_name:ident, $handler:path) => {
        fn $fn_name(app: &App, params: Params) -> Result<Value, Error> {
            let p = decode(params)?;
            let mut module = app.ioband.borrow_mut();
            let out = $handler(module.engine_mut(), p).map_err(engine_error)?;
            reply(out)
        }
    };
}

engine_method!(get_devices, types::handle_get_devices);
engine_method!(set_device, types::handle_set_device);
engine_method!(get_settings, types::handle_get_settings);
engine_method!(set_settings, types::handle_set_settings);
engine_method!(get_iostat, types::handle_get_iostat);
