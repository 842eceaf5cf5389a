//! The store's part of holding: the documents this node keeps sealed for others (`held`, their
//! membership records in `held_records`, their entries in `held_entries`, the snapshot that
//! replaced the entries below `held.base` in `held_snapshots`, with the parts of snapshots
//! still arriving), and what this node knows of the holders of its own documents (`holders`).

use rusqlite::{params, OptionalExtension};

use super::{fail, finish, DeferredReply};
use crate::core::access::KeyBytes;
use crate::core::doc::DocId;
use crate::core::hold::HeldState;
use crate::replica::store::{CommitFailure, Reply, StoreError};

/// A held document is named by its topic and its owner (a document id says nothing of who
/// owns it, so two owners' claims to one id stay apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct HeldKey {
    pub(crate) topic: [u8; 32],
    pub(crate) owner: KeyBytes,
}

/// A document this node holds.
#[derive(Debug, Clone)]
pub(crate) struct HeldDoc {
    pub(crate) key: HeldKey,
    pub(crate) doc: DocId,
    /// Unix seconds.
    pub(crate) created: i64,
    pub(crate) state: HeldState,
    /// Its membership records: (kind, encoding); empty in a listing.
    pub(crate) records: Vec<(u8, Vec<u8>)>,
}

/// What a member knows of one holder of one of its documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HolderRow {
    pub(crate) peer: String,
    /// The holder's offset this member has read up to (every entry below it is applied).
    pub(crate) cursor: u64,
    /// The state (an encoded yrs snapshot) the holder is known to hold.
    pub(crate) known: Option<Vec<u8>>,
    /// Unix seconds of the last exchange that succeeded (0: never).
    pub(crate) reached: i64,
    /// The holder's own account then.
    pub(crate) state: HeldState,
}

/// Limits a holder keeps within.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeldLimits {
    pub(crate) max_docs: u64,
    pub(crate) max_doc_bytes: u64,
    pub(crate) max_bytes: u64,
}

/// A fetch's answer: the held document's state, and entries by offset.
pub(crate) type Fetched = (HeldState, Vec<(u64, Vec<u8>)>);

/// A part of a snapshot as a holder keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SnapshotPart {
    pub(crate) uploader: KeyBytes,
    /// The snapshot replaces the entries below this offset.
    pub(crate) covers: u64,
    pub(crate) part: u32,
    pub(crate) parts: u32,
    pub(crate) entry: Vec<u8>,
}

pub(crate) enum HeldSql {
    Load(HeldKey, Reply<Option<HeldDoc>>),
    List(Reply<Vec<HeldDoc>>),
    /// Starts holding (within the limits: `None` when full) and adds records.
    Keep(
        HeldKey,
        DocId,
        Vec<(u8, Vec<u8>)>,
        HeldLimits,
        Reply<Option<HeldState>>,
    ),
    /// Keeps an entry at the next offset (`None`: over a limit), at a Unix time in ms.
    Append(
        HeldKey,
        KeyBytes,
        Vec<u8>,
        u64,
        HeldLimits,
        Reply<Option<HeldState>>,
    ),
    /// Entries from an offset on, up to about this many bytes.
    Fetch(HeldKey, u64, usize, Reply<Fetched>),
    /// Keeps a part of a snapshot; with its last part, the snapshot replaces the entries
    /// below its offset.
    SnapshotPart(HeldKey, SnapshotPart, HeldLimits, Reply<Option<HeldState>>),
    /// A part of the snapshot in effect: (covers, part, parts, entry).
    FetchSnapshot(HeldKey, u32, Reply<Option<SnapshotPart>>),
    Drop(HeldKey, Reply<()>),
    Holders(DocId, Reply<Vec<HolderRow>>),
    SaveHolder(DocId, HolderRow, Reply<()>),
}

