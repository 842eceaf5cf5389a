//! The room's storage: every change is stored before it is acknowledged; an API write is
//! committed before anyone sees it and rolled back if it cannot be stored; a peer's or an
//! editor's change is shown and sent on at once and stored without the room waiting (queued
//! commits, acknowledged in order; the store batches them), and one that cannot be stored is
//! kept and the whole state is stored once the disk accepts writes again (never a delta whose
//! predecessors the disk lacks); the log is compacted into a snapshot; and the document's size
//! is bounded.

use super::commits::Pending;
use super::{Change, Origin, Room, RoomError, Stage};
use crate::core::doc::{DocError, Document};
use crate::core::sync::{gossip, Frame, YMessage};
use crate::replica::store::StoreError;

impl Room {
    /// Runs a change of the document. If yrs panicked in it, the in-memory document may be
    /// half-changed: it is rebuilt from the store, which holds exactly what came before.
    pub(super) async fn guarded<T>(
        &mut self,
        change: impl FnOnce(&mut Document) -> Result<T, DocError>,
    ) -> Result<T, RoomError> {
        let result = change(self.loaded().await?);
        self.summary = None;
        if let Err(DocError::Panicked) = result {
            tracing::error!(doc = %self.id, "the CRDT library panicked on an update; reloading the document");
            self.reload().await;
        }
        Ok(result?)
    }

    /// A change from a peer: shown to local editors at once, then stored (queued; not
    /// acknowledged to anyone). If the store fails, it stays in memory and is stored with the
    /// whole state when the disk accepts writes again.
    pub(super) async fn persist_remote(&mut self, delta: Option<Vec<u8>>) {
        let Some(delta) = delta else { return };
        self.ctx.metrics.edit("remote");
        self.changed();
        let message = Frame::new(YMessage::Update(delta));
        tracing::trace!(target: "peerdoc::stage", "room: applied, to editor sessions");
        self.tell(Change::applied(Origin::Remote, message.clone()));
        self.submit(message, Origin::Remote).await;
    }

    /// A local edit. An editor's is fanned out to other editors and to peers at once, stored
    /// without waiting, and acknowledged to its editor (the echo of its own update) once
    /// durable. An API write (after [`Room::ready_for_api_write`]) is committed before anyone
    /// sees it; if the commit fails, the document is rolled back to what the store holds and
    /// the caller gets the error.
    pub(super) async fn local_change(
        &mut self,
        delta: Option<Vec<u8>>,
        origin: Origin,
    ) -> Result<(), RoomError> {
        let Some(delta) = delta else { return Ok(()) };
        if origin == Origin::Api {
            if let Err(e) = self.commit_now(delta.clone()).await {
                self.reload().await;
                return Err(e);
            }
        }
        // The claim is sent before the edit, so a removal can name the client.
        let clients = self.clients_of(&delta);
        self.claim_clients(&clients).await;
        self.ctx.metrics.edit("local");
        self.changed();
        self.versions.edited(tokio::time::Instant::now().into_std());
        let message = Frame::new(YMessage::Update(delta.clone()));
        self.tell(Change::applied(origin, message.clone()));
        if let Some(doc) = &self.doc {
            self.send_out(gossip::for_local_edit(doc, delta));
            tracing::trace!(target: "peerdoc::stage", "room: applied, queued to publish");
        }
        if origin == Origin::Api {
            self.compact_if_due().await;
        } else {
            self.submit(message, origin).await;
        }
        // An editor may resend a removed member's operations it got elsewhere.
        self.cut_if_touched(&clients).await;
        Ok(())
    }

    /// An API write of `len` bytes of text (a replacement or an append): within the size
    /// limit, committed before anyone sees it (see [`Room::local_change`]).
    pub(super) async fn write_text(
        &mut self,
        len: usize,
        edit: impl FnOnce(&mut Document) -> Option<Vec<u8>>,
    ) -> Result<(), RoomError> {
        self.may_add(len)?;
        self.ready_for_api_write().await?;
        let delta = edit(self.loaded().await?);
        self.local_change(delta, Origin::Api).await
    }

    /// Before an API write: every queued commit settled and the store holding everything in
    /// memory, so that a failed write can be rolled back to exactly what the store holds.
    pub(super) async fn ready_for_api_write(&mut self) -> Result<(), RoomError> {
        self.settle_commits().await;
        if self.unsaved {
            self.flush().await?;
        }
        Ok(())
    }

    /// Replaces the in-memory document with what the store holds: after a failed API write, or
    /// a panic in the CRDT library (changes not stored yet come back from peers). If the store
    /// cannot be read, the document stays unloaded and the next use tries again.
    pub(super) async fn reload(&mut self) {
        self.doc = None;
        self.summary = None;
        if let Err(e) = self.load().await {
            tracing::error!(doc = %self.id, "cannot reload the document: {e}");
        }
    }

