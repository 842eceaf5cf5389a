//! The room's history: recording versions (after a burst of edits made through this node, on
//! demand, and for a restore), naming them, and reading them back (the list with what changed,
//! a version's content, a restore). The rules are the core's ([`crate::core::doc::history`]).

use std::collections::HashMap;

use super::{Origin, Room, RoomError};
use crate::core::doc::history::{find_version, Changes, Span, Version, VersionError};
use crate::core::doc::rich::Format;
use crate::core::doc::DocError;
use crate::replica::store::unix_now_ms;

/// A version as the room lists it: the version and what changed since the one before.
#[derive(Debug, Clone)]
pub(crate) struct VersionEntry {
    pub(crate) version: Version,
    pub(crate) changes: Option<Changes>,
}

/// What changed between two versions, kept once computed (versions do not change).
pub(super) type ChangesCache = HashMap<(Option<String>, String), Changes>;

fn fresh_id() -> String {
    format!("{:012x}", rand::random::<u64>() >> 16)
}

impl Room {
    /// Records a version now (named, or for a restore of `restored_from`); returns its id.
    pub(super) async fn record_version(
        &mut self,
        name: Option<&str>,
        restored_from: Option<&str>,
    ) -> Result<String, RoomError> {
        self.may_add(0)?;
        self.ready_for_api_write().await?;
        let id = fresh_id();
        let delta = self
            .loaded()
            .await?
            .record_version(&id, unix_now_ms(), name, restored_from);
        self.local_change(Some(delta), Origin::Api).await?;
        // The version holds every edit made so far: the burst is over.
        self.versions.recorded();
        tracing::debug!(doc = %self.id, version = %id, "version recorded");
        Ok(id)
    }

    /// Records a version of the edits made through this node if one is due (`force`: at
    /// unload or close, if any wait). Only a node that may write records one.
    pub(super) async fn record_version_if_due(&mut self, force: bool) {
        let now = tokio::time::Instant::now().into_std();
        let due = if force {
            self.versions.pending()
        } else {
            self.versions.due(now)
        };
        if !due || self.doc.is_none() {
            return;
        }
        if !self.may_write() {
            self.versions.recorded();
            return;
        }
        if let Err(e) = self.record_version(None, None).await {
            tracing::warn!(doc = %self.id, "cannot record a version: {e}");
        }
    }

    /// Names (or renames) a version.
    pub(super) async fn name_version(
        &mut self,
        wanted: &str,
        name: &str,
    ) -> Result<String, RoomError> {
        self.may_add(name.len())?;
        self.ready_for_api_write().await?;
        let doc = self.loaded().await?;
        let id = find_version(&doc.versions(), wanted)?.id.clone();
        let delta = doc.name_version(&id, name);
        self.local_change(Some(delta), Origin::Api).await?;
        self.versions.recorded();
        Ok(id)
    }

    /// Every version, oldest first, with what changed since the one before (`None` where this
    /// node lacks edits that version names).
    pub(super) async fn versions(&mut self) -> Result<Vec<VersionEntry>, RoomError> {
        let (id, mut cache) = (self.id, std::mem::take(&mut self.history_cache));
        let doc = self.loaded().await?;
        let versions = doc.versions();
        let mut entries = Vec::with_capacity(versions.len());
        let mut before: Option<&Version> = None;
        for version in &versions {
            let key = (before.map(|b| b.id.clone()), version.id.clone());
            let changes = match cache.get(&key) {
                Some(changes) => Some(changes.clone()),
                None => match doc.changes(before.map(|b| &b.snapshot), &version.snapshot) {
                    Ok(changes) => {
                        cache.insert(key, changes.clone());
                        Some(changes)
                    }
                    Err(DocError::VersionAhead) => None,
                    Err(e) => {
                        tracing::debug!(doc = %id, version = %version.id, "cannot compare versions: {e}");
                        None
                    }
                },
            };
            entries.push(VersionEntry {
                version: version.clone(),
                changes,
            });
            before = Some(version);
        }
        self.history_cache = cache;
        Ok(entries)
    }

    /// A version's content in `format`.
    pub(super) async fn export_at(
        &mut self,
        wanted: &str,
        format: Format,
    ) -> Result<String, RoomError> {
        let doc = self.loaded().await?;
        let versions = doc.versions();
        let version = find_version(&versions, wanted)?;
        Ok(doc.at(&version.snapshot)?.export(format))
    }

    /// A version's text in spans marked inserted or deleted since the version before it (the
    /// empty document, for the first): what a preview highlights.
    pub(super) async fn preview(&mut self, wanted: &str) -> Result<Vec<Span>, RoomError> {
        let doc = self.loaded().await?;
        let versions = doc.versions();
        let version = find_version(&versions, wanted)?;
        let before = versions
            .iter()
            .take_while(|v| v.id != version.id)
            .last()
            .map(|v| &v.snapshot);
        Ok(doc.at(&version.snapshot)?.spans(before, &version.snapshot))
    }

    /// Makes the document equal to a version by a forward change, and records the restore as a
    /// version. Returns the new version's id, or `None` if the document already equals it.
    pub(super) async fn restore(&mut self, wanted: &str) -> Result<Option<String>, RoomError> {
        let doc = self.loaded().await?;
        let versions = doc.versions();
        let version = find_version(&versions, wanted)?;
        let old = doc.at(&version.snapshot)?;
        let id = version.id.clone();
        self.may_add(old.content().len())?;
        self.ready_for_api_write().await?;
        let delta = self.loaded().await?.restore(&old);
        if delta.is_none() {
            return Ok(None);
        }
        self.local_change(delta, Origin::Api).await?;
        self.record_version(None, Some(&id)).await.map(Some)
    }
}

impl From<VersionError> for RoomError {
    fn from(e: VersionError) -> RoomError {
        RoomError::Version(e)
    }
}
