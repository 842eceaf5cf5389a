//! History: versions recorded in the document itself, so every member lists the same ones.
//!
//! A version is a Yjs snapshot (the state vector and the delete set at a moment) in the
//! `Array('peerdoc-versions')`, with an id, a time and, for a restore, the version restored;
//! names given later are in `Map('peerdoc-version-names')`. Replicas keep deleted content (no
//! garbage collection, see [`Document::new`]), so any replica that holds a version's operations
//! can rebuild the document as it was ([`Document::at`]). A restore is a forward change that
//! makes the document equal to an old version, block by block.
//!
//! What changed between two versions: the characters inserted and deleted (a diff of the text),
//! and who inserted them: the Yjs clients of the text visible in the newer version and not in
//! the older one. Yjs records no author of a deletion, so a member who only deleted is not
//! among the authors. [`VersionTimer`] decides when a node records a version of its own edits.

use std::collections::{BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use yrs::types::text::{ChangeKind, YChange};
use yrs::types::xml::XmlOut;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::{Encode, Encoder, EncoderV1};
use yrs::{
    Any, Array, ArrayRef, Map, MapRef, Out, ReadTxn, Snapshot, Text, Transact, TransactionMut,
    XmlFragment,
};

use super::rich::{Format, Kind};
use super::{DocError, Document};

/// The array of versions.
pub const VERSIONS_NAME: &str = "peerdoc-versions";
/// Version names given after the version was made: version id → name.
pub const VERSION_NAMES: &str = "peerdoc-version-names";
/// A version's snapshot is at most this big; a bigger one (only a hostile writer makes it) is
/// not listed.
pub const MAX_SNAPSHOT_BYTES: usize = 1 << 20;
/// Longest version name or id, in bytes.
pub const MAX_VERSION_LABEL: usize = 64;
/// A burst of editing ends after this long without an edit: then a version is recorded.
pub const QUIET: Duration = Duration::from_secs(30);
/// While editing goes on, a version is recorded at least this often.
pub const MAX_BURST: Duration = Duration::from_secs(5 * 60);
/// How long a diff of two versions' text may take before it settles for a coarser one.
const DIFF_DEADLINE: Duration = Duration::from_secs(1);

/// One version, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub id: String,
    /// Unix time in ms, as its recorder's clock said.
    pub at_ms: u64,
    pub name: Option<String>,
    /// The version it restored, for a version recorded by a restore.
    pub restored_from: Option<String>,
    pub snapshot: Snapshot,
}

/// What changed from one version (or the empty document) to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Characters of text inserted and deleted.
    pub inserted: usize,
    pub deleted: usize,
    /// The Yjs clients that wrote the inserted text.
    pub clients: BTreeSet<u64>,
}

/// A span of a version's text, as a preview marks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    Same(String),
    /// Inserted since the older version, by this Yjs client.
    Inserted(String, u64),
    /// Deleted since the older version (its text was written by this client).
    Deleted(String, u64),
}

impl Document {
    fn versions_array(&self) -> ArrayRef {
        self.doc.get_or_insert_array(VERSIONS_NAME)
    }

    fn version_names(&self) -> MapRef {
        self.doc.get_or_insert_map(VERSION_NAMES)
    }

    /// Records a version of the document as it is now: `id` (fresh, from the caller's
    /// randomness), `at_ms` (Unix ms), an optional name, and for a restore the version it
    /// restored. Returns the update.
    pub fn record_version(
        &mut self,
        id: &str,
        at_ms: u64,
        name: Option<&str>,
        restored_from: Option<&str>,
    ) -> Vec<u8> {
        let array = self.versions_array();
        let mut txn = self.doc.transact_mut();
        let snapshot = txn.snapshot().encode_v1();
        let mut entry: HashMap<String, Any> = HashMap::new();
        entry.insert("id".into(), Any::from(id));
        entry.insert("at".into(), Any::from(at_ms as f64));
        entry.insert("snapshot".into(), Any::Buffer(Arc::from(snapshot)));
        if let Some(name) = name {
            entry.insert("name".into(), Any::from(name));
        }
        if let Some(from) = restored_from {
            entry.insert("restored_from".into(), Any::from(from));
        }
        array.push_back(&mut txn, Any::Map(Arc::new(entry)));
        txn.encode_update_v1()
    }

