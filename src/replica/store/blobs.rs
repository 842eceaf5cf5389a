//! The [`Store`] calls of attachments: which blobs this node keeps, their verified pieces, and
//! the documents they are attached to.

use super::sql::blobs::{BlobRow, BlobSql};
use super::{Reply, Sql, Store, StoreError};
use crate::core::blob::BlobHash;

impl Store {
    async fn blob_sql<T>(&self, make: impl FnOnce(Reply<T>) -> BlobSql) -> Result<T, StoreError> {
        self.call(|r| Sql::Blob(make(r))).await
    }
    pub(crate) async fn blob(&self, hash: BlobHash) -> Result<Option<BlobRow>, StoreError> {
        self.blob_sql(|r| BlobSql::Get(hash, r)).await
    }
    /// The blob, if it is attached to the document of `topic`.
    pub(crate) async fn attached_blob(
        &self,
        hash: BlobHash,
        topic: [u8; 32],
    ) -> Result<Option<BlobRow>, StoreError> {
        self.blob_sql(|r| BlobSql::Attached(hash, topic, r)).await
    }
    /// Keeps a blob's row durably and attaches it to the document of `topic`.
    pub(crate) async fn put_blob(&self, blob: BlobRow, topic: [u8; 32]) -> Result<(), StoreError> {
        self.blob_sql(|r| BlobSql::Put(blob, topic, r)).await
    }
    pub(crate) async fn doc_blobs(&self, topic: [u8; 32]) -> Result<Vec<BlobRow>, StoreError> {
        self.blob_sql(|r| BlobSql::List(topic, r)).await
    }
    /// Every blob with the topics it is attached to.
    pub(crate) async fn all_blobs(&self) -> Result<Vec<(BlobRow, Vec<[u8; 32]>)>, StoreError> {
        self.blob_sql(BlobSql::All).await
    }
    pub(crate) async fn delete_blob(&self, hash: BlobHash) -> Result<(), StoreError> {
        self.blob_sql(|r| BlobSql::Delete(hash, r)).await
    }
}
