//! Blob requests for documents this node holds: members read, writers ask it to keep; each
//! admitted by the roster the holder keeps, then answered by `replica::blobs`.

use libp2p::request_response::ResponseChannel;
use libp2p::PeerId;

use super::{HeldService, Waiting};
use crate::core::access::key_of;
use crate::core::blob::wire::{BlobAsk, BlobRequest, BlobResponse, Refusal as BlobRefusal};
use crate::core::hold::{admit, Asked, Refusal};
use crate::replica::store::HeldKey;

impl HeldService {
    /// A blob request for a document this node may hold: members read, writers ask it to
    /// keep; refusals are counted as the member side counts them (`what="blob"`).
    pub(super) fn on_blob(
        &mut self,
        peer: PeerId,
        request: BlobRequest,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        let key = HeldKey {
            topic: request.topic,
            owner: request.owner,
        };
        let (held, request, channel) = match self.slot(key, Waiting::Blob(peer, request, channel)) {
            Some((held, Waiting::Blob(_, request, channel))) => (held, request, channel),
            _ => return,
        };
        let refuse = |why: BlobRefusal, channel| {
            self.metrics.refused("blob", why.as_str(), 1);
            tracing::info!(%peer, reason = why.as_str(), "blob request refused (held document)");
            let _ = self
                .net
                .try_respond(channel, BlobResponse::Refused(why).encode());
        };
        let Some(held) = held else {
            return refuse(BlobRefusal::Missing, channel);
        };
        let Ok(requester) = key_of(&peer) else {
            return refuse(BlobRefusal::NotMember, channel);
        };
        let asked = match request.body {
            BlobAsk::Keep(_) => Asked::Append,
            BlobAsk::Have | BlobAsk::Piece(_) => Asked::Read,
        };
        if let Err(why) = admit(&held.membership, &self.me, &requester, asked) {
            let refusal = match why {
                Refusal::Removed => BlobRefusal::Removed,
                _ => BlobRefusal::NotMember,
            };
            return refuse(refusal, channel);
        }
        self.blobs.try_admitted(&self.net, peer, request, channel);
    }
}
