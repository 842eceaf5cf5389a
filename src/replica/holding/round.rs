//! One exchange of a member with one holder of one document: send the membership records
//! the holder lacks, read the entries after the member's cursor (each checked: signed by a
//! writer, sealed with a key of the document, a well-formed change) and apply them, then
//! upload what the holder is not known to hold. Each step commits before the next relies on
//! it; the cursor and the known state are saved last, so an exchange cut short is repeated,
//! never skipped.

use libp2p::PeerId;
use libp2p_identity::ed25519;
use rand::RngCore;

use super::HoldingError;
use crate::core::access::KeyBytes;
use crate::core::doc::since::known_plus;
use crate::core::envelope::{EnvelopeError, Purpose};
use crate::core::hold::parts::{split, Assembler, Joined, Part};
use crate::core::hold::wire::HoldBody;
use crate::core::hold::{Entry, EntryKind, HeldState, HoldRequest, HoldResponse, Refusal};
use crate::core::sync::members::{self, Roster};
use crate::metrics::Metrics;
use crate::net::Net;
use crate::replica::room::RoomHandle;
use crate::replica::store::{unix_now, HolderRow};

/// Entries after the holder's snapshot (or its start) before a member considers a new one.
pub(crate) const COMPACT_AFTER: u64 = 8;
/// A member uploads a snapshot once the holder keeps more than 1.5 times its size, so what a
/// holder keeps stays near the document's own encoding.
fn worth_compacting(held_bytes: u64, snapshot_bytes: u64) -> bool {
    held_bytes.saturating_mul(2) > snapshot_bytes.saturating_mul(3)
}

/// What a round may skip.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    /// Send our roster first (the holder may lack records).
    pub(super) records: bool,
    /// Read the holder's new entries.
    pub(super) fetch: bool,
    /// Upload a snapshot whatever the sizes (the key epoch changed: joiners with newer
    /// tickets cannot open older entries).
    pub(super) compact: bool,
}

impl Plan {
    /// Uploads only.
    pub(super) const UPLOAD: Plan = Plan {
        records: false,
        fetch: false,
        compact: false,
    };

    /// Everything either plan asks for.
    pub(super) fn and(self, other: Plan) -> Plan {
        Plan {
            records: self.records || other.records,
            fetch: self.fetch || other.fetch,
            compact: self.compact || other.compact,
        }
    }
}

/// What a round did.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoundOutcome {
    pub(crate) row: HolderRow,
    /// Changes applied here from the holder.
    pub(crate) applied: usize,
    /// Bytes uploaded.
    pub(crate) uploaded: usize,
    /// The room's digest once the holder held what this node had then.
    pub(crate) digest: Option<[u8; 32]>,
    /// Membership records sent (a count of what the room held), when the round sent them.
    pub(crate) records_sent: Option<usize>,
}

pub(super) struct Round<'a> {
    pub(super) net: &'a Net,
    pub(super) room: &'a RoomHandle,
    pub(super) holder: PeerId,
    pub(super) identity: &'a ed25519::Keypair,
    pub(super) metrics: &'a Metrics,
}

