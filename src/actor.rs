//! How tasks reach state they do not own: ask the owning task ([`ask`]: every owning task, the
//! store writer, the network loop, rooms and the sync driver, is reached this way), or, for the
//! few small shared registries, take a lock that is never held across an `.await`
//! ([`unpoisoned`]).

use std::sync::{LockResult, PoisonError};

use tokio::sync::{mpsc, oneshot};

/// Sends the command `make` builds around a reply channel and waits for the reply. `None` means
/// the task has stopped (its channel or the reply was dropped); callers turn that into their own
/// error.
pub(crate) async fn ask<C, T>(
    tx: &mpsc::Sender<C>,
    make: impl FnOnce(oneshot::Sender<T>) -> C,
) -> Option<T> {
    let (reply, rx) = oneshot::channel();
    tx.send(make(reply)).await.ok()?;
    rx.await.ok()
}

/// The guard of a lock, even if a panicking thread poisoned it: every critical section in
/// peerdoc leaves its data consistent (no multi-step updates), so the data is still good.
pub(crate) fn unpoisoned<G>(result: LockResult<G>) -> G {
    result.unwrap_or_else(PoisonError::into_inner)
}
