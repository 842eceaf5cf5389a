//! [`CommitQueue`]: the room's changes on their way to the disk, oldest first. The store commits
//! them in order; the room takes each outcome in turn (to acknowledge an editor's change, or to
//! start over from the whole state after a failure) and waits for the oldest one when the
//! queue is full, so a room that gets ahead of the disk slows down instead of growing.

use std::collections::VecDeque;

use super::Origin;
use crate::core::sync::Frame;
use crate::replica::store::{Commit, StoreError};

/// A change queued for the store, waiting for its commit.
pub(super) struct Pending {
    commit: Commit,
    /// Bytes it adds to the store.
    pub(super) size: usize,
    pub(super) origin: Origin,
    pub(super) message: Frame,
}

pub(super) struct CommitQueue {
    queue: VecDeque<Pending>,
    /// Changes queued before the room waits for the oldest.
    capacity: usize,
}

impl CommitQueue {
    pub(super) fn new(capacity: usize) -> CommitQueue {
        CommitQueue {
            queue: VecDeque::new(),
            capacity,
        }
    }

    /// Queues a change whose commit the store has accepted. True: the queue is full, and the
    /// room must take the oldest outcome ([`Self::next`]) before it queues more.
    pub(super) fn push(
        &mut self,
        commit: Commit,
        size: usize,
        origin: Origin,
        message: Frame,
    ) -> bool {
        self.queue.push_back(Pending {
            commit,
            size,
            origin,
            message,
        });
        self.queue.len() >= self.capacity
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The oldest change's outcome, and the change (waits forever when nothing is queued, so it
    /// can sit in a `select!`). A store that went away counts as a failed commit.
    pub(super) async fn next(&mut self) -> (Result<i64, StoreError>, Pending) {
        let Some(oldest) = self.queue.front_mut() else {
            return std::future::pending().await;
        };
        let result = (&mut oldest.commit)
            .await
            .unwrap_or(Err(StoreError::Closed));
        let Some(pending) = self.queue.pop_front() else {
            // The front was just there, and only this borrow could take it.
            unreachable!("the oldest queued change vanished while awaited");
        };
        if self.queue.is_empty() {
            self.queue.shrink_to_fit();
        }
        (result, pending)
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;
    use crate::core::sync::YMessage;

    fn change(queue: &mut CommitQueue, n: u8) -> (oneshot::Sender<Result<i64, StoreError>>, bool) {
        let (done, commit) = oneshot::channel();
        let frame = Frame::new(YMessage::Update(vec![n]));
        let full = queue.push(commit, 1, Origin::Remote, frame);
        (done, full)
    }

    #[tokio::test]
    async fn outcomes_come_oldest_first_whatever_order_the_store_answers_in() {
        let mut queue = CommitQueue::new(8);
        let (first, _) = change(&mut queue, 1);
        let (second, _) = change(&mut queue, 2);
        second.send(Ok(2)).unwrap();
        first.send(Ok(1)).unwrap();
        let (result, pending) = queue.next().await;
        assert_eq!(
            (result.unwrap(), &*pending.message),
            (1, &YMessage::Update(vec![1]))
        );
        let (result, pending) = queue.next().await;
        assert_eq!(
            (result.unwrap(), &*pending.message),
            (2, &YMessage::Update(vec![2]))
        );
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn a_full_queue_says_so_and_a_vanished_store_is_a_failed_commit() {
        let mut queue = CommitQueue::new(2);
        let (lost, full) = change(&mut queue, 1);
        assert!(!full);
        let (_later, full) = change(&mut queue, 2);
        assert!(full, "the second of two fills it");
        drop(lost);
        let (result, pending) = queue.next().await;
        assert!(matches!(result, Err(StoreError::Closed)), "{result:?}");
        assert_eq!(*pending.message, YMessage::Update(vec![1]));
        assert!(!queue.is_empty());
    }
}
