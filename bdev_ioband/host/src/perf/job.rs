//! One job on its reactor: a closed loop of `queue_depth` descriptors on one channel,
//! submitting from `run_start + start_delay` until `run_start + start_delay + runtime`
//! (a job with a delay waits in its poller, its descriptors ready).
//!
//! Everything the I/O path touches is allocated when the job starts (descriptors and
//! their buffers, the histogram, the per-window counters); a completion records latency,
//! counts, and resubmits the same descriptor, with no allocation and no lock. The live
//! counters the progress line reads are plain relaxed stores to atomics that only this job
//! writes.
//!
//! Threading: a [`JobPlan`] is built on the main thread and sent to the job's reactor,
//! where [`start`] runs; the job's state lives on that reactor (held by its poller) and its
//! result travels back over a channel.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bdev_ioband_engine::GroupKey;
use crossbeam_channel::Sender;

use super::hist::Histogram;
use super::opts::Workload;
use crate::bdev::{BdevIo, BdevRef, IoCallback, IoChannel, IoStatus, IoType, SubmitError};
use crate::reactor::{self, PollerStatus};

/// What a job is to do, resolved against the host (sendable).
#[derive(Debug, Clone)]
pub struct JobPlan {
    /// Index of the job in the run.
    pub index: usize,
    /// The bdev.
    pub bdev: BdevRef,
    /// Reactor index it runs on.
    pub core: u32,
    /// Outstanding I/Os.
    pub queue_depth: u32,
    /// Blocks per I/O.
    pub io_blocks: u64,
    /// Access pattern.
    pub workload: Workload,
    /// Group tag.
    pub group: Option<GroupKey>,
    /// Ticks after the run's start before its first submission.
    pub start_delay_ticks: u64,
    /// Ticks it submits for, from its first submission.
    pub runtime_ticks: u64,
    /// Length of a share window in ticks.
    pub window_ticks: u64,
    /// Seed of its random offsets.
    pub seed: u64,
}

/// Counters the main thread may read while the job runs.
#[derive(Debug, Default)]
pub struct Live {
    /// I/Os completed successfully.
    pub ios: AtomicU64,
    /// Bytes of those.
    pub bytes: AtomicU64,
}

/// What a job reports at its end.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    /// Index of the job.
    pub index: usize,
    /// Tick of its first submission (its end, if it never started).
    pub start_ticks: u64,
    /// Tick at which it stopped submitting.
    pub end_ticks: u64,
    /// Successful I/Os completed before `end_ticks`.
    pub ios: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Failed or aborted I/Os.
    pub failed: u64,
    /// Latency of every completed I/O, in ns.
    pub hist: Histogram,
    /// Per window since the run's start: (I/Os, bytes) completed in it.
    pub windows: Vec<(u64, u64)>,
    /// Why the job could not start, if it did not.
    pub error: Option<String>,
}

struct State {
    plan: JobPlan,
    ch: Rc<dyn IoChannel>,
    cb: IoCallback,
    block_size: u32,
    num_blocks: u64,
    run_start: u64,
    /// Tick of the first submission: `run_start + start_delay`.
    start_at_ticks: u64,
    start_ticks: Cell<u64>,
    started: Cell<bool>,
    // Descriptors of a job waiting for its start.
    #[allow(clippy::vec_box)]
    waiting: RefCell<Vec<Box<BdevIo>>>,
    end_ticks: Cell<u64>,
    outstanding: Cell<u32>,
    next_offset: Cell<u64>,
    rng: Cell<u64>,
    ios: Cell<u64>,
    bytes: Cell<u64>,
    failed: Cell<u64>,
    hist: RefCell<Histogram>,
    windows: RefCell<Vec<(u64, u64)>>,
    // Descriptors the bdev answered ENOMEM for, resubmitted by the poller.
    #[allow(clippy::vec_box)]
    parked: RefCell<Vec<Box<BdevIo>>>,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
    finished: Cell<bool>,
    tx: Sender<JobOutcome>,
}

