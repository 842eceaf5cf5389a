//! The SQL of the store: each command run inside the writer's batch transaction (the schema
//! and its migrations: `schema.rs`). Only the writer thread calls these.

use rusqlite::{params, OptionalExtension};

use super::{
    CommitFailure, DocMeta, Reply, Sql, StoreError, StoredAccess, StoredDoc, FORGET_PEERS_AFTER,
};
use crate::core::doc::{DocId, Summary};
pub(super) mod blobs;
mod docs;
pub(super) mod held;
use docs::{doc_stats, find_docs, list_docs};

/// Sends a command's result once the batch's commit outcome (an error message, if it failed)
/// is known.
pub(super) type DeferredReply = Box<dyn FnOnce(Option<&CommitFailure>)>;

/// How to reply with `result` once the batch's commit outcome is known, and its error.
pub(super) fn finish<T: Send + 'static>(
    reply: Reply<T>,
    result: Result<T, StoreError>,
) -> (DeferredReply, Option<CommitFailure>) {
    let error = result.as_ref().err().map(CommitFailure::of);
    let reply: DeferredReply = Box::new(move |commit_failure| {
        let result = match commit_failure {
            Some(failure) => Err(StoreError::Commit(failure.clone())),
            None => result,
        };
        let _ = reply.send(result);
    });
    (reply, error)
}

/// A command's reply when its batch failed before it ran.
pub(super) fn fail<T: Send + 'static>(reply: Reply<T>) -> DeferredReply {
    Box::new(move |failure| {
        let failure = failure.cloned().unwrap_or_else(|| CommitFailure {
            reason: "the batch was rolled back".into(),
            full: false,
        });
        let _ = reply.send(Err(StoreError::Commit(failure)));
    })
}

