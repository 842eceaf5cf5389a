//! Why the store refuses or fails a command: [`StoreError`], and the [`CommitFailure`] every
//! write of a failed batch shares.

use std::path::PathBuf;

use crate::core::doc::DocId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "database {path} is corrupt or not a peerdoc database ({source}); move it aside and \
         restart to begin empty, or restore it from a backup"
    )]
    Corrupt {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database {path} was written by a newer peerdoc (schema {found}); upgrade peerdoc")]
    TooNew { path: PathBuf, found: i64 },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("could not commit to the database ({}); nothing of this change was stored", .0.reason)]
    Commit(CommitFailure),
    #[error("cannot start the database writer thread: {0}")]
    Thread(std::io::Error),
    #[error("a document named {0:?} already exists; choose another name")]
    NameTaken(String),
    #[error("document {0} already exists in this node")]
    DocExists(DocId),
    #[error("the store has shut down")]
    Closed,
    #[error("damaged row in the database ({0}); restore it from a backup")]
    Damaged(&'static str),
}

impl StoreError {
    /// The disk (or the database's size limit) is full: the write may succeed later.
    pub fn is_full(&self) -> bool {
        match self {
            StoreError::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            StoreError::Commit(failure) => failure.full,
            _ => false,
        }
    }
}

/// Why a batch of writes was not stored (each of its writes fails with it).
#[derive(Debug, Clone)]
pub struct CommitFailure {
    pub reason: String,
    /// The disk (or the database's size limit) was full.
    pub full: bool,
}

impl CommitFailure {
    pub(super) fn of(error: &StoreError) -> CommitFailure {
        CommitFailure {
            reason: error.to_string(),
            full: error.is_full(),
        }
    }
}