    /// Names (or renames) a version. Returns the update.
    pub fn name_version(&mut self, id: &str, name: &str) -> Vec<u8> {
        let names = self.version_names();
        let mut txn = self.doc.transact_mut();
        names.insert(&mut txn, id, name);
        txn.encode_update_v1()
    }

    /// Every version, oldest first (by time, then id). Entries that do not read as a version
    /// (a hostile writer's) are left out.
    pub fn versions(&self) -> Vec<Version> {
        let array = self.versions_array();
        let names = self.version_names();
        let txn = self.doc.transact();
        let text = |map: &HashMap<String, Any>, key: &str| match map.get(key) {
            Some(Any::String(s)) if !s.is_empty() && s.len() <= MAX_VERSION_LABEL => {
                Some(s.to_string())
            }
            _ => None,
        };
        let mut versions: Vec<Version> = array
            .iter(&txn)
            .filter_map(|value| {
                let Out::Any(Any::Map(map)) = value else {
                    return None;
                };
                let id = text(&map, "id")?;
                let at_ms = match map.get("at") {
                    Some(Any::Number(yrs::any::Number::Float(n))) if n.is_finite() && *n >= 0.0 => {
                        *n as u64
                    }
                    Some(Any::Number(yrs::any::Number::Int(n))) if *n >= 0 => *n as u64,
                    _ => return None,
                };
                let Some(Any::Buffer(bytes)) = map.get("snapshot") else {
                    return None;
                };
                let snapshot = decode_snapshot(bytes).ok()?;
                let renamed = match names.get(&txn, &id) {
                    Some(Out::Any(Any::String(s))) if s.len() <= MAX_VERSION_LABEL => {
                        Some(s.to_string())
                    }
                    _ => None,
                };
                Some(Version {
                    name: renamed.or_else(|| text(&map, "name")),
                    restored_from: text(&map, "restored_from"),
                    id,
                    at_ms,
                    snapshot,
                })
            })
            .collect();
        versions.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
        versions
    }

    /// Whether this replica holds every operation `snapshot` names (else it cannot rebuild
    /// that version yet).
    pub fn holds(&self, snapshot: &Snapshot) -> bool {
        let sv = self.doc.transact().state_vector();
        snapshot
            .state_map
            .iter()
            .all(|(client, clock)| sv.get(client) >= *clock)
    }

    /// The document as it was at `snapshot`: a new replica holding exactly that state.
    pub fn at(&self, snapshot: &Snapshot) -> Result<Document, DocError> {
        if !self.holds(snapshot) {
            return Err(DocError::VersionAhead);
        }
        let doc = &self.doc;
        let update = catch_unwind(AssertUnwindSafe(|| {
            let mut encoder = EncoderV1::new();
            doc.transact()
                .encode_state_from_snapshot(snapshot, &mut encoder)
                .map(|()| encoder.to_vec())
                .map_err(|e| DocError::BadVersion(e.to_string()))
        }))
        .unwrap_or(Err(DocError::Panicked))?;
        let mut old = Document::new();
        old.apply(&update)?;
        Ok(old)
    }

    /// What changed from `older` (`None`: the empty document) to `newer`, both versions of this
    /// document.
    pub fn changes(&self, older: Option<&Snapshot>, newer: &Snapshot) -> Result<Changes, DocError> {
        let before = match older {
            Some(snapshot) => self.at(snapshot)?.export(Format::Text),
            None => String::new(),
        };
        let mut after = self.at(newer)?;
        let (inserted, deleted) = char_changes(&before, &after.export(Format::Text));
        let mut clients = BTreeSet::new();
        for span in after.spans(older, newer) {
            if let Span::Inserted(_, client) = span {
                clients.insert(client);
            }
        }
        Ok(Changes {
            inserted,
            deleted,
            clients,
        })
    }

    /// The text of this replica (a version rebuilt by [`Document::at`] at `newer`), in spans
    /// marked inserted or deleted since `older`: what a preview highlights. A rich document's
    /// blocks are separated by newlines; text in blocks deleted whole is not shown.
    pub fn spans(&mut self, older: Option<&Snapshot>, newer: &Snapshot) -> Vec<Span> {
        let empty = Snapshot::default();
        let older = older.unwrap_or(&empty);
        // Snapshots come from writers: a panic in the CRDT library on a hostile one must not
        // take the node down (this is a throwaway replica, see `at`).
        catch_unwind(AssertUnwindSafe(|| {
            let mut txn = self.doc.transact_mut();
            let mut spans = Vec::new();
            match self.kind_in(&txn) {
                Kind::Plain => text_spans(&self.text, &mut txn, older, newer, &mut spans),
                Kind::Rich => {
                    let mut texts = Vec::new();
                    collect_texts(self.rich.children(&txn).collect(), &txn, &mut texts, 0);
                    for (i, text) in texts.iter().enumerate() {
                        if i > 0 {
                            spans.push(Span::Same("\n".into()));
                        }
                        text_spans(text, &mut txn, older, newer, &mut spans);
                    }
                }
            }
            spans
        }))
        .unwrap_or_default()
    }

