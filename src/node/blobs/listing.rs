//! What a document's attachments are, as this node knows them: the ones its text refers to
//! (now or in a version) and the ones kept here for it ([`Node::blobs`]), and garbage
//! collection of those nothing refers to ([`Node::gc_blobs`]).

use std::collections::{HashMap, HashSet};

use super::links::link_names;
use super::{doc_key, DocRef, Error, Node};
use crate::core::blob::{refs_in, BlobHash, BlobRef};
use crate::core::doc::rich::Format;
use crate::replica::room::RoomHandle;
use crate::replica::store::{unix_now_ms, BlobRow, HeldKey};
use libp2p::PeerId;

/// Unreferenced blobs younger than this are kept by garbage collection: an attachment added
/// without `--insert` has this long to be put into the document.
pub const GC_GRACE_SECS: i64 = 24 * 3600;

/// An attachment of a document, as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub hash: BlobHash,
    pub size: u64,
    /// The reference, when the document's text gives it (an attachment added here without
    /// `--insert` is listed by hash only until a link to it is written).
    pub blob: Option<BlobRef>,
    /// The file name a link in the document gives it, if one does.
    pub name: Option<String>,
    /// The document (now, or in a version) refers to it.
    pub referenced: bool,
    /// Bytes of it this node keeps (`size` when whole).
    pub here: u64,
    /// Online peers of the document that have it whole (asked now), holders apart.
    pub peers: Vec<PeerId>,
    /// The document's holders that keep it whole (asked now).
    pub replicas: Vec<PeerId>,
}

/// What garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub removed: usize,
    pub bytes: u64,
    pub kept: usize,
}

impl Node {
    /// The attachments of a document: every one its text refers to now or in a version, and
    /// every one added or fetched here for it, with what this node keeps of each and which
    /// online peers have it.
    pub async fn blobs<'a>(&self, doc: impl Into<DocRef<'a>>) -> Result<Vec<BlobInfo>, Error> {
        let doc = doc.into();
        self.not_joining(doc).await?;
        let room = self.room(doc).await?;
        let referenced = self.referenced(&room).await?;
        let kept: HashMap<BlobHash, BlobRow> = self
            .inner
            .store
            .doc_blobs(doc_key(&room))
            .await?
            .into_iter()
            .map(|r| (r.hash, r))
            .collect();
        let mut out: Vec<BlobInfo> = Vec::new();
        let mut seen = HashSet::new();
        for (blob, name) in referenced.iter() {
            seen.insert(blob.hash);
            out.push(BlobInfo {
                hash: blob.hash,
                size: blob.size,
                blob: Some(*blob),
                name: name.clone(),
                referenced: true,
                here: 0,
                peers: Vec::new(),
                replicas: Vec::new(),
            });
        }
        for row in kept.values() {
            if !seen.contains(&row.hash) {
                // Added here but not (yet) in the document: the key is not known from a link.
                out.push(BlobInfo {
                    hash: row.hash,
                    size: row.size,
                    blob: None,
                    name: None,
                    referenced: false,
                    here: 0,
                    peers: Vec::new(),
                    replicas: Vec::new(),
                });
            }
        }
        let sources = self.blob_sources(&room).await;
        let membership = room.access().membership.clone();
        let (topic, owner) = (room.topic, membership.owner());
        // Each attachment's sources are asked at once (one slow peer costs one timeout).
        let held = futures::future::join_all(
            out.iter()
                .map(|info| self.inner.blobs.who_has(topic, owner, info.hash, &sources)),
        )
        .await;
        for (info, has) in out.iter_mut().zip(held) {
            info.here = match kept.get(&info.hash) {
                Some(r) if r.complete => r.size,
                Some(r) => {
                    let count = crate::core::blob::pieces::piece_count(r.size);
                    crate::core::blob::Bitmap::from_bytes(count, &r.have)
                        .map(|have| {
                            (0..count)
                                .filter(|&p| have.get(p))
                                .map(|p| crate::core::blob::pieces::piece_span(r.size, p).1)
                                .sum()
                        })
                        .unwrap_or(0)
                }
                None => 0,
            };
            let (replicas, peers) = has.into_iter().partition(|p| {
                crate::core::access::key_of(p).is_ok_and(|k| membership.is_holder(&k))
            });
            (info.peers, info.replicas) = (peers, replicas);
        }
        Ok(out)
    }

    /// Every attachment the document refers to, now or in one of its versions, with the name
    /// its link gives it.
    async fn referenced(&self, room: &RoomHandle) -> Result<Vec<(BlobRef, Option<String>)>, Error> {
        let mut texts = vec![room.export(Format::Markdown).await?];
        for version in room.versions().await? {
            texts.push(
                room.export_at(version.version.id.clone(), Format::Markdown)
                    .await?,
            );
        }
        let mut out: Vec<(BlobRef, Option<String>)> = Vec::new();
        for text in &texts {
            let names = link_names(text);
            for blob in refs_in(text) {
                if !out.iter().any(|(b, _)| *b == blob) {
                    out.push((blob, names.get(&blob).cloned()));
                }
            }
        }
        Ok(out)
    }

    /// Removes the attachments that no document here refers to (now or in a version), that
    /// are not attached to a document this node holds for others, and that were added more
    /// than [`GC_GRACE_SECS`] ago (`grace_secs` overrides it), with their files; downloads
    /// running are left alone.
    pub async fn gc_blobs(&self, grace_secs: Option<i64>) -> Result<GcReport, Error> {
        let mut referenced: HashSet<BlobHash> = HashSet::new();
        for meta in self.inner.store.list_docs().await? {
            let room = self.room_of(&meta).await?;
            referenced.extend(
                self.referenced(&room)
                    .await?
                    .into_iter()
                    .map(|(b, _)| b.hash),
            );
        }
        // A holder keeps what it was asked to keep while it holds the document.
        let held: HashSet<HeldKey> = match &self.inner.held {
            Some(held) => held.list().await?.iter().map(|h| h.key).collect(),
            None => HashSet::new(),
        };
        let cutoff = unix_now_ms() as i64 / 1000 - grace_secs.unwrap_or(GC_GRACE_SECS);
        let mut report = GcReport::default();
        for (row, docs) in self.inner.store.all_blobs().await? {
            if referenced.contains(&row.hash)
                || docs.iter().any(|d| held.contains(d))
                || row.added > cutoff
                || self.inner.blobs.is_running(row.hash).await
            {
                report.kept += 1;
                continue;
            }
            // Only if nothing added or fetched it since this listing.
            if !self.inner.store.delete_blob(row.hash, row.added).await? {
                report.kept += 1;
                continue;
            }
            let files = self.inner.blobs.files.clone();
            let hash = row.hash;
            tokio::task::spawn_blocking(move || files.remove(&hash))
                .await
                .map_err(|e| Error::AttachmentIo(e.to_string()))?
                .map_err(|e| {
                    Error::AttachmentIo(format!("cannot remove an attachment's files: {e}"))
                })?;
            report.removed += 1;
            report.bytes += row.size;
        }
        Ok(report)
    }
}
