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

use super::presence::{self, Owner, Presence};
use super::store::{DocMeta, Store, StoreError};
use crate::actor::ask;
use crate::core::access::{Cert, CertKind, KeyBytes, KeyGrant, Membership, Role, GRANT_LEN};
use crate::core::doc::{Applied, DocError, DocId, Document};
use crate::core::envelope::{DocKey, Keyring};
use crate::core::sync::gossip::{self, Gossip, Received};
use crate::core::sync::{SyncError, YMessage};

/// How often presence expiry runs.
const PRESENCE_CHECK: Duration = Duration::from_secs(5);
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
}

impl RoomHandle {
    /// Loads the document from the store and starts its task.
    pub(crate) async fn open(meta: &DocMeta, ctx: RoomContext) -> Result<RoomHandle, RoomError> {
        let stored = ctx.store.load(meta.id).await?;
        let pending_log = stored.updates.len();
        let doc = Document::from_updates(stored.in_order())
            .map_err(|e| RoomError::Corrupt(meta.id, e))?;
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (changes, _) = broadcast::channel(CHANGES_QUEUE);
        let presence = Presence::new(doc.ydoc().clone(), presence::tokio_clock());
        let mut membership = Membership::new(meta.id, meta.owner);
        for bytes in &stored.certs {
            // Stored records were checked when added; a bad one is damage, not fatal.
            let added = if bytes.len() == GRANT_LEN {
                KeyGrant::decode(bytes).and_then(|g| membership.add_grant(g))
            } else {
                Cert::decode(bytes).and_then(|c| membership.add(c))
            };
            if let Err(e) = added {
                tracing::error!(doc = %meta.id, "skipping a damaged stored record: {e}");
            }
        }
        let mut keys = Keyring::new(meta.key_epoch, meta.key.clone());
        for (epoch, key) in &stored.keys {
            keys.insert(*epoch, DocKey(*key));
        }
        let access = Access { membership, keys };
        let (access_tx, access_rx) = watch::channel(Arc::new(access.clone()));
        let room = Room {
            id: meta.id,
            doc,
            presence,
            access,
            access_tx,
            ctx,
            last_seq: stored.last_seq,
            since_compaction: pending_log,
            changes: changes.clone(),
        };
        tokio::spawn(room.run(rx));
        Ok(RoomHandle {
            id: meta.id,
            topic: meta.id.topic(),
            tx,
            changes,
            access: access_rx,
        })
    }

    /// The document's membership and keys as the room last derived them.
    pub(crate) fn access(&self) -> Arc<Access> {
        self.access.borrow().clone()
    }

    /// The document's keys, newest epoch first for sealing.
    pub(crate) fn keys(&self) -> Keyring {
        self.access.borrow().keys.clone()
    }

    /// Adds certificates (checked, stored); returns how many were new.
    pub(crate) async fn add_certs(&self, certs: Vec<Cert>) -> Result<usize, RoomError> {
        self.add_records(certs, Vec::new()).await
    }

    /// Adds certificates and key grants (checked, stored); a grant to this node brings a new
    /// epoch's key. Returns how many records were new.
    pub(crate) async fn add_records(
        &self,
        certs: Vec<Cert>,
        grants: Vec<KeyGrant>,
    ) -> Result<usize, RoomError> {
        self.call(|r| Command::AddRecords(certs, grants, r)).await?
    }

