//! What the front-end targets share: a live two-reactor app (stepped by hand) whose exported
//! bdev is a [`Witness`] over an ioband bdev over a small malloc bdev, client sockets that
//! never block the harness, and the checks made once everything has drained.
//!
//! The witness sits between the front end and the bdev stack: it counts every I/O the front
//! end submits and every completion it gets back, panics on a second completion of one I/O
//! and on a request outside the device or whose buffer does not match its length.

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};

use bdev_ioband_host::app::App;
use bdev_ioband_host::bdev::{
    Bdev, BdevError, BdevIo, BdevRef, IoCallback, IoChannel, IoStats, IoType, SubmitError,
};
use bdev_ioband_host::reactor::{Reactor, ReactorSet};
use bdev_ioband_host::ticks::Clock;

/// Bytes per block of the malloc bdev under every export.
pub const BLOCK: u32 = 512;
/// Its blocks (512 KiB).
pub const BLOCKS: u64 = 1024;

/// I/O counts of a [`Witness`].
#[derive(Debug, Default)]
pub struct Counts {
    submitted: AtomicU64,
    completed: AtomicU64,
}

impl Counts {
    /// (submitted, completed).
    pub fn get(&self) -> (u64, u64) {
        (
            self.submitted.load(Ordering::Relaxed),
            self.completed.load(Ordering::Relaxed),
        )
    }
}

/// A bdev that forwards to its base and checks the exactly-once contract of its caller.
#[derive(Debug)]
pub struct Witness {
    name: String,
    base: BdevRef,
    stats: IoStats,
    counts: Arc<Counts>,
}

struct WitnessChannel {
    base_ch: Rc<dyn IoChannel>,
    counts: Arc<Counts>,
    num_blocks: u64,
    block_size: u64,
}

impl IoChannel for WitnessChannel {
    fn submit(&self, io: Box<BdevIo>, done: &IoCallback) -> Result<(), SubmitError> {
        match io.io_type {
            IoType::Read | IoType::Write => {
                let end = io.offset_blocks.checked_add(io.num_blocks);
                assert!(
                    io.num_blocks > 0 && end.is_some_and(|e| e <= self.num_blocks),
                    "an I/O outside the device: {} blocks at {}",
                    io.num_blocks,
                    io.offset_blocks
                );
                assert_eq!(
                    io.buf.len() as u64,
                    io.num_blocks * self.block_size,
                    "a buffer that does not match the I/O's length"
                );
            }
            IoType::Flush => {}
        }
        self.counts.submitted.fetch_add(1, Ordering::Relaxed);
        let fired = Cell::new(false);
        let (counts, caller) = (self.counts.clone(), done.clone());
        let cb: IoCallback = Rc::new(move |io: Box<BdevIo>| {
            assert!(!fired.replace(true), "an I/O completed twice");
            counts.completed.fetch_add(1, Ordering::Relaxed);
            caller(io);
        });
        match self.base_ch.submit(io, &cb) {
            Ok(()) => Ok(()),
            Err(SubmitError::NoMem(io)) => {
                self.counts.submitted.fetch_sub(1, Ordering::Relaxed);
                Err(SubmitError::NoMem(io))
            }
        }
    }
}

impl Bdev for Witness {
    fn name(&self) -> &str {
        &self.name
    }
    fn product_name(&self) -> &'static str {
        "witness"
    }
    fn block_size(&self) -> u32 {
        self.base.block_size()
    }
    fn num_blocks(&self) -> u64 {
        self.base.num_blocks()
    }
    fn uuid(&self) -> &str {
        "5a5a5a5a-0000-4000-8000-000000000001"
    }
    fn get_io_channel(&self) -> Result<Rc<dyn IoChannel>, BdevError> {
        Ok(Rc::new(WitnessChannel {
            base_ch: self.base.get_io_channel()?,
            counts: self.counts.clone(),
            num_blocks: self.base.num_blocks(),
            block_size: u64::from(self.base.block_size()),
        }))
    }
    fn stats(&self) -> &IoStats {
        &self.stats
    }
    fn config_entry(&self) -> Option<serde_json::Value> {
        None
    }
}

