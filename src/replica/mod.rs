//! The node's inside: the tasks that own a node's documents and keep them in sync.
//!
//! | module | owns |
//! |---|---|
//! | [`room`] | one task per document while it has work (dormant otherwise): its `Document` (loaded on use, unloaded when idle), presence, membership and keys (published for readers that must not wait), persistence, fan-out, removals |
//! | [`presence`] | one document's awareness states, owned by sessions and peers, with clock-driven expiry |
//! | [`rooms`] | the registry of rooms, by id and by topic |
//! | [`sync_driver`] | the actor between network and rooms: gossip (checked against roles), serving (per-peer limits), pulls (from writers), roster exchanges, redials |
//! | [`pull`] | one pull of one document from one writer; one roster exchange |
//! | [`held`] | the holder's side: documents kept sealed for their members (records, entries, what it admits) |
//! | [`holding`] | the member's side: each holder of each document kept current (records, new entries read, changes uploaded) |
//! | [`store`] | SQLite: the writer thread (group commit), docs, update log, snapshots, certificates, epoch keys, peers |

pub(crate) mod blobs;
pub(crate) mod held;
pub(crate) mod holding;
pub(crate) mod presence;
pub(crate) mod pull;
pub(crate) mod room;
pub(crate) mod rooms;
pub(crate) mod store;
pub(crate) mod sync_driver;

use libp2p::request_response::ResponseChannel;
use tokio::sync::mpsc;

use crate::net::Net;

/// Hands a peer's request to an actor without waiting. A full queue (or a stopped actor)
/// answers the request at once with `busy`; `channel_of` takes its response channel back out
/// of the input.
pub(crate) fn hand_over<I>(
    tx: &mpsc::Sender<I>,
    input: I,
    net: &Net,
    busy: Vec<u8>,
    channel_of: impl FnOnce(I) -> Option<ResponseChannel<Vec<u8>>>,
) {
    if let Err(mpsc::error::TrySendError::Full(input) | mpsc::error::TrySendError::Closed(input)) =
        tx.try_send(input)
    {
        if let Some(channel) = channel_of(input) {
            let _ = net.try_respond(channel, busy);
        }
    }
}
