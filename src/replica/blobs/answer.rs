//! The answer to an admitted blob request: whether the blob is here, or one of its pieces read
//! from the files through the hash check.

use super::BlobContext;
use crate::core::blob::pieces::piece_count;
use crate::core::blob::wire::{BlobAsk, BlobRequest, BlobResponse, Refusal};
use crate::core::blob::Bitmap;
use crate::replica::store::HeldKey;

/// The answer to an admitted request.
pub(super) async fn answer(ctx: &BlobContext, request: &BlobRequest) -> BlobResponse {
    let missing = BlobResponse::Refused(Refusal::Missing);
    let row = match ctx
        .store
        .attached_blob(
            request.hash,
            HeldKey {
                topic: request.topic,
                owner: request.owner,
            },
        )
        .await
    {
        Ok(Some(row)) => row,
        Ok(None) => return missing,
        Err(e) => {
            tracing::warn!("cannot read the blob table: {e}");
            return BlobResponse::Refused(Refusal::Busy);
        }
    };
    match request.body {
        BlobAsk::Have => BlobResponse::Have {
            complete: row.complete,
        },
        // Answered by `BlobService::keep` (holders), refused elsewhere before this.
        BlobAsk::Keep(_) => missing,
        BlobAsk::Piece(piece) => {
            let count = piece_count(row.size);
            let have = row.complete
                || Bitmap::from_bytes(count, &row.have).is_some_and(|have| have.get(piece));
            if !have {
                return missing;
            }
            let files = ctx.files.clone();
            let hash = request.hash;
            let complete = row.complete;
            let size = row.size;
            match tokio::task::spawn_blocking(move || {
                files.encode_piece(&hash, size, complete, piece)
            })
            .await
            {
                #[cfg(feature = "test-faults")]
                Ok(Ok(mut slice)) if ctx.corrupt_pieces => {
                    let at = slice.len() / 2;
                    if let Some(b) = slice.get_mut(at) {
                        *b ^= 0x40;
                    }
                    BlobResponse::Piece(slice)
                }
                Ok(Ok(slice)) => BlobResponse::Piece(slice),
                Ok(Err(e)) => {
                    tracing::warn!(blob = %hash, piece, "cannot serve a piece (damaged file?): {e}");
                    missing
                }
                Err(_) => missing,
            }
        }
    }
}
