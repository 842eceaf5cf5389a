//! What a room tells others: a [`Change`] for its editor sessions (with its [`Origin`] and
//! [`Stage`]), and [`Outgoing`] work for the sync driver (records to spread).

use crate::core::doc::DocId;
use crate::core::sync::Frame;

/// Where a change came from, so subscribers can skip their own echoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// From a peer over the network.
    Remote,
    /// From the HTTP API (CLI `write`, imports).
    Api,
    /// From a local editor session with this id.
    Session(u64),
}

/// A change to the document or to its presence states.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) origin: Origin,
    /// `Update` (a yrs update) or `Awareness` (an awareness update).
    pub(crate) message: Frame,
    pub(crate) stage: Stage,
}

impl Change {
    pub(super) fn applied(origin: Origin, message: Frame) -> Change {
        Change {
            origin,
            message,
            stage: Stage::Applied,
        }
    }
}

/// Who a [`Change`] is for. An editor's change goes to the other sessions when applied, and
/// back to its own session once stored (as the reference y-websocket server echoes a client's
/// update, which its client takes as "saved").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Applied: for every session but the origin's.
    Applied,
    /// The origin session's change is durable: for the origin only (its echo).
    Committed,
    /// The origin session's change could not be stored yet (kept in memory): the origin
    /// session closes so that its editor resyncs.
    NotStored,
}

/// What a room asks of the sync driver (its gossip it publishes itself).
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// The room signed membership records of its own (a claim of a Yjs client this node
    /// writes through): send them to the members at once.
    Records(DocId),
}
