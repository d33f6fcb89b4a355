//! Helpers for host tests: reactors stepped by hand on the test thread, a manual clock,
//! and closed-loop clients.

#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use bdev_ioband_engine::GroupKey;
use bdev_ioband_host::bdev::model::ModelParams;
use bdev_ioband_host::bdev::{BdevIo, BdevRef, IoCallback, IoChannel, IoStatus, IoType};
use bdev_ioband_host::reactor::{Reactor, ReactorSet};
use bdev_ioband_host::ticks::{Clock, ManualClock};

/// A model device of 4 KiB blocks, 20 µs latency, no bandwidth limit.
pub fn model(iops: u64, queue_depth: u32) -> ModelParams {
    ModelParams {
        block_size: 4096,
        num_blocks: 1 << 20,
        iops,
        bandwidth_bytes_per_sec: 0,
        latency_ticks: 20_000,
        queue_depth,
    }
}

/// Reactors on this thread and the clock that drives them.
pub struct Rig {
    pub reactors: Vec<Reactor>,
    pub clock: ManualClock,
}

impl Rig {
    pub fn new(cores: u32) -> Rig {
        let (clock, manual) = Clock::manual();
        let lcores: Vec<u32> = (0..cores).collect();
        Rig {
            reactors: ReactorSet::new(&lcores, clock, false).build_all(),
            clock: manual,
        }
    }

    /// Polls every reactor once.
    pub fn poll_all(&mut self) {
        for r in &mut self.reactors {
            r.poll_once();
        }
    }

    /// Advances time by `step_ticks` then polls every reactor, `n` times.
    pub fn run(&mut self, n: u64, step_ticks: u64) {
        for _ in 0..n {
            self.clock.advance(step_ticks);
            self.poll_all();
        }
    }

    pub fn on<R>(&self, core: usize, f: impl FnOnce() -> R) -> R {
        self.reactors[core].enter(f)
    }
}

/// A client that keeps `depth` reads outstanding on one channel and counts completions.
pub struct Client {
    pub ch: Rc<dyn IoChannel>,
    cb: RefCell<Option<IoCallback>>,
    pub group: Option<GroupKey>,
    pub block_size: u32,
    pub closed_loop: Cell<bool>,
    pub measure_from_ticks: Cell<u64>,
    pub clock: ManualClock,
    pub measured: Cell<u64>,
    /// Completions per I/O id (user_ctx): exactly-once checks.
    pub seen: RefCell<Vec<u32>>,
    pub success: Cell<u64>,
    pub aborted: Cell<u64>,
    pub failed: Cell<u64>,
    pub next_id: Cell<u64>,
    pub last_read: RefCell<Vec<u8>>,
}

impl Client {
    pub fn new(rig: &Rig, core: usize, bdev: &BdevRef, group: Option<GroupKey>) -> Rc<Client> {
        let ch = rig.on(core, || bdev.get_io_channel()).expect("channel");
        Client::on_channel(rig, ch, bdev, group)
    }

    /// A client on a channel that others may share (each client has its own callback).
    pub fn on_channel(
        rig: &Rig,
        ch: Rc<dyn IoChannel>,
        bdev: &BdevRef,
        group: Option<GroupKey>,
    ) -> Rc<Client> {
        let client = Rc::new(Client {
            ch,
            cb: RefCell::new(None),
            group,
            block_size: bdev.block_size(),
            closed_loop: Cell::new(true),
            measure_from_ticks: Cell::new(u64::MAX),
            clock: rig.clock.clone(),
            measured: Cell::new(0),
            seen: RefCell::new(Vec::new()),
            success: Cell::new(0),
            aborted: Cell::new(0),
            failed: Cell::new(0),
            next_id: Cell::new(0),
            last_read: RefCell::new(Vec::new()),
        });
        let weak: Weak<Client> = Rc::downgrade(&client);
        let cb: IoCallback = Rc::new(move |io| {
            if let Some(c) = weak.upgrade() {
                c.on_done(io);
            }
        });
        *client.cb.borrow_mut() = Some(cb);
        client
    }

    fn cb(&self) -> IoCallback {
        self.cb.borrow().clone().expect("callback set")
    }

    /// Submits one I/O of `io_type` at `offset_blocks` (1 block), with optional data.
    pub fn submit(&self, io_type: IoType, offset_blocks: u64, data: Option<&[u8]>) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.seen.borrow_mut().push(0);
        let mut io = Box::new(BdevIo::default());
        io.io_type = io_type;
        io.offset_blocks = offset_blocks;
        io.num_blocks = 1;
        io.buf = match data {
            Some(d) => d.to_vec(),
            None => vec![0; self.block_size as usize],
        };
        io.group = self.group.clone();
        io.user_ctx = id;
        let cb = self.cb();
        assert!(
            self.ch.submit(io, &cb).is_ok(),
            "ioband channels never answer ENOMEM"
        );
    }

    /// Starts `depth` reads.
    pub fn start(&self, depth: u32) {
        for i in 0..depth {
            self.submit(IoType::Read, u64::from(i), None);
        }
    }

    fn on_done(&self, mut io: Box<BdevIo>) {
        let id = usize::try_from(io.user_ctx).expect("id");
        self.seen.borrow_mut()[id] += 1;
        match io.status {
            IoStatus::Success => self.success.set(self.success.get() + 1),
            IoStatus::Aborted => self.aborted.set(self.aborted.get() + 1),
            _ => self.failed.set(self.failed.get() + 1),
        }
        if io.io_type == IoType::Read {
            *self.last_read.borrow_mut() = io.buf.clone();
        }
        if self.clock.now_ticks() >= self.measure_from_ticks.get() {
            self.measured.set(self.measured.get() + 1);
        }
        if self.closed_loop.get() && io.status == IoStatus::Success {
            // Same descriptor, new id: the loop reuses it, as a real client would.
            let id = self.next_id.get();
            self.next_id.set(id + 1);
            self.seen.borrow_mut().push(0);
            io.user_ctx = id;
            io.status = IoStatus::Pending;
            io.group = self.group.clone();
            let cb = self.cb();
            assert!(self.ch.submit(io, &cb).is_ok());
        }
    }

    pub fn completed(&self) -> u64 {
        self.success.get() + self.aborted.get() + self.failed.get()
    }

    pub fn submitted(&self) -> u64 {
        self.next_id.get()
    }
}
