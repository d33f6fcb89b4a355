//! Reactors: one per core of the core mask, each a loop that drains its mailbox, runs its
//! async tasks and runs its pollers, over and over (busy polling, or with an opt-in idle
//! backoff).
//!
//! Threading: a [`Reactor`] and everything registered on it (pollers, I/O endpoints, tasks)
//! belong to the thread that polls it and are never touched by another thread. Other cores
//! reach it only through its mailbox (a crossbeam channel): [`send_msg`] carries a closure,
//! [`send_io`] carries an I/O descriptor to a registered endpoint without boxing a closure
//! per I/O; mailboxes are bounded rings, so a message costs no allocation. Tests build every reactor on one thread with [`ReactorSet::new`] and step them
//! with [`Reactor::poll_once`]; the reactor being polled (or entered with
//! [`Reactor::enter`]) is the "current" one that the free functions here act on.

mod affinity;
mod local;
mod task;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use thiserror::Error;

pub use affinity::pin_current_thread;
pub use local::{
    core_count, current_core, deliver_io, endpoint_callback, keep_alive, lcore_of, now_ticks,
    pass_ticks, register_endpoint, register_poller, request_stop, send_io, send_msg,
    unregister_endpoint, EndpointId, PollerHandle, PollerStatus,
};
pub use task::spawn_local;

use crate::bdev::BdevIo;
use crate::ticks::Clock;
use local::Local;

/// Messages a mailbox holds (a preallocated ring: sending allocates nothing). A sender
/// that finds it full keeps the message in its own overflow queue, in order, and retries
/// at its next pass, so no reactor ever blocks on another.
const MAILBOX_CAPACITY: usize = 16 * 1024;
/// Most mailbox messages one poll drains before it runs the pollers.
const MAILBOX_BATCH: usize = 1024;
/// Most tasks one poll runs.
const TASK_BATCH: usize = 64;
/// Idle polls in a row after which a reactor with idle backoff starts to sleep.
const IDLE_POLLS_BEFORE_BACKOFF: u32 = 10_000;
/// How long an idle reactor with backoff sleeps per poll.
const IDLE_SLEEP: Duration = Duration::from_micros(50);

/// What can go wrong reaching a reactor.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReactorError {
    /// The call needs a current reactor and the thread is not polling one.
    #[error("not running on a reactor")]
    NotOnReactor,
    /// No reactor with this index.
    #[error("no reactor for core index {0}")]
    NoSuchCore(u32),
    /// The target reactor has stopped and dropped its mailbox.
    #[error("reactor {0} has stopped")]
    Stopped(u32),
}

/// A message between reactors.
pub(crate) enum Msg {
    /// Run this closure on the target reactor.
    Call(Box<dyn FnOnce() + Send>),
    /// Hand this I/O to endpoint `endpoint` of the target reactor.
    Io {
        /// Endpoint index on the target reactor.
        endpoint: EndpointId,
        /// The descriptor.
        io: Box<BdevIo>,
    },
}

/// What every reactor shares: the mailboxes, the clock, the stop flag.
#[derive(Debug)]
pub(crate) struct Shared {
    lcores: Vec<u32>,
    mailboxes: Vec<Sender<Msg>>,
    clock: Clock,
    stop: AtomicBool,
    idle_backoff: bool,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Call(_) => f.write_str("Msg::Call"),
            Msg::Io { endpoint, .. } => write!(f, "Msg::Io({endpoint:?})"),
        }
    }
}

/// The reactors of one host before they are placed on their threads.
#[derive(Debug)]
pub struct ReactorSet {
    shared: Arc<Shared>,
    mailboxes: Vec<Option<Receiver<Msg>>>,
}

impl ReactorSet {
    /// One reactor per entry of `lcores` (the core ids of the mask, in order); index 0 is
    /// the main reactor, which runs the RPC server and owns the control plane.
    pub fn new(lcores: &[u32], clock: Clock, idle_backoff: bool) -> ReactorSet {
        let (senders, receivers): (Vec<_>, Vec<_>) = lcores
            .iter()
            .map(|_| crossbeam_channel::bounded(MAILBOX_CAPACITY))
            .unzip();
        let shared = Arc::new(Shared {
            lcores: lcores.to_vec(),
            mailboxes: senders,
            clock,
            stop: AtomicBool::new(false),
            idle_backoff,
        });
        ReactorSet {
            shared,
            mailboxes: receivers.into_iter().map(Some).collect(),
        }
    }

    /// How many reactors the set has.
    pub fn len(&self) -> usize {
        self.mailboxes.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.mailboxes.is_empty()
    }