    fn kind_in<T: ReadTxn>(&self, txn: &T) -> Kind {
        match self.meta.get(txn, "kind") {
            Some(Out::Any(Any::String(kind))) if &*kind == "rich" => Kind::Rich,
            _ => Kind::Plain,
        }
    }

    /// Makes the document equal to `old` (a version rebuilt by [`Document::at`]) by a forward
    /// change: a rich document block by block, a plain one as a minimal text diff. Returns
    /// the update, if anything changed.
    pub fn restore(&mut self, old: &Document) -> Option<Vec<u8>> {
        match self.kind() {
            Kind::Rich => self.replace_blocks(&old.blocks()),
            Kind::Plain => self.replace_text(&old.text()),
        }
    }
}

/// Every text node under `nodes`, in document order (depth-bounded like the block model).
fn collect_texts<T: ReadTxn>(
    nodes: Vec<XmlOut>,
    txn: &T,
    out: &mut Vec<yrs::XmlTextRef>,
    depth: usize,
) {
    if depth > super::rich::model::MAX_DEPTH * 4 {
        return;
    }
    for node in nodes {
        match node {
            XmlOut::Text(text) => out.push(text),
            XmlOut::Element(element) => {
                collect_texts(element.children(txn).collect(), txn, out, depth + 1)
            }
            XmlOut::Fragment(fragment) => {
                collect_texts(fragment.children(txn).collect(), txn, out, depth + 1)
            }
        }
    }
}

fn text_spans<T: Text>(
    text: &T,
    txn: &mut TransactionMut,
    older: &Snapshot,
    newer: &Snapshot,
    spans: &mut Vec<Span>,
) {
    for diff in text.diff_range(txn, Some(newer), Some(older), YChange::identity) {
        let Out::Any(Any::String(chunk)) = &diff.insert else {
            continue;
        };
        let chunk = chunk.to_string();
        spans.push(match diff.ychange {
            Some(YChange {
                kind: ChangeKind::Added,
                id,
            }) => Span::Inserted(chunk, id.client.get()),
            Some(YChange {
                kind: ChangeKind::Removed,
                id,
            }) => Span::Deleted(chunk, id.client.get()),
            None => Span::Same(chunk),
        });
    }
}

/// Characters inserted and deleted from `before` to `after` (a diff bounded in time: on very
/// different long texts it may count a little more than the least).
fn char_changes(before: &str, after: &str) -> (usize, usize) {
    let old: Vec<char> = before.chars().collect();
    let new: Vec<char> = after.chars().collect();
    let deadline = Instant::now() + DIFF_DEADLINE;
    let mut inserted = 0;
    let mut deleted = 0;
    for op in
        similar::capture_diff_slices_deadline(similar::Algorithm::Myers, &old, &new, Some(deadline))
    {
        match op {
            similar::DiffOp::Insert { new_len, .. } => inserted += new_len,
            similar::DiffOp::Delete { old_len, .. } => deleted += old_len,
            similar::DiffOp::Replace {
                old_len, new_len, ..
            } => {
                inserted += new_len;
                deleted += old_len;
            }
            similar::DiffOp::Equal { .. } => {}
        }
    }
    (inserted, deleted)
}

/// Why a version named by a caller is not found.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VersionError {
    #[error(
        "no version {0:?} in this document (name a version by its id, a unique prefix of 4+ \
         characters, or its name; `history` lists them)"
    )]
    Unknown(String),
    #[error("{0:?} is the start of several versions' ids ({1}); give more of it")]
    Ambiguous(String, String),
}

/// The version `wanted` names: its id, then its name (the newest version of that name), then a
/// unique prefix (4+ characters) of its id.
pub fn find_version<'a>(
    versions: &'a [Version],
    wanted: &str,
) -> Result<&'a Version, VersionError> {
    let labels: Vec<(&str, Option<&str>)> = versions
        .iter()
        .map(|v| (v.id.as_str(), v.name.as_deref()))
        .collect();
    find_in(&labels, wanted).map(|i| &versions[i])
}

