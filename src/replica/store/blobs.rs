//! The [`Store`] calls of attachments: which blobs this node keeps, their verified pieces, and
//! the documents they are attached to.

use super::sql::blobs::{Attachments, BlobRow, BlobSql};
use super::sql::held::HeldKey as DocKey;
use super::{Reply, Sql, Store, StoreError};
use crate::core::blob::BlobHash;

impl Store {
    async fn blob_sql<T>(&self, make: impl FnOnce(Reply<T>) -> BlobSql) -> Result<T, StoreError> {
        self.call(|r| Sql::Blob(make(r))).await
    }
    pub(crate) async fn blob(&self, hash: BlobHash) -> Result<Option<BlobRow>, StoreError> {
        self.blob_sql(|r| BlobSql::Get(hash, r)).await
    }
    /// The blob, if it is attached to the document `doc` (topic and owner).
    pub(crate) async fn attached_blob(
        &self,
        hash: BlobHash,
        doc: DocKey,
    ) -> Result<Option<BlobRow>, StoreError> {
        self.blob_sql(|r| BlobSql::Attached(hash, doc, r)).await
    }
    /// Keeps a blob's row durably and attaches it to the document `doc`.
    pub(crate) async fn put_blob(&self, blob: BlobRow, doc: DocKey) -> Result<(), StoreError> {
        self.blob_sql(|r| BlobSql::Put(blob, doc, r)).await
    }
    pub(crate) async fn doc_blobs(&self, doc: DocKey) -> Result<Vec<BlobRow>, StoreError> {
        self.blob_sql(|r| BlobSql::List(doc, r)).await
    }
    /// Every blob with the documents it is attached to.
    pub(crate) async fn all_blobs(&self) -> Result<Attachments, StoreError> {
        self.blob_sql(BlobSql::All).await
    }
    /// Forgets a blob if nothing added or fetched it since `added` (whether it did).
    pub(crate) async fn delete_blob(&self, hash: BlobHash, added: i64) -> Result<bool, StoreError> {
        self.blob_sql(|r| BlobSql::Delete(hash, added, r)).await
    }
}
