//! The document content key ([`DocKey`]) and sealing/opening payloads with it:
//! XChaCha20-Poly1305 with the document's topic and the payload's purpose bound as associated
//! data. Nonces come from the OS CSPRNG: they must never repeat, and no decision depends on them.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// Envelope format version (first byte of every sealed payload).
pub const ENVELOPE_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Bytes an envelope adds to its plaintext.
pub const ENVELOPE_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
const AD_CONTEXT: &[u8] = b"peerdoc/envelope/1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("sealed payload is too short or has an unknown version")]
    Malformed,
    #[error(
        "payload does not open with this document's key (wrong key, wrong document or tampered)"
    )]
    Unauthentic,
}

/// What a payload is for; bound into the associated data so a sealed payload cannot be replayed
/// in another context (e.g. a sync response re-published as gossip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Purpose {
    Gossip = 1,
    SyncRequest = 2,
    SyncResponse = 3,
    /// A member list answering a member exchange.
    Members = 4,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::doc::DocId;
    use proptest::prelude::*;

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

    proptest! {
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
