//! Replicas of a share: the layout the control core's share sends to the replicas on
//! the other cores, how a replica takes it on, and the other cores' counters that the
//! control core's share adds to its own.
//!
//! A share that spans cores (see the span module) has one replica per core. Only the
//! control core's replica is changed by the control plane (attach, detach, values, knobs,
//! devices); after each change it sends its [`ShareLayout`] to the others, and each
//! applies it with [`Share::mirror`]: the same devices and groups, in the same slots with
//! the same generations, so that a group's handle and the hub's per-slot sums mean the
//! same group on every core. What a replica loses in a change goes where it would on the
//! control core: a detached group's queued I/O to its device's default group, a removed
//! device's queued I/O back to the host to fail.
//!
//! Counters: each replica counts its own I/O. The control core's replica receives the
//! other cores' counters with their reports ([`Share::set_remote_stats`]) and every
//! reader (iostat, settings) sees the sum. A reset keeps the other cores' counters as a
//! baseline to subtract, so no message is needed and a report in flight changes nothing.
//!
//! Owned by the core of its replica.

use super::{index_u32, Device, Share};
use crate::group::{GroupKey, GroupStats};
use crate::params::{GroupParams, ShareParams};

/// One group slot of a share's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotLayout {
    /// The slot's generation.
    pub generation: u32,
    /// Its group, if any: device index, key and params.
    pub group: Option<(u32, GroupKey, GroupParams)>,
}

/// What a replica needs to hold the same devices and groups as the control core's share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareLayout {
    /// The knobs.
    pub params: ShareParams,
    /// Per device index: its name and default group's slot.
    pub devices: Vec<Option<(String, u32)>>,
    /// Per group slot.
    pub slots: Vec<SlotLayout>,
}

/// The other cores' counters of one group slot, and the baseline a reset left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct RemoteStats {
    generation: u32,
    sum: GroupStats,
    base: GroupStats,
}

impl<T> Share<T> {
    /// This share's layout, for its replicas.
    pub fn layout(&self) -> ShareLayout {
        ShareLayout {
            params: self.params,
            devices: self
                .devices
                .iter()
                .map(|d| d.as_ref().map(|d| (d.name.clone(), d.default_slot)))
                .collect(),
            slots: self
                .slots
                .iter()
                .map(|s| SlotLayout {
                    generation: s.generation,
                    group: s
                        .group
                        .as_ref()
                        .map(|g| (g.device, g.key.clone(), g.params)),
                })
                .collect(),
        }
    }

