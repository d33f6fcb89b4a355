//! Bdev methods: `bdev_get_bdevs`, `bdev_get_iostat`, `bdev_wait_for_examine`, and create
//! and delete for the `null`, `malloc`, `model` and file (`uring`, `aio`) bdevs, with SPDK's
//! parameter shapes.
//!
//! Handlers run on the main reactor.

use std::collections::BTreeMap;

use jsonrpc_core::{Error, Params, Value};
use serde::Deserialize;
use serde_json::json;

use super::dispatch::{bdev_error, decode, ioband_error, no_params, Handler};
use crate::app::App;
use crate::bdev::file::{FileBdev, FileFlavor, FileOptions};
use crate::bdev::model::{ModelBdev, ModelParams};
use crate::bdev::{BdevError, BdevRef};
use crate::reactor;
use crate::ticks::TICKS_PER_SEC;

pub(super) fn register(t: &mut BTreeMap<&'static str, Handler>) {
    t.insert("bdev_get_bdevs", bdev_get_bdevs);
    t.insert("bdev_get_iostat", bdev_get_iostat);
    t.insert("bdev_wait_for_examine", bdev_wait_for_examine);
    t.insert("bdev_null_create", bdev_null_create);
    t.insert("bdev_null_delete", bdev_null_delete);
    t.insert("bdev_malloc_create", bdev_malloc_create);
    t.insert("bdev_malloc_delete", bdev_malloc_delete);
    t.insert("bdev_model_create", bdev_model_create);
    t.insert("bdev_model_delete", bdev_model_delete);
    t.insert("bdev_uring_create", bdev_uring_create);
    t.insert("bdev_uring_delete", bdev_uring_delete);
    t.insert("bdev_aio_create", bdev_aio_create);
    t.insert("bdev_aio_delete", bdev_aio_delete);
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetBdevsParams {
    #[serde(default)]
    name: Option<String>,
    /// Accepted for SPDK compatibility; bdevs here appear at once.
    #[serde(default)]
    timeout: Option<u64>,
}

fn selected(app: &App, name: Option<&str>) -> Result<Vec<BdevRef>, Error> {
    match name {
        Some(n) => Ok(vec![app.bdev(n).map_err(bdev_error)?]),
        None => Ok(app.bdevs.borrow().iter().cloned().collect()),
    }
}

fn bdev_info(app: &App, b: &BdevRef) -> Value {
    let claimed = !app.bdevs.borrow().claimers(b.name()).is_empty();
    json!({
        "name": b.name(),
        "aliases": [],
        "product_name": b.product_name(),
        "block_size": b.block_size(),
        "num_blocks": b.num_blocks(),
        "uuid": b.uuid(),
        "assigned_rate_limits": {
            "rw_ios_per_sec": 0, "rw_mbytes_per_sec": 0,
            "r_mbytes_per_sec": 0, "w_mbytes_per_sec": 0,
        },
        "claimed": claimed,
        "zoned": false,
        "supported_io_types": {
            "read": true, "write": true, "flush": true, "unmap": false,
            "write_zeroes": false, "reset": false,
        },
        "driver_specific": match b.driver_specific() {
            Value::Null => json!({}),
            v => v,
        },
    })
}

fn bdev_get_bdevs(app: &App, params: Params) -> Result<Value, Error> {
    let p: GetBdevsParams = decode(params)?;
    let _ = p.timeout;
    let bdevs = selected(app, p.name.as_deref())?;
    Ok(Value::Array(
        bdevs.iter().map(|b| bdev_info(app, b)).collect(),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetIostatParams {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    per_channel: Option<bool>,
}

fn bdev_get_iostat(app: &App, params: Params) -> Result<Value, Error> {
    let p: GetIostatParams = decode(params)?;
    let _ = p.per_channel;
    let bdevs = selected(app, p.name.as_deref())?;
    let list: Vec<Value> = bdevs
        .iter()
        .map(|b| {
            let mut v = serde_json::to_value(b.stats().snapshot()).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("name".into(), json!(b.name()));
            }
            v
        })
        .collect();
    Ok(json!({"tick_rate": TICKS_PER_SEC, "ticks": reactor::now_ticks(), "bdevs": list}))
}

fn bdev_wait_for_examine(_app: &App, params: Params) -> Result<Value, Error> {
    no_params(params)?;
    Ok(Value::Bool(true))
}

/// `bdev_null_create`'s params, SPDK's whole set. Metadata and protection information are
/// refused unless off; the layout hints (`_`-prefixed) are accepted and have no effect here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NullCreateParams {
    #[serde(default)]
    name: Option<String>,
    num_blocks: u64,
    block_size: u32,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    physical_block_size: Option<u32>,
    #[serde(default)]
    md_size: Option<u32>,
    #[serde(default)]
    dif_type: Option<u32>,
    #[serde(default)]
    dif_is_head_of_md: Option<bool>,
    #[serde(default)]
    dif_pi_format: Option<u32>,
    #[serde(default, rename = "preferred_write_alignment")]
    _preferred_write_alignment: Option<u32>,
    #[serde(default, rename = "preferred_write_granularity")]
    _preferred_write_granularity: Option<u32>,
    #[serde(default, rename = "optimal_write_size")]
    _optimal_write_size: Option<u32>,
    #[serde(default, rename = "preferred_unmap_alignment")]
    _preferred_unmap_alignment: Option<u32>,
    #[serde(default, rename = "preferred_unmap_granularity")]
    _preferred_unmap_granularity: Option<u32>,
}

/// `bdev_malloc_create`'s params, SPDK's whole set (see [`NullCreateParams`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MallocCreateParams {
    #[serde(default)]
    name: Option<String>,
    num_blocks: u64,
    block_size: u32,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    physical_block_size: Option<u32>,
    #[serde(default)]
    md_size: Option<u32>,
    #[serde(default)]
    md_interleave: Option<bool>,
    #[serde(default)]
    dif_type: Option<u32>,
    #[serde(default)]
    dif_is_head_of_md: Option<bool>,
    #[serde(default)]
    dif_pi_format: Option<u32>,
    #[serde(default, rename = "optimal_io_boundary")]
    _optimal_io_boundary: Option<u32>,
    #[serde(default, rename = "numa_id")]
    _numa_id: Option<i32>,
}

/// Refuses anything but "no metadata" (this host's bdevs carry data only), and a physical
/// block size that is not a multiple of the block size, as SPDK does.
fn check_layout(
    block_size: u32,
    physical_block_size: Option<u32>,
    metadata: [(&str, bool); 5],
) -> Result<(), Error> {
    if let Some((field, _)) = metadata.iter().find(|(_, on)| *on) {
        return Err(super::dispatch::errno_error(
            95, // EOPNOTSUPP
            format!("{field}: metadata and protection information are not supported here"),
        ));
    }
    match physical_block_size {
        Some(p) if block_size == 0 || p == 0 || p % block_size != 0 => {
            Err(super::dispatch::errno_error(
                22,
                format!("physical_block_size: {p} is not a multiple of block_size {block_size}"),
            ))
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteParams {
    name: String,
}

fn auto_name(app: &App, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|n| app.bdev(n).is_err())
        .unwrap_or_default()
}

fn bdev_null_create(app: &App, params: Params) -> Result<Value, Error> {
    let p: NullCreateParams = decode(params)?;
    let metadata = [
        ("md_size", p.md_size.unwrap_or(0) != 0),
        ("dif_type", p.dif_type.unwrap_or(0) != 0),
        ("dif_is_head_of_md", p.dif_is_head_of_md.unwrap_or(false)),
        ("dif_pi_format", p.dif_pi_format.unwrap_or(0) != 0),
        ("md_interleave", false),
    ];
    check_layout(p.block_size, p.physical_block_size, metadata)?;
    let name = p
        .name
        .ok_or_else(|| super::dispatch::invalid_params("missing field `name`".into()))?;
    app.create_null(&name, p.block_size, p.num_blocks, p.uuid)
        .map_err(bdev_error)?;
    Ok(Value::String(name))
}

fn bdev_malloc_create(app: &App, params: Params) -> Result<Value, Error> {
    let p: MallocCreateParams = decode(params)?;
    let metadata = [
        ("md_size", p.md_size.unwrap_or(0) != 0),
        ("dif_type", p.dif_type.unwrap_or(0) != 0),
        ("dif_is_head_of_md", p.dif_is_head_of_md.unwrap_or(false)),
        ("dif_pi_format", p.dif_pi_format.unwrap_or(0) != 0),
        ("md_interleave", p.md_interleave.unwrap_or(false)),
    ];
    check_layout(p.block_size, p.physical_block_size, metadata)?;
    let name = p.name.unwrap_or_else(|| auto_name(app, "Malloc"));
    app.create_malloc(&name, p.block_size, p.num_blocks, p.uuid)
        .map_err(bdev_error)?;
    Ok(Value::String(name))
}

fn delete(app: &App, params: Params, product: &str) -> Result<Value, Error> {
    let p: DeleteParams = decode(params)?;
    app.delete_base(&p.name, Some(product))
        .map_err(ioband_error)?;
    Ok(Value::Bool(true))
}

fn bdev_null_delete(app: &App, params: Params) -> Result<Value, Error> {
    delete(app, params, "Null disk")
}

fn bdev_malloc_delete(app: &App, params: Params) -> Result<Value, Error> {
    delete(app, params, "Malloc disk")
}

fn bdev_model_delete(app: &App, params: Params) -> Result<Value, Error> {
    delete(app, params, "Model disk")
}

/// Params of `bdev_model_create`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelCreateParams {
    name: String,
    block_size: u32,
    num_blocks: u64,
    #[serde(default)]
    uuid: Option<String>,
    /// I/Os per second (0 or absent = unlimited).
    #[serde(default)]
    iops: u64,
    #[serde(default)]
    bandwidth_mib_per_sec: Option<u64>,
    #[serde(default)]
    bandwidth_bytes_per_sec: Option<u64>,
    #[serde(default)]
    latency_us: u64,
    #[serde(default = "default_queue_depth")]
    queue_depth: u32,
    /// µs a FLUSH takes without occupying the device's server (0 or absent: a FLUSH is
    /// served like any I/O).
    #[serde(default)]
    flush_latency_us: u64,
}

fn default_queue_depth() -> u32 {
    128
}

fn bdev_model_create(app: &App, params: Params) -> Result<Value, Error> {
    let p: ModelCreateParams = decode(params)?;
    let bandwidth_bytes_per_sec = match (p.bandwidth_mib_per_sec, p.bandwidth_bytes_per_sec) {
        (Some(_), Some(_)) => {
            return Err(bdev_error(BdevError::Invalid {
                param: "bandwidth_mib_per_sec",
                reason: "give it or bandwidth_bytes_per_sec, not both".into(),
            }))
        }
        (Some(mib), None) => mib.saturating_mul(1 << 20),
        (None, Some(bytes)) => bytes,
        (None, None) => 0,
    };
    let model = ModelParams {
        block_size: p.block_size,
        num_blocks: p.num_blocks,
        iops: p.iops,
        bandwidth_bytes_per_sec,
        latency_ticks: p.latency_us.saturating_mul(1000),
        queue_depth: p.queue_depth,
    };
    if p.flush_latency_us == 0 {
        app.create_model(&p.name, model, p.uuid)
            .map_err(bdev_error)?;
    } else {
        bdev_ioband_engine::validate_name(&p.name).map_err(|e| {
            bdev_error(BdevError::Invalid {
                param: "name",
                reason: e.to_string(),
            })
        })?;
        let flush_ticks = p.flush_latency_us.saturating_mul(TICKS_PER_SEC / 1_000_000);
        let bdev = ModelBdev::with_flush_latency(&p.name, model, flush_ticks, p.uuid)
            .map_err(bdev_error)?;
        app.register(std::sync::Arc::new(bdev))
            .map_err(bdev_error)?;
    }
    Ok(Value::String(p.name))
}

/// `bdev_uring_create` / `bdev_aio_create` params: SPDK's, plus `direct`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCreateParams {
    name: String,
    filename: String,
    /// Absent or 0: the device's logical block size (512 at least).
    #[serde(default)]
    block_size: Option<u32>,
    #[serde(default)]
    uuid: Option<String>,
    /// Not SPDK's: true = O_DIRECT or fail, false = buffered, absent = O_DIRECT where the
    /// file system allows it, else buffered with a warning.
    #[serde(default)]
    direct: Option<bool>,
    /// `bdev_aio_create`'s; only false is supported.
    #[serde(default)]
    readonly: Option<bool>,
    /// `bdev_aio_create`'s; only false is supported.
    #[serde(default)]
    fallocate: Option<bool>,
    /// `bdev_aio_create`'s RWF_NOWAIT switch, which `spdk-rpc` always sends. Accepted either
    /// way: io_uring submission never blocks the reactor, so there is nothing to switch.
    #[serde(default, rename = "nowait")]
    _nowait: Option<bool>,
}

fn file_create(app: &App, params: Params, flavor: FileFlavor) -> Result<Value, Error> {
    let p: FileCreateParams = decode(params)?;
    for (field, on) in [("readonly", p.readonly), ("fallocate", p.fallocate)] {
        if on == Some(true) {
            let msg = format!("{field}: only false is supported by this host");
            return Err(super::dispatch::errno_error(95, msg));
        }
    }
    bdev_ioband_engine::validate_name(&p.name).map_err(|e| {
        bdev_error(BdevError::Invalid {
            param: "name",
            reason: e.to_string(),
        })
    })?;
    if app.bdev(&p.name).is_ok() {
        return Err(bdev_error(BdevError::Exists(p.name)));
    }
    let opts = FileOptions {
        filename: p.filename,
        block_size: p.block_size,
        direct: p.direct,
        uuid: p.uuid,
        flavor,
    };
    let bdev = FileBdev::open(&p.name, opts).map_err(bdev_error)?;
    app.register(std::sync::Arc::new(bdev))
        .map_err(bdev_error)?;
    Ok(Value::String(p.name))
}

fn bdev_uring_create(app: &App, params: Params) -> Result<Value, Error> {
    file_create(app, params, FileFlavor::Uring)
}

fn bdev_aio_create(app: &App, params: Params) -> Result<Value, Error> {
    file_create(app, params, FileFlavor::Aio)
}

fn bdev_uring_delete(app: &App, params: Params) -> Result<Value, Error> {
    delete(app, params, FileFlavor::Uring.product_name())
}

fn bdev_aio_delete(app: &App, params: Params) -> Result<Value, Error> {
    delete(app, params, FileFlavor::Aio.product_name())
}
