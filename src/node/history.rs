//! The node's history API: versions of a document (listed with who inserted what, recorded,
//! named), a version's content, the diff of two versions, and restoring one. Authors come from
//! the members' signed claims of their Yjs clients, named as `members` names them.

use std::collections::HashMap;

use libp2p::PeerId;

use super::{DocRef, Error, Node};
use crate::core::access::{key_of, labels, name::check_name, peer_of, KeyBytes};
use crate::core::doc::history::{find_in, unified_diff, Span};
use crate::core::doc::rich::Format;

/// A version of a document ([`Node::versions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub id: String,
    pub name: Option<String>,
    /// Unix time in ms, by the clock of the node that recorded it.
    pub at_ms: u64,
    /// For a restore: the version it restored.
    pub restored_from: Option<String>,
    /// What changed since the version before; `None` while this node lacks edits it names.
    pub changes: Option<VersionChanges>,
}

/// What changed from one version to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionChanges {
    /// Characters of text inserted and deleted.
    pub inserted: usize,
    pub deleted: usize,
    /// The members who inserted text, as [`crate::MemberInfo::label`] names them (a client
    /// no member claimed is "someone unknown"). Yjs records no author of a deletion.
    pub authors: Vec<Author>,
}

/// A span of a version's text in a preview ([`Node::preview`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewSpan {
    pub text: String,
    pub change: SpanChange,
    /// Who wrote the text (inserted it, for a deletion: whose text was deleted).
    pub author: Option<Author>,
}

/// What happened to a span since the version before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanChange {
    Same,
    Inserted,
    Deleted,
}

/// A member who wrote in a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// `None` for text written through a client no member claimed.
    pub peer: Option<PeerId>,
    pub label: String,
}