impl HeldSql {
    pub(super) fn execute(
        self,
        tx: &rusqlite::Transaction,
    ) -> (DeferredReply, Option<CommitFailure>) {
        match self {
            HeldSql::Load(key, r) => finish(r, load(tx, key)),
            HeldSql::List(r) => finish(r, list(tx)),
            HeldSql::Keep(key, doc, records, limits, r) => {
                finish(r, keep(tx, key, doc, &records, limits))
            }
            HeldSql::Append(key, uploader, entry, now_ms, limits, r) => {
                finish(r, append(tx, key, &uploader, &entry, now_ms, limits))
            }
            HeldSql::Fetch(key, from, max, r) => finish(r, fetch(tx, key, from, max)),
            HeldSql::SnapshotPart(key, part, limits, r) => {
                finish(r, snapshot_part(tx, key, &part, limits))
            }
            HeldSql::FetchSnapshot(key, part, r) => finish(r, fetch_snapshot(tx, key, part)),
            HeldSql::Drop(key, r) => {
                let result = tx
                    .execute(
                        "DELETE FROM held WHERE topic = ?1 AND owner = ?2",
                        params![&key.topic[..], &key.owner[..]],
                    )
                    .map(|_| ())
                    .map_err(StoreError::from);
                finish(r, result)
            }
            HeldSql::Holders(doc, r) => finish(r, holders(tx, doc)),
            HeldSql::SaveHolder(doc, row, r) => {
                let result = tx
                    .execute(
                        "INSERT OR REPLACE INTO holders
                         (doc, peer, cursor, known, reached, head, bytes, last_write, incarnation)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                        params![
                            &doc.0[..],
                            row.peer,
                            row.cursor as i64,
                            row.known,
                            row.reached,
                            row.state.head as i64,
                            row.state.bytes as i64,
                            row.state.last_write_ms as i64,
                            row.state.incarnation as i64
                        ],
                    )
                    .map(|_| ())
                    .map_err(StoreError::from);
                finish(r, result)
            }
        }
    }

    pub(super) fn refuse(self) -> DeferredReply {
        match self {
            HeldSql::Load(_, r) => fail(r),
            HeldSql::List(r) => fail(r),
            HeldSql::Keep(_, _, _, _, r) | HeldSql::Append(_, _, _, _, _, r) => fail(r),
            HeldSql::Fetch(_, _, _, r) => fail(r),
            HeldSql::SnapshotPart(_, _, _, r) => fail(r),
            HeldSql::FetchSnapshot(_, _, r) => fail(r),
            HeldSql::Drop(_, r) | HeldSql::SaveHolder(_, _, r) => fail(r),
            HeldSql::Holders(_, r) => fail(r),
        }
    }
}

fn state(tx: &rusqlite::Transaction, key: HeldKey) -> Result<Option<HeldState>, StoreError> {
    Ok(tx
        .query_row(
            "SELECT next, bytes, last_write, base, incarnation FROM held
             WHERE topic = ?1 AND owner = ?2",
            params![&key.topic[..], &key.owner[..]],
            |row| {
                Ok(HeldState {
                    head: row.get::<_, i64>(0)? as u64,
                    bytes: row.get::<_, i64>(1)? as u64,
                    last_write_ms: row.get::<_, i64>(2)? as u64,
                    base: row.get::<_, i64>(3)? as u64,
                    incarnation: row.get::<_, i64>(4)? as u64,
                })
            },
        )
        .optional()?)
}

