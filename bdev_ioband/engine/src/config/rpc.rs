//! JSON-RPC parameter and reply types of bdev_ioband, shared by both hosts (embedded and
//! SPDK) and by the rpc.py plugin's documentation; and handlers for the methods that touch
//! only the engine.
//!
//! The types are plain serde values; the handlers run on the control thread that owns the
//! [`Engine`]. Every params struct has `#[serde(deny_unknown_fields)]`; field names are
//! SPDK's snake_case. A host decodes `params` into the struct (a method whose params are
//! optional gets the struct's `Default` when they are absent), calls the handler, and sends
//! the reply serialized as the JSON-RPC `result`.
//!
//! # Errors
//! A params decode failure (missing or unknown field, wrong type, unknown policy or group
//! text) is answered by the host with **-32602** ([`INVALID_PARAMS`]) and the decoder's
//! message, which names the field. Everything else comes back as an [`EngineError`], which
//! [`rpc_code`] maps to SPDK's negative errno: **-19** no such device or share, **-17**
//! exists already, **-2** no such group, **-22** anything else invalid. The error's
//! `Display` is the message. A failed call changes nothing.
//!
//! # Methods
//!
//! ## `bdev_ioband_create` ([`CreateParams`])
//! `name` (string, required: the new bdev), `base_bdev_name` (string, required), `share`
//! (string, default: `name`), `policy` (`"weight"`, `"weight-iosize"` or `"range-bw"`),
//! `io_throttle`, `io_limit`, `token`, `carryover`, `capacity_kib_per_sec`, `idle_grace_us`
//! (u32s, 0 = default; `idle_grace_us` is 0..=1000000 µs, 0 = auto). Result: the bdev name
//! (string). Both hosts first check the names ([`CreateParams::validate`]: -22 for an empty
//! base name, one with white space or a NUL, or the device's own name). With no knob given, an existing share is joined as it is
//! ([`CreateParams::share_params`] is `None`); with knobs, they must equal the existing
//! share's. Handled by the host (it touches bdevs).
//!
//! `group` (optional; `initiator:<nqn|iqn>`, `cgroup:<id>` or `tag:<n>`) *binds* the new
//! bdev to that group of the share: the bdev's default group has that key instead of
//! `none`, and every I/O through the bdev that no attached group claims counts to it. A
//! host that cannot tell who submitted an I/O (SPDK) thus gives each tenant its own ioband
//! bdev over the same base, in one share, named by the tenant's NQN or IQN. The rule on a
//! host whose front end tags I/O (the embedded host): an I/O goes to the group of its own
//! tag when that group is attached to the bdev, else to the bdev's bound group. `none`, a
//! group bound to or attached on a device of the share already, is **-32602** and creates
//! nothing (as is attaching, elsewhere in its share, a group bound to a device, or
//! detaching a bound group: it goes with its bdev).
//!
//! ## `bdev_ioband_delete` ([`DeleteParams`])
//! `name` (string). Result: `true`. Handled by the host.
//!
//! ## `bdev_ioband_get_devices` ([`GetDevicesParams`], optional)
//! `share` (filter), `format` (`"json"`, the default, or `"text"`). Result for json: an array
//! of [`ShareInfo`]: `{"share", "policy", "io_throttle", "io_limit", "token", "carryover",
//! "capacity_kib_per_sec", "idle_grace_us", "devices": [names], "configured": {"io_throttle",
//! "io_limit", "token", "carryover", "idle_grace_us", "nr_requests"}}`, the top-level numbers
//! being the values in force and `configured` the values as set (0 = default). The idle grace
//! is the configured value at both levels (0 = auto: it follows the observed completion
//! latency). For text: one string, the `devices` file ([`render_devices`]).
//!
//! ## `bdev_ioband_set_device` ([`SetDeviceParams`])
//! Either `{"name": share-or-device, "policy"?, "io_throttle"?, "io_limit"?, "token"?,
//! "carryover"?, "capacity_kib_per_sec"?, "idle_grace_us"?}` with at least one knob, or
//! `{"command": "<share-or-device> <param> <value>"}` in the `devices` write language (see
//! [`super`]); exactly one of the two forms. Result: `true`.
//!
//! ## `bdev_ioband_get_settings` ([`GetSettingsParams`], optional)
//! `name` (device filter; a share's name selects its devices), `group` (group text;
//! default: every group), `format` (`"json"` or `"text"`). Result for json: an array of [`SettingInfo`]: `{"name": device, "share",
//! "group": "initiator:...", "type": "initiator", "id": "...", "weight", "min_kib_per_sec",
//! "max_kib_per_sec"}`. For text: one string, the `settings` file as `group` (default
//! `none`) reads it ([`render_settings`]).
//!
//! ## `bdev_ioband_set_settings` ([`SetSettingsParams`])
//! `name` (device), `group` (group text, default `"none"`), `value` (a JSON number = weight,
//! or a string `"W"` or `"MIN:MAX"` KiB/s; absent = detach the group). Or `{"command":
//! "<device> [<value>]", "group"?}` in the `settings` write language. Result: `true`.
//! `name` may also be a share, with a `group` bound to or attached on one of its devices
//! ([`Engine::device_for_group`]): a tenant is addressed by the share and its own name.
//! `none` on a bound bdev is its bound group.
//!
//! ## `bdev_ioband_get_iostat` ([`GetIostatParams`], optional)
//! `name` (device filter; a share's name selects its devices), `group` (group filter),
//! `format` (`"json"`, the default, or `"text"`: one string, [`render_iostat`]'s lines).
//! Result for json: [`IostatReply`]: `{"tick_rate":
//! ticks per second, "devices": [{"name", "share", "groups": [{"group", "read_ios",
//! "read_bytes", "write_ios", "write_bytes", "other_ios", "dispatched_ios",
//! "dispatched_bytes", "throttled_ios", "throttled_ticks", "queue_depth", "in_flight",
//! "completed_ios"}]}]}`.
//!
//! Filters: an unknown `name` is -19; a `group` not attached to a named device is -2; a
//! `group` filter without `name` lists the devices where the group is attached (all of them
//! for `none`). A bound bdev lists its bound group first, in the place of `none` (which
//! selects it).

