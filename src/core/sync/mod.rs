//! Pure: the sync protocol, and every protocol decision the node and the simulation share.
//! Byte layouts are specified in PROTOCOL.md.
//!
//! | module | owns |
//! |---|---|
//! | [`message`] | y-protocols messages: gossip payloads and y-websocket frames |
//! | [`wire`] | `/peerdoc/sync/1` request, request body, response and chunk codecs |
//! | [`gossip`] | seal/open of gossip, gossip-or-announce for local edits, what a received message asks for |
//! | [`pull`] | the requester's pull session state machine |
//! | [`responder`] | the responder: opens requests, answers them with chunks of a diff |
//! | [`members`] | member exchange: who else holds the document, and where |
//! | [`transfers`] | the responder's cache of large diffs being handed out chunk by chunk |
//!
//! Nothing here reads the clock or a random number generator for a protocol decision: the
//! responder takes `now` and an RNG as arguments. (Envelope nonces come from the OS CSPRNG in
//! [`crate::core::envelope`]: they never influence a decision, and must never repeat.)

use std::time::Duration;

use crate::core::envelope::EnvelopeError;

pub mod gossip;
pub mod members;
pub mod message;
pub mod pull;
pub mod responder;
pub mod transfers;
pub mod wire;

#[cfg(test)]
mod sim;

pub use message::{decode_awareness, Frame, YMessage};
pub use pull::{Progress, Pull, Step};
pub use responder::{Answer, Responder};
pub use transfers::Transfers;
pub use wire::{Chunk, RequestBody, SyncRequest, SyncResponse};

/// The request-response protocol name.
pub const PROTOCOL: &str = "/peerdoc/sync/1";
/// Version byte that starts every sync request and response.
pub const WIRE_VERSION: u8 = 1;
/// Plaintext bytes of document data per sync response chunk. Each chunk is a request round
/// trip (a new stream), which costs more than its bytes on a fast link: a 355 KB document took
/// 8 round trips at 48 KiB (BENCHMARKS.md, row 4).
pub const CHUNK_SIZE: usize = 256 * 1024;
/// Local updates larger than this are not gossiped; a `SyncStep1` announcement is, and peers
/// that are behind pull. Keeps every gossip message well under gossipsub's 64 KiB limit.
pub const MAX_GOSSIP_UPDATE: usize = 48 * 1024;
/// Largest gossip message we accept or send (gossipsub's `max_transmit_size`).
pub const MAX_GOSSIP_MESSAGE: usize = 64 * 1024;
/// Largest transfer (one diff) a requester accepts.
pub const MAX_TRANSFER: u64 = 1 << 30;
/// Codec limit for one request on the wire. Document data per response is bounded by
/// [`CHUNK_SIZE`]; the rest of the allowance is for state vectors, which grow with the number of
/// writers a document has seen.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Codec limit for one response on the wire (see [`MAX_REQUEST_BYTES`]).
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// How long a responder keeps a large diff for follow-up chunk requests.
pub const TRANSFER_TTL: Duration = Duration::from_secs(120);
/// How many bytes of such diffs a responder keeps at most.
pub const TRANSFER_CACHE_BYTES: usize = 256 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SyncError {
    #[error("malformed sync message: {0}")]
    Malformed(&'static str),
    #[error("unsupported sync wire version {0}")]
    Version(u8),
    #[error("peer sent an inconsistent transfer: {0}")]
    BadTransfer(&'static str),
    #[error("transfer of {0} bytes exceeds the {MAX_TRANSFER}-byte limit")]
    TooLarge(u64),
    #[error("payload does not open with the document key: {0}")]
    Sealed(#[from] EnvelopeError),
    #[error("{0} is not a gossip message")]
    NotGossip(&'static str),
    #[error("gossip signature does not verify")]
    BadSignature,
}

/// Why a pull ended without the peer's diff.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PullError {
    #[error("peer sent a bad response: {0}")]
    Sync(#[from] SyncError),
    #[error("the peer does not have this document")]
    UnknownDoc,
    #[error("the peer refused the request (it holds a different key for this document)")]
    Refused,
    #[error("the peer kept expiring the transfer; try again later")]
    Expired,
    /// The peer serves this node only membership records (they are in the roster): this node
    /// is no member (removed, or its ticket no longer admits anyone), or asked under an old key
    /// epoch.
    #[error(
        "the peer sent only membership records: this node is not a member, or holds an old key"
    )]
    RecordsOnly(Box<members::Roster>),
}

fn malformed(what: &'static str) -> impl Fn(yrs::encoding::read::Error) -> SyncError {
    move |_| SyncError::Malformed(what)
}
