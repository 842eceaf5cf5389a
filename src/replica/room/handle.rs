//! [`RoomHandle`]: opening a room (loading its membership and keys from the store and starting
//! its task; the document itself loads on first use) and every request to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{
    Access, Change, Command, DiffAndSv, GossipDone, Origin, Room, RoomContext, RoomError,
    RoomHandle, Slot, COMMAND_QUEUE,
};
use crate::actor::{ask, unpoisoned};
use crate::core::access::{
    AccessError, Cert, HoldRecord, KeyBytes, KeyGrant, Membership, NameRecord, GRANT_LEN, HOLD_LEN,
};
use crate::core::doc::rich::{Format, Kind};
use crate::core::doc::since::Since;
use crate::core::doc::{Applied, Document, Summary};
use crate::core::envelope::{DocKey, Keyring};
use crate::core::sync::gossip::Gossip;
use crate::replica::store::DocMeta;

impl RoomHandle {
    /// Loads the document's membership and keys and starts its task; the document loads when
    /// first used.
    pub(crate) async fn open(meta: &DocMeta, ctx: RoomContext) -> Result<RoomHandle, RoomError> {
        let stored = ctx.store.load_access(meta.id).await?;
        let mut membership = Membership::new(meta.id, meta.owner);
        let mut certs = Vec::new();
        let mut holds = Vec::new();
        for bytes in &stored.certs {
            // Stored records were checked when added; a bad one is damage, not fatal.
            let decoded = if bytes.len() == GRANT_LEN {
                KeyGrant::decode(bytes).and_then(|g| membership.add_grant(g).map(|_| ()))
            } else if bytes.len() == HOLD_LEN {
                HoldRecord::decode(bytes)
                    .map(|h| holds.push(h))
                    .map_err(|_| AccessError::Malformed("hold record"))
            } else {
                Cert::decode(bytes).map(|c| certs.push(c))
            };
            if let Err(e) = decoded {
                tracing::error!(doc = %meta.id, "skipping a damaged stored record: {e}");
            }
        }
        let added = membership.add_all(certs);
        if added.refused() > 0 {
            // Stored by a version that kept certificates whose issuer was unknown.
            tracing::debug!(doc = %meta.id, ?added, "stored certificates that do not chain to the owner are ignored");
        }
        for hold in holds {
            membership.restore_hold(hold);
        }
        for bytes in &stored.names {
            // Checked when added (its date too: a clock set back since is no reason to drop it).
            if let Err(e) = NameRecord::decode(bytes).and_then(|r| membership.add_name(r, u64::MAX))
            {
                tracing::error!(doc = %meta.id, "skipping a damaged stored name: {e}");
            }
        }
        let mut keys = Keyring::new(meta.key_epoch, meta.key.clone());
        for (epoch, key) in &stored.keys {
            keys.insert(*epoch, DocKey(*key));
        }
        let access = Arc::new(Access { membership, keys });
        let published = Arc::new(std::sync::RwLock::new(access.clone()));
        // An empty document's summary is known; a stored one's only if saved with its snapshot.
        let summary = match stored.summary {
            Some(summary) => Some(summary),
            None if !stored.has_content => Some(Document::new().summary()),
            None => None,
        };
        let listened = Arc::new(AtomicBool::new(false));
        // Computed once (a BLAKE3 hash): the handle and the room's publisher name it.
        let (topic, topic_name) = (meta.id.topic(), meta.id.topic_name());
        let room = Room {
            publisher: super::publish::Publisher::new(topic, topic_name.clone(), listened.clone()),
            id: meta.id,
            doc: None,
            summary_stored: summary.is_some(),
            summary,
            last_used: tokio::time::Instant::now(),
            presence: None,
            access,
            published: published.clone(),
            ctx,
            last_seq: stored.last_seq,
            since_compaction: stored.pending_log,
            stored_bytes: stored.stored_bytes,
            unsaved: false,
            changes: None,
            pending: super::commits::CommitQueue::new(super::MAX_IN_FLIGHT),
            cut_done: std::collections::HashMap::new(),
            versions: Default::default(),
            history_cache: Default::default(),
            closing: None,
        };
        // Dormant until the first request.
        Ok(RoomHandle {
            id: meta.id,
            topic,
            topic_name,
            slot: Arc::new(Mutex::new(Slot::Dormant(Box::new(room)))),
            access: published,
            listened,
        })
    }

