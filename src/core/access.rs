//! Who may do what with a document. Roles: the **owner** (the creator), **writers** and
//! **readers**. A role is proven by [`Cert`]ificates, each signed with an Ed25519 key (a node's
//! libp2p identity key, or an invitation key):
//!
//! - an *invitation* certificate makes a fresh key an invitation to be a writer or a reader; the
//!   owner or a writer issues it when sharing, and the ticket carries the invitation's secret;
//! - a *member* certificate makes a node a writer or a reader; the joining node issues its own
//!   with the invitation key (so joining needs no one online), or the owner or a writer issues
//!   it directly.
//!
//! - a *revocation* (the owner's only) removes a member or an invitation: it holds no role and
//!   grants nothing any more.
//!
//! [`Membership`] is the grow-only set of a document's certificates and the roles they prove,
//! derived from the owner: a certificate counts only if its issuer's role may grant it (the
//! owner and writers grant writer or reader; an invitation grants at most its own role; readers
//! grant nothing). It also holds [`KeyGrant`]s: after a removal the owner seals the new epoch's
//! content key to each remaining member. Pure data: randomness is an argument.

use std::collections::{HashMap, HashSet, VecDeque};

use libp2p_identity::{ed25519, PeerId, PublicKey};

use crate::core::doc::DocId;
use crate::core::envelope::DocKey;

/// Certificate format version (first byte).
const CERT_VERSION: u8 = 1;
/// What a certificate signature covers, before the certificate's fields.
const SIGNING_CONTEXT: &[u8] = b"peerdoc/cert/1";
/// Encoded size of a certificate.
pub const CERT_LEN: usize = 1 + 16 + 1 + 1 + 32 + 32 + 64;
/// Certificates one document holds at most; more are refused (each member needs one, each
/// share one more).
pub const MAX_CERTS: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    #[error("malformed certificate: {0}")]
    Malformed(&'static str),
    #[error("certificate signature does not verify")]
    BadSignature,
    #[error("certificate is for another document")]
    OtherDocument,
    #[error("the document has too many certificates ({MAX_CERTS})")]
    Full,
    #[error("this peer id has no Ed25519 key; peerdoc members use Ed25519 identities")]
    NotEd25519,
}

/// What a member may do. Ordered: a higher role may do what a lower one may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Reader = 1,
    Writer = 2,
    Owner = 3,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Owner => "owner",
        }
    }

    pub fn may_write(self) -> bool {
        self >= Role::Writer
    }

    fn from_byte(b: u8) -> Result<Role, AccessError> {
        match b {
            1 => Ok(Role::Reader),
            2 => Ok(Role::Writer),
            _ => Err(AccessError::Malformed("unknown role")),
        }
    }
}

/// What a certificate makes its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertKind {
    /// A node that is a member with the certificate's role.
    Member = 0,
    /// A key that may admit members up to the certificate's role.
    Invitation = 1,
    /// The subject (a member or an invitation) is removed: it holds no role and grants
    /// nothing any more. Counts only when the owner issued it; its role byte is `0x01`.
    Revocation = 2,
}

/// An Ed25519 public key, as 32 bytes.
pub type KeyBytes = [u8; 32];

/// One signed grant: `issuer` makes `subject` a member or an invitation with `role`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cert {
    pub doc: DocId,
    pub kind: CertKind,
    /// Writer or reader (owner is never granted).
    pub role: Role,
    pub subject: KeyBytes,
    pub issuer: KeyBytes,
    pub signature: [u8; 64],
}

impl Cert {
    fn signed_bytes(
        doc: &DocId,
        kind: CertKind,
        role: Role,
        subject: &KeyBytes,
        issuer: &KeyBytes,
    ) -> Vec<u8> {
        let mut msg = Vec::with_capacity(SIGNING_CONTEXT.len() + CERT_LEN);
        msg.extend_from_slice(SIGNING_CONTEXT);
        msg.push(CERT_VERSION);
        msg.extend_from_slice(&doc.0);
        msg.push(kind as u8);
        msg.push(role as u8);
        msg.extend_from_slice(subject);
        msg.extend_from_slice(issuer);
        msg
    }

