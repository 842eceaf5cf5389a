//! [`Node`]: starts and wires the parts (data dir, store, network, rooms, sync driver), owns
//! cancellation, and is the document API that apps embed and the HTTP layer calls: create,
//! list, resolve, read, write, share, join, rename, delete, status. It does not know the HTTP
//! server exists: the binary (or an embedding app) wires `Node` and `peerdoc::api::Server`.
//!
//! Shutdown order: stop sync and the swarm, close rooms (their queued writes finish first),
//! close the store, release the data dir. Stop the HTTP server before the node.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::actor::unpoisoned;
use crate::config::Config;
use crate::core::doc::DocId;
use crate::core::envelope::DocKey;
use crate::core::sync::PullError;
use crate::core::ticket::{Capability, Ticket};
use crate::data_dir::{DataDir, StickyPorts};
use crate::net::{
    is_loopback, is_relayed, ConnectedPeer, DhtMode, Net, NetConfig, NetError, NetEvent, NetStatus,
};
use crate::replica::pull::{pull, PullFailure};
use crate::replica::room::{RoomContext, RoomHandle};
use crate::replica::rooms::Rooms;
use crate::replica::store::{unix_now, DocMeta, Store};
use crate::replica::sync_driver::{SyncDriver, SyncHandle, SyncSettings};

mod error;
mod names;
#[cfg(test)]
mod tests;
mod types;

pub use error::Error;
pub use types::{DocInfo, DocPeer, DocStatus, PeerStatus, Status};

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
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Held until shutdown: one daemon per data dir.
    data_dir: Mutex<Option<DataDir>>,
}

impl From<&DocMeta> for DocInfo {
    fn from(m: &DocMeta) -> Self {
        DocInfo {
            id: m.id.to_string(),
            name: m.name.clone(),
            created: m.created,
        }
    }
}

