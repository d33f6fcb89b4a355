//! A per-device cache of the engine's group handles by key, so that the I/O path does not
//! hash every I/O's group key with SipHash in the engine's map (`Share::group_id`, ~290
//! instructions per I/O measured with callgrind; a hit here is an index and a compare).
//!
//! Tags below [`TAG_SLOTS`] (the common `tag:<n>` tenants) have a slot each, indexed by the
//! tag itself; other keys share [`SLOTS`] direct-mapped entries. Valid for one control epoch of the module: every
//! mutable access to the engine (settings, attach, detach, create, delete) starts a new
//! epoch, and the first lookup after that empties the cache, so a cached handle never
//! outlives the configuration it was looked up in. Owned by the thread that owns the
//! adapter, inside its device entry (see [`super::devices`]).

use crate::{GroupId, GroupKey};

/// Hashed entries per device.
pub const SLOTS: usize = 64;
/// Tags with an entry of their own.
pub const TAG_SLOTS: usize = 256;

#[derive(Debug)]
/// The cache of one device; see the module doc.
pub struct GroupCache {
    epoch: u64,
    tags: Box<[Option<GroupId>]>,
    slots: Box<[Option<(GroupKey, GroupId)>]>,
}

impl Default for GroupCache {
    fn default() -> Self {
        GroupCache {
            epoch: 0,
            tags: vec![None; TAG_SLOTS].into_boxed_slice(),
            slots: vec![None; SLOTS].into_boxed_slice(),
        }
    }
}

/// The entry of its own of a small tag.
#[inline]
fn tag_index(key: &GroupKey) -> Option<usize> {
    match key {
        GroupKey::Tag(t) => usize::try_from(*t).ok().filter(|&t| t < TAG_SLOTS),
        _ => None,
    }
}

/// A cheap index for a key (Fibonacci hashing of a word made from it).
fn index(key: &GroupKey) -> usize {
    let word = match key {
        GroupKey::None => 0,
        GroupKey::Tag(t) => u64::from(*t),
        GroupKey::Cgroup(c) => *c,
        GroupKey::Initiator(name) => name.as_bytes().chunks(8).fold(name.len() as u64, |h, c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
        }),
    };
    // The top log2(SLOTS) bits of the product.
    let top = word.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros());
    usize::try_from(top).unwrap_or(0)
}

impl GroupCache {
    /// The cached handle of `key`, if it was looked up in `epoch`.
    #[inline]
    pub fn get(&mut self, key: &GroupKey, epoch: u64) -> Option<GroupId> {
        if self.epoch != epoch {
            self.tags.iter_mut().for_each(|s| *s = None);
            self.slots.iter_mut().for_each(|s| *s = None);
            self.epoch = epoch;
            return None;
        }
        if let Some(t) = tag_index(key) {
            return self.tags[t];
        }
        match &self.slots[index(key)] {
            Some((k, id)) if k == key => Some(*id),
            _ => None,
        }
    }

    /// Remembers `key`'s handle for the current epoch.
    pub fn put(&mut self, key: &GroupKey, id: GroupId) {
        if let Some(t) = tag_index(key) {
            self.tags[t] = Some(id);
            return;
        }
        self.slots[index(key)] = Some((key.clone(), id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_spread_and_stay_in_range() {
        let mut seen = [false; SLOTS];
        for t in 0..1000u32 {
            seen[index(&GroupKey::Tag(t))] = true;
        }
        assert!(seen.iter().filter(|s| **s).count() > SLOTS / 2);
        assert!(
            index(&GroupKey::Initiator(
                "nqn.2014-08.org.example:host-a".into()
            )) < SLOTS
        );
        assert!(index(&GroupKey::Cgroup(u64::MAX)) < SLOTS);
    }
}
