//! The registry of shares and ioband devices, by name: what the control plane (RPC
//! handlers, the text language) talks to.
//!
//! Owned by the host's control thread. The I/O path does not go through it: a host resolves
//! a device once to a [`DeviceRef`] and then calls the [`Share`] directly.

use std::collections::BTreeMap;

use crate::group::{GroupKey, GroupStats};
use crate::params::{GroupParams, GroupValue, ShareParams};
use crate::share::{DeviceIdx, Share};
use crate::EngineError;

/// Longest share or device name (SPDK bdev names are free-form; dm-ioband allowed 31 bytes
/// for share names, we allow more but keep names printable and without white space).
pub const MAX_NAME_LEN: usize = 255;

/// Checks a share or device name: not empty, at most [`MAX_NAME_LEN`] bytes, no white space
/// or control character, and not starting with `#` (which begins a comment in the `devices`
/// and `settings` writes, so no write could name it).
pub fn validate_name(name: &str) -> Result<(), EngineError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME_LEN {
        "it is longer than 255 bytes"
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "it contains white space or control characters"
    } else if name.starts_with('#') {
        "it starts with '#', which begins a comment in the devices and settings writes"
    } else {
        return Ok(());
    };
    Err(EngineError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Checks the base name of ioband device `device`: one a bdev can have
/// ([`validate_name`]) and not the device's own. A base that does not exist yet is waited
/// for, so a name that could never match must be refused.
pub fn validate_base_name(device: &str, base: &str) -> Result<(), EngineError> {
    if let Err(EngineError::InvalidName { name, reason }) = validate_name(base) {
        return Err(EngineError::InvalidBase { name, reason });
    }
    if base == device {
        return Err(EngineError::InvalidBase {
            name: base.to_owned(),
            reason: "it is the name of the ioband bdev itself",
        });
    }
    Ok(())
}

/// Handle of a share, for the I/O path: no name lookup. It goes stale (and finds nothing)
/// when the share is removed, even if another share later takes its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShareId {
    index: u32,
    generation: u32,
}

impl ShareId {
    /// The handle as one number: which incarnation of a share a replica mirrors.
    pub fn incarnation(self) -> u64 {
        (u64::from(self.index) << 32) | u64::from(self.generation)
    }
}

/// Where a device lives: its share's name and handle, and its index there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRef {
    /// Name of the share.
    pub share: String,
    /// Handle of the share.
    pub share_id: ShareId,
    /// Index in the share.
    pub device: DeviceIdx,
}

#[derive(Debug)]
struct ShareSlot<T> {
    generation: u32,
    share: Option<Share<T>>,
}

/// All shares and devices of one host.
#[derive(Debug)]
pub struct Engine<T> {
    ticks_per_sec: u64,
    /// Share name to its slot.
    names: BTreeMap<String, u32>,
    slots: Vec<ShareSlot<T>>,
    devices: BTreeMap<String, String>,
    /// On a replica (see [`Engine::mirror`]): which incarnation of each share it mirrors.
    mirrored: BTreeMap<String, u64>,
}

impl<T> Engine<T> {
    /// An empty engine whose shares count time in ticks of `ticks_per_sec`.
    pub fn new(ticks_per_sec: u64) -> Self {
        Engine {
            ticks_per_sec,
            names: BTreeMap::new(),
            slots: Vec::new(),
            devices: BTreeMap::new(),
            mirrored: BTreeMap::new(),
        }
    }

