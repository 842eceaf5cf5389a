//! The one way every owning task (store writer, network loop, rooms, sync driver) is asked for
//! something: a command carrying a oneshot reply, over the task's bounded channel.

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