use serde::{Deserialize, Serialize};

use crate::{
    validate_name, Engine, EngineError, GroupKey, GroupStats, GroupType, GroupValue, Policy,
    ShareParams, SHORT_MAX,
};

use super::apply::{apply_devices_write, share_for};
use super::render::{render_devices, render_iostat, render_settings, select, share_listing};
use super::text::{parse_group_value, DevicesWrite, SettingsWrite};

/// `bdev_ioband_create`.
pub const METHOD_CREATE: &str = "bdev_ioband_create";
/// `bdev_ioband_delete`.
pub const METHOD_DELETE: &str = "bdev_ioband_delete";
/// `bdev_ioband_get_devices`.
pub const METHOD_GET_DEVICES: &str = "bdev_ioband_get_devices";
/// `bdev_ioband_set_device`.
pub const METHOD_SET_DEVICE: &str = "bdev_ioband_set_device";
/// `bdev_ioband_get_settings`.
pub const METHOD_GET_SETTINGS: &str = "bdev_ioband_get_settings";
/// `bdev_ioband_set_settings`.
pub const METHOD_SET_SETTINGS: &str = "bdev_ioband_set_settings";
/// `bdev_ioband_get_iostat`.
pub const METHOD_GET_IOSTAT: &str = "bdev_ioband_get_iostat";

/// JSON-RPC code for params that do not decode (answered by the host).
pub const INVALID_PARAMS: i32 = -32602;

/// The JSON-RPC error code of an engine error: SPDK's negative errno.
///
/// -19 (ENODEV) no such device or share, -17 (EEXIST) exists already, -2 (ENOENT) no such
/// group, -22 (EINVAL) anything else; but a group that cannot be bound, attached or detached
/// as asked ([`EngineError::Binding`]) is -32602, invalid params.
pub fn rpc_code(err: &EngineError) -> i32 {
    match err {
        EngineError::Binding { .. } => INVALID_PARAMS,
        _ => -err.errno(),
    }
}

/// The share knobs that `create` and `set_device` take, each optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShareKnobs {
    /// Policy.
    pub policy: Option<Policy>,
    /// io_throttle (0 = default).
    pub io_throttle: Option<u32>,
    /// io_limit (0 = default).
    pub io_limit: Option<u32>,
    /// Tokens per epoch (0 = default).
    pub token: Option<u32>,
    /// Carryover epochs (0 = default).
    pub carryover: Option<u32>,
    /// Capacity in KiB/s (0 = unknown).
    pub capacity_kib_per_sec: Option<u32>,
    /// Idle grace in µs (0 = auto).
    pub idle_grace_us: Option<u32>,
}

