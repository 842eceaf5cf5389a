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
