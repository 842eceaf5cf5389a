//! [`Node`]: starts and wires the parts (store, network, sync driver, rooms, HTTP API), owns
//! cancellation, and is the API that the HTTP layer, the CLI (through HTTP) and embedding apps
//! use: create, list, resolve, read, write, share, join, rename, delete, status.
//!
//! Shutdown order: stop the HTTP API, stop sync and the swarm, close rooms (their queued writes
//! finish first), close the store, remove the API address file.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{api_addr_path, api_token_path, Config};
use crate::doc::DocId;
use crate::envelope::{Capability, DocKey, Ticket, TicketError};
use crate::net::{Net, NetConfig, NetError, PeerInfo};
use crate::peer::{self, Driver, PeerDocState, PeerError, SyncTiming, Syncer};
use crate::room::{RoomContext, RoomError, RoomHandle, Rooms};
use crate::store::{unix_now, DocMeta, Store, StoreError};
use crate::sync::PullError;

/// Longest document name, in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Shortest id prefix accepted where a document is named.
pub const MIN_PREFIX_LEN: usize = 4;

/// Errors of the node API. Messages say what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no document matches {0:?}; list documents with `peerdoc ls`")]
    UnknownDoc(String),
    #[error("{0:?} matches several documents ({1}); give more of the id")]
    AmbiguousDoc(String, String),
    #[error("invalid document name {0:?}: {1}")]
    BadName(String, &'static str),
    #[error("bad ticket: {0}")]
    Ticket(#[from] TicketError),
    #[error("this node already has that document, as {0:?}")]
    AlreadyJoined(String),
    #[error("this ticket was made by this node; join it from another node (another --data dir)")]
    OwnTicket,
    #[error(
        "could not reach the sharer {peer} at any address in the ticket ({reason}); \
         check that their node is running and reachable, then try again"
    )]
    Unreachable { peer: PeerId, reason: String },
    #[error("the sharer's node does not serve this document (it was deleted there, or the ticket is stale); ask for a new ticket")]
    NotShared,
    #[error("joining failed while syncing from the sharer: {0}")]
    JoinSync(PeerError),
    #[error("another peerdoc daemon is already using {0}; stop it or pick another --data dir")]
    Locked(PathBuf),
    #[error("cannot use data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("identity file {0} is damaged; move it aside to create a new identity (peers will see a new peer id)")]
    Identity(PathBuf),
    #[error("cannot start the HTTP API on {addr}: {source}; pick another address with --http")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the HTTP API on {0} would be reachable from other machines; set an access token with \
         --http-token (or bind 127.0.0.1)"
    )]
    HttpTokenRequired(SocketAddr),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Room(#[from] RoomError),
}

/// A document as listed by the API.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DocInfo {
    pub id: String,
    pub name: String,
    pub created: i64,
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

/// One document in `status`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DocStatus {
    pub id: String,
    pub name: String,
    /// Connected peers that share this document, with their sync state.
    pub peers: Vec<DocPeer>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DocPeer {
    pub peer: String,
    pub last_sync_secs: Option<u64>,
    pub in_sync: bool,
}

impl From<PeerDocState> for DocPeer {
    fn from(s: PeerDocState) -> Self {
        DocPeer {
            peer: s.peer,
            last_sync_secs: s.last_sync_secs,
            in_sync: s.in_sync,
        }
    }
}

/// What `status` reports.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Status {
    pub peer_id: String,
    pub data_dir: String,
    pub http: Option<String>,
    pub listen_addrs: Vec<String>,
    pub connected_peers: Vec<PeerStatus>,
    pub docs: Vec<DocStatus>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PeerStatus {
    pub peer: String,
    pub addrs: Vec<String>,
}

impl From<PeerInfo> for PeerStatus {
    fn from(p: PeerInfo) -> Self {
        PeerStatus {
            peer: p.peer,
            addrs: p.addrs,
        }
    }
}

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
    syncer: Syncer,
    room_ctx: RoomContext,
    cancel: CancellationToken,
    http_cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    http_addr: Mutex<Option<SocketAddr>>,
    /// Held until shutdown: one daemon per data dir.
    lock: Mutex<Option<File>>,
}

