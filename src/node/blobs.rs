//! The node's attachments API: add a file to a document ([`Node::attach`]), fetch one from the
//! document's peers ([`Node::fetch_blob`]), read it ([`Node::read_blob`]), list a document's
//! attachments ([`Node::blobs`]) and remove those no document refers to any more
//! ([`Node::gc_blobs`]). The formats and rules are `core::blob`'s; the transfers are
//! `replica::blobs`'.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use libp2p::PeerId;
use tokio::sync::watch;

use super::{DocRef, Error, Node};
use crate::core::blob::{refs_in, BlobHash, BlobRef};
use crate::core::doc::rich::Format;
use crate::core::doc::DocId;
use crate::replica::blobs::files::FilesError;
use crate::replica::blobs::{FetchJob, Offer, Transfer, TransferState};
use crate::replica::room::RoomHandle;
use crate::replica::store::{unix_now_ms, BlobRow, HeldKey};

/// Unreferenced blobs younger than this are kept by garbage collection: an attachment added
/// without `--insert` has this long to be put into the document.
pub const GC_GRACE_SECS: i64 = 24 * 3600;

/// An attachment added to a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub blob: BlobRef,
    /// The file name it was added under.
    pub name: String,
    /// The link that shows it in the document: `/api/docs/<doc>/blobs/<reference>/<name>`.
    pub link: String,
}

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

/// The link a document holds for an attachment.
pub fn blob_link(doc: &DocId, blob: &BlobRef, name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("/api/docs/{doc}/blobs/{blob}/{name}")
}

/// The document as the network (and the attachment tables) name it: topic and owner.
fn doc_key(room: &RoomHandle) -> HeldKey {
    HeldKey {
        topic: room.topic,
        owner: room.access().membership.owner(),
    }
}

fn files_error(e: FilesError) -> Error {
    match e {
        FilesError::TooLarge { size, max } => Error::AttachmentTooLarge { size, max },
        e if e.is_full() => Error::AttachmentDiskFull(e.to_string()),
        e => Error::AttachmentIo(e.to_string()),
    }
}

impl Node {
    /// Seals the file at `path` into the attachment store; its reference.
    async fn seal(&self, path: &Path) -> Result<BlobRef, Error> {
        let blobs = &self.inner.blobs;
        let (files, secret, source, max) = (
            blobs.files.clone(),
            self.inner.blob_secret,
            path.to_path_buf(),
            blobs.limits.max_bytes,
        );
        tokio::task::spawn_blocking(move || files.seal(&secret, &source, max))
            .await
            .map_err(|e| Error::AttachmentIo(e.to_string()))?
            .map_err(files_error)
    }

    /// Records a sealed blob as whole here and attached to the document, within the
    /// document's limit (a blob sealed for nothing is removed again).
    async fn record_attached(&self, room: &RoomHandle, blob: BlobRef) -> Result<(), Error> {
        let count = crate::core::blob::pieces::piece_count(blob.size);
        let mut have = crate::core::blob::Bitmap::new(count);
        (0..count).for_each(|p| have.set(p));
        let existing = self.inner.store.blob(blob.hash).await?;
        let attached = self
            .inner
            .store
            .attached_blob(blob.hash, doc_key(room))
            .await?
            .is_some();
        if !attached {
            if let Err(e) = self.check_doc_room(room, blob.size).await {
                if existing.is_none() {
                    let files = self.inner.blobs.files.clone();
                    let _ = tokio::task::spawn_blocking(move || files.remove(&blob.hash)).await;
                }
                return Err(e);
            }
        }
        let row = BlobRow {
            hash: blob.hash,
            size: blob.size,
            have: have.as_bytes().to_vec(),
            complete: true,
            added: unix_now_ms() as i64 / 1000,
        };
        self.inner.store.put_blob(row, doc_key(room)).await?;
        Ok(())
    }

    /// A fresh path in the attachment store's scratch folder, for an upload to be written to
    /// before [`Node::attach`] seals it (removed at the next start if left behind).
    pub fn blob_scratch(&self) -> std::path::PathBuf {
        self.inner.blobs.files.scratch()
    }

