//! One task per open document: it alone owns the document's [`Document`] and its
//! [`Presence`], applies local and remote updates, persists them through the [`Store`] (a local
//! edit is acknowledged only once committed), compacts the log, and fans changes out: local
//! edits and presence to the network outbox, every change to local subscribers (editor
//! sessions). What a gossip message asks for, and whether a local edit is gossiped or announced,
//! is decided by [`crate::core::sync::gossip`], the code the simulation runs. It also owns the
//! document's membership and keys ([`Access`]): it adds certificates and key grants (opening
//! grants addressed to this node), refuses local edits on a reader's node, and on the owner's
//! node removes members (a new key epoch, granted to everyone else). Others read the latest
//! `Access` from a watch channel without waiting for the room.

use std::sync::Arc;
use std::time::Duration;

use libp2p::identity::ed25519;
use libp2p::PeerId;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::presence::{Owner, Presence};
use super::store::{Store, StoreError};
use crate::core::access::{Cert, KeyBytes, KeyGrant, Membership};
use crate::core::doc::{Applied, DocError, DocId, Document};
use crate::core::envelope::Keyring;
use crate::core::sync::gossip::{self, Gossip, Received};
use crate::core::sync::{SyncError, YMessage};

/// How often a room whose last store write failed tries again.
const FLUSH_RETRY: Duration = Duration::from_secs(5);
/// How often presence expiry runs.
const PRESENCE_CHECK: Duration = Duration::from_secs(5);
/// Most bytes a document may hold in the store (snapshot and log), whoever writes: a writer
/// gone bad cannot fill every member's disk. Updates that would pass it are refused.
pub(crate) const MAX_DOC_BYTES: usize = 512 << 20;
/// Commands waiting for a room.
const COMMAND_QUEUE: usize = 256;
/// Changes buffered per subscriber; a session that falls further behind resyncs.
const CHANGES_QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored history of document {0} is damaged ({1}); restore the database from a backup")]
    Corrupt(DocId, DocError),
    #[error("document {0} is closed")]
    Closed(DocId),
    #[error("malformed awareness update: {0}")]
    Awareness(#[from] SyncError),
    #[error(
        "document {0} is read-only here: it was shared with this node read-only; ask a writer \
         for a read-write ticket"
    )]
    ReadOnly(DocId),
    #[error(
        "document {0} has reached its size limit ({limit} bytes stored); nothing more can be \
         added to it",
        limit = MAX_DOC_BYTES
    )]
    TooLarge(DocId),
}

/// Where a change came from, so subscribers can skip their own echoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// From a peer over the network.
    Remote,
    /// From the HTTP API (CLI `write`, imports).
    Api,
    /// From a local editor session with this id.
    Session(u64),
}

/// A change to the document or to its presence states.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) origin: Origin,
    /// `Update` (a yrs update) or `Awareness` (an awareness update).
    pub(crate) message: Arc<YMessage>,
}

/// A local edit or presence change for the network: the doc and what to gossip about it.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) doc: DocId,
    pub(crate) gossip: Gossip,
}

/// A diff and the state vector it was taken at.
pub(crate) type DiffAndSv = (Vec<u8>, Vec<u8>);

enum Command {
    ReceiveGossip(Gossip, PeerId, oneshot::Sender<Result<Received, RoomError>>),
    ApplyRemote(Vec<u8>, oneshot::Sender<Result<Applied, RoomError>>),
    ApplyLocal(Vec<u8>, Origin, oneshot::Sender<Result<(), RoomError>>),
    Replace(String, oneshot::Sender<Result<(), RoomError>>),
    Append(String, oneshot::Sender<Result<(), RoomError>>),
    ApplyAwareness(
        Vec<u8>,
        Origin,
        oneshot::Sender<Result<Vec<u64>, RoomError>>,
    ),
    AwarenessState(oneshot::Sender<Option<Vec<u8>>>),
    RemoveAwareness(Vec<u64>, Origin, oneshot::Sender<()>),
    Text(oneshot::Sender<String>),
    StateVector(oneshot::Sender<Vec<u8>>),
    Diff(Vec<u8>, oneshot::Sender<Result<DiffAndSv, RoomError>>),
    /// Certificates and key grants from a ticket or a peer; answers how many were new.
    AddRecords(
        Vec<Cert>,
        Vec<KeyGrant>,
        oneshot::Sender<Result<usize, RoomError>>,
    ),
    /// The owner removes a member (by key): revocations, a new epoch, grants.
    Revoke(KeyBytes, oneshot::Sender<Result<u32, RoomError>>),
    Close(oneshot::Sender<()>),
    /// Test hook: the room does nothing else until `release` fires (a busy or stuck room).
    #[cfg(test)]
    Stall(oneshot::Receiver<()>),
}

