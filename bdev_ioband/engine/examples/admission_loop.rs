//! A fixed admission loop for instruction counting (`valgrind --tool=callgrind`): N submits
//! and completions over G groups, with the share below io_limit ("direct") or backlogged.
//! Deterministic, so instruction counts compare across changes; criterion's bench times it.
//!
//! `cargo run --release -p bdev_ioband_engine --example admission_loop -- GROUPS N [backlogged]`

use std::collections::VecDeque;

use bdev_ioband_engine::{GroupKey, GroupValue, Op, Share, ShareParams, Ticket};

fn main() {
    let mut args = std::env::args().skip(1);
    let groups: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let backlogged = args.next().as_deref() == Some("backlogged");
    let (io_limit, depth) = if backlogged { (64, 4096) } else { (256, 128) };
    // io_throttle at io_limit: the window never binds, so "direct" measures accounting alone.
    let params = ShareParams {
        io_limit,
        io_throttle: io_limit,
        ..ShareParams::default()
    };
    let mut share: Share<usize> = match Share::new("loop", params, 1_000_000_000) {
        Ok(s) => s,
        Err(e) => return eprintln!("{e}"),
    };
    let Ok(dev) = share.add_device("loop0") else {
        return;
    };
    let ids: Vec<_> = (0..groups)
        .filter_map(|g| {
            share
                .attach(dev, GroupKey::Tag(g), Some(GroupValue::Weight(1 + g)))
                .ok()
        })
        .collect();
    let mut in_flight: VecDeque<Ticket> = VecDeque::with_capacity(depth);
    let mut dispatched = 0usize;
    for i in 0..depth + n {
        let now = i as u64 * 100;
        share.submit(
            dev,
            ids[i % ids.len()],
            i,
            Op::Read,
            4096,
            now,
            &mut |_, t| in_flight.push_back(t),
        );
        if i >= depth {
            if let Some(t) = in_flight.pop_front() {
                share.complete(t, now, &mut |_, t| in_flight.push_back(t));
                dispatched += 1;
            }
        }
    }
    println!("{dispatched} completions, {} in flight", share.in_flight());
}