    /// Takes on `layout` (see the module doc). Returns the queued I/O of removed devices,
    /// in order, for the host to fail.
    pub fn mirror(&mut self, layout: &ShareLayout) -> Vec<T> {
        let mut drained = Vec::new();
        // Devices gone or replaced: their groups go, queued I/O back to the host.
        for i in 0..self.devices.len() {
            let same = match (
                &self.devices[i],
                layout.devices.get(i).and_then(Option::as_ref),
            ) {
                (Some(d), Some((name, default_slot))) => {
                    d.name == *name && d.default_slot == *default_slot
                }
                (None, _) => true,
                (Some(_), None) => false,
            };
            if !same {
                if let Ok(queued) = self.remove_device(super::DeviceIdx(index_u32(i))) {
                    drained.extend(queued);
                }
            }
        }
        // Groups gone or replaced: their queued I/O waits for its device's default group.
        let mut orphans = Vec::new();
        for slot in 0..self.slots.len() {
            let Some(g) = self.slots[slot].group.as_ref() else {
                continue;
            };
            let keep = layout.slots.get(slot).is_some_and(|l| {
                l.generation == self.slots[slot].generation
                    && l.group
                        .as_ref()
                        .is_some_and(|(dev, key, _)| *dev == g.device && *key == g.key)
            });
            if !keep {
                if let Some(group) = self.free_slot(index_u32(slot)) {
                    orphans.push((group.device, group.queue));
                }
            }
        }
        if layout.params != self.params {
            self.apply_params(layout.params);
        }
        // Groups new or changed, in their slots and generations.
        for (slot, l) in layout.slots.iter().enumerate() {
            let slot32 = index_u32(slot);
            match (
                &l.group,
                self.slots.get(slot).and_then(|s| s.group.as_ref()),
            ) {
                (Some((_, _, params)), Some(g)) => {
                    if g.params != *params {
                        let old = g.params;
                        self.apply_group_params(slot32, old, *params);
                    }
                }
                (Some((dev, key, params)), None) => {
                    self.place_group(Some(slot32), key.clone(), *dev, *params);
                }
                (None, _) => {}
            }
            if let Some(entry) = self.slots.get_mut(slot) {
                entry.generation = l.generation;
            }
        }
        // Devices and their group tables, from the slots.
        self.devices.resize_with(layout.devices.len(), || None);
        for (i, d) in layout.devices.iter().enumerate() {
            self.devices[i] = d.as_ref().map(|(name, default_slot)| Device {
                name: name.clone(),
                default_slot: *default_slot,
                groups: std::collections::HashMap::new(),
            });
        }
        for (slot, entry) in self.slots.iter().enumerate() {
            let Some(g) = entry.group.as_ref() else {
                continue;
            };
            // A default group (its key `none`, or the device's bound group) is not in the
            // device's table of attached groups.
            if let Some(Some(device)) = self.devices.get_mut(g.device as usize) {
                if device.default_slot != index_u32(slot) {
                    device.groups.insert(g.key.clone(), index_u32(slot));
                }
            }
        }
        self.free_slots = (0..self.slots.len())
            .rev()
            .filter(|&s| self.slots[s].group.is_none())
            .map(index_u32)
            .collect();
        // Orphaned queues join their device's default group, in order.
        let now_sub = self.last_now_subticks;
        for (device, queue) in orphans {
            let default_slot = match self.devices.get(device as usize) {
                Some(Some(d)) => d.default_slot,
                _ => {
                    drained.extend(queue.into_iter().map(|p| p.io));
                    continue;
                }
            };
            if queue.is_empty() {
                continue;
            }
            self.wake(default_slot, now_sub);
            if let Some(g) = self.slots[default_slot as usize].group.as_mut() {
                g.queue.extend(queue);
                g.stats.queue_depth = g.queue.len() as u64;
            }
            self.reposition(default_slot, now_sub);
        }
        drained
    }

    /// Records the other cores' counters of the group in `slot` (generation `generation`).
    pub fn set_remote_stats(&mut self, slot: u32, generation: u32, sum: GroupStats) {
        let i = slot as usize;
        if self.remote_stats.len() <= i {
            self.remote_stats.resize(i + 1, RemoteStats::default());
        }
        let r = &mut self.remote_stats[i];
        if r.generation != generation {
            *r = RemoteStats {
                generation,
                ..RemoteStats::default()
            };
        }
        r.sum = sum;
    }

    /// The group's counters: its own and, on the control core, the other cores'.
    pub(super) fn stats_of(&self, slot: u32, g: &super::Group<T>) -> GroupStats {
        let generation = self.slots[slot as usize].generation;
        match self.remote_stats.get(slot as usize) {
            Some(r) if r.generation == generation => add_stats(&g.stats, &r.sum, &r.base),
            _ => g.stats,
        }
    }

    /// A reset keeps what the other cores had counted as the baseline.
    pub(super) fn reset_remote_stats(&mut self, slot: u32) {
        if let Some(r) = self.remote_stats.get_mut(slot as usize) {
            r.base = GroupStats {
                queue_depth: 0,
                in_flight: 0,
                ..r.sum
            };
        }
    }
}

