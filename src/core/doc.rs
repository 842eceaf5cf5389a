//! Pure document model: [`DocId`], its gossip topic, and [`Document`] (a yrs `Doc` whose plain
//! text lives in the `Y.Text` named `content`, and whose rich text, for a rich document, in
//! TipTap's `XmlFragment('default')`: see `rich`): apply updates, state vectors, diffs, and local
//! text edits expressed as minimal diffs (`text_diff`) so concurrent edits elsewhere survive;
//! `cut` deletes what a removal voids.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::core::state::digest_of;
pub use crate::core::state::{
    check_leading_count, decode_sv, holds_our_state, sv_gap, sv_has_unseen, sv_text, Summary,
    EMPTY_UPDATE,
};
use crate::core::update_check::{check_update_v1, dependencies_v1, type_depth_v1, Dependencies};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use yrs::types::Delta;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Doc, GetString, MapRef, OffsetKind, Options, ReadTxn, StateVector, Text, TextRef, Transact,
    Update, XmlFragmentRef,
};

/// Name of the shared `Y.Text` that `cat`/`write` and the web editor use.
pub const TEXT_NAME: &str = "content";
/// How deep this node's own writes may nest shared types: rich text's blocks nest at most
/// `rich::model::MAX_DEPTH` deep, a few types each.
const LOCAL_TYPE_DEPTH: usize = 3 * rich::model::MAX_DEPTH;
/// Longest document name, in bytes (local names and the name carried in a ticket).
pub const MAX_NAME_LEN: usize = 200;

/// Domain separator for deriving a document's gossip topic from its id.
const TOPIC_CONTEXT: &str = "peerdoc 2026-11 document topic v1";

/// Errors of the pure document layer.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("not a document id: {0:?} (expected 32 hex characters)")]
    BadId(String),
    #[error("malformed update: {0}")]
    BadUpdate(String),
    #[error("malformed state vector: {0}")]
    BadStateVector(String),
    #[error("the CRDT library panicked while applying an update; the update was rejected")]
    Panicked,
    #[error("malformed version: {0}")]
    BadVersion(String),
    #[error(
        "this node does not hold all of that version's edits yet: wait until it has synced with \
         the member that made it"
    )]
    VersionAhead,
}

/// A document's random 128-bit identity. Shown as 32 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId(pub [u8; 16]);

impl DocId {
    pub fn random() -> Self {
        let mut id = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut id);
        DocId(id)
    }

    pub fn parse(s: &str) -> Result<Self, DocError> {
        let bytes = hex::decode(s).map_err(|_| DocError::BadId(s.to_string()))?;
        let id: [u8; 16] = bytes
            .try_into()
            .map_err(|_| DocError::BadId(s.to_string()))?;
        Ok(DocId(id))
    }

    /// The 32-byte topic hash: what the network sees instead of the id.
    pub fn topic(&self) -> [u8; 32] {
        blake3::derive_key(TOPIC_CONTEXT, &self.0)
    }

    /// The gossipsub topic string for this document.
    pub fn topic_name(&self) -> String {
        topic_name(&self.topic())
    }
}

/// What every gossipsub topic name of ours starts with.
const TOPIC_PREFIX: &str = "pd1/";

/// Gossipsub topic string for a topic hash: `pd1/` + the hash in unpadded base64url (47
/// characters). Short because every gossip message carries it: the hex form took 27 more bytes
/// of every keystroke (BENCHMARKS.md, row 8).
pub fn topic_name(topic: &[u8; 32]) -> String {
    format!("{TOPIC_PREFIX}{}", URL_SAFE_NO_PAD.encode(topic))
}

/// Inverse of [`topic_name`]; `None` for anything that is not a peerdoc topic.
pub fn parse_topic_name(name: &str) -> Option<[u8; 32]> {
    let encoded = name.strip_prefix(TOPIC_PREFIX)?;
    URL_SAFE_NO_PAD.decode(encoded).ok()?.try_into().ok()
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocId({self})")
    }
}

/// What applying a remote update did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The part that changed this replica (what to persist and forward); `None` for duplicates.
    pub delta: Option<Vec<u8>>,
    /// The replica holds operations whose predecessors it lacks: pull a full diff from whoever
    /// sent this update.
    pub incomplete: bool,
}

