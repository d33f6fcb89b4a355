//! The async-task executor of each reactor, for control work (never the I/O path).
//!
//! Tasks are spawned on the current reactor and always run there: the schedule function
//! pushes the runnable into that reactor's task queue, which [`super::Reactor::poll_once`]
//! drains. Wakers may fire on any thread; the task still runs on its own reactor.

use std::future::Future;

use super::local::with_current;
use super::ReactorError;

/// Spawns `future` on the current reactor. Drop the returned task to cancel it, or
/// `detach` it to let it run to the end.
pub fn spawn_local<F>(future: F) -> Result<async_task::Task<F::Output>, ReactorError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    with_current(|l| {
        let tx = l.task_tx.clone();
        let (runnable, task) = async_task::spawn_local(future, move |r| {
            // A stopped reactor drops its queue; its tasks die with it.
            let _ = tx.send(r);
        });
        runnable.schedule();
        task
    })
}
