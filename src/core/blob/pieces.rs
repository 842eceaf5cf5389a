//! The pieces a blob travels in, and their verification. A piece is [`PIECE_BYTES`] of the
//! ciphertext (the last one shorter), sent as a BLAKE3 verified-streaming slice (bao, with
//! 16 KiB chunk groups): the piece's data and the hashes that link it to the blob's hash.
//! [`decode_piece`] checks every chunk group against that hash before it hands out any of its
//! bytes, so a bad piece is caught at once and none of it is kept.

use bao_tree::io::sync::DecodeResponseIter;
use bao_tree::io::BaoContentItem;
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};

use super::BlobHash;

/// Bytes of ciphertext per piece.
pub const PIECE_BYTES: u64 = 256 * 1024;
/// Chunk groups of 16 KiB (2^4 chunks of 1 KiB): the outboard is 64 bytes per 16 KiB.
pub const BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(4);
const CHUNKS_PER_PIECE: u64 = PIECE_BYTES / 1024;

/// The hash tree of a blob of `size` bytes.
pub fn tree(size: u64) -> BaoTree {
    BaoTree::new(size, BLOCK_SIZE)
}

/// Pieces in a blob of `size` bytes (an empty blob has one, empty).
pub fn piece_count(size: u64) -> u32 {
    u32::try_from(size.div_ceil(PIECE_BYTES).max(1)).unwrap_or(u32::MAX)
}

/// The chunks of piece `piece`, as bao asks for them.
pub fn piece_ranges(piece: u32) -> ChunkRanges {
    let start = u64::from(piece) * CHUNKS_PER_PIECE;
    ChunkRanges::from(ChunkNum(start)..ChunkNum(start + CHUNKS_PER_PIECE))
}

/// Where piece `piece` starts in the blob, and its length.
pub fn piece_span(size: u64, piece: u32) -> (u64, u64) {
    let start = u64::from(piece) * PIECE_BYTES;
    (start, size.saturating_sub(start).min(PIECE_BYTES))
}

/// A verified piece: its bytes, and the outboard entries its proof carried (byte offset in a
/// pre-order outboard, then the 64 bytes of the hash pair) for the receiver to keep, so that it
/// can serve the blob in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub offset: u64,
    pub data: Vec<u8>,
    pub outboard: Vec<(u64, [u8; 64])>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PieceError {
    #[error("piece {0} is beyond the blob's end")]
    OutOfRange(u32),
    #[error("piece does not match the blob's hash (or is cut short): {0}")]
    Corrupt(String),
    #[error("piece has bytes after its end")]
    Trailing,
}

/// Checks `encoded` (a bao slice of piece `piece` of the blob `hash` of `size` bytes) and
/// returns its data and proof.
pub fn decode_piece(
    hash: &BlobHash,
    size: u64,
    piece: u32,
    encoded: &[u8],
) -> Result<Verified, PieceError> {
    if piece >= piece_count(size) {
        return Err(PieceError::OutOfRange(piece));
    }
    let tree = tree(size);
    let ranges = piece_ranges(piece);
    let (offset, len) = piece_span(size, piece);
    let mut reader = std::io::Cursor::new(encoded);
    let root = blake3::Hash::from_bytes(hash.0);
    let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    let mut outboard = Vec::new();
    for item in DecodeResponseIter::new(root, tree, &mut reader, &ranges) {
        match item.map_err(|e| PieceError::Corrupt(e.to_string()))? {
            BaoContentItem::Parent(p) => {
                if let Some(at) = tree.pre_order_offset(p.node) {
                    let mut pair = [0u8; 64];
                    pair[..32].copy_from_slice(p.pair.0.as_bytes());
                    pair[32..].copy_from_slice(p.pair.1.as_bytes());
                    outboard.push((at * 64, pair));
                }
            }
            BaoContentItem::Leaf(leaf) => {
                if leaf.offset != offset + data.len() as u64 {
                    return Err(PieceError::Corrupt("leaves out of order".into()));
                }
                data.extend_from_slice(&leaf.data);
            }
        }
    }
    if data.len() as u64 != len {
        return Err(PieceError::Corrupt(format!(
            "{} bytes of {len}",
            data.len()
        )));
    }
    if reader.position() != encoded.len() as u64 {
        return Err(PieceError::Trailing);
    }
    Ok(Verified {
        offset,
        data,
        outboard,
    })
}

/// Which pieces of a blob a node has (verified and durable), one bit each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    bits: Vec<u8>,
    len: u32,
    /// Bits set (kept as they are set: a large blob's bitmap is asked this after every piece).
    ones: u32,
}

