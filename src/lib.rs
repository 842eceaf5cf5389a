//! peerdoc: a peer-to-peer collaborative editing backend. Documents are yrs (Yjs) CRDTs that
//! live on the participants' machines, sync directly between peers over libp2p, are sealed
//! end-to-end with a per-document key, and are stored in SQLite. Members are owners, writers or
//! readers, proven by certificates; removing one rotates the key.
//!
//! Embed a node with [`Node::spawn`]`(`[`Config`]`)`, and serve it over HTTP and WebSocket with
//! [`api::Server`]; the `peerdoc` binary is a thin CLI over the same two. Wire formats are
//! specified in `PROTOCOL.md`; [`core`] implements them (public so that fuzzers and other
//! implementations can use the exact codecs).
//!
//! # Layout
//!
//! The folders are the layers, and dependencies point down only:
//!
//! ```text
//! main.rs, cli/, client.rs     the binary: parse, wire Node + api::Server, talk to the daemon
//!        |
//!       api/        HTTP server: JSON API, /ws y-websocket sessions, web editor, access checks
//!        |
//!      node/        Node: spawn, shutdown, the document API (knows nothing of HTTP)
//!      /    \
//! replica/  net/    the node's inside (rooms, sync driver, store) | libp2p (the swarm's loop)
//!      \    /
//!      core/        pure: documents, envelopes, tickets, roles, sync codecs and decisions
//! ```
//!
//! `replica` uses `net`; `net` knows nothing of documents; `core` imports none of the others
//! and is what the seeded simulation runs. `data_dir` (beside `node`) owns the files of a data
//! directory; `config` the node's settings; `metrics` the Prometheus metrics; `actor` the
//! ask-the-owner helper. `web/` holds the editor page's sources; its bundle (`web/dist`) is
//! embedded by `api`. `bench/` is the benchmark harness, a crate of its own on this public API.
//!
//! | module | owns |
//! |---|---|
//! | [`core`] | pure: `blob` (attachments: references, sealing, pieces verified with bao, the multi-source download `schedule`, blob messages), `doc` (and `cut`: deleting what a removal voids; `rich`: TipTap's rich text as Markdown, through a block tree; `history`: versions as snapshots in the document, rebuilt, compared, restored, and when to record one), `state` (state vectors, digests), `update_check` (and `depth`: how deep shared types nest), `envelope` (keys by epoch), `ticket`, `access` (roles, certificates chained to the owner, key grants, `admission` of requests and gossip, client claims, members' signed display `name`s and `hold` records (kept in `membership/signed`) naming a document's holders, the `RemovalPlan` and the cut it names, the membership simulation), `hold` (holders: signed sealed entries, hold messages, what a holder admits, changes in parts), `limits` (per-peer sync limits), `sync` (messages, wire, gossip, pull, responder, transfers, members) |
//! | `net` | libp2p: the `Net` handle, the event loop that alone owns the `Swarm`, behaviour, codec, `guard` (peer scoring, connection limits, bans), `stall` (stalled gossip connections are recycled), `rejoin` (a reconnected peer that announces no subscriptions is recycled), `reachability`, `faults` (test-only message faults) |
//! | `replica` | one task per document (`room`: its `command`s, the CRDT, loaded on use and unloaded when idle, its `commits` queue to the store, its own gossip sealed, signed and handed to the network in `publish`, presence, membership and keys, client claims and the cut, its `history`), `rooms`, the `sync_driver` actor (`connections`: who shares what (telling each room whether a peer listens) and redialling; its `peers` address book, received `gossip` checked and handed to rooms, `pulls`, `serve`, `members`), `pull` (and roster exchange), `held` (the holder's side: documents kept sealed for others; their `records`, `entries`, `snapshots`, and the `blobs` requests for them), `holding` (the member's side: each holder of each document kept current, a `round` at a time (`running`: rounds in their tasks, and the stop's flush), its `snapshot` part, `once`: single exchanges asked for by the node), `blobs` (attachments: members' `requests` admitted and throttled, served with the `answer` to a request, downloads from several peers in `fetch`, their `files`, offers to and checks of `holders`), the SQLite `store` (its `schema`, its `error`s; control and SQL commands apart, the document lookups in `sql/docs`, what holders keep in `sql/held`, their calls in `held`, attachments' tables in `sql/blobs` and calls in `blobs`) |
//! | `node` | [`Node`]: wiring and shutdown order; `documents` (the document API: create, list, read, export, write, rename, delete), `history` (versions, diffs, restore, authors), `display_name` (this node's signed name), `status`; `holders` (asking nodes to hold a document, listing and releasing them, joining from one); `blobs` (attachments: add, fetch, read; the `listing` and garbage collection; their `links`); `doc` ([`Doc`], a handle on one document, and its live [`Session`]s: what `api`'s editor sessions and embedding apps use), `members` (tickets, removals, member lists), `join` (sharer or DHT), `startup` (network settings), `names` ([`DocRef`]: how a call names a document), its [`Error`] (with [`ErrorKind`]) and its typed value types |
//! | [`api`] | [`api::Server`]: the accept loop (connection cap, header-read timeout), routes (the history ones in `routes/versions`, the holders ones in `routes/holders`, the attachments ones in `routes/blobs`: uploads, range requests), `dto` (the JSON shapes of the node's values; `dto/holders`, `dto/blobs`), access checks (token, other sites), JSON errors, y-websocket sessions |
//! | `data_dir` | the data dir: lock, identity, sticky ports, `api.addr`/`api.token`, private files |
//! | `config` | [`Config`] and its defaults; `config/file`: the TOML file, read and applied |
//! | `metrics` | the node's Prometheus metrics (`GET /metrics`) and their encoding |
//! | `actor` | the command-with-reply helper every owning task is reached by; lock guards |
//!
//! The binary's own modules (`src/main.rs`; `src/cli/`: arguments and commands, `serve`, the
//! `status` output, the holders commands' output in `cli/holders`, the attachment commands in `cli/blobs`, the listings in `cli/lists`; `src/client.rs`) use only
//! this public API.

