//! The [`Store`] calls of holding: the documents this node keeps for others (records,
//! entries, snapshots) and what it knows of the holders of its own documents.

use super::sql::held::{Fetched, HeldDoc, HeldKey, HeldLimits, HeldSql, HolderRow, SnapshotPart};
use super::{unix_now_ms, Reply, Sql, Store, StoreError};
use crate::core::access::KeyBytes;
use crate::core::doc::DocId;
use crate::core::hold::HeldState;

impl Store {
    async fn held<T>(&self, make: impl FnOnce(Reply<T>) -> HeldSql) -> Result<T, StoreError> {
        self.call(|r| Sql::Held(make(r))).await
    }
    /// A document this node holds for others, with its membership records.
    pub(crate) async fn held_doc(&self, key: HeldKey) -> Result<Option<HeldDoc>, StoreError> {
        self.held(|r| HeldSql::Load(key, r)).await
    }
    /// The documents this node holds for others (without their records).
    pub(crate) async fn held_docs(&self) -> Result<Vec<HeldDoc>, StoreError> {
        self.held(HeldSql::List).await
    }
    /// Holds a document (if within `limits`; `None` when not) and adds membership records.
    pub(crate) async fn keep_held(
        &self,
        key: HeldKey,
        doc: DocId,
        records: Vec<(u8, Vec<u8>)>,
        limits: HeldLimits,
    ) -> Result<Option<HeldState>, StoreError> {
        self.held(|r| HeldSql::Keep(key, doc, records, limits, r))
            .await
    }
    /// Keeps an entry durably at the next offset; `None` when over a limit.
    pub(crate) async fn append_held(
        &self,
        key: HeldKey,
        uploader: KeyBytes,
        entry: Vec<u8>,
        limits: HeldLimits,
    ) -> Result<Option<HeldState>, StoreError> {
        let now = unix_now_ms();
        self.held(|r| HeldSql::Append(key, uploader, entry, now, limits, r))
            .await
    }
    /// Entries of a held document from `from` on, about `max_bytes` of them.
    pub(crate) async fn fetch_held(
        &self,
        key: HeldKey,
        from: u64,
        max_bytes: usize,
    ) -> Result<Fetched, StoreError> {
        self.held(|r| HeldSql::Fetch(key, from, max_bytes, r)).await
    }
    /// Keeps a part of a snapshot; its last part makes it replace the entries it covers.
    /// `None` when over a limit.
    pub(crate) async fn snapshot_part(
        &self,
        key: HeldKey,
        part: SnapshotPart,
        limits: HeldLimits,
    ) -> Result<Option<HeldState>, StoreError> {
        self.held(|r| HeldSql::SnapshotPart(key, part, limits, r))
            .await
    }
    /// A part of the snapshot in effect for a held document.
    pub(crate) async fn fetch_snapshot(
        &self,
        key: HeldKey,
        part: u32,
    ) -> Result<Option<SnapshotPart>, StoreError> {
        self.held(|r| HeldSql::FetchSnapshot(key, part, r)).await
    }
    /// Forgets a held document and everything kept for it.
    pub(crate) async fn drop_held(&self, key: HeldKey) -> Result<(), StoreError> {
        self.held(|r| HeldSql::Drop(key, r)).await
    }
    /// What this node knows of the holders of `doc`.
    pub(crate) async fn holders(&self, doc: DocId) -> Result<Vec<HolderRow>, StoreError> {
        self.held(|r| HeldSql::Holders(doc, r)).await
    }
    pub(crate) async fn save_holder(&self, doc: DocId, row: HolderRow) -> Result<(), StoreError> {
        self.held(|r| HeldSql::SaveHolder(doc, row, r)).await
    }
}
