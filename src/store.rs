//! SQLite persistence, and the only module that touches the database. One writer thread owns
//! the connection; [`Store`] handles send it commands over a bounded channel. Commands that
//! arrive together are committed in one transaction (group commit) with `synchronous=FULL`, and
//! each caller hears back only after its commit is durable.
//!
//! Tables (schema version in `PRAGMA user_version`): `docs` (id, name, key), `updates`
//! (append-only log per doc), `snapshots` (compacted log prefix per doc), `peers` (known
//! addresses), `meta` (small key/value settings such as sticky listen ports).

use std::path::{Path, PathBuf};
use std::thread;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use crate::actor::ask;
use crate::doc::DocId;
use crate::envelope::DocKey;

const SCHEMA_VERSION: i64 = 1;
/// Most commands committed in one transaction.
const MAX_BATCH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "database {path} is corrupt or not a peerdoc database ({source}); move it aside and \
         restart to begin empty, or restore it from a backup"
    )]
    Corrupt {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database {path} was written by a newer peerdoc (schema {found}); upgrade peerdoc")]
    TooNew { path: PathBuf, found: i64 },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a document named {0:?} already exists; choose another name")]
    NameTaken(String),
    #[error("document {0} already exists in this node")]
    DocExists(DocId),
    #[error("the store has shut down")]
    Closed,
}

/// A document's stored metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocMeta {
    pub id: DocId,
    pub name: String,
    pub key: DocKey,
    /// Unix seconds.
    pub created: i64,
}

/// What is needed to rebuild a document: snapshot first, then the log after it.
#[derive(Debug, Default)]
pub struct StoredDoc {
    pub snapshot: Option<Vec<u8>>,
    pub updates: Vec<Vec<u8>>,
    /// Sequence number of the last log entry (0 if none): compaction covers up to here.
    pub last_seq: i64,
}

