//! The JSON shapes of the HTTP API: what the server sends and the CLI's client reads back.
//! Ids, roles and states are strings here; the node's own values ([`crate::DocInfo`] and the
//! rest) are typed, and each converts into its shape below.

use serde::{Deserialize, Serialize};

use crate::node;

mod blobs;
mod holders;

pub use blobs::{Attached, BlobInfo, GcReport, Transfer, TransferSource};
pub use holders::{HeldInfo, HolderInfo};

/// A document as listed by the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocInfo {
    pub id: String,
    pub name: String,
    /// Unix seconds.
    pub created: i64,
    /// This node's role: `owner`, `writer` or `reader` (`none` until its membership is known,
    /// `removed` once the owner removed this node).
    pub role: String,
    /// The newest content-key epoch this node holds (a new one begins with each removal).
    pub epoch: u32,
    /// A join that waits for a member (`join --wait`): the document is empty until one answers.
    #[serde(default)]
    pub joining: bool,
    /// Bytes this node stores for it.
    #[serde(default)]
    pub size: u64,
    /// Unix seconds of the last change this node stored (local or from a peer).
    #[serde(default)]
    pub changed: i64,
    /// `rich` (TipTap's model; `cat` and `write` speak Markdown) or `plain`.
    #[serde(default)]
    pub kind: String,
}

/// A member of a document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberInfo {
    pub peer: String,
    /// `owner`, `writer` or `reader`; `removed` for the node asked, once the owner removed it.
    pub role: String,
    /// This is the node asked.
    pub you: bool,
    /// The display name the member signed, if any.
    #[serde(default)]
    pub name: Option<String>,
    /// What to show for it: its name (with its short peer id where two members share a name),
    /// or its short peer id.
    #[serde(default)]
    pub label: String,
}

/// What a removal did ([`crate::Node::revoke`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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

/// A version of a document (`GET /api/docs/{doc}/versions`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VersionInfo {
    pub id: String,
    pub name: Option<String>,
    /// Unix time in ms, by the recording node's clock.
    pub at: u64,
    /// For a restore: the version it restored.
    #[serde(default)]
    pub restored_from: Option<String>,
    /// Characters inserted and deleted since the version before; `null` while this node lacks
    /// edits the version names.
    pub inserted: Option<usize>,
    pub deleted: Option<usize>,
    /// Who inserted text: `{"peer", "label"}` (`peer` is `null` for an unclaimed client).
    #[serde(default)]
    pub authors: Vec<Author>,
}

/// A span of a version's preview (`GET /api/docs/{doc}/versions/{version}/preview`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PreviewSpan {
    pub text: String,
    /// `same`, `inserted` or `deleted` (since the version before).
    pub change: String,
    /// Who wrote the text, for a change.
    pub author: Option<Author>,
}

impl From<node::PreviewSpan> for PreviewSpan {
    fn from(s: node::PreviewSpan) -> PreviewSpan {
        PreviewSpan {
            text: s.text,
            change: match s.change {
                node::SpanChange::Same => "same",
                node::SpanChange::Inserted => "inserted",
                node::SpanChange::Deleted => "deleted",
            }
            .into(),
            author: s.author.map(|a| Author {
                peer: a.peer.map(|p| p.to_string()),
                label: a.label,
            }),
        }
    }
}

/// A member who wrote in a version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Author {
    pub peer: Option<String>,
    pub label: String,
}

