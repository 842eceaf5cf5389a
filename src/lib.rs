//! peerdoc: a peer-to-peer collaborative editing backend. Documents are yrs (Yjs) CRDTs that
//! live on the participants' machines, sync directly between peers over libp2p, are sealed
//! end-to-end with a per-document key, and are stored in SQLite.
//!
//! Embed a node with [`Node::spawn`]`(`[`Config`]`)`; the `peerdoc` binary is a thin CLI over the
//! same API. Wire formats are specified in `PROTOCOL.md`.
//!
//! # Layout
//!
//! Dependencies point down only: `cli/main → node → {api → ws, net, peer, room} → {store, doc,
//! sync, envelope}`. The pure modules (`doc`, `sync`, `envelope`) do no I/O and no async.
//! `web/` holds the editor page's sources; its bundle (`web/dist`) is embedded by `api`.
//!
//! | module | owns |
//! |---|---|
//! | [`doc`] | pure: `DocId`, topics, `Document` (yrs doc + `content` text): apply, diff, minimal-diff writes |
//! | [`envelope`] | pure: `DocKey`, seal/open (XChaCha20-Poly1305), share tickets |
//! | [`sync`] | pure: gossip payloads, sync request/response codecs, chunked transfers, pull state machine |
//! | [`store`] | SQLite: the writer thread (group commit), docs, update log, snapshots, peers |
//! | [`room`] | one task per open doc: owns its `Document`, persists, fans out changes; `Rooms` registry |
//! | [`net`] | libp2p: `Behaviour`, the `EventLoop` that alone owns the `Swarm`, the `Net` handle |
//! | [`peer`] | the sync driver between `net` and rooms: gossip in/out, serving and pulling, anti-entropy |
//! | [`node`] | `Node`: wiring, start-up and shutdown order, the document API |
//! | [`api`] | axum HTTP server: JSON API, `/ws/<doc>`, the embedded web editor, access checks |
//! | [`ws`] | one y-websocket editor session: y-protocols messages ↔ room calls |
//! | [`client`] | blocking HTTP client the CLI uses to reach the daemon |
//! | [`cli`] | clap commands |
//! | [`config`] | `Config` and its defaults |
//! | `actor` | the command-with-reply helper every owning task is reached by |

mod actor;
pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod doc;
pub mod envelope;
pub mod net;
pub mod node;
pub mod peer;
pub mod room;
pub mod store;
pub mod sync;
pub mod ws;

pub use config::Config;
pub use doc::DocId;
pub use node::{Error, Node};