impl StoredDoc {
    /// Every stored update in the order to apply them: the snapshot, then the log.
    pub fn in_order(&self) -> impl Iterator<Item = &[u8]> {
        self.snapshot
            .iter()
            .chain(self.updates.iter())
            .map(Vec::as_slice)
    }
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;
/// Sends a command's result once the batch's commit outcome (an error message, if it failed) is known.
type DeferredReply = Box<dyn FnOnce(Option<&str>)>;

enum Command {
    CreateDoc(DocMeta, Reply<()>),
    ListDocs(Reply<Vec<DocMeta>>),
    RenameDoc(DocId, String, Reply<()>),
    DeleteDoc(DocId, Reply<()>),
    Append(DocId, Vec<u8>, Reply<i64>),
    Load(DocId, Reply<StoredDoc>),
    Compact(DocId, Vec<u8>, i64, Reply<()>),
    SavePeer(String, Vec<String>, Reply<()>),
    KnownPeers(Reply<Vec<(String, Vec<String>)>>),
    GetMeta(String, Reply<Option<String>>),
    SetMeta(String, String, Reply<()>),
    Close(oneshot::Sender<()>),
}

/// Cloneable handle to the store's writer thread.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Command>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and starts the writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = open_connection(path)?;
        let (tx, rx) = mpsc::channel(1024);
        thread::Builder::new()
            .name("peerdoc-store".into())
            .spawn(move || writer(conn, rx))
            .map_err(|e| StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(e.into())))?;
        Ok(Store { tx })
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        ask(&self.tx, make).await.ok_or(StoreError::Closed)?
    }

    pub async fn create_doc(&self, meta: DocMeta) -> Result<(), StoreError> {
        self.call(|r| Command::CreateDoc(meta, r)).await
    }
    pub async fn list_docs(&self) -> Result<Vec<DocMeta>, StoreError> {
        self.call(Command::ListDocs).await
    }
    pub async fn rename_doc(&self, id: DocId, name: String) -> Result<(), StoreError> {
        self.call(|r| Command::RenameDoc(id, name, r)).await
    }
    pub async fn delete_doc(&self, id: DocId) -> Result<(), StoreError> {
        self.call(|r| Command::DeleteDoc(id, r)).await
    }
    /// Appends an update to the doc's log; returns its sequence number once durable.
    pub async fn append(&self, id: DocId, update: Vec<u8>) -> Result<i64, StoreError> {
        self.call(|r| Command::Append(id, update, r)).await
    }
    pub async fn load(&self, id: DocId) -> Result<StoredDoc, StoreError> {
        self.call(|r| Command::Load(id, r)).await
    }
    /// Replaces the snapshot and drops log entries up to `upto` (inclusive), atomically.
    pub async fn compact(&self, id: DocId, snapshot: Vec<u8>, upto: i64) -> Result<(), StoreError> {
        self.call(|r| Command::Compact(id, snapshot, upto, r)).await
    }
    pub async fn save_peer(&self, peer: String, addrs: Vec<String>) -> Result<(), StoreError> {
        self.call(|r| Command::SavePeer(peer, addrs, r)).await
    }
    pub async fn known_peers(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.call(Command::KnownPeers).await
    }
    pub async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_string();
        self.call(|r| Command::GetMeta(key, r)).await
    }
    pub async fn set_meta(&self, key: &str, value: String) -> Result<(), StoreError> {
        let key = key.to_string();
        self.call(|r| Command::SetMeta(key, value, r)).await
    }

    /// Finishes queued commands, then closes the database. Idempotent.
    pub async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Command::Close(done)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let corrupt = |source| StoreError::Corrupt {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(corrupt)?;
    // The first statements are where a damaged or foreign file shows itself.
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(corrupt)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(corrupt)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
        });
    }
    if version == 0 {
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS docs (
                 id BLOB PRIMARY KEY, name TEXT NOT NULL UNIQUE, key BLOB NOT NULL,
                 created INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS updates (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 doc BLOB NOT NULL REFERENCES docs(id) ON DELETE CASCADE, data BLOB NOT NULL);
             CREATE INDEX IF NOT EXISTS updates_by_doc ON updates(doc, seq);
             CREATE TABLE IF NOT EXISTS snapshots (
                 doc BLOB PRIMARY KEY REFERENCES docs(id) ON DELETE CASCADE,
                 data BLOB NOT NULL, upto INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS peers (
                 peer TEXT NOT NULL, addr TEXT NOT NULL, last_seen INTEGER NOT NULL,
                 PRIMARY KEY (peer, addr));
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             PRAGMA user_version = 1;
             COMMIT;",
        )
        .map_err(corrupt)?;
    }
    // A table missing from a file that claims our schema is damage too.
    conn.query_row("SELECT count(*) FROM docs", [], |r| r.get::<_, i64>(0))
        .map_err(corrupt)?;
    Ok(conn)
}

