//! Why a room refuses or fails a request.

use super::MAX_DOC_BYTES;
use crate::core::doc::{DocError, DocId};
use crate::core::sync::SyncError;
use crate::replica::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored history of document {0} is damaged ({1}); restore the database from a backup")]
    Corrupt(DocId, DocError),
    #[error("document {0} is closed")]
    Closed(DocId),
    #[error("malformed awareness update: {0}")]
    Awareness(#[from] SyncError),
    #[error(
        "document {0} is read-only here: it was shared with this node read-only; ask a writer \
         for a read-write ticket"
    )]
    ReadOnly(DocId),
    #[error(
        "document {0} has reached its size limit ({limit} bytes stored); nothing more can be \
         added to it",
        limit = MAX_DOC_BYTES
    )]
    TooLarge(DocId),
    #[error(
        "this node was removed from document {0} by its owner: it gets no new edits and its \
         writes are refused; ask the owner to share it again"
    )]
    Removed(DocId),
    #[error("cannot remove the member from document {0}: {1}")]
    Removal(DocId, crate::core::access::RemovalError),
    #[error(transparent)]
    Version(crate::core::doc::history::VersionError),
}
