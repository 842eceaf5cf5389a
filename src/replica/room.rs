//! One task per document: it alone owns the document's [`Document`] and its [`Presence`],
//! loads the document on first use and unloads it when idle (see `lifecycle`), applies local
//! and remote updates, persists them through the [`Store`] (see `storage`: an API write is
//! committed before anyone sees it; an editor's or a peer's change is fanned out at once and its
//! commit queued, the editor's own echo sent once it is durable), compacts the log, and fans
//! changes out: local edits and presence to the network (sealed, signed and published by the
//! room itself, see `publish`), every change to local subscribers (editor sessions). What a gossip message asks for, and whether a local edit is gossiped or announced,
//! is decided by [`crate::core::sync::gossip`], the code the simulation runs. It also owns the
//! document's membership and keys ([`Access`]): it adds certificates and key grants (opening
//! grants addressed to this node), refuses local edits on a reader's node, and on the owner's
//! node removes members (a new key epoch, granted to everyone else). Others read the latest
//! `Access` the room publishes (see [`Published`]) without waiting for the room.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use libp2p::identity::ed25519;
use libp2p::PeerId;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::presence::{Owner, Presence};
use super::store::{Store, StoreError};
use crate::core::access::{KeyBytes, Membership};
use crate::core::doc::history::VersionTimer;
use crate::core::doc::{Applied, DocId, Document, Summary, EMPTY_UPDATE};
use crate::core::envelope::Keyring;
use crate::core::sync::gossip::{self, Gossip, Received};

use super::holding::HoldingHandle;
use crate::metrics::Metrics;
use crate::net::Net;

/// How often a room whose last store write failed tries again.
const FLUSH_RETRY: Duration = Duration::from_secs(5);
/// How often a room with edits not in a version yet checks whether one is due.
const VERSION_CHECK: Duration = Duration::from_secs(5);
/// How often presence expiry runs.
const PRESENCE_CHECK: Duration = Duration::from_secs(5);
/// Most bytes a document may hold in the store (snapshot and log), whoever writes: a writer
/// gone bad cannot fill every member's disk. Updates that would pass it are refused.
pub(crate) const MAX_DOC_BYTES: usize = 512 << 20;
/// Commands waiting for a room.
pub(crate) const COMMAND_QUEUE: usize = 256;
/// Changes buffered per subscriber; a session that falls further behind resyncs.
const CHANGES_QUEUE: usize = 1024;
/// Changes a room may have queued for the store before it waits for the oldest commit.
const MAX_IN_FLIGHT: usize = 64;

/// What a removal did.
#[derive(Debug, Clone)]
pub(crate) struct Removal {
    /// The new key epoch.
    pub(crate) epoch: u32,
    /// Members removed with the target (their admission passed through it).
    pub(crate) cascaded: Vec<(KeyBytes, crate::core::access::Role)>,
    /// Members the owner certified again directly.
    pub(crate) recertified: usize,
    /// Open invitations (tickets) revoked.
    pub(crate) invitations: usize,
}

/// Called on the room's task with the outcome of a gossip message (the sync driver's verdict
/// for gossipsub); it must not block.
pub(crate) type GossipDone = Box<dyn FnOnce(Result<Received, RoomError>) + Send>;

/// A diff and the state vector it was taken at.
pub(crate) type DiffAndSv = (Vec<u8>, Vec<u8>);

/// What a room publishes for those that must not wait for it: who may do what, and the keys.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    pub(crate) membership: Membership,
    pub(crate) keys: Keyring,
}

/// Cloneable handle to a room. Its task runs while the room has work; an idle room with its
/// document unloaded goes dormant (see [`Slot`]) and the next request wakes it.
#[derive(Clone)]
pub(crate) struct RoomHandle {
    pub(crate) id: DocId,
    pub(crate) topic: [u8; 32],
    /// The gossipsub topic name, computed once (every message names it).
    pub(crate) topic_name: String,
    slot: Arc<std::sync::Mutex<Slot>>,
    /// The room's latest membership and keys, readable without asking the room.
    access: Published,
    /// Some peer subscribed to the document's topic (the sync driver sets it; the room reads
    /// it before sealing gossip).
    listened: Arc<AtomicBool>,
}

/// The room's latest [`Access`], for readers that must not wait for the room: the room
/// replaces it; readers copy the `Arc` out (the lock is never held across an `.await`).
type Published = Arc<std::sync::RwLock<Arc<Access>>>;

