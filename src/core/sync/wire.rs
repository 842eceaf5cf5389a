//! The `/peerdoc/sync/1` codecs: [`SyncRequest`] (topic in clear, sealed [`RequestBody`]),
//! [`SyncResponse`] and the sealed [`Chunk`] it carries. Every decoder bounds its input and
//! rejects trailing bytes.

use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;

use super::members::{self, Roster};
use super::{malformed, SyncError, WIRE_VERSION};
use crate::core::doc::decode_sv;
use crate::core::envelope::ENVELOPE_OVERHEAD;

/// A `/peerdoc/sync/1` request: the document's topic in clear (so the responder can find the
/// key) and a sealed [`RequestBody`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub topic: [u8; 32],
    pub sealed: Vec<u8>,
}

impl SyncRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(33 + self.sealed.len());
        out.push(WIRE_VERSION);
        out.extend_from_slice(&self.topic);
        out.extend_from_slice(&self.sealed);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, SyncError> {
        let (&version, rest) = bytes
            .split_first()
            .ok_or(SyncError::Malformed("empty request"))?;
        if version != WIRE_VERSION {
            return Err(SyncError::Version(version));
        }
        if rest.len() < 32 + ENVELOPE_OVERHEAD {
            return Err(SyncError::Malformed("request too short"));
        }
        let (topic, sealed) = rest.split_at(32);
        Ok(SyncRequest {
            topic: topic.try_into().expect("32 bytes"),
            sealed: sealed.to_vec(),
        })
    }
}

/// Plaintext of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestBody {
    /// Start a pull: here is my state vector, send what I lack (y-protocols SyncStep1
    /// semantics); `digest` ([`crate::core::doc::Document::digest`]) lets a responder in the
    /// same state answer "nothing" without loading the document.
    Start { sv: Vec<u8>, digest: [u8; 32] },
    /// Next chunk of a transfer the responder started.
    Continue { transfer: u64, offset: u64 },
    /// Member exchange: the members I know (me first) and the certificates I hold; answer with
    /// yours.
    Members(Roster),
}

