//! The document content keys and sealing/opening payloads with them: XChaCha20-Poly1305 with
//! the document's topic, the payload's purpose and the key's epoch bound as associated data.
//! A [`DocKey`] is one 256-bit key; a [`Keyring`] holds a document's keys by epoch (a new epoch
//! begins when the owner removes a member), seals with the newest and opens with the one the
//! envelope names. Nonces come from the OS CSPRNG: they must never repeat, and no decision
//! depends on them.

use std::fmt;

use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// Envelope format version (first byte of every sealed payload; 1 had no epoch).
pub const ENVELOPE_VERSION: u8 = 2;
const EPOCH_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Bytes an envelope adds to its plaintext.
pub const ENVELOPE_OVERHEAD: usize = 1 + EPOCH_LEN + NONCE_LEN + TAG_LEN;
const AD_CONTEXT: &[u8] = b"peerdoc/envelope/2";
/// Epochs a keyring holds at most (one per member removal).
pub const MAX_EPOCHS: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("sealed payload is too short or has an unknown version")]
    Malformed,
    #[error(
        "payload does not open with this document's key (wrong key, wrong document or tampered)"
    )]
    Unauthentic,
    /// Sealed with a key this node does not have (yet): not the sender's fault.
    #[error("payload is sealed with the key of epoch {0}, which this node does not have")]
    UnknownEpoch(u32),
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
    /// A change kept by a holder (a blind replica) for the document's members.
    Held = 5,
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

    fn associated_data(topic: &[u8; 32], purpose: Purpose, epoch: u32) -> Vec<u8> {
        let mut ad = Vec::with_capacity(AD_CONTEXT.len() + 37);
        ad.extend_from_slice(AD_CONTEXT);
        ad.extend_from_slice(topic);
        ad.push(purpose as u8);
        ad.extend_from_slice(&epoch.to_be_bytes());
        ad
    }

    /// `version(1) | epoch(4, big-endian) | nonce(24) | ciphertext+tag`.
    pub fn seal(
        &self,
        epoch: u32,
        topic: &[u8; 32],
        purpose: Purpose,
        plaintext: &[u8],
    ) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ad = Self::associated_data(topic, purpose, epoch);
        // One buffer, encrypted in place: a keystroke's envelope costs one allocation.
        let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + plaintext.len());
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(&nonce);
        let header = out.len();
        out.extend_from_slice(plaintext);
        let tag = cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), &ad, &mut out[header..])
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        out.extend_from_slice(&tag);
        out
    }

    /// Opens an envelope of `epoch` (see [`envelope_epoch`]) with this key.
    fn open(
        &self,
        epoch: u32,
        topic: &[u8; 32],
        purpose: Purpose,
        sealed: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let (nonce, ciphertext) = sealed[1 + EPOCH_LEN..].split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let ad = Self::associated_data(topic, purpose, epoch);
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

/// The epoch an envelope names, if it is an envelope at all.
pub fn envelope_epoch(sealed: &[u8]) -> Result<u32, EnvelopeError> {
    if sealed.len() < ENVELOPE_OVERHEAD || sealed[0] != ENVELOPE_VERSION {
        return Err(EnvelopeError::Malformed);
    }
    let mut epoch = [0u8; EPOCH_LEN];
    epoch.copy_from_slice(&sealed[1..1 + EPOCH_LEN]);
    Ok(u32::from_be_bytes(epoch))
}

/// A document's content keys by epoch.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    /// Sorted by epoch; never empty. (A vector: most documents hold one key, and every node
    /// holds a keyring per document.)
    keys: Vec<(u32, DocKey)>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Keyring(epochs {:?})",
            self.keys.iter().map(|(epoch, _)| epoch).collect::<Vec<_>>()
        )
    }
}

impl Keyring {
    /// A keyring with one key.
    pub fn new(epoch: u32, key: DocKey) -> Keyring {
        Keyring {
            keys: vec![(epoch, key)],
        }
    }

    /// Adds an epoch's key; false if it was known or the ring is full.
    pub fn insert(&mut self, epoch: u32, key: DocKey) -> bool {
        if self.keys.len() >= MAX_EPOCHS {
            return false;
        }
        match self.keys.binary_search_by_key(&epoch, |(e, _)| *e) {
            Ok(_) => false,
            Err(at) => {
                self.keys.insert(at, (epoch, key));
                true
            }
        }
    }

    /// The newest epoch and its key: what new payloads are sealed with.
    pub fn current(&self) -> (u32, &DocKey) {
        self.keys
            .last()
            .map(|(epoch, key)| (*epoch, key))
            .expect("a keyring always holds a key")
    }

    /// The newest epoch and a copy of its key.
    pub fn current_owned(&self) -> (u32, DocKey) {
        let (epoch, key) = self.current();
        (epoch, key.clone())
    }

    pub fn get(&self, epoch: u32) -> Option<&DocKey> {
        self.keys
            .binary_search_by_key(&epoch, |(e, _)| *e)
            .ok()
            .map(|at| &self.keys[at].1)
    }

