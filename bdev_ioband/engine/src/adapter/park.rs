//! I/O parked on ENOMEM, one FIFO per base.
//!
//! A base that cannot take an I/O (out of request descriptors, queue full) holds back only
//! what goes to that base: the I/O parks at the back of its base's queue, and every later
//! I/O to that base parks behind it, so a base sees its I/O in the order the engine
//! released them. I/O to another base goes straight on. Retrying takes each waiting base
//! in turn from its head, and stops at a base's first ENOMEM (its head goes back to the
//! front) before moving on to the next base.
//!
//! Queues are preallocated per base ([`Parking::add_base`], on the control path) and
//! never shrink; the I/O path only pushes and pops. Owned by the thread that owns the
//! adapter.

use std::collections::VecDeque;

use super::devices::BaseIdx;

/// Room each base's queue starts with.
pub const PARK_CAPACITY: usize = 256;

/// The parking queues; see the module doc.
#[derive(Debug)]
pub struct Parking<T> {
    queues: Vec<VecDeque<T>>,
    /// Bases with parked I/O, in the order they began to wait (each once).
    waiting: Vec<BaseIdx>,
    len: usize,
}

impl<T> Default for Parking<T> {
    fn default() -> Self {
        Parking {
            queues: Vec::new(),
            waiting: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Parking<T> {
    /// Makes room for base `base` (control path: its queue is allocated here, not when
    /// the first I/O parks).
    pub fn add_base(&mut self, base: BaseIdx) {
        if self.queues.len() <= base.index() {
            self.queues
                .resize_with(base.index() + 1, || VecDeque::with_capacity(PARK_CAPACITY));
            self.waiting.reserve(self.queues.len());
        }
    }

    /// Parked I/O, all bases.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is parked.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Parked I/O of base `base`.
    pub fn len_of(&self, base: BaseIdx) -> usize {
        self.queues.get(base.index()).map_or(0, VecDeque::len)
    }

    /// Whether I/O to `base` must park behind what waits there.
    #[inline]
    pub fn must_wait(&self, base: BaseIdx) -> bool {
        self.len != 0 && self.len_of(base) != 0
    }

    /// The bases with parked I/O, in the order they began to wait.
    pub fn waiting(&self) -> &[BaseIdx] {
        &self.waiting
    }

    fn queue(&mut self, base: BaseIdx) -> &mut VecDeque<T> {
        self.add_base(base);
        let q = &mut self.queues[base.index()];
        if q.is_empty() {
            self.waiting.push(base);
        }
        q
    }

    /// Parks `io` behind what waits for `base`.
    #[inline]
    pub fn park_back(&mut self, base: BaseIdx, io: T) {
        self.queue(base).push_back(io);
        self.len += 1;
    }

    /// Parks `io` at the head of `base`'s queue (a retried head that met ENOMEM again).
    #[inline]
    pub fn park_front(&mut self, base: BaseIdx, io: T) {
        self.queue(base).push_front(io);
        self.len += 1;
    }

    /// Takes the head of `base`'s queue.
    #[inline]
    pub fn pop_front(&mut self, base: BaseIdx) -> Option<T> {
        let q = self.queues.get_mut(base.index())?;
        let io = q.pop_front()?;
        self.len -= 1;
        if q.is_empty() {
            self.waiting.retain(|b| *b != base);
        }
        Some(io)
    }

    /// The head of `base`'s queue.
    pub fn front(&self, base: BaseIdx) -> Option<&T> {
        self.queues.get(base.index())?.front()
    }

    /// The head of the first waiting base's queue.
    pub fn first(&self) -> Option<&T> {
        self.front(*self.waiting.first()?)
    }

    /// Offers parked I/O to their bases: each waiting base from its head, in order, until
    /// its queue is empty or `offer` hands an I/O back (ENOMEM again: it goes back to the
    /// front and the next base is tried). `offer` returns `None` when the base took the
    /// I/O (or the host disposed of it otherwise). Returns how many were taken.
    pub fn retry(&mut self, mut offer: impl FnMut(BaseIdx, T) -> Option<T>) -> usize {
        let mut taken = 0;
        let mut i = 0;
        while i < self.waiting.len() {
            let base = self.waiting[i];
            let q = &mut self.queues[base.index()];
            let mut blocked = false;
            while let Some(io) = q.pop_front() {
                self.len -= 1;
                if let Some(io) = offer(base, io) {
                    q.push_front(io);
                    self.len += 1;
                    blocked = true;
                    break;
                }
                taken += 1;
            }
            if blocked {
                i += 1;
            } else {
                self.waiting.remove(i);
            }
        }
        taken
    }

    /// Takes out, in order, the parked I/O `pick` chooses (their device is going) and
    /// hands each to `out`; the others keep their order.
    pub fn take_where(&mut self, mut pick: impl FnMut(&T) -> bool, mut out: impl FnMut(T)) {
        let waiting = std::mem::take(&mut self.waiting);
        for &base in &waiting {
            let q = &mut self.queues[base.index()];
            for _ in 0..q.len() {
                let Some(io) = q.pop_front() else { break };
                if pick(&io) {
                    self.len -= 1;
                    out(io);
                } else {
                    q.push_back(io);
                }
            }
        }
        self.waiting = waiting;
        let queues = &self.queues;
        self.waiting.retain(|b| !queues[b.index()].is_empty());
    }

    /// Whether any parked I/O satisfies `pred`.
    pub fn any(&self, mut pred: impl FnMut(&T) -> bool) -> bool {
        self.len != 0
            && self
                .waiting
                .iter()
                .any(|b| self.queues[b.index()].iter().any(&mut pred))
    }

    /// How many parked I/O satisfy `pred`.
    pub fn count(&self, mut pred: impl FnMut(&T) -> bool) -> usize {
        if self.len == 0 {
            return 0;
        }
        self.waiting
            .iter()
            .map(|b| self.queues[b.index()].iter().filter(|io| pred(io)).count())
            .sum()
    }

    /// Takes out everything, base by base in waiting order.
    pub fn drain_all(&mut self, mut out: impl FnMut(T)) {
        for base in std::mem::take(&mut self.waiting) {
            for io in self.queues[base.index()].drain(..) {
                out(io);
            }
        }
        self.len = 0;
    }
}