    fn id_of(&self, index: u32) -> ShareId {
        ShareId {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    /// A share by handle (the I/O path's lookup).
    pub fn share_by_id(&self, id: ShareId) -> Option<&Share<T>> {
        let slot = self.slots.get(id.index as usize)?;
        (slot.generation == id.generation).then_some(slot.share.as_ref())?
    }

    /// A share by handle, to drive or change.
    pub fn share_by_id_mut(&mut self, id: ShareId) -> Option<&mut Share<T>> {
        let slot = self.slots.get_mut(id.index as usize)?;
        (slot.generation == id.generation).then_some(slot.share.as_mut())?
    }

    /// The handle of a share.
    pub fn share_id(&self, share: &str) -> Result<ShareId, EngineError> {
        self.names
            .get(share)
            .map(|&i| self.id_of(i))
            .ok_or_else(|| EngineError::NoSuchShare(share.to_owned()))
    }

    fn insert_share(&mut self, share: Share<T>) -> u32 {
        let name = share.name().to_owned();
        let index = match self.slots.iter().position(|s| s.share.is_none()) {
            Some(i) => {
                self.slots[i].share = Some(share);
                i
            }
            None => {
                self.slots.push(ShareSlot {
                    generation: 0,
                    share: Some(share),
                });
                self.slots.len() - 1
            }
        };
        let index = crate::heap::index_u32(index);
        self.names.insert(name, index);
        index
    }

    fn remove_share(&mut self, share: &str) {
        if let Some(index) = self.names.remove(share) {
            let slot = &mut self.slots[index as usize];
            slot.share = None;
            slot.generation = slot.generation.wrapping_add(1);
        }
    }

    /// Creates an ioband device in `share`, creating the share with `params` if it does not
    /// exist. When it does, `params` must be `None` or equal to the share's knobs: a create
    /// never changes an existing share behind the user's back.
    pub fn create_device(
        &mut self,
        device: &str,
        share: &str,
        params: Option<ShareParams>,
    ) -> Result<DeviceRef, EngineError> {
        self.create_device_bound(device, share, params, None)
    }

    /// [`Engine::create_device`], the device bound to group `bound` when given: every I/O
    /// through it that no attached group claims counts to that group (see [`Share`]'s
    /// bound groups). A bound group is refused ([`EngineError::Binding`], nothing created)
    /// when it is `none`, or bound to or attached on a device of the share already.
    pub fn create_device_bound(
        &mut self,
        device: &str,
        share: &str,
        params: Option<ShareParams>,
        bound: Option<&GroupKey>,
    ) -> Result<DeviceRef, EngineError> {
        validate_name(device)?;
        validate_name(share)?;
        if self.devices.contains_key(device) {
            return Err(EngineError::DeviceExists(device.to_owned()));
        }
        let existing = self.names.get(share).copied();
        // A name may be both a share and a device only when the device is in that share
        // (the default: a device's share takes its name).
        if device != share && self.names.contains_key(device) {
            return Err(EngineError::NameTaken {
                name: device.to_owned(),
                taken_by: "a share",
            });
        }
        if existing.is_none() && self.devices.contains_key(share) {
            return Err(EngineError::NameTaken {
                name: share.to_owned(),
                taken_by: "an ioband device",
            });
        }
        let (index, idx) = match existing {
            Some(index) => {
                let Some(existing) = self.slots[index as usize].share.as_mut() else {
                    return Err(EngineError::NoSuchShare(share.to_owned()));
                };
                if let Some(p) = params {
                    // The base's queue depth is the host's business, not a knob to agree on.
                    let p = ShareParams {
                        nr_requests: existing.params().nr_requests,
                        ..p
                    };
                    if p != *existing.params() {
                        return Err(EngineError::Parse(format!(
                            "share '{share}' exists with other parameters; \
                             change them with set_device, or omit them here"
                        )));
                    }
                }
                (index, existing.add_device_bound(device, bound)?)
            }
            None => {
                let mut fresh = Share::new(share, params.unwrap_or_default(), self.ticks_per_sec)?;
                let idx = fresh.add_device_bound(device, bound)?;
                (self.insert_share(fresh), idx)
            }
        };
        self.devices.insert(device.to_owned(), share.to_owned());
        Ok(DeviceRef {
            share: share.to_owned(),
            share_id: self.id_of(index),
            device: idx,
        })
    }

    /// Deletes a device; the share goes with its last device. Returns the I/O that was
    /// queued on it, for the host to complete.
    pub fn delete_device(&mut self, device: &str) -> Result<Vec<T>, EngineError> {
        let r = self.device(device)?;
        let share = self
            .share_by_id_mut(r.share_id)
            .ok_or_else(|| no_device(device))?;
        let drained = share.remove_device(r.device)?;
        if share.device_count() == 0 {
            self.remove_share(&r.share);
        }
        self.devices.remove(device);
        Ok(drained)
    }

    /// Takes the I/O queued on a device (see [`Share::drain_device`]); nothing else of the
    /// device or its share changes.
    pub fn drain_device(&mut self, device: &str) -> Result<Vec<T>, EngineError> {
        let r = self.device(device)?;
        self.share_by_id_mut(r.share_id)
            .ok_or_else(|| no_device(device))?
            .drain_device(r.device)
    }

    /// Makes this engine a replica of another's `shares` (name, incarnation: the owner's
    /// [`ShareId::incarnation`], layout): shares missing or of another incarnation are
    /// (re)created, every share takes on its layout ([`Share::mirror`]), shares not
    /// listed go. Returns the queued I/O of what went, in order, for the host to fail.
    pub fn mirror(&mut self, shares: &[(String, u64, crate::ShareLayout)]) -> Vec<T> {
        let mut drained = Vec::new();
        let listed: BTreeMap<&str, u64> = shares.iter().map(|(n, i, _)| (n.as_str(), *i)).collect();
        let gone: Vec<String> = self
            .names
            .keys()
            .filter(|n| listed.get(n.as_str()) != self.mirrored.get(n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            if let Some(&index) = self.names.get(&name) {
                if let Some(mut share) = self.slots[index as usize].share.take() {
                    let devices: Vec<DeviceIdx> = share.device_names().map(|(d, _)| d).collect();
                    for d in devices {
                        drained.extend(share.remove_device(d).unwrap_or_default());
                    }
                }
                self.slots[index as usize].share = None;
            }
            self.remove_share(&name);
            self.mirrored.remove(&name);
        }
        for (name, incarnation, layout) in shares {
            if !self.names.contains_key(name) {
                let Ok(share) = Share::new(name, layout.params, self.ticks_per_sec) else {
                    continue;
                };
                self.insert_share(share);
                self.mirrored.insert(name.clone(), *incarnation);
            }
            if let Ok(share) = self.share_mut(name) {
                drained.extend(share.mirror(layout));
            }
        }
        self.devices = self
            .shares()
            .flat_map(|s| {
                s.device_names()
                    .map(|(_, d)| (d.to_owned(), s.name().to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect();
        drained
    }

    /// Makes every share that does not span cores yet one of `cores` replicas (see
    /// [`Share::span_cores`]): what a host does after creating or mirroring shares.
    pub fn span_cores(&mut self, cores: u32) {
        for slot in &mut self.slots {
            if let Some(share) = slot.share.as_mut() {
                if !share.spans_cores() {
                    share.span_cores(cores);
                }
            }
        }
    }

    /// The owner's incarnation of share `name` as this engine knows it: on a replica the
    /// one it mirrors, on the owner its own (see [`ShareId::incarnation`]).
    pub fn incarnation_of(&self, name: &str) -> Option<u64> {
        self.names.get(name).map(|&i| self.incarnation_at(i, name))
    }

    /// [`Engine::incarnation_of`] the share `name` in slot `index`.
    fn incarnation_at(&self, index: u32, name: &str) -> u64 {
        self.mirrored
            .get(name)
            .copied()
            .unwrap_or_else(|| self.id_of(index).incarnation())
    }

    /// This core's report for share `id` (see [`Share::span_report`]), stamped with
    /// [`Engine::incarnation_of`] the share; `None` for a stale handle.
    pub fn span_report(&mut self, id: ShareId, now_ticks: u64) -> Option<crate::CoreReport> {
        let incarnation = self.incarnation_at(id.index, self.share_by_id(id)?.name());
        let mut report = crate::CoreReport {
            incarnation,
            ..crate::CoreReport::default()
        };
        self.share_by_id_mut(id)?
            .span_report(now_ticks, &mut report);
        Some(report)
    }

    /// This core's report for every share, by share name ([`Engine::span_report`]).
    pub fn span_reports(&mut self, now_ticks: u64) -> Vec<(String, crate::CoreReport)> {
        let ids: Vec<ShareId> = self.share_ids().collect();
        ids.into_iter()
            .filter_map(|id| {
                let report = self.span_report(id, now_ticks)?;
                Some((self.share_by_id(id)?.name().to_owned(), report))
            })
            .collect()
    }

    /// The tick rate every share of this engine counts in.
    pub fn ticks_per_sec(&self) -> u64 {
        self.ticks_per_sec
    }

    /// Finds a device by name.
    pub fn device(&self, device: &str) -> Result<DeviceRef, EngineError> {
        let share_name = self.devices.get(device).ok_or_else(|| no_device(device))?;
        let share_id = self.share_id(share_name).map_err(|_| no_device(device))?;
        let share = self
            .share_by_id(share_id)
            .ok_or_else(|| no_device(device))?;
        let idx = share
            .device_by_name(device)
            .ok_or_else(|| no_device(device))?;
        Ok(DeviceRef {
            share: share_name.clone(),
            share_id,
            device: idx,
        })
    }

    /// Where a device lives, without allocating (the I/O path's lookup by name).
    pub fn device_handle(&self, device: &str) -> Result<(ShareId, DeviceIdx), EngineError> {
        let share_name = self.devices.get(device).ok_or_else(|| no_device(device))?;
        let share_id = self.share_id(share_name).map_err(|_| no_device(device))?;
        let share = self
            .share_by_id(share_id)
            .ok_or_else(|| no_device(device))?;
        let idx = share
            .device_by_name(device)
            .ok_or_else(|| no_device(device))?;
        Ok((share_id, idx))
    }

    /// A share by name.
    pub fn share(&self, share: &str) -> Result<&Share<T>, EngineError> {
        let id = self.share_id(share)?;
        self.share_by_id(id)
            .ok_or_else(|| EngineError::NoSuchShare(share.to_owned()))
    }

    /// A share by name, to change or to drive.
    pub fn share_mut(&mut self, share: &str) -> Result<&mut Share<T>, EngineError> {
        let id = self.share_id(share)?;
        self.share_by_id_mut(id)
            .ok_or_else(|| EngineError::NoSuchShare(share.to_owned()))
    }

    /// The share a share or device name refers to (as `devices` writes address them): a
    /// share of that name first, else the share of the device of that name.
    pub fn share_of(&mut self, share_or_device: &str) -> Result<&mut Share<T>, EngineError> {
        let name = if self.names.contains_key(share_or_device) {
            share_or_device.to_owned()
        } else {
            match self.devices.get(share_or_device) {
                Some(share) => share.clone(),
                None => return Err(EngineError::NoSuchDevice(share_or_device.to_owned())),
            }
        };
        self.share_mut(&name)
    }

    /// Every share, by name.
    pub fn shares(&self) -> impl Iterator<Item = &Share<T>> {
        self.names
            .values()
            .filter_map(|&i| self.slots[i as usize].share.as_ref())
    }

    /// Every share's handle, by name.
    pub fn share_ids(&self) -> impl Iterator<Item = ShareId> + '_ {
        self.names.values().map(|&i| self.id_of(i))
    }

    /// Every device name, sorted.
    pub fn device_names(&self) -> impl Iterator<Item = &str> {
        self.devices.keys().map(String::as_str)
    }

    /// Changes the knobs of the share named directly or through one of its devices.
    pub fn set_share_params(
        &mut self,
        share_or_device: &str,
        params: ShareParams,
    ) -> Result<(), EngineError> {
        self.share_of(share_or_device)?.set_params(params)
    }

    /// Attaches a group (with a value), or sets its value if it is attached: the `settings`
    /// write. `None` as value on an attached group detaches it.
    ///
    /// The value's form says what it sets, under every policy, as the `devices` messages
    /// `weight` and `range-bw` do: a weight sets the group's weight, a range its min and
    /// max; the policy only decides which one schedules (see
    /// [`GroupValue::set_in`]). Changes nothing on error.
    pub fn write_setting(
        &mut self,
        device: &str,
        key: &GroupKey,
        value: Option<GroupValue>,
    ) -> Result<(), EngineError> {
        let r = self.device_for_group(device, key)?;
        let share = self.share_mut(&r.share)?;
        let old = if *key == GroupKey::None {
            Some(share.group_info(r.device, key)?.0)
        } else {
            share.group_info(r.device, key).ok().map(|(p, _)| p)
        };
        match (old, value) {
            (Some(old), Some(v)) => share.set_group(r.device, key, v.set_in(old)),
            (Some(_), None) => share.detach(r.device, key),
            (None, Some(v)) => {
                let params = v.set_in(GroupParams::default());
                params.validate()?;
                share.attach(r.device, key.clone(), None)?;
                // Σmin against capacity is checked here; a refusal takes the fresh group
                // (nothing queued on it yet) back out, so nothing changed.
                share.set_group(r.device, key, params).inspect_err(|_| {
                    let _ = share.detach(r.device, key);
                })
            }
            (None, None) => Err(EngineError::NoSuchGroup {
                device: device.to_owned(),
                group: key.to_string(),
            }),
        }
    }

    /// The device a settings write or read for `key` addresses by `name`: the device of that
    /// name; else, when `name` is a share and `key` a group bound to or attached on one of
    /// its devices, that device (so a tenant's group is reached by the share's name and its
    /// own, whichever ioband bdev it is bound to). [`EngineError::NoSuchDevice`] when `name`
    /// is neither, [`EngineError::NoSuchGroup`] when the share has no device with `key`.
    pub fn device_for_group(&self, name: &str, key: &GroupKey) -> Result<DeviceRef, EngineError> {
        if let Ok(found) = self.device(name) {
            return Ok(found);
        }
        let share_id = self.share_id(name).map_err(|_| no_device(name))?;
        let share = self.share_by_id(share_id).ok_or_else(|| no_device(name))?;
        match share.device_with_group(key) {
            Some((device, _)) => Ok(DeviceRef {
                share: name.to_owned(),
                share_id,
                device,
            }),
            None if *key == GroupKey::None => Err(no_device(name)),
            None => Err(EngineError::NoSuchGroup {
                device: name.to_owned(),
                group: key.to_string(),
            }),
        }
    }

    /// The group device `device` is bound to, if it is bound.
    pub fn bound_group(&self, device: &str) -> Result<Option<GroupKey>, EngineError> {
        let r = self.device(device)?;
        Ok(self.share(&r.share)?.bound_group(r.device)?.cloned())
    }

    /// Every group of a device with its parameters and counters.
    pub fn groups_of(
        &self,
        device: &str,
    ) -> Result<Vec<(GroupKey, GroupParams, GroupStats)>, EngineError> {
        let r = self.device(device)?;
        self.share(&r.share)?.groups_of(r.device)
    }
}

fn no_device(device: &str) -> EngineError {
    EngineError::NoSuchDevice(device.to_owned())
}
