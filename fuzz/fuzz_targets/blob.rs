//! What nodes read from each other about attachments: blob requests and responses, pieces
//! (bao slices checked against a blob's hash), and references in text. Invariants: no decoder
//! panics; whatever decodes encodes back to the same bytes; a piece is accepted only if it is
//! the blob's own bytes; a reference found in text parses and prints back as found.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use peerdoc::core::blob::pieces::{decode_piece, piece_span};
use peerdoc::core::blob::wire::{BlobRequest, BlobResponse};
use peerdoc::core::blob::{refs_in, BlobHash, BlobRef};

/// Blobs whose pieces the input plays: one of a single chunk group (its slice is its bytes),
/// one of two pieces (slices carry parent hashes).
fn blobs() -> &'static [(Vec<u8>, BlobHash); 2] {
    static BLOBS: OnceLock<[(Vec<u8>, BlobHash); 2]> = OnceLock::new();
    BLOBS.get_or_init(|| {
        let make = |n: usize| {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
            let hash = BlobHash(*blake3::hash(&data).as_bytes());
            (data, hash)
        };
        [make(3000), make(300_000)]
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = BlobRequest::decode(data) {
        assert_eq!(request.encode(), data, "one encoding per request");
    }
    if let Ok(response) = BlobResponse::decode(data) {
        assert_eq!(response.encode(), data, "one encoding per response");
    }
    for (blob, hash) in blobs() {
        let size = blob.len() as u64;
        for piece in 0..2 {
            if let Ok(v) = decode_piece(hash, size, piece, data) {
                let (start, len) = piece_span(size, piece);
                assert_eq!(v.offset, start);
                assert_eq!(&v.data[..], &blob[start as usize..(start + len) as usize]);
            }
        }
    }
    let text = String::from_utf8_lossy(data);
    for r in refs_in(&text) {
        let printed = r.to_string();
        assert_eq!(printed.parse::<BlobRef>(), Ok(r));
        assert!(text.contains(&printed));
    }
});
