//! Display names. A node's person chooses a name; the node signs it with its identity key as a
//! [`NameRecord`], which travels in member exchanges beside the certificates. A name is not a
//! trust root: only the member can say what it is called, but anyone may call itself anything,
//! so [`labels`] puts the short peer id beside any name two members share. The newest record
//! (by its signed time) wins.

use libp2p_identity::{ed25519, PeerId};

use super::{peer_of, KeyBytes};

/// Longest display name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 64;
/// How far ahead of the receiver's clock a record's time may be (skewed clocks); a record
/// further ahead is refused, or it could never be replaced by its member's next name.
pub const MAX_FUTURE_MS: u64 = 24 * 3600 * 1000;
/// Record format version (first byte).
const NAME_VERSION: u8 = 1;
/// What a name signature covers, before the record's fields.
const SIGNING_CONTEXT: &[u8] = b"peerdoc/name/1";
/// Longest encoded record.
pub const MAX_RECORD_LEN: usize = 1 + 32 + 8 + 1 + MAX_NAME_BYTES + 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("a name cannot be empty")]
    Empty,
    #[error("a name is at most {MAX_NAME_BYTES} bytes of UTF-8 (this one has {0})")]
    TooLong(usize),
    #[error("a name cannot hold control or text-direction characters (found U+{0:04X})")]
    Forbidden(u32),
    #[error("malformed name record: {0}")]
    Malformed(&'static str),
    #[error("name record signature does not verify")]
    BadSignature,
    #[error("name record is dated more than a day ahead of this node's clock")]
    FromTheFuture,
    #[error("name record of a key that is no member of the document")]
    NotMember,
}

/// Checks a name a person typed and returns it trimmed: 1 to [`MAX_NAME_BYTES`] bytes, no
/// control characters and no bidirectional overrides (which could make a name read as
/// another).
pub fn check_name(name: &str) -> Result<&str, NameError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong(name.len()));
    }
    if let Some(c) = name.chars().find(|c| forbidden(*c)) {
        return Err(NameError::Forbidden(c as u32));
    }
    Ok(name)
}

fn forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A member's display name, signed by the member's identity key at `at_ms` (Unix time, ms).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NameRecord {
    pub member: KeyBytes,
    pub at_ms: u64,
    pub name: String,
    signature: [u8; 64],
}

impl NameRecord {
    /// Signs `name` (checked, trimmed) as `keypair`'s name from `at_ms` on.
    pub fn sign(name: &str, at_ms: u64, keypair: &ed25519::Keypair) -> Result<Self, NameError> {
        let name = check_name(name)?.to_string();
        let member = keypair.public().to_bytes();
        let signature = keypair
            .sign(&signed_bytes(&member, at_ms, &name))
            .try_into()
            .map_err(|_| NameError::BadSignature)?;
        Ok(NameRecord {
            member,
            at_ms,
            name,
            signature,
        })
    }

    /// `version · member(32) · at_ms(8, big-endian) · len(1) · name · signature(64)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_RECORD_LEN);
        out.push(NAME_VERSION);
        out.extend_from_slice(&self.member);
        out.extend_from_slice(&self.at_ms.to_be_bytes());
        out.push(self.name.len() as u8);
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes untrusted bytes and checks the name and the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, NameError> {
        let malformed = NameError::Malformed;
        let (&version, rest) = bytes.split_first().ok_or(malformed("empty"))?;
        if version != NAME_VERSION {
            return Err(malformed("unknown version"));
        }
        if rest.len() < 32 + 8 + 1 + 64 {
            return Err(malformed("truncated"));
        }
        let (member, rest) = rest.split_at(32);
        let (at, rest) = rest.split_at(8);
        let (&len, rest) = rest.split_first().ok_or(malformed("truncated"))?;
        if rest.len() != len as usize + 64 {
            return Err(malformed("length does not match"));
        }
        let (name, signature) = rest.split_at(len as usize);
        let name = std::str::from_utf8(name).map_err(|_| malformed("name is not UTF-8"))?;
        // One encoding per name: what a person could not have typed is refused.
        if check_name(name)? != name {
            return Err(malformed("name has surrounding spaces"));
        }
        let record = NameRecord {
            member: member.try_into().map_err(|_| malformed("member"))?,
            at_ms: u64::from_be_bytes(at.try_into().map_err(|_| malformed("time"))?),
            name: name.to_string(),
            signature: signature.try_into().map_err(|_| malformed("signature"))?,
        };
        if !record.verify() {
            return Err(NameError::BadSignature);
        }
        Ok(record)
    }