mod actor;
pub mod api;
mod config;
pub mod core;
mod data_dir;
mod metrics;
// Its `pub` items are what `testing` re-exports; without that feature they stay in the crate.
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
mod net;
mod node;
mod replica;

pub use config::{
    bootstrap_peer, AttachmentLimits, Config, ConfigError, ConfigFile, ReplicaLimits, CONFIG_FILE,
};
pub use core::doc::rich::{Format, Kind as DocKind};
pub use core::doc::DocId;
pub use data_dir::{api_addr_path, api_token_path, check_not_in_use, DataDirError};
pub use net::{DhtMode, NatStatus, NetError, RelayLimits};
#[cfg(feature = "test-faults")]
pub use net::{FaultsParseError, MessageFaults};
pub use node::{
    blob_link, content_type, is_image, Attached, Author, BlobInfo, Doc, DocInfo, DocPeer, DocRef,
    DocStatus, Error, ErrorKind, Event, GcReport, HeldInfo, HolderInfo, MemberInfo, Node,
    PeerStatus, PreviewSpan, Removed, Session, SpanChange, Standing, Status, SyncState,
    VersionChanges, VersionInfo, GC_GRACE_SECS,
};
pub use replica::blobs::{Transfer, TransferSource, TransferState};
pub use replica::pull::PullFailure;
pub use replica::room::RoomError;
pub use replica::store::{CommitFailure, StoreError};

/// The network handle, for integration tests that play a hostile peer. Only with the `testing`
/// feature, which the integration tests and the benchmark turn on; not a stable API.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing {
    pub use crate::net::{Net, NetConfig, NetEvent, MESH_DEGREE};
    pub use libp2p::gossipsub::MessageAcceptance;
    pub use libp2p::identity::{ed25519, Keypair};
    pub use libp2p::{Multiaddr, PeerId};
}
