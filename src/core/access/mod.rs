//! Who may do what with a document. Roles: the **owner** (the creator), **writers** and
//! **readers**. A role is proven by [`Cert`]ificates, each signed with an Ed25519 key (a node's
//! libp2p identity key, or an invitation key):
//!
//! - an *invitation* certificate makes a fresh key an invitation to be a writer or a reader; the
//!   owner or a writer issues it when sharing, and the ticket carries the invitation's secret;
//! - a *member* certificate makes a node a writer or a reader; the joining node issues its own
//!   with the invitation key (so joining needs no one online), or the owner or a writer issues
//!   it directly;
//! - a *revocation* (the owner's only) removes a member or an invitation: it holds no role and
//!   grants nothing any more;
//! - a *claim* (a writer's, or the owner's) attributes a Yjs client id to its issuer;
//! - a *cut* (the owner's only, part of a removal) voids a client's operations from a clock on.
//!
//! Beside them, each member signs its own display name (`name`): who it says it is, never
//! what it may do; and owners and writers sign which nodes hold the document's sealed data
//! for its members (`hold`), which makes those nodes no members.
//!
//! [`Membership`] is the grow-only set of a document's certificates and the roles they prove,
//! derived from the owner: a certificate counts only if its issuer's role may grant it (the
//! owner and writers grant writer or reader; an invitation grants at most its own role; readers
//! grant nothing). It also holds [`KeyGrant`]s: after a removal the owner seals the new epoch's
//! content key to each remaining member (`grant`). A certificate is stored only if it chains
//! to the owner when it arrives, within per-issuer limits that never refuse the owner's
//! revocations. [`RemovalPlan`] decides what a removal signs; [`admission`] decides how a peer's
//! request or gossip is taken; `sim` runs them all under seeded schedules. Pure data:
//! randomness is an argument.

use libp2p_identity::{ed25519, PeerId, PublicKey};

use crate::core::doc::DocId;

pub mod admission;
mod grant;
pub mod hold;
mod membership;
pub mod name;
mod removal;
#[cfg(test)]
mod sim;

pub use grant::{KeyGrant, GRANT_LEN};
pub use hold::{HoldError, HoldRecord, HOLD_LEN, MAX_HOLDERS};
pub use membership::{Added, Membership};
pub use name::{labels, short_peer, NameError, NameRecord};
pub use removal::{RemovalError, RemovalPlan};

/// Certificate format version (first byte).
const CERT_VERSION: u8 = 1;
/// What a certificate signature covers, before the certificate's fields.
const SIGNING_CONTEXT: &[u8] = b"peerdoc/cert/1";
/// Encoded size of a certificate.
pub const CERT_LEN: usize = 1 + 16 + 1 + 1 + 32 + 32 + 64;
/// Certificates one issuer other than the owner (a writer, or an invitation admitting members)
/// may have in one document; more are refused. Limits are per issuer so that no member can
/// crowd out the others, and none applies to the owner's revocations.
pub const MAX_CERTS_PER_ISSUER: usize = 1024;
/// Certificates all issuers but the owner may have in one document together.
pub const MAX_MEMBER_ISSUED_CERTS: usize = 16 * 1024;
/// Certificates the owner may issue in one document, revocations not counted (those are
/// never refused).
pub const MAX_OWNER_CERTS: usize = 64 * 1024;
/// Key grants one document holds at most (one per member per epoch).
pub const MAX_GRANTS: usize = 64 * 1024;
/// Client claims one member other than the owner may have in one document (one per editor
/// session that wrote, and one per load of the document that the node wrote in).
pub const MAX_CLAIMS_PER_MEMBER: usize = 16 * 1024;
/// Client claims all members but the owner may have in one document together.
pub const MAX_MEMBER_CLAIMS: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    #[error("malformed certificate: {0}")]
    Malformed(&'static str),
    #[error("certificate signature does not verify")]
    BadSignature,
    #[error("certificate is for another document")]
    OtherDocument,
    #[error(
        "certificate's issuer holds no role that may grant it: it does not chain to the owner"
    )]
    Unchained,
    #[error("certificate's issuer has issued as many certificates as it may ({MAX_CERTS_PER_ISSUER} per member, {MAX_MEMBER_ISSUED_CERTS} for all members; {MAX_CLAIMS_PER_MEMBER} and {MAX_MEMBER_CLAIMS} client claims)")]
    IssuerFull,
    #[error("the document holds as many key grants as it may ({MAX_GRANTS})")]
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
    /// The issuer (a writer or the owner) writes through the Yjs client id in the subject's
    /// first 8 bytes (little-endian; the rest zero): attribution, so that a removal can name
    /// the removed member's clients. Its role byte is `0x02`.
    Claim = 3,
    /// The owner voids the Yjs client's operations from a clock on (subject: client, then
    /// clock, 8 bytes little-endian each; the rest zero): the cut a removal names. Its role
    /// byte is `0x01`.
    Cut = 4,
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

    /// `member` claims the Yjs client id `client` in `doc` ([`CertKind::Claim`]).
    pub fn claim(doc: DocId, client: u64, member: &ed25519::Keypair) -> Cert {
        let mut subject = [0u8; 32];
        subject[..8].copy_from_slice(&client.to_le_bytes());
        Cert::issue(doc, CertKind::Claim, Role::Writer, subject, member)
    }

    /// The owner voids `client`'s operations from `clock` on ([`CertKind::Cut`]).
    pub fn cut(doc: DocId, client: u64, clock: u64, owner: &ed25519::Keypair) -> Cert {
        let mut subject = [0u8; 32];
        subject[..8].copy_from_slice(&client.to_le_bytes());
        subject[8..16].copy_from_slice(&clock.to_le_bytes());
        Cert::issue(doc, CertKind::Cut, Role::Reader, subject, owner)
    }

    /// The client a [`CertKind::Claim`] or [`CertKind::Cut`] names.
    pub fn client(&self) -> Option<u64> {
        matches!(self.kind, CertKind::Claim | CertKind::Cut)
            .then(|| u64::from_le_bytes(self.subject[..8].try_into().unwrap_or([0; 8])))
    }

    /// The clock a [`CertKind::Cut`] voids from.
    pub fn cut_clock(&self) -> Option<u64> {
        (self.kind == CertKind::Cut)
            .then(|| u64::from_le_bytes(self.subject[8..16].try_into().unwrap_or([0; 8])))
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
            3 => CertKind::Claim,
            4 => CertKind::Cut,
            _ => return Err(AccessError::Malformed("unknown kind")),
        };
        // One encoding per claim or cut: what its subject does not use is zero.
        let unused = match kind {
            CertKind::Claim => &bytes[19 + 8..51],
            CertKind::Cut => &bytes[19 + 16..51],
            _ => &[][..],
        };
        if unused.iter().any(|b| *b != 0) {
            return Err(AccessError::Malformed(
                "subject has bytes its kind does not use",
            ));
        }
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh node identity: its keypair, key bytes and peer id.
    pub(crate) fn node() -> (ed25519::Keypair, KeyBytes, PeerId) {
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
}
