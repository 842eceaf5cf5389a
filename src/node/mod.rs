//! [`Node`]: starts and wires the parts (data dir, store, network, rooms, sync driver), owns
//! cancellation, and is the API that apps embed and the HTTP layer calls: documents
//! (`documents`: create, list, resolve, read, write, rename, delete), sharing and members
//! (`members`), joining (`join`), holders (`holders`: where a document is kept sealed, and what
//! this node keeps for others), `status`. It does not know the HTTP
//! server exists: the binary (or an embedding app) wires `Node` and `peerdoc::api::Server`.
//!
//! Shutdown order: upload what changed to the documents' holders, stop sync and the swarm, close rooms (their queued writes finish first),
//! close the store, release the data dir. Stop the HTTP server before the node.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::identity::ed25519;
use libp2p::PeerId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::actor::unpoisoned;
use crate::config::Config;
use crate::core::access::NameRecord;
use crate::core::doc::DocId;
use crate::data_dir::DataDir;
use crate::metrics::Metrics;
use crate::net::Net;
use crate::replica::blobs::files::BlobFiles;
use crate::replica::blobs::{BlobContext, BlobLimits, BlobService, BlobsHandle};
use crate::replica::held::{HeldHandle, HeldService};
use crate::replica::holding::{Holding, HoldingHandle, HoldingSettings};
use crate::replica::room::{RoomContext, RoomHandle};
use crate::replica::rooms::Rooms;
use crate::replica::store::HeldLimits;
use crate::replica::store::Store;
use crate::replica::sync_driver::{SyncDriver, SyncHandle, SyncSettings};
use prometheus_client::registry::Registry;

mod blobs;
mod display_name;
mod doc;
mod documents;
mod error;
mod history;
mod holders;
mod join;
mod members;
pub(crate) mod names;
pub use names::DocRef;
mod startup;
mod status;
#[cfg(test)]
mod tests;
mod types;

use startup::{split_peer_addr, start_net};

pub use blobs::{blob_link, content_type, is_image, Attached, BlobInfo, GcReport, GC_GRACE_SECS};
pub use doc::{Doc, Event, Session};
pub use error::{Error, ErrorKind};
pub use history::{Author, PreviewSpan, SpanChange, VersionChanges, VersionInfo};
pub use holders::{HeldInfo, HolderInfo};

/// The role a node shows for a document the owner removed it from.
pub use types::{
    DocInfo, DocPeer, DocStatus, MemberInfo, PeerStatus, Removed, Standing, Status, SyncState,
};

/// Local edits and presence waiting for the sync driver to gossip them.
const OUTBOX_QUEUE: usize = 1024;
/// How long shutdown waits for the network and sync tasks.
const TASK_STOP_TIMEOUT: Duration = Duration::from_secs(5);
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
    /// This node's signed display name (`display_name`); the sync driver reads it.
    name: tokio::sync::watch::Sender<Option<NameRecord>>,
    /// Held until shutdown: one daemon per data dir.
    data_dir: Mutex<Option<DataDir>>,
    /// This node's identity key: it signs certificates and invitations.
    identity: ed25519::Keypair,
    /// The holder's side (`--replica`): documents kept sealed for others.
    held: Option<HeldHandle>,
    /// The member's side of holders: this node's documents kept current at their holders.
    holding: HoldingHandle,
    /// Attachments: served to members, fetched from peers (`replica::blobs`).
    blobs: BlobsHandle,
    /// The secret that keys this node's sealing of attachments (from its identity key).
    blob_secret: [u8; 32],
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
        let own_name = display_name::load(&store, config.name.as_deref(), &identity).await?;
        let (name, name_rx) = tokio::sync::watch::channel(own_name);
        let cancel = CancellationToken::new();
        let (net, events, net_task) =
            start_net(&config, &data_dir, keypair, cancel.child_token()).await?;

        let rooms = Rooms::default();
        let (holding, holding_inbox) = Holding::channel();
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX_QUEUE);
        let room_ctx = RoomContext {
            store: store.clone(),
            net: net.clone(),
            holding: holding.clone(),
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
        let blob_files = BlobFiles::open(&config.data_dir).map_err(|e| {
            Error::AttachmentIo(format!(
                "cannot open the attachment store in {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let (blobs, blobs_task) = BlobService::spawn(
            BlobContext {
                me: identity.public().to_bytes(),
                net: net.clone(),
                store: store.clone(),
                files: blob_files,
                metrics: metrics.clone(),
                limits: BlobLimits {
                    max_bytes: config.attachments.max_attachment_bytes,
                    max_doc_bytes: config
                        .replica
                        .as_ref()
                        .map_or(config.attachments.max_doc_bytes, |r| {
                            r.max_doc_bytes.min(config.attachments.max_doc_bytes)
                        }),
                    held_total: config.replica.as_ref().map(|r| r.max_bytes),
                    reoffer_every: config.sync_interval * 6,
                    serve_rate: Some(config.attachments.serve_rate).filter(|&r| r > 0),
                },
                #[cfg(feature = "test-faults")]
                corrupt_pieces: config.corrupt_blob_pieces,
            },
            rooms.clone(),
            cancel.child_token(),
        );
        let mut held = config.replica.as_ref().map(|limits| {
            let allow = limits
                .allow
                .iter()
                .filter_map(|peer| peer.parse().ok())
                .filter_map(|peer| crate::core::access::key_of(&peer).ok())
                .collect();
            let held_limits = HeldLimits {
                max_docs: limits.max_docs,
                max_doc_bytes: limits.max_doc_bytes,
                max_bytes: limits.max_bytes,
            };
            HeldService::spawn(
                identity.public().to_bytes(),
                net.clone(),
                store.clone(),
                blobs.clone(),
                (held_limits, allow),
                metrics.clone(),
                cancel.child_token(),
            )
        });
        let holding_task = Holding::spawn(
            holding_inbox,
            net.clone(),
            rooms.clone(),
            store.clone(),
            HoldingSettings {
                identity: identity.clone(),
                metrics: metrics.clone(),
                interval: config.sync_interval,
            },
            cancel.child_token(),
        );
        let blob_secret = crate::core::blob::seal::node_secret(identity.secret().as_ref());
        let (held_handle, held_task) = match held.take() {
            Some((handle, task)) => (Some(handle), Some(task)),
            None => (None, None),
        };
        let settings = SyncSettings {
            held: held_handle.clone(),
            blobs: blobs.clone(),
            identity: identity.clone(),
            metrics: metrics.clone(),
            sync_interval: config.sync_interval,
            redial_interval: config.redial_interval,
            peer_connected: peer_connected.clone(),
            name: name_rx,
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
                // The driver and the holders' sides stop first: they use the network.
                tasks: Mutex::new(
                    [
                        Some(sync_task),
                        Some(holding_task),
                        held_task,
                        Some(blobs_task),
                        Some(net_task),
                    ]
                    .into_iter()
                    .flatten()
                    .collect(),
                ),
                held: held_handle,
                holding,
                blobs,
                blob_secret,
                joins: TaskTracker::new(),
                data_dir: Mutex::new(Some(data_dir)),
                identity,
                registry,
                joining: Mutex::default(),
                peer_connected,
                name,
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
        // Edits made here reach the document's holders before the node goes (members may
        // not be online again before this one is).
        if tokio::time::timeout(TASK_STOP_TIMEOUT, inner.holding.flush())
            .await
            .is_err()
        {
            tracing::warn!(
                "stopping before every holder answered; the next start uploads what they miss"
            );
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
}
