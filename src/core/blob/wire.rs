//! Blob requests and responses on `/peerdoc/sync/1` (they start with [`BLOB_WIRE`]). A request
//! names the document (topic and owner, as hold requests do: a holder keeps documents apart by
//! both) and the blob; the server answers only members of that document, and only with blobs
//! attached to it. Pieces travel as they are stored: ciphertext, in bao slices.

use super::{BlobHash, BLOB_WIRE};
use crate::core::access::KeyBytes;
use crate::core::sync::MAX_RESPONSE_BYTES;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed blob message: {0}")]
pub struct WireError(pub &'static str);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRequest {
    pub topic: [u8; 32],
    pub owner: KeyBytes,
    pub hash: BlobHash,
    pub body: BlobAsk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobAsk {
    /// `0x00`: do you have the whole blob?
    Have,
    /// `0x01`: piece `n` (`varuint n`).
    Piece(u32),
    /// `0x02`: keep this blob of `size` bytes for the document (`varuint size`): asked of a
    /// holder by a writer, which the holder then fetches it from.
    Keep(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobResponse {
    /// `0x00`: `u8 complete` (1: every piece can be asked).
    Have { complete: bool },
    /// `0x01`: the piece's bao slice (the rest of the message).
    Piece(Vec<u8>),
    /// `0x02`: `u8 code`.
    Refused(Refusal),
}

/// Why a blob request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The requester is no member of the document.
    NotMember = 1,
    /// The requester was removed from it.
    Removed = 2,
    /// This node has no such blob for the document (or not that piece yet).
    Missing = 3,
    /// Too many requests being served; ask again later.
    Busy = 4,
    /// The request did not decode.
    Malformed = 5,
    /// A holder's limits leave no room for it.
    Full = 6,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotMember => "not_member",
            Refusal::Removed => "removed",
            Refusal::Missing => "missing",
            Refusal::Busy => "busy",
            Refusal::Malformed => "malformed",
            Refusal::Full => "full",
        }
    }
    fn from_code(code: u8) -> Option<Refusal> {
        Some(match code {
            1 => Refusal::NotMember,
            2 => Refusal::Removed,
            3 => Refusal::Missing,
            4 => Refusal::Busy,
            5 => Refusal::Malformed,
            6 => Refusal::Full,
            _ => return None,
        })
    }
}

