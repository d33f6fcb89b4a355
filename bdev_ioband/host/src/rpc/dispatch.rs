//! The method table and the one generic path every call takes: decode `params` into the
//! method's serde type (`-32602` naming the field on failure), run the handler, map its
//! typed error to a JSON-RPC code (negative errno) here and nowhere else.
//!
//! Runs on the main reactor, which owns the [`App`].

use std::collections::BTreeMap;

use jsonrpc_core::{Error, ErrorCode, Params, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::App;
use crate::bdev::BdevError;
use crate::ioband::IobandError;
use bdev_ioband_engine::config::decode::{decode_value, ParamsError};
use bdev_ioband_engine::config::rpc::rpc_code;
use bdev_ioband_engine::EngineError;

/// A method: decoded params in, JSON result out.
pub type Handler = fn(&App, Params) -> Result<Value, Error>;

/// Every method the host serves, by name.
#[derive(Debug, Clone)]
pub struct Methods {
    table: BTreeMap<&'static str, Handler>,
}

impl Methods {
    /// The host's methods.
    pub fn new() -> Methods {
        let mut table: BTreeMap<&'static str, Handler> = BTreeMap::new();
        super::framework::register(&mut table);
        super::bdevs::register(&mut table);
        super::ioband::register(&mut table);
        super::passthru::register(&mut table);
        super::nbd::register(&mut table);
        super::iscsi::register(&mut table);
        Methods { table }
    }

    /// Runs `method` with `params`.
    pub fn call(&self, app: &App, method: &str, params: Params) -> Result<Value, Error> {
        match self.table.get(method) {
            Some(handler) => handler(app, params),
            None => Err(Error {
                code: ErrorCode::MethodNotFound,
                message: "Method not found".to_owned(),
                data: None,
            }),
        }
    }

    /// These methods less `names` (each then answers -32601 like any unknown method): how
    /// the fuzz targets keep off the methods that open host files or allocate a device's
    /// memory, while every other call takes the server's own path.
    pub fn without(mut self, names: &[&str]) -> Methods {
        self.table.retain(|name, _| !names.contains(name));
        self
    }

    /// Whether `method` is served.
    pub fn has(&self, method: &str) -> bool {
        self.table.contains_key(method)
    }

    /// Method names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.table.keys().copied()
    }
}

impl Default for Methods {
    fn default() -> Self {
        Methods::new()
    }
}

/// Decodes params into `T` (the engine's strict decoding, shared with the SPDK host):
/// absent params decode as `{}` (so an all-optional type gets its defaults and a required
/// field is reported missing by name), a `null` inside is refused naming the field.
pub fn decode<T: DeserializeOwned>(params: Params) -> Result<T, Error> {
    let value = match params {
        Params::None => None,
        Params::Map(map) => Some(Value::Object(map)),
        Params::Array(items) => Some(Value::Array(items)),
    };
    decode_value(value).map_err(|e| params_error(&e))
}

/// -32602 for params that the strict decoding refused.
pub fn params_error(e: &ParamsError) -> Error {
    invalid_params(e.to_string())
}

/// Rejects params for a method that takes none.
pub fn no_params(params: Params) -> Result<(), Error> {
    match params {
        Params::None => Ok(()),
        Params::Map(m) if m.is_empty() => Ok(()),
        _ => Err(invalid_params("this method takes no parameters".to_owned())),
    }
}

/// -32602 with a message.
pub fn invalid_params(message: String) -> Error {
    Error {
        code: ErrorCode::InvalidParams,
        message: format!("Invalid params: {message}"),
        data: None,
    }
}

/// A negative-errno error.
pub fn errno_error(errno: i32, message: String) -> Error {
    Error {
        code: ErrorCode::ServerError(i64::from(-errno.abs())),
        message,
        data: None,
    }
}

/// Serializes a reply.
pub fn reply<T: Serialize>(value: T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| Error {
        code: ErrorCode::InternalError,
        message: e.to_string(),
        data: None,
    })
}

impl From<EngineErrorRpc> for Error {
    fn from(e: EngineErrorRpc) -> Error {
        Error {
            code: ErrorCode::ServerError(i64::from(rpc_code(&e.0))),
            message: e.0.to_string(),
            data: None,
        }
    }
}

/// An engine error on its way to the wire.
#[derive(Debug)]
pub struct EngineErrorRpc(pub EngineError);

/// Maps a bdev-layer error.
pub fn bdev_error(e: BdevError) -> Error {
    errno_error(e.errno(), e.to_string())
}

/// Maps an ioband error.
pub fn ioband_error(e: IobandError) -> Error {
    match e {
        IobandError::Engine(e) => EngineErrorRpc(e).into(),
        IobandError::Bdev(e) => bdev_error(e),
    }
}

/// Maps an engine error.
pub fn engine_error(e: EngineError) -> Error {
    EngineErrorRpc(e).into()
}
