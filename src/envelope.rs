//! Pure: the document content key, sealing/opening payloads with it (XChaCha20-Poly1305 with the
//! document's topic and the payload's purpose bound as associated data), and share tickets.
//!
//! Uses libp2p's `PeerId`/`Multiaddr` as plain value types only (no networking here).

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use libp2p::{Multiaddr, PeerId};
use rand::RngCore;
use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;

use crate::doc::DocId;

/// Envelope format version (first byte of every sealed payload).
pub const ENVELOPE_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Bytes an envelope adds to its plaintext.
pub const ENVELOPE_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
const AD_CONTEXT: &[u8] = b"peerdoc/envelope/1";

/// Text every ticket starts with; the digit is the ticket format version.
pub const TICKET_PREFIX: &str = "peerdoc1";
const TICKET_VERSION: u8 = 1;
const TICKET_CHECKSUM_LEN: usize = 4;
/// Limits that keep tickets short and decoding bounded.
pub const MAX_TICKET_ADDRS: usize = 8;
const MAX_NAME_LEN: usize = 200;
const MAX_ADDR_LEN: usize = 256;
const MAX_TICKET_LEN: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("sealed payload is too short or has an unknown version")]
    Malformed,
    #[error(
        "payload does not open with this document's key (wrong key, wrong document or tampered)"
    )]
    Unauthentic,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TicketError {
    #[error(
        "not a peerdoc ticket: it must start with \"{TICKET_PREFIX}\"; copy the whole ticket again"
    )]
    Prefix,
    #[error("ticket is damaged ({0}); copy the whole ticket again")]
    Damaged(&'static str),
    #[error("ticket was made by a newer peerdoc (format {0}); upgrade peerdoc to join it")]
    Version(u8),
}

/// What a payload is for; bound into the associated data so a sealed payload cannot be replayed
/// in another context (e.g. a sync response re-published as gossip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Purpose {
    Gossip = 1,
    SyncRequest = 2,
    SyncResponse = 3,
}

/// A document's 256-bit content key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct DocKey(pub [u8; 32]);

impl fmt::Debug for DocKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DocKey(..)")
    }
}

impl DocKey {
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        DocKey(key)
    }

    fn associated_data(topic: &[u8; 32], purpose: Purpose) -> Vec<u8> {
        let mut ad = Vec::with_capacity(AD_CONTEXT.len() + 33);
        ad.extend_from_slice(AD_CONTEXT);
        ad.extend_from_slice(topic);
        ad.push(purpose as u8);
        ad
    }

    /// `version(1) | nonce(24) | ciphertext+tag`.
    pub fn seal(&self, topic: &[u8; 32], purpose: Purpose, plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ad = Self::associated_data(topic, purpose);
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &ad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + plaintext.len());
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    pub fn open(
        &self,
        topic: &[u8; 32],
        purpose: Purpose,
        sealed: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        if sealed.len() < ENVELOPE_OVERHEAD || sealed[0] != ENVELOPE_VERSION {
            return Err(EnvelopeError::Malformed);
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let ad = Self::associated_data(topic, purpose);
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &ad,
                },
            )
            .map_err(|_| EnvelopeError::Unauthentic)
    }
}

/// Capability a ticket grants. Only read-write exists today; the byte leaves room for read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Capability {
    ReadWrite = 0,
}

/// Everything a peer needs to join a document: see PROTOCOL.md, "Tickets".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub doc: DocId,
    pub key: DocKey,
    pub capability: Capability,
    pub name: String,
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
}

impl Ticket {
    /// `peerdoc1` + base58(body | blake3(body)[..4]).
    pub fn encode(&self) -> String {
        let mut body: Vec<u8> = Vec::new();
        body.write_u8(TICKET_VERSION);
        body.write_u8(self.capability as u8);
        body.write_all(&self.doc.0);
        body.write_all(&self.key.0);
        body.write_string(truncate_utf8(&self.name, MAX_NAME_LEN));
        body.write_buf(self.peer.to_bytes());
        let addrs: Vec<&Multiaddr> = self
            .addrs
            .iter()
            .filter(|a| a.as_ref().len() <= MAX_ADDR_LEN)
            .take(MAX_TICKET_ADDRS)
            .collect();
        body.write_var(addrs.len() as u32);
        for addr in addrs {
            body.write_buf(addr.to_vec());
        }
        let checksum = blake3::hash(&body);
        body.write_all(&checksum.as_bytes()[..TICKET_CHECKSUM_LEN]);
        format!("{TICKET_PREFIX}{}", bs58::encode(body).into_string())
    }

