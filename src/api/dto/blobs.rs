//! The JSON shapes of attachments: one added, a document's list, a download, a collection.

use serde::{Deserialize, Serialize};

use crate::node;

/// An attachment just added (`POST /api/docs/{doc}/blobs`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attached {
    /// The reference: `b1.<hash>.<key>.<size>`.
    pub reference: String,
    pub hash: String,
    pub size: u64,
    pub name: String,
    /// The link that shows it in the document.
    pub link: String,
}

impl From<node::Attached> for Attached {
    fn from(a: node::Attached) -> Self {
        Attached {
            reference: a.blob.to_string(),
            hash: a.blob.hash.to_hex(),
            size: a.blob.size,
            name: a.name,
            link: a.link,
        }
    }
}

/// An attachment of a document (`GET /api/docs/{doc}/blobs`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobInfo {
    pub hash: String,
    pub size: u64,
    /// The reference, when the document's text gives it.
    pub reference: Option<String>,
    pub name: Option<String>,
    /// The document refers to it, now or in a version.
    pub referenced: bool,
    /// Bytes of it kept on this node (`size` when whole).
    pub here: u64,
    /// Online peers of the document that have it whole.
    pub peers: Vec<String>,
    /// The document's holders that keep it whole.
    #[serde(default)]
    pub replicas: Vec<String>,
}

impl From<node::BlobInfo> for BlobInfo {
    fn from(b: node::BlobInfo) -> Self {
        BlobInfo {
            hash: b.hash.to_hex(),
            size: b.size,
            reference: b.blob.map(|r| r.to_string()),
            name: b.name,
            referenced: b.referenced,
            here: b.here,
            peers: b.peers.iter().map(ToString::to_string).collect(),
            replicas: b.replicas.iter().map(ToString::to_string).collect(),
        }
    }
}

/// A download (`GET /api/docs/{doc}/blobs/{ref}/transfer`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Transfer {
    pub size: u64,
    /// Bytes verified and kept so far.
    pub have: u64,
    /// `looking`, `fetching`, `done` or `failed`.
    pub state: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Each source with the verified bytes it sent, and whether it was banned for a bad piece.
    pub sources: Vec<TransferSource>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TransferSource {
    pub peer: String,
    pub bytes: u64,
    pub banned: bool,
}

impl From<crate::Transfer> for Transfer {
    fn from(t: crate::Transfer) -> Self {
        let (state, error) = match t.state {
            crate::TransferState::Looking => ("looking", None),
            crate::TransferState::Fetching => ("fetching", None),
            crate::TransferState::Done => ("done", None),
            crate::TransferState::Failed(why) => ("failed", Some(why)),
        };
        Transfer {
            size: t.size,
            have: t.have,
            state: state.into(),
            error,
            sources: t
                .sources
                .into_iter()
                .map(|s| TransferSource {
                    peer: s.peer.to_string(),
                    bytes: s.bytes,
                    banned: s.banned,
                })
                .collect(),
        }
    }
}

/// What `POST /api/gc` removed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GcReport {
    pub removed: usize,
    pub bytes: u64,
    pub kept: usize,
}

impl From<node::GcReport> for GcReport {
    fn from(r: node::GcReport) -> Self {
        GcReport {
            removed: r.removed,
            bytes: r.bytes,
            kept: r.kept,
        }
    }
}