impl RequestBody {
    pub fn encode(&self) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        match self {
            RequestBody::Start { sv, digest } => {
                out.write_u8(0);
                out.write_buf(sv);
                out.write_all(digest);
            }
            RequestBody::Continue { transfer, offset } => {
                out.write_u8(1);
                out.write_var(*transfer);
                out.write_var(*offset);
            }
            RequestBody::Members(roster) => {
                out.write_u8(2);
                members::encode(roster, &mut out);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, SyncError> {
        let mut r = Cursor::new(bytes);
        let body = match r.read_u8().map_err(malformed("empty request body"))? {
            0 => {
                let sv = r
                    .read_buf()
                    .map_err(malformed("truncated state vector"))?
                    .to_vec();
                decode_sv(&sv).map_err(|_| SyncError::Malformed("bad state vector"))?;
                let digest = r
                    .read_exact(32)
                    .map_err(malformed("truncated digest"))?
                    .try_into()
                    .map_err(|_| SyncError::Malformed("truncated digest"))?;
                RequestBody::Start { sv, digest }
            }
            1 => RequestBody::Continue {
                transfer: r.read_var().map_err(malformed("truncated transfer id"))?,
                offset: r.read_var().map_err(malformed("truncated offset"))?,
            },
            2 => RequestBody::Members(members::decode(&mut r)?),
            _ => return Err(SyncError::Malformed("unknown request kind")),
        };
        if r.has_content() {
            return Err(SyncError::Malformed("trailing bytes after request body"));
        }
        Ok(body)
    }
}

// ---------------------------------------------------------------------------------------------
// Responses

/// A `/peerdoc/sync/1` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncResponse {
    /// A sealed [`Chunk`].
    Chunk(Vec<u8>),
    /// The responder holds no document with that topic.
    UnknownDoc,
    /// The request did not open with the responder's key for that topic, or was malformed.
    BadRequest,
    /// The transfer named by a `Continue` is gone (expired or evicted): start again.
    TransferExpired,
    /// A sealed member list (answering `Members`).
    Members(Vec<u8>),
    /// A sealed roster of only the membership records that concern the requester, which is
    /// not served (not a member, removed, or asking for content under an old key epoch).
    Records(Vec<u8>),
}

impl SyncResponse {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![WIRE_VERSION];
        match self {
            SyncResponse::Chunk(sealed) => {
                out.push(0);
                out.extend_from_slice(sealed);
            }
            SyncResponse::UnknownDoc => out.push(1),
            SyncResponse::BadRequest => out.push(2),
            SyncResponse::TransferExpired => out.push(3),
            SyncResponse::Members(sealed) => {
                out.push(4);
                out.extend_from_slice(sealed);
            }
            SyncResponse::Records(sealed) => {
                out.push(5);
                out.extend_from_slice(sealed);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, SyncError> {
        match bytes {
            [] | [_] => Err(SyncError::Malformed("response too short")),
            [v, ..] if *v != WIRE_VERSION => Err(SyncError::Version(*v)),
            [_, 0, sealed @ ..] => Ok(SyncResponse::Chunk(sealed.to_vec())),
            [_, 1] => Ok(SyncResponse::UnknownDoc),
            [_, 2] => Ok(SyncResponse::BadRequest),
            [_, 3] => Ok(SyncResponse::TransferExpired),
            [_, 4, sealed @ ..] => Ok(SyncResponse::Members(sealed.to_vec())),
            [_, 5, sealed @ ..] => Ok(SyncResponse::Records(sealed.to_vec())),
            _ => Err(SyncError::Malformed("unknown response status")),
        }
    }
}

/// Plaintext of a `Chunk` response: bytes `offset..offset+data.len()` of a diff of `total` bytes
/// (a yrs v1 update), plus the responder's state vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub sv: Vec<u8>,
    /// 0 when the whole diff is in this one chunk.
    pub transfer: u64,
    pub total: u64,
    pub offset: u64,
    pub data: Vec<u8>,
}

impl Chunk {
    pub fn encode(&self) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::with_capacity(self.data.len() + self.sv.len() + 32);
        out.write_buf(&self.sv);
        out.write_var(self.transfer);
        out.write_var(self.total);
        out.write_var(self.offset);
        out.write_buf(&self.data);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, SyncError> {
        let mut r = Cursor::new(bytes);
        let sv = r.read_buf().map_err(malformed("truncated state vector"))?;
        decode_sv(sv).map_err(|_| SyncError::Malformed("bad state vector"))?;
        let chunk = Chunk {
            sv: sv.to_vec(),
            transfer: r.read_var().map_err(malformed("truncated transfer id"))?,
            total: r.read_var().map_err(malformed("truncated total"))?,
            offset: r.read_var().map_err(malformed("truncated offset"))?,
            data: r.read_buf().map_err(malformed("truncated data"))?.to_vec(),
        };
        if r.has_content() {
            return Err(SyncError::Malformed("trailing bytes after chunk"));
        }
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::core::doc::Document;
    use crate::core::envelope::Keyring;
    use crate::core::sync::Pull;

    proptest! {
        #[test]
        fn request_and_response_round_trip(
            topic in any::<[u8; 32]>(),
            sealed in proptest::collection::vec(any::<u8>(), ENVELOPE_OVERHEAD..300),
            transfer in any::<u64>(),
            offset in any::<u64>(),
            total in any::<u64>(),
            data in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let req = SyncRequest { topic, sealed: sealed.clone() };
            prop_assert_eq!(SyncRequest::decode(&req.encode()).unwrap(), req);
            let body = RequestBody::Continue { transfer, offset };
            prop_assert_eq!(RequestBody::decode(&body.encode()).unwrap(), body);
            let start = RequestBody::Start { sv: Document::new().state_vector(), digest: [7; 32] };
            prop_assert_eq!(RequestBody::decode(&start.encode()).unwrap(), start);
            let members = RequestBody::Members(Roster {
                members: vec![super::super::members::Member {
                    peer: libp2p_identity::PeerId::random(),
                    addrs: vec![format!("/ip4/192.0.2.7/udp/{}/quic-v1", offset as u16).parse().unwrap()],
                }],
                pages: 1,
                ..Roster::default()
            });
            prop_assert_eq!(RequestBody::decode(&members.encode()).unwrap(), members);
            for resp in [
                SyncResponse::Records(sealed.clone()),
                SyncResponse::Members(sealed.clone()),
                SyncResponse::Chunk(sealed),
                SyncResponse::UnknownDoc,
                SyncResponse::BadRequest,
                SyncResponse::TransferExpired,
            ] {
                prop_assert_eq!(SyncResponse::decode(&resp.encode()).unwrap(), resp);
            }
            let chunk = Chunk { sv: Document::new().state_vector(), transfer, total, offset, data };
            prop_assert_eq!(Chunk::decode(&chunk.encode()).unwrap(), chunk);
        }

        #[test]
        fn decoders_never_panic_on_random_bytes(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = SyncRequest::decode(&raw);
            let _ = RequestBody::decode(&raw);
            let _ = SyncResponse::decode(&raw);
            let _ = Chunk::decode(&raw);
            let (mut pull, _) = Pull::start(Keyring::test(1), [2; 32], Document::new().summary());
            if let Ok(chunk) = Chunk::decode(&raw) {
                let _ = pull.on_chunk(chunk);
            }
            let _ = pull.on_response(&raw);
        }
    }
}