    /// Signs a grant with `issuer`'s key. `role` must be writer or reader.
    pub fn issue(
        doc: DocId,
        kind: CertKind,
        role: Role,
        subject: KeyBytes,
        issuer: &ed25519::Keypair,
    ) -> Cert {
        let role = role.min(Role::Writer);
        let issuer_key = issuer.public().to_bytes();
        let signature = issuer.sign(&Self::signed_bytes(&doc, kind, role, &subject, &issuer_key));
        Cert {
            doc,
            kind,
            role,
            subject,
            issuer: issuer_key,
            signature: signature.try_into().unwrap_or([0; 64]),
        }
    }

    pub fn verify(&self) -> bool {
        let Ok(key) = ed25519::PublicKey::try_from_bytes(&self.issuer) else {
            return false;
        };
        let msg = Self::signed_bytes(&self.doc, self.kind, self.role, &self.subject, &self.issuer);
        key.verify(&msg, &self.signature)
    }

    /// `version · doc(16) · kind · role · subject(32) · issuer(32) · signature(64)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CERT_LEN);
        out.push(CERT_VERSION);
        out.extend_from_slice(&self.doc.0);
        out.push(self.kind as u8);
        out.push(self.role as u8);
        out.extend_from_slice(&self.subject);
        out.extend_from_slice(&self.issuer);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes the fixed-size encoding (the signature is checked by [`Cert::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Cert, AccessError> {
        if bytes.len() != CERT_LEN {
            return Err(AccessError::Malformed("wrong length"));
        }
        if bytes[0] != CERT_VERSION {
            return Err(AccessError::Malformed("unknown version"));
        }
        let kind = match bytes[17] {
            0 => CertKind::Member,
            1 => CertKind::Invitation,
            2 => CertKind::Revocation,
            _ => return Err(AccessError::Malformed("unknown kind")),
        };
        let take = |from: usize, to: usize| bytes[from..to].to_vec();
        Ok(Cert {
            doc: DocId(
                take(1, 17)
                    .try_into()
                    .map_err(|_| AccessError::Malformed("doc"))?,
            ),
            kind,
            role: Role::from_byte(bytes[18])?,
            subject: take(19, 51)
                .try_into()
                .map_err(|_| AccessError::Malformed("subject"))?,
            issuer: take(51, 83)
                .try_into()
                .map_err(|_| AccessError::Malformed("issuer"))?,
            signature: take(83, CERT_LEN)
                .try_into()
                .map_err(|_| AccessError::Malformed("signature"))?,
        })
    }
}

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

/// The Ed25519 key behind a peer id.
pub fn key_of(peer: &PeerId) -> Result<KeyBytes, AccessError> {
    let multihash = peer.as_ref();
    // Ed25519 peer ids inline the public key (identity multihash, code 0).
    if multihash.code() != 0 {
        return Err(AccessError::NotEd25519);
    }
    PublicKey::try_decode_protobuf(multihash.digest())
        .ok()
        .and_then(|k| k.try_into_ed25519().ok())
        .map(|k| k.to_bytes())
        .ok_or(AccessError::NotEd25519)
}

/// The peer id of an Ed25519 key.
pub fn peer_of(key: &KeyBytes) -> Option<PeerId> {
    let key = ed25519::PublicKey::try_from_bytes(key).ok()?;
    Some(PublicKey::from(key).to_peer_id())
}

/// A document's certificates and key grants, and the roles they prove.
#[derive(Debug, Clone)]
pub struct Membership {
    doc: DocId,
    owner: KeyBytes,
    certs: HashSet<Cert>,
    /// Key grants by (epoch, member).
    grants: HashMap<(u32, KeyBytes), KeyGrant>,
    /// Derived: members' roles (the owner included).
    members: HashMap<KeyBytes, Role>,
    /// Derived: keys the owner revoked.
    revoked: HashSet<KeyBytes>,
}

impl Membership {
    pub fn new(doc: DocId, owner: KeyBytes) -> Membership {
        Membership {
            doc,
            owner,
            certs: HashSet::new(),
            grants: HashMap::new(),
            members: HashMap::from([(owner, Role::Owner)]),
            revoked: HashSet::new(),
        }
    }

    pub fn doc(&self) -> DocId {
        self.doc
    }

    pub fn owner(&self) -> KeyBytes {
        self.owner
    }

    /// Adds a certificate after checking it. Returns whether it was new. A certificate whose
    /// issuer is not (yet) known is kept: its issuer's certificate may arrive later.
    pub fn add(&mut self, cert: Cert) -> Result<bool, AccessError> {
        if cert.doc != self.doc {
            return Err(AccessError::OtherDocument);
        }
        if self.certs.contains(&cert) {
            return Ok(false);
        }
        if self.certs.len() >= MAX_CERTS {
            return Err(AccessError::Full);
        }
        if !cert.verify() {
            return Err(AccessError::BadSignature);
        }
        self.certs.insert(cert);
        self.derive();
        Ok(true)
    }

    /// Recomputes the roles from the owner outwards: a certificate counts once its issuer's
    /// role may grant it. Roles only grow, so each key is visited at most once per role.
    fn derive(&mut self) {
        // Only the owner revokes, and the owner cannot be revoked.
        let revoked: HashSet<KeyBytes> = self
            .certs
            .iter()
            .filter(|c| c.kind == CertKind::Revocation && c.issuer == self.owner)
            .map(|c| c.subject)
            .filter(|subject| *subject != self.owner)
            .collect();
        let mut by_issuer: HashMap<KeyBytes, Vec<&Cert>> = HashMap::new();
        for cert in &self.certs {
            if cert.kind != CertKind::Revocation && !revoked.contains(&cert.subject) {
                by_issuer.entry(cert.issuer).or_default().push(cert);
            }
        }
        // What each key may grant: members by their role, invitations by theirs.
        let mut members: HashMap<KeyBytes, Role> = HashMap::from([(self.owner, Role::Owner)]);
        let mut invitations: HashMap<KeyBytes, Role> = HashMap::new();
        let mut queue: VecDeque<KeyBytes> = VecDeque::from([self.owner]);
        while let Some(issuer) = queue.pop_front() {
            let as_member = members.get(&issuer).copied().filter(|r| r.may_write());
            let as_invitation = invitations.get(&issuer).copied();
            for cert in by_issuer
                .get(&issuer)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let granted = match cert.kind {
                    CertKind::Revocation => None,
                    // Invitations come from the owner and writers.
                    CertKind::Invitation => as_member.map(|_| cert.role),
                    // Members are admitted by the owner, writers, or an invitation up to its role.
                    CertKind::Member => match (as_member, as_invitation) {
                        (Some(_), _) => Some(cert.role),
                        (None, Some(limit)) => Some(cert.role.min(limit)),
                        (None, None) => None,
                    },
                };
                let Some(role) = granted else { continue };
                let table = match cert.kind {
                    CertKind::Member => &mut members,
                    CertKind::Invitation | CertKind::Revocation => &mut invitations,
                };
                if table.get(&cert.subject).is_none_or(|known| *known < role) {
                    table.insert(cert.subject, role);
                    queue.push_back(cert.subject);
                }
            }
        }
        self.members = members;
        self.revoked = revoked;
    }

    /// Whether the owner removed `peer`.
    pub fn is_revoked(&self, peer: &PeerId) -> bool {
        key_of(peer).is_ok_and(|k| self.revoked.contains(&k))
    }

    /// Whether the owner revoked this key (a member or an invitation).
    pub fn is_revoked_key(&self, key: &KeyBytes) -> bool {
        self.revoked.contains(key)
    }

    /// The role a key holds, if it is a member.
    pub fn role_of_key(&self, key: &KeyBytes) -> Option<Role> {
        self.members.get(key).copied()
    }

    /// The member certificates that admitted `key` (to revoke the invitations behind them).
    pub fn admissions_of(&self, key: &KeyBytes) -> Vec<&Cert> {
        self.certs
            .iter()
            .filter(|c| c.kind == CertKind::Member && c.subject == *key)
            .collect()
    }

    /// Members' keys and roles, the owner included.
    pub fn member_keys(&self) -> impl Iterator<Item = (&KeyBytes, &Role)> {
        self.members.iter()
    }

    /// Adds a key grant after checking that the owner signed it for this document. Returns
    /// whether it was new.
    pub fn add_grant(&mut self, grant: KeyGrant) -> Result<bool, AccessError> {
        if grant.doc != self.doc {
            return Err(AccessError::OtherDocument);
        }
        let slot = (grant.epoch, grant.member);
        if self.grants.contains_key(&slot) {
            return Ok(false);
        }
        if self.grants.len() >= MAX_CERTS {
            return Err(AccessError::Full);
        }
        if !grant.verify(&self.owner) {
            return Err(AccessError::BadSignature);
        }
        self.grants.insert(slot, grant);
        Ok(true)
    }

    /// Every key grant held.
    pub fn grants(&self) -> impl Iterator<Item = &KeyGrant> {
        self.grants.values()
    }

    /// The grants addressed to `member`.
    pub fn grants_for(&self, member: &KeyBytes) -> Vec<&KeyGrant> {
        self.grants
            .values()
            .filter(|g| g.member == *member)
            .collect()
    }

    /// The role `peer` holds, if it is a member.
    pub fn role_of(&self, peer: &PeerId) -> Option<Role> {
        key_of(peer)
            .ok()
            .and_then(|k| self.members.get(&k).copied())
    }

    /// Members and their roles, the owner first.
    pub fn members(&self) -> Vec<(PeerId, Role)> {
        let mut list: Vec<(PeerId, Role)> = self
            .members
            .iter()
            .filter_map(|(key, role)| Some((peer_of(key)?, *role)))
            .collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        list
    }

    /// Every certificate held (valid or still waiting for its issuer's).
    pub fn certs(&self) -> impl Iterator<Item = &Cert> {
        self.certs.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> (ed25519::Keypair, KeyBytes, PeerId) {
        let kp = ed25519::Keypair::generate();
        let key = kp.public().to_bytes();
        let peer = peer_of(&key).unwrap();
        (kp, key, peer)
    }

    #[test]
    fn certificates_round_trip_and_detect_tampering() {
        let doc = DocId::random();
        let (owner, _, _) = node();
        let (_, subject, _) = node();
        let cert = Cert::issue(doc, CertKind::Member, Role::Writer, subject, &owner);
        assert!(cert.verify());
        let bytes = cert.encode();
        assert_eq!(bytes.len(), CERT_LEN);
        assert_eq!(Cert::decode(&bytes).unwrap(), cert);
        for i in 0..CERT_LEN {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            if let Ok(c) = Cert::decode(&bad) {
                assert!(!c.verify(), "flipping byte {i} went unnoticed");
            }
        }
        assert!(Cert::decode(&bytes[..CERT_LEN - 1]).is_err());
        assert!(Cert::decode(&[bytes.clone(), vec![0]].concat()).is_err());
    }

    #[test]
    fn peer_ids_and_keys_convert_both_ways() {
        let (_, key, peer) = node();
        assert_eq!(key_of(&peer).unwrap(), key);
        let rsa_like = PeerId::random();
        // A random peer id is a sha256 multihash: not an inline Ed25519 key.
        assert_eq!(key_of(&rsa_like), Err(AccessError::NotEd25519));
    }

    #[test]
    fn roles_follow_invitations_from_the_owner() {
        let doc = DocId::random();
        let (owner_kp, owner, owner_peer) = node();
        let mut m = Membership::new(doc, owner);
        assert_eq!(m.role_of(&owner_peer), Some(Role::Owner));

        // The owner shares read-write: an invitation, which the joiner uses to admit itself.
        let invite = ed25519::Keypair::generate();
        let (_, writer, writer_peer) = node();
        let invitation = Cert::issue(
            doc,
            CertKind::Invitation,
            Role::Writer,
            invite.public().to_bytes(),
            &owner_kp,
        );
        let admitted = Cert::issue(doc, CertKind::Member, Role::Writer, writer, &invite);
        // Order does not matter: the member certificate waits for its invitation.
        assert!(m.add(admitted.clone()).unwrap());
        assert_eq!(m.role_of(&writer_peer), None);
        assert!(m.add(invitation).unwrap());
        assert_eq!(m.role_of(&writer_peer), Some(Role::Writer));
        assert!(!m.add(admitted).unwrap(), "a duplicate is not new");

        // A read-only invitation cannot admit a writer: the grant is capped at reader.
        let ro = ed25519::Keypair::generate();
        let (_, reader, reader_peer) = node();
        m.add(Cert::issue(
            doc,
            CertKind::Invitation,
            Role::Reader,
            ro.public().to_bytes(),
            &owner_kp,
        ))
        .unwrap();
        m.add(Cert::issue(
            doc,
            CertKind::Member,
            Role::Writer,
            reader,
            &ro,
        ))
        .unwrap();
        assert_eq!(m.role_of(&reader_peer), Some(Role::Reader));

        // A writer may share further; a reader may not.
        let writer_kp = ed25519::Keypair::generate();
        let writer2 = writer_kp.public().to_bytes();
        m.add(Cert::issue(
            doc,
            CertKind::Member,
            Role::Writer,
            writer2,
            &owner_kp,
        ))
        .unwrap();
        let (_, third, third_peer) = node();
        m.add(Cert::issue(
            doc,
            CertKind::Member,
            Role::Reader,
            third,
            &writer_kp,
        ))
        .unwrap();
        assert_eq!(m.role_of(&third_peer), Some(Role::Reader));
        let reader_kp_forged = ed25519::Keypair::generate();
        let (_, fourth, fourth_peer) = node();
        m.add(Cert::issue(
            doc,
            CertKind::Member,
            Role::Writer,
            fourth,
            &reader_kp_forged,
        ))
        .unwrap();
        assert_eq!(
            m.role_of(&fourth_peer),
            None,
            "an unknown issuer grants nothing"
        );

        let roles: Vec<Role> = m.members().iter().map(|(_, r)| *r).collect();
        assert_eq!(roles[0], Role::Owner);
        assert_eq!(roles.iter().filter(|r| **r == Role::Writer).count(), 2);
        assert_eq!(roles.iter().filter(|r| **r == Role::Reader).count(), 2);
    }

    #[test]
    fn a_reader_cannot_promote_itself_or_admit_others() {
        let doc = DocId::random();
        let (owner_kp, owner, _) = node();
        let mut m = Membership::new(doc, owner);
        let reader_kp = ed25519::Keypair::generate();
        let reader = reader_kp.public().to_bytes();
        let reader_peer = peer_of(&reader).unwrap();
        m.add(Cert::issue(
            doc,
            CertKind::Member,
            Role::Reader,
            reader,
            &owner_kp,
        ))
        .unwrap();
        // Self-issued writer certificate and an invitation of its own: both worthless.
        m.add(Cert::issue(
            doc,
            CertKind::Member,
            Role::Writer,
            reader,
            &reader_kp,
        ))
        .unwrap();
        let sock = ed25519::Keypair::generate();
        m.add(Cert::issue(
            doc,
            CertKind::Invitation,
            Role::Writer,
            sock.public().to_bytes(),
            &reader_kp,
        ))
        .unwrap();
        let (_, puppet, puppet_peer) = node();
        m.add(Cert::issue(
            doc,
            CertKind::Member,
            Role::Writer,
            puppet,
            &sock,
        ))
        .unwrap();
        assert_eq!(m.role_of(&reader_peer), Some(Role::Reader));
        assert_eq!(m.role_of(&puppet_peer), None);
    }

    #[test]
    fn forged_and_foreign_certificates_are_refused() {
        let doc = DocId::random();
        let (owner_kp, owner, _) = node();
        let mut m = Membership::new(doc, owner);
        let (_, subject, _) = node();
        let mut forged = Cert::issue(doc, CertKind::Member, Role::Reader, subject, &owner_kp);
        forged.role = Role::Writer;
        assert_eq!(m.add(forged), Err(AccessError::BadSignature));
        let foreign = Cert::issue(
            DocId::random(),
            CertKind::Member,
            Role::Writer,
            subject,
            &owner_kp,
        );
        assert_eq!(m.add(foreign), Err(AccessError::OtherDocument));
    }

    #[test]
    fn the_owner_revokes_a_member_and_the_invitation_it_came_with() {
        let doc = DocId::random();
        let (owner_kp, owner, _) = node();
        let mut m = Membership::new(doc, owner);
        let invite = ed25519::Keypair::generate();
        m.add(Cert::issue(
            doc,
            CertKind::Invitation,
            Role::Writer,
            invite.public().to_bytes(),
            &owner_kp,
        ))
        .unwrap();
        let (bad_kp, bad, bad_peer) = node();
        m.add(Cert::issue(
            doc,
            CertKind::Member,
            Role::Writer,
            bad,
            &invite,
        ))
        .unwrap();
        // Before removal, it admits a reader of its own.
        let (_, friend, friend_peer) = node();
        m.add(Cert::issue(
            doc,
            CertKind::Member,
            Role::Reader,
            friend,
            &bad_kp,
        ))
        .unwrap();
        assert_eq!(m.role_of(&friend_peer), Some(Role::Reader));

        // Someone else's "revocation" counts for nothing.
        m.add(Cert::issue(
            doc,
            CertKind::Revocation,
            Role::Reader,
            bad,
            &bad_kp,
        ))
        .unwrap();
        assert_eq!(m.role_of(&bad_peer), Some(Role::Writer));
        assert!(!m.is_revoked(&bad_peer));

        m.add(Cert::issue(
            doc,
            CertKind::Revocation,
            Role::Reader,
            bad,
            &owner_kp,
        ))
        .unwrap();
        assert!(m.is_revoked(&bad_peer));
        assert_eq!(m.role_of(&bad_peer), None);
        assert_eq!(
            m.role_of(&friend_peer),
            None,
            "what it granted goes with it"
        );
        // Re-admitting itself with the same invitation under a new key works until the
        // invitation is revoked too.
        let (_, again, again_peer) = node();
        m.add(Cert::issue(
            doc,
            CertKind::Member,
            Role::Writer,
            again,
            &invite,
        ))
        .unwrap();
        assert_eq!(m.role_of(&again_peer), Some(Role::Writer));
        assert_eq!(m.admissions_of(&bad)[0].issuer, invite.public().to_bytes());
        m.add(Cert::issue(
            doc,
            CertKind::Revocation,
            Role::Reader,
            invite.public().to_bytes(),
            &owner_kp,
        ))
        .unwrap();
        assert_eq!(m.role_of(&again_peer), None);
        // The owner cannot be revoked.
        m.add(Cert::issue(
            doc,
            CertKind::Revocation,
            Role::Reader,
            owner,
            &owner_kp,
        ))
        .unwrap();
        assert_eq!(m.role_of_key(&owner), Some(Role::Owner));
    }

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