    /// Takes the seed of reactor `index`, to build it on the thread that will poll it.
    pub fn take_seed(&mut self, index: u32) -> Option<ReactorSeed> {
        let mailbox = self.mailboxes.get_mut(index as usize)?.take()?;
        Some(ReactorSeed {
            index,
            shared: self.shared.clone(),
            mailbox,
        })
    }

    /// Starts a thread for every reactor but the main one, each pinned to its core and
    /// polling until the host stops; the main reactor's seed is left for the caller, whose
    /// thread is pinned to the main core.
    pub fn spawn_secondaries(&mut self) -> Result<Vec<std::thread::JoinHandle<()>>, String> {
        let lcores = self.shared.lcores.clone();
        let mut threads = Vec::new();
        for (index, &lcore) in (0u32..).zip(lcores.iter()).skip(1) {
            let Some(seed) = self.take_seed(index) else {
                continue;
            };
            let t = std::thread::Builder::new()
                .name(format!("reactor_{lcore}"))
                .spawn(move || {
                    pin_current_thread(lcore);
                    seed.build().run();
                })
                .map_err(|e| format!("cannot start reactor {lcore}: {e}"))?;
            threads.push(t);
        }
        // Last: a thread inherits its creator's affinity, so the others start unpinned.
        if let Some(&main) = lcores.first() {
            pin_current_thread(main);
        }
        Ok(threads)
    }

    /// Builds every reactor on the calling thread (for tests that step them by hand).
    pub fn build_all(mut self) -> Vec<Reactor> {
        (0..u32::try_from(self.len()).unwrap_or(u32::MAX))
            .filter_map(|i| self.take_seed(i))
            .map(ReactorSeed::build)
            .collect()
    }
}

/// What a thread needs to build its reactor (sendable).
#[derive(Debug)]
pub struct ReactorSeed {
    index: u32,
    shared: Arc<Shared>,
    mailbox: Receiver<Msg>,
}

impl ReactorSeed {
    /// Builds the reactor on the calling thread.
    pub fn build(self) -> Reactor {
        let (task_tx, task_rx) = crossbeam_channel::unbounded();
        Reactor {
            local: Rc::new(Local::new(self.index, self.shared, task_tx)),
            mailbox: self.mailbox,
            tasks: task_rx,
            idle_polls: 0,
        }
    }
}

/// One reactor; see the module doc.
#[derive(Debug)]
pub struct Reactor {
    local: Rc<Local>,
    mailbox: Receiver<Msg>,
    tasks: Receiver<async_task::Runnable>,
    idle_polls: u32,
}

impl Reactor {
    /// This reactor's index (0 = main).
    pub fn index(&self) -> u32 {
        self.local.index
    }

    /// Runs `f` with this reactor as the current one.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = local::CurrentGuard::set(self.local.clone());
        self.local.refresh_ticks();
        f()
    }

    /// One pass: mailbox, tasks, pollers. Returns how much work was done (0 = idle).
    pub fn poll_once(&mut self) -> usize {
        let _guard = local::CurrentGuard::set(self.local.clone());
        self.local.refresh_ticks();
        let mut work = self.local.flush_overflow();
        for _ in 0..MAILBOX_BATCH {
            let Ok(msg) = self.mailbox.try_recv() else {
                break;
            };
            work += 1;
            match msg {
                Msg::Call(f) => f(),
                Msg::Io { endpoint, io } => self.local.call_endpoint(endpoint, io),
            }
        }
        for _ in 0..TASK_BATCH {
            let Ok(runnable) = self.tasks.try_recv() else {
                break;
            };
            work += 1;
            runnable.run();
        }
        work + self.local.run_pollers()
    }

    /// Polls until [`request_stop`] is called by anyone, backing off when idle if the set
    /// was built with idle backoff.
    pub fn run(&mut self) {
        while !self.local.shared.stop.load(Ordering::Acquire) {
            if self.poll_once() == 0 {
                self.idle_polls = self.idle_polls.saturating_add(1);
                if self.local.shared.idle_backoff && self.idle_polls > IDLE_POLLS_BEFORE_BACKOFF {
                    std::thread::sleep(IDLE_SLEEP);
                }
            } else {
                self.idle_polls = 0;
            }
        }
        // Run what is left once so that final replies go out.
        self.poll_once();
    }

    /// Whether a stop has been requested.
    pub fn stopping(&self) -> bool {
        self.local.shared.stop.load(Ordering::Acquire)
    }

    /// The lcore ids of every reactor, by index.
    pub fn lcores(&self) -> &[u32] {
        &self.local.shared.lcores
    }
}

#[cfg(test)]
mod tests;