/// Settings a room needs besides its document.
#[derive(Clone)]
pub(crate) struct RoomContext {
    pub(crate) store: Store,
    /// Where the room's own gossip goes (see `publish`).
    pub(crate) net: Net,
    /// Told of local edits in documents with holders.
    pub(crate) holding: HoldingHandle,
    /// Work for the sync driver (records to spread).
    pub(crate) outbox: mpsc::Sender<Outgoing>,
    /// Compact the log into a snapshot after this many appended updates.
    pub(crate) compact_every: usize,
    /// This node (its role decides whether local edits are allowed).
    pub(crate) me: PeerId,
    /// This node's identity key: opens key grants, and signs on the owner's node.
    pub(crate) identity: ed25519::Keypair,
    /// The clock presence expires by (a manual one in tests).
    pub(crate) clock: crate::replica::presence::Clock,
    /// The document size limit ([`MAX_DOC_BYTES`]; smaller in tests).
    pub(crate) max_doc_bytes: usize,
    /// Unload the document after this long without an editor session or use.
    pub(crate) unload_after: Duration,
    pub(crate) metrics: Metrics,
}

struct Room {
    id: DocId,
    /// The document, while loaded.
    doc: Option<Document>,
    /// The document's state vector and digest, if known without loading it: kept while
    /// unloaded, dropped on every change.
    summary: Option<Summary>,
    /// The store's snapshot holds the current state and its summary (nothing logged since).
    summary_stored: bool,
    /// When the document was last used (loaded, changed, read, diffed).
    last_used: Instant,
    /// Editors' presence, while anyone is or was recently present.
    presence: Option<Presence>,
    /// Who may do what, and the keys: what [`Published`] holds.
    access: Arc<Access>,
    published: Published,
    ctx: RoomContext,
    last_seq: i64,
    since_compaction: usize,
    /// Bytes stored for the document (snapshot and log).
    stored_bytes: usize,
    /// The in-memory document has changes the store lacks (a write failed): the next write
    /// stores the whole state, never a delta whose predecessors are missing on disk.
    unsaved: bool,
    /// Subscribers' channel, while anyone subscribed since the document was last unloaded.
    changes: Option<broadcast::Sender<Change>>,
    /// Changes queued for the store, oldest first, waiting for their commits.
    pending: commits::CommitQueue,
    /// How far the removal cuts' deletions cover each voided client in the loaded document.
    cut_done: std::collections::HashMap<u64, u64>,
    /// When to record a version of the edits made through this node.
    versions: VersionTimer,
    /// What changed between versions, as computed so far.
    history_cache: history::ChangesCache,
    /// Who asked the room to close: told once it has finished (commits settled, the last
    /// version recorded, the snapshot stored).
    closing: Option<oneshot::Sender<()>>,
    /// Local edits and presence waiting to be published.
    publisher: publish::Publisher,
}

/// What woke a room's task.
enum Wake {
    Command(Command),
    Committed(Result<i64, StoreError>, commits::Pending),
    FlushRetry,
    VersionCheck,
    IdleCheck,
    PresenceCheck,
    Stop,
}