impl Node {
    /// Opens the data dir and starts everything. Fails with a clear error if the data dir is in
    /// use, the database is damaged, or an address cannot be bound.
    pub async fn spawn(config: Config) -> Result<Node, Error> {
        let data_err = |source| Error::DataDir {
            path: config.data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&config.data_dir).map_err(data_err)?;
        let lock = File::create(config.lock_path()).map_err(data_err)?;
        if lock.try_lock().is_err() {
            return Err(Error::Locked(config.data_dir.clone()));
        }
        let keypair = load_or_create_identity(&config.identity_path())?;
        let store = Store::open(&config.db_path())?;
        let cancel = CancellationToken::new();

        let (net, events, net_task) =
            start_net(&config, &store, keypair, cancel.child_token()).await?;

        let rooms = Rooms::default();
        let (outbox, outbox_rx) = mpsc::channel(1024);
        let room_ctx = RoomContext {
            store: store.clone(),
            outbox,
            compact_every: config.compact_every,
        };
        for meta in store.list_docs().await? {
            match RoomHandle::open(&meta, room_ctx.clone()).await {
                Ok(room) => {
                    net.subscribe(meta.id.topic_name()).await;
                    rooms.insert(room);
                }
                Err(e) => {
                    tracing::error!(doc = %meta.id, name = %meta.name, "cannot open document: {e}")
                }
            }
        }
        let driver = Driver {
            net: net.clone(),
            rooms: rooms.clone(),
            store: store.clone(),
            timing: SyncTiming {
                sync_interval: config.sync_interval,
                redial_interval: config.redial_interval,
            },
            bootstrap: config
                .bootstrap
                .iter()
                .filter_map(split_peer_addr)
                .collect(),
        };
        let (syncer, driver_task) = driver.spawn(events, outbox_rx, cancel.child_token());

        let node = Node {
            inner: Arc::new(Inner {
                config: config.clone(),
                store,
                net,
                rooms,
                syncer,
                room_ctx,
                http_cancel: CancellationToken::new(),
                cancel,
                tasks: Mutex::new(vec![net_task, driver_task]),
                http_addr: Mutex::new(None),
                lock: Mutex::new(Some(lock)),
            }),
        };
        if let Some(addr) = config.http {
            if !addr.ip().is_loopback() && config.http_token.is_none() {
                node.shutdown().await;
                return Err(Error::HttpTokenRequired(addr));
            }
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Http { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| Error::Http { addr, source })?;
            let task = crate::api::serve(node.clone(), listener, node.inner.http_cancel.clone());
            node.inner.tasks_push(task);
            *lock_mutex(&node.inner.http_addr) = Some(bound);
            let token_path = api_token_path(&config.data_dir);
            let _ = std::fs::remove_file(&token_path);
            if let Some(token) = &config.http_token {
                write_private(&token_path, token.as_bytes()).map_err(data_err)?;
            }
            std::fs::write(api_addr_path(&config.data_dir), bound.to_string()).map_err(data_err)?;
        }
        Ok(node)
    }