    /// Stores the whole state, with its summary, as the snapshot and drops the log up to now,
    /// in one transaction (crash-safe: the old log goes only with the snapshot's commit).
    pub(super) async fn store_snapshot(&mut self) -> Result<(), RoomError> {
        let Some(doc) = &self.doc else {
            // Nothing in memory (unloaded, or a reload found the store unreadable): nothing the
            // store lacks.
            self.unsaved = false;
            return Ok(());
        };
        let snapshot = doc.encode_state();
        let summary = match self.summary.clone() {
            Some(summary) => summary,
            None => doc.summary(),
        };
        let size = snapshot.len();
        self.ctx
            .store
            .compact(self.id, snapshot, self.last_seq, summary.clone())
            .await?;
        self.since_compaction = 0;
        self.stored_bytes = size;
        self.unsaved = false;
        self.summary = Some(summary);
        self.summary_stored = true;
        Ok(())
    }

    /// Stores the whole state after a failed write (see [`Room::store_snapshot`]).
    pub(super) async fn flush(&mut self) -> Result<(), RoomError> {
        match self.store_snapshot().await {
            Ok(()) => {
                tracing::info!(doc = %self.id, "the store accepts writes again; the document is stored");
                Ok(())
            }
            Err(e) => {
                tracing::error!(doc = %self.id, "still cannot store the document (will retry): {e}");
                Err(e)
            }
        }
    }

    /// Whether `incoming` more bytes fit under the document size limit.
    pub(super) fn has_room_for(&self, incoming: usize) -> Result<(), RoomError> {
        if self.stored_bytes.saturating_add(incoming) > self.ctx.max_doc_bytes {
            return Err(RoomError::TooLarge(self.id));
        }
        Ok(())
    }

    /// A local edit of about `incoming` bytes: allowed for writers, within the size limit.
    pub(super) fn may_add(&self, incoming: usize) -> Result<(), RoomError> {
        if !self.may_write() {
            return Err(self.not_writer());
        }
        self.has_room_for(incoming)
    }

    /// The document changed: what was known about its state is stale.
    fn changed(&mut self) {
        self.summary = None;
        self.summary_stored = false;
    }

    /// Stores a change and waits for its commit (API writes).
    async fn commit_now(&mut self, delta: Vec<u8>) -> Result<(), RoomError> {
        self.changed();
        if self.unsaved {
            return self.flush().await;
        }
        let size = delta.len();
        match self.ctx.store.append(self.id, delta).await {
            Ok(seq) => {
                self.stored(seq, size);
                Ok(())
            }
            Err(e) => {
                tracing::error!(doc = %self.id, "could not store a change: {e}");
                Err(e.into())
            }
        }
    }

    fn stored(&mut self, seq: i64, size: usize) {
        self.last_seq = seq;
        self.stored_bytes += size;
        self.since_compaction += 1;
    }

    /// Queues a change (already applied and shown) for the store. While an earlier write
    /// failed, the whole state is stored instead, never a delta whose predecessors the disk
    /// lacks.
    async fn submit(&mut self, message: Frame, origin: Origin) {
        let YMessage::Update(delta) = &*message else {
            return;
        };
        if self.unsaved {
            let stored = self.flush().await.is_ok();
            self.acknowledge(origin, message, stored);
            return;
        }
        let size = delta.len();
        match self.ctx.store.append_queued(self.id, delta.clone()).await {
            Ok(commit) => {
                // Bounded: a room that gets ahead of the disk waits for it.
                if self.pending.push(commit, size, origin, message) {
                    self.settle_oldest().await;
                }
            }
            Err(e) => {
                tracing::error!(doc = %self.id, "could not store a change (kept in memory, will retry): {e}");
                self.unsaved = true;
                self.acknowledge(origin, message, false);
            }
        }
    }

    /// The outcome of the oldest queued change has arrived.
    pub(super) async fn committed(&mut self, result: Result<i64, StoreError>, pending: Pending) {
        let ok = match result {
            // After a failure the store lacks a predecessor of this change until the flush
            // stores the whole state: not acknowledged, although it is in the log.
            Ok(seq) => {
                self.stored(seq, pending.size);
                !self.unsaved
            }
            Err(e) => {
                if !self.unsaved {
                    tracing::error!(doc = %self.id, "could not store a change (kept in memory, will retry): {e}");
                }
                self.unsaved = true;
                false
            }
        };
        self.acknowledge(pending.origin, pending.message, ok);
        if self.pending.is_empty() {
            self.compact_if_due().await;
        }
    }

    /// Tells an editor session that its change is durable (the echo of its own update), or
    /// that it is not stored yet (the session closes, and the editor resyncs).
    fn acknowledge(&self, origin: Origin, message: Frame, stored: bool) {
        if let Origin::Session(_) = origin {
            let stage = if stored {
                Stage::Committed
            } else {
                Stage::NotStored
            };
            self.tell(Change {
                origin,
                message,
                stage,
            });
        }
    }

    /// Waits for the oldest queued change.
    async fn settle_oldest(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let (result, pending) = self.pending.next().await;
        self.committed(result, pending).await;
    }

    /// Waits for every queued change.
    pub(super) async fn settle_commits(&mut self) {
        while !self.pending.is_empty() {
            self.settle_oldest().await;
        }
    }

    async fn compact_if_due(&mut self) {
        if self.since_compaction >= self.ctx.compact_every && !self.unsaved {
            if let Err(e) = self.store_snapshot().await {
                tracing::warn!(doc = %self.id, "compaction failed, will retry: {e}");
            }
        }
    }
}
