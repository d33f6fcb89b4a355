//! A log-linear latency histogram in the manner of HdrHistogram: values below 128 ns are
//! exact, above that each power of two is cut into 64 linear buckets (relative error under
//! 1/64). Fixed size, allocated once per job: recording allocates nothing.
//!
//! Owned by one job on one reactor; merged on the main thread after the run.

/// Values below this are counted exactly.
const EXACT: u64 = 128;
/// Linear sub-buckets per power of two (log2).
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Highest power of two kept (2^47 ns is about 39 hours).
const MAX_MSB: u32 = 47;
/// Buckets in all.
const BUCKETS: usize = 128 + (MAX_MSB - SUB_BITS) as usize * 64;

/// Latencies in nanoseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

fn index_of(v: u64) -> usize {
    if v < EXACT {
        return super::to_usize(v);
    }
    let msb = (63 - v.leading_zeros()).min(MAX_MSB);
    let shift = msb - SUB_BITS;
    let sub = ((v >> shift) - SUB).min(SUB - 1);
    super::to_usize(EXACT + u64::from(msb - SUB_BITS - 1) * SUB + sub)
}

/// The middle of bucket `i`.
fn value_of(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let rel = i - EXACT;
    let shift = rel / SUB + 1;
    let sub = rel % SUB;
    let low = (SUB + sub) << shift;
    low + ((1u64 << shift) >> 1)
}

impl Histogram {
    /// Records one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[index_of(v)] += 1;
        self.count += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Smallest value (0 if empty).
    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    /// Largest value.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean (0 if empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at percentile `p` (0..=100), clamped to [min, max]; 0 if empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = super::sat_u64(((p / 100.0) * self.count as f64).ceil().max(1.0));
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value_of(i).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..2_000_000u64).step_by(7).chain([1 << 40, u64::MAX]) {
            let i = index_of(v);
            assert!(i >= last && i < BUCKETS, "{v}");
            last = i;
            if v > 0 && v < (1 << 46) {
                let mid = value_of(i) as f64;
                assert!(
                    (mid - v as f64).abs() / v as f64 <= 1.0 / 64.0,
                    "{v} -> {mid}"
                );
            }
        }
    }

    #[test]
    fn percentiles() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!((h.min(), h.max()), (1000, 10_000_000));
        let p50 = h.percentile(50.0) as f64;
        assert!((p50 - 5_000_000.0).abs() / 5e6 < 0.02, "{p50}");
        let p99 = h.percentile(99.0) as f64;
        assert!((p99 - 9_900_000.0).abs() / 9.9e6 < 0.02, "{p99}");
        assert!((h.mean() - 5_000_500.0).abs() < 1.0);
        let mut g = Histogram::default();
        g.record(5);
        g.merge(&h);
        assert_eq!((g.count(), g.min()), (10_001, 5));
        assert_eq!(Histogram::default().percentile(99.0), 0);
    }
}