/// What a room publishes for those that must not wait for it: who may do what, and the keys.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    pub(crate) membership: Membership,
    pub(crate) keys: Keyring,
}

/// Cloneable handle to a room task.
#[derive(Clone)]
pub(crate) struct RoomHandle {
    pub(crate) id: DocId,
    pub(crate) topic: [u8; 32],
    tx: mpsc::Sender<Command>,
    changes: broadcast::Sender<Change>,
    /// The room's latest membership and keys, readable without asking the room.
    access: watch::Receiver<Arc<Access>>,
}

/// Settings a room needs besides its document.
#[derive(Clone)]
pub(crate) struct RoomContext {
    pub(crate) store: Store,
    pub(crate) outbox: mpsc::Sender<Outgoing>,
    /// Compact the log into a snapshot after this many appended updates.
    pub(crate) compact_every: usize,
    /// This node (its role decides whether local edits are allowed).
    pub(crate) me: PeerId,
    /// This node's identity key: opens key grants, and signs on the owner's node.
    pub(crate) identity: ed25519::Keypair,
    /// The document size limit ([`MAX_DOC_BYTES`]; smaller in tests).
    pub(crate) max_doc_bytes: usize,
}

struct Room {
    id: DocId,
    doc: Document,
    presence: Presence,
    access: Access,
    access_tx: watch::Sender<Arc<Access>>,
    ctx: RoomContext,
    last_seq: i64,
    since_compaction: usize,
    /// Bytes stored for the document (snapshot and log).
    stored_bytes: usize,
    /// The in-memory document has changes the store lacks (a write failed): the next write
    /// stores the whole state, never a delta whose predecessors are missing on disk.
    unsaved: bool,
    changes: broadcast::Sender<Change>,
}