impl ShareKnobs {
    /// Whether no knob is given.
    pub fn is_empty(&self) -> bool {
        *self == ShareKnobs::default()
    }

    /// `base` with the given knobs replaced (not validated: the share validates on set).
    pub fn applied_to(&self, base: ShareParams) -> ShareParams {
        ShareParams {
            policy: self.policy.unwrap_or(base.policy),
            io_throttle: self.io_throttle.unwrap_or(base.io_throttle),
            io_limit: self.io_limit.unwrap_or(base.io_limit),
            token: self.token.unwrap_or(base.token),
            carryover: self.carryover.unwrap_or(base.carryover),
            capacity_kib_per_sec: self
                .capacity_kib_per_sec
                .unwrap_or(base.capacity_kib_per_sec),
            idle_grace_us: self.idle_grace_us.unwrap_or(base.idle_grace_us),
            nr_requests: base.nr_requests,
        }
    }
}

/// Output format of the `get` methods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Structured JSON (the default).
    #[default]
    Json,
    /// The text of the blkio control file, as one string.
    Text,
}

impl OutputFormat {
    fn is_default(&self) -> bool {
        *self == OutputFormat::Json
    }
}

/// Params of `bdev_ioband_create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateParams {
    /// Name of the new ioband bdev.
    pub name: String,
    /// The bdev it stacks on.
    pub base_bdev_name: String,
    /// Share to create or join (default: `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    /// Policy of a new share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// io_throttle (0 = default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_throttle: Option<u32>,
    /// io_limit (0 = default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_limit: Option<u32>,
    /// Tokens per epoch (0 = default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<u32>,
    /// Carryover epochs (0 = default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carryover: Option<u32>,
    /// Capacity in KiB/s (0 = unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_kib_per_sec: Option<u32>,
    /// Idle grace in µs, 0..=1000000 (0 = auto).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_grace_us: Option<u32>,
    /// The group the new bdev is bound to (`initiator:<nqn|iqn>`, `cgroup:<id>`,
    /// `tag:<n>`): every I/O through it that no attached group claims counts to this group
    /// of the share. Absent: the plain default group `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupKey>,
}

impl CreateParams {
    /// The share to create or join.
    pub fn share_name(&self) -> &str {
        self.share.as_deref().unwrap_or(&self.name)
    }

    /// The knobs given.
    pub fn knobs(&self) -> ShareKnobs {
        ShareKnobs {
            policy: self.policy,
            io_throttle: self.io_throttle,
            io_limit: self.io_limit,
            token: self.token,
            carryover: self.carryover,
            capacity_kib_per_sec: self.capacity_kib_per_sec,
            idle_grace_us: self.idle_grace_us,
        }
    }

