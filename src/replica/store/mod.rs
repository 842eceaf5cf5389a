//! SQLite persistence, and the only place that touches the database. One writer thread owns
//! the connection; [`Store`] handles send it commands over a bounded channel. Commands that
//! arrive together are committed in one transaction (group commit) with `synchronous=FULL`, and
//! each caller hears back only after its commit is durable. The statements are in [`sql`].
//!
//! Tables (schema version in `PRAGMA user_version`): `docs` (id, name, key, owner), `updates`
//! (append-only log per doc), `snapshots` (compacted log prefix per doc, with the state vector
//! and digest of the state it holds), `certs` (each
//! document's membership certificates), `epoch_keys` (content keys of later epochs), `peers`
//! (known addresses), `pending_joins` (tickets of joins waiting for a member), `names` (each
//! document's members' signed display names, the newest per member), `meta` (small key/value
//! settings: this node's own signed name), `blobs` and `blob_docs` (attachments kept here and
//! the documents they are attached to).

use std::collections::HashMap;
use std::path::Path;
use std::thread;

use prometheus_client::metrics::histogram::Histogram;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::actor::ask;
use crate::core::access::KeyBytes;
use crate::core::doc::{DocId, Summary};
use crate::core::envelope::DocKey;

mod blobs;
mod error;
mod held;
mod schema;
mod sql;

pub(crate) use sql::blobs::BlobRow;
pub(crate) use sql::held::{HeldDoc, HeldKey, HeldLimits, HolderRow, SnapshotPart};

pub use error::{CommitFailure, StoreError};

/// Most commands committed in one transaction.
const MAX_BATCH: usize = 256;
/// Commands waiting for the writer thread.
const COMMAND_QUEUE: usize = 1024;

/// A document's stored metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocMeta {
    pub id: DocId,
    pub name: String,
    pub key: DocKey,
    /// Unix seconds.
    pub created: i64,
    /// The owner's Ed25519 key: the root of the document's membership.
    pub owner: KeyBytes,
    /// The epoch of `key` (0 for the creator; a later one for a ticket made after a removal).
    pub key_epoch: u32,
}

/// A document's footprint in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DocStats {
    /// Bytes of its snapshot and log (sealed keys and certificates not counted).
    pub bytes: u64,
    /// Unix seconds of the last change this node stored (its creation or join, before any).
    pub changed: i64,
    /// A rich document (as its content said when this node learnt it: see `Store::set_rich`).
    pub rich: bool,
}

/// What is needed to rebuild a document: snapshot first, then the log after it.
#[derive(Debug, Default)]
pub(crate) struct StoredDoc {
    pub snapshot: Option<Vec<u8>>,
    pub updates: Vec<Vec<u8>>,
    /// Sequence number of the last log entry (0 if none): compaction covers up to here.
    pub last_seq: i64,
}

/// What a room opens with, before (and without) loading its document.
#[derive(Debug, Default)]
pub(crate) struct StoredAccess {
    /// Encoded membership certificates and key grants.
    pub certs: Vec<Vec<u8>>,
    /// Encoded display-name records of members.
    pub names: Vec<Vec<u8>>,
    /// Content keys of epochs after the first (the first is `DocMeta::key`).
    pub keys: Vec<(u32, [u8; 32])>,
    /// As in [`StoredDoc::last_seq`].
    pub last_seq: i64,
    /// Log entries after the snapshot.
    pub pending_log: usize,
    /// Bytes stored for the document (snapshot and log).
    pub stored_bytes: usize,
    /// Anything is stored besides the empty document.
    pub has_content: bool,
    /// The snapshot's state vector and digest, when no log entry came after it: the
    /// document's current state without loading it.
    pub summary: Option<Summary>,
}

