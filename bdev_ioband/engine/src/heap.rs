//! An indexed binary min-heap over group slots.
//!
//! Each slot is in the heap at most once, with a key that can be changed or removed in
//! O(log n) through a position table. Nothing allocates once [`IndexedHeap::reserve_slots`]
//! has covered the slot count, so the I/O path stays allocation-free. Ties break on the slot
//! number, which keeps scheduling deterministic. Owned by the share that holds it.

const ABSENT: u32 = u32::MAX;

/// A slot number or heap position as u32. Shares refuse to grow past
/// [`crate::share::MAX_GROUPS`] groups, far below `u32::MAX`, so this never truncates.
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn index_u32(index: usize) -> u32 {
    debug_assert!(index < ABSENT as usize);
    index as u32
}

/// Min-heap of `(key, slot)`.
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexedHeap<K> {
    heap: Vec<(K, u32)>,
    pos: Vec<u32>,
}

impl<K: Ord + Copy> IndexedHeap<K> {
    /// Makes room for slots `0..n` (control path).
    pub(crate) fn reserve_slots(&mut self, n: usize) {
        if self.pos.len() < n {
            self.pos.resize(n, ABSENT);
            self.heap.reserve(n.saturating_sub(self.heap.len()));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub(crate) fn peek(&self) -> Option<(K, u32)> {
        self.heap.first().copied()
    }

    pub(crate) fn contains(&self, slot: u32) -> bool {
        self.pos.get(slot as usize).is_some_and(|&p| p != ABSENT)
    }

    /// Inserts `slot` or changes its key.
    pub(crate) fn set(&mut self, slot: u32, key: K) {
        let s = slot as usize;
        if s >= self.pos.len() {
            self.reserve_slots(s + 1);
        }
        let p = self.pos[s];
        if p == ABSENT {
            let at = self.heap.len();
            self.heap.push((key, slot));
            self.pos[s] = index_u32(at);
            self.sift_up(at);
        } else {
            let at = p as usize;
            let old = self.heap[at].0;
            self.heap[at].0 = key;
            if key < old {
                self.sift_up(at);
            } else {
                self.sift_down(at);
            }
        }
    }

    /// Removes `slot` if present.
    pub(crate) fn remove(&mut self, slot: u32) {
        let Some(&p) = self.pos.get(slot as usize) else {
            return;
        };
        if p == ABSENT {
            return;
        }
        let at = p as usize;
        let last = self.heap.len() - 1;
        self.swap(at, last);
        self.heap.pop();
        self.pos[slot as usize] = ABSENT;
        if at < self.heap.len() {
            self.sift_down(at);
            self.sift_up(at);
        }
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (ka, sa) = self.heap[a];
        let (kb, sb) = self.heap[b];
        (ka, sa) < (kb, sb)
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a].1 as usize] = index_u32(a);
        self.pos[self.heap[b].1 as usize] = index_u32(b);
    }

    fn sift_up(&mut self, mut at: usize) {
        while at > 0 {
            let parent = (at - 1) / 2;
            if !self.less(at, parent) {
                break;
            }
            self.swap(at, parent);
            at = parent;
        }
    }

    fn sift_down(&mut self, mut at: usize) {
        loop {
            let l = 2 * at + 1;
            let r = l + 1;
            let mut best = at;
            if l < self.heap.len() && self.less(l, best) {
                best = l;
            }
            if r < self.heap.len() && self.less(r, best) {
                best = r;
            }
            if best == at {
                break;
            }
            self.swap(at, best);
            at = best;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn behaves_like_a_sorted_map(ops in prop::collection::vec((0u32..32, 0u64..100, any::<bool>()), 0..200)) {
            let mut heap = IndexedHeap::default();
            let mut model = std::collections::BTreeMap::new();
            for (slot, key, insert) in ops {
                if insert {
                    heap.set(slot, key);
                    model.insert(slot, key);
                } else {
                    heap.remove(slot);
                    model.remove(&slot);
                }
                let want = model.iter().map(|(&s, &k)| (k, s)).min();
                prop_assert_eq!(heap.peek(), want);
                prop_assert_eq!(heap.len(), model.len());
                for s in 0..32 {
                    prop_assert_eq!(heap.contains(s), model.contains_key(&s));
                }
            }
        }
    }
}