fn load(tx: &rusqlite::Transaction, key: HeldKey) -> Result<Option<HeldDoc>, StoreError> {
    let Some(state) = state(tx, key)? else {
        return Ok(None);
    };
    let (doc, created): (Vec<u8>, i64) = tx.query_row(
        "SELECT doc, created FROM held WHERE topic = ?1 AND owner = ?2",
        params![&key.topic[..], &key.owner[..]],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let mut stmt =
        tx.prepare("SELECT kind, record FROM held_records WHERE topic = ?1 AND owner = ?2")?;
    let records = stmt
        .query_map(params![&key.topic[..], &key.owner[..]], |row| {
            Ok((row.get::<_, u8>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(HeldDoc {
        key,
        doc: DocId(
            doc.try_into()
                .map_err(|_| StoreError::Damaged("held doc id"))?,
        ),
        created,
        state,
        records,
    }))
}

fn list(tx: &rusqlite::Transaction) -> Result<Vec<HeldDoc>, StoreError> {
    let mut stmt = tx.prepare(
        "SELECT topic, owner, doc, created, next, bytes, last_write, base, incarnation FROM held
         ORDER BY created",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, Vec<u8>>(0)?,
            row.get::<_, Vec<u8>>(1)?,
            row.get::<_, Vec<u8>>(2)?,
            row.get::<_, i64>(3)?,
            HeldState {
                head: row.get::<_, i64>(4)? as u64,
                bytes: row.get::<_, i64>(5)? as u64,
                last_write_ms: row.get::<_, i64>(6)? as u64,
                base: row.get::<_, i64>(7)? as u64,
                incarnation: row.get::<_, i64>(8)? as u64,
            },
        ))
    })?;
    let mut docs = Vec::new();
    for row in rows {
        let (topic, owner, doc, created, state) = row?;
        let (Ok(topic), Ok(owner), Ok(doc)) = (topic.try_into(), owner.try_into(), doc.try_into())
        else {
            tracing::error!("store: skipping a damaged held document");
            continue;
        };
        docs.push(HeldDoc {
            key: HeldKey { topic, owner },
            doc: DocId(doc),
            created,
            state,
            records: Vec::new(),
        });
    }
    Ok(docs)
}

fn keep(
    tx: &rusqlite::Transaction,
    key: HeldKey,
    doc: DocId,
    records: &[(u8, Vec<u8>)],
    limits: HeldLimits,
) -> Result<Option<HeldState>, StoreError> {
    if state(tx, key)?.is_none() {
        let (count, bytes): (i64, i64) = tx.query_row(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM held",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        if count as u64 >= limits.max_docs || bytes as u64 >= limits.max_bytes {
            return Ok(None);
        }
        // Nonzero and positive in SQLite's signed integers.
        let incarnation = i64::from(rand::random::<u32>()) + 1;
        tx.execute(
            "INSERT INTO held (topic, owner, doc, created, incarnation)
             VALUES (?1, ?2, ?3, unixepoch(), ?4)",
            params![&key.topic[..], &key.owner[..], &doc.0[..], incarnation],
        )?;
    }
    for (kind, record) in records {
        tx.execute(
            "INSERT OR IGNORE INTO held_records (topic, owner, kind, record)
             VALUES (?1, ?2, ?3, ?4)",
            params![&key.topic[..], &key.owner[..], kind, record],
        )?;
    }
    state(tx, key)
}

fn append(
    tx: &rusqlite::Transaction,
    key: HeldKey,
    uploader: &KeyBytes,
    entry: &[u8],
    now_ms: u64,
    limits: HeldLimits,
) -> Result<Option<HeldState>, StoreError> {
    let Some(before) = state(tx, key)? else {
        return Ok(None);
    };
    let total: i64 = tx.query_row("SELECT coalesce(sum(bytes), 0) FROM held", [], |row| {
        row.get(0)
    })?;
    let size = entry.len() as u64;
    if before.bytes + size > limits.max_doc_bytes || total as u64 + size > limits.max_bytes {
        return Ok(None);
    }
    tx.execute(
        "INSERT INTO held_entries (topic, owner, offset, uploader, entry)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            &key.topic[..],
            &key.owner[..],
            before.head as i64,
            &uploader[..],
            entry
        ],
    )?;
    tx.execute(
        "UPDATE held SET next = next + 1, bytes = bytes + ?3, last_write = ?4
         WHERE topic = ?1 AND owner = ?2",
        params![&key.topic[..], &key.owner[..], size as i64, now_ms as i64],
    )?;
    state(tx, key)
}

fn fetch(
    tx: &rusqlite::Transaction,
    key: HeldKey,
    from: u64,
    max_bytes: usize,
) -> Result<Fetched, StoreError> {
    let state = state(tx, key)?.unwrap_or_default();
    if from < state.base {
        // Behind the snapshot: the reader takes it first.
        return Ok((state, Vec::new()));
    }
    let mut stmt = tx.prepare(
        "SELECT offset, entry FROM held_entries WHERE topic = ?1 AND owner = ?2 AND offset >= ?3
         ORDER BY offset",
    )?;
    let mut rows = stmt.query(params![&key.topic[..], &key.owner[..], from as i64])?;
    let mut entries = Vec::new();
    let mut size = 0;
    while let Some(row) = rows.next()? {
        let entry: Vec<u8> = row.get(1)?;
        size += entry.len();
        if size > max_bytes && !entries.is_empty() {
            break;
        }
        entries.push((row.get::<_, i64>(0)? as u64, entry));
    }
    Ok((state, entries))
}

