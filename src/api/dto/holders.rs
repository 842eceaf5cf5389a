//! The JSON shapes of holders: a document's holders, and what this node holds for others.

use serde::{Deserialize, Serialize};

use crate::node;

/// A holder of a document (`GET /api/docs/{doc}/replicas`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HolderInfo {
    pub peer: String,
    /// It holds the document now (`false`: it was let go).
    pub holds: bool,
    /// The owner or writer that decided it, and when (Unix ms).
    pub decided_by: Option<String>,
    pub decided_at_ms: u64,
    /// Unix seconds of the last exchange with it that succeeded (`null`: never).
    pub reached: Option<i64>,
    /// Bytes and entries it kept then, and how many of them this node has read.
    pub bytes: u64,
    pub entries: u64,
    pub read: u64,
    /// Unix ms of the last entry it kept.
    pub last_write_ms: Option<u64>,
    /// Why the last exchange with it failed, if it did.
    pub error: Option<String>,
}

/// A document this node keeps sealed for others (`GET /api/held`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeldInfo {
    pub doc: String,
    pub topic: String,
    pub owner: Option<String>,
    /// Unix seconds when this node began to hold it.
    pub created: i64,
    pub bytes: u64,
    pub entries: u64,
    /// Entries below this offset were replaced by a member's snapshot.
    #[serde(default)]
    pub compacted_below: u64,
    pub last_write_ms: Option<u64>,
}

impl From<node::HolderInfo> for HolderInfo {
    fn from(h: node::HolderInfo) -> HolderInfo {
        HolderInfo {
            peer: h.peer.to_string(),
            holds: h.holds,
            decided_by: h.decided_by.map(|p| p.to_string()),
            decided_at_ms: h.decided_at_ms,
            reached: h.reached,
            bytes: h.bytes,
            entries: h.entries,
            read: h.read,
            last_write_ms: h.last_write_ms,
            error: h.error,
        }
    }
}

impl From<node::HeldInfo> for HeldInfo {
    fn from(h: node::HeldInfo) -> HeldInfo {
        HeldInfo {
            doc: h.doc.to_string(),
            topic: h.topic,
            owner: h.owner.map(|p| p.to_string()),
            created: h.created,
            bytes: h.bytes,
            entries: h.entries,
            compacted_below: h.compacted_below,
            last_write_ms: h.last_write_ms,
        }
    }
}