    /// Stops the node in order; pending writes are committed first. Idempotent.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.cancel.is_cancelled() {
            return;
        }
        inner.http_cancel.cancel();
        if lock_mutex(&inner.http_addr).take().is_some() {
            let _ = std::fs::remove_file(api_addr_path(&inner.config.data_dir));
            let _ = std::fs::remove_file(api_token_path(&inner.config.data_dir));
        }
        inner.cancel.cancel();
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *lock_mutex(&inner.tasks));
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        for room in inner.rooms.all() {
            room.close().await;
        }
        inner.store.close().await;
        // Releases the data dir for a new node, even while handles to this one live on.
        lock_mutex(&inner.lock).take();
    }

    pub fn peer_id(&self) -> PeerId {
        self.inner.net.peer_id()
    }
    /// The bound HTTP API address, if the API runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        *lock_mutex(&self.inner.http_addr)
    }
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    /// Fires when the node starts shutting down (long-lived sessions end on it).
    pub fn stopping(&self) -> CancellationToken {
        self.inner.http_cancel.clone()
    }

    /// Creates an empty document.
    pub async fn create_doc(&self, name: &str) -> Result<DocInfo, Error> {
        let name = validate_name(name)?;
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
        Ok(room)
    }

    pub async fn list_docs(&self) -> Result<Vec<DocInfo>, Error> {
        Ok(self
            .inner
            .store
            .list_docs()
            .await?
            .iter()
            .map(DocInfo::from)
            .collect())
    }

    /// Finds a document by id, local name, or unique id prefix (in that order).
    pub async fn resolve(&self, query: &str) -> Result<DocMeta, Error> {
        let docs = self.inner.store.list_docs().await?;
        let q = query.trim();
        if let Some(m) = docs
            .iter()
            .find(|m| m.id.to_string() == q.to_ascii_lowercase())
        {
            return Ok(m.clone());
        }
        if let Some(m) = docs.iter().find(|m| m.name == q) {
            return Ok(m.clone());
        }
        let lower = q.to_ascii_lowercase();
        let matches: Vec<&DocMeta> = if lower.len() >= MIN_PREFIX_LEN {
            docs.iter()
                .filter(|m| m.id.to_string().starts_with(&lower))
                .collect()
        } else {
            Vec::new()
        };
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::UnknownDoc(query.to_string())),
            many => Err(Error::AmbiguousDoc(
                query.to_string(),
                many.iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    /// The room of a document (for editor sessions and tools).
    pub async fn room(&self, query: &str) -> Result<RoomHandle, Error> {
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
        let status = self.inner.net.status().await?;
        let mut addrs: Vec<Multiaddr> = status
            .listen_addrs
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        // Addresses other machines can use first; loopback last (same-machine peers only).
        addrs.sort_by_key(is_loopback);
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
        let wanted = validate_name(name.unwrap_or(&ticket.name)).or_else(|e| {
            // A sharer's name we cannot use locally is replaced, not an error.
            if name.is_some() {
                Err(e)
            } else {
                Ok("shared".to_string())
            }
        })?;
        let name = unique_name(&wanted, &docs);
        let timeout = self.inner.config.request_timeout;
        let reached = tokio::time::timeout(
            timeout,
            self.inner.net.dial(ticket.peer, ticket.addrs.clone()),
        )
        .await;
        match reached {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(Error::Unreachable {
                    peer: ticket.peer,
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(Error::Unreachable {
                    peer: ticket.peer,
                    reason: format!("no answer within {}s", timeout.as_secs()),
                })
            }
        }
        let meta = DocMeta {
            id: ticket.doc,
            name,
            key: ticket.key,
            created: unix_now(),
        };
        self.inner.store.create_doc(meta.clone()).await?;
        let room = match self.open_room(&meta).await {
            Ok(room) => room,
            Err(e) => {
                self.forget(&meta).await;
                return Err(e);
            }
        };
        let pulled =
            tokio::time::timeout(timeout, peer::pull(&self.inner.net, &room, ticket.peer)).await;
        let failure = match pulled {
            Ok(Ok(_)) => None,
            Ok(Err(PeerError::Pull {
                source: PullError::UnknownDoc,
                ..
            })) => Some(Error::NotShared),
            Ok(Err(e)) => Some(Error::JoinSync(e)),
            Err(_) => Some(Error::Unreachable {
                peer: ticket.peer,
                reason: format!("the sync did not finish within {}s", timeout.as_secs()),
            }),
        };
        if let Some(e) = failure {
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
        self.inner.syncer.opened(meta.id).await;
        Ok(DocInfo::from(&meta))
    }

    /// Closes and deletes a document's local replica (peers keep theirs).
    async fn forget(&self, meta: &DocMeta) {
        if let Some(room) = self.inner.rooms.remove(&meta.id) {
            room.close().await;
        }
        self.inner.net.unsubscribe(meta.id.topic_name()).await;
        if let Err(e) = self.inner.store.delete_doc(meta.id).await {
            tracing::error!(doc = %meta.id, "could not delete: {e}");
        }
    }

    pub async fn rename(&self, query: &str, new_name: &str) -> Result<DocInfo, Error> {
        let mut meta = self.resolve(query).await?;
        let name = validate_name(new_name)?;
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
        Ok(self
            .inner
            .net
            .status()
            .await?
            .connected
            .into_iter()
            .map(PeerStatus::from)
            .collect())
    }

    pub async fn status(&self) -> Result<Status, Error> {
        let net = self.inner.net.status().await?;
        let mut sync = self.inner.syncer.status().await;
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
                    .map(DocPeer::from)
                    .collect(),
            })
            .collect();
        Ok(Status {
            peer_id: net.peer_id,
            data_dir: self.inner.config.data_dir.display().to_string(),
            http: self.http_addr().map(|a| a.to_string()),
            listen_addrs: net.listen_addrs,
            connected_peers: net.connected.into_iter().map(PeerStatus::from).collect(),
            docs,
        })
    }
}

impl Inner {
    fn tasks_push(&self, task: JoinHandle<()>) {
        lock_mutex(&self.tasks).push(task);
    }
}

fn lock_mutex<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn validate_name(name: &str) -> Result<String, Error> {
    let trimmed = name.trim();
    let bad = |why| Err(Error::BadName(name.to_string(), why));
    if trimmed.is_empty() {
        return bad("it is empty");
    }
    if trimmed.len() > MAX_NAME_LEN {
        return bad("it is longer than 200 bytes");
    }
    if trimmed.chars().any(|c| c.is_control()) {
        return bad("it contains control characters");
    }
    if DocId::parse(trimmed).is_ok() {
        return bad("it looks like a document id");
    }
    Ok(trimmed.to_string())
}

/// `name`, or `name-2`, `name-3`… if taken.
fn unique_name(name: &str, docs: &[DocMeta]) -> String {
    let taken = |n: &str| docs.iter().any(|m| m.name == n);
    if !taken(name) {
        return name.to_string();
    }
    (2..)
        .map(|i| format!("{name}-{i}"))
        .find(|n| !taken(n))
        .expect("some suffix is free")
}

fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
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

fn load_or_create_identity(path: &std::path::Path) -> Result<Keypair, Error> {
    match std::fs::read(path) {
        Ok(bytes) => {
            Keypair::from_protobuf_encoding(&bytes).map_err(|_| Error::Identity(path.to_path_buf()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair
                .to_protobuf_encoding()
                .map_err(|_| Error::Identity(path.to_path_buf()))?;
            write_private(path, &bytes).map_err(|source| Error::DataDir {
                path: path.to_path_buf(),
                source,
            })?;
            Ok(keypair)
        }
        Err(source) => Err(Error::DataDir {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

const STICKY_TCP: &str = "listen_tcp_port";
const STICKY_QUIC: &str = "listen_quic_port";

/// Starts the network. Without explicit `--listen`, reuses last run's ports when free.
async fn start_net(
    config: &Config,
    store: &Store,
    keypair: Keypair,
    cancel: CancellationToken,
) -> Result<(Net, mpsc::Receiver<crate::net::NetEvent>, JoinHandle<()>), Error> {
    let net_config = |listen| NetConfig {
        listen,
        mdns: config.mdns,
        request_timeout: config.request_timeout,
        idle_timeout: Duration::from_secs(120),
    };
    if !config.listen.is_empty() {
        return Ok(Net::spawn(keypair, net_config(config.listen.clone()), cancel).await?);
    }
    let port = |key| async move {
        store
            .get_meta(key)
            .await
            .ok()
            .flatten()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(0)
    };
    let defaults = |tcp: u16, quic: u16| -> Vec<Multiaddr> {
        vec![
            format!("/ip4/0.0.0.0/tcp/{tcp}").parse().expect("valid"),
            format!("/ip4/0.0.0.0/udp/{quic}/quic-v1")
                .parse()
                .expect("valid"),
        ]
    };
    let (tcp, quic) = (port(STICKY_TCP).await, port(STICKY_QUIC).await);
    let started = match Net::spawn(
        keypair.clone(),
        net_config(defaults(tcp, quic)),
        cancel.clone(),
    )
    .await
    {
        Ok(started) => started,
        Err(NetError::Listen { .. }) if tcp != 0 || quic != 0 => {
            Net::spawn(keypair, net_config(defaults(0, 0)), cancel).await?
        }
        Err(e) => return Err(e.into()),
    };
    // One port per transport (every interface address of a listener shares it).
    let mut ports = std::collections::BTreeMap::new();
    for addr in started.0.status().await?.listen_addrs {
        for p in addr.parse::<Multiaddr>().iter().flat_map(|a| a.iter()) {
            match p {
                Protocol::Tcp(port) => ports.insert(STICKY_TCP, port),
                Protocol::Udp(port) => ports.insert(STICKY_QUIC, port),
                _ => None,
            };
        }
    }
    for (key, port) in ports {
        if let Err(e) = store.set_meta(key, port.to_string()).await {
            tracing::debug!("cannot remember listen port: {e}");
        }
    }
    Ok(started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_and_made_unique() {
        assert!(validate_name("  ").is_err());
        assert!(validate_name("a\u{7}b").is_err());
        assert!(validate_name(&"x".repeat(201)).is_err());
        assert!(validate_name(&DocId::random().to_string()).is_err());
        assert_eq!(validate_name(" notes ").unwrap(), "notes");
        let meta = |name: &str| DocMeta {
            id: DocId::random(),
            name: name.into(),
            key: DocKey::random(),
            created: 0,
        };
        let docs = vec![meta("notes"), meta("notes-2")];
        assert_eq!(unique_name("notes", &docs), "notes-3");
        assert_eq!(unique_name("todo", &docs), "todo");
    }

    #[test]
    fn bootstrap_addresses_need_a_peer_id() {
        let peer = PeerId::random();
        let with: Multiaddr = format!("/ip4/127.0.0.1/tcp/1/p2p/{peer}").parse().unwrap();
        assert_eq!(split_peer_addr(&with).unwrap().0, peer);
        assert!(split_peer_addr(&"/ip4/127.0.0.1/tcp/1".parse().unwrap()).is_none());
    }
}