fn snapshot_part(
    tx: &rusqlite::Transaction,
    key: HeldKey,
    part: &SnapshotPart,
    limits: HeldLimits,
) -> Result<Option<HeldState>, StoreError> {
    let Some(before) = state(tx, key)? else {
        return Ok(None);
    };
    if part.covers <= before.base || part.covers > before.head {
        // Overtaken by a newer snapshot, or covering entries that do not exist: nothing to do.
        return Ok(Some(before));
    }
    let total: i64 = tx.query_row("SELECT coalesce(sum(bytes), 0) FROM held", [], |row| {
        row.get(0)
    })?;
    // A snapshot shrinks what is kept: while it arrives, its parts count against the node's
    // own limit and the document's (apart from the entries it will replace).
    if total as u64 + part.entry.len() as u64 > limits.max_bytes {
        return Ok(None);
    }
    let k = (&key.topic[..], &key.owner[..]);
    // One snapshot arriving per uploader: one it began before and did not finish goes.
    tx.execute(
        "DELETE FROM held_snapshots WHERE topic = ?1 AND owner = ?2 AND pending = 1
         AND uploader = ?3 AND covers != ?4",
        params![k.0, k.1, &part.uploader[..], part.covers as i64],
    )?;
    let pending: i64 = tx.query_row(
        "SELECT coalesce(sum(length(entry)), 0) FROM held_snapshots
         WHERE topic = ?1 AND owner = ?2 AND pending = 1",
        params![k.0, k.1],
        |row| row.get(0),
    )?;
    if pending as u64 + part.entry.len() as u64 > limits.max_doc_bytes {
        return Ok(None);
    }
    tx.execute(
        "INSERT OR REPLACE INTO held_snapshots
         (topic, owner, pending, uploader, covers, part, parts, entry)
         VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7)",
        params![
            k.0,
            k.1,
            &part.uploader[..],
            part.covers as i64,
            part.part,
            part.parts,
            part.entry
        ],
    )?;
    let arrived: i64 = tx.query_row(
        "SELECT count(*) FROM held_snapshots WHERE topic = ?1 AND owner = ?2 AND pending = 1
         AND uploader = ?3 AND covers = ?4 AND parts = ?5",
        params![k.0, k.1, &part.uploader[..], part.covers as i64, part.parts],
        |row| row.get(0),
    )?;
    if arrived as u32 == part.parts {
        // Complete: it replaces the snapshot before it and every entry below its offset.
        tx.execute(
            "DELETE FROM held_snapshots WHERE topic = ?1 AND owner = ?2 AND (pending = 0
             OR (pending = 1 AND covers <= ?3 AND NOT (uploader = ?4 AND covers = ?3)))",
            params![k.0, k.1, part.covers as i64, &part.uploader[..]],
        )?;
        tx.execute(
            "UPDATE held_snapshots SET pending = 0 WHERE topic = ?1 AND owner = ?2
             AND uploader = ?3 AND covers = ?4",
            params![k.0, k.1, &part.uploader[..], part.covers as i64],
        )?;
        tx.execute(
            "DELETE FROM held_entries WHERE topic = ?1 AND owner = ?2 AND offset < ?3",
            params![k.0, k.1, part.covers as i64],
        )?;
        tx.execute(
            "UPDATE held SET base = ?3 WHERE topic = ?1 AND owner = ?2",
            params![k.0, k.1, part.covers as i64],
        )?;
    }
    tx.execute(
        "UPDATE held SET bytes =
             (SELECT coalesce(sum(length(entry)), 0) FROM held_entries
              WHERE topic = ?1 AND owner = ?2)
             + (SELECT coalesce(sum(length(entry)), 0) FROM held_snapshots
              WHERE topic = ?1 AND owner = ?2)
         WHERE topic = ?1 AND owner = ?2",
        params![k.0, k.1],
    )?;
    state(tx, key)
}

fn fetch_snapshot(
    tx: &rusqlite::Transaction,
    key: HeldKey,
    part: u32,
) -> Result<Option<SnapshotPart>, StoreError> {
    Ok(tx
        .query_row(
            "SELECT uploader, covers, part, parts, entry FROM held_snapshots
             WHERE topic = ?1 AND owner = ?2 AND pending = 0 AND part = ?3",
            params![&key.topic[..], &key.owner[..], part],
            |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, u32>(2)?,
                    row.get::<_, u32>(3)?,
                    row.get::<_, Vec<u8>>(4)?,
                ))
            },
        )
        .optional()?
        .and_then(|(uploader, covers, part, parts, entry)| {
            Some(SnapshotPart {
                uploader: uploader.try_into().ok()?,
                covers: covers as u64,
                part,
                parts,
                entry,
            })
        }))
}

fn holders(tx: &rusqlite::Transaction, doc: DocId) -> Result<Vec<HolderRow>, StoreError> {
    let mut stmt = tx.prepare(
        "SELECT peer, cursor, known, reached, head, bytes, last_write, incarnation FROM holders
         WHERE doc = ?1",
    )?;
    let rows = stmt.query_map([&doc.0[..]], |row| {
        Ok(HolderRow {
            peer: row.get(0)?,
            cursor: row.get::<_, i64>(1)? as u64,
            known: row.get(2)?,
            reached: row.get(3)?,
            state: HeldState {
                head: row.get::<_, i64>(4)? as u64,
                bytes: row.get::<_, i64>(5)? as u64,
                last_write_ms: row.get::<_, i64>(6)? as u64,
                base: 0,
                incarnation: row.get::<_, i64>(7)? as u64,
            },
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
