//! The store's part of attachments: which blobs this node keeps (`blobs`: size, the pieces it
//! has verified and made durable, whether it is complete, when it was last added or fetched)
//! and which documents each is attached to (`blob_docs`, by topic and owner, as the network
//! names a document: only members of those documents are served it). The bytes live
//! in files beside the database (`replica::blobs::files`).

use rusqlite::{params, OptionalExtension};

use super::held::HeldKey as DocKey;
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
    /// Unix seconds when it was last added or fetched here (garbage collection leaves young
    /// ones alone).
    pub(crate) added: i64,
}

pub(crate) enum BlobSql {
    Get(BlobHash, Reply<Option<BlobRow>>),
    /// The blob if it is attached to this document.
    Attached(BlobHash, DocKey, Reply<Option<BlobRow>>),
    /// Keeps a blob's row (its pieces, completeness, time) and attaches it to a document.
    Put(BlobRow, DocKey, Reply<()>),
    /// The blobs attached to a document.
    List(DocKey, Reply<Vec<BlobRow>>),
    /// Every blob, with the documents it is attached to.
    All(Reply<Attachments>),
    /// Forgets a blob if its row is still `added` as given (nothing added or fetched it since);
    /// whether it did (its files are the caller's).
    Delete(BlobHash, i64, Reply<bool>),
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
            BlobSql::Attached(hash, doc, r) => {
                let result = tx
                    .query_row(
                        &format!(
                            "SELECT {COLUMNS} FROM blobs WHERE hash = ?1 AND EXISTS
                             (SELECT 1 FROM blob_docs WHERE hash = ?1 AND topic = ?2
                              AND owner = ?3)"
                        ),
                        params![&hash.0[..], &doc.topic[..], &doc.owner[..]],
                        row,
                    )
                    .optional()
                    .map_err(StoreError::from);
                finish(r, result)
            }
            BlobSql::Put(blob, doc, r) => finish(r, put(tx, &blob, &doc)),
            BlobSql::List(doc, r) => {
                let result = (|| {
                    let mut stmt = tx.prepare(&format!(
                        "SELECT {COLUMNS} FROM blobs WHERE hash IN
                         (SELECT hash FROM blob_docs WHERE topic = ?1 AND owner = ?2)
                         ORDER BY added, hash"
                    ))?;
                    let rows = stmt.query_map(params![&doc.topic[..], &doc.owner[..]], row)?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })();
                finish(r, result)
            }
            BlobSql::All(r) => finish(r, all(tx)),
            BlobSql::Delete(hash, added, r) => {
                let result = tx
                    .execute(
                        "DELETE FROM blobs WHERE hash = ?1 AND added = ?2",
                        params![&hash.0[..], added],
                    )
                    .map(|n| n > 0)
                    .map_err(StoreError::from);
                finish(r, result)
            }
        }
    }

    pub(super) fn refuse(self) -> DeferredReply {
        match self {
            BlobSql::Get(_, r) | BlobSql::Attached(_, _, r) => fail(r),
            BlobSql::Put(_, _, r) => fail(r),
            BlobSql::Delete(_, _, r) => fail(r),
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

fn put(tx: &rusqlite::Transaction, blob: &BlobRow, doc: &DocKey) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO blobs (hash, size, have, complete, added) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (hash) DO UPDATE SET size = excluded.size, have = excluded.have,
             complete = excluded.complete, added = max(added, excluded.added)",
        params![
            &blob.hash.0[..],
            blob.size as i64,
            blob.have,
            blob.complete,
            blob.added
        ],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO blob_docs (hash, topic, owner) VALUES (?1, ?2, ?3)",
        params![&blob.hash.0[..], &doc.topic[..], &doc.owner[..]],
    )?;
    Ok(())
}

/// Every blob, with the documents it is attached to.
pub(crate) type Attachments = Vec<(BlobRow, Vec<DocKey>)>;

fn all(tx: &rusqlite::Transaction) -> Result<Attachments, StoreError> {
    let mut stmt = tx.prepare(&format!("SELECT {COLUMNS} FROM blobs ORDER BY hash"))?;
    let blobs = stmt.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
    let mut docs = tx.prepare("SELECT topic, owner FROM blob_docs WHERE hash = ?1")?;
    let mut out = Vec::with_capacity(blobs.len());
    for blob in blobs {
        let attached = docs
            .query_map(params![&blob.hash.0[..]], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .filter_map(|d| {
                let (topic, owner) = d.ok()?;
                Some(DocKey {
                    topic: topic.as_slice().try_into().ok()?,
                    owner: owner.as_slice().try_into().ok()?,
                })
            })
            .collect();
        out.push((blob, attached));
    }
    Ok(out)
}
