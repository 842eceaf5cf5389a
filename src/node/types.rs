//! The node API's value types, typed (ids, peers, roles, states). The node knows nothing of
//! HTTP: the API server turns these into its own JSON shapes.

use std::path::PathBuf;

use libp2p::{Multiaddr, PeerId};

use crate::core::access::Role;
use crate::core::doc::rich::Kind as DocKind;
use crate::core::doc::DocId;
use crate::net::NatStatus;
use crate::replica::pull::Gap;

/// A node's standing in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// A member, with its role.
    Member(Role),
    /// Its membership is not known yet (a join that waits for a member).
    Unknown,
    /// The owner removed it.
    Removed,
}

impl Standing {
    /// `owner`, `writer`, `reader`, `none` (not known yet) or `removed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Member(role) => role.as_str(),
            Standing::Unknown => "none",
            Standing::Removed => "removed",
        }
    }
}

impl std::fmt::Display for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A document as this node lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocInfo {
    pub id: DocId,
    pub name: String,
    /// Unix seconds.
    pub created: i64,
    /// This node's standing in it.
    pub role: Standing,
    /// The newest content-key epoch this node holds (a new one begins with each removal).
    pub epoch: u32,
    /// A join that waits for a member (`join --wait`): the document is empty until one answers.
    pub joining: bool,
    /// Bytes this node stores for it (its snapshot and log).
    pub size: u64,
    /// Unix seconds of the last change this node stored (local or from a peer), or of its
    /// creation or join before any.
    pub changed: i64,
    /// Rich text or plain text.
    pub kind: DocKind,
}

/// A member of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub peer: PeerId,
    /// Its role; [`Standing::Removed`] for the node asked, once the owner removed it.
    pub role: Standing,
    /// This is the node asked.
    pub you: bool,
    /// The display name it signed, if any.
    pub name: Option<String>,
    /// What to call it: its name, with its short peer id beside it where another member of
    /// the list has the same name; its short peer id where it has none.
    pub label: String,
}

/// What a removal did ([`crate::Node::revoke`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The document's new key epoch.
    pub epoch: u32,
    /// Members removed with it: their only admission passed through the removed member.
    pub with_it: Vec<MemberInfo>,
    /// Members the owner certified again directly (their ticket was closed).
    pub recertified: usize,
    /// Tickets (open invitations) that no longer admit anyone.
    pub tickets_closed: usize,
}

/// What [`crate::Node::status`] reports.
#[derive(Debug, Clone)]
pub struct Status {
    pub peer_id: PeerId,
    /// This node's display name, if it has one.
    pub name: Option<String>,
    pub data_dir: PathBuf,
    pub nat: NatStatus,
    pub listen_addrs: Vec<Multiaddr>,
    /// Addresses others confirmed they can reach us at.
    pub public_addrs: Vec<Multiaddr>,
    /// Addresses through relays (`…/p2p-circuit`).
    pub relayed_addrs: Vec<Multiaddr>,
    /// Relays holding a reservation for us.
    pub relays: Vec<PeerId>,
    pub connected_peers: Vec<PeerStatus>,
    pub docs: Vec<DocStatus>,
}

/// A connected peer and the addresses we know for it.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
    /// Through a relay (until a hole punch succeeds), not direct.
    pub relayed: bool,
}

/// One document in [`Status`].
#[derive(Debug, Clone)]
pub struct DocStatus {
    pub id: DocId,
    pub name: String,
    /// This node's standing in it (a removed node syncs with no one).
    pub role: Standing,
    /// Connected peers that share this document, with their sync state.
    pub peers: Vec<DocPeer>,
    /// This replica's state vector as `client:clock` pairs in client order (empty when not
    /// known without loading the document).
    pub state_vector: String,
    /// A digest of the operations and deletions this replica has seen: two replicas with the
    /// same digest hold the same document.
    pub digest: Option<[u8; 32]>,
}

/// What the last pull from a peer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// Both have seen the same operations.
    UpToDate,
    /// The peer has operations this node has not applied yet.
    CatchingUp,
    /// This node has operations the peer lacks; the peer fetches them.
    PeerBehind,
    /// No pull has completed yet.
    NotSynced,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::UpToDate => "up_to_date",
            SyncState::CatchingUp => "catching_up",
            SyncState::PeerBehind => "peer_behind",
            SyncState::NotSynced => "not_synced",
        }
    }
}

/// The sync state of one document with one peer.
#[derive(Debug, Clone)]
pub struct DocPeer {
    pub peer: PeerId,
    /// Seconds since the last completed pull from this peer, if any.
    pub last_sync_secs: Option<u64>,
    pub state: SyncState,
    /// Operations (characters of inserted text, as yrs counts them) this node had yet to fetch
    /// from the peer at the last pull.
    pub to_fetch: u64,
    /// Operations of this node the peer lacked at the last pull.
    pub peer_lacks: u64,
}

impl DocPeer {
    /// `last_sync`: seconds since the last completed pull from `peer`, and what it found.
    pub(crate) fn new(peer: PeerId, last_sync: Option<(u64, Gap)>) -> DocPeer {
        let gap = last_sync.map(|(_, gap)| gap).unwrap_or_default();
        let state = match (last_sync, gap.to_fetch, gap.peer_lacks) {
            (None, ..) => SyncState::NotSynced,
            (Some(_), 0, 0) => SyncState::UpToDate,
            (Some(_), 0, _) => SyncState::PeerBehind,
            (Some(_), ..) => SyncState::CatchingUp,
        };
        DocPeer {
            peer,
            last_sync_secs: last_sync.map(|(secs, _)| secs),
            state,
            to_fetch: gap.to_fetch,
            peer_lacks: gap.peer_lacks,
        }
    }
}
