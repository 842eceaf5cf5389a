//! The room's storage: every change is stored before it is acknowledged; an API write that
//! cannot be stored is rolled back; a peer's or editor's change that cannot be stored is kept
//! and the whole state is stored once the disk accepts writes again (never a delta whose
//! predecessors the disk lacks); the log is compacted into a snapshot; and the document's size
//! is bounded.

use std::sync::Arc;

use super::{Change, Origin, Room, RoomError};
use crate::core::doc::{DocError, Document};
use crate::core::sync::{gossip, YMessage};

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

    /// Stores a change that came from a peer. Not acknowledged to anyone: if the store fails, it
    /// stays in memory and is stored with the whole state when the disk accepts writes again.
    pub(super) async fn persist_remote(&mut self, delta: Option<Vec<u8>>) {
        let Some(delta) = delta else { return };
        // Kept in memory either way (and stored once the disk accepts writes again).
        let _ = self.persist(delta, Origin::Remote).await;
    }

    pub(super) async fn local_change(
        &mut self,
        delta: Option<Vec<u8>>,
        origin: Origin,
    ) -> Result<(), RoomError> {
        let Some(delta) = delta else { return Ok(()) };
        if let Err(e) = self.persist(delta.clone(), origin).await {
            if origin == Origin::Api {
                // An API write is committed before it is visible, or it never happened.
                self.reload().await;
            }
            return Err(e);
        }
        if let Some(doc) = &self.doc {
            self.send_out(gossip::for_local_edit(doc, delta));
        }
        Ok(())
    }

    /// Before an API write: the store must hold everything in memory, so that a failed write
    /// can be rolled back to exactly what the store holds.
    pub(super) async fn ready_for_api_write(&mut self) -> Result<(), RoomError> {
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
            return Err(RoomError::ReadOnly(self.id));
        }
        self.has_room_for(incoming)
    }

    /// Stores a change, then tells local subscribers. An API change that fails is not told
    /// (the caller rolls it back); a remote or editor change is kept in memory and told, and the
    /// store catches up with the whole state at the next write or retry.
    pub(super) async fn persist(
        &mut self,
        delta: Vec<u8>,
        origin: Origin,
    ) -> Result<(), RoomError> {
        let message = Arc::new(YMessage::Update(delta.clone()));
        self.summary = None;
        self.summary_stored = false;
        let stored = if self.unsaved {
            self.flush().await
        } else {
            let size = delta.len();
            match self.ctx.store.append(self.id, delta).await {
                Ok(seq) => {
                    self.last_seq = seq;
                    self.stored_bytes += size;
                    self.since_compaction += 1;
                    Ok(())
                }
                Err(e) => {
                    tracing::error!(doc = %self.id, "could not store a change (kept in memory, will retry): {e}");
                    self.unsaved = true;
                    Err(RoomError::from(e))
                }
            }
        };
        if stored.is_ok() || origin != Origin::Api {
            self.tell(Change { origin, message });
        }
        stored?;
        if self.since_compaction >= self.ctx.compact_every {
            if let Err(e) = self.store_snapshot().await {
                tracing::warn!(doc = %self.id, "compaction failed, will retry: {e}");
            }
        }
        Ok(())
    }
}
