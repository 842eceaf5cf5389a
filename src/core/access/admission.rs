//! Admission: whether a peer's sync request gets document data, only membership records, or
//! nothing; the one decision the node's responder and the simulation share.
//!
//! - A member whose role allows reading, asking in the current key epoch, is served.
//! - A member asking in an older epoch gets the records it lacks (its key grants, the
//!   revocations), never content: what was written since is sealed under a key it may no
//!   longer be meant to have. Its member exchanges are served (they carry those records).
//! - A peer that is not a member gets the records that say why (its own revocation, or the
//!   revocation of the invitation it came with), and nothing else.

use super::{Cert, CertKind, KeyBytes, KeyGrant, Membership};

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// Document data (a pull's start or continuation).
    Content,
    /// A member exchange (members, certificates, key grants).
    Members,
}

/// How a request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Serve,
    /// Only [`records_for`]: the requester holds no role, or an old key epoch.
    RecordsOnly(Why),
}

/// Why a request gets only records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The owner removed the requester (or the invitation it came with).
    Removed,
    /// The requester holds no role.
    NotMember,
    /// A member asking for content under an old key epoch.
    StaleEpoch,
}

impl Why {
    /// A label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Removed => "removed",
            Why::NotMember => "not_member",
            Why::StaleEpoch => "stale_epoch",
        }
    }
}

/// Decides how to answer `requester`, whose request was sealed in `epoch`, when the document's
/// newest epoch is `current`.
pub fn admit(
    membership: &Membership,
    requester: &KeyBytes,
    epoch: u32,
    current: u32,
    asked: Asked,
) -> Admission {
    if membership.role_of_key(requester).is_none() {
        let why = if membership.is_revoked_key(requester) {
            Why::Removed
        } else {
            Why::NotMember
        };
        return Admission::RecordsOnly(why);
    }
    if asked == Asked::Content && epoch < current {
        return Admission::RecordsOnly(Why::StaleEpoch);
    }
    Admission::Serve
}

/// The records a requester that is not served needs, and nothing more: the owner's
/// revocation of its key, of the invitations behind the certificates it `presented` for
/// itself, and the key grants addressed to it.
pub fn records_for(
    membership: &Membership,
    requester: &KeyBytes,
    presented: &[Cert],
) -> (Vec<Cert>, Vec<KeyGrant>) {
    let mut concerned: Vec<KeyBytes> = vec![*requester];
    concerned.extend(
        presented
            .iter()
            .filter(|c| c.kind == CertKind::Member && c.subject == *requester)
            .map(|c| c.issuer),
    );
    let certs = membership
        .chain()
        .iter()
        .filter(|c| c.kind == CertKind::Revocation && concerned.contains(&c.subject))
        .cloned()
        .collect();
    let grants = membership
        .grants_for(requester)
        .into_iter()
        .cloned()
        .collect();
    (certs, grants)
}

#[cfg(test)]
mod tests {
    use libp2p_identity::ed25519;

    use super::super::tests::node;
    use super::super::Role;
    use super::*;
    use crate::core::doc::DocId;

    #[test]
    fn members_are_served_in_the_current_epoch_only_and_others_get_their_records() {
        let doc = DocId::random();
        let (owner, owner_key, _) = node();
        let mut m = Membership::new(doc, owner_key);
        let invite = ed25519::Keypair::generate();
        let (_, member, _) = node();
        let (_, removed, _) = node();
        let (_, stranger, _) = node();
        let admitted_removed = Cert::issue(doc, CertKind::Member, Role::Writer, removed, &invite);
        m.add_all([
            Cert::issue(
                doc,
                CertKind::Invitation,
                Role::Writer,
                invite.public().to_bytes(),
                &owner,
            ),
            Cert::issue(doc, CertKind::Member, Role::Reader, member, &owner),
            admitted_removed.clone(),
        ]);
        assert_eq!(admit(&m, &member, 0, 0, Asked::Content), Admission::Serve);
        assert_eq!(admit(&m, &removed, 0, 0, Asked::Content), Admission::Serve);
        m.add(Cert::issue(
            doc,
            CertKind::Revocation,
            Role::Reader,
            removed,
            &owner,
        ))
        .unwrap();
        m.add(Cert::issue(
            doc,
            CertKind::Revocation,
            Role::Reader,
            invite.public().to_bytes(),
            &owner,
        ))
        .unwrap();

        assert_eq!(admit(&m, &member, 1, 1, Asked::Content), Admission::Serve);
        assert_eq!(
            admit(&m, &member, 0, 1, Asked::Content),
            Admission::RecordsOnly(Why::StaleEpoch)
        );
        assert_eq!(admit(&m, &member, 0, 1, Asked::Members), Admission::Serve);
        for asked in [Asked::Content, Asked::Members] {
            assert_eq!(
                admit(&m, &removed, 0, 1, asked),
                Admission::RecordsOnly(Why::Removed)
            );
            assert_eq!(
                admit(&m, &stranger, 1, 1, asked),
                Admission::RecordsOnly(Why::NotMember)
            );
        }
        // The removed member learns of its own removal; a joiner with the revoked invitation
        // learns that the invitation is gone; a stranger learns nothing.
        let (certs, _) = records_for(&m, &removed, &[]);
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].subject, removed);
        let (_, joiner, _) = node();
        let own = Cert::issue(doc, CertKind::Member, Role::Writer, joiner, &invite);
        let (certs, _) = records_for(&m, &joiner, &[own]);
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].subject, invite.public().to_bytes());
        assert!(records_for(&m, &stranger, &[admitted_removed]).0.is_empty());
    }
}
