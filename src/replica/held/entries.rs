//! The holder's log of entries: a writer's entry checked and kept durably before it is
//! acknowledged, and entries served from an offset on.

use libp2p::request_response::ResponseChannel;
use libp2p::PeerId;

use super::HeldService;
use crate::core::access::KeyBytes;
use crate::core::hold::{
    Entry, EntryError, EntryKind, HeldState, HoldResponse, Refusal, FETCH_BYTES,
};
use crate::metrics::Metrics;
use crate::replica::store::{HeldKey, StoreError};

impl HeldService {
    /// An entry from a writer: checked (signed by the requester, for this document), kept
    /// durably, then acknowledged.
    pub(super) fn on_append(
        &mut self,
        key: HeldKey,
        peer: PeerId,
        requester: KeyBytes,
        bytes: Vec<u8>,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        if let Err(why) = check_entry(&key, &bytes, &requester, EntryKind::Update) {
            return self.refuse(peer, channel, why);
        }
        let store = self.store.clone();
        let limits = self.limits;
        let metrics = self.metrics.clone();
        let net = self.net.clone();
        self.spawn_task(async move {
            let kept = store.append_held(key, requester, bytes, limits).await;
            let response = answer_kept(kept, &metrics, peer, "an entry");
            let _ = net.try_respond(channel, response.encode());
        });
    }

    pub(super) fn on_fetch(&mut self, key: HeldKey, from: u64, channel: ResponseChannel<Vec<u8>>) {
        let store = self.store.clone();
        let net = self.net.clone();
        self.spawn_task(async move {
            let response = match store.fetch_held(key, from, FETCH_BYTES).await {
                Ok((state, entries)) => HoldResponse::Entries { state, entries },
                Err(e) => {
                    tracing::warn!("cannot read held entries: {e}");
                    HoldResponse::Refused(Refusal::Busy)
                }
            };
            let _ = net.try_respond(channel, response.encode());
        });
    }
}

/// The answer to a write once the store is done: the document's state, or why it was not
/// kept (full: a limit or the disk; busy: anything else), counted.
pub(super) fn answer_kept(
    kept: Result<Option<HeldState>, StoreError>,
    metrics: &Metrics,
    peer: PeerId,
    what: &str,
) -> HoldResponse {
    let why = match kept {
        Ok(Some(state)) => return HoldResponse::Held(state),
        Ok(None) => Refusal::Full,
        Err(e) => {
            tracing::warn!(%peer, "cannot keep {what}: {e}");
            if e.is_full() {
                Refusal::Full
            } else {
                Refusal::Busy
            }
        }
    };
    metrics.refused("held", why.as_str(), 1);
    HoldResponse::Refused(why)
}

/// An entry a writer sends: of the kind its request says, signed by the requester, for this
/// document.
pub(super) fn check_entry(
    key: &HeldKey,
    bytes: &[u8],
    requester: &KeyBytes,
    kind: EntryKind,
) -> Result<(), Refusal> {
    match Entry::decode(&key.topic, bytes) {
        Ok(entry) if entry.uploader == *requester && entry.kind == kind => Ok(()),
        Ok(entry) if entry.uploader == *requester => Err(Refusal::Malformed),
        Ok(_) | Err(EntryError::BadSignature) => Err(Refusal::BadSignature),
        Err(EntryError::Malformed(_)) => Err(Refusal::Malformed),
    }
}