    fn verify(&self) -> bool {
        ed25519::PublicKey::try_from_bytes(&self.member).is_ok_and(|key| {
            key.verify(
                &signed_bytes(&self.member, self.at_ms, &self.name),
                &self.signature,
            )
        })
    }

    /// Whether this record replaces `other` (the same member's): newer, or as new and
    /// greater in bytes, so every node keeps the same one.
    pub fn replaces(&self, other: &NameRecord) -> bool {
        (self.at_ms, self.encode()) > (other.at_ms, other.encode())
    }

    pub fn peer(&self) -> Option<PeerId> {
        peer_of(&self.member)
    }
}

fn signed_bytes(member: &KeyBytes, at_ms: u64, name: &str) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGNING_CONTEXT.len() + MAX_RECORD_LEN);
    msg.extend_from_slice(SIGNING_CONTEXT);
    msg.push(NAME_VERSION);
    msg.extend_from_slice(member);
    msg.extend_from_slice(&at_ms.to_be_bytes());
    msg.push(name.len() as u8);
    msg.extend_from_slice(name.as_bytes());
    msg
}

/// A peer id shortened for people: `12D3KooWAbcd…wxyz` (every Ed25519 peer id starts
/// `12D3KooW`).
pub fn short_peer(peer: &str) -> String {
    match (peer.get(..12), peer.get(peer.len().saturating_sub(4)..)) {
        (Some(head), Some(tail)) if peer.len() > 20 => format!("{head}…{tail}"),
        _ => peer.to_string(),
    }
}

/// What to call each of a list of members: its name, with its short peer id beside it where
/// another member of the list has the same name (case and spaces aside); the short peer id
/// alone where it has none.
pub fn labels(members: &[(String, Option<String>)]) -> Vec<String> {
    let fold = |name: &str| {
        name.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    members
        .iter()
        .map(|(peer, name)| match name {
            None => short_peer(peer),
            Some(name) => {
                let shared = members.iter().any(|(other, theirs)| {
                    other != peer && theirs.as_deref().is_some_and(|t| fold(t) == fold(name))
                });
                if shared {
                    format!("{name} ({})", short_peer(peer))
                } else {
                    name.clone()
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_detect_tampering() {
        let kp = ed25519::Keypair::generate();
        let record = NameRecord::sign("  Ana María  ", 1_700_000_000_000, &kp).unwrap();
        assert_eq!(record.name, "Ana María");
        let bytes = record.encode();
        assert_eq!(NameRecord::decode(&bytes).unwrap(), record);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(
                NameRecord::decode(&bad).is_err(),
                "flipping byte {i} went unnoticed"
            );
        }
        assert!(NameRecord::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(NameRecord::decode(&[bytes.clone(), vec![0]].concat()).is_err());
        assert!(NameRecord::decode(&[]).is_err());
    }

    #[test]
    fn names_people_could_not_read_are_refused() {
        let kp = ed25519::Keypair::generate();
        assert_eq!(NameRecord::sign("   ", 1, &kp), Err(NameError::Empty));
        assert_eq!(
            NameRecord::sign(&"é".repeat(33), 1, &kp),
            Err(NameError::TooLong(66))
        );
        assert!(NameRecord::sign(&"é".repeat(32), 1, &kp).is_ok());
        assert_eq!(
            NameRecord::sign("Bob\u{202e}ecilA", 1, &kp),
            Err(NameError::Forbidden(0x202e))
        );
        assert_eq!(
            NameRecord::sign("a\nb", 1, &kp),
            Err(NameError::Forbidden(10))
        );
    }

    #[test]
    fn newer_records_replace_older_ones_the_same_way_everywhere() {
        let kp = ed25519::Keypair::generate();
        let old = NameRecord::sign("Ana", 1, &kp).unwrap();
        let new = NameRecord::sign("Ana B", 2, &kp).unwrap();
        assert!(new.replaces(&old) && !old.replaces(&new) && !new.replaces(&new));
        let tie = NameRecord::sign("Zed", 2, &kp).unwrap();
        assert!(tie.replaces(&new) != new.replaces(&tie));
    }

    #[test]
    fn shared_names_show_the_peer_id_beside_them() {
        let a = "12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string();
        let b = "12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB".to_string();
        let c = "12D3KooWCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC".to_string();
        let labels = labels(&[
            (a, Some("Ana".into())),
            (b, Some(" ana".into())),
            (c.clone(), Some("Bo".into())),
            (c, None),
        ]);
        assert_eq!(labels[0], "Ana (12D3KooWAAAA…AAAA)");
        assert_eq!(labels[1], " ana (12D3KooWBBBB…BBBB)");
        assert_eq!(labels[2], "Bo");
        assert_eq!(labels[3], "12D3KooWCCCC…CCCC");
    }
}
