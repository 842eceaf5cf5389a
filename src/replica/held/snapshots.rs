//! The holder's side of compaction: a writer's snapshot kept part by part (its last part
//! replaces the entries it covers), and served part by part to readers behind it.

use libp2p::request_response::ResponseChannel;
use libp2p::PeerId;

use super::entries::{answer_kept, check_entry};
use super::HeldService;
use crate::core::hold::{EntryKind, HoldResponse, Refusal};
use crate::replica::store::{HeldKey, SnapshotPart};

impl HeldService {
    /// A part of a snapshot from a writer: checked like an entry, kept; its last part makes
    /// the snapshot replace the entries below its offset (in the same commit).
    pub(super) fn on_snapshot(
        &mut self,
        key: HeldKey,
        peer: PeerId,
        part: SnapshotPart,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        if let Err(why) = check_entry(&key, &part.entry, &part.uploader, EntryKind::Snapshot) {
            return self.refuse(peer, channel, why);
        }
        let store = self.store.clone();
        let limits = self.limits;
        let metrics = self.metrics.clone();
        let net = self.net.clone();
        self.spawn_task(async move {
            let last = part.part + 1 == part.parts;
            let kept = store.snapshot_part(key, part, limits).await;
            if let (true, Ok(Some(state))) = (last, &kept) {
                tracing::debug!(
                    base = state.base,
                    bytes = state.bytes,
                    "held document compacted"
                );
            }
            let response = answer_kept(kept, &metrics, peer, "a snapshot part");
            let _ = net.try_respond(channel, response.encode());
        });
    }

    pub(super) fn on_fetch_snapshot(
        &mut self,
        key: HeldKey,
        part: u32,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        let store = self.store.clone();
        let net = self.net.clone();
        self.spawn_task(async move {
            let response = match store.fetch_snapshot(key, part).await {
                Ok(Some(p)) => HoldResponse::SnapshotPart {
                    covers: p.covers,
                    part: p.part,
                    parts: p.parts,
                    entry: p.entry,
                },
                // Replaced meanwhile, or never made: the reader starts over.
                Ok(None) => HoldResponse::Refused(Refusal::UnknownDoc),
                Err(e) => {
                    tracing::warn!("cannot read a held snapshot: {e}");
                    HoldResponse::Refused(Refusal::Busy)
                }
            };
            let _ = net.try_respond(channel, response.encode());
        });
    }
}
