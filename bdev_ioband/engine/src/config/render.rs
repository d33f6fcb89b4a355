//! Renderers of the read side: the blkio `devices` and `settings` files and a
//! `dmsetup status`-like iostat, as text.
//!
//! Read-only views of the [`Engine`], made on the control thread that owns it. Shares come
//! in name order, the devices of a share in the share's own order, the groups of a device
//! default group first, then by key.
//!
//! # `devices`
//! One block per share (see [`ShareListing`]):
//! ```text
//! share1 policy=weight io_throttle=4 io_limit=192 token=768 carryover=2
//!   ioband0
//!   ioband1
//! share2 policy=range-bw io_throttle=4 io_limit=192 capacity=400000 idle_grace=500
//!   ioband2
//! ```
//! The numbers are the values in force (with `io_throttle` 0, auto, the window the share
//! has adapted to its base by now); ` capacity=` appears only when a capacity is set,
//! ` idle_grace=` (µs) only when one is set (auto, 0, follows the observed completion
//! latency and is not shown).
//!
//! # `settings`
//! For one group, one line per device where it is attached (every device for the default
//! group `none`, which on a bound device is its bound group), showing the value the
//! device's policy uses:
//! ```text
//! ioband0 weight=100
//! ioband2 range-bw=1000:20000
//! ```
//!
//! # iostat
//! One line per device, like `dmsetup status`: the device, its share, then six fields per
//! group:
//! ```text
//! <device> <share> <group> <read_ios> <read_sectors> <write_ios> <write_sectors> <queued> ...
//! ```
//! Sectors are 512 bytes (rounded down); `queued` is the I/Os waiting in the group's queue
//! now. Counters count submitted I/O; the JSON iostat has the rest.

use std::fmt::Write as _;

use crate::{
    Engine, EngineError, GroupKey, GroupParams, GroupStats, GroupValue, Policy, Share, SECTOR_BYTES,
};

use super::text::{SettingsLine, ShareListing};

/// One device and the groups a query selected on it.
#[derive(Debug)]
pub(crate) struct DeviceView<'a> {
    pub(crate) share: &'a str,
    pub(crate) device: &'a str,
    pub(crate) policy: Policy,
    pub(crate) groups: Vec<(GroupKey, GroupParams, GroupStats)>,
}

/// Selects devices and groups: every device, the one named `device`, or, when no device has
/// that name, every device of the share of that name ([`EngineError::NoSuchDevice`] if
/// neither exists); every group, or only `group`.
///
/// With a `group`, devices where it is not attached are left out, but for a named device,
/// which is then [`EngineError::NoSuchGroup`] (and so is a named share where it is on no
/// device). The default group is on every device: `none` selects it, whose key on a bound
/// device is the bound group's.
pub(crate) fn select<'a, T>(
    engine: &'a Engine<T>,
    device: Option<&str>,
    group: Option<&GroupKey>,
) -> Result<Vec<DeviceView<'a>>, EngineError> {
    let mut out = Vec::new();
    // Some(share) when the name is a share's and no device's.
    let mut share_filter = None;
    if let Some(name) = device {
        if let Err(e) = engine.device(name) {
            if engine.share(name).is_err() {
                return Err(e);
            }
            share_filter = Some(name);
        }
    }
    for share in engine.shares() {
        if share_filter.is_some_and(|wanted| wanted != share.name()) {
            continue;
        }
        for (idx, name) in share.device_names() {
            if share_filter.is_none() && device.is_some_and(|wanted| wanted != name) {
                continue;
            }
            let mut groups = share.groups_of(idx)?;
            if let Some(wanted) = group {
                if *wanted == GroupKey::None {
                    // The default group comes first.
                    groups.truncate(1);
                } else {
                    groups.retain(|(key, _, _)| key == wanted);
                }
                if groups.is_empty() {
                    if device.is_some() && share_filter.is_none() {
                        return Err(EngineError::NoSuchGroup {
                            device: name.to_owned(),
                            group: wanted.to_string(),
                        });
                    }
                    continue;
                }
            }
            out.push(DeviceView {
                share: share.name(),
                device: name,
                policy: share.policy(),
                groups,
            });
        }
    }
    if let (Some(share), Some(wanted), true) = (share_filter, group, out.is_empty()) {
        return Err(EngineError::NoSuchGroup {
            device: share.to_owned(),
            group: wanted.to_string(),
        });
    }
    Ok(out)
}