/// `own + (sum - base)`, counters only; gauges (queue depth, in flight) add as they are.
fn add_stats(own: &GroupStats, sum: &GroupStats, base: &GroupStats) -> GroupStats {
    let c = |o: u64, s: u64, b: u64| o + s.saturating_sub(b);
    GroupStats {
        read_ios: c(own.read_ios, sum.read_ios, base.read_ios),
        read_bytes: c(own.read_bytes, sum.read_bytes, base.read_bytes),
        write_ios: c(own.write_ios, sum.write_ios, base.write_ios),
        write_bytes: c(own.write_bytes, sum.write_bytes, base.write_bytes),
        other_ios: c(own.other_ios, sum.other_ios, base.other_ios),
        dispatched_ios: c(own.dispatched_ios, sum.dispatched_ios, base.dispatched_ios),
        dispatched_bytes: c(
            own.dispatched_bytes,
            sum.dispatched_bytes,
            base.dispatched_bytes,
        ),
        dispatched_cost: c(
            own.dispatched_cost,
            sum.dispatched_cost,
            base.dispatched_cost,
        ),
        throttled_ios: c(own.throttled_ios, sum.throttled_ios, base.throttled_ios),
        throttled_ticks: c(
            own.throttled_ticks,
            sum.throttled_ticks,
            base.throttled_ticks,
        ),
        completed_ios: c(own.completed_ios, sum.completed_ios, base.completed_ios),
        queue_depth: own.queue_depth + sum.queue_depth,
        in_flight: own.in_flight + sum.in_flight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::Op;
    use crate::params::GroupValue;

    fn tag(n: u32) -> GroupKey {
        GroupKey::Tag(n)
    }

    #[test]
    fn a_replica_follows_every_change_into_the_same_slots_and_keeps_its_queued_io() {
        let params = ShareParams {
            io_limit: 1,
            io_throttle: 1,
            ..ShareParams::default()
        };
        let mut owner: Share<u32> = Share::new("s", params, 1_000_000).unwrap();
        let mut replica: Share<u32> = Share::new("s", params, 1_000_000).unwrap();
        let a = owner.add_device("a").unwrap();
        owner
            .attach(a, tag(1), Some(GroupValue::Weight(300)))
            .unwrap();
        owner.attach(a, tag(2), None).unwrap();
        assert!(replica.mirror(&owner.layout()).is_empty());
        assert_eq!(replica.layout(), owner.layout());

        // I/O on the replica: one dispatched (io_limit 1), two queued in tag 2.
        let g2 = replica.group_id(a, &tag(2)).unwrap();
        let mut sent = Vec::new();
        for io in 0..3 {
            replica.submit(a, g2, io, Op::Read, 4096, 10, &mut |io, t| {
                sent.push((io, t))
            });
        }
        assert_eq!(sent.len(), 1);

        // Detach tag 2, re-weight tag 1, add a device and a group, switch policy.
        owner.detach(a, &tag(2)).unwrap();
        owner.set_value(a, &tag(1), GroupValue::Weight(50)).unwrap();
        owner
            .set_params(ShareParams {
                policy: crate::Policy::WeightIosize,
                ..params
            })
            .unwrap();
        let b = owner.add_device("b").unwrap();
        owner.attach(b, tag(7), None).unwrap();
        owner.attach(a, tag(3), None).unwrap();
        assert!(replica.mirror(&owner.layout()).is_empty());
        assert_eq!(replica.layout(), owner.layout());
        // The detached group's queue moved to the default group: still two queued.
        assert_eq!(replica.queued(), 2);
        // The re-created slot has a new generation: the old handle classifies to default.
        assert_ne!(replica.group_id(a, &tag(3)).unwrap(), g2);

        // Removing a device hands its queued I/O back.
        owner.remove_device(a).unwrap();
        let drained = replica.mirror(&owner.layout());
        assert_eq!(drained, vec![1, 2]);
        assert_eq!(replica.layout(), owner.layout());
    }

    #[test]
    fn remote_counters_add_up_and_a_reset_keeps_them_as_a_baseline() {
        let mut s: Share<u32> = Share::new("s", ShareParams::default(), 1_000_000).unwrap();
        let a = s.add_device("a").unwrap();
        let id = s.attach(a, tag(1), None).unwrap();
        let mut sent = Vec::new();
        s.submit(a, id, 0, Op::Read, 4096, 1, &mut |io, t| sent.push((io, t)));
        let remote = GroupStats {
            read_ios: 10,
            read_bytes: 40_960,
            in_flight: 3,
            ..GroupStats::default()
        };
        let slot = id.slot;
        s.set_remote_stats(slot, id.generation, remote);
        let (_, st) = s.group_info(a, &tag(1)).unwrap();
        assert_eq!((st.read_ios, st.in_flight), (11, 4));
        s.reset_stats(a).unwrap();
        let (_, st) = s.group_info(a, &tag(1)).unwrap();
        assert_eq!((st.read_ios, st.in_flight), (0, 4));
        s.set_remote_stats(
            slot,
            id.generation,
            GroupStats {
                read_ios: 15,
                ..remote
            },
        );
        assert_eq!(s.group_info(a, &tag(1)).unwrap().1.read_ios, 5);
    }
}