    /// Removes a member (owner only): revokes it and the invitation it joined with, starts a new
    /// key epoch and grants its key to every remaining member. Returns the new epoch.
    pub(crate) async fn revoke(&self, member: KeyBytes) -> Result<u32, RoomError> {
        self.call(|r| Command::Revoke(member, r)).await?
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, RoomError> {
        ask(&self.tx, make).await.ok_or(RoomError::Closed(self.id))
    }

    /// Handles a gossip message for this document from its author `from`; says whether to
    /// pull from its sender.
    pub(crate) async fn receive_gossip(
        &self,
        gossip: Gossip,
        from: PeerId,
    ) -> Result<Received, RoomError> {
        self.call(|r| Command::ReceiveGossip(gossip, from, r))
            .await?
    }
    /// Applies an update pulled from a peer. Returns once applied in memory.
    pub(crate) async fn apply_remote(&self, update: Vec<u8>) -> Result<Applied, RoomError> {
        self.call(|r| Command::ApplyRemote(update, r)).await?
    }
    /// Applies an update made by a local editor; returns once it is durable.
    pub(crate) async fn apply_local(
        &self,
        update: Vec<u8>,
        origin: Origin,
    ) -> Result<(), RoomError> {
        self.call(|r| Command::ApplyLocal(update, origin, r))
            .await?
    }
    /// Replaces the text as a minimal diff; returns once durable.
    pub(crate) async fn replace_text(&self, text: String) -> Result<(), RoomError> {
        self.call(|r| Command::Replace(text, r)).await?
    }
    /// Appends to the text; returns once durable.
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
    pub(crate) async fn text(&self) -> Result<String, RoomError> {
        self.call(Command::Text).await
    }
    pub(crate) async fn state_vector(&self) -> Result<Vec<u8>, RoomError> {
        self.call(Command::StateVector).await
    }
    /// What a replica at `remote_sv` lacks, and our state vector, taken together.
    pub(crate) async fn diff(&self, remote_sv: Vec<u8>) -> Result<DiffAndSv, RoomError> {
        self.call(|r| Command::Diff(remote_sv, r)).await?
    }
    /// Every change from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
    /// Stops the task after the commands queued before this one.
    pub(crate) async fn close(&self) {
        let _ = self.call(Command::Close).await;
    }
    /// Test hook: blocks the room until the returned sender is dropped or fires.
    #[cfg(test)]
    pub(crate) async fn stall(&self) -> oneshot::Sender<()> {
        let (release, wait) = oneshot::channel();
        let _ = self.tx.send(Command::Stall(wait)).await;
        release
    }
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
    changes: broadcast::Sender<Change>,
}

impl Room {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut presence_check = tokio::time::interval(PRESENCE_CHECK);
        loop {
            let cmd = tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => cmd,
                    None => break,
                },
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
                let result = match self.guarded(|doc| doc.apply(&update)).await {
                    Ok(applied) => self.local_change(applied.delta, origin).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Command::Replace(text, reply) => {
                if !self.may_write() {
                    let _ = reply.send(Err(RoomError::ReadOnly(self.id)));
                    return std::ops::ControlFlow::Continue(());
                }
                let delta = self.doc.replace_text(&text);
                let _ = reply.send(self.local_change(delta, Origin::Api).await);
            }
            Command::Append(text, reply) => {
                if !self.may_write() {
                    let _ = reply.send(Err(RoomError::ReadOnly(self.id)));
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
            match self.reload().await {
                Ok(doc) => self.doc = doc,
                Err(e) => tracing::error!(doc = %self.id, "could not reload the document: {e}"),
            }
        }
        Ok(result?)
    }

    async fn reload(&self) -> Result<Document, RoomError> {
        let stored = self.ctx.store.load(self.id).await?;
        Document::from_updates(stored.in_order()).map_err(|e| RoomError::Corrupt(self.id, e))
    }

    /// Stores a change that came from a peer. Not acknowledged to anyone: if this fails,
    /// anti-entropy fetches it again.
    async fn persist_remote(&mut self, delta: Option<Vec<u8>>) {
        let Some(delta) = delta else { return };
        if let Err(e) = self.persist(delta, Origin::Remote).await {
            tracing::error!(doc = %self.id, "could not store a remote update: {e}");
        }
    }

    /// Persists a local change, then hands it to the network: whole, or announced if too big.
    async fn local_change(
        &mut self,
        delta: Option<Vec<u8>>,
        origin: Origin,
    ) -> Result<(), RoomError> {
        let Some(delta) = delta else { return Ok(()) };
        self.persist(delta.clone(), origin).await?;
        self.send_out(gossip::for_local_edit(&self.doc, delta));
        Ok(())
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

    fn may_write(&self) -> bool {
        self.access
            .membership
            .role_of(&self.ctx.me)
            .is_some_and(|role| role.may_write())
    }

    /// Checks and stores new certificates and grants, opens grants addressed to this node,
    /// and (on the owner's node) grants the current key to members that lack it; then publishes
    /// the new access.
    async fn add_records(
        &mut self,
        certs: Vec<Cert>,
        grants: Vec<KeyGrant>,
    ) -> Result<usize, RoomError> {
        let mut next = self.access.membership.clone();
        let mut fresh: Vec<Vec<u8>> = Vec::new();
        for cert in certs {
            match next.add(cert.clone()) {
                Ok(true) => fresh.push(cert.encode()),
                Ok(false) => {}
                Err(e) => tracing::debug!(doc = %self.id, "certificate refused: {e}"),
            }
        }
        for grant in grants {
            match next.add_grant(grant.clone()) {
                Ok(true) => fresh.push(grant.encode()),
                Ok(false) => {}
                Err(e) => tracing::debug!(doc = %self.id, "key grant refused: {e}"),
            }
        }
        fresh.extend(self.grant_current_key(&mut next));
        let my_key = self.ctx.identity.public().to_bytes();
        let mut keys = self.access.keys.clone();
        let mut new_keys = Vec::new();
        for grant in next.grants_for(&my_key) {
            if keys.get(grant.epoch).is_none() {
                match grant.open(&self.ctx.identity) {
                    Some(key) => {
                        keys.insert(grant.epoch, key.clone());
                        new_keys.push((grant.epoch, key));
                    }
                    None => {
                        tracing::warn!(doc = %self.id, epoch = grant.epoch, "a key grant for this node does not open")
                    }
                }
            }
        }
        if fresh.is_empty() && new_keys.is_empty() {
            return Ok(0);
        }
        self.ctx.store.add_certs(self.id, fresh.clone()).await?;
        for (epoch, key) in &new_keys {
            self.ctx.store.add_key(self.id, *epoch, key.0).await?;
            tracing::info!(doc = %self.id, epoch, "received the document's new key");
        }
        self.access.membership = next;
        self.access.keys = keys;
        self.access_tx.send_replace(Arc::new(self.access.clone()));
        Ok(fresh.len() + new_keys.len())
    }

    /// On the owner's node, after a removal: seals the current epoch's key to every member that
    /// has no grant for it yet (members who joined later, or were missed). Returns the encoded
    /// new grants.
    fn grant_current_key(&self, membership: &mut Membership) -> Vec<Vec<u8>> {
        let me = self.ctx.identity.public().to_bytes();
        let (epoch, key) = self.access.keys.current();
        if epoch == 0 || membership.owner() != me {
            return Vec::new();
        }
        let missing: Vec<KeyBytes> = membership
            .member_keys()
            .filter(|(k, _)| **k != me)
            .map(|(k, _)| *k)
            .filter(|k| !membership.grants_for(k).iter().any(|g| g.epoch == epoch))
            .collect();
        let mut fresh = Vec::new();
        for member in missing {
            let mut ephemeral = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut ephemeral);
            match KeyGrant::issue(self.id, epoch, key, member, &self.ctx.identity, ephemeral)
                .and_then(|grant| membership.add_grant(grant.clone()).map(|_| grant))
            {
                Ok(grant) => fresh.push(grant.encode()),
                Err(e) => tracing::warn!(doc = %self.id, "cannot grant the key to a member: {e}"),
            }
        }
        fresh
    }

    /// Removes `target`: see [`RoomHandle::revoke`].
    async fn revoke(&mut self, target: KeyBytes) -> Result<u32, RoomError> {
        let identity = self.ctx.identity.clone();
        let membership = &self.access.membership;
        let doc = self.id;
        let revoke =
            |subject| Cert::issue(doc, CertKind::Revocation, Role::Reader, subject, &identity);
        let mut certs = vec![revoke(target)];
        // The invitations it was admitted with go too, or it could admit itself again.
        for admission in membership.admissions_of(&target) {
            if membership.role_of_key(&admission.issuer).is_none() {
                certs.push(revoke(admission.issuer));
            }
        }
        // Members admitted through those invitations stay: the owner certifies them directly.
        let mut after = membership.clone();
        for cert in &certs {
            let _ = after.add(cert.clone());
        }
        for (member, role) in membership.member_keys() {
            if *member != target && *role != Role::Owner && after.role_of_key(member).is_none() {
                certs.push(Cert::issue(
                    doc,
                    CertKind::Member,
                    *role,
                    *member,
                    &identity,
                ));
            }
        }
        let epoch = self.access.keys.current().0 + 1;
        let key = DocKey::random();
        self.ctx.store.add_key(self.id, epoch, key.0).await?;
        self.access.keys.insert(epoch, key);
        // Publishes the new epoch with the records; grants follow from `grant_current_key`.
        self.add_records(certs, Vec::new()).await?;
        self.access_tx.send_replace(Arc::new(self.access.clone()));
        tracing::info!(doc = %self.id, epoch, "removed a member; the document has a new key");
        Ok(epoch)
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

    async fn persist(&mut self, delta: Vec<u8>, origin: Origin) -> Result<(), RoomError> {
        let message = Arc::new(YMessage::Update(delta.clone()));
        self.last_seq = self.ctx.store.append(self.id, delta).await?;
        self.since_compaction += 1;
        let _ = self.changes.send(Change { origin, message });
        if self.since_compaction >= self.ctx.compact_every {
            let snapshot = self.doc.encode_state();
            match self
                .ctx
                .store
                .compact(self.id, snapshot, self.last_seq)
                .await
            {
                Ok(()) => self.since_compaction = 0,
                Err(e) => tracing::warn!(doc = %self.id, "compaction failed, will retry: {e}"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