impl BlobRequest {
    /// `0x03 · kind · topic[32] · owner[32] · hash[32] · body`.
    pub fn encode(&self) -> Vec<u8> {
        let kind = match self.body {
            BlobAsk::Have => 0,
            BlobAsk::Piece(_) => 1,
            BlobAsk::Keep(_) => 2,
        };
        let mut out = Vec::with_capacity(2 + 96 + 5);
        out.extend_from_slice(&[BLOB_WIRE, kind]);
        out.extend_from_slice(&self.topic);
        out.extend_from_slice(&self.owner);
        out.extend_from_slice(&self.hash.0);
        match self.body {
            BlobAsk::Have => {}
            BlobAsk::Piece(n) => write_var(&mut out, u64::from(n)),
            BlobAsk::Keep(size) => write_var(&mut out, size),
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<BlobRequest, WireError> {
        let [BLOB_WIRE, kind, rest @ ..] = bytes else {
            return Err(WireError("not a blob request"));
        };
        if rest.len() < 96 {
            return Err(WireError("truncated"));
        }
        let (ids, rest) = rest.split_at(96);
        let array = |at: usize| -> [u8; 32] {
            let mut a = [0; 32];
            a.copy_from_slice(&ids[at..at + 32]);
            a
        };
        let number = |what| -> Result<u64, WireError> {
            let (n, used) = read_var(rest).ok_or(WireError(what))?;
            if used != rest.len() {
                return Err(WireError("trailing bytes"));
            }
            Ok(n)
        };
        let body = match kind {
            0 if rest.is_empty() => BlobAsk::Have,
            0 => return Err(WireError("trailing bytes")),
            1 => BlobAsk::Piece(
                u32::try_from(number("bad piece number")?)
                    .map_err(|_| WireError("piece number too big"))?,
            ),
            2 => {
                let size = number("bad size")?;
                if size > super::MAX_BLOB_BYTES {
                    return Err(WireError("size too big"));
                }
                BlobAsk::Keep(size)
            }
            _ => return Err(WireError("unknown request kind")),
        };
        Ok(BlobRequest {
            topic: array(0),
            owner: array(32),
            hash: BlobHash(array(64)),
            body,
        })
    }
}

impl BlobResponse {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            BlobResponse::Have { complete } => vec![BLOB_WIRE, 0, u8::from(*complete)],
            BlobResponse::Piece(slice) => {
                let mut out = Vec::with_capacity(2 + slice.len());
                out.extend_from_slice(&[BLOB_WIRE, 1]);
                out.extend_from_slice(slice);
                out
            }
            BlobResponse::Refused(why) => vec![BLOB_WIRE, 2, *why as u8],
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<BlobResponse, WireError> {
        if bytes.len() > MAX_RESPONSE_BYTES {
            return Err(WireError("too long"));
        }
        match bytes {
            [BLOB_WIRE, 0, c @ (0 | 1)] => Ok(BlobResponse::Have { complete: *c == 1 }),
            [BLOB_WIRE, 1, slice @ ..] => Ok(BlobResponse::Piece(slice.to_vec())),
            [BLOB_WIRE, 2, code] => Refusal::from_code(*code)
                .map(BlobResponse::Refused)
                .ok_or(WireError("unknown refusal")),
            [BLOB_WIRE, ..] => Err(WireError("unknown or malformed response")),
            _ => Err(WireError("not a blob response")),
        }
    }
}

fn write_var(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A LEB128 varuint of at most 10 bytes in its shortest form, and the bytes it took.
fn read_var(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut n = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        n |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            // The shortest form only: one encoding per number.
            return (i == 0 || *b != 0).then_some((n, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: BlobAsk) -> BlobRequest {
        BlobRequest {
            topic: [1; 32],
            owner: [2; 32],
            hash: BlobHash([3; 32]),
            body,
        }
    }

    #[test]
    fn requests_and_responses_round_trip() {
        for body in [
            BlobAsk::Have,
            BlobAsk::Piece(0),
            BlobAsk::Piece(300_000),
            BlobAsk::Keep(0),
            BlobAsk::Keep(100 << 20),
        ] {
            let r = request(body);
            assert_eq!(BlobRequest::decode(&r.encode()), Ok(r));
        }
        for r in [
            BlobResponse::Have { complete: true },
            BlobResponse::Have { complete: false },
            BlobResponse::Piece(vec![9; 1000]),
            BlobResponse::Piece(vec![]),
            BlobResponse::Refused(Refusal::Removed),
        ] {
            assert_eq!(BlobResponse::decode(&r.encode()), Ok(r));
        }
    }

    #[test]
    fn every_truncation_and_extension_of_a_request_is_refused() {
        let bytes = request(BlobAsk::Piece(1000)).encode();
        for n in 0..bytes.len() {
            assert!(BlobRequest::decode(&bytes[..n]).is_err(), "cut at {n}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(BlobRequest::decode(&long).is_err());
        let mut padded = request(BlobAsk::Have).encode();
        padded[1] = 1;
        padded.extend_from_slice(&[0x81, 0x00]);
        assert_eq!(
            BlobRequest::decode(&padded),
            Err(WireError("bad piece number"))
        );
        let mut have = request(BlobAsk::Have).encode();
        have.push(1);
        assert!(BlobRequest::decode(&have).is_err());
        let mut big = request(BlobAsk::Have).encode();
        big[1] = 1;
        big.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(
            BlobRequest::decode(&big),
            Err(WireError("piece number too big"))
        );
    }

    #[test]
    fn malformed_responses_are_refused() {
        for bad in [
            &[][..],
            &[2, 0, 1][..],
            &[3, 0, 2][..],
            &[3, 0][..],
            &[3, 2, 0][..],
            &[3, 2, 9][..],
            &[3, 9][..],
        ] {
            assert!(BlobResponse::decode(bad).is_err(), "{bad:?}");
        }
    }
}