impl StoredDoc {
    /// Every stored update in the order to apply them: the snapshot, then the log.
    pub(crate) fn in_order(&self) -> impl Iterator<Item = &[u8]> {
        self.snapshot
            .iter()
            .chain(self.updates.iter())
            .map(Vec::as_slice)
    }
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// The outcome of a queued append: its sequence number once durable (see
/// [`Store::append_queued`]). A dropped sender means the store shut down.
pub(crate) type Commit = oneshot::Receiver<Result<i64, StoreError>>;

/// What the writer thread is asked: a database command, or control of the thread itself.
enum Command {
    Sql(Sql),
    /// Test hook: cap the database size (`PRAGMA max_page_count`), so writes fail as on a
    /// full disk.
    #[cfg(test)]
    LimitPages(Option<u32>, oneshot::Sender<()>),
    /// Test hook: the writer does nothing more until released (a slow disk).
    #[cfg(test)]
    Pause(oneshot::Receiver<()>),
    Close(oneshot::Sender<()>),
}

/// A database command: run in the writer's batch transaction, answered once it commits.
enum Sql {
    CreateDoc(DocMeta, Reply<()>),
    ListDocs(Reply<Vec<DocMeta>>),
    FindDocs(String, Reply<Vec<DocMeta>>),
    RenameDoc(DocId, String, Reply<()>),
    DeleteDoc(DocId, Reply<()>),
    Append(DocId, Vec<u8>, Reply<i64>),
    DocStats(Option<DocId>, Reply<HashMap<DocId, DocStats>>),
    SetRich(DocId, Reply<()>),
    Load(DocId, Reply<StoredDoc>),
    LoadAccess(DocId, Reply<StoredAccess>),
    Compact(DocId, Vec<u8>, i64, Summary, Reply<()>),
    /// A peer's addresses, seen at a Unix time; rows not seen for [`FORGET_PEERS_AFTER`] go.
    SavePeer(String, Vec<String>, i64, Reply<()>),
    KnownPeers(Reply<Vec<(String, Vec<String>)>>),
    /// Remembers a join's ticket until it completes (`None` forgets it).
    SetPendingJoin(DocId, Option<String>, Reply<()>),
    PendingJoins(Reply<Vec<(DocId, String)>>),
    AddCerts(DocId, Vec<Vec<u8>>, Reply<()>),
    AddKey(DocId, u32, [u8; 32], Reply<()>),
    /// Members' display-name records (member key, encoded record), each replacing the
    /// member's previous one.
    SaveNames(DocId, Vec<(KeyBytes, Vec<u8>)>, Reply<()>),
    /// A small setting (`None`: remove it).
    SetMeta(&'static str, Option<String>, Reply<()>),
    Meta(&'static str, Reply<Option<String>>),
    AdoptLegacy(KeyBytes, Reply<usize>),
    /// What holders keep, and what members know of their holders (`sql::held`).
    Held(sql::held::HeldSql),
    Blob(sql::blobs::BlobSql),
}

/// Cloneable handle to the store's writer thread.
#[derive(Clone)]
pub(crate) struct Store {
    tx: mpsc::Sender<Command>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and starts the writer thread.
    #[cfg(test)]
    pub(crate) fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_timed(path, None)
    }

    /// Opens (creating if needed) the database at `path` and starts the writer thread, which
    /// records each transaction's duration in `commit_time`.
    pub(crate) fn open_timed(
        path: &Path,
        commit_time: Option<Histogram>,
    ) -> Result<Store, StoreError> {
        let conn = schema::open_connection(path)?;
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        thread::Builder::new()
            .name("peerdoc-store".into())
            .spawn(move || writer(conn, rx, commit_time))
            .map_err(StoreError::Thread)?;
        Ok(Store { tx })
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Sql) -> Result<T, StoreError> {
        ask(&self.tx, |reply| Command::Sql(make(reply)))
            .await
            .ok_or(StoreError::Closed)?
    }

    pub(crate) async fn create_doc(&self, meta: DocMeta) -> Result<(), StoreError> {
        self.call(|r| Sql::CreateDoc(meta, r)).await
    }
    pub(crate) async fn list_docs(&self) -> Result<Vec<DocMeta>, StoreError> {
        self.call(Sql::ListDocs).await
    }
    /// The documents `query` may name (by id, name or id prefix), found by index lookups;
    /// `node::names::find` picks among them.
    pub(crate) async fn find_docs(&self, query: &str) -> Result<Vec<DocMeta>, StoreError> {
        let query = query.to_string();
        self.call(|r| Sql::FindDocs(query, r)).await
    }
    pub(crate) async fn rename_doc(&self, id: DocId, name: String) -> Result<(), StoreError> {
        self.call(|r| Sql::RenameDoc(id, name, r)).await
    }
    pub(crate) async fn delete_doc(&self, id: DocId) -> Result<(), StoreError> {
        self.call(|r| Sql::DeleteDoc(id, r)).await
    }
    /// Appends an update to the doc's log; returns its sequence number once durable.
    pub(crate) async fn append(&self, id: DocId, update: Vec<u8>) -> Result<i64, StoreError> {
        self.call(|r| Sql::Append(id, update, r)).await
    }
    /// Queues an update to append and returns at once (waiting only for queue space): the
    /// receiver hears its sequence number once it is durable. Appends commit in the order they
    /// were queued, so a room can go on with its next change while this one is fsynced, and
    /// one burst of changes shares one commit.
    pub(crate) async fn append_queued(
        &self,
        id: DocId,
        update: Vec<u8>,
    ) -> Result<Commit, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Sql(Sql::Append(id, update, reply)))
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }
    /// Records that a document is rich (its kind never changes back), for listings that do not
    /// load it.
    pub(crate) async fn set_rich(&self, id: DocId) -> Result<(), StoreError> {
        self.call(|r| Sql::SetRich(id, r)).await
    }
    /// Stored size and last change, of one document or (`None`) of all.
    pub(crate) async fn doc_stats(
        &self,
        id: Option<DocId>,
    ) -> Result<HashMap<DocId, DocStats>, StoreError> {
        self.call(|r| Sql::DocStats(id, r)).await
    }
    pub(crate) async fn load(&self, id: DocId) -> Result<StoredDoc, StoreError> {
        self.call(|r| Sql::Load(id, r)).await
    }
    /// Membership, keys and the log's extent, without the document.
    pub(crate) async fn load_access(&self, id: DocId) -> Result<StoredAccess, StoreError> {
        self.call(|r| Sql::LoadAccess(id, r)).await
    }
    /// Replaces the snapshot (with the `summary` of the state it holds) and drops log entries
    /// up to `upto` (inclusive), atomically.
    pub(crate) async fn compact(
        &self,
        id: DocId,
        snapshot: Vec<u8>,
        upto: i64,
        summary: Summary,
    ) -> Result<(), StoreError> {
        self.call(|r| Sql::Compact(id, snapshot, upto, summary, r))
            .await
    }
    pub(crate) async fn save_peer(
        &self,
        peer: String,
        addrs: Vec<String>,
    ) -> Result<(), StoreError> {
        self.save_peer_at(peer, addrs, unix_now()).await
    }
    /// [`Self::save_peer`] at a given Unix time.
    pub(crate) async fn save_peer_at(
        &self,
        peer: String,
        addrs: Vec<String>,
        seen_at: i64,
    ) -> Result<(), StoreError> {
        self.call(|r| Sql::SavePeer(peer, addrs, seen_at, r)).await
    }
    pub(crate) async fn known_peers(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.call(Sql::KnownPeers).await
    }
    /// Remembers the ticket of a join that waits for a member; `None` once it completed.
    pub(crate) async fn set_pending_join(
        &self,
        id: DocId,
        ticket: Option<String>,
    ) -> Result<(), StoreError> {
        self.call(|r| Sql::SetPendingJoin(id, ticket, r)).await
    }
    pub(crate) async fn pending_joins(&self) -> Result<Vec<(DocId, String)>, StoreError> {
        self.call(Sql::PendingJoins).await
    }
    /// Stores certificates of a document (duplicates are ignored).
    pub(crate) async fn add_certs(&self, id: DocId, certs: Vec<Vec<u8>>) -> Result<(), StoreError> {
        self.call(|r| Sql::AddCerts(id, certs, r)).await
    }
    /// Stores the content key of a new epoch.
    pub(crate) async fn add_key(
        &self,
        id: DocId,
        epoch: u32,
        key: [u8; 32],
    ) -> Result<(), StoreError> {
        self.call(|r| Sql::AddKey(id, epoch, key, r)).await
    }
    /// Stores members' display-name records (member key, encoded record), each replacing the
    /// member's previous one.
    pub(crate) async fn save_names(
        &self,
        id: DocId,
        names: Vec<(KeyBytes, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        self.call(|r| Sql::SaveNames(id, names, r)).await
    }
    /// Stores a small setting (`None` removes it).
    pub(crate) async fn set_meta(
        &self,
        key: &'static str,
        value: Option<String>,
    ) -> Result<(), StoreError> {
        self.call(|r| Sql::SetMeta(key, value, r)).await
    }
    /// A small setting, if stored.
    pub(crate) async fn meta(&self, key: &'static str) -> Result<Option<String>, StoreError> {
        self.call(|r| Sql::Meta(key, r)).await
    }
    /// Makes `owner` the owner of documents stored before roles existed; returns how many.
    pub(crate) async fn adopt_legacy(&self, owner: KeyBytes) -> Result<usize, StoreError> {
        self.call(|r| Sql::AdoptLegacy(owner, r)).await
    }
    /// Test hook: from now on the database may grow by at most `extra_pages` (None: no limit).
    #[cfg(test)]
    pub(crate) async fn limit_pages(&self, extra_pages: Option<u32>) {
        let (done, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::LimitPages(extra_pages, done))
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }
    /// Test hook: commands queued from now on wait until the returned sender fires or drops.
    #[cfg(test)]
    pub(crate) async fn pause(&self) -> oneshot::Sender<()> {
        let (release, rx) = oneshot::channel();
        let _ = self.tx.send(Command::Pause(rx)).await;
        release
    }
    /// Finishes queued commands, then closes the database. Idempotent.
    pub(crate) async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Command::Close(done)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

fn writer(mut conn: Connection, mut rx: mpsc::Receiver<Command>, commit_time: Option<Histogram>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        let mut close = None;
        let started = std::time::Instant::now();
        let tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!("store: cannot begin a transaction: {e}");
                batch.clear();
                continue;
            }
        };
        // Replies wait until the commit succeeded, so "acknowledged" means "durable".
        let mut replies: Vec<sql::DeferredReply> = Vec::new();
        // SQLite rolls a transaction back by itself on some errors (a full disk): then nothing
        // of the batch may run on (it would run outside any transaction) and all of it fails.
        let mut aborted: Option<CommitFailure> = None;
        for cmd in batch.drain(..) {
            let sql = match cmd {
                Command::Sql(sql) => sql,
                Command::Close(done) => {
                    close = Some(done);
                    continue;
                }
                #[cfg(test)]
                Command::Pause(release) => {
                    let _ = release.blocking_recv();
                    continue;
                }
                #[cfg(test)]
                Command::LimitPages(limit, done) => {
                    let pages: u32 = tx
                        .query_row("PRAGMA page_count", [], |r| r.get(0))
                        .unwrap_or(1);
                    let max = limit.map_or(u32::MAX >> 1, |extra| pages + extra);
                    let _ = tx.pragma_update(None, "max_page_count", max);
                    let _ = done.send(());
                    continue;
                }
            };
            if aborted.is_some() {
                replies.push(sql::refuse(sql));
                continue;
            }
            let (reply, error) = sql::execute(&tx, sql);
            replies.push(reply);
            if tx.is_autocommit() {
                aborted = Some(error.unwrap_or_else(|| CommitFailure {
                    reason: "the database rolled the batch back".into(),
                    full: false,
                }));
            }
        }
        let failure = match aborted {
            Some(failure) => {
                drop(tx);
                tracing::error!(
                    "store: a write failed and nothing of its batch was stored: {}",
                    failure.reason
                );
                Some(failure)
            }
            None => tx
                .commit()
                .err()
                .map(|e| CommitFailure::of(&StoreError::Sqlite(e))),
        };
        if let Some(histogram) = &commit_time {
            histogram.observe(started.elapsed().as_secs_f64());
        }
        for reply in replies {
            reply(failure.as_ref());
        }
        if let Some(done) = close {
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
            drop(conn);
            let _ = done.send(());
            // Later commands see a closed channel.
            return;
        }
    }
}

/// A peer address not seen for this long (in seconds: 90 days) is forgotten: no more redials
/// of a laptop's address of last spring, and the table does not grow without end.
pub(crate) const FORGET_PEERS_AFTER: i64 = 90 * 24 * 3600;

pub(crate) fn unix_now() -> i64 {
    (unix_now_ms() / 1000) as i64
}

/// Unix time in milliseconds (what signed names and versions carry).
pub(crate) fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
impl DocMeta {
    /// A new document's metadata: random id and key, created now, owned by
    /// [`DocMeta::test_owner`].
    pub(crate) fn new_for_test(name: &str) -> DocMeta {
        DocMeta {
            id: DocId::random(),
            name: name.into(),
            key: DocKey::random(),
            created: unix_now(),
            owner: Self::test_owner().public().to_bytes(),
            key_epoch: 0,
        }
    }

    /// The identity that owns test documents.
    pub(crate) fn test_owner() -> libp2p::identity::ed25519::Keypair {
        let secret = libp2p::identity::ed25519::SecretKey::try_from_bytes([7u8; 32])
            .expect("32 bytes are a valid Ed25519 seed");
        libp2p::identity::ed25519::Keypair::from(secret)
    }
}

#[cfg(test)]
mod tests;