fn writer(mut conn: Connection, mut rx: mpsc::Receiver<Command>) {
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
        let tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!("store: cannot begin a transaction: {e}");
                batch.clear();
                continue;
            }
        };
        // Replies wait until the commit succeeded, so "acknowledged" means "durable".
        let mut replies: Vec<DeferredReply> = Vec::new();
        for cmd in batch.drain(..) {
            if let Command::Close(done) = cmd {
                close = Some(done);
                continue;
            }
            replies.push(execute(&tx, cmd));
        }
        let failure = tx.commit().err().map(|e| e.to_string());
        for reply in replies {
            reply(failure.as_deref());
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

/// Runs one command inside the batch transaction; returns how to reply once the commit is known.
fn execute(tx: &rusqlite::Transaction, cmd: Command) -> DeferredReply {
    fn finish<T: Send + 'static>(reply: Reply<T>, result: Result<T, StoreError>) -> DeferredReply {
        Box::new(move |commit_failure| {
            let result = match commit_failure {
                Some(e) => Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                    Some(format!("commit failed: {e}")),
                ))),
                None => result,
            };
            let _ = reply.send(result);
        })
    }
    match cmd {
        Command::CreateDoc(meta, r) => finish(r, create_doc(tx, &meta)),
        Command::ListDocs(r) => finish(r, list_docs(tx)),
        Command::RenameDoc(id, name, r) => {
            let result = tx
                .execute(
                    "UPDATE docs SET name = ?1 WHERE id = ?2",
                    params![name, &id.0[..]],
                )
                .map(|_| ())
                .map_err(|e| name_taken(e, &name));
            finish(r, result)
        }
        Command::DeleteDoc(id, r) => {
            let result = tx
                .execute("DELETE FROM docs WHERE id = ?1", params![&id.0[..]])
                .map(|_| ())
                .map_err(StoreError::from);
            finish(r, result)
        }
        Command::Append(id, data, r) => {
            let result = tx
                .execute(
                    "INSERT INTO updates (doc, data) VALUES (?1, ?2)",
                    params![&id.0[..], data],
                )
                .map(|_| tx.last_insert_rowid())
                .map_err(StoreError::from);
            finish(r, result)
        }
        Command::Load(id, r) => finish(r, load(tx, id)),
        Command::Compact(id, snapshot, upto, r) => {
            let result = tx
                .execute(
                    "INSERT INTO snapshots (doc, data, upto) VALUES (?1, ?2, ?3)
                     ON CONFLICT(doc) DO UPDATE SET data = excluded.data, upto = excluded.upto",
                    params![&id.0[..], snapshot, upto],
                )
                .and_then(|_| {
                    tx.execute(
                        "DELETE FROM updates WHERE doc = ?1 AND seq <= ?2",
                        params![&id.0[..], upto],
                    )
                })
                .map(|_| ())
                .map_err(StoreError::from);
            finish(r, result)
        }
        Command::SavePeer(peer, addrs, r) => {
            let now = unix_now();
            let result = addrs
                .iter()
                .try_for_each(|addr| {
                    tx.execute(
                        "INSERT INTO peers (peer, addr, last_seen) VALUES (?1, ?2, ?3)
                         ON CONFLICT(peer, addr) DO UPDATE SET last_seen = excluded.last_seen",
                        params![peer, addr, now],
                    )
                    .map(|_| ())
                })
                .map_err(StoreError::from);
            finish(r, result)
        }
        Command::KnownPeers(r) => finish(r, known_peers(tx)),
        Command::GetMeta(key, r) => {
            let result = tx
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(StoreError::from);
            finish(r, result)
        }
        Command::SetMeta(key, value, r) => {
            let result = tx
                .execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![key, value],
                )
                .map(|_| ())
                .map_err(StoreError::from);
            finish(r, result)
        }
        Command::Close(_) => unreachable!("handled by the writer loop"),
    }
}

fn name_taken(e: rusqlite::Error, name: &str) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::NameTaken(name.to_string())
        }
        e => StoreError::Sqlite(e),
    }
}

fn create_doc(tx: &rusqlite::Transaction, meta: &DocMeta) -> Result<(), StoreError> {
    let exists: bool = tx
        .query_row("SELECT 1 FROM docs WHERE id = ?1", [&meta.id.0[..]], |_| {
            Ok(true)
        })
        .optional()?
        .unwrap_or(false);
    if exists {
        return Err(StoreError::DocExists(meta.id));
    }
    tx.execute(
        "INSERT INTO docs (id, name, key, created) VALUES (?1, ?2, ?3, ?4)",
        params![&meta.id.0[..], meta.name, &meta.key.0[..], meta.created],
    )
    .map(|_| ())
    .map_err(|e| name_taken(e, &meta.name))
}

fn list_docs(tx: &rusqlite::Transaction) -> Result<Vec<DocMeta>, StoreError> {
    let mut stmt = tx.prepare("SELECT id, name, key, created FROM docs ORDER BY created, name")?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, Vec<u8>>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Vec<u8>>(2)?,
            row.get::<_, i64>(3)?,
        ))
    })?;
    let mut docs = Vec::new();
    for row in rows {
        let (id, name, key, created) = row?;
        // A row with wrong-sized blobs is damage; skip it loudly rather than fail every list.
        match (<[u8; 16]>::try_from(id), <[u8; 32]>::try_from(key)) {
            (Ok(id), Ok(key)) => docs.push(DocMeta {
                id: DocId(id),
                name,
                key: DocKey(key),
                created,
            }),
            _ => tracing::error!("store: skipping damaged docs row {name:?}"),
        }
    }
    Ok(docs)
}

