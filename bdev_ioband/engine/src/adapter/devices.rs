//! The adapter's device table: a slab of the host's ioband devices by generation-checked
//! handle ([`DevHandle`]), each with where it lives in the engine (share handle, index in
//! the share), the base it sits on ([`BaseIdx`], for per-base parking), how many of its
//! I/O are at the base, its group cache, and the host's own data for it (a base channel,
//! a name).
//!
//! A handle names one incarnation of a slot: a device deleted and another created in the
//! same slot get different generations, so an I/O stamped with the old handle finds
//! nothing ([`DeviceTable::get`] is `None`) and never touches the new device's counts. A
//! deleted device stays in its slot (flagged) until the host reaps it with nothing of it
//! at the base and nothing parked, so its own late completions still find it.
//!
//! Two ways to fill a table: the owner's ([`DeviceTable::insert`]) hands out handles; a
//! replica of the owner on another thread mirrors them ([`DeviceTable::insert_at`], the
//! owner's handle). A replica may hear of a new incarnation of a slot while the old one
//! still has I/O at the base: the old entry then moves to a short retired list, where
//! its completions still find it until it is reaped.
//!
//! Owned by the thread that owns the adapter; no locks, and no allocation on the I/O path
//! (only `insert`/`insert_at` grow the table, on the control path).

use super::group_cache::GroupCache;
use crate::{DeviceIdx, ShareId};

/// A generation-checked handle of a device in a [`DeviceTable`]. The default handle
/// (generation 0) names no device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DevHandle {
    index: u32,
    generation: u32,
}

impl DevHandle {
    /// The handle as one number (index in the high half), e.g. to send to a replica.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.index) << 32) | u64::from(self.generation)
    }

    /// The handle [`DevHandle::to_u64`] made.
    pub fn from_u64(v: u64) -> DevHandle {
        DevHandle {
            index: u32::try_from(v >> 32).unwrap_or(u32::MAX),
            generation: u32::try_from(v & u64::from(u32::MAX)).unwrap_or(0),
        }
    }
}

/// A base (the device below an ioband device) as the host numbers them: I/O parks per
/// base. Small and dense (an index into the parking queues).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BaseIdx(pub u32);

impl BaseIdx {
    #[inline]
    pub(super) fn index(self) -> usize {
        self.0 as usize
    }
}

/// The host's bases by name, numbered in first-seen order for the parking queues (never
/// shrinks: a few entries; owned by the thread that creates devices).
#[derive(Debug, Default)]
pub struct BaseNames(Vec<String>);

impl BaseNames {
    /// The number of base `name`, given it on first sight.
    pub fn index(&mut self, name: &str) -> BaseIdx {
        let i = match self.0.iter().position(|b| b == name) {
            Some(i) => i,
            None => {
                self.0.push(name.to_owned());
                self.0.len() - 1
            }
        };
        BaseIdx(u32::try_from(i).unwrap_or(u32::MAX))
    }
}

/// One device of the table.
#[derive(Debug)]
pub struct Device<D> {
    /// The host's data for the device.
    pub data: D,
    share: ShareId,
    device: DeviceIdx,
    base: BaseIdx,
    in_flight_ios: u64,
    deleted: bool,
    pub(super) groups: GroupCache,
}

impl<D> Device<D> {
    /// The share it belongs to (the engine's handle).
    pub fn share(&self) -> ShareId {
        self.share
    }

    /// Its index in that share.
    pub fn device(&self) -> DeviceIdx {
        self.device
    }

    /// Its base.
    pub fn base(&self) -> BaseIdx {
        self.base
    }

    /// Its I/O at the base (submitted, not completed).
    pub fn in_flight_ios(&self) -> u64 {
        self.in_flight_ios
    }

    /// Whether it was deleted (kept until reaped).
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    #[inline]
    pub(super) fn note_at_base(&mut self) {
        self.in_flight_ios += 1;
    }

