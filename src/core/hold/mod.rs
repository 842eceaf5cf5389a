//! Holders (blind replicas): nodes that keep a document's sealed changes for its members
//! without its key, so members need never be online together. Pure: the signed, sealed
//! [`Entry`] a member uploads, the hold messages on `/peerdoc/sync/1` ([`wire`]), what a
//! holder admits ([`admit`]), and how a member splits a large change into parts and joins them
//! again ([`parts`]). Byte layouts are in PROTOCOL.md ("Holders").
//!
//! A holder learns a document's id, owner and roster (certificates are signed plaintext), who
//! uploads what size when, and nothing of the content: every change is sealed with the
//! document's key, which a holder never gets.

mod admit;
mod entry;
pub mod parts;
pub mod wire;

pub use admit::{admit, Asked, Refusal};
pub use entry::{Entry, EntryError, EntryKind};
pub use wire::{HeldState, HoldRequest, HoldResponse};

/// First byte of every hold request and response on `/peerdoc/sync/1` (sync messages start
/// with [`crate::core::sync::WIRE_VERSION`], 1).
pub const HOLD_WIRE: u8 = 2;
/// Largest sealed entry: it must fit in one request with its framing.
pub const MAX_ENTRY: usize = 960 * 1024;
/// Plaintext bytes of a change per entry; larger changes travel in several parts.
pub const PART_SIZE: usize = 768 * 1024;
/// Entry bytes per fetch response at most (one larger entry is sent alone).
pub const FETCH_BYTES: usize = 768 * 1024;