/// One replica of a document: the yrs `Doc`, its `content` text, its rich text and peerdoc's
/// own fields (`rich`).
pub struct Document {
    doc: Doc,
    text: TextRef,
    rich: XmlFragmentRef,
    meta: MapRef,
    /// How deep shared types may nest in it (a bound, raised by each update applied): updates
    /// that would nest them past [`crate::core::update_check::MAX_TYPE_DEPTH`] are refused.
    type_depth: usize,
}

impl Default for Document {
    fn default() -> Self {
        Self::new()
    }
}

impl Document {
    /// An empty document with a fresh random yrs client id (never reused across restarts,
    /// so a crash can never make two different edits share an id). Deleted content is kept
    /// (no garbage collection): versions are rebuilt from it (`history`).
    pub fn new() -> Self {
        Self::with_options(Options {
            offset_kind: OffsetKind::Utf16,
            skip_gc: true,
            ..Options::default()
        })
    }

    /// An empty document with a chosen yrs client id: for deterministic simulations only.
    pub fn with_client_id(client_id: u64) -> Self {
        Self::with_options(Options {
            offset_kind: OffsetKind::Utf16,
            skip_gc: true,
            ..Options::with_client_id(yrs::ClientID::new(client_id))
        })
    }

    // Offsets are UTF-16 code units, as in Yjs: yrs 0.28's byte-offset mode underflows on
    // astral-plane characters (found by the replace_text property test).
    fn with_options(options: Options) -> Self {
        let doc = Doc::with_options(options);
        let text = doc.get_or_insert_text(TEXT_NAME);
        let rich = doc.get_or_insert_xml_fragment(rich::FRAGMENT_NAME);
        let meta = doc.get_or_insert_map(rich::META_NAME);
        Document {
            doc,
            text,
            rich,
            meta,
            type_depth: LOCAL_TYPE_DEPTH,
        }
    }