/// [`find_version`] over (id, name) pairs, oldest first: the index of the version named.
pub fn find_in(versions: &[(&str, Option<&str>)], wanted: &str) -> Result<usize, VersionError> {
    if let Some(i) = versions.iter().position(|(id, _)| *id == wanted) {
        return Ok(i);
    }
    if let Some(i) = versions.iter().rposition(|(_, name)| *name == Some(wanted)) {
        return Ok(i);
    }
    let matching: Vec<usize> = if wanted.len() >= 4 {
        (0..versions.len())
            .filter(|&i| versions[i].0.starts_with(wanted))
            .collect()
    } else {
        Vec::new()
    };
    match matching.as_slice() {
        [one] => Ok(*one),
        [] => Err(VersionError::Unknown(wanted.to_string())),
        many => Err(VersionError::Ambiguous(
            wanted.to_string(),
            many.iter()
                .map(|&i| versions[i].0)
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

/// A unified diff (3 lines of context) from `old` to `new`, with the given labels; empty when
/// they are equal.
pub fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    let diff = similar::TextDiff::configure()
        .deadline(Instant::now() + DIFF_DEADLINE)
        .diff_lines(old, new);
    diff.unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .missing_newline_hint(false)
        .to_string()
}

/// Decodes a version's snapshot from untrusted bytes: its counts are checked against the bytes
/// left first (yrs reserves memory for what a count claims before reading it).
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, DocError> {
    if bytes.len() > MAX_SNAPSHOT_BYTES {
        return Err(DocError::BadVersion("snapshot too large".into()));
    }
    check_snapshot_v1(bytes).map_err(DocError::BadVersion)?;
    catch_unwind(|| Snapshot::decode_v1(bytes))
        .map_err(|_| DocError::Panicked)?
        .map_err(|e| DocError::BadVersion(e.to_string()))
}

/// Walks a snapshot's v1 encoding (the delete set: clients, each with its ranges of clock and
/// length; then the state vector: client and clock pairs) without allocating: every count must
/// fit in the bytes left (each counted thing takes 2 bytes at least), and nothing may follow.
fn check_snapshot_v1(bytes: &[u8]) -> Result<(), String> {
    use yrs::encoding::read::{Cursor, Read};
    let mut r = Cursor::new(bytes);
    let var = |r: &mut Cursor| r.read_var::<u64>().map_err(|e| e.to_string());
    let count = |r: &mut Cursor, n: u64, what: &str| {
        let left = r.buf.len().saturating_sub(r.next) as u64;
        if n > left / 2 {
            return Err(format!("claims {n} {what} with {left} bytes left"));
        }
        Ok(n)
    };
    let clients = var(&mut r)?;
    for _ in 0..count(&mut r, clients, "deleting clients")? {
        var(&mut r)?; // client
        let ranges = var(&mut r)?;
        for _ in 0..count(&mut r, ranges, "deleted ranges")? {
            var(&mut r)?; // clock
            var(&mut r)?; // length
        }
    }
    let entries = var(&mut r)?;
    for _ in 0..count(&mut r, entries, "state vector entries")? {
        var(&mut r)?; // client
        var(&mut r)?; // clock
    }
    if r.has_content() {
        return Err("bytes after the snapshot".into());
    }
    Ok(())
}

/// When a node records a version of the edits made through it: once a burst of editing has
/// been quiet for [`QUIET`], and at least every [`MAX_BURST`] while it goes on. Times are
/// inputs, so the rule is tested without a clock.
#[derive(Debug, Clone, Default)]
pub struct VersionTimer {
    /// The first and the last edit not in a version yet.
    pending: Option<(Instant, Instant)>,
}

impl VersionTimer {
    /// An edit was made through this node at `now`.
    pub fn edited(&mut self, now: Instant) {
        self.pending = Some(match self.pending {
            Some((first, _)) => (first, now),
            None => (now, now),
        });
    }

    /// Whether edits wait for a version.
    pub fn pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether a version is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.pending.is_some_and(|(first, last)| {
            now.saturating_duration_since(last) >= QUIET
                || now.saturating_duration_since(first) >= MAX_BURST
        })
    }

    /// A version was recorded: what came before is in it.
    pub fn recorded(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests;