fn load(tx: &rusqlite::Transaction, id: DocId) -> Result<StoredDoc, StoreError> {
    let snapshot: Option<(Vec<u8>, i64)> = tx
        .query_row(
            "SELECT data, upto FROM snapshots WHERE doc = ?1",
            [&id.0[..]],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let upto = snapshot.as_ref().map(|s| s.1).unwrap_or(0);
    let mut stmt =
        tx.prepare("SELECT seq, data FROM updates WHERE doc = ?1 AND seq > ?2 ORDER BY seq")?;
    let mut updates = Vec::new();
    let mut last_seq = upto;
    let rows = stmt.query_map(params![&id.0[..], upto], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
    })?;
    for row in rows {
        let (seq, data) = row?;
        last_seq = seq;
        updates.push(data);
    }
    Ok(StoredDoc {
        snapshot: snapshot.map(|s| s.0),
        updates,
        last_seq,
    })
}

fn known_peers(tx: &rusqlite::Transaction) -> Result<Vec<(String, Vec<String>)>, StoreError> {
    let mut stmt = tx.prepare("SELECT peer, addr FROM peers ORDER BY peer, last_seen DESC")?;
    let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))?;
    let mut peers: Vec<(String, Vec<String>)> = Vec::new();
    for row in rows {
        let (peer, addr) = row?;
        match peers.last_mut() {
            Some((p, addrs)) if *p == peer => addrs.push(addr),
            _ => peers.push((peer, vec![addr])),
        }
    }
    Ok(peers)
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str) -> DocMeta {
        DocMeta {
            id: DocId::random(),
            name: name.into(),
            key: DocKey::random(),
            created: unix_now(),
        }
    }

    #[tokio::test]
    async fn docs_updates_and_compaction_persist_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peerdoc.db");
        let store = Store::open(&path).unwrap();
        let m = meta("notes");
        store.create_doc(m.clone()).await.unwrap();
        assert!(matches!(
            store
                .create_doc(DocMeta {
                    id: DocId::random(),
                    ..m.clone()
                })
                .await,
            Err(StoreError::NameTaken(_))
        ));
        assert!(matches!(
            store.create_doc(m.clone()).await,
            Err(StoreError::DocExists(_))
        ));
        let s1 = store.append(m.id, b"one".to_vec()).await.unwrap();
        let s2 = store.append(m.id, b"two".to_vec()).await.unwrap();
        store.compact(m.id, b"snap".to_vec(), s1).await.unwrap();
        store
            .save_peer("p".into(), vec!["/ip4/1.2.3.4/tcp/1".into()])
            .await
            .unwrap();
        store.set_meta("k", "v".into()).await.unwrap();
        store.close().await;
        assert!(matches!(store.list_docs().await, Err(StoreError::Closed)));

        let store = Store::open(&path).unwrap();
        assert_eq!(store.list_docs().await.unwrap(), vec![m.clone()]);
        let loaded = store.load(m.id).await.unwrap();
        assert_eq!(loaded.snapshot.as_deref(), Some(&b"snap"[..]));
        assert_eq!(loaded.updates, vec![b"two".to_vec()]);
        assert_eq!(loaded.last_seq, s2);
        assert_eq!(store.known_peers().await.unwrap().len(), 1);
        assert_eq!(store.get_meta("k").await.unwrap().as_deref(), Some("v"));
        store.rename_doc(m.id, "renamed".into()).await.unwrap();
        store.delete_doc(m.id).await.unwrap();
        assert!(store.list_docs().await.unwrap().is_empty());
        assert!(
            store.load(m.id).await.unwrap().updates.is_empty(),
            "log cascades"
        );
    }

    #[tokio::test]
    async fn concurrent_appends_are_all_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let m = meta("d");
        store.create_doc(m.clone()).await.unwrap();
        let tasks: Vec<_> = (0..200u32)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.append(m.id, i.to_le_bytes().to_vec()).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(store.load(m.id).await.unwrap().updates.len(), 200);
    }

    #[test]
    fn garbage_file_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peerdoc.db");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let err = Store::open(&path).err().expect("must fail");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("move it aside"));
    }
}
