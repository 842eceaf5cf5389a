//! The document API of [`Node`]: create, list, resolve and open, read and export, write,
//! rename and delete; and how a call's [`DocRef`] becomes a room.

use super::status::standing;
use super::{names, DocInfo, DocRef, Error, Node};
use crate::actor::unpoisoned;
use crate::core::doc::rich::{Format, Kind as DocKind};
use crate::core::doc::DocId;
use crate::core::envelope::DocKey;
use crate::replica::room::{Origin, RoomHandle};
use crate::replica::store::{unix_now, DocMeta, DocStats};

impl Node {
    /// Creates an empty plain-text document (see [`Node::create_doc_of`]).
    pub async fn create_doc(&self, name: &str) -> Result<DocInfo, Error> {
        self.create_doc_of(name, DocKind::Plain).await
    }

    /// Creates an empty document of a kind: rich text (TipTap's model, read and written as
    /// Markdown) or plain text. Its kind is part of the document: every member sees it.
    pub async fn create_doc_of(&self, name: &str, kind: DocKind) -> Result<DocInfo, Error> {
        let name = names::validate_name(name)?;
        let meta = DocMeta {
            id: DocId::random(),
            name,
            key: DocKey::random(),
            created: unix_now(),
            owner: self.inner.identity.public().to_bytes(),
            key_epoch: 0,
        };
        self.inner.store.create_doc(meta.clone()).await?;
        let room = self.open_room(&meta).await?;
        if kind == DocKind::Rich {
            room.make_rich().await?;
            self.inner.store.set_rich(meta.id).await?;
        }
        self.info(&meta).await
    }

    /// A document's listing, with this node's role in it.
    pub(crate) async fn info(&self, meta: &DocMeta) -> Result<DocInfo, Error> {
        let stats = self.inner.store.doc_stats(Some(meta.id)).await?;
        Ok(self.info_with(meta, stats.get(&meta.id).copied().unwrap_or_default()))
    }

    fn info_with(&self, meta: &DocMeta, stats: DocStats) -> DocInfo {
        let access = self.inner.rooms.get(&meta.id).map(|room| room.access());
        let role = standing(access.as_ref().map(|a| &a.membership), &self.peer_id());
        DocInfo {
            id: meta.id,
            name: meta.name.clone(),
            created: meta.created,
            role,
            epoch: access.map_or(0, |a| a.keys.current().0),
            joining: unpoisoned(self.inner.joining.lock()).contains(&meta.id),
            size: stats.bytes,
            changed: stats.changed,
            kind: if stats.rich {
                DocKind::Rich
            } else {
                DocKind::Plain
            },
        }
    }

    pub(super) async fn open_room(&self, meta: &DocMeta) -> Result<RoomHandle, Error> {
        let room = RoomHandle::open(meta, self.inner.room_ctx.clone()).await?;
        self.list_room(&room).await;
        Ok(room)
    }

    pub async fn list_docs(&self) -> Result<Vec<DocInfo>, Error> {
        let docs = self.inner.store.list_docs().await?;
        let stats = self.inner.store.doc_stats(None).await?;
        Ok(docs
            .iter()
            .map(|m| self.info_with(m, stats.get(&m.id).copied().unwrap_or_default()))
            .collect())
    }

    /// Finds a document by id, local name, or unique id prefix (in that order).
    pub(crate) async fn resolve(&self, doc: DocRef<'_>) -> Result<DocMeta, Error> {
        let query = doc.to_string();
        match names::find(self.inner.store.find_docs(&query).await?, &query) {
            Err(Error::UnknownDoc(q)) if self.holds_sealed(&q).await => Err(Error::HeldSealed(q)),
            found => found,
        }
    }

    /// The room of a document (a typed id whose room is open is not looked up).
    pub(crate) async fn room(&self, doc: DocRef<'_>) -> Result<RoomHandle, Error> {
        if let DocRef::Id(id) = doc {
            if let Some(room) = self.inner.rooms.get(&id) {
                return Ok(room);
            }
        }
        self.room_of(&self.resolve(doc).await?).await
    }

    /// The room of a resolved document, opened if it is not.
    pub(crate) async fn room_of(&self, meta: &DocMeta) -> Result<RoomHandle, Error> {
        match self.inner.rooms.get(&meta.id) {
            Some(room) => Ok(room),
            None => self.open_room(meta).await,
        }
    }

    pub async fn doc_info<'a>(&self, doc: impl Into<DocRef<'a>>) -> Result<DocInfo, Error> {
        self.info(&self.resolve(doc.into()).await?).await
    }

    /// The document's content: Markdown for a rich document, the text for a plain one
    /// ([`Error::Joining`] while a waiting join has none of it).
    pub async fn text<'a>(&self, doc: impl Into<DocRef<'a>>) -> Result<String, Error> {
        self.export(doc, Format::Markdown).await
    }

    /// The document as Markdown (the text itself, for a plain one), HTML or text.
    pub async fn export<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        format: Format,
    ) -> Result<String, Error> {
        let doc = doc.into();
        self.not_joining(doc).await?;
        Ok(self.room(doc).await?.export(format).await?)
    }

    /// Refuses a document whose waiting join has not completed: it has no text yet, and an
    /// empty one would pass for the document's.
    pub(super) async fn not_joining(&self, doc: DocRef<'_>) -> Result<(), Error> {
        if unpoisoned(self.inner.joining.lock()).is_empty() {
            return Ok(());
        }
        let meta = self.resolve(doc).await?;
        if unpoisoned(self.inner.joining.lock()).contains(&meta.id) {
            return Err(Error::Joining(meta.name));
        }
        Ok(())
    }

    /// Replaces the content or appends to it: Markdown for a rich document (a replacement
    /// changes only the blocks that differ; an append adds blocks), text for a plain one (as a
    /// minimal diff). Returns once durable.
    pub async fn write<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        text: String,
        append: bool,
    ) -> Result<(), Error> {
        let room = self.room(doc.into()).await?;
        if append {
            room.append_text(text).await?;
        } else {
            room.replace_text(text).await?;
        }
        Ok(())
    }

    /// Applies a Yjs update (lib0 v1 encoding) as a local edit, as an editor session does:
    /// refused on a reader's node, committed before it returns, then sent to peers. For apps
    /// that keep their own yrs or Yjs replica.
    pub async fn apply_update<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        update: Vec<u8>,
    ) -> Result<(), Error> {
        let room = self.room(doc.into()).await?;
        room.apply_local(update, Origin::Api).await?;
        Ok(())
    }

    /// Closes and deletes a document's local replica (peers keep theirs).
    pub(super) async fn forget(&self, meta: &DocMeta) {
        if let Some(room) = self.inner.rooms.remove(&meta.id) {
            room.close().await;
        }
        self.inner.net.unsubscribe(meta.id.topic_name()).await;
        self.inner.net.unprovide(meta.id.topic()).await;
        if let Err(e) = self.inner.store.delete_doc(meta.id).await {
            tracing::error!(doc = %meta.id, "could not delete: {e}");
        }
    }

    pub async fn rename<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        new_name: &str,
    ) -> Result<DocInfo, Error> {
        let mut meta = self.resolve(doc.into()).await?;
        let name = names::validate_name(new_name)?;
        self.inner.store.rename_doc(meta.id, name.clone()).await?;
        meta.name = name;
        self.info(&meta).await
    }

    /// Deletes this node's replica of a document.
    pub async fn delete<'a>(&self, doc: impl Into<DocRef<'a>>) -> Result<(), Error> {
        let meta = self.resolve(doc.into()).await?;
        self.forget(&meta).await;
        Ok(())
    }
}
