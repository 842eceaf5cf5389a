//! Attachments and holders: a writer offers what it adds to the document's holders (and checks
//! now and then that they keep it); a holder checks that it has room, and that an asker has a
//! blob it already keeps before attaching it to another document.

use std::time::Duration;

use libp2p::PeerId;

use super::{has_whole, BlobContext};
use crate::core::access::KeyBytes;
use crate::core::blob::pieces::piece_count;
use crate::core::blob::wire::{BlobAsk, BlobRequest, BlobResponse};
use crate::core::blob::BlobHash;
use crate::replica::rooms::Rooms;
use crate::replica::store::{HeldKey, StoreError};

/// A blob to offer to a document's holders.
#[derive(Debug, Clone)]
pub(crate) struct Offer {
    pub(crate) topic: [u8; 32],
    pub(crate) owner: KeyBytes,
    pub(crate) hash: BlobHash,
    pub(crate) size: u64,
    pub(crate) holders: Vec<PeerId>,
}

impl Offer {
    pub(super) async fn send(self, ctx: &BlobContext) {
        let request = BlobRequest {
            topic: self.topic,
            owner: self.owner,
            hash: self.hash,
            body: BlobAsk::Keep(self.size),
        }
        .encode();
        for holder in self.holders {
            let answer = tokio::time::timeout(
                Duration::from_secs(10),
                ctx.net.request(holder, request.clone()),
            )
            .await;
            match answer.map(|r| r.map(|bytes| BlobResponse::decode(&bytes))) {
                Ok(Ok(Ok(BlobResponse::Have { .. }))) => {
                    tracing::debug!(blob = %self.hash, %holder, "a holder keeps the attachment")
                }
                other => {
                    tracing::debug!(blob = %self.hash, %holder, "a holder did not take the attachment: {other:?}")
                }
            }
        }
    }
}

/// Asks each holder of each document here whether it keeps each attachment this node has
/// whole, and asks those that do not to keep it (they fetch it from this node).
pub(super) async fn reoffer_all(ctx: &BlobContext, rooms: &Rooms) {
    let Ok(all) = ctx.store.all_blobs().await else {
        return;
    };
    for room in rooms.all() {
        let membership = room.access().membership.clone();
        let holders: Vec<PeerId> = membership
            .holders()
            .iter()
            .filter_map(crate::core::access::peer_of)
            .collect();
        if holders.is_empty()
            || !membership
                .role_of_key(&ctx.me)
                .is_some_and(|r| r.may_write())
        {
            continue;
        }
        let doc = HeldKey {
            topic: room.topic,
            owner: membership.owner(),
        };
        for (row, _) in all
            .iter()
            .filter(|(r, docs)| r.complete && docs.contains(&doc))
        {
            for &holder in &holders {
                let have = BlobRequest {
                    topic: doc.topic,
                    owner: doc.owner,
                    hash: row.hash,
                    body: BlobAsk::Have,
                };
                // Unreachable or missing: asked to keep it (unreachable ones fail quietly).
                if !has_whole(&ctx.net, holder, have.encode()).await {
                    Offer {
                        topic: doc.topic,
                        owner: doc.owner,
                        hash: row.hash,
                        size: row.size,
                        holders: vec![holder],
                    }
                    .send(ctx)
                    .await;
                }
            }
        }
    }
}

/// Whether a holder has room for a blob of `size` for `doc`: its attachments for the document,
/// and all the blobs it keeps, within its limits.
pub(super) async fn room_for(
    ctx: &BlobContext,
    doc: HeldKey,
    hash: BlobHash,
    size: u64,
) -> Result<bool, StoreError> {
    let per_doc: u64 = ctx
        .store
        .doc_blobs(doc)
        .await?
        .iter()
        .filter(|r| r.hash != hash)
        .map(|r| r.size)
        .sum();
    if per_doc.saturating_add(size) > ctx.limits.max_doc_bytes {
        return Ok(false);
    }
    let Some(total_max) = ctx.limits.held_total else {
        return Ok(true);
    };
    let total: u64 = ctx
        .store
        .all_blobs()
        .await?
        .iter()
        .filter(|(r, _)| r.hash != hash)
        .map(|(r, _)| r.size)
        .sum();
    Ok(total.saturating_add(size) <= total_max)
}

/// Whether `peer` has the blob: it sends a piece of it, chosen at random, that verifies.
pub(super) async fn possesses(
    ctx: &BlobContext,
    peer: PeerId,
    request: &BlobRequest,
    size: u64,
) -> bool {
    let piece = rand::random::<u32>() % piece_count(size);
    let ask = BlobRequest {
        body: BlobAsk::Piece(piece),
        ..request.clone()
    }
    .encode();
    let Ok(Ok(bytes)) =
        tokio::time::timeout(Duration::from_secs(15), ctx.net.request(peer, ask)).await
    else {
        return false;
    };
    let Ok(BlobResponse::Piece(slice)) = BlobResponse::decode(&bytes) else {
        return false;
    };
    let hash = request.hash;
    tokio::task::spawn_blocking(move || {
        crate::core::blob::pieces::decode_piece(&hash, size, piece, &slice).is_ok()
    })
    .await
    .unwrap_or(false)
}