    /// Whether any peer subscribed to the document's topic (the sync driver tells): the room
    /// seals and publishes its gossip only then.
    pub(crate) fn set_listened(&self, listened: bool) {
        self.listened.store(listened, Ordering::Relaxed);
    }

    /// The document's membership and keys as the room last derived them.
    pub(crate) fn access(&self) -> Arc<Access> {
        unpoisoned(self.access.read()).clone()
    }

    /// The document's keys, newest epoch first for sealing.
    pub(crate) fn keys(&self) -> Keyring {
        unpoisoned(self.access.read()).keys.clone()
    }

    /// Adds certificates (checked, stored); returns how many were new.
    pub(crate) async fn add_certs(&self, certs: Vec<Cert>) -> Result<usize, RoomError> {
        self.add_records(certs, Vec::new(), Vec::new()).await
    }

    /// Adds certificates, key grants and members' display names (checked, stored); a grant to
    /// this node brings a new epoch's key. Returns how many records were new.
    pub(crate) async fn add_records(
        &self,
        certs: Vec<Cert>,
        grants: Vec<KeyGrant>,
        names: Vec<NameRecord>,
    ) -> Result<usize, RoomError> {
        self.call(|r| Command::AddRecords(certs, grants, names, r))
            .await?
    }

    /// Adds hold records (checked, stored); returns how many were new.
    pub(crate) async fn add_holds(&self, holds: Vec<HoldRecord>) -> Result<usize, RoomError> {
        if holds.is_empty() {
            return Ok(0);
        }
        self.call(|r| Command::AddHolds(holds, r)).await?
    }

    /// What the document holds beyond `known` (an encoded state), if anything.
    pub(crate) async fn changes_since(
        &self,
        known: Option<Vec<u8>>,
    ) -> Result<Option<Since>, RoomError> {
        self.call(|r| Command::ChangesSince(known, r)).await?
    }

