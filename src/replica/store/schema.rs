//! The store's database file: opening it (pragmas, checks) and its schema, migrated from any
//! earlier version. Only the writer thread holds the connection.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

const SCHEMA_VERSION: i64 = 8;
/// SQLite's page cache, in KiB (its default is 2000).
const CACHE_KIB: i64 = 256;

pub(super) fn open_connection(path: &Path) -> Result<Connection, StoreError> {
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
    // SQLite's page cache is memory no document needs: whole documents are read once when
    // loaded and then live in their rooms, and the OS caches the file anyway.
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
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
    if version < 2 {
        // Roles: a document's owner key (NULL for documents from before: the node adopts them
        // at start, see `Sql::AdoptLegacy`) and its certificates.
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE docs ADD COLUMN owner BLOB;
             ALTER TABLE docs ADD COLUMN key_epoch INTEGER NOT NULL DEFAULT 0;
             CREATE TABLE IF NOT EXISTS certs (
                 doc BLOB NOT NULL REFERENCES docs(id) ON DELETE CASCADE,
                 cert BLOB NOT NULL, PRIMARY KEY (doc, cert));
             CREATE TABLE IF NOT EXISTS epoch_keys (
                 doc BLOB NOT NULL REFERENCES docs(id) ON DELETE CASCADE,
                 epoch INTEGER NOT NULL, key BLOB NOT NULL, PRIMARY KEY (doc, epoch));
             PRAGMA user_version = 2;
             COMMIT;",
        )
        .map_err(corrupt)?;
    }
    if version < 3 {
        // Lazy opening: a snapshot keeps the state vector and digest of the state it holds,
        // so a node answers "nothing new" for an unloaded document without decoding it.
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE snapshots ADD COLUMN sv BLOB;
             ALTER TABLE snapshots ADD COLUMN digest BLOB;
             PRAGMA user_version = 3;
             COMMIT;",
        )
        .map_err(corrupt)?;
    }
    if version < 4 {
        // Joins waiting for a member (`peerdoc join --wait`): their tickets, until the join
        // completes or the document is deleted.
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS pending_joins (
                 doc BLOB PRIMARY KEY REFERENCES docs(id) ON DELETE CASCADE,
                 ticket TEXT NOT NULL);
             PRAGMA user_version = 4;
             COMMIT;",
        )
        .map_err(corrupt)?;
    }
    if version < 5 {
        // When this node last stored a change to each document (for `ls`; documents from
        // before count from their creation), and its kind (documents from before are plain).
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE docs ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;
             UPDATE docs SET changed = created;
             ALTER TABLE docs ADD COLUMN kind TEXT NOT NULL DEFAULT 'plain';
             PRAGMA user_version = 5;
             COMMIT;",
        )
        .map_err(corrupt)?;
    }
    if version < 6 {
        // Members' display names: the newest signed record of each member, per document.
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS names (
                 doc BLOB NOT NULL REFERENCES docs(id) ON DELETE CASCADE,
                 member BLOB NOT NULL, record BLOB NOT NULL, PRIMARY KEY (doc, member));
             PRAGMA user_version = 6;
             COMMIT;",
        )
        .map_err(corrupt)?;
    }
    if version < 7 {
        // Holders: the documents this node keeps sealed for others (`held*`), and what this
        // node knows of the holders of its own documents (`holders`).
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS held (
                 topic BLOB NOT NULL, owner BLOB NOT NULL, doc BLOB NOT NULL,
                 created INTEGER NOT NULL, next INTEGER NOT NULL DEFAULT 0,
                 bytes INTEGER NOT NULL DEFAULT 0, last_write INTEGER NOT NULL DEFAULT 0,
                 base INTEGER NOT NULL DEFAULT 0, incarnation INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (topic, owner));
             CREATE TABLE IF NOT EXISTS held_records (
                 topic BLOB NOT NULL, owner BLOB NOT NULL, kind INTEGER NOT NULL,
                 record BLOB NOT NULL, PRIMARY KEY (topic, owner, kind, record),
                 FOREIGN KEY (topic, owner) REFERENCES held ON DELETE CASCADE);
             CREATE TABLE IF NOT EXISTS held_entries (
                 topic BLOB NOT NULL, owner BLOB NOT NULL, offset INTEGER NOT NULL,
                 uploader BLOB NOT NULL, entry BLOB NOT NULL,
                 PRIMARY KEY (topic, owner, offset),
                 FOREIGN KEY (topic, owner) REFERENCES held ON DELETE CASCADE);
             CREATE TABLE IF NOT EXISTS held_snapshots (
                 topic BLOB NOT NULL, owner BLOB NOT NULL, pending INTEGER NOT NULL,
                 uploader BLOB NOT NULL, covers INTEGER NOT NULL, part INTEGER NOT NULL,
                 parts INTEGER NOT NULL, entry BLOB NOT NULL,
                 PRIMARY KEY (topic, owner, pending, uploader, covers, part),
                 FOREIGN KEY (topic, owner) REFERENCES held ON DELETE CASCADE);
             CREATE TABLE IF NOT EXISTS holders (
                 doc BLOB NOT NULL REFERENCES docs(id) ON DELETE CASCADE,
                 peer TEXT NOT NULL, cursor INTEGER NOT NULL DEFAULT 0, known BLOB,
                 reached INTEGER NOT NULL DEFAULT 0, head INTEGER NOT NULL DEFAULT 0,
                 bytes INTEGER NOT NULL DEFAULT 0, last_write INTEGER NOT NULL DEFAULT 0,
                 incarnation INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (doc, peer));
             PRAGMA user_version = 7;
             COMMIT;",
        )
        .map_err(corrupt)?;
    }
    if version < 8 {
        // Attachments: the blobs this node keeps (their bytes are files beside the database)
        // and the documents (by topic and owner, as the network names them) each is attached
        // to.
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS blobs (
                 hash BLOB PRIMARY KEY, size INTEGER NOT NULL, have BLOB NOT NULL,
                 complete INTEGER NOT NULL, added INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS blob_docs (
                 hash BLOB NOT NULL REFERENCES blobs(hash) ON DELETE CASCADE,
                 topic BLOB NOT NULL, owner BLOB NOT NULL,
                 PRIMARY KEY (hash, topic, owner));
             CREATE INDEX IF NOT EXISTS blob_docs_by_doc ON blob_docs(topic, owner);
             PRAGMA user_version = 8;
             COMMIT;",
        )
        .map_err(corrupt)?;
    }
    // A table missing from a file that claims our schema is damage too.
    conn.query_row("SELECT count(*) FROM docs", [], |r| r.get::<_, i64>(0))
        .map_err(corrupt)?;
    Ok(conn)
}
