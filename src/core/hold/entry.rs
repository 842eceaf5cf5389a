//! [`Entry`]: one sealed change (or part of one) a member uploads to a holder, signed by the
//! uploader so that readers know which member vouched for it, and holders which member wrote.

use libp2p_identity::ed25519;

use super::MAX_ENTRY;
use crate::core::access::KeyBytes;
use crate::core::envelope::ENVELOPE_OVERHEAD;

/// Entry format version (first byte).
const ENTRY_VERSION: u8 = 1;
/// What an entry's signature covers, before the topic and the entry's fields.
const SIGNING_CONTEXT: &[u8] = b"peerdoc/held/1";
/// Fixed bytes around the envelope: version, kind, uploader, envelope length (at most 3
/// bytes of varuint for [`MAX_ENTRY`]), signature.
const FRAMING: usize = 1 + 1 + 32 + 3 + 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("malformed held entry: {0}")]
    Malformed(&'static str),
    #[error("held entry signature does not verify")]
    BadSignature,
}

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EntryKind {
    /// A change (a Yjs update, or a part of one).
    Update = 0,
    /// The whole document (or a part of it) replacing the entries before an offset.
    Snapshot = 1,
}

/// A sealed change as a holder keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    /// The member that uploaded it (its Ed25519 key, its libp2p identity).
    pub uploader: KeyBytes,
    /// The change, sealed for [`crate::core::envelope::Purpose::Held`].
    pub envelope: Vec<u8>,
    signature: [u8; 64],
}

impl Entry {
    /// Signs `envelope` for `topic` as `uploader`.
    pub fn sign(
        topic: &[u8; 32],
        kind: EntryKind,
        envelope: Vec<u8>,
        uploader: &ed25519::Keypair,
    ) -> Entry {
        let mut entry = Entry {
            kind,
            uploader: uploader.public().to_bytes(),
            envelope,
            signature: [0; 64],
        };
        let signature = uploader.sign(&entry.signed(topic));
        entry.signature.copy_from_slice(&signature);
        entry
    }

    fn signed(&self, topic: &[u8; 32]) -> Vec<u8> {
        let mut msg = Vec::with_capacity(SIGNING_CONTEXT.len() + 32 + 34 + self.envelope.len());
        msg.extend_from_slice(SIGNING_CONTEXT);
        msg.extend_from_slice(topic);
        msg.push(ENTRY_VERSION);
        msg.push(self.kind as u8);
        msg.extend_from_slice(&self.uploader);
        msg.extend_from_slice(&self.envelope);
        msg
    }

    /// `version · kind · uploader(32) · varbuf envelope · signature(64)`; the signature covers
    /// `"peerdoc/held/1" · topic · version · kind · uploader · envelope`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FRAMING + self.envelope.len());
        out.push(ENTRY_VERSION);
        out.push(self.kind as u8);
        out.extend_from_slice(&self.uploader);
        write_len(&mut out, self.envelope.len());
        out.extend_from_slice(&self.envelope);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes untrusted bytes and checks the signature for `topic`.
    pub fn decode(topic: &[u8; 32], bytes: &[u8]) -> Result<Entry, EntryError> {
        let malformed = EntryError::Malformed;
        if bytes.len() > MAX_ENTRY {
            return Err(malformed("too long"));
        }
        let [version, kind, rest @ ..] = bytes else {
            return Err(malformed("truncated"));
        };
        if *version != ENTRY_VERSION {
            return Err(malformed("unknown version"));
        }
        let kind = match kind {
            0 => EntryKind::Update,
            1 => EntryKind::Snapshot,
            _ => return Err(malformed("unknown kind")),
        };
        if rest.len() < 32 {
            return Err(malformed("truncated"));
        }
        let (uploader, rest) = rest.split_at(32);
        let (len, rest) = read_len(rest).ok_or(malformed("bad envelope length"))?;
        if len < ENVELOPE_OVERHEAD || rest.len() != len + 64 {
            return Err(malformed("envelope length does not match"));
        }
        let (envelope, signature) = rest.split_at(len);
        let entry = Entry {
            kind,
            uploader: uploader.try_into().map_err(|_| malformed("uploader"))?,
            envelope: envelope.to_vec(),
            signature: signature.try_into().map_err(|_| malformed("signature"))?,
        };
        let key = ed25519::PublicKey::try_from_bytes(&entry.uploader)
            .map_err(|_| EntryError::BadSignature)?;
        if !key.verify(&entry.signed(topic), &entry.signature) {
            return Err(EntryError::BadSignature);
        }
        Ok(entry)
    }
}

/// A varuint (LEB128) length.
fn write_len(out: &mut Vec<u8>, mut len: usize) {
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
}

/// Reads a varuint length of at most 3 bytes (entries are under 2 MiB): the shortest
/// encoding only.
fn read_len(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut len = 0usize;
    for (i, byte) in bytes.iter().take(3).enumerate() {
        len |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && *byte == 0 {
                return None;
            }
            return Some((len, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::doc::DocId;
    use crate::core::envelope::{Keyring, Purpose};

    #[test]
    fn entries_round_trip_and_detect_tampering() {
        let topic = DocId([4; 16]).topic();
        let sealed = Keyring::test(1).seal(&topic, Purpose::Held, b"an update");
        let uploader = ed25519::Keypair::generate();
        let entry = Entry::sign(&topic, EntryKind::Update, sealed, &uploader);
        let bytes = entry.encode();
        assert_eq!(Entry::decode(&topic, &bytes).unwrap(), entry);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(
                Entry::decode(&topic, &bad).is_err(),
                "flipping byte {i} went unnoticed"
            );
        }
        let other = DocId([5; 16]).topic();
        assert_eq!(
            Entry::decode(&other, &bytes),
            Err(EntryError::BadSignature),
            "an entry is bound to its document's topic"
        );
        assert!(Entry::decode(&topic, &bytes[..bytes.len() - 1]).is_err());
        assert!(Entry::decode(&topic, &[bytes, vec![0]].concat()).is_err());
    }

    #[test]
    fn lengths_round_trip_in_their_shortest_form_only() {
        for len in [0, 1, 127, 128, 300, MAX_ENTRY] {
            let mut out = Vec::new();
            write_len(&mut out, len);
            assert_eq!(read_len(&out), Some((len, &[][..])));
        }
        assert_eq!(read_len(&[0x80, 0x00]), None, "a padded length is refused");
        assert_eq!(read_len(&[0xff, 0xff, 0xff, 0x01]), None);
    }
}