impl State {
    fn next_rand(&self) -> u64 {
        // xorshift64*
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills `io` for its next round and submits it.
    fn issue(&self, mut io: Box<BdevIo>, now: u64) {
        let p = &self.plan;
        io.status = IoStatus::Pending;
        if io.group.is_none() && p.group.is_some() {
            io.set_group(&p.group);
        }
        io.user_ctx = now;
        if p.workload.flush {
            io.io_type = IoType::Flush;
            io.offset_blocks = 0;
            io.num_blocks = 0;
            self.submit(io);
            return;
        }
        let span = (self.num_blocks / p.io_blocks).max(1);
        let slot = if p.workload.random {
            self.next_rand() % span
        } else {
            let s = self.next_offset.get();
            self.next_offset.set((s + 1) % span);
            s
        };
        io.offset_blocks = slot * p.io_blocks;
        io.num_blocks = p.io_blocks;
        io.io_type = match p.workload.read_pct {
            100 => IoType::Read,
            0 => IoType::Write,
            pct => {
                if self.next_rand() % 100 < u64::from(pct) {
                    IoType::Read
                } else {
                    IoType::Write
                }
            }
        };
        self.submit(io);
    }

    fn submit(&self, io: Box<BdevIo>) {
        if let Err(SubmitError::NoMem(io)) = self.ch.submit(io, &self.cb) {
            self.parked.borrow_mut().push(io);
        }
    }

    /// Submits every descriptor: the job's start.
    fn launch(&self, now: u64) {
        self.started.set(true);
        self.start_ticks.set(now);
        let descriptors = std::mem::take(&mut *self.waiting.borrow_mut());
        self.outstanding
            .set(u32::try_from(descriptors.len()).unwrap_or(u32::MAX));
        for io in descriptors {
            self.issue(io, now);
        }
        if self.outstanding.get() == 0 {
            self.finish(now);
        }
    }

    fn on_done(&self, io: Box<BdevIo>) {
        let now = reactor::now_ticks();
        let end = self.end_ticks.get();
        self.hist
            .borrow_mut()
            .record(now.saturating_sub(io.user_ctx));
        if io.status == IoStatus::Success {
            let bytes = io.num_blocks * u64::from(self.block_size);
            if now <= end {
                self.ios.set(self.ios.get() + 1);
                self.bytes.set(self.bytes.get() + bytes);
                self.live.ios.store(self.ios.get(), Ordering::Relaxed);
                self.live.bytes.store(self.bytes.get(), Ordering::Relaxed);
            }
            let w = super::to_usize(now.saturating_sub(self.run_start) / self.plan.window_ticks);
            if let Some(slot) = self.windows.borrow_mut().get_mut(w) {
                slot.0 += 1;
                slot.1 += bytes;
            }
        } else {
            self.failed.set(self.failed.get() + 1);
        }
        if now < end && !self.stop.load(Ordering::Relaxed) {
            self.issue(io, now);
        } else {
            self.outstanding.set(self.outstanding.get() - 1);
            drop(io);
            if self.outstanding.get() == 0 {
                self.finish(now.min(end));
            }
        }
    }

    fn finish(&self, end: u64) {
        if self.finished.replace(true) {
            return;
        }
        self.end_ticks.set(end);
        let _ = self.tx.send(JobOutcome {
            index: self.plan.index,
            start_ticks: self.start_ticks.get(),
            end_ticks: end,
            ios: self.ios.get(),
            bytes: self.bytes.get(),
            failed: self.failed.get(),
            hist: self.hist.borrow().clone(),
            windows: std::mem::take(&mut *self.windows.borrow_mut()),
            error: None,
        });
    }

    fn poll(&self, now: u64) -> PollerStatus {
        if self.finished.get() {
            return PollerStatus::Done;
        }
        if self.stop.load(Ordering::Relaxed) && now < self.end_ticks.get() {
            // Interrupted: stop at once; completions drain the rest.
            self.end_ticks.set(now);
        }
        if !self.started.get() {
            if now >= self.end_ticks.get() {
                // Stopped before its start: it ran for no time.
                self.start_ticks.set(self.end_ticks.get());
                self.finish(self.end_ticks.get());
                return PollerStatus::Done;
            }
            if now < self.start_at_ticks {
                return PollerStatus::Idle;
            }
            self.launch(now);
            return PollerStatus::Busy;
        }
        let parked = std::mem::take(&mut *self.parked.borrow_mut());
        if parked.is_empty() {
            return PollerStatus::Idle;
        }
        for io in parked {
            if now < self.end_ticks.get() {
                let first = io_submit_tick(&io);
                self.issue(io, first);
            } else {
                self.outstanding.set(self.outstanding.get() - 1);
                if self.outstanding.get() == 0 {
                    self.finish(now.min(self.end_ticks.get()));
                }
            }
        }
        PollerStatus::Busy
    }
}

/// A parked descriptor keeps its first submission tick (its latency includes the wait).
fn io_submit_tick(io: &BdevIo) -> u64 {
    io.user_ctx
}

fn fail(plan: &JobPlan, tx: &Sender<JobOutcome>, error: String) {
    let _ = tx.send(JobOutcome {
        index: plan.index,
        start_ticks: 0,
        end_ticks: 0,
        ios: 0,
        bytes: 0,
        failed: 0,
        hist: Histogram::default(),
        windows: Vec::new(),
        error: Some(error),
    });
}

/// Starts the job on the current reactor: `run_start` is the run's tick 0 (windows count
/// from it); the job submits until `run_start + runtime`.
pub fn start(
    plan: JobPlan,
    run_start: u64,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
    tx: Sender<JobOutcome>,
) {
    let ch = match plan.bdev.get_io_channel() {
        Ok(ch) => ch,
        Err(e) => return fail(&plan, &tx, e.to_string()),
    };
    let block_size = plan.bdev.block_size();
    let num_blocks = plan.bdev.num_blocks();
    let start_at_ticks = run_start.saturating_add(plan.start_delay_ticks);
    let end_ticks = start_at_ticks.saturating_add(plan.runtime_ticks);
    let windows =
        super::to_usize((end_ticks - run_start) / plan.window_ticks.max(1)).saturating_add(2);
    let qd = plan.queue_depth;
    let buf_len = if plan.workload.flush {
        0
    } else {
        super::to_usize(plan.io_blocks * u64::from(block_size))
    };
    let seed = plan.seed | 1;
    let state = Rc::new_cyclic(|weak: &Weak<State>| {
        let w = weak.clone();
        let cb: IoCallback = Rc::new(move |io| {
            if let Some(s) = w.upgrade() {
                s.on_done(io);
            }
        });
        State {
            end_ticks: Cell::new(end_ticks),
            plan,
            ch,
            cb,
            block_size,
            num_blocks,
            run_start,
            start_at_ticks,
            start_ticks: Cell::new(0),
            started: Cell::new(false),
            waiting: RefCell::new(Vec::new()),
            outstanding: Cell::new(0),
            next_offset: Cell::new(0),
            rng: Cell::new(seed),
            ios: Cell::new(0),
            bytes: Cell::new(0),
            failed: Cell::new(0),
            hist: RefCell::new(Histogram::default()),
            windows: RefCell::new(vec![(0, 0); windows]),
            parked: RefCell::new(Vec::new()),
            live,
            stop,
            finished: Cell::new(false),
            tx,
        }
    });
    // Spread sequential jobs' starting offsets so they do not all read block 0.
    let span = (num_blocks / state.plan.io_blocks).max(1);
    state
        .next_offset
        .set((state.plan.index as u64 * 7919) % span);
    *state.waiting.borrow_mut() = (0..qd)
        .map(|_| {
            Box::new(BdevIo {
                buf: vec![0u8; buf_len],
                group: state.plan.group.clone(),
                ..BdevIo::default()
            })
        })
        .collect();
    let held = state.clone();
    if let Err(e) = reactor::register_poller("perf_job", 0, move |now| held.poll(now)) {
        return fail(&state.plan, &state.tx, e.to_string());
    }
    let now = reactor::now_ticks();
    if now >= start_at_ticks {
        state.launch(now);
    }
}