impl From<node::VersionInfo> for VersionInfo {
    fn from(v: node::VersionInfo) -> VersionInfo {
        VersionInfo {
            id: v.id,
            name: v.name,
            at: v.at_ms,
            restored_from: v.restored_from,
            inserted: v.changes.as_ref().map(|c| c.inserted),
            deleted: v.changes.as_ref().map(|c| c.deleted),
            authors: v
                .changes
                .map(|c| {
                    c.authors
                        .into_iter()
                        .map(|a| Author {
                            peer: a.peer.map(|p| p.to_string()),
                            label: a.label,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// This node's display name (`GET`/`PUT /api/name`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeName {
    /// `None` until one is set.
    pub name: Option<String>,
    /// The config file sets it (`name = …`): it cannot be changed through the API.
    #[serde(default)]
    pub from_config: bool,
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub peer_id: String,
    /// This node's display name, if it has one.
    #[serde(default)]
    pub name: Option<String>,
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
    /// This node's role, as in [`DocInfo::role`] (`removed`: it syncs with no one).
    #[serde(default)]
    pub role: String,
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
    /// What the last pull found: `up_to_date` (both have seen the same operations),
    /// `catching_up` (the peer has operations this node has not applied yet), `peer_behind`
    /// (this node has operations the peer lacks; the peer fetches them), or `not_synced` (no
    /// pull has completed yet).
    pub state: String,
    /// Operations (characters of inserted text, as yrs counts them) this node had yet to fetch
    /// from the peer at the last pull.
    pub to_fetch: u64,
    /// Operations of this node the peer lacked at the last pull.
    pub peer_lacks: u64,
    /// `state` is `up_to_date`.
    pub in_sync: bool,
}

impl From<node::DocInfo> for DocInfo {
    fn from(d: node::DocInfo) -> DocInfo {
        DocInfo {
            id: d.id.to_string(),
            name: d.name,
            created: d.created,
            role: d.role.as_str().into(),
            epoch: d.epoch,
            joining: d.joining,
            size: d.size,
            changed: d.changed,
            kind: match d.kind {
                crate::DocKind::Rich => "rich".into(),
                crate::DocKind::Plain => "plain".into(),
            },
        }
    }
}

impl From<node::MemberInfo> for MemberInfo {
    fn from(m: node::MemberInfo) -> MemberInfo {
        MemberInfo {
            peer: m.peer.to_string(),
            role: m.role.as_str().into(),
            you: m.you,
            name: m.name,
            label: m.label,
        }
    }
}

impl From<node::Removed> for Removed {
    fn from(r: node::Removed) -> Removed {
        Removed {
            epoch: r.epoch,
            with_it: r.with_it.into_iter().map(MemberInfo::from).collect(),
            recertified: r.recertified,
            tickets_closed: r.tickets_closed,
        }
    }
}

impl From<node::PeerStatus> for PeerStatus {
    fn from(p: node::PeerStatus) -> PeerStatus {
        PeerStatus {
            peer: p.peer.to_string(),
            addrs: strings(&p.addrs),
            connection: if p.relayed { "relayed" } else { "direct" }.into(),
        }
    }
}

impl From<node::DocPeer> for DocPeer {
    fn from(p: node::DocPeer) -> DocPeer {
        DocPeer {
            peer: p.peer.to_string(),
            last_sync_secs: p.last_sync_secs,
            state: p.state.as_str().into(),
            to_fetch: p.to_fetch,
            peer_lacks: p.peer_lacks,
            in_sync: p.state == node::SyncState::UpToDate,
        }
    }
}

impl From<node::DocStatus> for DocStatus {
    fn from(d: node::DocStatus) -> DocStatus {
        DocStatus {
            id: d.id.to_string(),
            name: d.name,
            role: d.role.as_str().into(),
            peers: d.peers.into_iter().map(DocPeer::from).collect(),
            state_vector: d.state_vector,
            digest: d.digest.map(hex::encode).unwrap_or_default(),
        }
    }
}

impl Status {
    /// The node's status, with the address its HTTP API is served at, if it is.
    pub fn new(s: node::Status, http: Option<String>) -> Status {
        Status {
            peer_id: s.peer_id.to_string(),
            name: s.name,
            data_dir: s.data_dir.display().to_string(),
            http,
            nat: s.nat.as_str().into(),
            listen_addrs: strings(&s.listen_addrs),
            public_addrs: strings(&s.public_addrs),
            relayed_addrs: strings(&s.relayed_addrs),
            relays: s.relays.iter().map(ToString::to_string).collect(),
            connected_peers: s
                .connected_peers
                .into_iter()
                .map(PeerStatus::from)
                .collect(),
            docs: s.docs.into_iter().map(DocStatus::from).collect(),
        }
    }
}

fn strings(addrs: &[libp2p::Multiaddr]) -> Vec<String> {
    addrs.iter().map(ToString::to_string).collect()
}