    /// Checks what needs no state, the same on both hosts before anything else: the names
    /// of the device, its share and its base ([`crate::validate_name`]: not empty, no white
    /// space or control character such as NUL, no leading `#`, at most 255 bytes), and that
    /// the base is not the device itself. (Inside SPDK a base that does not exist yet is
    /// waited for, so a base name that could never match must be refused here.)
    pub fn validate(&self) -> Result<(), EngineError> {
        validate_name(&self.name)?;
        validate_name(self.share_name())?;
        crate::validate_base_name(&self.name, &self.base_bdev_name)?;
        if self.group == Some(GroupKey::None) {
            return Err(EngineError::Binding {
                group: "none".to_owned(),
                reason: "cannot be bound: every ioband bdev has a default group; \
                         leave \"group\" out"
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// The share's parameters for [`Engine::create_device`]: `None` when no knob is given
    /// (an existing share is joined unchanged, a new one gets the defaults), otherwise the
    /// defaults with the given knobs (validated by the share when it is created).
    ///
    /// `nr_requests` is the default (128); a host that knows the base's queue depth sets it
    /// on the result before creating a new share.
    pub fn share_params(&self) -> Option<ShareParams> {
        let knobs = self.knobs();
        (!knobs.is_empty()).then(|| knobs.applied_to(ShareParams::default()))
    }
}

/// Params of `bdev_ioband_delete`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    /// The ioband bdev to delete.
    pub name: String,
}

/// Params of `bdev_ioband_get_devices` (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetDevicesParams {
    /// Only this share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    /// json (default) or text.
    #[serde(default, skip_serializing_if = "OutputFormat::is_default")]
    pub format: OutputFormat,
}

/// One share in the `bdev_ioband_get_devices` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareInfo {
    /// Share name.
    pub share: String,
    /// Policy.
    pub policy: Policy,
    /// io_throttle in force.
    pub io_throttle: u32,
    /// io_limit in force.
    pub io_limit: u32,
    /// Tokens per epoch in force.
    pub token: u64,
    /// Carryover in force.
    pub carryover: u64,
    /// Capacity in KiB/s (0 = unknown).
    pub capacity_kib_per_sec: u32,
    /// Idle grace in µs as set (0 = auto: derived from the observed completion latency).
    pub idle_grace_us: u32,
    /// Member ioband bdevs, in the share's order.
    pub devices: Vec<String>,
    /// The knobs as set (0 = default).
    pub configured: ConfiguredKnobs,
}

/// The knobs of a share as set, before defaults are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfiguredKnobs {
    /// io_throttle as set.
    pub io_throttle: u32,
    /// io_limit as set.
    pub io_limit: u32,
    /// token as set.
    pub token: u32,
    /// carryover as set.
    pub carryover: u32,
    /// idle_grace_us as set (0 = auto).
    pub idle_grace_us: u32,
    /// Queue depth of the base, from which the default io_limit derives.
    pub nr_requests: u32,
}

/// Reply of `bdev_ioband_get_devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GetDevicesReply {
    /// `format: "json"`.
    Shares(Vec<ShareInfo>),
    /// `format: "text"`.
    Text(String),
}

/// Handles `bdev_ioband_get_devices`.
pub fn handle_get_devices<T>(
    engine: &mut Engine<T>,
    params: GetDevicesParams,
) -> Result<GetDevicesReply, EngineError> {
    let filter = params.share.as_deref();
    if params.format == OutputFormat::Text {
        return render_devices(engine, filter).map(GetDevicesReply::Text);
    }
    let shares: Vec<_> = match filter {
        Some(name) => vec![engine.share(name)?],
        None => engine.shares().collect(),
    };
    let infos = shares
        .into_iter()
        .map(|share| {
            let p = *share.params();
            let listing = share_listing(share);
            ShareInfo {
                share: listing.share,
                policy: p.policy,
                io_throttle: listing.io_throttle,
                io_limit: p.effective_io_limit(),
                token: p.effective_token(),
                carryover: p.effective_carryover(),
                capacity_kib_per_sec: p.capacity_kib_per_sec,
                idle_grace_us: p.idle_grace_us,
                devices: listing.devices,
                configured: ConfiguredKnobs {
                    io_throttle: p.io_throttle,
                    io_limit: p.io_limit,
                    token: p.token,
                    carryover: p.carryover,
                    idle_grace_us: p.idle_grace_us,
                    nr_requests: p.nr_requests,
                },
            }
        })
        .collect();
    Ok(GetDevicesReply::Shares(infos))
}

/// Params of `bdev_ioband_set_device`: `name` with knobs, or `command`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetDeviceParams {
    /// Share or device whose share to change (with knobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A `devices` write, `<share-or-device> <param> <value>` (instead of `name` and knobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// io_throttle (0 = default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_throttle: Option<u32>,
    /// io_limit (0 = default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_limit: Option<u32>,
    /// Tokens per epoch (0 = default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<u32>,
    /// Carryover epochs (0 = default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carryover: Option<u32>,
    /// Capacity in KiB/s (0 = unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_kib_per_sec: Option<u32>,
    /// Idle grace in µs, 0..=1000000 (0 = auto).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_grace_us: Option<u32>,
}

impl SetDeviceParams {
    /// The knobs given.
    pub fn knobs(&self) -> ShareKnobs {
        ShareKnobs {
            policy: self.policy,
            io_throttle: self.io_throttle,
            io_limit: self.io_limit,
            token: self.token,
            carryover: self.carryover,
            capacity_kib_per_sec: self.capacity_kib_per_sec,
            idle_grace_us: self.idle_grace_us,
        }
    }
}

