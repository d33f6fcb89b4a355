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

/// Checks a share or device name.
pub fn validate_name(name: &str) -> Result<(), EngineError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME_LEN {
        "it is longer than 255 bytes"
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "it contains white space or control characters"
    } else {
        return Ok(());
    };
    Err(EngineError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Where a device lives: its share's name and its index there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRef {
    /// Name of the share.
    pub share: String,
    /// Index in the share.
    pub device: DeviceIdx,
}

/// All shares and devices of one host.
#[derive(Debug)]
pub struct Engine<T> {
    ticks_per_sec: u64,
    shares: BTreeMap<String, Share<T>>,
    devices: BTreeMap<String, String>,
}

impl<T> Engine<T> {
    /// An empty engine whose shares count time in ticks of `ticks_per_sec`.
    pub fn new(ticks_per_sec: u64) -> Self {
        Engine {
            ticks_per_sec,
            shares: BTreeMap::new(),
            devices: BTreeMap::new(),
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
        validate_name(device)?;
        validate_name(share)?;
        if self.devices.contains_key(device) {
            return Err(EngineError::DeviceExists(device.to_owned()));
        }
        let idx = match self.shares.get_mut(share) {
            Some(existing) => {
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
                existing.add_device(device)?
            }
            None => {
                let mut fresh = Share::new(share, params.unwrap_or_default(), self.ticks_per_sec)?;
                let idx = fresh.add_device(device)?;
                self.shares.insert(share.to_owned(), fresh);
                idx
            }
        };
        self.devices.insert(device.to_owned(), share.to_owned());
        Ok(DeviceRef {
            share: share.to_owned(),
            device: idx,
        })
    }

    /// Deletes a device; the share goes with its last device. Returns the I/O that was
    /// queued on it, for the host to complete.
    pub fn delete_device(&mut self, device: &str) -> Result<Vec<T>, EngineError> {
        let r = self.device(device)?;
        let share = self
            .shares
            .get_mut(&r.share)
            .ok_or_else(|| no_device(device))?;
        let drained = share.remove_device(r.device)?;
        if share.device_count() == 0 {
            self.shares.remove(&r.share);
        }
        self.devices.remove(device);
        Ok(drained)
    }

    /// The tick rate every share of this engine counts in.
    pub fn ticks_per_sec(&self) -> u64 {
        self.ticks_per_sec
    }

    /// Finds a device by name.
    pub fn device(&self, device: &str) -> Result<DeviceRef, EngineError> {
        let share_name = self.devices.get(device).ok_or_else(|| no_device(device))?;
        let share = self
            .shares
            .get(share_name)
            .ok_or_else(|| no_device(device))?;
        let idx = share
            .device_by_name(device)
            .ok_or_else(|| no_device(device))?;
        Ok(DeviceRef {
            share: share_name.clone(),
            device: idx,
        })
    }

    /// A share by name.
    pub fn share(&self, share: &str) -> Result<&Share<T>, EngineError> {
        self.shares
            .get(share)
            .ok_or_else(|| EngineError::NoSuchShare(share.to_owned()))
    }

    /// A share by name, to change or to drive.
    pub fn share_mut(&mut self, share: &str) -> Result<&mut Share<T>, EngineError> {
        self.shares
            .get_mut(share)
            .ok_or_else(|| EngineError::NoSuchShare(share.to_owned()))
    }

    /// The share a share or device name refers to (as `devices` writes address them): a
    /// share of that name first, else the share of the device of that name.
    pub fn share_of(&mut self, share_or_device: &str) -> Result<&mut Share<T>, EngineError> {
        let name = if self.shares.contains_key(share_or_device) {
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
        self.shares.values()
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
    pub fn write_setting(
        &mut self,
        device: &str,
        key: &GroupKey,
        value: Option<GroupValue>,
    ) -> Result<(), EngineError> {
        let r = self.device(device)?;
        let share = self.share_mut(&r.share)?;
        let attached = *key == GroupKey::None || share.group_info(r.device, key).is_ok();
        match (attached, value) {
            (true, Some(v)) => share.set_value(r.device, key, v),
            (true, None) => share.detach(r.device, key),
            (false, Some(v)) => share.attach(r.device, key.clone(), Some(v)).map(|_| ()),
            (false, None) => Err(EngineError::NoSuchGroup {
                device: device.to_owned(),
                group: key.to_string(),
            }),
        }
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