/// Runs one command inside the batch transaction; returns how to reply once the commit is
/// known, and the command's own error, if any.
pub(super) fn execute(
    tx: &rusqlite::Transaction,
    cmd: Sql,
) -> (DeferredReply, Option<CommitFailure>) {
    match cmd {
        Sql::Held(held) => held.execute(tx),
        Sql::Blob(blob) => blob.execute(tx),
        Sql::CreateDoc(meta, r) => finish(r, create_doc(tx, &meta)),
        Sql::ListDocs(r) => finish(r, list_docs(tx)),
        Sql::FindDocs(query, r) => finish(r, find_docs(tx, &query)),
        Sql::RenameDoc(id, name, r) => {
            let result = tx
                .execute(
                    "UPDATE docs SET name = ?1 WHERE id = ?2",
                    params![name, &id.0[..]],
                )
                .map(|_| ())
                .map_err(|e| name_taken(e, &name));
            finish(r, result)
        }
        Sql::DeleteDoc(id, r) => {
            let result = tx
                .execute("DELETE FROM docs WHERE id = ?1", params![&id.0[..]])
                .map(|_| ())
                .map_err(StoreError::from);
            finish(r, result)
        }
        Sql::Append(id, data, r) => {
            let result = tx
                .execute(
                    "INSERT INTO updates (doc, data) VALUES (?1, ?2)",
                    params![&id.0[..], data],
                )
                .map(|_| tx.last_insert_rowid())
                .and_then(|seq| {
                    tx.execute(
                        // At most one row write a second per document, whatever the
                        // number of appends in a batch.
                        "UPDATE docs SET changed = unixepoch() WHERE id = ?1 AND changed < unixepoch()",
                        params![&id.0[..]],
                    )
                    .map(|_| seq)
                })
                .map_err(StoreError::from);
            finish(r, result)
        }
        Sql::DocStats(id, r) => finish(r, doc_stats(tx, id)),
        Sql::SetRich(id, r) => {
            let result = tx
                .execute(
                    "UPDATE docs SET kind = 'rich' WHERE id = ?1",
                    params![&id.0[..]],
                )
                .map(|_| ())
                .map_err(StoreError::from);
            finish(r, result)
        }
        Sql::Load(id, r) => finish(r, load(tx, id)),
        Sql::LoadAccess(id, r) => finish(r, load_access(tx, id)),
        Sql::Compact(id, snapshot, upto, summary, r) => {
            let result = tx
                .execute(
                    "INSERT INTO snapshots (doc, data, upto, sv, digest) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(doc) DO UPDATE SET data = excluded.data, upto = excluded.upto,
                         sv = excluded.sv, digest = excluded.digest",
                    params![&id.0[..], snapshot, upto, summary.sv, &summary.digest[..]],
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
        Sql::SavePeer(peer, addrs, now, r) => {
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
                .and_then(|()| {
                    tx.execute(
                        "DELETE FROM peers WHERE last_seen < ?1",
                        params![now - FORGET_PEERS_AFTER],
                    )
                    .map(|_| ())
                })
                .map_err(StoreError::from);
            finish(r, result)
        }
        Sql::KnownPeers(r) => finish(r, known_peers(tx)),
        Sql::SetPendingJoin(id, ticket, r) => {
            let result = match ticket {
                Some(ticket) => tx.execute(
                    "INSERT OR REPLACE INTO pending_joins (doc, ticket) VALUES (?1, ?2)",
                    params![&id.0[..], ticket],
                ),
                None => tx.execute(
                    "DELETE FROM pending_joins WHERE doc = ?1",
                    params![&id.0[..]],
                ),
            };
            finish(r, result.map(|_| ()).map_err(StoreError::from))
        }
        Sql::PendingJoins(r) => finish(r, pending_joins(tx)),
        Sql::AddCerts(id, certs, r) => {
            let result = certs
                .iter()
                .try_for_each(|cert| {
                    tx.execute(
                        "INSERT OR IGNORE INTO certs (doc, cert) VALUES (?1, ?2)",
                        params![&id.0[..], cert],
                    )
                    .map(|_| ())
                })
                .map_err(StoreError::from);
            finish(r, result)
        }
        Sql::AddKey(id, epoch, key, r) => {
            let result = tx
                .execute(
                    "INSERT OR IGNORE INTO epoch_keys (doc, epoch, key) VALUES (?1, ?2, ?3)",
                    params![&id.0[..], epoch, &key[..]],
                )
                .map(|_| ())
                .map_err(StoreError::from);
            finish(r, result)
        }
        Sql::SaveNames(id, names, r) => {
            let result = names
                .iter()
                .try_for_each(|(member, record)| {
                    tx.execute(
                        "INSERT OR REPLACE INTO names (doc, member, record) VALUES (?1, ?2, ?3)",
                        params![&id.0[..], &member[..], record],
                    )
                    .map(|_| ())
                })
                .map_err(StoreError::from);
            finish(r, result)
        }
        Sql::SetMeta(key, value, r) => {
            let result = match value {
                Some(value) => tx.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                    params![key, value],
                ),
                None => tx.execute("DELETE FROM meta WHERE key = ?1", params![key]),
            };
            finish(r, result.map(|_| ()).map_err(StoreError::from))
        }
        Sql::Meta(key, r) => {
            let result = tx
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(StoreError::from);
            finish(r, result)
        }
        Sql::AdoptLegacy(owner, r) => {
            let result = tx
                .execute(
                    "UPDATE docs SET owner = ?1 WHERE owner IS NULL",
                    params![&owner[..]],
                )
                .map_err(StoreError::from);
            finish(r, result)
        }
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
        "INSERT INTO docs (id, name, key, created, owner, key_epoch, changed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?4)",
        params![
            &meta.id.0[..],
            meta.name,
            &meta.key.0[..],
            meta.created,
            &meta.owner[..],
            meta.key_epoch
        ],
    )
    .map(|_| ())
    .map_err(|e| name_taken(e, &meta.name))
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

/// What a room needs to open without its document: membership, keys, the log's extent, and
/// the snapshot's summary if nothing was logged after it.
fn load_access(tx: &rusqlite::Transaction, id: DocId) -> Result<StoredAccess, StoreError> {
    type SnapshotRow = (i64, i64, Option<Vec<u8>>, Option<Vec<u8>>);
    let snapshot: Option<SnapshotRow> = tx
        .query_row(
            "SELECT upto, length(data), sv, digest FROM snapshots WHERE doc = ?1",
            [&id.0[..]],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    let (upto, snapshot_bytes) = snapshot.as_ref().map_or((0, 0), |s| (s.0, s.1));
    let (pending_log, last_seq, log_bytes): (i64, i64, i64) = tx.query_row(
        "SELECT count(*), coalesce(max(seq), ?2), coalesce(sum(length(data)), 0)
         FROM updates WHERE doc = ?1 AND seq > ?2",
        params![&id.0[..], upto],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    let has_content = snapshot.is_some() || pending_log > 0;
    let summary = match snapshot {
        Some((_, _, Some(sv), Some(digest))) if pending_log == 0 => <[u8; 32]>::try_from(digest)
            .ok()
            .map(|digest| Summary { sv, digest }),
        _ => None,
    };
    let mut stmt = tx.prepare("SELECT cert FROM certs WHERE doc = ?1")?;
    let certs = stmt
        .query_map([&id.0[..]], |row| row.get::<_, Vec<u8>>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = tx.prepare("SELECT record FROM names WHERE doc = ?1")?;
    let names = stmt
        .query_map([&id.0[..]], |row| row.get::<_, Vec<u8>>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = tx.prepare("SELECT epoch, key FROM epoch_keys WHERE doc = ?1")?;
    let mut keys = Vec::new();
    let rows = stmt.query_map([&id.0[..]], |row| {
        Ok((row.get::<_, u32>(0)?, row.get::<_, Vec<u8>>(1)?))
    })?;
    for row in rows {
        let (epoch, key) = row?;
        match <[u8; 32]>::try_from(key) {
            Ok(key) => keys.push((epoch, key)),
            Err(_) => tracing::error!(doc = %id, epoch, "store: skipping a damaged key"),
        }
    }
    Ok(StoredAccess {
        certs,
        names,
        keys,
        last_seq,
        pending_log: pending_log as usize,
        stored_bytes: (snapshot_bytes + log_bytes) as usize,
        has_content,
        summary,
    })
}

fn pending_joins(tx: &rusqlite::Transaction) -> Result<Vec<(DocId, String)>, StoreError> {
    let mut stmt = tx.prepare("SELECT doc, ticket FROM pending_joins")?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut joins = Vec::new();
    for row in rows {
        let (doc, ticket) = row?;
        // Ids are written by this code only; a row of another length is skipped, not fatal.
        if let Ok(id) = <[u8; 16]>::try_from(doc.as_slice()) {
            joins.push((DocId(id), ticket));
        }
    }
    Ok(joins)
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

/// A command that is not run because the batch's transaction is already gone: it fails with the
/// batch's failure.
pub(super) fn refuse(cmd: Sql) -> DeferredReply {
    match cmd {
        Sql::Held(held) => held.refuse(),
        Sql::Blob(blob) => blob.refuse(),
        Sql::CreateDoc(_, r) | Sql::RenameDoc(_, _, r) | Sql::DeleteDoc(_, r) => fail(r),
        Sql::Compact(_, _, _, _, r) | Sql::SavePeer(_, _, _, r) => fail(r),
        Sql::AddCerts(_, _, r) | Sql::AddKey(_, _, _, r) => fail(r),
        Sql::SaveNames(_, _, r) | Sql::SetMeta(_, _, r) => fail(r),
        Sql::Meta(_, r) => fail(r),
        Sql::ListDocs(r) | Sql::FindDocs(_, r) => fail(r),
        Sql::Append(_, _, r) => fail(r),
        Sql::DocStats(_, r) => fail(r),
        Sql::SetRich(_, r) => fail(r),
        Sql::Load(_, r) => fail(r),
        Sql::LoadAccess(_, r) => fail(r),
        Sql::KnownPeers(r) => fail(r),
        Sql::SetPendingJoin(_, _, r) => fail(r),
        Sql::PendingJoins(r) => fail(r),
        Sql::AdoptLegacy(_, r) => fail(r),
    }
}
