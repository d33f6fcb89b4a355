//! iSCSI methods with SPDK's names and params: `iscsi_create_portal_group` /
//! `iscsi_delete_portal_group` / `iscsi_get_portal_groups`, `iscsi_create_initiator_group` /
//! `iscsi_delete_initiator_group` / `iscsi_get_initiator_groups`, `iscsi_create_target_node`
//! / `iscsi_delete_target_node` / `iscsi_get_target_nodes`, `iscsi_get_connections`,
//! `iscsi_set_options` / `iscsi_get_options`. `framework_get_config` saves them as the
//! `iscsi` subsystem.
//!
//! Handlers run on the main reactor.

use std::collections::BTreeMap;

use jsonrpc_core::{Error, Params, Value};
use serde::Deserialize;

use super::dispatch::{decode, errno_error, no_params, reply, Handler};
use crate::app::App;
use crate::iscsi::{
    InitiatorGroupConfig, IscsiError, Options, PortalGroupConfig, TargetNodeConfig,
};

pub(super) fn register(t: &mut BTreeMap<&'static str, Handler>) {
    t.insert("iscsi_create_portal_group", iscsi_create_portal_group);
    t.insert("iscsi_delete_portal_group", iscsi_delete_portal_group);
    t.insert("iscsi_get_portal_groups", iscsi_get_portal_groups);
    t.insert("iscsi_create_initiator_group", iscsi_create_initiator_group);
    t.insert("iscsi_delete_initiator_group", iscsi_delete_initiator_group);
    t.insert("iscsi_get_initiator_groups", iscsi_get_initiator_groups);
    t.insert("iscsi_create_target_node", iscsi_create_target_node);
    t.insert("iscsi_delete_target_node", iscsi_delete_target_node);
    t.insert("iscsi_get_target_nodes", iscsi_get_target_nodes);
    t.insert("iscsi_get_connections", iscsi_get_connections);
    t.insert("iscsi_set_options", iscsi_set_options);
    t.insert("iscsi_get_options", iscsi_get_options);
}

fn iscsi_error(e: IscsiError) -> Error {
    errno_error(e.errno(), e.to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagParams {
    tag: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NameParams {
    name: String,
}

fn iscsi_create_portal_group(app: &App, params: Params) -> Result<Value, Error> {
    let p: PortalGroupConfig = decode(params)?;
    app.iscsi
        .borrow_mut()
        .create_portal_group(p)
        .map_err(iscsi_error)?;
    Ok(Value::Bool(true))
}

fn iscsi_delete_portal_group(app: &App, params: Params) -> Result<Value, Error> {
    let p: TagParams = decode(params)?;
    app.iscsi
        .borrow_mut()
        .delete_portal_group(p.tag)
        .map_err(iscsi_error)?;
    Ok(Value::Bool(true))
}

fn iscsi_get_portal_groups(app: &App, params: Params) -> Result<Value, Error> {
    no_params(params)?;
    reply(app.iscsi.borrow().portal_groups())
}

fn iscsi_create_initiator_group(app: &App, params: Params) -> Result<Value, Error> {
    let p: InitiatorGroupConfig = decode(params)?;
    app.iscsi
        .borrow_mut()
        .create_initiator_group(p)
        .map_err(iscsi_error)?;
    Ok(Value::Bool(true))
}

fn iscsi_delete_initiator_group(app: &App, params: Params) -> Result<Value, Error> {
    let p: TagParams = decode(params)?;
    app.iscsi
        .borrow_mut()
        .delete_initiator_group(p.tag)
        .map_err(iscsi_error)?;
    Ok(Value::Bool(true))
}

fn iscsi_get_initiator_groups(app: &App, params: Params) -> Result<Value, Error> {
    no_params(params)?;
    reply(app.iscsi.borrow().initiator_groups())
}

fn iscsi_create_target_node(app: &App, params: Params) -> Result<Value, Error> {
    let p: TargetNodeConfig = decode(params)?;
    app.iscsi
        .borrow_mut()
        .create_target_node(&mut app.bdevs.borrow_mut(), p)
        .map_err(iscsi_error)?;
    Ok(Value::Bool(true))
}

fn iscsi_delete_target_node(app: &App, params: Params) -> Result<Value, Error> {
    let p: NameParams = decode(params)?;
    app.iscsi
        .borrow_mut()
        .delete_target_node(&mut app.bdevs.borrow_mut(), &p.name)
        .map_err(iscsi_error)?;
    Ok(Value::Bool(true))
}

fn iscsi_get_target_nodes(app: &App, params: Params) -> Result<Value, Error> {
    no_params(params)?;
    reply(app.iscsi.borrow().target_nodes())
}

fn iscsi_get_connections(app: &App, params: Params) -> Result<Value, Error> {
    no_params(params)?;
    reply(app.iscsi.borrow().connections())
}

fn iscsi_set_options(app: &App, params: Params) -> Result<Value, Error> {
    // Fields not given keep their current values.
    let current = serde_json::to_value(app.iscsi.borrow().options()).unwrap_or(Value::Null);
    let given = match params {
        Params::Map(m) => m,
        Params::None => serde_json::Map::new(),
        Params::Array(_) => return decode::<Options>(params).map(|_| Value::Bool(true)),
    };
    let mut merged = match current {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    for (k, v) in &given {
        merged.insert(k.clone(), v.clone());
    }
    // Decode the given fields alone first so that an unknown one is named.
    let _: Options = decode(Params::Map(given))?;
    let opts: Options = decode(Params::Map(merged))?;
    app.iscsi.borrow().set_options(opts).map_err(iscsi_error)?;
    Ok(Value::Bool(true))
}

fn iscsi_get_options(app: &App, params: Params) -> Result<Value, Error> {
    no_params(params)?;
    reply(app.iscsi.borrow().options())
}

/// The `iscsi` subsystem's config entries.
pub fn iscsi_config(app: &App) -> Vec<Value> {
    app.iscsi.borrow().config_entries()
}
