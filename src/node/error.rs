//! [`Error`]: everything the node API can fail with. Messages say what failed and what to do,
//! in words that fit any caller (the CLI and the HTTP API add their own pointers).

use libp2p::PeerId;

use crate::core::ticket::TicketError;
use crate::data_dir::DataDirError;
use crate::net::NetError;
use crate::replica::pull::PullFailure;
use crate::replica::room::RoomError;
use crate::replica::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no document matches {0:?} on this node")]
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
    #[error("this ticket was made by this node; join it from another node")]
    OwnTicket,
    #[error(
        "could not reach the sharer {peer} at any address in the ticket ({reason}); \
         check that their node is running and reachable, then try again"
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
}