    /// Seals the file at `path` into an attachment of the document (owner and writers only)
    /// and keeps it here; with `insert`, also appends a link to it (an image for image files)
    /// to the document. The same file attached twice is one attachment.
    pub async fn attach<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        path: &Path,
        name: Option<String>,
        insert: bool,
    ) -> Result<Attached, Error> {
        let doc = doc.into();
        self.not_joining(doc).await?;
        let room = self.room(doc).await?;
        if !self.may_write(&room) {
            return Err(Error::NotWriterForAttachments);
        }
        let name = name
            .filter(|n| !n.trim().is_empty())
            .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "attachment".into());
        let blobs = &self.inner.blobs;
        let size = std::fs::metadata(path)
            .map_err(|e| Error::AttachmentIo(format!("cannot read {}: {e}", path.display())))?
            .len();
        let max_doc = self.inner.config.attachments.max_doc_bytes;
        if size > max_doc {
            return Err(Error::DocAttachmentsFull {
                used: 0,
                adding: size,
                max: max_doc,
            });
        }
        // Sealed, then recorded (with this moment: garbage collection leaves it a day). If a
        // collection removed the files in between, they are sealed again.
        let mut sealed = None;
        for _ in 0..2 {
            let blob = self.seal(path).await?;
            self.record_attached(&room, blob).await?;
            if blobs.files.has_complete(&blob.hash) {
                sealed = Some(blob);
                break;
            }
        }
        let blob = sealed.ok_or_else(|| {
            Error::AttachmentIo(
                "the attachment's files went while it was added; add it again".into(),
            )
        })?;
        self.offer_to_holders(&room, blob.hash, blob.size, None)
            .await;
        let link = blob_link(&room.id, &blob, &name);
        if insert {
            let label = name.replace(['[', ']'], "");
            let text = if is_image(&name) {
                format!("\n![{label}]({link})\n")
            } else {
                format!("\n[{label} ({})]({link})\n", human_size(blob.size))
            };
            room.append_text(text).await?;
        }
        Ok(Attached { blob, name, link })
    }

    /// Asks the document's holders (or only `holder`) to keep an attachment: each fetches it
    /// from this node, in the background.
    pub(super) async fn offer_to_holders(
        &self,
        room: &RoomHandle,
        hash: BlobHash,
        size: u64,
        holder: Option<PeerId>,
    ) {
        let membership = room.access().membership.clone();
        let holders: Vec<PeerId> = membership
            .holders()
            .iter()
            .filter_map(crate::core::access::peer_of)
            .filter(|p| holder.is_none_or(|h| h == *p))
            .collect();
        if holders.is_empty() {
            return;
        }
        self.inner
            .blobs
            .offer(Offer {
                topic: room.topic,
                owner: membership.owner(),
                hash,
                size,
                holders,
            })
            .await;
    }

    /// Asks a holder to keep every attachment of the document that is here whole (a holder
    /// just chosen gets what was added before it).
    pub(super) async fn offer_all(&self, room: &RoomHandle, holder: PeerId) -> Result<(), Error> {
        for row in self.inner.store.doc_blobs(doc_key(room)).await? {
            if row.complete {
                self.offer_to_holders(room, row.hash, row.size, Some(holder))
                    .await;
            }
        }
        Ok(())
    }

    /// The attachments of a document together stay within `max_doc_bytes`.
    async fn check_doc_room(&self, room: &RoomHandle, adding: u64) -> Result<(), Error> {
        let used: u64 = self
            .inner
            .store
            .doc_blobs(doc_key(room))
            .await?
            .iter()
            .map(|b| b.size)
            .sum();
        let max = self.inner.config.attachments.max_doc_bytes;
        if used.saturating_add(adding) > max {
            return Err(Error::DocAttachmentsFull { used, adding, max });
        }
        Ok(())
    }

    /// Starts fetching an attachment of the document from its online peers (or joins the
    /// download already running); watch the transfer to see it go. Done at once when the
    /// attachment is here.
    pub async fn fetch_blob<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        blob: BlobRef,
    ) -> Result<watch::Receiver<Transfer>, Error> {
        let doc = doc.into();
        self.not_joining(doc).await?;
        let room = self.room(doc).await?;
        if self.inner.blobs.files.has_complete(&blob.hash)
            && self
                .inner
                .store
                .blob(blob.hash)
                .await?
                .is_some_and(|r| r.complete)
        {
            // Here (perhaps for another document): no peer needs to be asked.
            self.attach_existing(&room, blob).await?;
            let (_, rx) = watch::channel(Transfer {
                size: blob.size,
                have: blob.size,
                sources: Vec::new(),
                state: TransferState::Done,
            });
            return Ok(rx);
        }
        self.check_doc_room(&room, blob.size).await?;
        let sources = self.blob_sources(&room).await;
        let job = FetchJob {
            hash: blob.hash,
            size: blob.size,
            topic: room.topic,
            owner: room.access().membership.owner(),
            sources,
            quiet: false,
        };
        self.inner
            .blobs
            .fetch(job)
            .await
            .ok_or(Error::Net(crate::net::NetError::Stopped))
    }

    async fn attach_existing(&self, room: &RoomHandle, blob: BlobRef) -> Result<(), Error> {
        if let Some(row) = self.inner.store.blob(blob.hash).await? {
            self.inner.store.put_blob(row, doc_key(room)).await?;
        }
        Ok(())
    }

    /// Fetches an attachment and waits until it is here; the transfer's last state.
    pub async fn fetch_blob_and_wait<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        blob: BlobRef,
    ) -> Result<Transfer, Error> {
        let mut rx = self.fetch_blob(doc, blob).await?;
        let done = rx
            .wait_for(|t| matches!(t.state, TransferState::Done | TransferState::Failed(_)))
            .await
            .map(|t| t.clone())
            .map_err(|_| Error::Net(crate::net::NetError::Stopped))?;
        match &done.state {
            TransferState::Failed(why) => Err(Error::AttachmentUnavailable(why.clone())),
            _ => Ok(done),
        }
    }

    /// Who to ask for a document's attachments: its online peers and its holders.
    async fn blob_sources(&self, room: &RoomHandle) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self
            .inner
            .sync
            .status()
            .await
            .remove(&room.id)
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.peer)
            .collect();
        let membership = room.access().membership.clone();
        peers.retain(|p| !membership.is_revoked(p));
        for holder in membership.holders() {
            if let Some(peer) = crate::core::access::peer_of(&holder) {
                if !peers.contains(&peer) && peer != self.peer_id() {
                    peers.push(peer);
                }
            }
        }
        peers
    }

    /// Plaintext bytes `[offset, offset + len)` of an attachment of the document that is here
    /// whole ([`Node::fetch_blob`] first).
    pub async fn read_blob<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        blob: BlobRef,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, Error> {
        let room = self.room(doc.into()).await?;
        if self
            .inner
            .store
            .attached_blob(blob.hash, doc_key(&room))
            .await?
            .is_none_or(|r| !r.complete)
        {
            return Err(Error::AttachmentNotHere(blob.hash.to_hex()));
        }
        let end = offset.saturating_add(len as u64).min(blob.size);
        let len = usize::try_from(end.saturating_sub(offset)).unwrap_or(0);
        let files = self.inner.blobs.files.clone();
        tokio::task::spawn_blocking(move || files.read_plain(&blob, offset, len))
            .await
            .map_err(|e| Error::AttachmentIo(e.to_string()))?
            .map_err(|e| Error::AttachmentIo(format!("cannot read the attachment: {e}")))
    }

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