const SET_DEVICE_FORMS: &str = "give either \"name\" with at least one of \"policy\", \
    \"io_throttle\", \"io_limit\", \"token\", \"carryover\", \"capacity_kib_per_sec\", \
    \"idle_grace_us\", or \"command\": \"<share-or-device> <param> <value>\"";

/// Handles `bdev_ioband_set_device`. Replies `true`.
pub fn handle_set_device<T>(
    engine: &mut Engine<T>,
    params: SetDeviceParams,
) -> Result<bool, EngineError> {
    let knobs = params.knobs();
    match (&params.name, &params.command) {
        (Some(name), None) => {
            if knobs.is_empty() {
                return Err(EngineError::Parse(format!(
                    "bdev_ioband_set_device: no parameter to change for '{name}'; \
                     {SET_DEVICE_FORMS}"
                )));
            }
            let share = engine.share_mut(&share_for(engine, name)?)?;
            let next = knobs.applied_to(*share.params());
            share.set_params(next)?;
        }
        (None, Some(command)) => {
            if !knobs.is_empty() {
                return Err(EngineError::Parse(format!(
                    "bdev_ioband_set_device: \"command\" cannot be combined with knobs; \
                     {SET_DEVICE_FORMS}"
                )));
            }
            apply_devices_write(engine, &DevicesWrite::parse(command)?)?;
        }
        (Some(_), Some(_)) => {
            return Err(EngineError::Parse(format!(
                "bdev_ioband_set_device: both \"name\" and \"command\" given; {SET_DEVICE_FORMS}"
            )))
        }
        (None, None) => {
            return Err(EngineError::Parse(format!(
                "bdev_ioband_set_device: nothing to do; {SET_DEVICE_FORMS}"
            )))
        }
    }
    Ok(true)
}

/// Params of `bdev_ioband_get_settings` (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetSettingsParams {
    /// Only this ioband device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only this group (json: default every group; text: default `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupKey>,
    /// json (default) or text.
    #[serde(default, skip_serializing_if = "OutputFormat::is_default")]
    pub format: OutputFormat,
}

/// One group on one device in the `bdev_ioband_get_settings` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingInfo {
    /// The ioband device.
    pub name: String,
    /// Its share.
    pub share: String,
    /// The group as text (`none`, `initiator:<name>`, ...).
    pub group: GroupKey,
    /// The group's type.
    #[serde(rename = "type")]
    pub group_type: GroupType,
    /// The group's id as text (empty for `none`).
    pub id: String,
    /// Weight.
    pub weight: u32,
    /// Reserved KiB/s (0 = none).
    pub min_kib_per_sec: u32,
    /// Cap in KiB/s (0 = none).
    pub max_kib_per_sec: u32,
}

/// Reply of `bdev_ioband_get_settings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GetSettingsReply {
    /// `format: "json"`.
    Settings(Vec<SettingInfo>),
    /// `format: "text"`.
    Text(String),
}

/// Handles `bdev_ioband_get_settings`.
pub fn handle_get_settings<T>(
    engine: &mut Engine<T>,
    params: GetSettingsParams,
) -> Result<GetSettingsReply, EngineError> {
    let device = params.name.as_deref();
    if params.format == OutputFormat::Text {
        let group = params.group.unwrap_or(GroupKey::None);
        return render_settings(engine, &group, device).map(GetSettingsReply::Text);
    }
    let mut out = Vec::new();
    for view in select(engine, device, params.group.as_ref())? {
        for (key, p, _) in view.groups {
            out.push(SettingInfo {
                name: view.device.to_owned(),
                share: view.share.to_owned(),
                group_type: key.group_type(),
                id: key.id_string(),
                group: key,
                weight: p.weight,
                min_kib_per_sec: p.min_kib_per_sec,
                max_kib_per_sec: p.max_kib_per_sec,
            });
        }
    }
    Ok(GetSettingsReply::Settings(out))
}

/// A group's value in `bdev_ioband_set_settings`: a JSON number (a weight) or a string
/// (`"W"` or `"MIN:MAX"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum SettingValue {
    /// A weight.
    Number(i64),
    /// `"W"` or `"MIN:MAX"` KiB/s.
    Text(String),
}

