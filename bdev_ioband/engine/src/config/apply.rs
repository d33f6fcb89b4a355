//! Applying `devices` and `settings` writes to an [`Engine`], and the reverse: the engine's
//! configured state as `devices` writes.
//!
//! Runs on the control thread that owns the engine. Every function validates before it
//! changes anything: on error the engine is as it was (the engine's own calls are atomic,
//! and each write makes exactly one of them).

use crate::{DeviceRef, Engine, EngineError, GroupKey, GroupParams, ShareParams};

use super::text::{DeviceCommand, DevicesWrite, SettingsWrite};

/// Applies one `devices` write.
///
/// Share knobs build the share's new [`ShareParams`] and set them in one step; `weight` and
/// `range-bw` change that field of the group and keep the other; `attach`, `detach` and
/// `reset` act on the device. A target that names neither a share nor a device is
/// [`EngineError::NoSuchDevice`].
pub fn apply_devices_write<T>(
    engine: &mut Engine<T>,
    write: &DevicesWrite,
) -> Result<(), EngineError> {
    let target = write.target.as_str();
    if write.command.is_share_knob() {
        let share = engine.share_mut(&share_for(engine, target)?)?;
        let params = knob_applied(*share.params(), &write.command);
        return share.set_params(params);
    }
    let group = match &write.command {
        DeviceCommand::Attach(group)
        | DeviceCommand::Detach(group)
        | DeviceCommand::Weight { group, .. }
        | DeviceCommand::RangeBw { group, .. } => Some(group),
        _ => None,
    };
    let DeviceRef { share, device, .. } = device_for(engine, target, group)?;
    let share = engine.share_mut(&share)?;
    match &write.command {
        DeviceCommand::Attach(group) => share.attach(device, group.clone(), None).map(|_| ()),
        DeviceCommand::Detach(group) => share.detach(device, group),
        DeviceCommand::Weight { group, weight } => {
            let (old, _) = share.group_info(device, group)?;
            share.set_group(
                device,
                group,
                GroupParams {
                    weight: *weight,
                    ..old
                },
            )
        }
        DeviceCommand::RangeBw {
            group,
            min_kib_per_sec,
            max_kib_per_sec,
        } => {
            let (old, _) = share.group_info(device, group)?;
            let new = GroupParams {
                min_kib_per_sec: *min_kib_per_sec,
                max_kib_per_sec: *max_kib_per_sec,
                ..old
            };
            share.set_group(device, group, new)
        }
        DeviceCommand::Reset => share.reset_stats(device),
        // Share knobs were handled above.
        DeviceCommand::Policy(_)
        | DeviceCommand::IoThrottle(_)
        | DeviceCommand::IoLimit(_)
        | DeviceCommand::Token(_)
        | DeviceCommand::Carryover(_)
        | DeviceCommand::Capacity(_)
        | DeviceCommand::IdleGrace(_) => Ok(()),
    }
}

/// Parses one `devices` write and applies it.
pub fn apply_devices_text<T>(engine: &mut Engine<T>, line: &str) -> Result<(), EngineError> {
    apply_devices_write(engine, &DevicesWrite::parse(line)?)
}

/// Applies one `settings` write for `group` (through [`Engine::write_setting`]).
pub fn apply_settings_write<T>(
    engine: &mut Engine<T>,
    group: &GroupKey,
    write: &SettingsWrite,
) -> Result<(), EngineError> {
    engine.write_setting(&write.device, group, write.value)
}

/// Parses one `settings` write and applies it for `group`.
pub fn apply_settings_text<T>(
    engine: &mut Engine<T>,
    group: &GroupKey,
    line: &str,
) -> Result<(), EngineError> {
    apply_settings_write(engine, group, &SettingsWrite::parse(line)?)
}