    /// Removes a member (owner only) as [`crate::core::access::RemovalPlan`] decides (with it
    /// go the members it admitted, except `keep`, and every open invitation), starts a new key
    /// epoch and grants its key to every remaining member.
    pub(crate) async fn revoke(
        &self,
        member: KeyBytes,
        keep: Vec<KeyBytes>,
    ) -> Result<super::Removal, RoomError> {
        self.call(|r| Command::Revoke(member, keep, r)).await?
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, RoomError> {
        let tx = self.sender().ok_or(RoomError::Closed(self.id))?;
        ask(&tx, make).await.ok_or(RoomError::Closed(self.id))
    }

    /// The running task's sender, waking a dormant room; `None` once closed.
    fn sender(&self) -> Option<mpsc::Sender<Command>> {
        let mut slot = unpoisoned(self.slot.lock());
        match std::mem::replace(&mut *slot, Slot::Closed) {
            Slot::Awake(tx) => {
                let sender = tx.clone();
                *slot = Slot::Awake(tx);
                Some(sender)
            }
            Slot::Dormant(room) => {
                let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
                tokio::spawn(room.run(rx, self.slot.clone()));
                *slot = Slot::Awake(tx.clone());
                Some(tx)
            }
            Slot::Closed => None,
        }
    }

    /// Hands a gossip message for this document from its author `from` to the room, which calls
    /// `done` with the outcome; `false` (and `done` dropped) when the room's queue is full.
    pub(crate) fn try_receive_gossip(
        &self,
        gossip: Gossip,
        from: PeerId,
        done: GossipDone,
    ) -> bool {
        self.sender().is_some_and(|tx| {
            tx.try_send(Command::ReceiveGossip(gossip, from, done))
                .is_ok()
        })
    }
    /// Test hook: [`Self::try_receive_gossip`], waiting for the outcome.
    #[cfg(test)]
    pub(crate) async fn receive_gossip(
        &self,
        gossip: Gossip,
        from: PeerId,
    ) -> Result<crate::core::sync::gossip::Received, RoomError> {
        let (tx, rx) = oneshot::channel();
        let done: GossipDone = Box::new(move |received| {
            let _ = tx.send(received);
        });
        if !self.try_receive_gossip(gossip, from, done) {
            return Err(RoomError::Closed(self.id));
        }
        rx.await.map_err(|_| RoomError::Closed(self.id))?
    }
    /// Applies an update pulled from a peer. Returns once applied in memory.
    pub(crate) async fn apply_remote(&self, update: Vec<u8>) -> Result<Applied, RoomError> {
        self.call(|r| Command::ApplyRemote(update, r)).await?
    }
    /// Applies an update made here: from the API (`Origin::Api`) it returns once stored; from
    /// an editor session once applied, and the session hears `Stage::Committed` once stored
    /// (or `Stage::NotStored`).
    pub(crate) async fn apply_local(
        &self,
        update: Vec<u8>,
        origin: Origin,
    ) -> Result<(), RoomError> {
        self.call(|r| Command::ApplyLocal(update, origin, r))
            .await?
    }
    /// Replaces the content (Markdown block by block for a rich document, a minimal text diff
    /// for a plain one); returns once durable.
    pub(crate) async fn replace_text(&self, text: String) -> Result<(), RoomError> {
        self.call(|r| Command::Replace(text, r)).await?
    }
    /// Appends to the content (blocks, or text); returns once durable.
    pub(crate) async fn append_text(&self, text: String) -> Result<(), RoomError> {
        self.call(|r| Command::Append(text, r)).await?
    }
    /// Applies an awareness update from a local session or a peer; changes are fanned out.
    /// Returns the presence clients the update names.
    pub(crate) async fn apply_awareness(
        &self,
        update: Vec<u8>,
        origin: Origin,
    ) -> Result<Vec<u64>, RoomError> {
        self.call(|r| Command::ApplyAwareness(update, origin, r))
            .await?
    }
    /// All current presence states as one awareness update, if there are any.
    pub(crate) async fn awareness_state(&self) -> Result<Option<Vec<u8>>, RoomError> {
        self.call(Command::AwarenessState).await
    }
    /// Marks the given presence clients as gone (their editor session ended).
    pub(crate) async fn remove_awareness(
        &self,
        clients: Vec<u64>,
        origin: Origin,
    ) -> Result<(), RoomError> {
        self.call(|r| Command::RemoveAwareness(clients, origin, r))
            .await
    }
    /// The content: Markdown for a rich document, the text for a plain one.
    pub(crate) async fn text(&self) -> Result<String, RoomError> {
        self.export(Format::Markdown).await
    }
    /// The document in `format`.
    pub(crate) async fn export(&self, format: Format) -> Result<String, RoomError> {
        self.call(|r| Command::Export(format, r)).await?
    }
    /// Records a version now (named, or not); returns its id once durable.
    pub(crate) async fn record_version(&self, name: Option<String>) -> Result<String, RoomError> {
        self.call(|r| Command::RecordVersion(name, r)).await?
    }
    /// Names a version (by id, unique id prefix or name); returns its id once durable.
    pub(crate) async fn name_version(
        &self,
        version: String,
        name: String,
    ) -> Result<String, RoomError> {
        self.call(|r| Command::NameVersion(version, name, r))
            .await?
    }
    /// Every version, oldest first, with what changed since the one before.
    pub(crate) async fn versions(&self) -> Result<Vec<super::VersionEntry>, RoomError> {
        self.call(Command::Versions).await?
    }
    /// A version's content in `format`.
    pub(crate) async fn export_at(
        &self,
        version: String,
        format: Format,
    ) -> Result<String, RoomError> {
        self.call(|r| Command::ExportAt(version, format, r)).await?
    }
    /// A version's text marked with what changed since the version before.
    pub(crate) async fn preview(
        &self,
        version: String,
    ) -> Result<Vec<crate::core::doc::history::Span>, RoomError> {
        self.call(|r| Command::Preview(version, r)).await?
    }
    /// Makes the document equal to a version (a forward change, recorded as a version whose
    /// id it returns; `None` if it was equal already).
    pub(crate) async fn restore(&self, version: String) -> Result<Option<String>, RoomError> {
        self.call(|r| Command::Restore(version, r)).await?
    }
    /// Makes a new document rich; returns once durable.
    pub(crate) async fn make_rich(&self) -> Result<(), RoomError> {
        self.call(Command::MakeRich).await?
    }
    /// Whether the document is rich or plain.
    pub(crate) async fn kind(&self) -> Result<Kind, RoomError> {
        self.call(Command::Kind).await?
    }
    pub(crate) async fn state_vector(&self) -> Result<Vec<u8>, RoomError> {
        self.call(Command::StateVector).await?
    }
    /// The document's state vector and digest (without loading it, if they are known). A
    /// sleeping room that knows them answers without waking: the status every editor page
    /// polls asks every document.
    pub(crate) async fn summary(&self) -> Result<Summary, RoomError> {
        if let Slot::Dormant(room) = &*unpoisoned(self.slot.lock()) {
            if let Some(summary) = &room.summary {
                return Ok(summary.clone());
            }
        }
        self.call(Command::Summary).await?
    }
    /// What a replica at `sv` lacks (nothing if its `digest` says it is in our state), and our
    /// state vector, taken together.
    pub(crate) async fn diff(
        &self,
        sv: Vec<u8>,
        digest: Option<[u8; 32]>,
    ) -> Result<DiffAndSv, RoomError> {
        self.call(|r| Command::Diff(sv, digest, r)).await?
    }
    /// Every change from now on. The document stays loaded while anyone listens.
    pub(crate) async fn subscribe(&self) -> Result<broadcast::Receiver<Change>, RoomError> {
        self.call(Command::Subscribe).await
    }
    /// Stops the task after the commands queued before this one (a dormant room has stored
    /// everything already).
    pub(crate) async fn close(&self) {
        let tx = {
            let mut slot = unpoisoned(self.slot.lock());
            match std::mem::replace(&mut *slot, Slot::Closed) {
                Slot::Awake(tx) => {
                    *slot = Slot::Awake(tx.clone());
                    tx
                }
                Slot::Dormant(_) | Slot::Closed => return,
            }
        };
        let _ = ask(&tx, Command::Close).await;
    }
    /// Test hook: whether the document is loaded.
    #[cfg(test)]
    pub(crate) async fn is_loaded(&self) -> bool {
        self.call(Command::IsLoaded).await.unwrap_or(false)
    }
    /// Test hook: whether the room's task is asleep (asking does not wake it).
    #[cfg(test)]
    pub(crate) fn is_dormant(&self) -> bool {
        matches!(&*unpoisoned(self.slot.lock()), Slot::Dormant(_))
    }
    /// Test hook: runs the periodic presence check now.
    #[cfg(test)]
    pub(crate) async fn check_presence(&self) {
        let _ = self.call(Command::CheckPresence).await;
    }
    /// Test hook: blocks the room until the returned sender is dropped or fires.
    #[cfg(test)]
    pub(crate) async fn stall(&self) -> oneshot::Sender<()> {
        let (release, wait) = oneshot::channel();
        if let Some(tx) = self.sender() {
            let _ = tx.send(Command::Stall(wait)).await;
        }
        release
    }
}