impl Node {
    /// The document's versions, oldest first, each with what changed since the one before and
    /// who wrote it. Every member lists the same versions (they are part of the document).
    pub async fn versions<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
    ) -> Result<Vec<VersionInfo>, Error> {
        let doc = doc.into();
        self.not_joining(doc).await?;
        let room = self.room(doc).await?;
        let entries = room.versions().await?;
        let access = room.access();
        let authors = self.authors(
            &access.membership,
            entries
                .iter()
                .filter_map(|e| e.changes.as_ref())
                .flat_map(|c| c.clients.iter().copied()),
        );
        Ok(entries
            .into_iter()
            .map(|entry| {
                let changes = entry.changes.map(|c| {
                    let mut listed: Vec<Author> = Vec::new();
                    for author in c.clients.iter().filter_map(|client| authors.get(client)) {
                        if !listed.contains(author) {
                            listed.push(author.clone());
                        }
                    }
                    let authors = listed;
                    VersionChanges {
                        inserted: c.inserted,
                        deleted: c.deleted,
                        authors,
                    }
                });
                VersionInfo {
                    id: entry.version.id,
                    name: entry.version.name,
                    at_ms: entry.version.at_ms,
                    restored_from: entry.version.restored_from,
                    changes,
                }
            })
            .collect())
    }

    /// Who wrote through each of `clients`: the member whose signed claim of it counts, labelled
    /// as `members` labels it (over the members and every author, so that shared names show
    /// their short peer ids); "someone unknown" for a client no member claimed.
    fn authors(
        &self,
        membership: &crate::core::access::Membership,
        clients: impl Iterator<Item = u64>,
    ) -> HashMap<u64, Author> {
        // A document never shared was written by its owner alone (claims begin with sharing).
        let unshared_owner = (!membership.is_shared()).then(|| membership.owner());
        let claimant: HashMap<u64, Option<KeyBytes>> = clients
            .map(|client| (client, membership.claimant(client).or(unshared_owner)))
            .collect();
        let mut keys: Vec<KeyBytes> = membership.member_keys().map(|(k, _)| *k).collect();
        keys.extend(claimant.values().flatten().copied());
        keys.sort();
        keys.dedup();
        let me = key_of(&self.peer_id()).ok();
        let named: Vec<(String, Option<String>)> = keys
            .iter()
            .map(|key| {
                let peer = peer_of(key).map(|p| p.to_string()).unwrap_or_default();
                let name = if me == Some(*key) {
                    self.name()
                } else {
                    membership.name_of(key).map(str::to_string)
                };
                (peer, name)
            })
            .collect();
        let label_of: HashMap<KeyBytes, String> = keys.into_iter().zip(labels(&named)).collect();
        claimant
            .into_iter()
            .map(|(client, key)| {
                let author = match key {
                    Some(key) => Author {
                        peer: peer_of(&key),
                        label: label_of.get(&key).cloned().unwrap_or_default(),
                    },
                    None => Author {
                        peer: None,
                        label: "someone unknown".into(),
                    },
                };
                (client, author)
            })
            .collect()
    }

    /// A version's text, in spans marked inserted or deleted since the version before, each
    /// change with its author: what the page's history preview shows. A rich document's blocks
    /// are separated by newlines.
    pub async fn preview<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        version: &str,
    ) -> Result<Vec<PreviewSpan>, Error> {
        let doc = doc.into();
        self.not_joining(doc).await?;
        let room = self.room(doc).await?;
        let spans = room.preview(version.to_string()).await?;
        let access = room.access();
        let authors = self.authors(
            &access.membership,
            spans.iter().filter_map(|span| match span {
                Span::Inserted(_, client) | Span::Deleted(_, client) => Some(*client),
                Span::Same(_) => None,
            }),
        );
        Ok(spans
            .into_iter()
            .map(|span| match span {
                Span::Same(text) => PreviewSpan {
                    text,
                    change: SpanChange::Same,
                    author: None,
                },
                Span::Inserted(text, client) => PreviewSpan {
                    text,
                    change: SpanChange::Inserted,
                    author: authors.get(&client).cloned(),
                },
                Span::Deleted(text, client) => PreviewSpan {
                    text,
                    change: SpanChange::Deleted,
                    author: authors.get(&client).cloned(),
                },
            })
            .collect())
    }

    /// Records a version of the document as it is now, named or not; returns its id. Versions
    /// are also recorded by themselves after each burst of editing.
    pub async fn record_version<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        name: Option<&str>,
    ) -> Result<String, Error> {
        let name = name.map(check_name).transpose()?.map(str::to_string);
        let doc = doc.into();
        self.not_joining(doc).await?;
        Ok(self.room(doc).await?.record_version(name).await?)
    }

    /// Names (or renames) a version, given by id, unique id prefix or name; returns its id.
    pub async fn name_version<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        version: &str,
        name: &str,
    ) -> Result<String, Error> {
        let name = check_name(name)?.to_string();
        let doc = doc.into();
        self.not_joining(doc).await?;
        Ok(self
            .room(doc)
            .await?
            .name_version(version.to_string(), name)
            .await?)
    }

    /// A version's content in `format` (see [`Node::export`]).
    pub async fn export_at<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        version: &str,
        format: Format,
    ) -> Result<String, Error> {
        let doc = doc.into();
        self.not_joining(doc).await?;
        Ok(self
            .room(doc)
            .await?
            .export_at(version.to_string(), format)
            .await?)
    }

    /// A unified diff of the content (Markdown, or the plain text) from version `from` to
    /// version `to` (`None`: the document as it is now), after a line naming who wrote in the
    /// versions between. Empty when they are equal.
    pub async fn diff_versions<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        from: &str,
        to: Option<&str>,
    ) -> Result<String, Error> {
        let doc = doc.into();
        self.not_joining(doc).await?;
        let room = self.room(doc).await?;
        let old = room.export_at(from.to_string(), Format::Markdown).await?;
        let new = match to {
            Some(to) => room.export_at(to.to_string(), Format::Markdown).await?,
            None => room.export(Format::Markdown).await?,
        };
        let diff = unified_diff(&old, &new, from, to.unwrap_or("now"));
        if diff.is_empty() {
            return Ok(diff);
        }
        // Who wrote in the versions after `from`, up to `to` (or the last one).
        let versions = self.versions(doc).await?;
        // Named as the room resolved them to export.
        let labels: Vec<(&str, Option<&str>)> = versions
            .iter()
            .map(|v| (v.id.as_str(), v.name.as_deref()))
            .collect();
        let position = |wanted: &str| find_in(&labels, wanted).ok();
        let start = position(from).map_or(0, |i| i + 1);
        let end = to.and_then(position).map_or(versions.len(), |i| i + 1);
        let mut authors: Vec<String> = Vec::new();
        for version in versions.get(start..end).unwrap_or_default() {
            for author in version.changes.iter().flat_map(|c| &c.authors) {
                if !authors.contains(&author.label) {
                    authors.push(author.label.clone());
                }
            }
        }
        let by = if authors.is_empty() {
            "no one recorded".to_string()
        } else {
            authors.join(", ")
        };
        Ok(format!("written by: {by}\n{diff}"))
    }

    /// Makes the document equal to a version by a forward change that syncs to every member
    /// like any edit (no one's history is rewritten), and records the restore as a version.
    /// Returns that version's id, or `None` if the document already equals it.
    pub async fn restore<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        version: &str,
    ) -> Result<Option<String>, Error> {
        let doc = doc.into();
        self.not_joining(doc).await?;
        Ok(self.room(doc).await?.restore(version.to_string()).await?)
    }
}
