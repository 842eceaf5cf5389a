//! When the room holds its document: loaded from the store on first use (an editor, a CLI
//! call, gossip, a sync request that needs data), and unloaded after [`RoomContext`]'s
//! `unload_after` without use and without editor sessions, once the store holds everything
//! (a snapshot with its summary, so the next open is a decode and a peer in the same state is
//! answered without loading). Only the document goes; membership, keys and presence stay. A
//! room with nothing loaded, listened to or present goes further: it parks in its [`Slot`]
//! until the next request wakes it.
//!
//! [`RoomContext`]: super::RoomContext

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Command, DiffAndSv, Room, RoomError};
use crate::actor::unpoisoned;
use crate::core::doc::{holds_our_state, Document, Summary, EMPTY_UPDATE};

/// Where a room's state is: with its running task (reached through the sender), parked while
/// dormant (no task, no timers, no queue: an idle document costs little more than its
/// membership), or gone. The task parks itself only when no request is queued or about to be
/// sent (it checks under the lock that the slot's sender is the only one), so a request never
/// meets a sleeping room: it wakes it.
pub(super) enum Slot {
    Awake(mpsc::Sender<Command>),
    Dormant(Box<Room>),
    Closed,
}

/// Parks a sleeping room in its slot, unless a request is queued or about to be sent; then it
/// gets the room back.
pub(super) fn park(
    mut room: Box<Room>,
    rx: &mpsc::Receiver<Command>,
    slot: &std::sync::Mutex<Slot>,
) -> Result<(), Box<Room>> {
    let mut slot = unpoisoned(slot.lock());
    match &*slot {
        Slot::Awake(tx) if tx.strong_count() == 1 && rx.is_empty() => {
            tracing::trace!(doc = %room.id, "room dormant");
            // No one listens or is present (conditions of sleeping): their state goes too.
            room.changes = None;
            room.presence = None;
            *slot = Slot::Dormant(room);
            Ok(())
        }
        _ => Err(room),
    }
}

/// How often a room checks whether it went idle.
pub(super) fn idle_check_every(unload_after: Duration) -> Duration {
    (unload_after / 4).clamp(Duration::from_millis(200), Duration::from_secs(30))
}

impl Room {
    /// The document, loaded if it is not; this counts as use (it stays loaded a while).
    pub(super) async fn loaded(&mut self) -> Result<&mut Document, RoomError> {
        self.last_used = Instant::now();
        self.document().await
    }

    /// The document, loaded if it is not, without counting as use.
    async fn document(&mut self) -> Result<&mut Document, RoomError> {
        if self.doc.is_none() {
            self.load().await?;
        }
        self.doc.as_mut().ok_or(RoomError::Closed(self.id))
    }

    /// Loads the document from the store (the snapshot, then the log after it).
    pub(super) async fn load(&mut self) -> Result<(), RoomError> {
        let stored = self.ctx.store.load(self.id).await?;
        let doc = Document::from_updates(stored.in_order())
            .map_err(|e| RoomError::Corrupt(self.id, e))?;
        self.last_seq = stored.last_seq;
        self.since_compaction = stored.updates.len();
        self.stored_bytes = stored.in_order().map(<[u8]>::len).sum();
        self.unsaved = false;
        self.doc = Some(doc);
        self.ctx.metrics.documents_loaded.inc();
        // Covered again on the next change (deleting what is deleted changes nothing).
        self.cut_done.clear();
        tracing::debug!(doc = %self.id, bytes = self.stored_bytes, "document loaded");
        Ok(())
    }

    /// The document's state vector and digest: kept while nothing changes, so an unloaded
    /// document is not loaded to say what it holds.
    pub(super) async fn summary(&mut self) -> Result<Summary, RoomError> {
        if let Some(summary) = &self.summary {
            return Ok(summary.clone());
        }
        let summary = self.document().await?.summary();
        self.summary = Some(summary.clone());
        Ok(summary)
    }

    /// What a replica at `sv` lacks, and our state vector: nothing, without loading, if its
    /// `digest` (a peer's sync request has one, an editor's has not) says it is in our state.
    pub(super) async fn diff(
        &mut self,
        sv: Vec<u8>,
        digest: Option<[u8; 32]>,
    ) -> Result<DiffAndSv, RoomError> {
        if let Some(digest) = digest {
            // The same decision as `Document::diff_unless_same` (what the simulation runs), on
            // the summary kept while nothing changes.
            let ours = self.summary().await?;
            if holds_our_state(&ours.digest, &sv, &digest)? {
                return Ok((EMPTY_UPDATE.to_vec(), ours.sv));
            }
        }
        // An editor's request (no digest) needs the document anyway: no digest computed for it.
        let doc = self.loaded().await?;
        Ok((doc.diff(&sv)?, doc.state_vector()))
    }

    /// Whether the task may stop until the next request: nothing loaded, unsaved, listened to
    /// or present (presence expires on the task's timer).
    pub(super) fn may_sleep(&self) -> bool {
        self.doc.is_none()
            && !self.unsaved
            && self.pending.is_empty()
            && self.subscribers() == 0
            && self.presence.as_ref().is_none_or(|p| p.is_empty())
    }

    fn subscribers(&self) -> usize {
        self.changes.as_ref().map_or(0, |c| c.receiver_count())
    }

    /// Unloads the document if it has been idle long enough and the store holds all of it.
    pub(super) async fn unload_if_idle(&mut self) {
        if self.doc.is_none()
            || self.unsaved
            || !self.pending.is_empty()
            || self.subscribers() > 0
            || self.last_used.elapsed() < self.ctx.unload_after
        {
            return;
        }
        // Edits made through this node since the last version go into one before it unloads.
        self.record_version_if_due(true).await;
        if !self.summary_stored {
            if let Err(e) = self.store_snapshot().await {
                tracing::warn!(doc = %self.id, "keeping the document loaded: cannot store its snapshot: {e}");
                return;
            }
        }
        self.doc = None;
        self.changes = None;
        tracing::debug!(doc = %self.id, "idle document unloaded");
    }

    /// At close: leave a snapshot with its summary, so the next start opens without a replay.
    pub(super) async fn compact_before_close(&mut self) {
        if self.doc.is_some() && !self.summary_stored {
            if let Err(e) = self.store_snapshot().await {
                tracing::warn!(doc = %self.id, "could not compact before closing: {e}");
            }
        }
    }
}
