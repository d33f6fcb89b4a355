//! Pinning reactor threads to their cores, as SPDK does: one reactor per core of the mask,
//! each on its own core, so that a busy-polling reactor does not wander and two never share
//! a core by accident.
//!
//! Called once by each reactor's own thread at start-up; holds no state.

/// Pins the calling thread to `lcore`. A core the process may not run on (outside its
/// cpuset, or absent) leaves the thread unpinned and says so once on stderr: the reactor
/// still works, only placement is lost. Returns whether the thread is pinned.
pub fn pin_current_thread(lcore: u32) -> bool {
    let pinned = core_affinity::set_for_current(core_affinity::CoreId { id: lcore as usize });
    if !pinned {
        eprintln!(
            "reactor {lcore}: core {lcore} is not available to this process (cpuset?); \
             running unpinned"
        );
    }
    pinned
}