impl Node {
    /// Opens the data dir and starts everything. Fails with a clear error if the data dir is in
    /// use, the database is damaged, or an address cannot be bound.
    pub async fn spawn(config: Config) -> Result<Node, Error> {
        let data_dir = DataDir::open(&config.data_dir)?;
        let keypair = data_dir.identity()?;
        let store = Store::open(&data_dir.db_path())?;
        let cancel = CancellationToken::new();
        let (net, events, net_task) =
            start_net(&config, &data_dir, keypair, cancel.child_token()).await?;

        let rooms = Rooms::default();
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX_QUEUE);
        let room_ctx = RoomContext {
            store: store.clone(),
            outbox,
            compact_every: config.compact_every,
        };
        for meta in store.list_docs().await? {
            match RoomHandle::open(&meta, room_ctx.clone()).await {
                Ok(room) => {
                    net.subscribe(meta.id.topic_name()).await;
                    net.provide(meta.id.topic()).await;
                    rooms.insert(room);
                }
                Err(e) => {
                    tracing::error!(doc = %meta.id, name = %meta.name, "cannot open document: {e}")
                }
            }
        }
        let settings = SyncSettings {
            sync_interval: config.sync_interval,
            redial_interval: config.redial_interval,
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
        Ok(Node {
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
                data_dir: Mutex::new(Some(data_dir)),
            }),
        })
    }

    /// Stops the node in order; pending writes are committed first. Idempotent.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.cancel.is_cancelled() {
            return;
        }
        inner.cancel.cancel();
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

    pub fn peer_id(&self) -> PeerId {
        self.inner.net.peer_id()
    }
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Creates an empty document.
    pub async fn create_doc(&self, name: &str) -> Result<DocInfo, Error> {
        let name = names::validate_name(name)?;
        let meta = DocMeta {
            id: DocId::random(),
            name,
            key: DocKey::random(),
            created: unix_now(),
        };
        self.inner.store.create_doc(meta.clone()).await?;
        self.open_room(&meta).await?;
        Ok(DocInfo::from(&meta))
    }

    async fn open_room(&self, meta: &DocMeta) -> Result<RoomHandle, Error> {
        let room = RoomHandle::open(meta, self.inner.room_ctx.clone()).await?;
        self.inner.rooms.insert(room.clone());
        self.inner.net.subscribe(meta.id.topic_name()).await;
        self.inner.net.provide(meta.id.topic()).await;
        Ok(room)
    }

    pub async fn list_docs(&self) -> Result<Vec<DocInfo>, Error> {
        let docs = self.inner.store.list_docs().await?;
        Ok(docs.iter().map(DocInfo::from).collect())
    }

    /// Finds a document by id, local name, or unique id prefix (in that order).
    pub(crate) async fn resolve(&self, query: &str) -> Result<DocMeta, Error> {
        names::find(self.inner.store.list_docs().await?, query)
    }

    /// The room of a document (for editor sessions).
    pub(crate) async fn room(&self, query: &str) -> Result<RoomHandle, Error> {
        let meta = self.resolve(query).await?;
        match self.inner.rooms.get(&meta.id) {
            Some(room) => Ok(room),
            None => self.open_room(&meta).await,
        }
    }

    pub async fn doc_info(&self, query: &str) -> Result<DocInfo, Error> {
        Ok(DocInfo::from(&self.resolve(query).await?))
    }

    /// The document's plain text.
    pub async fn text(&self, query: &str) -> Result<String, Error> {
        Ok(self.room(query).await?.text().await?)
    }

    /// Replaces the text (as a minimal diff) or appends to it. Returns once durable.
    pub async fn write(&self, query: &str, text: String, append: bool) -> Result<(), Error> {
        let room = self.room(query).await?;
        if append {
            room.append_text(text).await?;
        } else {
            room.replace_text(text).await?;
        }
        Ok(())
    }

    /// A read-write ticket for the document, carrying this node's addresses.
    pub async fn ticket(&self, query: &str) -> Result<String, Error> {
        let meta = self.resolve(query).await?;
        let addrs = ticket_addrs(&self.inner.net.status().await?);
        Ok(Ticket {
            doc: meta.id,
            key: meta.key,
            capability: Capability::ReadWrite,
            name: meta.name,
            peer: self.peer_id(),
            addrs,
        }
        .encode())
    }

    /// Joins a shared document: reaches the sharer, fetches the document, and keeps it in sync.
    /// On any failure nothing is kept.
    pub async fn join(&self, ticket: &str, name: Option<&str>) -> Result<DocInfo, Error> {
        let ticket = Ticket::decode(ticket)?;
        if ticket.peer == self.peer_id() {
            return Err(Error::OwnTicket);
        }
        let docs = self.inner.store.list_docs().await?;
        if let Some(existing) = docs.iter().find(|m| m.id == ticket.doc) {
            return Err(Error::AlreadyJoined(existing.name.clone()));
        }
        let wanted = names::validate_name(name.unwrap_or(&ticket.name)).or_else(|e| {
            // A sharer's name we cannot use locally is replaced, not an error.
            if name.is_some() {
                Err(e)
            } else {
                Ok("shared".to_string())
            }
        })?;
        let name = names::unique_name(&wanted, &docs);
        let members = self.reach_members(&ticket).await?;
        let meta = DocMeta {
            id: ticket.doc,
            name,
            key: ticket.key,
            created: unix_now(),
        };
        self.inner.store.create_doc(meta.clone()).await?;
        if let Err(e) = self.first_pull(&meta, &members).await {
            self.forget(&meta).await;
            return Err(e);
        }
        let addrs = ticket.addrs.iter().map(|a| a.to_string()).collect();
        if let Err(e) = self
            .inner
            .store
            .save_peer(ticket.peer.to_string(), addrs)
            .await
        {
            tracing::warn!("cannot remember the sharer's addresses: {e}");
        }
        self.inner.sync.opened(meta.id).await;
        Ok(DocInfo::from(&meta))
    }

    /// Connects to members of the ticket's document: the sharer at the ticket's addresses, or,
    /// if it cannot be reached, whoever the DHT says holds the document. Returns them, the
    /// sharer first.
    async fn reach_members(&self, ticket: &Ticket) -> Result<Vec<PeerId>, Error> {
        let timeout = self.inner.config.request_timeout;
        let net = &self.inner.net;
        let sharer = match tokio::time::timeout(
            timeout,
            net.dial(ticket.peer, ticket.addrs.clone()),
        )
        .await
        {
            Ok(Ok(())) => return Ok(vec![ticket.peer]),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {}s", timeout.as_secs()),
        };
        // A node that just started may not have reached its DHT peers yet: look again until the
        // timeout.
        let deadline = tokio::time::Instant::now() + timeout;
        let mut reached = Vec::new();
        while reached.is_empty() && tokio::time::Instant::now() < deadline {
            let lookup = net.find_providers(ticket.doc.topic());
            let found = tokio::time::timeout_at(deadline, lookup).await;
            for peer in found.ok().and_then(Result::ok).unwrap_or_default() {
                // The lookup has started dialling them; this waits for the outcome.
                if let Ok(Ok(())) =
                    tokio::time::timeout_at(deadline, net.dial(peer, Vec::new())).await
                {
                    reached.push(peer);
                }
            }
            if reached.is_empty() {
                tokio::time::sleep(DHT_RETRY).await;
            }
        }
        if reached.is_empty() {
            return Err(Error::Unreachable {
                peer: ticket.peer,
                reason: format!("{sharer}; and the DHT knows no reachable member"),
            });
        }
        Ok(reached)
    }

    /// Opens the joined document's room and pulls it from the first member that has it.
    async fn first_pull(&self, meta: &DocMeta, members: &[PeerId]) -> Result<(), Error> {
        let room = self.open_room(meta).await?;
        let timeout = self.inner.config.request_timeout;
        let mut failure = None;
        for &member in members {
            // A connection can be replaced under a pull (a hole punch replaces the relayed
            // one): a pull that lost its connection is tried once more.
            for attempt in 0..2 {
                let error =
                    match tokio::time::timeout(timeout, pull(&self.inner.net, &room, member)).await
                    {
                        Ok(Ok(_)) => return Ok(()),
                        Ok(Err(PullFailure::Protocol {
                            source: PullError::UnknownDoc,
                            ..
                        })) => Error::NotShared,
                        Ok(Err(e)) => Error::JoinSync(e),
                        Err(_) => Error::Unreachable {
                            peer: member,
                            reason: format!(
                                "the sync did not finish within {}s",
                                timeout.as_secs()
                            ),
                        },
                    };
                tracing::debug!(doc = %meta.id, peer = %member, attempt, "first pull failed: {error}");
                let retry = matches!(error, Error::JoinSync(PullFailure::Net(_)));
                failure = Some(error);
                if !retry {
                    break;
                }
            }
        }
        Err(failure.unwrap_or(Error::NotShared))
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

    pub async fn rename(&self, query: &str, new_name: &str) -> Result<DocInfo, Error> {
        let mut meta = self.resolve(query).await?;
        let name = names::validate_name(new_name)?;
        self.inner.store.rename_doc(meta.id, name.clone()).await?;
        meta.name = name;
        Ok(DocInfo::from(&meta))
    }

    /// Deletes this node's replica of a document.
    pub async fn delete(&self, query: &str) -> Result<(), Error> {
        let meta = self.resolve(query).await?;
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
        let docs = self
            .inner
            .store
            .list_docs()
            .await?
            .into_iter()
            .map(|m| DocStatus {
                id: m.id.to_string(),
                name: m.name,
                peers: sync
                    .remove(&m.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| DocPeer {
                        peer: p.peer.to_string(),
                        last_sync_secs: p.last_sync.map(|at| now.duration_since(at).as_secs()),
                        in_sync: p.in_sync,
                    })
                    .collect(),
            })
            .collect();
        Ok(Status {
            peer_id: self.peer_id().to_string(),
            data_dir: self.inner.config.data_dir.display().to_string(),
            http: None,
            nat: net.nat.as_str().to_string(),
            listen_addrs: strings(&net.listen_addrs),
            public_addrs: strings(&net.external_addrs),
            relayed_addrs: net
                .listen_addrs
                .iter()
                .filter(|a| is_relayed(a))
                .map(|a| a.to_string())
                .collect(),
            relays: net.reservations.iter().map(|p| p.to_string()).collect(),
            connected_peers: net.connected.into_iter().map(peer_status).collect(),
            docs,
        })
    }
}