impl Room {
    /// The task: serves commands until closed or dormant. The room stays in its box, so
    /// parking it allocates nothing (an allocation made while the document was loaded would pin
    /// that memory after it is unloaded).
    async fn run(
        mut self: Box<Self>,
        mut rx: mpsc::Receiver<Command>,
        slot: Arc<std::sync::Mutex<Slot>>,
    ) {
        let mut presence_check = tokio::time::interval(PRESENCE_CHECK);
        let mut flush_retry = tokio::time::interval(FLUSH_RETRY);
        let mut idle_check =
            tokio::time::interval(lifecycle::idle_check_every(self.ctx.unload_after));
        idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut version_check = tokio::time::interval(VERSION_CHECK);
        version_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // What the last commands queued goes out once no other command waits (or the
            // queue is full): runs of edits leave merged.
            if self.publisher.due(!rx.is_empty()) {
                self.publish_queued();
            }
            let wake = tokio::select! {
                cmd = rx.recv() => cmd.map_or(Wake::Stop, Wake::Command),
                (result, pending) = self.pending.next() => Wake::Committed(result, pending),
                _ = flush_retry.tick(), if self.unsaved => Wake::FlushRetry,
                _ = version_check.tick(), if self.versions.pending() => Wake::VersionCheck,
                _ = idle_check.tick() => Wake::IdleCheck,
                _ = presence_check.tick() => Wake::PresenceCheck,
            };
            match wake {
                Wake::Command(cmd) => {
                    self.publisher.busy = !rx.is_empty();
                    if self.on_command(cmd).await.is_break() {
                        break;
                    }
                }
                Wake::Committed(result, pending) => self.committed(result, pending).await,
                Wake::FlushRetry => {
                    // When the disk accepts writes again, what it missed is stored.
                    let _ = self.flush().await;
                }
                Wake::VersionCheck => self.record_version_if_due(false).await,
                Wake::IdleCheck => {
                    if self.doc.is_some() {
                        self.unload_if_idle().await;
                    } else if self.may_sleep() {
                        match park(self, &rx, &slot) {
                            Ok(()) => return,
                            Err(room) => self = room,
                        }
                    }
                }
                Wake::PresenceCheck => self.expire_presence(),
                Wake::Stop => break,
            }
        }
        if self.publisher.due(false) {
            self.publish_queued();
        }
        self.settle_commits().await;
        self.record_version_if_due(true).await;
        self.compact_before_close().await;
        *crate::actor::unpoisoned(slot.lock()) = Slot::Closed;
        if let Some(reply) = self.closing.take() {
            let _ = reply.send(());
        }
        tracing::debug!(doc = %self.id, "room closed");
    }

    async fn on_command(&mut self, cmd: Command) -> std::ops::ControlFlow<()> {
        match cmd {
            Command::ReceiveGossip(gossip, from, reply) => {
                tracing::trace!(target: "peerdoc::stage", "room: gossip");
                self.receive_gossip(gossip, from, reply).await
            }
            Command::ApplyRemote(update, reply) => {
                let result = self.apply_remote(&update).await;
                let delta = result.as_ref().ok().and_then(|a| a.delta.clone());
                let _ = reply.send(result);
                self.take_remote(delta).await;
            }
            Command::ApplyLocal(update, origin, reply) => {
                tracing::trace!(target: "peerdoc::stage", "room: local update");
                let _ = reply.send(self.apply_local(&update, origin).await);
            }
            Command::Replace(text, reply) => {
                let written = self
                    .write_text(text.len(), |doc| doc.replace_content(&text))
                    .await;
                let _ = reply.send(written);
            }
            Command::Append(text, reply) => {
                let written = self
                    .write_text(text.len(), |doc| doc.append_content(&text))
                    .await;
                let _ = reply.send(written);
            }
            Command::AddRecords(certs, grants, names, reply) => {
                let was_shared = self.access.membership.is_shared();
                let added = self.add_records(certs, grants, names).await;
                let me = self.ctx.identity.public().to_bytes();
                let owner = self.access.membership.owner() == me;
                if owner && !was_shared && self.access.membership.is_shared() {
                    self.claim_history().await;
                }
                let _ = reply.send(added);
            }
            Command::AddHolds(holds, reply) => {
                let _ = reply.send(self.add_holds(holds).await);
            }
            Command::ChangesSince(known, reply) => {
                let since = match self.loaded().await {
                    Ok(doc) => doc.changes_since(known.as_deref()).map_err(RoomError::from),
                    Err(e) => Err(e),
                };
                let _ = reply.send(since);
            }
            Command::Revoke(member, keep, reply) => {
                let _ = reply.send(self.revoke(member, keep).await);
            }
            Command::ApplyAwareness(update, origin, reply) => {
                let _ = reply.send(self.apply_awareness(&update, origin, owner_of(origin)));
            }
            Command::AwarenessState(reply) => {
                let _ = reply.send(self.presence.as_ref().and_then(Presence::state));
            }
            Command::RemoveAwareness(clients, origin, reply) => {
                self.remove_awareness(clients, origin);
                let _ = reply.send(());
            }
            Command::Export(format, reply) => {
                let _ = reply.send(self.loaded().await.map(|doc| doc.export(format)));
            }
            Command::MakeRich(reply) => {
                let _ = reply.send(self.write_text(0, Document::make_rich).await);
            }
            Command::Kind(reply) => {
                let _ = reply.send(self.loaded().await.map(|doc| doc.kind()));
            }
            Command::RecordVersion(name, reply) => {
                let _ = reply.send(self.record_version(name.as_deref(), None).await);
            }
            Command::NameVersion(version, name, reply) => {
                let _ = reply.send(self.name_version(&version, &name).await);
            }
            Command::Versions(reply) => {
                let _ = reply.send(self.versions().await);
            }
            Command::ExportAt(version, format, reply) => {
                let _ = reply.send(self.export_at(&version, format).await);
            }
            Command::Preview(version, reply) => {
                let _ = reply.send(self.preview(&version).await);
            }
            Command::Restore(version, reply) => {
                let _ = reply.send(self.restore(&version).await);
            }
            Command::StateVector(reply) => {
                let _ = reply.send(self.summary().await.map(|s| s.sv));
            }
            Command::Summary(reply) => {
                let _ = reply.send(self.summary().await);
            }
            Command::Diff(sv, digest, reply) => {
                let _ = reply.send(self.diff(sv, digest).await);
            }
            Command::Subscribe(reply) => {
                let changes = self
                    .changes
                    .get_or_insert_with(|| broadcast::channel(CHANGES_QUEUE).0);
                let _ = reply.send(changes.subscribe());
            }
            Command::Close(reply) => {
                self.closing = Some(reply);
                return std::ops::ControlFlow::Break(());
            }
            #[cfg(test)]
            Command::Stall(release) => {
                let _ = release.await;
            }
            #[cfg(test)]
            Command::IsLoaded(reply) => {
                let _ = reply.send(self.doc.is_some());
            }
            #[cfg(test)]
            Command::CheckPresence(reply) => {
                self.expire_presence();
                let _ = reply.send(());
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    /// An update pulled from a peer: applied whole (or not at all) if there is room for it.
    async fn apply_remote(&mut self, update: &[u8]) -> Result<Applied, RoomError> {
        if update == EMPTY_UPDATE {
            // A pull from a replica in our state: nothing to load or store.
            return Ok(Applied::default());
        }
        self.has_room_for(update.len())?;
        self.guarded(|doc| doc.apply_complete(update)).await
    }

    /// An update made on this node (an editor session, the API): refused where this node may
    /// not write, unless it changes nothing (what a reconnecting editor resends).
    async fn apply_local(&mut self, update: &[u8], origin: Origin) -> Result<(), RoomError> {
        if !self.may_write() {
            return match self.loaded().await?.would_change(update)? {
                false => Ok(()),
                true => Err(self.not_writer()),
            };
        }
        if origin == Origin::Api {
            self.ready_for_api_write().await?;
        }
        self.has_room_for(update.len())?;
        let applied = self.guarded(|doc| doc.apply(update)).await?;
        self.local_change(applied.delta, origin).await
    }

    /// Presence clients gone (their session ended, or a peer said so): everyone is told.
    fn remove_awareness(&mut self, clients: Vec<u64>, origin: Origin) {
        let owner = owner_of(origin);
        if let Some(gone) = self
            .presence
            .as_mut()
            .and_then(|p| p.remove(clients, owner))
        {
            self.fan_out_presence(gone, origin, true);
        }
    }

    async fn receive_gossip(&mut self, gossip: Gossip, from: PeerId, done: GossipDone) {
        match gossip {
            Gossip::Update(update) => {
                if let Err(e) = self.has_room_for(update.len()) {
                    done(Err(e));
                    return;
                }
                // Claims are asked for on shared documents only (see `clients_of`).
                let access = self.access.clone();
                let membership = &access.membership;
                let claimed = |client| !membership.is_shared() || membership.is_claimed(client);
                let result = self
                    .guarded(|doc| gossip::receive_update(doc, &update, claimed))
                    .await;
                let delta = result.as_ref().ok().and_then(|r| r.delta.clone());
                done(result);
                self.take_remote(delta).await;
            }
            Gossip::Have(sv) => {
                let result = match self.loaded().await {
                    Ok(doc) => gossip::receive_have(doc, &sv).map_err(RoomError::from),
                    Err(e) => Err(e),
                };
                done(result);
            }
            Gossip::Awareness(update) => {
                let result = self
                    .apply_awareness(&update, Origin::Remote, Some(Owner::Peer(from)))
                    .map(|_| Received::default());
                done(result);
            }
        }
    }
}

mod access;
mod change;
mod command;
mod commits;
mod cut;
mod error;
mod fan_out;
mod handle;
mod history;
mod lifecycle;
mod publish;

pub use error::RoomError;

pub(crate) use change::{Change, Origin, Outgoing, Stage};
use command::Command;
pub(crate) use history::VersionEntry;
use lifecycle::{park, Slot};
mod storage;
#[cfg(test)]
mod tests;

/// Who owns the presence clients a change from `origin` names (sessions are bounded each).
fn owner_of(origin: Origin) -> Option<Owner> {
    match origin {
        Origin::Session(session) => Some(Owner::Session(session)),
        Origin::Remote | Origin::Api => None,
    }
}
