//! Holders: nodes that keep a document's sealed data for its members without its key (blind
//! replicas). An owner or a writer asks a node to hold the document, or to let it go, with a
//! [`HoldRecord`] it signs; records travel in member exchanges like display names and the
//! newest one per holder (by its signed time) says whether that node holds the document.

use libp2p_identity::{ed25519, PeerId};

use super::{peer_of, KeyBytes};
use crate::core::doc::DocId;

/// Record format version (first byte).
const HOLD_VERSION: u8 = 1;
/// What a hold record's signature covers, before the record's fields.
const SIGNING_CONTEXT: &[u8] = b"peerdoc/hold/1";
/// Encoded size of a record.
pub const HOLD_LEN: usize = 1 + 16 + 32 + 8 + 1 + 32 + 64;
/// Most holders one document keeps at once (records asking for more are refused).
pub const MAX_HOLDERS: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HoldError {
    #[error("malformed hold record: {0}")]
    Malformed(&'static str),
    #[error("hold record signature does not verify")]
    BadSignature,
    #[error("hold record of another document")]
    OtherDocument,
    #[error("hold record signed by a key that is neither the owner nor a writer")]
    NotWriter,
    #[error("hold record is dated more than a day ahead of this node's clock")]
    FromTheFuture,
    #[error("the document has {MAX_HOLDERS} holders already; release one first")]
    TooMany,
}

/// An owner's or writer's word that `holder` keeps the document's sealed data (`holds`), or
/// not any more, from `at_ms` (Unix time, ms) on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HoldRecord {
    pub doc: DocId,
    pub holder: KeyBytes,
    pub at_ms: u64,
    pub holds: bool,
    pub issuer: KeyBytes,
    signature: [u8; 64],
}

impl HoldRecord {
    /// Signs, as `issuer`, that `holder` holds `doc` (or no longer does) from `at_ms` on.
    pub fn sign(
        doc: DocId,
        holder: KeyBytes,
        at_ms: u64,
        holds: bool,
        issuer: &ed25519::Keypair,
    ) -> HoldRecord {
        let mut record = HoldRecord {
            doc,
            holder,
            at_ms,
            holds,
            issuer: issuer.public().to_bytes(),
            signature: [0; 64],
        };
        let bytes = record.encode();
        let signature = issuer.sign(&signed(&bytes[..HOLD_LEN - 64]));
        record.signature.copy_from_slice(&signature);
        record
    }

    /// `version · doc(16) · holder(32) · at_ms(8, big-endian) · holds(1) · issuer(32) ·
    /// signature(64)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HOLD_LEN);
        out.push(HOLD_VERSION);
        out.extend_from_slice(&self.doc.0);
        out.extend_from_slice(&self.holder);
        out.extend_from_slice(&self.at_ms.to_be_bytes());
        out.push(u8::from(self.holds));
        out.extend_from_slice(&self.issuer);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes untrusted bytes and checks the signature.
    pub fn decode(bytes: &[u8]) -> Result<HoldRecord, HoldError> {
        let malformed = HoldError::Malformed;
        if bytes.len() != HOLD_LEN {
            return Err(malformed("wrong length"));
        }
        if bytes[0] != HOLD_VERSION {
            return Err(malformed("unknown version"));
        }
        let field = |from: usize, len: usize| &bytes[from..from + len];
        let holds = match bytes[57] {
            0 => false,
            1 => true,
            _ => return Err(malformed("holds is neither 0 nor 1")),
        };
        let record = HoldRecord {
            doc: DocId(field(1, 16).try_into().map_err(|_| malformed("doc"))?),
            holder: field(17, 32).try_into().map_err(|_| malformed("holder"))?,
            at_ms: u64::from_be_bytes(field(49, 8).try_into().map_err(|_| malformed("time"))?),
            holds,
            issuer: field(58, 32).try_into().map_err(|_| malformed("issuer"))?,
            signature: field(90, 64)
                .try_into()
                .map_err(|_| malformed("signature"))?,
        };
        let key = ed25519::PublicKey::try_from_bytes(&record.issuer)
            .map_err(|_| HoldError::BadSignature)?;
        if !key.verify(&signed(&bytes[..HOLD_LEN - 64]), &record.signature) {
            return Err(HoldError::BadSignature);
        }
        Ok(record)
    }

    /// Whether this record replaces `other` (about the same holder): newer, or as new and
    /// greater in bytes, so every node keeps the same one.
    pub fn replaces(&self, other: &HoldRecord) -> bool {
        (self.at_ms, self.encode()) > (other.at_ms, other.encode())
    }

    pub fn holder_peer(&self) -> Option<PeerId> {
        peer_of(&self.holder)
    }
}

fn signed(fields: &[u8]) -> Vec<u8> {
    [SIGNING_CONTEXT, fields].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_detect_tampering() {
        let issuer = ed25519::Keypair::generate();
        let record = HoldRecord::sign(DocId([3; 16]), [9; 32], 1_700_000_000_000, true, &issuer);
        let bytes = record.encode();
        assert_eq!(bytes.len(), HOLD_LEN);
        assert_eq!(HoldRecord::decode(&bytes).unwrap(), record);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(
                HoldRecord::decode(&bad).is_err(),
                "flipping byte {i} went unnoticed"
            );
        }
        assert!(HoldRecord::decode(&bytes[..HOLD_LEN - 1]).is_err());
        assert!(HoldRecord::decode(&[bytes, vec![0]].concat()).is_err());
    }

    #[test]
    fn the_newest_record_wins_the_same_way_everywhere() {
        let issuer = ed25519::Keypair::generate();
        let doc = DocId([1; 16]);
        let hold = HoldRecord::sign(doc, [2; 32], 5, true, &issuer);
        let release = HoldRecord::sign(doc, [2; 32], 6, false, &issuer);
        assert!(release.replaces(&hold) && !hold.replaces(&release));
        let tie = HoldRecord::sign(doc, [2; 32], 6, true, &issuer);
        assert!(tie.replaces(&release) != release.replaces(&tie));
    }
}
