//! The node API's value types. They are what the HTTP API sends as JSON and what the CLI's
//! client reads back, so they use strings and plain numbers, not internal types.

use serde::{Deserialize, Serialize};

/// A document as listed by the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocInfo {
    pub id: String,
    pub name: String,
    /// Unix seconds.
    pub created: i64,
    /// This node's role: `owner`, `writer` or `reader` (`none` until its membership is known).
    pub role: String,
    /// The newest content-key epoch this node holds (a new one begins with each removal).
    pub epoch: u32,
}

/// A member of a document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberInfo {
    pub peer: String,
    /// `owner`, `writer` or `reader`.
    pub role: String,
    /// This is the node asked.
    pub you: bool,
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub peer_id: String,
    pub data_dir: String,
    /// The HTTP API's address, when the node is served over HTTP.
    pub http: Option<String>,
    /// `public` (others can dial us), `private` (behind a NAT: reached through relays) or
    /// `unknown` (not tested yet).
    pub nat: String,
    pub listen_addrs: Vec<String>,
    /// Addresses others confirmed they can reach us at.
    pub public_addrs: Vec<String>,
    /// Addresses through relays (`…/p2p-circuit`).
    pub relayed_addrs: Vec<String>,
    /// Relays holding a reservation for us.
    pub relays: Vec<String>,
    pub connected_peers: Vec<PeerStatus>,
    pub docs: Vec<DocStatus>,
}

/// A connected peer and the addresses we know for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerStatus {
    pub peer: String,
    pub addrs: Vec<String>,
    /// `direct`, or `relayed` (through a relay, until a hole punch succeeds).
    pub connection: String,
}

/// One document in `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocStatus {
    pub id: String,
    pub name: String,
    /// Connected peers that share this document, with their sync state.
    pub peers: Vec<DocPeer>,
    /// This replica's state vector: which operations it has seen, as `client:clock` pairs in
    /// client order.
    #[serde(default)]
    pub state_vector: String,
    /// A digest of the operations and deletions this replica has seen (hex): two replicas
    /// with the same digest hold the same document.
    #[serde(default)]
    pub digest: String,
}

/// The sync state of one document with one peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocPeer {
    pub peer: String,
    /// Seconds since the last completed pull from this peer, if any.
    pub last_sync_secs: Option<u64>,
    /// The last pull found both replicas at the same state vector.
    pub in_sync: bool,
}