impl Room {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut presence_check = tokio::time::interval(PRESENCE_CHECK);
        let mut flush_retry = tokio::time::interval(FLUSH_RETRY);
        loop {
            let cmd = tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => cmd,
                    None => break,
                },
                _ = flush_retry.tick(), if self.unsaved => {
                    // When the disk accepts writes again, what it missed is stored.
                    let _ = self.flush().await;
                    continue;
                }
                _ = presence_check.tick() => {
                    // Every node expires on its own: nothing to announce.
                    if let Some(gone) = self.presence.expire() {
                        self.fan_out_presence(gone, Origin::Remote, false);
                    }
                    continue;
                }
            };
            if self.on_command(cmd).await.is_break() {
                break;
            }
        }
        tracing::debug!(doc = %self.id, "room closed");
    }

    async fn on_command(&mut self, cmd: Command) -> std::ops::ControlFlow<()> {
        match cmd {
            Command::ReceiveGossip(gossip, from, reply) => {
                self.receive_gossip(gossip, from, reply).await
            }
            Command::ApplyRemote(update, reply) => {
                if let Err(e) = self.has_room_for(update.len()) {
                    let _ = reply.send(Err(e));
                    return std::ops::ControlFlow::Continue(());
                }
                let result = self.guarded(|doc| doc.apply(&update)).await;
                let delta = result.as_ref().ok().and_then(|a| a.delta.clone());
                let _ = reply.send(result);
                self.persist_remote(delta).await;
            }
            Command::ApplyLocal(update, origin, reply) => {
                if !self.may_write() {
                    // What a reconnecting editor resends is fine; an edit is not.
                    let result = match self.doc.would_change(&update) {
                        Ok(false) => Ok(()),
                        Ok(true) => Err(RoomError::ReadOnly(self.id)),
                        Err(e) => Err(e.into()),
                    };
                    let _ = reply.send(result);
                    return std::ops::ControlFlow::Continue(());
                }
                if let Err(e) = self.has_room_for(update.len()) {
                    let _ = reply.send(Err(e));
                    return std::ops::ControlFlow::Continue(());
                }
                let result = match self.guarded(|doc| doc.apply(&update)).await {
                    Ok(applied) => self.local_change(applied.delta, origin).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Command::Replace(text, reply) => {
                if let Err(e) = self
                    .may_add(text.len())
                    .and(self.ready_for_api_write().await)
                {
                    let _ = reply.send(Err(e));
                    return std::ops::ControlFlow::Continue(());
                }
                let delta = self.doc.replace_text(&text);
                let _ = reply.send(self.local_change(delta, Origin::Api).await);
            }
            Command::Append(text, reply) => {
                if let Err(e) = self
                    .may_add(text.len())
                    .and(self.ready_for_api_write().await)
                {
                    let _ = reply.send(Err(e));
                    return std::ops::ControlFlow::Continue(());
                }
                let delta = self.doc.append_text(&text);
                let _ = reply.send(self.local_change(delta, Origin::Api).await);
            }
            Command::AddRecords(certs, grants, reply) => {
                let _ = reply.send(self.add_records(certs, grants).await);
            }
            Command::Revoke(member, reply) => {
                let _ = reply.send(self.revoke(member).await);
            }
            Command::ApplyAwareness(update, origin, reply) => {
                let owner = match origin {
                    Origin::Session(session) => Some(Owner::Session(session)),
                    Origin::Remote | Origin::Api => None,
                };
                let _ = reply.send(self.apply_awareness(&update, origin, owner));
            }
            Command::AwarenessState(reply) => {
                let _ = reply.send(self.presence.state());
            }
            Command::RemoveAwareness(clients, origin, reply) => {
                let owner = match origin {
                    Origin::Session(session) => Some(Owner::Session(session)),
                    Origin::Remote | Origin::Api => None,
                };
                if let Some(gone) = self.presence.remove(clients, owner) {
                    self.fan_out_presence(gone, origin, true);
                }
                let _ = reply.send(());
            }
            Command::Text(reply) => {
                let _ = reply.send(self.doc.text());
            }
            Command::StateVector(reply) => {
                let _ = reply.send(self.doc.state_vector());
            }
            Command::Diff(sv, reply) => {
                let result = self
                    .doc
                    .diff(&sv)
                    .map(|d| (d, self.doc.state_vector()))
                    .map_err(RoomError::from);
                let _ = reply.send(result);
            }
            Command::Close(reply) => {
                let _ = reply.send(());
                return std::ops::ControlFlow::Break(());
            }
            #[cfg(test)]
            Command::Stall(release) => {
                let _ = release.await;
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    async fn receive_gossip(
        &mut self,
        gossip: Gossip,
        from: PeerId,
        reply: oneshot::Sender<Result<Received, RoomError>>,
    ) {
        match gossip {
            Gossip::Update(update) => {
                if let Err(e) = self.has_room_for(update.len()) {
                    let _ = reply.send(Err(e));
                    return;
                }
                let result = self
                    .guarded(|doc| gossip::receive_update(doc, &update))
                    .await;
                let delta = result.as_ref().ok().and_then(|r| r.delta.clone());
                let _ = reply.send(result);
                self.persist_remote(delta).await;
            }
            Gossip::Have(sv) => {
                let _ = reply.send(gossip::receive_have(&self.doc, &sv).map_err(RoomError::from));
            }
            Gossip::Awareness(update) => {
                let result = self
                    .apply_awareness(&update, Origin::Remote, Some(Owner::Peer(from)))
                    .map(|_| Received::default());
                let _ = reply.send(result);
            }
        }
    }

    /// Runs a change of the document. If yrs panicked in it, the in-memory document may be
    /// half-changed: it is rebuilt from the store, which holds exactly what came before.
    async fn guarded<T>(
        &mut self,
        change: impl FnOnce(&mut Document) -> Result<T, DocError>,
    ) -> Result<T, RoomError> {
        let result = change(&mut self.doc);
        if let Err(DocError::Panicked) = result {
            tracing::error!(doc = %self.id, "the CRDT library panicked on an update; reloading the document");
            self.reload().await;
        }
        Ok(result?)
    }

    /// Stores a change that came from a peer. Not acknowledged to anyone: if the store fails, it
    /// stays in memory and is stored with the whole state when the disk accepts writes again.
    async fn persist_remote(&mut self, delta: Option<Vec<u8>>) {
        let Some(delta) = delta else { return };
        // Kept in memory either way (and stored once the disk accepts writes again).
        let _ = self.persist(delta, Origin::Remote).await;
    }

    async fn local_change(
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
        self.send_out(gossip::for_local_edit(&self.doc, delta));
        Ok(())
    }

    /// Before an API write: the store must hold everything in memory, so that a failed write
    /// can be rolled back to exactly what the store holds.
    async fn ready_for_api_write(&mut self) -> Result<(), RoomError> {
        if self.unsaved {
            self.flush().await?;
        }
        Ok(())
    }

    /// Replaces the in-memory document with what the store holds: after a failed API write, or
    /// a panic in the CRDT library (changes not stored yet come back from peers).
    async fn reload(&mut self) {
        let stored = match self.ctx.store.load(self.id).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(doc = %self.id, "cannot reload the document after a failed write: {e}");
                return;
            }
        };
        match Document::from_updates(stored.in_order()) {
            Ok(doc) => {
                self.doc = doc;
                self.last_seq = stored.last_seq;
                self.since_compaction = stored.updates.len();
                self.stored_bytes = stored.in_order().map(<[u8]>::len).sum();
                self.unsaved = false;
            }
            Err(e) => tracing::error!(doc = %self.id, "cannot reload the document: {e}"),
        }
    }

    /// Stores the whole state, replacing the log (one transaction): after a failed write.
    async fn flush(&mut self) -> Result<(), RoomError> {
        let snapshot = self.doc.encode_state();
        let size = snapshot.len();
        match self
            .ctx
            .store
            .compact(self.id, snapshot, self.last_seq)
            .await
        {
            Ok(()) => {
                tracing::info!(doc = %self.id, "the store accepts writes again; the document is stored");
                self.unsaved = false;
                self.since_compaction = 0;
                self.stored_bytes = size;
                Ok(())
            }
            Err(e) => {
                tracing::error!(doc = %self.id, "still cannot store the document (will retry): {e}");
                Err(e.into())
            }
        }
    }

    fn send_out(&self, gossip: Gossip) {
        // A full outbox only delays peers until the next anti-entropy round; never block edits.
        if let Err(e) = self.ctx.outbox.try_send(Outgoing {
            doc: self.id,
            gossip,
        }) {
            tracing::debug!(doc = %self.id, "outbox full, peers catch up by sync: {e}");
        }
    }

    /// Applies an awareness update and fans out what changed; returns the clients it names.
    fn apply_awareness(
        &mut self,
        update: &[u8],
        origin: Origin,
        owner: Option<Owner>,
    ) -> Result<Vec<u64>, RoomError> {
        let (clients, changed) = self.presence.apply(update, owner)?;
        if let Some(changed) = changed {
            self.fan_out_presence(changed, origin, origin != Origin::Remote);
        }
        Ok(clients)
    }

    /// Tells local sessions about a presence change and, if `announce`, peers.
    fn fan_out_presence(&self, update: Vec<u8>, origin: Origin, announce: bool) {
        let _ = self.changes.send(Change {
            origin,
            message: Arc::new(YMessage::Awareness(update.clone())),
        });
        if announce {
            self.send_out(Gossip::Awareness(update));
        }
    }

    /// Whether `incoming` more bytes fit under the document size limit.
    fn has_room_for(&self, incoming: usize) -> Result<(), RoomError> {
        if self.stored_bytes.saturating_add(incoming) > self.ctx.max_doc_bytes {
            return Err(RoomError::TooLarge(self.id));
        }
        Ok(())
    }

    /// A local edit of about `incoming` bytes: allowed for writers, within the size limit.
    fn may_add(&self, incoming: usize) -> Result<(), RoomError> {
        if !self.may_write() {
            return Err(RoomError::ReadOnly(self.id));
        }
        self.has_room_for(incoming)
    }

    /// Stores a change, then tells local subscribers. An API change that fails is not told
    /// (the caller rolls it back); a remote or editor change is kept in memory and told, and the
    /// store catches up with the whole state at the next write or retry.
    async fn persist(&mut self, delta: Vec<u8>, origin: Origin) -> Result<(), RoomError> {
        let message = Arc::new(YMessage::Update(delta.clone()));
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
            let _ = self.changes.send(Change { origin, message });
        }
        stored?;
        if self.since_compaction >= self.ctx.compact_every {
            let snapshot = self.doc.encode_state();
            let size = snapshot.len();
            match self
                .ctx
                .store
                .compact(self.id, snapshot, self.last_seq)
                .await
            {
                Ok(()) => {
                    self.since_compaction = 0;
                    self.stored_bytes = size;
                }
                Err(e) => tracing::warn!(doc = %self.id, "compaction failed, will retry: {e}"),
            }
        }
        Ok(())
    }
}

mod access;
mod handle;
#[cfg(test)]
mod tests;