/// The `devices` block of one share.
pub fn share_listing<T>(share: &Share<T>) -> ShareListing {
    let p = share.params();
    let weight = p.policy.is_weight();
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    ShareListing {
        share: share.name().to_owned(),
        policy: p.policy,
        // The adapted window may sit above io_limit, where it has no effect: what binds is
        // the lesser (and what a replay of this listing can set).
        io_throttle: share.io_throttle_in_force().min(p.effective_io_limit()),
        io_limit: p.effective_io_limit(),
        token: weight.then(|| clamp(p.effective_token())),
        carryover: weight.then(|| clamp(p.effective_carryover())),
        capacity_kib_per_sec: p.capacity_kib_per_sec,
        idle_grace_us: p.idle_grace_us,
        devices: share
            .device_names()
            .map(|(_, name)| name.to_owned())
            .collect(),
    }
}

/// The `devices` blocks of every share, or of the share named `share`
/// ([`EngineError::NoSuchShare`] if there is none).
pub fn share_listings<T>(
    engine: &Engine<T>,
    share: Option<&str>,
) -> Result<Vec<ShareListing>, EngineError> {
    match share {
        Some(name) => Ok(vec![share_listing(engine.share(name)?)]),
        None => Ok(engine.shares().map(share_listing).collect()),
    }
}

/// The `devices` file: every share, or the one named `share`.
pub fn render_devices<T>(engine: &Engine<T>, share: Option<&str>) -> Result<String, EngineError> {
    Ok(share_listings(engine, share)?
        .iter()
        .map(ToString::to_string)
        .collect())
}

/// The `settings` lines of `group`: on every device where it is attached, or on `device`
/// only.
pub fn settings_lines<T>(
    engine: &Engine<T>,
    group: &GroupKey,
    device: Option<&str>,
) -> Result<Vec<SettingsLine>, EngineError> {
    let mut out = Vec::new();
    for view in select(engine, device, Some(group))? {
        for (_, params, _) in &view.groups {
            out.push(SettingsLine {
                device: view.device.to_owned(),
                value: GroupValue::of(view.policy, params),
            });
        }
    }
    Ok(out)
}

/// The `settings` file as `group` reads it: one line per device where `group` is attached
/// (every device for [`GroupKey::None`]), or for `device` only.
pub fn render_settings<T>(
    engine: &Engine<T>,
    group: &GroupKey,
    device: Option<&str>,
) -> Result<String, EngineError> {
    let mut out = String::new();
    for line in settings_lines(engine, group, device)? {
        let _ = writeln!(out, "{line}");
    }
    Ok(out)
}

/// The iostat text: one line per device (or for `device` only), every group or `group`
/// only.
pub fn render_iostat<T>(
    engine: &Engine<T>,
    device: Option<&str>,
    group: Option<&GroupKey>,
) -> Result<String, EngineError> {
    let mut out = String::new();
    for view in select(engine, device, group)? {
        let _ = write!(out, "{} {}", view.device, view.share);
        for (key, _, s) in &view.groups {
            let _ = write!(
                out,
                " {key} {} {} {} {} {}",
                s.read_ios,
                s.read_bytes / SECTOR_BYTES,
                s.write_ios,
                s.write_bytes / SECTOR_BYTES,
                s.queue_depth
            );
        }
        out.push('\n');
    }
    Ok(out)
}