impl Round<'_> {
    pub(super) async fn ask(&self, body: HoldBody) -> Result<HoldResponse, HoldingError> {
        let request = HoldRequest {
            topic: self.room.topic,
            owner: self.room.access().membership.owner(),
            body,
        };
        let bytes = self.net.request(self.holder, request.encode()).await?;
        match HoldResponse::decode(&bytes)? {
            HoldResponse::Refused(why) => Err(HoldingError::Refused(why)),
            response => Ok(response),
        }
    }

    /// Sends our whole roster, page by page, with `holds` and `certs` on the first page
    /// (asking the holder to hold the document or to let it go; a joiner's own certificates,
    /// which do not chain here yet). Answers the holder's state.
    pub(super) async fn send_records(
        &self,
        holds: &[crate::core::access::HoldRecord],
        certs: &[crate::core::access::Cert],
    ) -> Result<HeldState, HoldingError> {
        let membership = self.room.access().membership.clone();
        let mut page = 0;
        loop {
            let mut roster = members::page(&membership, Vec::new(), page);
            if page == 0 {
                roster.holds.extend(holds.iter().cloned());
                roster.certs.splice(0..0, certs.iter().cloned());
            }
            let pages = roster.pages.max(1);
            let body = HoldBody::Records {
                doc: self.room.id,
                roster,
            };
            let state = match self.ask(body).await? {
                HoldResponse::Held(state) => state,
                _ => {
                    return Err(HoldingError::Protocol(
                        "records answered with something else",
                    ))
                }
            };
            page += 1;
            if page >= pages {
                return Ok(state);
            }
        }
    }

    /// Adds the holder's roster to the room: the roles of uploaders this node has not heard
    /// of yet (a member that joined while this node was away).
    pub(super) async fn take_roster(&self) -> Result<(), HoldingError> {
        let mut page = 0;
        loop {
            let roster: Roster = match self.ask(HoldBody::Roster { page }).await? {
                HoldResponse::Roster(roster) => roster,
                _ => {
                    return Err(HoldingError::Protocol(
                        "roster answered with something else",
                    ))
                }
            };
            let pages = roster.pages.max(1);
            self.room
                .add_records(roster.certs, roster.grants, roster.names)
                .await?;
            self.room.add_holds(roster.holds).await?;
            page += 1;
            if page >= pages {
                return Ok(());
            }
        }
    }

    /// The whole round; `row` is what this node knew of the holder before it.
    /// `pushed`: the room's digest when the holder last held everything this node had.
    pub(super) async fn run(
        &self,
        mut row: HolderRow,
        plan: Plan,
        pushed: Option<[u8; 32]>,
    ) -> Result<RoundOutcome, HoldingError> {
        let mut outcome = RoundOutcome::default();
        if plan.records {
            let state = self.send_records(&[], &[]).await?;
            adopt(&mut row, state);
        }
        // A holder this node never read from: what it holds is unknown until read (uploading
        // the whole document instead would store it there twice).
        if plan.fetch || row.known.is_none() {
            outcome.applied = self.fetch(&mut row).await?;
        }
        // Every change applied above is queued for the store before this answers (the room
        // takes commands in order), so the cursor saved after it never runs ahead.
        let summary = self.room.summary().await?;
        let me = self.identity.public().to_bytes();
        let writes = self
            .room
            .access()
            .membership
            .role_of_key(&me)
            .is_some_and(|role| role.may_write());
        // Nothing new on either side: the document is not loaded (idle documents stay
        // unloaded however often their holders are visited).
        let unchanged =
            pushed == Some(summary.digest) && outcome.applied == 0 && row.known.is_some();
        if writes && (!unchanged || plan.compact) {
            if let Some(since) = self.room.changes_since(row.known.clone()).await? {
                outcome.uploaded = self.upload(&since.update, &mut row).await?;
                row.known = Some(since.state);
            }
            // Everything below the cursor is in this replica: a snapshot of it may replace
            // those entries (never the ones after, which may be others' and not read yet).
            let due = row.cursor >= row.state.base.saturating_add(COMPACT_AFTER);
            // A member that joined with a later key skipped the entries of earlier epochs:
            // its snapshot would not hold them, so it never replaces them.
            let keys = self.room.keys();
            let every_key = (0..=keys.current().0).all(|epoch| keys.get(epoch).is_some());
            if plan.fetch && (due || plan.compact) && row.cursor > row.state.base && every_key {
                if let Some(whole) = self.room.changes_since(None).await? {
                    let size = whole.update.len() as u64;
                    if plan.compact || worth_compacting(row.state.bytes, size) {
                        outcome.uploaded += self.compact(&whole.update, &mut row).await?;
                    }
                }
            }
        }
        outcome.digest = Some(summary.digest);
        row.reached = unix_now();
        outcome.row = row;
        Ok(outcome)
    }

    /// Reads and applies the entries after `row.cursor`; returns how many changes it applied.
    pub(super) async fn fetch(&self, row: &mut HolderRow) -> Result<usize, HoldingError> {
        let mut assembler = Assembler::default();
        let mut from = row.cursor;
        let mut applied = 0;
        let mut roster_taken = false;
        let mut waiting_for_key = None;
        'pages: loop {
            let (state, entries) = match self.ask(HoldBody::Fetch { from }).await? {
                HoldResponse::Entries { state, entries } => (state, entries),
                _ => return Err(HoldingError::Protocol("fetch answered with something else")),
            };
            if adopt(row, state) && from > 0 {
                // The holder started over: read it from the start.
                from = 0;
                assembler = Assembler::default();
                continue;
            }
            if from < state.base {
                // What this node has not read was compacted: the snapshot brings it.
                applied += self.take_snapshot(row, &mut roster_taken).await?;
                from = row.state.base;
                continue;
            }
            if entries.is_empty() {
                break;
            }
            for (offset, bytes) in entries {
                from = offset + 1;
                let entry = match Entry::decode(&self.room.topic, &bytes) {
                    Ok(entry) => entry,
                    Err(e) => {
                        self.refused("invalid", offset, &e.to_string());
                        continue;
                    }
                };
                if !self.may_write(&entry.uploader) && !roster_taken {
                    // Perhaps a writer this node has not heard of: ask the holder once.
                    roster_taken = true;
                    self.take_roster().await?;
                }
                if !self.may_write(&entry.uploader) {
                    self.refused("not_writer", offset, "its uploader may not write");
                    continue;
                }
                let plain = match self.room.keys().open(
                    &self.room.topic,
                    Purpose::Held,
                    &entry.envelope,
                ) {
                    Ok(plain) => plain,
                    Err(EnvelopeError::UnknownEpoch(epoch))
                        if epoch > self.room.keys().current().0 =>
                    {
                        // A key this node has not received yet: read from here again later.
                        tracing::debug!(doc = %self.room.id, epoch, "held entry in an epoch not held yet");
                        waiting_for_key = Some(offset);
                        break 'pages;
                    }
                    Err(EnvelopeError::UnknownEpoch(epoch)) => {
                        // Older than this node's ticket: it never gets that key (a writer's
                        // snapshot in a newer epoch brings the content).
                        self.refused("old_epoch", offset, &format!("sealed in epoch {epoch}"));
                        continue;
                    }
                    Err(e) => {
                        self.refused("invalid", offset, &e.to_string());
                        continue;
                    }
                };
                let part = match Part::decode(&plain) {
                    Ok(part) => part,
                    Err(e) => {
                        self.refused("invalid", offset, &e.to_string());
                        continue;
                    }
                };
                let update = match assembler.push(entry.uploader, offset, part) {
                    Joined::Complete(update) => update,
                    Joined::Waiting => continue,
                    Joined::Broken => {
                        self.refused("invalid", offset, "a part out of order");
                        continue;
                    }
                };
                match self.room.apply_remote(update.clone()).await {
                    Ok(_) => {
                        applied += 1;
                        match known_plus(row.known.as_deref(), &update) {
                            Ok(known) => row.known = Some(known),
                            Err(e) => tracing::debug!("held change not counted as known: {e}"),
                        }
                    }
                    Err(e) => self.refused("invalid", offset, &e.to_string()),
                }
            }
            if from >= row.state.head {
                break;
            }
        }
        // Parts of an upload not complete yet are read again next time, from its first.
        row.cursor = [waiting_for_key, assembler.resume_from(), Some(from)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(from);
        Ok(applied)
    }

    pub(super) fn may_write(&self, key: &KeyBytes) -> bool {
        self.room
            .access()
            .membership
            .role_of_key(key)
            .is_some_and(|role| role.may_write())
    }

    pub(super) fn refused(&self, reason: &'static str, offset: u64, why: &str) {
        self.metrics.refused("held_entry", reason, 1);
        tracing::warn!(doc = %self.room.id, holder = %self.holder, offset, "held entry refused: {why}");
    }

    /// Uploads a change in parts; returns the bytes sent.
    async fn upload(&self, update: &[u8], row: &mut HolderRow) -> Result<usize, HoldingError> {
        let upload = rand::thread_rng().next_u64();
        let keys = self.room.keys();
        let mut sent = 0;
        for plain in split(update, upload) {
            let sealed = keys.seal(&self.room.topic, Purpose::Held, &plain);
            let entry =
                Entry::sign(&self.room.topic, EntryKind::Update, sealed, self.identity).encode();
            sent += entry.len();
            let caught_up = row.cursor == row.state.head;
            match self.ask(HoldBody::Append { entry }).await? {
                HoldResponse::Held(state) => {
                    // Nothing came between what this node read and its own entry: no need to
                    // read its own entry back.
                    let next = row.state.head.checked_add(1);
                    if !adopt(row, state) && caught_up && Some(state.head) == next {
                        row.cursor = state.head;
                    }
                }
                _ => {
                    return Err(HoldingError::Protocol(
                        "append answered with something else",
                    ))
                }
            }
        }
        Ok(sent)
    }
}

/// Takes the holder's account of itself. If the holder started over (another incarnation),
/// what this node knew of it no longer holds: it reads from the start, and knows nothing of
/// what the holder keeps. Returns whether it started over.
pub(super) fn adopt(row: &mut HolderRow, state: HeldState) -> bool {
    let restarted = row.state.incarnation != 0 && state.incarnation != row.state.incarnation;
    if restarted {
        tracing::info!(holder = %row.peer, "the holder started over: reading it from the start");
        row.cursor = 0;
        row.known = None;
    }
    row.state = state;
    restarted
}

impl From<Refusal> for HoldingError {
    fn from(why: Refusal) -> HoldingError {
        HoldingError::Refused(why)
    }
}
