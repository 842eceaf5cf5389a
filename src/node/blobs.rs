//! The node's attachments API: add a file to a document ([`Node::attach`]), fetch one from the
//! document's peers ([`Node::fetch_blob`]), read it ([`Node::read_blob`]), list a document's
//! attachments ([`Node::blobs`]) and remove those no document refers to any more
//! ([`Node::gc_blobs`]). The formats and rules are `core::blob`'s; the transfers are
//! `replica::blobs`'.

use std::path::Path;

use libp2p::PeerId;
use tokio::sync::watch;

mod links;
mod listing;

use links::human_size;
pub use links::{blob_link, content_type, is_image};
pub use listing::{BlobInfo, GcReport, GC_GRACE_SECS};

use super::{DocRef, Error, Node};
use crate::core::blob::{BlobHash, BlobRef};
use crate::replica::blobs::files::FilesError;
use crate::replica::blobs::{FetchJob, Offer, Transfer, TransferState};
use crate::replica::room::RoomHandle;
use crate::replica::store::{unix_now_ms, BlobRow, HeldKey};

/// An attachment added to a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub blob: BlobRef,
    /// The file name it was added under.
    pub name: String,
    /// The link that shows it in the document: `/api/docs/<doc>/blobs/<reference>/<name>`.
    pub link: String,
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
        let have =
            crate::core::blob::Bitmap::full(crate::core::blob::pieces::piece_count(blob.size));
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
}
