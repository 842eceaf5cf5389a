//! The node's inside: the tasks that own a node's documents and keep them in sync.
//!
//! | module | owns |
//! |---|---|
//! | [`room`] | one task per open document: its `Document`, presence, persistence, fan-out |
//! | [`presence`] | one document's awareness states, with clock-driven expiry |
//! | [`rooms`] | the registry of open rooms, by id and by topic |
//! | [`sync_driver`] | the actor between network and rooms: gossip, serving, pulls, redials |
//! | [`pull`] | one pull of one document from one peer |
//! | [`store`] | SQLite: the writer thread (group commit), docs, update log, snapshots, peers |

pub(crate) mod presence;
pub(crate) mod pull;
pub(crate) mod room;
pub(crate) mod rooms;
pub(crate) mod store;
pub(crate) mod sync_driver;