    pub fn decode(text: &str) -> Result<Ticket, TicketError> {
        let text = text.trim();
        let encoded = text
            .strip_prefix(TICKET_PREFIX)
            .ok_or(TicketError::Prefix)?;
        if encoded.len() > MAX_TICKET_LEN {
            return Err(TicketError::Damaged("too long"));
        }
        let bytes = bs58::decode(encoded)
            .into_vec()
            .map_err(|_| TicketError::Damaged("invalid characters"))?;
        if bytes.len() < 1 + TICKET_CHECKSUM_LEN {
            return Err(TicketError::Damaged("too short"));
        }
        let (body, checksum) = bytes.split_at(bytes.len() - TICKET_CHECKSUM_LEN);
        if blake3::hash(body).as_bytes()[..TICKET_CHECKSUM_LEN] != *checksum {
            return Err(TicketError::Damaged("checksum mismatch"));
        }
        let mut r = Cursor::new(body);
        let truncated = |_| TicketError::Damaged("truncated");
        let version = r.read_u8().map_err(truncated)?;
        if version != TICKET_VERSION {
            return Err(TicketError::Version(version));
        }
        let capability = match r.read_u8().map_err(truncated)? {
            0 => Capability::ReadWrite,
            _ => return Err(TicketError::Damaged("unknown capability")),
        };
        let doc = DocId(
            r.read_exact(16)
                .map_err(truncated)?
                .try_into()
                .expect("16 bytes"),
        );
        let key = DocKey(
            r.read_exact(32)
                .map_err(truncated)?
                .try_into()
                .expect("32 bytes"),
        );
        let name = r
            .read_string()
            .map_err(|_| TicketError::Damaged("bad name"))?;
        if name.len() > MAX_NAME_LEN {
            return Err(TicketError::Damaged("name too long"));
        }
        let name = name.to_string();
        let peer = PeerId::from_bytes(r.read_buf().map_err(truncated)?)
            .map_err(|_| TicketError::Damaged("bad peer id"))?;
        let count: u32 = r.read_var().map_err(truncated)?;
        if count as usize > MAX_TICKET_ADDRS {
            return Err(TicketError::Damaged("too many addresses"));
        }
        let mut addrs = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let raw = r.read_buf().map_err(truncated)?;
            addrs.push(
                Multiaddr::try_from(raw.to_vec())
                    .map_err(|_| TicketError::Damaged("bad address"))?,
            );
        }
        if r.has_content() {
            return Err(TicketError::Damaged("trailing bytes"));
        }
        Ok(Ticket {
            doc,
            key,
            capability,
            name,
            peer,
            addrs,
        })
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ticket(name: &str, ports: &[u16]) -> Ticket {
        Ticket {
            doc: DocId::random(),
            key: DocKey::random(),
            capability: Capability::ReadWrite,
            name: name.to_string(),
            peer: PeerId::random(),
            addrs: ports
                .iter()
                .map(|p| format!("/ip4/127.0.0.1/tcp/{p}").parse().unwrap())
                .collect(),
        }
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let key = DocKey::random();
        let topic = DocId::random().topic();
        let sealed = key.seal(&topic, Purpose::Gossip, b"hello");
        assert_eq!(
            key.open(&topic, Purpose::Gossip, &sealed).unwrap(),
            b"hello"
        );
        assert!(
            !sealed.windows(5).any(|w| w == b"hello"),
            "ciphertext hides the text"
        );
        let other_topic = DocId::random().topic();
        assert_eq!(
            key.open(&other_topic, Purpose::Gossip, &sealed),
            Err(EnvelopeError::Unauthentic)
        );
        assert_eq!(
            key.open(&topic, Purpose::SyncResponse, &sealed),
            Err(EnvelopeError::Unauthentic)
        );
        assert_eq!(
            DocKey::random().open(&topic, Purpose::Gossip, &sealed),
            Err(EnvelopeError::Unauthentic)
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open(&topic, Purpose::Gossip, &tampered).is_err());
        assert_eq!(
            key.open(&topic, Purpose::Gossip, &sealed[..10]),
            Err(EnvelopeError::Malformed)
        );
    }

    #[test]
    fn ticket_round_trips_and_detects_damage() {
        let t = ticket("notes", &[4001, 4002]);
        let s = t.encode();
        assert!(s.starts_with("peerdoc1"));
        assert_eq!(Ticket::decode(&s).unwrap(), t);
        assert_eq!(Ticket::decode(&format!("  {s}\n")).unwrap(), t);
        assert_eq!(Ticket::decode("hello"), Err(TicketError::Prefix));
        // Flip one character in the middle: checksum or alphabet catches it.
        let mut chars: Vec<char> = s.chars().collect();
        let mid = chars.len() / 2;
        chars[mid] = if chars[mid] == 'a' { 'b' } else { 'a' };
        let damaged: String = chars.into_iter().collect();
        assert!(matches!(
            Ticket::decode(&damaged),
            Err(TicketError::Damaged(_))
        ));
        // Truncation.
        assert!(matches!(
            Ticket::decode(&s[..s.len() - 5]),
            Err(TicketError::Damaged(_))
        ));
    }

    #[test]
    fn ticket_caps_addresses() {
        let t = ticket("many", &(1..20).collect::<Vec<_>>());
        let back = Ticket::decode(&t.encode()).unwrap();
        assert_eq!(back.addrs.len(), MAX_TICKET_ADDRS);
    }

    proptest! {
        #[test]
        fn ticket_round_trip(name in "\\PC{0,60}", ports in proptest::collection::vec(any::<u16>(), 0..8)) {
            let t = ticket(&name, &ports);
            prop_assert_eq!(Ticket::decode(&t.encode()).unwrap(), t);
        }

        #[test]
        fn ticket_decode_never_panics(s in "\\PC{0,300}", raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Ticket::decode(&s);
            let _ = Ticket::decode(&format!("{TICKET_PREFIX}{s}"));
            let _ = Ticket::decode(&format!("{TICKET_PREFIX}{}", bs58::encode(&raw).into_string()));
            // A body with a valid checksum but random content must not panic either.
            let mut body = raw.clone();
            body.extend_from_slice(&blake3::hash(&raw).as_bytes()[..TICKET_CHECKSUM_LEN]);
            let _ = Ticket::decode(&format!("{TICKET_PREFIX}{}", bs58::encode(&body).into_string()));
        }

        #[test]
        fn envelope_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let key = DocKey::random();
            let topic = [7u8; 32];
            let sealed = key.seal(&topic, Purpose::SyncRequest, &data);
            prop_assert_eq!(sealed.len(), data.len() + ENVELOPE_OVERHEAD);
            prop_assert_eq!(key.open(&topic, Purpose::SyncRequest, &sealed).unwrap(), data);
        }

        #[test]
        fn envelope_open_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert!(DocKey::random().open(&[0; 32], Purpose::Gossip, &raw).is_err());
        }
    }
}
