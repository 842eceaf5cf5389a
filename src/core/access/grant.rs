//! [`KeyGrant`]: a new epoch's content key sealed to one member's identity key, signed by the
//! owner.

use libp2p_identity::ed25519;

use super::{AccessError, KeyBytes};
use crate::core::doc::DocId;
use crate::core::envelope::DocKey;

/// Key grant format version (first byte).
const GRANT_VERSION: u8 = 1;
const GRANT_CONTEXT: &[u8] = b"peerdoc/grant/1";
const GRANT_KDF_CONTEXT: &str = "peerdoc 2026-11 key grant v1";
/// Encoded size of a key grant.
pub const GRANT_LEN: usize = 1 + 16 + 4 + 32 + 32 + 48 + 64;

/// A new epoch's content key, sealed to one member's identity key and signed by the owner:
/// X25519 between a fresh ephemeral key and the member's Ed25519 key (as X25519), BLAKE3 to
/// derive a one-time key, XChaCha20-Poly1305 around the content key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    pub doc: DocId,
    pub epoch: u32,
    pub member: KeyBytes,
    pub ephemeral: [u8; 32],
    pub sealed: [u8; 48],
    pub signature: [u8; 64],
}

impl KeyGrant {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut msg = Vec::with_capacity(GRANT_CONTEXT.len() + GRANT_LEN);
        msg.extend_from_slice(GRANT_CONTEXT);
        msg.extend_from_slice(&self.encode()[..GRANT_LEN - 64]);
        msg
    }

    fn wrapping_key(
        shared: &[u8; 32],
        ephemeral: &[u8; 32],
        member_x: &[u8; 32],
        doc: &DocId,
        epoch: u32,
    ) -> [u8; 32] {
        let mut material = Vec::with_capacity(32 * 3 + 16 + 4);
        material.extend_from_slice(shared);
        material.extend_from_slice(ephemeral);
        material.extend_from_slice(member_x);
        material.extend_from_slice(&doc.0);
        material.extend_from_slice(&epoch.to_be_bytes());
        blake3::derive_key(GRANT_KDF_CONTEXT, &material)
    }

    /// Seals `key` of `epoch` to `member`, signed by `owner`. `ephemeral_secret` must be fresh
    /// random bytes (an argument: the core takes randomness as input).
    pub fn issue(
        doc: DocId,
        epoch: u32,
        key: &DocKey,
        member: KeyBytes,
        owner: &ed25519::Keypair,
        ephemeral_secret: [u8; 32],
    ) -> Result<KeyGrant, AccessError> {
        use chacha20poly1305::aead::{Aead, KeyInit};
        let member_x = ed25519_dalek::VerifyingKey::from_bytes(&member)
            .map_err(|_| AccessError::Malformed("member key is not a valid Ed25519 key"))?
            .to_montgomery()
            .to_bytes();
        let ephemeral =
            x25519_dalek::x25519(ephemeral_secret, x25519_dalek::X25519_BASEPOINT_BYTES);
        let shared = x25519_dalek::x25519(ephemeral_secret, member_x);
        if shared == [0; 32] {
            return Err(AccessError::Malformed("member key is of low order"));
        }
        let wrap = Self::wrapping_key(&shared, &ephemeral, &member_x, &doc, epoch);
        let cipher = chacha20poly1305::XChaCha20Poly1305::new((&wrap).into());
        // The wrapping key is used once: a fixed nonce is safe.
        let sealed = cipher
            .encrypt(&chacha20poly1305::XNonce::default(), &key.0[..])
            .map_err(|_| AccessError::Malformed("sealing failed"))?;
        let mut grant = KeyGrant {
            doc,
            epoch,
            member,
            ephemeral,
            sealed: sealed
                .try_into()
                .map_err(|_| AccessError::Malformed("sealed length"))?,
            signature: [0; 64],
        };
        let signature = owner.sign(&grant.signed_bytes());
        grant.signature = signature
            .try_into()
            .map_err(|_| AccessError::Malformed("signature length"))?;
        Ok(grant)
    }

    pub fn verify(&self, owner: &KeyBytes) -> bool {
        ed25519::PublicKey::try_from_bytes(owner)
            .is_ok_and(|key| key.verify(&self.signed_bytes(), &self.signature))
    }

    /// Opens the grant with the member's identity key.
    pub fn open(&self, me: &ed25519::Keypair) -> Option<DocKey> {
        use chacha20poly1305::aead::{Aead, KeyInit};
        let seed: [u8; 32] = me.secret().as_ref().try_into().ok()?;
        let scalar = ed25519_dalek::SigningKey::from_bytes(&seed).to_scalar_bytes();
        let member_x = ed25519_dalek::VerifyingKey::from_bytes(&self.member)
            .ok()?
            .to_montgomery()
            .to_bytes();
        let shared = x25519_dalek::x25519(scalar, self.ephemeral);
        let wrap = Self::wrapping_key(&shared, &self.ephemeral, &member_x, &self.doc, self.epoch);
        let cipher = chacha20poly1305::XChaCha20Poly1305::new((&wrap).into());
        let key = cipher
            .decrypt(&chacha20poly1305::XNonce::default(), &self.sealed[..])
            .ok()?;
        Some(DocKey(key.try_into().ok()?))
    }

    /// `version · doc(16) · epoch(4, big-endian) · member(32) · ephemeral(32) · sealed(48) ·
    /// signature(64)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GRANT_LEN);
        out.push(GRANT_VERSION);
        out.extend_from_slice(&self.doc.0);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.member);
        out.extend_from_slice(&self.ephemeral);
        out.extend_from_slice(&self.sealed);
        out.extend_from_slice(&self.signature);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<KeyGrant, AccessError> {
        if bytes.len() != GRANT_LEN {
            return Err(AccessError::Malformed("wrong length"));
        }
        if bytes[0] != GRANT_VERSION {
            return Err(AccessError::Malformed("unknown version"));
        }
        let field = |from: usize, to: usize| bytes[from..to].to_vec();
        let bad = |_| AccessError::Malformed("grant field");
        Ok(KeyGrant {
            doc: DocId(field(1, 17).try_into().map_err(bad)?),
            epoch: u32::from_be_bytes(field(17, 21).try_into().map_err(bad)?),
            member: field(21, 53).try_into().map_err(bad)?,
            ephemeral: field(53, 85).try_into().map_err(bad)?,
            sealed: field(85, 133).try_into().map_err(bad)?,
            signature: field(133, GRANT_LEN).try_into().map_err(bad)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Membership;
    use super::*;

    #[test]
    fn a_key_grant_opens_only_for_its_member_and_only_if_the_owner_signed_it() {
        let doc = DocId::random();
        let owner_kp = ed25519::Keypair::generate();
        let owner = owner_kp.public().to_bytes();
        let member = ed25519::Keypair::generate();
        let key = DocKey::random();
        let grant = KeyGrant::issue(
            doc,
            1,
            &key,
            member.public().to_bytes(),
            &owner_kp,
            [42; 32],
        )
        .unwrap();
        assert!(grant.verify(&owner));
        assert_eq!(grant.open(&member), Some(key.clone()));
        assert_eq!(
            grant.open(&ed25519::Keypair::generate()),
            None,
            "someone else"
        );
        let bytes = grant.encode();
        assert_eq!(bytes.len(), GRANT_LEN);
        assert_eq!(KeyGrant::decode(&bytes).unwrap(), grant);
        assert!(
            !bytes.windows(32).any(|w| w == key.0),
            "the key is not in the clear"
        );

        let mut m = Membership::new(doc, owner);
        assert!(m.add_grant(grant.clone()).unwrap());
        assert!(!m.add_grant(grant.clone()).unwrap());
        assert_eq!(m.grants_for(&member.public().to_bytes()).len(), 1);
        // A member cannot hand out keys of its own choosing.
        let forged = KeyGrant::issue(
            doc,
            2,
            &DocKey::random(),
            member.public().to_bytes(),
            &member,
            [7; 32],
        )
        .unwrap();
        assert_eq!(m.add_grant(forged), Err(AccessError::BadSignature));
        let mut tampered = grant;
        tampered.epoch = 5;
        assert_eq!(m.add_grant(tampered), Err(AccessError::BadSignature));
    }
}
