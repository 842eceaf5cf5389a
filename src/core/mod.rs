//! The pure core: deterministic, no I/O, no async, no tokio, libp2p networking or axum. Time
//! and randomness that influence a decision are arguments. The node runs this code, and the
//! seeded simulation in `sync` runs the very same code, so what the simulation proves holds for
//! the node.
//!
//! | module | owns |
//! |---|---|
//! | [`access`] | roles (owner, writer, reader), certificates, a document's membership |
//! | [`addrs`] | bounded address lists on the wire (tickets, member lists) |
//! | [`blob`] | attachments: references, sealing, pieces and their verification, the multi-source download plan, blob messages |
//! | [`doc`] | `DocId`, topics, `Document` (yrs doc + `content` text): apply, diff, minimal-diff writes |
//! | [`envelope`] | `DocKey`, seal/open (XChaCha20-Poly1305) |
//! | [`hold`] | holders (blind replicas): signed sealed entries, hold messages, what a holder admits, changes in parts |
//! | [`limits`] | per-peer rate and fault limits of the sync protocol |
//! | [`state`] | a replica's state as sync compares it: state vector and digest, the empty update |
//! | [`ticket`] | share tickets |
//! | [`update_check`] | bounds check of untrusted CRDT updates before yrs decodes them |
//! | [`sync`] | y-protocols messages, sync codecs, gossip decisions, pull and responder state machines |

pub mod access;
pub mod addrs;
pub mod blob;
pub mod doc;
pub mod envelope;
pub mod hold;
pub mod limits;
pub mod state;
pub mod sync;
pub mod ticket;
pub mod update_check;
