//! Cost of the admission path: one submit plus one completion, for 1, 16 and 1024 groups,
//! with the share below its in-flight limit (I/O goes straight through) and backlogged
//! (every submit queues and every completion dispatches from the heap).

use std::collections::VecDeque;
use std::hint::black_box;

use bdev_ioband_engine::{GroupId, GroupKey, GroupValue, Op, Share, ShareParams, Ticket};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn setup(
    groups: u32,
    io_limit: u32,
) -> (Share<usize>, bdev_ioband_engine::DeviceIdx, Vec<GroupId>) {
    let params = ShareParams {
        io_limit,
        io_throttle: io_limit.min(4),
        ..ShareParams::default()
    };
    let mut share = Share::new("bench", params, 1_000_000_000).expect("share");
    let dev = share.add_device("bench0").expect("device");
    let ids = (0..groups)
        .map(|g| {
            let w = GroupValue::Weight(1 + (g * 37) % 1000);
            share
                .attach(dev, GroupKey::Tag(g), Some(w))
                .expect("attach")
        })
        .collect();
    (share, dev, ids)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("submit_complete");
    group.throughput(Throughput::Elements(1));
    for &n in &[1u32, 16, 1024] {
        for (label, io_limit, depth) in [("direct", 256u32, 128usize), ("backlogged", 64, 4096)] {
            let (mut share, dev, ids) = setup(n, io_limit);
            let mut in_flight: VecDeque<Ticket> = VecDeque::with_capacity(depth);
            let mut now = 0u64;
            let mut next = 0usize;
            // Fill to the working depth first, so the loop measures steady state.
            for _ in 0..depth {
                let g = ids[next % ids.len()];
                share.submit(dev, g, next, Op::Read, 4096, now, &mut |_, t| {
                    in_flight.push_back(t)
                });
                next += 1;
            }
            group.bench_function(BenchmarkId::new(label, n), |b| {
                b.iter(|| {
                    now += 100;
                    let g = ids[next % ids.len()];
                    next += 1;
                    share.submit(dev, g, next, Op::Read, 4096, now, &mut |io, t| {
                        black_box(io);
                        in_flight.push_back(t)
                    });
                    if let Some(t) = in_flight.pop_front() {
                        share.complete(t, now, &mut |io, t| {
                            black_box(io);
                            in_flight.push_back(t)
                        });
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
