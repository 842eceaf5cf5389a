//! [`Node`]: starts and wires the parts (data dir, store, network, rooms, sync driver), owns
//! cancellation, and is the document API that apps embed and the HTTP layer calls: create,
//! list, resolve, read, write, share (read-only or read-write), join, members, rename, delete,
//! status. It does not know the HTTP
//! server exists: the binary (or an embedding app) wires `Node` and `peerdoc::api::Server`.
//!
//! Shutdown order: stop sync and the swarm, close rooms (their queued writes finish first),
//! close the store, release the data dir. Stop the HTTP server before the node.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::identity::ed25519;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::actor::unpoisoned;
use crate::config::Config;
use crate::core::access::Membership;
use crate::core::doc::rich::{Format, Kind as DocKind};
use crate::core::doc::DocId;
use crate::core::envelope::DocKey;
use crate::data_dir::DataDir;
use crate::metrics::Metrics;
use crate::net::{is_loopback, is_relayed, ConnectedPeer, ConnectionKind, Net, NetStatus};
use crate::replica::room::{Origin, RoomContext, RoomHandle};
use crate::replica::rooms::Rooms;
use crate::replica::store::{unix_now, DocMeta, DocStats, Store};
use crate::replica::sync_driver::{SyncDriver, SyncHandle, SyncSettings};
use prometheus_client::registry::Registry;

mod doc;
mod error;
mod join;
mod members;
pub(crate) mod names;
pub use names::DocRef;
mod startup;
#[cfg(test)]
mod tests;
mod types;

use startup::{split_peer_addr, start_net};

pub use doc::{Doc, Event, Session};
pub use error::{Error, ErrorKind};

/// The role a node shows for a document the owner removed it from.
pub use types::{
    DocInfo, DocPeer, DocStatus, MemberInfo, PeerStatus, Removed, Standing, Status, SyncState,
};

/// Local edits and presence waiting for the sync driver to gossip them.
const OUTBOX_QUEUE: usize = 1024;
/// How long shutdown waits for the network and sync tasks.
const TASK_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Addresses put in a ticket at most (it stays short enough to paste).
const MAX_TICKET_ADDRS: usize = 5;
/// Pause between DHT lookups while joining.
const DHT_RETRY: Duration = Duration::from_millis(500);
/// How long an idle connection is kept.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);

/// A running peerdoc node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Store,
    net: Net,
    rooms: Rooms,
    sync: SyncHandle,
    room_ctx: RoomContext,
    cancel: CancellationToken,
    /// The sync driver's and the network's tasks, in the order they stop.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Joins waiting for a member (`join.rs`): stopped before the driver and the network.
    joins: TaskTracker,
    /// Documents whose join waits for a member (`join.rs`).
    joining: Mutex<HashSet<DocId>>,
    /// Woken by the sync driver whenever a peer connects.
    peer_connected: Arc<tokio::sync::Notify>,
    /// Held until shutdown: one daemon per data dir.
    data_dir: Mutex<Option<DataDir>>,
    /// This node's identity key: it signs certificates and invitations.
    identity: ed25519::Keypair,
    /// The node's metrics (the network's are in `net`).
    registry: Registry,
}