impl Bitmap {
    pub fn new(len: u32) -> Bitmap {
        Bitmap {
            bits: vec![0; (len as usize).div_ceil(8)],
            len,
            ones: 0,
        }
    }
    /// Every one of `len` pieces.
    pub fn full(len: u32) -> Bitmap {
        let mut map = Bitmap::new(len);
        (0..len).for_each(|i| map.set(i));
        map
    }
    /// A stored bitmap for `len` pieces; `None` if its size does not fit.
    pub fn from_bytes(len: u32, bytes: &[u8]) -> Option<Bitmap> {
        if bytes.len() != (len as usize).div_ceil(8) {
            return None;
        }
        let mut map = Bitmap::new(len);
        for i in 0..len {
            if bytes[(i / 8) as usize] & (1 << (i % 8)) != 0 {
                map.set(i);
            }
        }
        Some(map)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }
    pub fn len(&self) -> u32 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.bits[(i / 8) as usize] & (1 << (i % 8)) != 0
    }
    pub fn set(&mut self, i: u32) {
        if i < self.len && !self.get(i) {
            self.bits[(i / 8) as usize] |= 1 << (i % 8);
            self.ones += 1;
        }
    }
    pub fn count(&self) -> u32 {
        self.ones
    }
    pub fn is_full(&self) -> bool {
        self.count() == self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bao_tree::io::outboard::PreOrderMemOutboard;
    use bao_tree::io::sync::encode_ranges_validated;

    fn blob(size: usize) -> (Vec<u8>, BlobHash, PreOrderMemOutboard) {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
        let ob = PreOrderMemOutboard::create(&data, BLOCK_SIZE);
        let hash = BlobHash(*blake3::hash(&data).as_bytes());
        assert_eq!(ob.root.as_bytes(), &hash.0, "the root is plain BLAKE3");
        (data, hash, ob)
    }

    fn encode(data: &[u8], ob: &PreOrderMemOutboard, piece: u32) -> Vec<u8> {
        let mut out = Vec::new();
        encode_ranges_validated(data, ob, &piece_ranges(piece), &mut out).unwrap();
        out
    }

    #[test]
    fn every_piece_verifies_and_together_they_rebuild_blob_and_outboard() {
        let size = 3 * PIECE_BYTES as usize + 12_345;
        let (data, hash, ob) = blob(size);
        let mut rebuilt = vec![0u8; size];
        let mut outboard = vec![0u8; ob.data.len()];
        assert_eq!(piece_count(size as u64), 4);
        for piece in 0..4 {
            let v = decode_piece(&hash, size as u64, piece, &encode(&data, &ob, piece)).unwrap();
            rebuilt[v.offset as usize..][..v.data.len()].copy_from_slice(&v.data);
            for (at, pair) in v.outboard {
                outboard[at as usize..][..64].copy_from_slice(&pair);
            }
        }
        assert_eq!(rebuilt, data);
        assert_eq!(outboard, ob.data, "the proofs rebuild the whole outboard");
    }

    #[test]
    fn a_flipped_byte_anywhere_in_a_piece_is_caught() {
        let size = 2 * PIECE_BYTES as usize + 999;
        let (data, hash, ob) = blob(size);
        let good = encode(&data, &ob, 1);
        for at in (0..good.len()).step_by(4099).chain([good.len() - 1]) {
            let mut bad = good.clone();
            bad[at] ^= 1;
            assert!(
                matches!(
                    decode_piece(&hash, size as u64, 1, &bad),
                    Err(PieceError::Corrupt(_))
                ),
                "byte {at}"
            );
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            decode_piece(&hash, size as u64, 1, &long),
            Err(PieceError::Trailing)
        );
        assert!(decode_piece(&hash, size as u64, 1, &good[..good.len() - 1]).is_err());
        assert_eq!(
            decode_piece(&hash, size as u64, 3, &good),
            Err(PieceError::OutOfRange(3))
        );
        // Another piece's slice is no proof of this one.
        assert!(decode_piece(&hash, size as u64, 0, &good).is_err());
    }

    #[test]
    fn tiny_and_empty_blobs_are_one_piece() {
        for size in [0usize, 1, 1024, 16 * 1024 + 1] {
            let (data, hash, ob) = blob(size);
            let v = decode_piece(&hash, size as u64, 0, &encode(&data, &ob, 0)).unwrap();
            assert_eq!(v.data, data);
        }
    }

    #[test]
    fn a_bitmap_counts_and_round_trips() {
        let mut b = Bitmap::new(13);
        assert!(!b.get(3));
        b.set(3);
        b.set(12);
        b.set(99);
        assert_eq!(b.count(), 2);
        assert_eq!(Bitmap::from_bytes(13, b.as_bytes()), Some(b.clone()));
        assert_eq!(Bitmap::from_bytes(14, &[0; 3]), None);
        assert!(!b.is_full());
    }
}
