//! Attachments (blobs): files that documents refer to, content-addressed and sealed. Pure: the
//! [`BlobRef`] a document holds, the sealing ([`seal`]), the pieces a blob travels in and their
//! verification ([`pieces`]), the download plan over several sources ([`schedule`]) and the
//! blob messages on `/peerdoc/sync/1` ([`wire`]). Byte layouts are in PROTOCOL.md
//! ("Attachments").
//!
//! What travels and is stored is the ciphertext; a reference names it by the BLAKE3 hash of
//! that ciphertext, so any node can verify what it keeps and serves (a holder too) without the
//! key. The key travels only inside the reference, and the reference only inside the sealed
//! document: a member removed before a reference was written never learns its key.

pub mod pieces;
pub mod schedule;
pub mod seal;
pub mod wire;

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub use pieces::{Bitmap, PIECE_BYTES};
pub use schedule::Schedule;

/// First byte of every blob request and response on `/peerdoc/sync/1`.
pub const BLOB_WIRE: u8 = 3;

/// The BLAKE3 hash of a blob's ciphertext: its name everywhere.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<BlobHash> {
        let mut out = [0; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(BlobHash(out))
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", &self.to_hex()[..12])
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What a document holds to refer to an attachment: the ciphertext's hash, the key that opens
/// it and its size. Its text form, `b1.<hash: 64 hex>.<key: 43 base64url>.<size>`, is what
/// links in documents, the CLI and the API carry.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobRef {
    pub hash: BlobHash,
    pub key: [u8; 32],
    pub size: u64,
}

impl fmt::Debug for BlobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        write!(f, "BlobRef({:?}, {} bytes)", self.hash, self.size)
    }
}

impl fmt::Display for BlobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "b1.{}.{}.{}",
            self.hash.to_hex(),
            URL_SAFE_NO_PAD.encode(self.key),
            self.size
        )
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an attachment reference (expected b1.<64 hex>.<43 base64url>.<size>): {0}")]
pub struct BadRef(pub &'static str);

impl FromStr for BlobRef {
    type Err = BadRef;
    fn from_str(s: &str) -> Result<BlobRef, BadRef> {
        let mut parts = s.trim().split('.');
        if parts.next() != Some("b1") {
            return Err(BadRef("it does not start with b1."));
        }
        // One text per reference: lowercase hex, a size without leading zeros.
        let hash = parts
            .next()
            .filter(|h| !h.bytes().any(|b| b.is_ascii_uppercase()))
            .and_then(BlobHash::from_hex)
            .ok_or(BadRef("bad hash"))?;
        let key = parts
            .next()
            .and_then(|k| URL_SAFE_NO_PAD.decode(k).ok())
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or(BadRef("bad key"))?;
        let size = parts
            .next()
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .filter(|n| *n == "0" || !n.starts_with('0'))
            .and_then(|n| n.parse().ok())
            .filter(|&n| n <= MAX_BLOB_BYTES)
            .ok_or(BadRef("bad size"))?;
        if parts.next().is_some() {
            return Err(BadRef("trailing parts"));
        }
        Ok(BlobRef { hash, key, size })
    }
}

/// Largest attachment the format allows (the stream cipher's counter and the piece numbers
/// bound it far above; the config's limits are lower).
pub const MAX_BLOB_BYTES: u64 = 1 << 40;

/// Longest text form of a reference (its size has at most 13 digits).
const MAX_REF_TEXT: usize = 3 + 64 + 1 + 43 + 1 + 13;

/// Every reference in `text` (a document's text, Markdown or attribute values), in order of
/// first appearance, each once.
pub fn refs_in(text: &str) -> Vec<BlobRef> {
    let mut out: Vec<BlobRef> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("b1.") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_'))
            .unwrap_or(tail.len())
            .min(MAX_REF_TEXT);
        // A reference ends at its size's last digit ("b1.….123.png" is one in a file name).
        let candidate = &tail[..end];
        let found = (0..=candidate.len())
            .rev()
            .filter(|&n| candidate.is_char_boundary(n))
            .find_map(|n| candidate[..n].parse::<BlobRef>().ok());
        if let Some(r) = found {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        rest = &rest[at + 3..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BlobRef {
        BlobRef {
            hash: BlobHash([7; 32]),
            key: [9; 32],
            size: 123_456,
        }
    }

    #[test]
    fn a_reference_round_trips_through_its_text() {
        let r = sample();
        let text = r.to_string();
        assert!(text.starts_with("b1.0707"));
        assert_eq!(text.parse::<BlobRef>(), Ok(r));
        assert!(!format!("{r:?}").contains(&URL_SAFE_NO_PAD.encode([9u8; 32])));
    }

    #[test]
    fn malformed_references_are_refused() {
        let good = sample().to_string();
        for bad in [
            "",
            "b2.00",
            &good.replace("b1.", "b0."),
            &good[..good.len() - 7],
            &format!("{good}.x"),
            &format!("{good}x"),
            &good.replacen("0707", "zz07", 1),
            "b1.0707.AAAA.1",
            &good.replacen("0707", "0A07", 1),
            &good.replace(".123456", ".0123456"),
        ] {
            assert!(bad.parse::<BlobRef>().is_err(), "{bad}");
        }
        let huge = format!("{}.{}", &good[..good.rfind('.').unwrap()], u64::MAX);
        assert_eq!(huge.parse::<BlobRef>(), Err(BadRef("bad size")));
    }

    #[test]
    fn references_are_found_in_links_and_file_names() {
        let r = sample();
        let other = BlobRef { size: 5, ..r };
        let text =
            format!("![a](/api/docs/x/blobs/{r}/a.png) and [b]({other}) again {r} and b1.broken");
        assert_eq!(refs_in(&text), vec![r, other]);
        assert_eq!(refs_in(&format!("{r}.png")), vec![r]);
        assert!(refs_in("nothing here b1.").is_empty());
    }
}