    #[inline]
    pub(super) fn note_back(&mut self) {
        self.in_flight_ios = self.in_flight_ios.saturating_sub(1);
    }
}

#[derive(Debug)]
struct Slot<D> {
    generation: u32,
    dev: Option<Device<D>>,
}

/// What [`DeviceTable::insert_at`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mirrored {
    /// A new entry.
    Added,
    /// The entry of that handle existed: its share and index were updated.
    Updated,
    /// The slot holds a newer incarnation: nothing changed.
    Stale,
}

/// The device table; see the module doc.
#[derive(Debug)]
pub struct DeviceTable<D> {
    slots: Vec<Slot<D>>,
    free: Vec<u32>,
    retired: Vec<(DevHandle, Device<D>)>,
    len: usize,
}

impl<D> Default for DeviceTable<D> {
    fn default() -> Self {
        DeviceTable {
            slots: Vec::new(),
            free: Vec::new(),
            retired: Vec::new(),
            len: 0,
        }
    }
}

fn entry<D>(share: ShareId, device: DeviceIdx, base: BaseIdx, data: D) -> Device<D> {
    Device {
        data,
        share,
        device,
        base,
        in_flight_ios: 0,
        deleted: false,
        groups: GroupCache::default(),
    }
}

impl<D> DeviceTable<D> {
    /// Adds a device (owner side): a free slot's next generation, or a new slot.
    pub fn insert(
        &mut self,
        share: ShareId,
        device: DeviceIdx,
        base: BaseIdx,
        data: D,
    ) -> DevHandle {
        let dev = entry(share, device, base, data);
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.generation = slot.generation.wrapping_add(1).max(1);
            slot.dev = Some(dev);
            return DevHandle {
                index,
                generation: slot.generation,
            };
        }
        let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot {
            generation: 1,
            dev: Some(dev),
        });
        DevHandle {
            index,
            generation: 1,
        }
    }

    /// The handle the next [`DeviceTable::insert`] returns (for a host whose device data
    /// holds its own handle).
    pub fn next_handle(&self) -> DevHandle {
        match self.free.last() {
            Some(&index) => DevHandle {
                index,
                generation: self.slots[index as usize].generation.wrapping_add(1).max(1),
            },
            None => DevHandle {
                index: u32::try_from(self.slots.len()).unwrap_or(u32::MAX),
                generation: 1,
            },
        }
    }

    /// Adds or updates the device of handle `h` (a replica mirroring the owner's table).
    /// An older incarnation in the slot is retired (flagged deleted) until reaped.
    pub fn insert_at(
        &mut self,
        h: DevHandle,
        share: ShareId,
        device: DeviceIdx,
        base: BaseIdx,
        data: D,
    ) -> Mirrored {
        let i = h.index as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || Slot {
                generation: 0,
                dev: None,
            });
        }
        let slot = &mut self.slots[i];
        if let Some(old) = slot.dev.as_mut() {
            if slot.generation == h.generation {
                old.share = share;
                old.device = device;
                old.base = base;
                return Mirrored::Updated;
            }
            if slot.generation > h.generation {
                return Mirrored::Stale;
            }
        }
        if let Some(mut old) = slot.dev.take() {
            old.deleted = true;
            self.retired.push((
                DevHandle {
                    index: h.index,
                    generation: slot.generation,
                },
                old,
            ));
        } else {
            self.len += 1;
        }
        slot.generation = h.generation;
        slot.dev = Some(entry(share, device, base, data));
        Mirrored::Added
    }

    /// The device of `h`, deleted or not; `None` for a handle of another incarnation.
    #[inline(always)]
    pub fn get(&self, h: DevHandle) -> Option<&Device<D>> {
        match self.slots.get(h.index as usize) {
            Some(s) if s.generation == h.generation => s.dev.as_ref(),
            _ => self.retired_get(h),
        }
    }

    /// As [`DeviceTable::get`], mutable.
    #[inline(always)]
    pub fn get_mut(&mut self, h: DevHandle) -> Option<&mut Device<D>> {
        let i = h.index as usize;
        if !self
            .slots
            .get(i)
            .is_some_and(|s| s.generation == h.generation)
        {
            return self.retired_get_mut(h);
        }
        self.slots.get_mut(i).and_then(|s| s.dev.as_mut())
    }

    #[cold]
    fn retired_get(&self, h: DevHandle) -> Option<&Device<D>> {
        self.retired.iter().find(|(r, _)| *r == h).map(|(_, d)| d)
    }

    #[cold]
    fn retired_get_mut(&mut self, h: DevHandle) -> Option<&mut Device<D>> {
        self.retired
            .iter_mut()
            .find(|(r, _)| *r == h)
            .map(|(_, d)| d)
    }

    /// The device of `h` if it is not deleted.
    #[inline(always)]
    pub fn live_mut(&mut self, h: DevHandle) -> Option<&mut Device<D>> {
        self.get_mut(h).filter(|d| !d.deleted)
    }

    /// The device of `h` if it is not deleted.
    #[inline]
    pub fn live(&self, h: DevHandle) -> Option<&Device<D>> {
        self.get(h).filter(|d| !d.deleted)
    }

    /// Updates where device `h` lives in the engine (a replica's share re-created).
    pub fn set_route(&mut self, h: DevHandle, share: ShareId, device: DeviceIdx) -> bool {
        match self.live_mut(h) {
            Some(d) => {
                d.share = share;
                d.device = device;
                true
            }
            None => false,
        }
    }

    /// Flags device `h` deleted: it takes no new I/O, its late completions still find it.
    pub fn mark_deleted(&mut self, h: DevHandle) -> bool {
        match self.get_mut(h) {
            Some(d) => {
                d.deleted = true;
                true
            }
            None => false,
        }
    }

    /// Removes device `h` now, whatever it holds (a host that tracks its I/O otherwise).
    pub fn remove(&mut self, h: DevHandle) -> Option<Device<D>> {
        if let Some(pos) = self.retired.iter().position(|(r, _)| *r == h) {
            return Some(self.retired.swap_remove(pos).1);
        }
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        let dev = slot.dev.take()?;
        self.free.push(h.index);
        self.len -= 1;
        Some(dev)
    }

    /// Removes the deleted devices with nothing at the base and for which `held` (does
    /// anything else hold I/O of it, e.g. the parking queues) says no; returns how many.
    pub fn reap(&mut self, held: impl Fn(DevHandle) -> bool) -> usize {
        let before = self.retired.len();
        self.retired
            .retain(|(h, d)| d.in_flight_ios != 0 || held(*h));
        let mut n = before - self.retired.len();
        for (index, slot) in (0u32..).zip(self.slots.iter_mut()) {
            let h = DevHandle {
                index,
                generation: slot.generation,
            };
            if slot
                .dev
                .as_ref()
                .is_some_and(|d| d.deleted && d.in_flight_ios == 0 && !held(h))
            {
                slot.dev = None;
                self.free.push(index);
                self.len -= 1;
                n += 1;
            }
        }
        n
    }

    /// Every device in a slot (not the retired ones), by slot.
    pub fn iter(&self) -> impl Iterator<Item = (DevHandle, &Device<D>)> {
        (0u32..).zip(self.slots.iter()).filter_map(|(index, s)| {
            let d = s.dev.as_ref()?;
            Some((
                DevHandle {
                    index,
                    generation: s.generation,
                },
                d,
            ))
        })
    }

    /// Every device, retired ones included, mutable.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(DevHandle, &mut Device<D>)) {
        for (index, s) in (0u32..).zip(self.slots.iter_mut()) {
            let h = DevHandle {
                index,
                generation: s.generation,
            };
            if let Some(d) = s.dev.as_mut() {
                f(h, d);
            }
        }
        for (h, d) in &mut self.retired {
            f(*h, d);
        }
    }

    /// Devices in slots (deleted ones included, retired ones not).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no device in a slot.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
