//! [`Error`]: everything the node API can fail with. Messages say what failed and what to do,
//! in words that fit any caller (the CLI and the HTTP API add their own pointers).

use libp2p::PeerId;

use crate::core::access::NameError;
use crate::core::ticket::TicketError;
use crate::data_dir::DataDirError;
use crate::net::NetError;
use crate::replica::pull::PullFailure;
use crate::replica::room::RoomError;
use crate::replica::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no document matches {0:?} on this node (name a document by its name, its id, or the \
         first {min}+ characters of its id)",
        min = super::names::MIN_PREFIX_LEN
    )]
    UnknownDoc(String),
    #[error("{0:?} matches several documents ({1}); give more of the id")]
    AmbiguousDoc(String, String),
    #[error(
        "no document is named {0:?}, and an id prefix needs at least {min} characters",
        min = super::names::MIN_PREFIX_LEN
    )]
    ShortPrefix(String),
    #[error("invalid document name {0:?}: {1}")]
    BadName(String, &'static str),
    #[error("bad ticket: {0}")]
    Ticket(#[from] TicketError),
    #[error("this node already has that document, as {0:?}")]
    AlreadyJoined(String),
    #[error(
        "{0} is still joining: no member has answered yet, so this node has none of its text; \
         it completes by itself when one does (`ls` shows when)"
    )]
    Joining(String),
    #[error("this ticket was made by this node; join it from another node")]
    OwnTicket,
    #[error(
        "no member answered: the sharer {peer}: {reason}; check that a member's node is \
         running, or wait for one (`join --wait`)"
    )]
    Unreachable { peer: PeerId, reason: String },
    #[error("the sharer's node does not serve this document (it was deleted there, or the ticket is stale); ask for a new ticket")]
    NotShared,
    #[error("joining failed while syncing from the sharer: {0}")]
    JoinSync(PullFailure),
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Room(#[from] RoomError),
    #[error("only the document's owner can remove members")]
    NotOwner,
    #[error("{0} is not a member of this document")]
    NotAMember(String),
    #[error("the owner cannot be removed from a document")]
    RemoveOwner,
    #[error("this node has the document read-only; only its owner and writers can share it")]
    ReaderCannotShare,
    #[error("this node's identity key is not Ed25519; peerdoc needs an Ed25519 identity")]
    NotEd25519,
    #[error("this ticket no longer admits anyone: ask a member for a new one")]
    TicketRevoked,
    #[error(
        "none of the reachable members is a writer that can serve the document; try again \
         when the sharer or another writer is online"
    )]
    NoWriter,
    #[error("invalid display name: {0}")]
    DisplayName(#[from] NameError),
    #[error(
        "this node's name is set to {0:?} by `name` in its config file; change it there and \
         restart the node"
    )]
    NameInConfig(String),
    #[error("only the document's owner and writers choose where it is held")]
    NotWriterForHolders,
    #[error(
        "{0:?} names no node: give a peer id, or an address ending in /p2p/<peer id> \
         (e.g. /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW…)"
    )]
    BadHolder(String),
    #[error("a node does not hold its own documents for itself; name another node")]
    HolderIsSelf,
    #[error(
        "the document has {max} holders already; let one go first (`unreplicate`)",
        max = crate::core::access::MAX_HOLDERS
    )]
    TooManyHolders,
    #[error("{0} is no holder of this document (`replicas` lists them)")]
    NotAHolder(String),
    #[error("the holder {0} refused: {1}")]
    HolderRefused(PeerId, crate::core::hold::Refusal),
    #[error("cannot reach the holder {0}: {1}; check that it is running and the address is right")]
    HolderUnreachable(PeerId, String),
    #[error(
        "this node keeps {0} sealed for its members; it cannot read it (it has no key: only \
         members can)"
    )]
    HeldSealed(String),
    #[error("only the document's owner and writers add attachments")]
    NotWriterForAttachments,
    #[error("the file is {size} bytes; attachments may be at most {max} bytes (`max_attachment_bytes` under [attachments] in the config file)")]
    AttachmentTooLarge { size: u64, max: u64 },
    #[error("the document's attachments take {used} bytes; {adding} more would pass its limit of {max} (`max_doc_bytes` under [attachments] in the config file)")]
    DocAttachmentsFull { used: u64, adding: u64, max: u64 },
    #[error(transparent)]
    BadBlobRef(#[from] crate::core::blob::BadRef),
    #[error("cannot fetch the attachment: {0}")]
    AttachmentUnavailable(String),
    #[error("attachment {0} is not here whole yet; fetch it first")]
    AttachmentNotHere(String),
    #[error("the disk is full; nothing was added ({0})")]
    AttachmentDiskFull(String),
    #[error("attachment store: {0}")]
    AttachmentIo(String),
}

/// What a refused or failed document operation means for a caller that acts on it (an HTTP
/// status, a WebSocket close code), whatever layer it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// This node may read the document, not edit it.
    ReadOnly,
    /// The owner removed this node from the document.
    Removed,
    /// A removal could not be made.
    RemovalFailed,
    /// The document has reached its size limit.
    TooLarge,
    /// The disk is full.
    DiskFull,
    /// The store cannot be read or written right now.
    StorageUnavailable,
    /// Another document already has that name here.
    NameTaken,
    /// Anything else: see the message.
    Other,
}

impl Error {
    /// The kind of this error, for callers that map it to a code of their own.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Room(RoomError::ReadOnly(_)) => ErrorKind::ReadOnly,
            Error::Room(RoomError::Removed(_)) => ErrorKind::Removed,
            Error::Room(RoomError::Removal(..)) => ErrorKind::RemovalFailed,
            Error::Room(RoomError::TooLarge(_)) => ErrorKind::TooLarge,
            Error::Room(RoomError::Store(e)) | Error::Store(e) if e.is_full() => {
                ErrorKind::DiskFull
            }
            Error::AttachmentDiskFull(_) => ErrorKind::DiskFull,
            Error::AttachmentTooLarge { .. } | Error::DocAttachmentsFull { .. } => {
                ErrorKind::TooLarge
            }
            Error::NotWriterForAttachments => ErrorKind::ReadOnly,
            Error::Store(StoreError::NameTaken(_)) => ErrorKind::NameTaken,
            Error::Room(RoomError::Store(_)) => ErrorKind::StorageUnavailable,
            _ => ErrorKind::Other,
        }
    }
}