/// A fresh app: reactors 0 and 1, `m0` (malloc) under `io0` (ioband, share `s0`) under
/// `w0` (the witness), which the front ends export.
pub struct Live {
    pub reactors: Vec<Reactor>,
    pub app: App,
    pub counts: Arc<Counts>,
}

/// The bdev the front ends export.
pub const EXPORTED: &str = "w0";

impl Live {
    pub fn new() -> Live {
        static SIGPIPE: Once = Once::new();
        // libFuzzer's main does not ignore SIGPIPE as Rust's does: a write to a socket the
        // server closed must fail, not kill the process.
        // SAFETY: setting a signal's disposition to SIG_IGN, before any socket is made.
        SIGPIPE.call_once(|| unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        });
        let (clock, _manual) = Clock::manual();
        let reactors = ReactorSet::new(&[0, 1], clock, false).build_all();
        let counts = Arc::new(Counts::default());
        let app = reactors[0].enter(|| {
            let app = App::new().expect("the control plane starts");
            app.create_malloc("m0", BLOCK, BLOCKS, None).expect("m0");
            app.create_ioband("io0", "m0", "s0", None).expect("io0");
            let base = app.bdev("io0").expect("io0 is a bdev");
            app.register(Arc::new(Witness {
                name: EXPORTED.to_owned(),
                base,
                stats: IoStats::default(),
                counts: counts.clone(),
            }))
            .expect("w0");
            app
        });
        Live {
            reactors,
            app,
            counts,
        }
    }

    /// Runs `f` on the main reactor.
    pub fn on<R>(&self, f: impl FnOnce(&App) -> R) -> R {
        self.reactors[0].enter(|| f(&self.app))
    }

    /// Polls every reactor until a few passes in a row do nothing (at most `max` passes).
    pub fn settle(&mut self, max: usize) {
        let mut quiet = 0;
        for _ in 0..max {
            let work: usize = self.reactors.iter_mut().map(Reactor::poll_once).sum();
            if work == 0 {
                quiet += 1;
                if quiet == 3 {
                    return;
                }
            } else {
                quiet = 0;
            }
        }
    }

    /// Every I/O the front ends submitted has completed, exactly once (the witness panics
    /// on a second completion).
    pub fn check_all_completed(&self, what: &str) {
        let (submitted, completed) = self.counts.get();
        assert_eq!(
            submitted, completed,
            "{what}: {submitted} I/Os submitted, {completed} completed"
        );
    }
}

/// A client socket the harness drives without blocking: written as far as the server
/// reads, read whenever the app has run.
pub struct Client<S: Read + Write> {
    pub s: S,
    pub inbuf: Vec<u8>,
    /// The server closed or reset the connection (EOF or an error).
    pub gone: bool,
}

impl<S: Read + Write> Client<S> {
    pub fn new(s: S) -> Client<S> {
        Client {
            s,
            inbuf: Vec::new(),
            gone: false,
        }
    }

    /// Reads what is there (all of it is kept in `inbuf`).
    pub fn pump(&mut self) {
        let mut buf = [0u8; 64 * 1024];
        while !self.gone {
            match self.s.read(&mut buf) {
                Ok(0) => self.gone = true,
                Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.gone = true,
            }
        }
    }

    /// Writes `bytes`, letting the app run (and reading what it answers) whenever the
    /// socket is full. Returns false when the server no longer takes input.
    pub fn send(&mut self, live: &mut Live, mut bytes: &[u8]) -> bool {
        let mut stalls = 0;
        while !bytes.is_empty() {
            match self.s.write(bytes) {
                Ok(0) => return false,
                Ok(n) => {
                    bytes = &bytes[n..];
                    stalls = 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    live.settle(64);
                    self.pump();
                    stalls += 1;
                    if stalls > 64 {
                        // The server stopped reading (a connection waiting for room or
                        // draining): what is left is not taken.
                        return false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// Takes the first `n` bytes of `inbuf`.
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        self.inbuf.drain(..n).collect()
    }
}

/// The chunk size the first byte of an input picks: 1..=127 bytes, or multiples of 64
/// bytes up to 8 KiB, or everything at once (0).
pub fn chunk_size(pick: u8) -> usize {
    match pick {
        0 => usize::MAX,
        1..=127 => usize::from(pick),
        _ => usize::from(pick - 127) * 64,
    }
}
