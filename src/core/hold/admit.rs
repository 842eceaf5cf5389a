//! What a holder admits: the one rule set for every hold request, read from the document's
//! membership as the holder holds it (certificates, grants and hold records members sent).

use crate::core::access::{KeyBytes, Membership};

/// What a requester asks a holder for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// To take membership records (and, the first time, to hold the document).
    Records,
    /// To keep a change.
    Append,
    /// Changes, or the roster.
    Read,
}

/// Why a holder refuses a request. The byte is its code on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[repr(u8)]
pub enum Refusal {
    #[error("the holder keeps no such document")]
    UnknownDoc = 1,
    #[error("no owner or writer of the document asked this node to hold it (or it was released)")]
    NotAsked = 2,
    #[error("the requester is no member of the document")]
    NotMember = 3,
    #[error("the requester may not write to the document")]
    NotWriter = 4,
    #[error("the owner removed the requester from the document")]
    Removed = 5,
    #[error("the holder is full (its limits, or its disk): it keeps nothing more for now")]
    Full = 6,
    #[error("malformed request")]
    Malformed = 7,
    #[error("the entry's signature does not verify, or it is not the requester's")]
    BadSignature = 8,
    #[error("this node keeps no documents for others (start it with --replica)")]
    NotAHolder = 9,
    #[error("the holder could not do it now; try again")]
    Busy = 10,
    #[error("this holder keeps documents only for the nodes its operator allows")]
    NotAllowed = 11,
}

impl Refusal {
    pub fn from_code(code: u8) -> Option<Refusal> {
        Some(match code {
            1 => Refusal::UnknownDoc,
            2 => Refusal::NotAsked,
            3 => Refusal::NotMember,
            4 => Refusal::NotWriter,
            5 => Refusal::Removed,
            6 => Refusal::Full,
            7 => Refusal::Malformed,
            8 => Refusal::BadSignature,
            9 => Refusal::NotAHolder,
            10 => Refusal::Busy,
            11 => Refusal::NotAllowed,
            _ => return None,
        })
    }

    /// Its name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownDoc => "unknown_doc",
            Refusal::NotAsked => "not_asked",
            Refusal::NotMember => "not_member",
            Refusal::NotWriter => "not_writer",
            Refusal::Removed => "removed",
            Refusal::Full => "full",
            Refusal::Malformed => "malformed",
            Refusal::BadSignature => "bad_signature",
            Refusal::NotAHolder => "not_a_holder",
            Refusal::Busy => "busy",
            Refusal::NotAllowed => "not_allowed",
        }
    }
}

/// Whether the holder `holder` serves `requester` what it `asked` for, given the document's
/// membership (records of the request already added, for [`Asked::Records`]).
pub fn admit(
    membership: &Membership,
    holder: &KeyBytes,
    requester: &KeyBytes,
    asked: Asked,
) -> Result<(), Refusal> {
    if !membership.is_holder(holder) {
        return Err(Refusal::NotAsked);
    }
    if membership.is_revoked_key(requester) {
        return Err(Refusal::Removed);
    }
    let role = membership
        .role_of_key(requester)
        .ok_or(Refusal::NotMember)?;
    match asked {
        Asked::Append if !role.may_write() => Err(Refusal::NotWriter),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use libp2p_identity::ed25519;

    use super::*;
    use crate::core::access::{Cert, CertKind, HoldRecord, Role};
    use crate::core::doc::DocId;

    fn member(doc: DocId, owner: &ed25519::Keypair, role: Role) -> (ed25519::Keypair, Cert) {
        let kp = ed25519::Keypair::generate();
        let cert = Cert::issue(doc, CertKind::Member, role, kp.public().to_bytes(), owner);
        (kp, cert)
    }

    #[test]
    fn a_holder_serves_members_takes_writes_from_writers_and_nothing_once_released() {
        let doc = DocId([8; 16]);
        let owner = ed25519::Keypair::generate();
        let holder = [42; 32];
        let mut m = Membership::new(doc, owner.public().to_bytes());
        let (writer, writer_cert) = member(doc, &owner, Role::Writer);
        let (reader, reader_cert) = member(doc, &owner, Role::Reader);
        m.add_all([writer_cert, reader_cert]);
        let key = |kp: &ed25519::Keypair| kp.public().to_bytes();
        let stranger = ed25519::Keypair::generate();

        assert_eq!(
            admit(&m, &holder, &key(&writer), Asked::Append),
            Err(Refusal::NotAsked)
        );
        let hold = HoldRecord::sign(doc, holder, 10, true, &writer);
        assert_eq!(m.add_hold(hold, 10), Ok(true));
        assert_eq!(
            m.add_hold(HoldRecord::sign(doc, [43; 32], 10, true, &reader), 10),
            Err(crate::core::access::HoldError::NotWriter),
            "a reader cannot pick holders"
        );
        assert_eq!(admit(&m, &holder, &key(&writer), Asked::Append), Ok(()));
        assert_eq!(admit(&m, &holder, &key(&owner), Asked::Append), Ok(()));
        assert_eq!(admit(&m, &holder, &key(&reader), Asked::Read), Ok(()));
        assert_eq!(
            admit(&m, &holder, &key(&reader), Asked::Append),
            Err(Refusal::NotWriter)
        );
        assert_eq!(
            admit(&m, &holder, &key(&stranger), Asked::Read),
            Err(Refusal::NotMember)
        );

        let revoke = Cert::issue(
            doc,
            CertKind::Revocation,
            Role::Reader,
            key(&reader),
            &owner,
        );
        m.add_all([revoke]);
        assert_eq!(
            admit(&m, &holder, &key(&reader), Asked::Read),
            Err(Refusal::Removed)
        );

        // At most eight holders at once: a ninth is refused where it arrives.
        for i in 0..7u8 {
            let other = HoldRecord::sign(doc, [i; 32], 10, true, &writer);
            assert_eq!(m.add_hold(other, 10), Ok(true));
        }
        let ninth = HoldRecord::sign(doc, [200; 32], 10, true, &writer);
        assert_eq!(
            m.add_hold(ninth, 10),
            Err(crate::core::access::HoldError::TooMany)
        );

        let release = HoldRecord::sign(doc, holder, 11, false, &owner);
        assert_eq!(m.add_hold(release, 11), Ok(true));
        assert_eq!(
            admit(&m, &holder, &key(&writer), Asked::Read),
            Err(Refusal::NotAsked)
        );
    }
}