impl Node {
    /// Opens the data dir and starts everything. Fails with a clear error if the data dir is in
    /// use, the database is damaged, or an address cannot be bound.
    pub async fn spawn(config: Config) -> Result<Node, Error> {
        let data_dir = DataDir::open(&config.data_dir)?;
        let keypair = data_dir.identity()?;
        let identity = keypair
            .clone()
            .try_into_ed25519()
            .map_err(|_| Error::NotEd25519)?;
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let store = Store::open_timed(&data_dir.db_path(), Some(metrics.store_commit.clone()))?;
        let adopted = store.adopt_legacy(identity.public().to_bytes()).await?;
        if adopted > 0 {
            tracing::warn!(
                "{adopted} document(s) from before roles: this node is now their owner; \
                 share them again (old tickets no longer work)"
            );
        }
        let cancel = CancellationToken::new();
        let (net, events, net_task) =
            start_net(&config, &data_dir, keypair, cancel.child_token()).await?;

        let rooms = Rooms::default();
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX_QUEUE);
        let room_ctx = RoomContext {
            store: store.clone(),
            outbox,
            compact_every: config.compact_every,
            me: net.peer_id(),
            identity: identity.clone(),
            max_doc_bytes: crate::replica::room::MAX_DOC_BYTES,
            clock: crate::replica::presence::system_clock(),
            unload_after: config.unload_after,
            metrics: metrics.clone(),
        };
        for meta in store.list_docs().await? {
            match RoomHandle::open(&meta, room_ctx.clone()).await {
                Ok(room) => {
                    if room.access().membership.is_shared() {
                        net.subscribe(meta.id.topic_name()).await;
                        net.provide(meta.id.topic()).await;
                    }
                    rooms.insert(room);
                }
                Err(e) => {
                    tracing::error!(doc = %meta.id, name = %meta.name, "cannot open document: {e}")
                }
            }
        }
        let peer_connected = Arc::new(tokio::sync::Notify::new());
        let settings = SyncSettings {
            identity: identity.clone(),
            metrics: metrics.clone(),
            sync_interval: config.sync_interval,
            redial_interval: config.redial_interval,
            peer_connected: peer_connected.clone(),
            bootstrap: config
                .bootstrap
                .iter()
                .filter_map(split_peer_addr)
                .collect(),
        };
        let (sync, sync_task) = SyncDriver::spawn(
            net.clone(),
            rooms.clone(),
            store.clone(),
            settings,
            events,
            outbox_rx,
            cancel.child_token(),
        );
        let node = Node {
            inner: Arc::new(Inner {
                config,
                store,
                net,
                rooms,
                sync,
                room_ctx,
                cancel,
                // The driver stops first: it uses the network.
                tasks: Mutex::new(vec![sync_task, net_task]),
                joins: TaskTracker::new(),
                data_dir: Mutex::new(Some(data_dir)),
                identity,
                registry,
                joining: Mutex::default(),
                peer_connected,
            }),
        };
        for (doc, ticket) in node.inner.store.pending_joins().await? {
            node.wait_for_member(doc, ticket);
        }
        Ok(node)
    }

    /// Stops the node in order; pending writes are committed first. Idempotent.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.cancel.is_cancelled() {
            return;
        }
        inner.cancel.cancel();
        inner.joins.close();
        let _ = tokio::time::timeout(TASK_STOP_TIMEOUT, inner.joins.wait()).await;
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *unpoisoned(inner.tasks.lock()));
        for task in tasks {
            let _ = tokio::time::timeout(TASK_STOP_TIMEOUT, task).await;
        }
        for room in inner.rooms.all() {
            room.close().await;
        }
        inner.store.close().await;
        // Releases the data dir for a new node, even while handles to this one live on.
        unpoisoned(inner.data_dir.lock()).take();
    }

    /// The node's metrics in the OpenMetrics text format (what `GET /metrics` serves): edits
    /// applied, store commit and sync durations, peers connected, bytes in and out, tickets
    /// issued, and what the HTTP API refused.
    pub fn metrics_text(&self) -> String {
        crate::metrics::encode(&self.inner.registry, self.inner.net.registry())
    }

    /// The node's metric handles, for the HTTP API to count what it refuses.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.room_ctx.metrics
    }

    pub fn peer_id(&self) -> PeerId {
        self.inner.net.peer_id()
    }
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Creates an empty plain-text document (see [`Node::create_doc_of`]).
    pub async fn create_doc(&self, name: &str) -> Result<DocInfo, Error> {
        self.create_doc_of(name, DocKind::Plain).await
    }

    /// Creates an empty document of a kind: rich text (TipTap's model, read and written as
    /// Markdown) or plain text. Its kind is part of the document: every member sees it.
    pub async fn create_doc_of(&self, name: &str, kind: DocKind) -> Result<DocInfo, Error> {
        let name = names::validate_name(name)?;
        let meta = DocMeta {
            id: DocId::random(),
            name,
            key: DocKey::random(),
            created: unix_now(),
            owner: self.inner.identity.public().to_bytes(),
            key_epoch: 0,
        };
        self.inner.store.create_doc(meta.clone()).await?;
        let room = self.open_room(&meta).await?;
        if kind == DocKind::Rich {
            room.make_rich().await?;
            self.inner.store.set_rich(meta.id).await?;
        }
        self.info(&meta).await
    }

    /// A document's listing, with this node's role in it.
    pub(crate) async fn info(&self, meta: &DocMeta) -> Result<DocInfo, Error> {
        let stats = self.inner.store.doc_stats(Some(meta.id)).await?;
        Ok(self.info_with(meta, stats.get(&meta.id).copied().unwrap_or_default()))
    }

    fn info_with(&self, meta: &DocMeta, stats: DocStats) -> DocInfo {
        let access = self.inner.rooms.get(&meta.id).map(|room| room.access());
        let role = standing(access.as_ref().map(|a| &a.membership), &self.peer_id());
        DocInfo {
            id: meta.id,
            name: meta.name.clone(),
            created: meta.created,
            role,
            epoch: access.map_or(0, |a| a.keys.current().0),
            joining: unpoisoned(self.inner.joining.lock()).contains(&meta.id),
            size: stats.bytes,
            changed: stats.changed,
            kind: if stats.rich {
                DocKind::Rich
            } else {
                DocKind::Plain
            },
        }
    }

    async fn open_room(&self, meta: &DocMeta) -> Result<RoomHandle, Error> {
        let room = RoomHandle::open(meta, self.inner.room_ctx.clone()).await?;
        self.list_room(&room).await;
        Ok(room)
    }

    pub async fn list_docs(&self) -> Result<Vec<DocInfo>, Error> {
        let docs = self.inner.store.list_docs().await?;
        let stats = self.inner.store.doc_stats(None).await?;
        Ok(docs
            .iter()
            .map(|m| self.info_with(m, stats.get(&m.id).copied().unwrap_or_default()))
            .collect())
    }

    /// Finds a document by id, local name, or unique id prefix (in that order).
    pub(crate) async fn resolve(&self, doc: DocRef<'_>) -> Result<DocMeta, Error> {
        let query = doc.to_string();
        names::find(self.inner.store.find_docs(&query).await?, &query)
    }

    /// The room of a document (a typed id whose room is open is not looked up).
    pub(crate) async fn room(&self, doc: DocRef<'_>) -> Result<RoomHandle, Error> {
        if let DocRef::Id(id) = doc {
            if let Some(room) = self.inner.rooms.get(&id) {
                return Ok(room);
            }
        }
        self.room_of(&self.resolve(doc).await?).await
    }

    /// The room of a resolved document, opened if it is not.
    pub(crate) async fn room_of(&self, meta: &DocMeta) -> Result<RoomHandle, Error> {
        match self.inner.rooms.get(&meta.id) {
            Some(room) => Ok(room),
            None => self.open_room(meta).await,
        }
    }

    pub async fn doc_info<'a>(&self, doc: impl Into<DocRef<'a>>) -> Result<DocInfo, Error> {
        self.info(&self.resolve(doc.into()).await?).await
    }

    /// The document's content: Markdown for a rich document, the text for a plain one
    /// ([`Error::Joining`] while a waiting join has none of it).
    pub async fn text<'a>(&self, doc: impl Into<DocRef<'a>>) -> Result<String, Error> {
        self.export(doc, Format::Markdown).await
    }

    /// The document as Markdown (the text itself, for a plain one), HTML or text.
    pub async fn export<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        format: Format,
    ) -> Result<String, Error> {
        let doc = doc.into();
        self.not_joining(doc).await?;
        Ok(self.room(doc).await?.export(format).await?)
    }

    /// Refuses a document whose waiting join has not completed: it has no text yet, and an
    /// empty one would pass for the document's.
    async fn not_joining(&self, doc: DocRef<'_>) -> Result<(), Error> {
        if unpoisoned(self.inner.joining.lock()).is_empty() {
            return Ok(());
        }
        let meta = self.resolve(doc).await?;
        if unpoisoned(self.inner.joining.lock()).contains(&meta.id) {
            return Err(Error::Joining(meta.name));
        }
        Ok(())
    }

    /// Replaces the content or appends to it: Markdown for a rich document (a replacement
    /// changes only the blocks that differ; an append adds blocks), text for a plain one (as a
    /// minimal diff). Returns once durable.
    pub async fn write<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        text: String,
        append: bool,
    ) -> Result<(), Error> {
        let room = self.room(doc.into()).await?;
        if append {
            room.append_text(text).await?;
        } else {
            room.replace_text(text).await?;
        }
        Ok(())
    }

    /// Applies a Yjs update (lib0 v1 encoding) as a local edit, as an editor session does:
    /// refused on a reader's node, committed before it returns, then sent to peers. For apps
    /// that keep their own yrs or Yjs replica.
    pub async fn apply_update<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        update: Vec<u8>,
    ) -> Result<(), Error> {
        let room = self.room(doc.into()).await?;
        room.apply_local(update, Origin::Api).await?;
        Ok(())
    }

    /// Closes and deletes a document's local replica (peers keep theirs).
    async fn forget(&self, meta: &DocMeta) {
        if let Some(room) = self.inner.rooms.remove(&meta.id) {
            room.close().await;
        }
        self.inner.net.unsubscribe(meta.id.topic_name()).await;
        self.inner.net.unprovide(meta.id.topic()).await;
        if let Err(e) = self.inner.store.delete_doc(meta.id).await {
            tracing::error!(doc = %meta.id, "could not delete: {e}");
        }
    }

    pub async fn rename<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        new_name: &str,
    ) -> Result<DocInfo, Error> {
        let mut meta = self.resolve(doc.into()).await?;
        let name = names::validate_name(new_name)?;
        self.inner.store.rename_doc(meta.id, name.clone()).await?;
        meta.name = name;
        self.info(&meta).await
    }

    /// Deletes this node's replica of a document.
    pub async fn delete<'a>(&self, doc: impl Into<DocRef<'a>>) -> Result<(), Error> {
        let meta = self.resolve(doc.into()).await?;
        self.forget(&meta).await;
        Ok(())
    }

    pub async fn peers(&self) -> Result<Vec<PeerStatus>, Error> {
        let net = self.inner.net.status().await?;
        Ok(net.connected.into_iter().map(peer_status).collect())
    }

    pub async fn status(&self) -> Result<Status, Error> {
        let net = self.inner.net.status().await?;
        let mut sync = self.inner.sync.status().await;
        let now = Instant::now();
        let mut docs = Vec::new();
        let me = self.peer_id();
        for m in self.inner.store.list_docs().await? {
            let room = self.inner.rooms.get(&m.id);
            let summary = match &room {
                Some(room) => room.summary().await.ok(),
                None => None,
            };
            let access = room.map(|room| room.access());
            let membership = access.as_ref().map(|a| &a.membership);
            let role = standing(membership, &me);
            // A removed member still subscribed is no peer of the document, and a node that
            // was removed syncs with no one.
            let current = |peer: &PeerId| {
                role != Standing::Removed && !membership.is_some_and(|m| m.is_revoked(peer))
            };
            docs.push(DocStatus {
                id: m.id,
                name: m.name,
                role,
                peers: sync
                    .remove(&m.id)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|p| current(&p.peer))
                    .map(|p| {
                        let last = p
                            .last_sync
                            .map(|(at, gap)| (now.duration_since(at).as_secs(), gap));
                        DocPeer::new(p.peer, last)
                    })
                    .collect(),
                state_vector: summary
                    .as_ref()
                    .and_then(|s| crate::core::doc::sv_text(&s.sv).ok())
                    .unwrap_or_default(),
                digest: summary.map(|s| s.digest),
            });
        }
        Ok(Status {
            peer_id: self.peer_id(),
            data_dir: self.inner.config.data_dir.clone(),
            nat: net.nat,
            relayed_addrs: net
                .listen_addrs
                .iter()
                .filter(|a| is_relayed(a))
                .cloned()
                .collect(),
            listen_addrs: net.listen_addrs,
            public_addrs: net.external_addrs,
            relays: net.reservations.into_iter().collect(),
            connected_peers: net.connected.into_iter().map(peer_status).collect(),
            docs,
        })
    }
}