impl SettingValue {
    /// The typed value, range-checked.
    pub fn to_group_value(&self) -> Result<GroupValue, EngineError> {
        match self {
            SettingValue::Number(weight) => match u32::try_from(*weight) {
                Ok(w) if (1..=SHORT_MAX).contains(&w) => Ok(GroupValue::Weight(w)),
                _ => Err(EngineError::OutOfRange {
                    param: "weight",
                    value: *weight,
                    min: 1,
                    max: i64::from(SHORT_MAX),
                }),
            },
            SettingValue::Text(text) => parse_group_value(text),
        }
    }
}

impl<'de> Deserialize<'de> for SettingValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = SettingValue;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer weight, or a string \"W\" or \"MIN:MAX\"")
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SettingValue, E> {
                Ok(SettingValue::Number(v))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SettingValue, E> {
                i64::try_from(v)
                    .map(SettingValue::Number)
                    .map_err(|_| E::custom(format!("weight {v} is out of range (1..={SHORT_MAX})")))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SettingValue, E> {
                Ok(SettingValue::Text(v.to_owned()))
            }
        }

        d.deserialize_any(Visitor)
    }
}

/// Params of `bdev_ioband_set_settings`: `name` with `value`, or `command`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSettingsParams {
    /// The ioband device (with `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The group (default `none`, the default group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupKey>,
    /// The value; absent detaches the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<SettingValue>,
    /// A `settings` write, `<device> [<value>]` (instead of `name` and `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// Handles `bdev_ioband_set_settings`. Replies `true`.
pub fn handle_set_settings<T>(
    engine: &mut Engine<T>,
    params: SetSettingsParams,
) -> Result<bool, EngineError> {
    let group = params.group.unwrap_or(GroupKey::None);
    let write = match (params.name, params.command, params.value) {
        (Some(device), None, value) => {
            let value = value
                .as_ref()
                .map(SettingValue::to_group_value)
                .transpose()?;
            SettingsWrite { device, value }
        }
        (None, Some(command), None) => SettingsWrite::parse(&command)?,
        (None, Some(_), Some(_)) => {
            return Err(EngineError::Parse(
                "bdev_ioband_set_settings: \"value\" goes with \"name\", not with \"command\" \
                 (write the value into the command)"
                    .to_owned(),
            ))
        }
        (Some(_), Some(_), _) => {
            return Err(EngineError::Parse(
                "bdev_ioband_set_settings: give either \"name\" (with \"value\", or without \
                 it to detach) or \"command\", not both"
                    .to_owned(),
            ))
        }
        (None, None, _) => {
            return Err(EngineError::Parse(
                "bdev_ioband_set_settings: give \"name\" (the ioband device) or \"command\""
                    .to_owned(),
            ))
        }
    };
    engine.write_setting(&write.device, &group, write.value)?;
    Ok(true)
}

/// Params of `bdev_ioband_get_iostat` (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetIostatParams {
    /// Only this ioband device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupKey>,
    /// json (default) or text.
    #[serde(default, skip_serializing_if = "OutputFormat::is_default")]
    pub format: OutputFormat,
}

/// Reply of `bdev_ioband_get_iostat`: the counters, or their text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GetIostatReply {
    /// `format: "json"`.
    Stats(IostatReply),
    /// `format: "text"`: one line per device, as [`render_iostat`] writes it.
    Text(String),
}

/// The counters of `format: "json"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IostatReply {
    /// Ticks per second of the `*_ticks` counters (0 when there is no device).
    pub tick_rate: u64,
    /// The devices selected.
    pub devices: Vec<DeviceIostat>,
}

/// One device in [`IostatReply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceIostat {
    /// The ioband device.
    pub name: String,
    /// Its share.
    pub share: String,
    /// Its groups (default group first), or the one selected.
    pub groups: Vec<GroupIostat>,
}

