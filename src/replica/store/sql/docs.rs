//! Which documents the store holds: listing them, finding one by name or id prefix, and each
//! one's stored size and last change.

use std::collections::HashMap;

use rusqlite::params;

use super::super::{DocMeta, DocStats, StoreError};
use crate::core::doc::DocId;
use crate::core::envelope::DocKey;

/// Each document's stored size and last change (of one document, or of all).
pub(super) fn doc_stats(
    tx: &rusqlite::Transaction,
    id: Option<DocId>,
) -> Result<HashMap<DocId, DocStats>, StoreError> {
    // length() of a blob reads its size from the record, not the blob.
    let mut stmt = tx.prepare(
        "SELECT id, changed,
             (SELECT coalesce(sum(length(data)), 0) FROM updates WHERE doc = docs.id)
             + coalesce((SELECT length(data) FROM snapshots WHERE doc = docs.id), 0),
             kind = 'rich'
         FROM docs WHERE ?1 IS NULL OR id = ?1",
    )?;
    let id = id.map(|id| id.0.to_vec());
    let rows = stmt.query_map(params![id], |row| {
        Ok((
            row.get::<_, Vec<u8>>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, bool>(3)?,
        ))
    })?;
    let mut stats = HashMap::new();
    for row in rows {
        let (id, changed, bytes, rich) = row?;
        if let Ok(id) = <[u8; 16]>::try_from(id) {
            let bytes = u64::try_from(bytes).unwrap_or(0);
            stats.insert(
                DocId(id),
                DocStats {
                    bytes,
                    changed,
                    rich,
                },
            );
        }
    }
    Ok(stats)
}

pub(super) fn list_docs(tx: &rusqlite::Transaction) -> Result<Vec<DocMeta>, StoreError> {
    select_docs(tx, "TRUE", "ORDER BY created, name", [])
}

/// Documents a query may name: the one with that name, and those whose id starts with it (the
/// whole id included; at most [`MAX_PREFIX_MATCHES`]). Index lookups, not a scan: the id is the
/// primary key (a prefix is a range of it) and names are unique.
pub(super) fn find_docs(
    tx: &rusqlite::Transaction,
    query: &str,
) -> Result<Vec<DocMeta>, StoreError> {
    let q = query.trim();
    let mut docs = select_docs(tx, "name = ?1", "", [q])?;
    if let Some((low, high)) = id_range(&q.to_ascii_lowercase()) {
        docs.extend(select_docs(
            tx,
            "id BETWEEN ?1 AND ?2",
            "ORDER BY id LIMIT ?3",
            params![&low[..], &high[..], MAX_PREFIX_MATCHES],
        )?);
    }
    Ok(docs)
}

/// Prefix matches fetched: enough to tell one from several, and to name a few.
const MAX_PREFIX_MATCHES: i64 = 17;

/// The ids that start with the hex digits `prefix`, as the lowest and highest such id.
fn id_range(prefix: &str) -> Option<([u8; 16], [u8; 16])> {
    if prefix.is_empty() || prefix.len() > 32 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let pad = |digit: char| {
        let mut full = prefix.to_string();
        full.extend(std::iter::repeat_n(digit, 32 - prefix.len()));
        <[u8; 16]>::try_from(hex::decode(full).ok()?).ok()
    };
    Some((pad('0')?, pad('f')?))
}

/// The documents (joined, with an owner) that `filter` selects, `tail` (an order, a limit)
/// after it.
fn select_docs(
    tx: &rusqlite::Transaction,
    filter: &str,
    tail: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<DocMeta>, StoreError> {
    let mut stmt = tx.prepare(&format!(
        "SELECT id, name, key, created, owner, key_epoch FROM docs WHERE owner IS NOT NULL
         AND ({filter}) {tail}"
    ))?;
    let rows = stmt.query_map(params, |row| {
        Ok((
            row.get::<_, Vec<u8>>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Vec<u8>>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, Vec<u8>>(4)?,
            row.get::<_, u32>(5)?,
        ))
    })?;
    let mut docs = Vec::new();
    for row in rows {
        let (id, name, key, created, owner, key_epoch) = row?;
        // A row with wrong-sized blobs is damage; skip it loudly rather than fail every list.
        match (
            <[u8; 16]>::try_from(id),
            <[u8; 32]>::try_from(key),
            <[u8; 32]>::try_from(owner),
        ) {
            (Ok(id), Ok(key), Ok(owner)) => docs.push(DocMeta {
                id: DocId(id),
                name,
                key: DocKey(key),
                created,
                owner,
                key_epoch,
            }),
            _ => tracing::error!("store: skipping damaged docs row {name:?}"),
        }
    }
    Ok(docs)
}