/// The configured state of every share as `devices` writes: the raw knobs (0 stays 0, so
/// derived defaults stay derived), then for each device the default group's weight and
/// range (a bound group's, on a bound device), then every other group's `attach`, `weight`
/// and `range-bw`.
///
/// Replayed in order into an engine that has the same devices in the same shares (fresh
/// shares, created in the order of [`crate::Share::device_names`], bound as here), it
/// reproduces every share's [`ShareParams`] but `nr_requests` (a property of the base
/// device, which the host gives at create) and every group's [`GroupParams`]. Counters are
/// not part of it.
pub fn dump_writes<T>(engine: &Engine<T>) -> Result<Vec<DevicesWrite>, EngineError> {
    let mut out = Vec::new();
    for share in engine.shares() {
        let p = share.params();
        let name = share.name();
        for command in [
            // io_limit before io_throttle: into a fresh share (io_throttle auto), the limit
            // is set first and the throttle then fits under it.
            DeviceCommand::Policy(p.policy),
            DeviceCommand::IoLimit(p.io_limit),
            DeviceCommand::IoThrottle(p.io_throttle),
            DeviceCommand::Token(p.token),
            DeviceCommand::Carryover(p.carryover),
            DeviceCommand::Capacity(p.capacity_kib_per_sec),
            DeviceCommand::IdleGrace(p.idle_grace_us),
        ] {
            out.push(DevicesWrite {
                target: name.to_owned(),
                command,
            });
        }
        for (idx, device) in share.device_names() {
            for (i, (group, params, _)) in share.groups_of(idx)?.into_iter().enumerate() {
                let write = |command| DevicesWrite {
                    target: device.to_owned(),
                    command,
                };
                // The first is the default group: `none`, or a bound group, which comes
                // with its device's create.
                if i > 0 {
                    out.push(write(DeviceCommand::Attach(group.clone())));
                }
                out.push(write(DeviceCommand::Weight {
                    group: group.clone(),
                    weight: params.weight,
                }));
                out.push(write(DeviceCommand::RangeBw {
                    group,
                    min_kib_per_sec: params.min_kib_per_sec,
                    max_kib_per_sec: params.max_kib_per_sec,
                }));
            }
        }
    }
    Ok(out)
}

fn knob_applied(params: ShareParams, command: &DeviceCommand) -> ShareParams {
    match *command {
        DeviceCommand::Policy(policy) => ShareParams { policy, ..params },
        DeviceCommand::IoThrottle(io_throttle) => ShareParams {
            io_throttle,
            ..params
        },
        DeviceCommand::IoLimit(io_limit) => ShareParams { io_limit, ..params },
        DeviceCommand::Token(token) => ShareParams { token, ..params },
        DeviceCommand::Carryover(carryover) => ShareParams {
            carryover,
            ..params
        },
        DeviceCommand::Capacity(capacity_kib_per_sec) => ShareParams {
            capacity_kib_per_sec,
            ..params
        },
        DeviceCommand::IdleGrace(idle_grace_us) => ShareParams {
            idle_grace_us,
            ..params
        },
        _ => params,
    }
}

/// The share a share knob addresses: a share of that name, else the share of a device of
/// that name.
pub(crate) fn share_for<T>(
    engine: &Engine<T>,
    share_or_device: &str,
) -> Result<String, EngineError> {
    if engine.share(share_or_device).is_ok() {
        return Ok(share_or_device.to_owned());
    }
    engine
        .device(share_or_device)
        .map(|r| r.share)
        .map_err(|_| EngineError::NoSuchDevice(share_or_device.to_owned()))
}

/// The device a group message addresses: a device of that name, else, of a share of that
/// name, the device where `group` is bound or attached, else its first device.
pub(crate) fn device_for<T>(
    engine: &Engine<T>,
    device_or_share: &str,
    group: Option<&GroupKey>,
) -> Result<DeviceRef, EngineError> {
    if let Ok(found) = engine.device(device_or_share) {
        return Ok(found);
    }
    let share = engine.share(device_or_share).ok();
    let first = share.and_then(|s| {
        group
            .and_then(|g| s.device_with_group(g))
            .map(|(d, _)| d)
            .or_else(|| s.device_names().next().map(|(d, _)| d))
    });
    match first {
        Some(device) => Ok(DeviceRef {
            share: device_or_share.to_owned(),
            share_id: engine.share_id(device_or_share)?,
            device,
        }),
        None => Err(EngineError::NoSuchDevice(device_or_share.to_owned())),
    }
}