/// One group's counters in [`IostatReply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupIostat {
    /// The group.
    pub group: GroupKey,
    /// Read I/Os submitted.
    pub read_ios: u64,
    /// Read bytes submitted.
    pub read_bytes: u64,
    /// Write I/Os submitted.
    pub write_ios: u64,
    /// Write bytes submitted.
    pub write_bytes: u64,
    /// Other I/Os (flush, reset) submitted.
    pub other_ios: u64,
    /// I/Os dispatched to the base.
    pub dispatched_ios: u64,
    /// Bytes dispatched to the base.
    pub dispatched_bytes: u64,
    /// I/Os that waited in the queue before dispatch.
    pub throttled_ios: u64,
    /// Ticks those I/Os waited, in all.
    pub throttled_ticks: u64,
    /// I/Os queued now.
    pub queue_depth: u64,
    /// I/Os dispatched and not completed now.
    pub in_flight: u64,
    /// I/Os completed.
    pub completed_ios: u64,
}

impl GroupIostat {
    /// The counters of `group`.
    pub fn new(group: GroupKey, s: &GroupStats) -> GroupIostat {
        GroupIostat {
            group,
            read_ios: s.read_ios,
            read_bytes: s.read_bytes,
            write_ios: s.write_ios,
            write_bytes: s.write_bytes,
            other_ios: s.other_ios,
            dispatched_ios: s.dispatched_ios,
            dispatched_bytes: s.dispatched_bytes,
            throttled_ios: s.throttled_ios,
            throttled_ticks: s.throttled_ticks,
            queue_depth: s.queue_depth,
            in_flight: s.in_flight,
            completed_ios: s.completed_ios,
        }
    }
}

/// Handles `bdev_ioband_get_iostat`.
pub fn handle_get_iostat<T>(
    engine: &mut Engine<T>,
    params: GetIostatParams,
) -> Result<GetIostatReply, EngineError> {
    if params.format == OutputFormat::Text {
        return render_iostat(engine, params.name.as_deref(), params.group.as_ref())
            .map(GetIostatReply::Text);
    }
    iostat(engine, params).map(GetIostatReply::Stats)
}

/// The counters `bdev_ioband_get_iostat` replies with in JSON.
pub fn iostat<T>(
    engine: &mut Engine<T>,
    params: GetIostatParams,
) -> Result<IostatReply, EngineError> {
    // Every share of an engine counts in the engine's ticks.
    let tick_rate = engine.shares().next().map_or(0, |s| s.ticks_per_sec());
    let devices = select(engine, params.name.as_deref(), params.group.as_ref())?
        .into_iter()
        .map(|view| DeviceIostat {
            name: view.device.to_owned(),
            share: view.share.to_owned(),
            groups: view
                .groups
                .into_iter()
                .map(|(key, _, s)| GroupIostat::new(key, &s))
                .collect(),
        })
        .collect();
    Ok(IostatReply { tick_rate, devices })
}

/// What recreates one ioband device in a saved config: its `bdev_ioband_create` params (with
/// the share's knobs as set, 0 meaning "default") and a `bdev_ioband_set_settings` for
/// every attached group and for a default group that is not at its defaults. Both hosts
/// write `save_config` output from this, so the two agree.
pub fn config_params<T>(
    engine: &Engine<T>,
    device: &str,
    base_bdev_name: &str,
) -> Result<(CreateParams, Vec<SetSettingsParams>), EngineError> {
    let r = engine.device(device)?;
    let share = engine.share(&r.share)?;
    let p = share.params();
    let create = CreateParams {
        name: device.to_owned(),
        base_bdev_name: base_bdev_name.to_owned(),
        share: Some(r.share.clone()),
        policy: Some(p.policy),
        io_throttle: Some(p.io_throttle),
        io_limit: Some(p.io_limit),
        token: Some(p.token),
        carryover: Some(p.carryover),
        capacity_kib_per_sec: Some(p.capacity_kib_per_sec),
        idle_grace_us: Some(p.idle_grace_us),
        group: share.bound_group(r.device)?.cloned(),
    };
    let settings = share
        .groups_of(r.device)?
        .into_iter()
        .filter(|(key, params, _)| {
            *key != GroupKey::None || *params != crate::GroupParams::default()
        })
        .map(|(key, params, _)| {
            let value = match GroupValue::of(share.policy(), &params) {
                GroupValue::Weight(w) => SettingValue::Number(i64::from(w)),
                range => SettingValue::Text(range.to_string()),
            };
            SetSettingsParams {
                name: Some(device.to_owned()),
                group: Some(key),
                value: Some(value),
                command: None,
            }
        })
        .collect();
    Ok((create, settings))
}