    /// Seals with the newest key.
    pub fn seal(&self, topic: &[u8; 32], purpose: Purpose, plaintext: &[u8]) -> Vec<u8> {
        let (epoch, key) = self.current();
        key.seal(epoch, topic, purpose, plaintext)
    }

    /// Seals with the key of `epoch` if held (answering in the epoch a request came in), else
    /// with the newest.
    pub fn seal_in(
        &self,
        epoch: u32,
        topic: &[u8; 32],
        purpose: Purpose,
        plaintext: &[u8],
    ) -> Vec<u8> {
        match self.get(epoch) {
            Some(key) => key.seal(epoch, topic, purpose, plaintext),
            None => self.seal(topic, purpose, plaintext),
        }
    }

    /// The keyring to answer a request sealed in `epoch` with: that epoch's key (the requester
    /// may not have a newer one), or the whole ring if `epoch` is not held.
    pub fn answering(&self, epoch: u32) -> Keyring {
        match self.get(epoch) {
            Some(key) => Keyring::new(epoch, key.clone()),
            None => self.clone(),
        }
    }

    /// A one-key ring for tests: epoch 0, every key byte `byte`.
    #[cfg(test)]
    pub fn test(byte: u8) -> Keyring {
        Keyring::new(0, DocKey([byte; 32]))
    }

    /// Opens with the key of the epoch the envelope names.
    pub fn open(
        &self,
        topic: &[u8; 32],
        purpose: Purpose,
        sealed: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let epoch = envelope_epoch(sealed)?;
        let key = self.get(epoch).ok_or(EnvelopeError::UnknownEpoch(epoch))?;
        key.open(epoch, topic, purpose, sealed)
    }
}

impl From<DocKey> for Keyring {
    fn from(key: DocKey) -> Keyring {
        Keyring::new(0, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::doc::DocId;
    use proptest::prelude::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let ring = Keyring::from(DocKey::random());
        let topic = DocId::random().topic();
        let sealed = ring.seal(&topic, Purpose::Gossip, b"hello");
        assert_eq!(
            ring.open(&topic, Purpose::Gossip, &sealed).unwrap(),
            b"hello"
        );
        assert!(
            !sealed.windows(5).any(|w| w == b"hello"),
            "ciphertext hides the text"
        );
        let other_topic = DocId::random().topic();
        assert_eq!(
            ring.open(&other_topic, Purpose::Gossip, &sealed),
            Err(EnvelopeError::Unauthentic)
        );
        assert_eq!(
            ring.open(&topic, Purpose::SyncResponse, &sealed),
            Err(EnvelopeError::Unauthentic)
        );
        assert_eq!(
            Keyring::from(DocKey::random()).open(&topic, Purpose::Gossip, &sealed),
            Err(EnvelopeError::Unauthentic)
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(ring.open(&topic, Purpose::Gossip, &tampered).is_err());
        assert_eq!(
            ring.open(&topic, Purpose::Gossip, &sealed[..10]),
            Err(EnvelopeError::Malformed)
        );
    }

    #[test]
    fn epochs_select_keys_and_are_bound() {
        let topic = [3; 32];
        let (old, new) = (DocKey::random(), DocKey::random());
        let mut ring = Keyring::new(0, old.clone());
        let before = ring.seal(&topic, Purpose::Gossip, b"before");
        assert!(ring.insert(1, new.clone()));
        assert!(
            !ring.insert(1, DocKey::random()),
            "an epoch's key never changes"
        );
        let after = ring.seal(&topic, Purpose::Gossip, b"after");
        assert_eq!(envelope_epoch(&after), Ok(1));
        assert_eq!(
            ring.open(&topic, Purpose::Gossip, &before).unwrap(),
            b"before"
        );
        assert_eq!(
            ring.open(&topic, Purpose::Gossip, &after).unwrap(),
            b"after"
        );
        // A member left behind at epoch 0 cannot open epoch 1, and is told so.
        let left_behind = Keyring::new(0, old);
        assert_eq!(
            left_behind.open(&topic, Purpose::Gossip, &after),
            Err(EnvelopeError::UnknownEpoch(1))
        );
        // Relabelling an envelope's epoch breaks it.
        let mut relabelled = before.clone();
        relabelled[4] = 1;
        assert_eq!(
            ring.open(&topic, Purpose::Gossip, &relabelled),
            Err(EnvelopeError::Unauthentic)
        );
        assert_eq!(
            envelope_epoch(&ring.seal_in(0, &topic, Purpose::Gossip, b"x")),
            Ok(0)
        );
    }

    proptest! {
        #[test]
        fn envelope_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let ring = Keyring::from(DocKey::random());
            let topic = [7u8; 32];
            let sealed = ring.seal(&topic, Purpose::SyncRequest, &data);
            prop_assert_eq!(sealed.len(), data.len() + ENVELOPE_OVERHEAD);
            prop_assert_eq!(ring.open(&topic, Purpose::SyncRequest, &sealed).unwrap(), data);
        }

        #[test]
        fn envelope_open_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert!(Keyring::from(DocKey::random()).open(&[0; 32], Purpose::Gossip, &raw).is_err());
        }
    }
}
