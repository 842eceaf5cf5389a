//! A round's part in compaction: reading the holder's snapshot when this node is behind it,
//! and uploading one of its own.

use rand::RngCore;

use super::round::{adopt, Round};
use super::HoldingError;
use crate::core::doc::since::known_plus;
use crate::core::envelope::Purpose;
use crate::core::hold::parts::{split, Assembler, Joined, Part};
use crate::core::hold::wire::HoldBody;
use crate::core::hold::{Entry, EntryKind, HoldResponse};
use crate::replica::store::HolderRow;

impl Round<'_> {
    /// Reads and applies the holder's snapshot, part by part; the known state becomes the
    /// snapshot's. Returns 1 if it applied one.
    pub(super) async fn take_snapshot(
        &self,
        row: &mut HolderRow,
        roster_taken: &mut bool,
    ) -> Result<usize, HoldingError> {
        let mut assembler = Assembler::default();
        let mut covers = None;
        let mut part = 0;
        loop {
            let (at, this, parts, bytes) = match self.ask(HoldBody::FetchSnapshot { part }).await? {
                HoldResponse::SnapshotPart {
                    covers,
                    part,
                    parts,
                    entry,
                } => (covers, part, parts, entry),
                _ => {
                    return Err(HoldingError::Protocol(
                        "snapshot answered with something else",
                    ))
                }
            };
            if this != part || covers.is_some_and(|c| c != at) {
                return Err(HoldingError::Protocol(
                    "the snapshot changed while it was read",
                ));
            }
            covers = Some(at);
            let entry = Entry::decode(&self.room.topic, &bytes)?;
            if entry.kind != EntryKind::Snapshot {
                return Err(HoldingError::Protocol("a snapshot part is no snapshot"));
            }
            if !self.may_write(&entry.uploader) && !*roster_taken {
                *roster_taken = true;
                self.take_roster().await?;
            }
            // A snapshot stays readable when its writer is removed later: what that writer
            // wrote after its removal is voided by the cut, like anywhere else.
            let removed = self
                .room
                .access()
                .membership
                .is_revoked_key(&entry.uploader);
            if !self.may_write(&entry.uploader) && !removed {
                self.refused("not_writer", at, "the snapshot's uploader never wrote");
                return Err(HoldingError::Protocol(
                    "a snapshot by a member that may not write",
                ));
            }
            let plain = self
                .room
                .keys()
                .open(&self.room.topic, Purpose::Held, &entry.envelope)
                .map_err(|e| {
                    self.refused("invalid", at, &e.to_string());
                    HoldingError::Protocol("a snapshot this node cannot open")
                })?;
            let piece = Part::decode(&plain).map_err(|_| HoldingError::Protocol("a bad part"))?;
            match assembler.push(entry.uploader, u64::from(this), piece) {
                Joined::Complete(update) => {
                    self.room.apply_remote(update.clone()).await?;
                    row.known = Some(known_plus(None, &update)?);
                    row.cursor = at;
                    return Ok(1);
                }
                Joined::Waiting => {}
                Joined::Broken => {
                    return Err(HoldingError::Protocol("snapshot parts out of order"))
                }
            }
            part += 1;
            if part >= parts {
                return Err(HoldingError::Protocol("a snapshot with missing parts"));
            }
        }
    }

    /// Uploads `whole` (this replica's state) as a snapshot replacing the entries below the
    /// cursor; returns the bytes sent.
    pub(super) async fn compact(
        &self,
        whole: &[u8],
        row: &mut HolderRow,
    ) -> Result<usize, HoldingError> {
        let covers = row.cursor;
        let upload = rand::thread_rng().next_u64();
        let keys = self.room.keys();
        let plains = split(whole, upload);
        let parts = plains.len() as u32;
        let mut sent = 0;
        for (part, plain) in plains.into_iter().enumerate() {
            let sealed = keys.seal(&self.room.topic, Purpose::Held, &plain);
            let entry =
                Entry::sign(&self.room.topic, EntryKind::Snapshot, sealed, self.identity).encode();
            sent += entry.len();
            let body = HoldBody::Snapshot {
                covers,
                part: part as u32,
                parts,
                entry,
            };
            match self.ask(body).await? {
                HoldResponse::Held(state) => {
                    adopt(row, state);
                }
                _ => {
                    return Err(HoldingError::Protocol(
                        "snapshot answered with something else",
                    ))
                }
            }
        }
        tracing::debug!(doc = %self.room.id, holder = %self.holder, covers, sent, "uploaded a snapshot");
        Ok(sent)
    }
}