fn peer_status(connected: ConnectedPeer) -> PeerStatus {
    PeerStatus {
        peer: connected.peer.to_string(),
        addrs: strings(&connected.addrs),
        connection: connected.kind.as_str().to_string(),
    }
}

fn strings(addrs: &[Multiaddr]) -> Vec<String> {
    addrs.iter().map(|a| a.to_string()).collect()
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

/// `/…/p2p/<peer>` → (peer, address without the suffix).
fn split_peer_addr(addr: &Multiaddr) -> Option<(PeerId, Vec<Multiaddr>)> {
    let mut addr = addr.clone();
    match addr.pop()? {
        Protocol::P2p(peer) => Some((peer, vec![addr])),
        _ => {
            tracing::warn!("ignoring bootstrap address {addr} without /p2p/<peer id>");
            None
        }
    }
}

/// Starts the network. Without explicit listen addresses, TCP and QUIC on all interfaces,
/// reusing last run's ports when they are free.
async fn start_net(
    config: &Config,
    data_dir: &DataDir,
    keypair: Keypair,
    cancel: CancellationToken,
) -> Result<(Net, mpsc::Receiver<NetEvent>, JoinHandle<()>), Error> {
    let net_config = |listen| NetConfig {
        listen,
        mdns: config.mdns,
        request_timeout: config.request_timeout,
        idle_timeout: IDLE_CONNECTION_TIMEOUT,
        // A relay is public by nature, and a good place for others to find the DHT.
        dht: match (config.dht, &config.relay) {
            (DhtMode::Auto, Some(_)) => DhtMode::Server,
            (mode, _) => mode,
        },
        upnp: config.upnp,
        relay_server: config.relay.clone(),
    };
    if !config.listen.is_empty() {
        return Ok(Net::spawn(keypair, net_config(config.listen.clone()), cancel).await?);
    }
    let defaults = |ports: StickyPorts| -> Vec<Multiaddr> {
        vec![
            Multiaddr::empty()
                .with(Protocol::Ip4(std::net::Ipv4Addr::UNSPECIFIED))
                .with(Protocol::Tcp(ports.tcp)),
            Multiaddr::empty()
                .with(Protocol::Ip4(std::net::Ipv4Addr::UNSPECIFIED))
                .with(Protocol::Udp(ports.quic))
                .with(Protocol::QuicV1),
        ]
    };
    let sticky = data_dir.sticky_ports();
    let started = match Net::spawn(
        keypair.clone(),
        net_config(defaults(sticky)),
        cancel.clone(),
    )
    .await
    {
        Ok(started) => started,
        Err(NetError::Listen { .. }) if sticky != StickyPorts::default() => {
            Net::spawn(
                keypair,
                net_config(defaults(StickyPorts::default())),
                cancel,
            )
            .await?
        }
        Err(e) => return Err(e.into()),
    };
    // One port per transport (every interface address of a listener shares it).
    let mut ports = StickyPorts::default();
    for addr in started.0.status().await?.listen_addrs {
        for p in addr.iter() {
            match p {
                Protocol::Tcp(port) => ports.tcp = port,
                Protocol::Udp(port) => ports.quic = port,
                _ => {}
            }
        }
    }
    if let Err(e) = data_dir.save_sticky_ports(ports) {
        tracing::debug!("cannot remember listen ports: {e}");
    }
    Ok(started)
}