/// File names links give their attachments: the last segment of `…/blobs/<ref>/<name>`.
fn link_names(text: &str) -> HashMap<BlobRef, String> {
    let mut out = HashMap::new();
    for blob in refs_in(text) {
        let marker = format!("{blob}/");
        if let Some(at) = text.find(&marker) {
            let rest = &text[at + marker.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && !")]\"'<>".contains(*c))
                .collect();
            if !name.is_empty() {
                out.insert(blob, name);
            }
        }
    }
    out
}

/// Whether a file name is an image a browser shows inline.
pub fn is_image(name: &str) -> bool {
    matches!(
        content_type(name),
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/avif"
    )
}

/// The content type an attachment is served with, by its name. Types a browser would run
/// (HTML, SVG) are served as downloads.
pub fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "pdf" => "application/pdf",
        "txt" | "md" | "csv" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_name_their_files_and_dangerous_types_download() {
        let blob = BlobRef {
            hash: BlobHash([1; 32]),
            key: [2; 32],
            size: 3,
        };
        let doc = DocId([4; 16]);
        let link = blob_link(&doc, &blob, "my photo (1).png");
        assert!(link.ends_with("/my_photo__1_.png"), "{link}");
        let text = format!("![x]({link}) and [y]({blob})");
        assert_eq!(
            link_names(&text).get(&blob).map(String::as_str),
            Some("my_photo__1_.png")
        );
        assert!(is_image("a.PNG"));
        assert_eq!(content_type("x.svg"), "application/octet-stream");
        assert_eq!(content_type("x.html"), "application/octet-stream");
        assert_eq!(human_size(1536), "1.5 KB");
    }
}