/// A node's standing in a document, from the membership its room holds (unknown without one).
fn standing(membership: Option<&Membership>, me: &PeerId) -> Standing {
    match membership {
        Some(m) if m.is_revoked(me) => Standing::Removed,
        Some(m) => m.role_of(me).map_or(Standing::Unknown, Standing::Member),
        None => Standing::Unknown,
    }
}

fn peer_status(connected: ConnectedPeer) -> PeerStatus {
    // One connection per transport may report the same address.
    let mut addrs = connected.addrs;
    addrs.sort();
    addrs.dedup();
    PeerStatus {
        peer: connected.peer,
        addrs,
        relayed: connected.kind == ConnectionKind::Relayed,
    }
}

/// Addresses for a ticket, most widely reachable first: public, relayed, the rest (LAN), and
/// this machine's last; a few at most.
fn ticket_addrs(net: &NetStatus) -> Vec<Multiaddr> {
    let rank = |addr: &Multiaddr| {
        if net.external_addrs.contains(addr) {
            0
        } else if is_relayed(addr) {
            1
        } else if is_loopback(addr) {
            3
        } else {
            2
        }
    };
    let mut addrs: Vec<Multiaddr> = net.external_addrs.clone();
    addrs.extend(
        net.listen_addrs
            .iter()
            .filter(|a| !addrs.contains(a))
            .cloned()
            .collect::<Vec<_>>(),
    );
    addrs.sort_by_key(rank);
    addrs.truncate(MAX_TICKET_ADDRS);
    addrs
}
