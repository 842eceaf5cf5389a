//! The store's part of attachments: which blobs this node keeps (`blobs`: size, the pieces it
//! has verified and made durable, whether it is complete) and which documents each is attached
//! to (`blob_docs`, by topic: only members of those documents are served it). The bytes live
//! in files beside the database (`replica::blobs::files`).

use rusqlite::{params, OptionalExtension};

use super::{fail, finish, DeferredReply};
use crate::core::blob::BlobHash;
use crate::replica::store::{CommitFailure, Reply, StoreError};

/// A blob as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobRow {
    pub(crate) hash: BlobHash,
    pub(crate) size: u64,
    /// The pieces verified and durable (a `core::blob::Bitmap`'s bytes).
    pub(crate) have: Vec<u8>,
    pub(crate) complete: bool,
    /// Unix seconds when this node first kept (a part of) it.
    pub(crate) added: i64,
}

pub(crate) enum BlobSql {
    Get(BlobHash, Reply<Option<BlobRow>>),
    /// The blob if it is attached to the document of this topic.
    Attached(BlobHash, [u8; 32], Reply<Option<BlobRow>>),
    /// Keeps a blob's row (its pieces and completeness) and attaches it to a topic.
    Put(BlobRow, [u8; 32], Reply<()>),
    /// The blobs attached to a topic.
    List([u8; 32], Reply<Vec<BlobRow>>),
    /// Every blob, with the topics it is attached to.
    All(Reply<Vec<(BlobRow, Vec<[u8; 32]>)>>),
    /// Forgets a blob (its files are the caller's).
    Delete(BlobHash, Reply<()>),
}

const COLUMNS: &str = "hash, size, have, complete, added";

fn row(r: &rusqlite::Row) -> rusqlite::Result<BlobRow> {
    let hash: Vec<u8> = r.get(0)?;
    let hash = <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, "hash".into())
    })?;
    Ok(BlobRow {
        hash: BlobHash(hash),
        size: r.get::<_, i64>(1)? as u64,
        have: r.get(2)?,
        complete: r.get(3)?,
        added: r.get(4)?,
    })
}

impl BlobSql {
    pub(super) fn execute(
        self,
        tx: &rusqlite::Transaction,
    ) -> (DeferredReply, Option<CommitFailure>) {
        match self {
            BlobSql::Get(hash, r) => finish(r, get(tx, hash)),
            BlobSql::Attached(hash, topic, r) => {
                let result = tx
                    .query_row(
                        &format!(
                            "SELECT {COLUMNS} FROM blobs WHERE hash = ?1 AND EXISTS
                             (SELECT 1 FROM blob_docs WHERE hash = ?1 AND topic = ?2)"
                        ),
                        params![&hash.0[..], &topic[..]],
                        row,
                    )
                    .optional()
                    .map_err(StoreError::from);
                finish(r, result)
            }
            BlobSql::Put(blob, topic, r) => finish(r, put(tx, &blob, &topic)),
            BlobSql::List(topic, r) => {
                let result = (|| {
                    let mut stmt = tx.prepare(&format!(
                        "SELECT {COLUMNS} FROM blobs WHERE hash IN
                         (SELECT hash FROM blob_docs WHERE topic = ?1) ORDER BY added, hash"
                    ))?;
                    let rows = stmt.query_map(params![&topic[..]], row)?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })();
                finish(r, result)
            }
            BlobSql::All(r) => finish(r, all(tx)),
            BlobSql::Delete(hash, r) => {
                let result = tx
                    .execute("DELETE FROM blobs WHERE hash = ?1", params![&hash.0[..]])
                    .map(|_| ())
                    .map_err(StoreError::from);
                finish(r, result)
            }
        }
    }

    pub(super) fn refuse(self) -> DeferredReply {
        match self {
            BlobSql::Get(_, r) | BlobSql::Attached(_, _, r) => fail(r),
            BlobSql::Put(_, _, r) | BlobSql::Delete(_, r) => fail(r),
            BlobSql::List(_, r) => fail(r),
            BlobSql::All(r) => fail(r),
        }
    }
}

fn get(tx: &rusqlite::Transaction, hash: BlobHash) -> Result<Option<BlobRow>, StoreError> {
    Ok(tx
        .query_row(
            &format!("SELECT {COLUMNS} FROM blobs WHERE hash = ?1"),
            params![&hash.0[..]],
            row,
        )
        .optional()?)
}

fn put(tx: &rusqlite::Transaction, blob: &BlobRow, topic: &[u8; 32]) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO blobs (hash, size, have, complete, added) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (hash) DO UPDATE SET have = excluded.have, complete = excluded.complete",
        params![
            &blob.hash.0[..],
            blob.size as i64,
            blob.have,
            blob.complete,
            blob.added
        ],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO blob_docs (hash, topic) VALUES (?1, ?2)",
        params![&blob.hash.0[..], &topic[..]],
    )?;
    Ok(())
}

type Attachments = Vec<(BlobRow, Vec<[u8; 32]>)>;

fn all(tx: &rusqlite::Transaction) -> Result<Attachments, StoreError> {
    let mut stmt = tx.prepare(&format!("SELECT {COLUMNS} FROM blobs ORDER BY hash"))?;
    let blobs = stmt.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
    let mut topics = tx.prepare("SELECT topic FROM blob_docs WHERE hash = ?1")?;
    let mut out = Vec::with_capacity(blobs.len());
    for blob in blobs {
        let attached = topics
            .query_map(params![&blob.hash.0[..]], |r| r.get::<_, Vec<u8>>(0))?
            .filter_map(|t| t.ok().and_then(|t| <[u8; 32]>::try_from(t.as_slice()).ok()))
            .collect();
        out.push((blob, attached));
    }
    Ok(out)
}
