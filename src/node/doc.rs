//! [`Doc`]: a handle on one document of a [`Node`], for apps that embed a node and for the HTTP
//! layer. Read and edit the document, and follow it live through a [`Session`]: every change
//! applied here (from peers, other sessions, the API) as it happens, this session's own edits
//! back once stored, and presence.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast::{self, error::RecvError};

use super::{DocRef, Error, Node};
use crate::core::doc::rich::{Format, Kind as DocKind};
use crate::core::doc::DocId;
use crate::core::sync::Frame;
use crate::replica::room::{Change, Origin, RoomHandle, Stage};

use super::types::{DocInfo, MemberInfo};

/// Session ids, unique in the process (a session's own changes are told apart by it).
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// One document of a node. Cheap to clone; stays valid while the document is unloaded when
/// idle (a call loads it again), until the document is deleted.
#[derive(Clone)]
pub struct Doc {
    node: Node,
    id: DocId,
    room: RoomHandle,
}

impl Node {
    /// The document `doc` names: its id or, as a user typed it, its id, local name or a unique id
    /// prefix.
    pub async fn doc<'a>(&self, doc: impl Into<DocRef<'a>>) -> Result<Doc, Error> {
        let room = self.room(doc.into()).await?;
        Ok(Doc {
            node: self.clone(),
            id: room.id,
            room,
        })
    }
}

impl Doc {
    pub fn id(&self) -> DocId {
        self.id
    }

    /// Its name here, this node's role in it, and when it was created.
    pub async fn info(&self) -> Result<DocInfo, Error> {
        self.node.doc_info(&self.id.to_string()).await
    }

    /// The content: Markdown for a rich document, the text (the `Y.Text` named `content`) for
    /// a plain one.
    pub async fn text(&self) -> Result<String, Error> {
        Ok(self.room.text().await?)
    }

    /// The document as Markdown, HTML or text.
    pub async fn export(&self, format: Format) -> Result<String, Error> {
        Ok(self.room.export(format).await?)
    }

    /// Whether it is rich or plain text.
    pub async fn kind(&self) -> Result<DocKind, Error> {
        Ok(self.room.kind().await?)
    }

    /// Replaces the content (Markdown for a rich document: only the blocks that differ change;
    /// text for a plain one, as a minimal diff). Returns once stored; then peers get it.
    pub async fn replace_text(&self, text: String) -> Result<(), Error> {
        Ok(self.room.replace_text(text).await?)
    }

    /// Appends to the content (blocks, or text). Returns once stored; then peers get it.
    pub async fn append_text(&self, text: String) -> Result<(), Error> {
        Ok(self.room.append_text(text).await?)
    }

    /// Applies a Yjs update (lib0 v1 encoding) made outside any session, as `write` does:
    /// refused on a reader's node, stored before it returns, then sent to peers and sessions.
    pub async fn apply(&self, update: Vec<u8>) -> Result<(), Error> {
        Ok(self.room.apply_local(update, Origin::Api).await?)
    }

    /// The document's state vector (lib0 v1 encoding).
    pub async fn state_vector(&self) -> Result<Vec<u8>, Error> {
        Ok(self.room.state_vector().await?)
    }

    /// What a replica at `state_vector` lacks, as one update; the whole document for an empty
    /// replica's (`[0]`).
    pub async fn diff(&self, state_vector: Vec<u8>) -> Result<Vec<u8>, Error> {
        Ok(self.room.diff(state_vector, None).await?.0)
    }

    /// Every presence state (editors' cursors and names, here and on peers) as one awareness
    /// update, if there are any.
    pub async fn presence(&self) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.room.awareness_state().await?)
    }

    /// The members and their roles, as this node knows them.
    pub async fn members(&self) -> Result<Vec<MemberInfo>, Error> {
        self.node.members(&self.id.to_string()).await
    }

    /// Follows the document from now on (call [`Doc::diff`] after, to start from its state).
    /// The document stays loaded while a session is open.
    pub async fn session(&self) -> Result<Session, Error> {
        Ok(Session {
            doc: self.clone(),
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            changes: self.room.subscribe().await?,
            presence: HashSet::new(),
        })
    }
}

/// What happened to a document, for one [`Session`].
#[derive(Debug, Clone)]
pub enum Event {
    /// A change from anyone but this session, applied here: a y-protocols `Update` (a Yjs
    /// update) or `Awareness` message.
    Changed(Frame),
    /// This session's update is stored: the same message, back (the reference y-websocket
    /// server echoes an editor's update; its clients take that as "saved").
    Saved(Frame),
    /// This session's update could not be stored yet (it stays in memory, and travels): start
    /// over from [`Doc::diff`] to see what the node holds.
    NotSaved,
    /// The session fell behind and missed changes: start over from [`Doc::diff`].
    Lagged,
    /// The document was closed (deleted here, or the node is shutting down).
    Closed,
}

/// A live view of a document: its changes as [`Event`]s, and edits and presence of its own.
/// Call [`Session::close`] when done, so that its presence states go.
pub struct Session {
    doc: Doc,
    id: u64,
    changes: broadcast::Receiver<Change>,
    /// Presence clients this session set, removed when it closes.
    presence: HashSet<u64>,
}

impl Session {
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// The next event (waits for one).
    pub async fn next(&mut self) -> Event {
        loop {
            let change = match self.changes.recv().await {
                Ok(change) => change,
                Err(RecvError::Lagged(_)) => return Event::Lagged,
                Err(RecvError::Closed) => return Event::Closed,
            };
            let mine = change.origin == Origin::Session(self.id);
            match change.stage {
                Stage::Applied if !mine => return Event::Changed(change.message),
                Stage::Committed if mine => return Event::Saved(change.message),
                Stage::NotStored if mine => return Event::NotSaved,
                _ => {}
            }
        }
    }

    /// Applies an edit of this session (a Yjs update): the other sessions and peers get it at
    /// once; this session gets [`Event::Saved`] once it is stored. Refused on a node that may
    /// not edit the document.
    pub async fn apply(&self, update: Vec<u8>) -> Result<(), Error> {
        let origin = Origin::Session(self.id);
        Ok(self.doc.room.apply_local(update, origin).await?)
    }

    /// Applies an awareness update of this session's editor (its cursor, its name).
    pub async fn set_presence(&mut self, update: Vec<u8>) -> Result<(), Error> {
        let origin = Origin::Session(self.id);
        let clients = self.doc.room.apply_awareness(update, origin).await?;
        self.presence.extend(clients);
        Ok(())
    }

    /// Ends the session: the presence states it set are removed everywhere.
    pub async fn close(self) {
        if !self.presence.is_empty() {
            let origin = Origin::Session(self.id);
            let clients = self.presence.into_iter().collect();
            let _ = self.doc.room.remove_awareness(clients, origin).await;
        }
    }
}