    /// Rebuilds a document from stored updates (snapshot first, then the log).
    pub fn from_updates<'a>(updates: impl IntoIterator<Item = &'a [u8]>) -> Result<Self, DocError> {
        let mut doc = Document::new();
        for update in updates {
            doc.apply(update)?;
        }
        Ok(doc)
    }

    /// Applies an update from the network only if everything it builds on is here (or in the
    /// update itself); otherwise changes nothing and says [`Applied::incomplete`], so the
    /// caller pulls a complete diff instead. yrs 0.28 parks an update whose predecessors are
    /// missing, but once a second one is parked it integrates them across the hole: a "skip"
    /// stays in the state, the state vector does not advance past it, and what later builds on
    /// those operations never reaches replicas that lack them (found by the membership
    /// simulation, where a removed writer's refused edits leave holes for good).
    pub fn apply_complete(&mut self, update: &[u8]) -> Result<Applied, DocError> {
        let deps = dependencies_v1(update).map_err(DocError::BadUpdate)?;
        self.apply_complete_walked(update, &deps)
    }

    /// [`Document::apply_complete`] of an update already walked: `deps` is what
    /// [`dependencies_v1`] returned for these bytes (which is also the bounds check), so the
    /// update is not walked again.
    pub fn apply_complete_walked(
        &mut self,
        update: &[u8],
        deps: &Dependencies,
    ) -> Result<Applied, DocError> {
        if !self.has_dependencies(deps) {
            return Ok(Applied {
                delta: None,
                incomplete: true,
            });
        }
        self.apply_checked(update, deps)
    }

    fn has_dependencies(&self, deps: &Dependencies) -> bool {
        if deps.has_skip {
            return false;
        }
        let sv = self.doc.transact().state_vector();
        let have = |client: u64| u64::from(sv.get(&yrs::ClientID::new(client)));
        let mut available: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
        for &(client, first, end) in &deps.sections {
            if first > have(client) {
                return false;
            }
            let known = available.entry(client).or_insert_with(|| have(client));
            *known = (*known).max(end);
        }
        deps.refs.iter().all(|&(client, clock)| {
            clock
                < available
                    .get(&client)
                    .copied()
                    .unwrap_or_else(|| have(client))
        })
    }

    /// Applies a remote update. Malformed bytes are an error and leave the document untouched.
    ///
    /// An update whose predecessors are missing is parked by yrs as "pending" until they arrive.
    /// Pending data is never persisted or forwarded (it is not in [`Applied::delta`] and diffs
    /// exclude it), so the caller should pull a complete diff from the sender when
    /// [`Applied::incomplete`] is set.
    pub fn apply(&mut self, update: &[u8]) -> Result<Applied, DocError> {
        // yrs decodes and integrates untrusted bytes: bound what it may allocate and how deep
        // it recurses first.
        let deps = dependencies_v1(update).map_err(DocError::BadUpdate)?;
        self.apply_checked(update, &deps)
    }

    /// [`Document::apply`] of bytes that passed [`check_update_v1`] (`deps`: what it found).
    /// Types must not nest too deep; a panic in yrs must not take the node down.
    fn apply_checked(&mut self, update: &[u8], deps: &Dependencies) -> Result<Applied, DocError> {
        let type_depth = match deps.has_types {
            true => type_depth_v1(update, self.type_depth).map_err(DocError::BadUpdate)?,
            false => 0,
        };
        self.type_depth = self.type_depth.max(type_depth);
        let doc = &self.doc;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let update =
                Update::decode_v1(update).map_err(|e| DocError::BadUpdate(e.to_string()))?;
            let mut txn = doc.transact_mut();
            txn.apply_update(update)
                .map_err(|e| DocError::BadUpdate(e.to_string()))?;
            let incomplete =
                txn.store().pending_update().is_some() || txn.store().pending_ds().is_some();
            let delta = txn.has_changes().then(|| txn.encode_update_v1());
            Ok(Applied { delta, incomplete })
        }));
        result.unwrap_or(Err(DocError::Panicked))
    }

    /// The encoded (lib0 v1) state vector.
    pub fn state_vector(&self) -> Vec<u8> {
        self.doc.transact().state_vector().encode_v1()
    }

    /// Everything this replica has that a replica with `remote_sv` lacks (always includes the
    /// full delete set, as Yjs SyncStep2 does). Uses `encode_diff`, not
    /// `encode_state_as_update`: the latter merges in pending updates, and in yrs 0.28 that
    /// merge makes replicas diverge (found by the convergence simulation).
    pub fn diff(&self, remote_sv: &[u8]) -> Result<Vec<u8>, DocError> {
        let sv = decode_sv(remote_sv)?;
        Ok(self.doc.transact().encode_diff_v1(&sv))
    }

    /// A digest of everything this replica has seen: its state vector and its delete set, in
    /// a canonical form (clients sorted, deleted ranges sorted and merged). Two replicas with
    /// the same digest hold the same operations and deletions. (The state vector alone does not
    /// say that: a deletion does not advance it.) A node keeps the digest of an unloaded
    /// document, so a sync request from a replica in the same state is answered without
    /// loading it.
    pub fn digest(&self) -> [u8; 32] {
        digest_of(&self.doc.transact().snapshot())
    }

    /// The state vector and digest together.
    pub fn summary(&self) -> Summary {
        Summary {
            sv: self.state_vector(),
            digest: self.digest(),
        }
    }

    /// What a replica at `remote_sv` whose [`Document::digest`] is `remote_digest` lacks:
    /// nothing ([`EMPTY_UPDATE`]) if the digests match, else [`Document::diff`].
    pub fn diff_unless_same(
        &self,
        remote_sv: &[u8],
        remote_digest: &[u8; 32],
    ) -> Result<Vec<u8>, DocError> {
        if holds_our_state(&self.digest(), remote_sv, remote_digest)? {
            return Ok(EMPTY_UPDATE.to_vec());
        }
        self.diff(remote_sv)
    }

    /// The whole state as one update: what a snapshot stores.
    pub fn encode_state(&self) -> Vec<u8> {
        self.doc.transact().encode_diff_v1(&StateVector::default())
    }

    /// Whether applying `update` would change this replica: it has operations or deletions
    /// this replica lacks. (A reconnecting editor resends what it has; for a read-only replica
    /// that is fine, a real edit is not.)
    pub fn would_change(&self, update: &[u8]) -> Result<bool, DocError> {
        check_update_v1(update).map_err(DocError::BadUpdate)?;
        let update = catch_unwind(|| Update::decode_v1(update))
            .map_err(|_| DocError::Panicked)?
            .map_err(|e| DocError::BadUpdate(e.to_string()))?;
        let txn = self.doc.transact();
        if update.extends(&txn.state_vector()) {
            return Ok(true);
        }
        let deleted = txn.snapshot().delete_set;
        let theirs = update.delete_set();
        let changes =
            theirs
                .client_ids()
                .any(|client| match (theirs.get(&client), deleted.get(&client)) {
                    (Some(range), Some(ours)) => !range.subset_of(ours),
                    (Some(range), None) => !range.is_empty(),
                    (None, _) => false,
                });
        Ok(changes)
    }

    /// True if `remote_sv` has seen operations this replica has not (so pulling from it helps).
    pub fn is_behind(&self, remote_sv: &[u8]) -> Result<bool, DocError> {
        sv_has_unseen(&self.state_vector(), remote_sv)
    }

    /// The plain text of the `content` type.
    pub fn text(&self) -> String {
        self.text.get_string(&self.doc.transact())
    }

    /// Replaces the text by applying the minimal character diff from the current text, so that
    /// concurrent edits to untouched regions survive the merge. Returns the update, if any.
    pub fn replace_text(&mut self, new: &str) -> Option<Vec<u8>> {
        let old = self.text();
        if old == new {
            return None;
        }
        // One pass through the text as a delta (retain, delete, insert): applying each edit at
        // its offset would walk the text from its start every time, quadratic in the number
        // of edits (a rewrite of a 40 KB text took seconds).
        let mut delta = Vec::new();
        let mut pos = 0;
        for edit in text_edits(&old, new) {
            if edit.at > pos {
                delta.push(Delta::retain(edit.at - pos));
            }
            if edit.delete > 0 {
                delta.push(Delta::delete(edit.delete));
            }
            if !edit.insert.is_empty() {
                delta.push(Delta::insert(edit.insert));
            }
            pos = edit.at + edit.delete;
        }
        let mut txn = self.doc.transact_mut();
        self.text.apply_delta(&mut txn, delta);
        txn.has_changes().then(|| txn.encode_update_v1())
    }

    /// Appends to the text. Returns the update, if any.
    pub fn append_text(&mut self, suffix: &str) -> Option<Vec<u8>> {
        if suffix.is_empty() {
            return None;
        }
        let mut txn = self.doc.transact_mut();
        self.text.push(&mut txn, suffix);
        Some(txn.encode_update_v1())
    }

    /// One edit in one transaction, as an editor makes it: at UTF-16 offset `at` (as in Yjs),
    /// delete `delete` code units, then insert `insert`. Offsets are clamped to the text.
    /// Returns the update, if anything changed. Nothing is materialised: a keystroke on a long
    /// document costs what yrs costs.
    pub fn splice(&mut self, at: u32, delete: u32, insert: &str) -> Option<Vec<u8>> {
        let mut txn = self.doc.transact_mut();
        let len = self.text.len(&txn);
        let at = at.min(len);
        let delete = delete.min(len - at);
        if delete > 0 {
            self.text.remove_range(&mut txn, at, delete);
        }
        if !insert.is_empty() {
            self.text.insert(&mut txn, at, insert);
        }
        txn.has_changes().then(|| txn.encode_update_v1())
    }

    /// Inserts at a UTF-8 byte offset (clamped to the text and to a char boundary). For tests and tools.
    pub fn insert(&mut self, at: usize, s: &str) -> Option<Vec<u8>> {
        let text = self.text();
        let at = utf16_len(&text[..floor_char_boundary(&text, at.min(text.len()))]);
        let mut txn = self.doc.transact_mut();
        self.text.insert(&mut txn, at, s);
        txn.has_changes().then(|| txn.encode_update_v1())
    }

    /// Deletes `len` UTF-8 bytes at a byte offset (clamped to the text and to char boundaries).
    pub fn delete(&mut self, at: usize, len: usize) -> Option<Vec<u8>> {
        let text = self.text();
        let start = floor_char_boundary(&text, at.min(text.len()));
        let end = floor_char_boundary(&text, (start + len).min(text.len()));
        if end <= start {
            return None;
        }
        let mut txn = self.doc.transact_mut();
        let (at, len) = (utf16_len(&text[..start]), utf16_len(&text[start..end]));
        self.text.remove_range(&mut txn, at, len);
        txn.has_changes().then(|| txn.encode_update_v1())
    }

    /// The underlying yrs document (for y-websocket sessions and awareness).
    pub fn ydoc(&self) -> &Doc {
        &self.doc
    }
}

mod cut;
pub mod history;
pub mod rich;
pub mod since;
mod text_diff;
pub use cut::Voided;
use text_diff::{floor_char_boundary, text_edits, utf16_len};

#[cfg(test)]
pub(crate) mod tests;
