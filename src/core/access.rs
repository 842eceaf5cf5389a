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
//! [`Membership`] is the grow-only set of a document's certificates and the roles they prove,
//! derived from the owner: a certificate counts only if its issuer's role may grant it (the
//! owner and writers grant writer or reader; an invitation grants at most its own role; readers
//! grant nothing). Pure data: signing and verifying are the only operations.

use std::collections::{HashMap, HashSet, VecDeque};

use libp2p_identity::{ed25519, PeerId, PublicKey};

use crate::core::doc::DocId;

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

/// A document's certificates and the roles they prove.
#[derive(Debug, Clone)]
pub struct Membership {
    doc: DocId,
    owner: KeyBytes,
    certs: HashSet<Cert>,
    /// Derived: members' roles (the owner included).
    members: HashMap<KeyBytes, Role>,
}

impl Membership {
    pub fn new(doc: DocId, owner: KeyBytes) -> Membership {
        Membership {
            doc,
            owner,
            certs: HashSet::new(),
            members: HashMap::from([(owner, Role::Owner)]),
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
        let mut by_issuer: HashMap<KeyBytes, Vec<&Cert>> = HashMap::new();
        for cert in &self.certs {
            by_issuer.entry(cert.issuer).or_default().push(cert);
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
                    CertKind::Invitation => &mut invitations,
                };
                if table.get(&cert.subject).is_none_or(|known| *known < role) {
                    table.insert(cert.subject, role);
                    queue.push_back(cert.subject);
                }
            }
        }
        self.members = members;
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
}
