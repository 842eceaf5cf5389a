//! Admission: whether a peer's sync request gets document data, only membership records, or
//! nothing; the one decision the node's responder and the simulation share.
//!
//! - A member whose role allows reading, asking in the current key epoch, is served.
//! - A member asking for content in an older epoch gets no content (what was written since is
//!   sealed under a key it may no longer be meant to have); its member exchanges are served,
//!   and carry the new key together with the removals it came with.
//! - A peer that is not a member gets the records that say why (its own revocation, or the
//!   revocation of the invitation it came with), and nothing else.
//!
//! And whether a gossip message's author may have sent it ([`admit_gossip`]).

use super::{Cert, CertKind, KeyBytes, Membership, Role};

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
    /// This node was removed itself: it serves nobody.
    ResponderRemoved,
}

impl Why {
    /// A label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Removed => "removed",
            Why::NotMember => "not_member",
            Why::StaleEpoch => "stale_epoch",
            Why::ResponderRemoved => "responder_removed",
        }
    }
}

/// Decides how node `me` answers `requester`, whose request was sealed in `epoch`, when the
/// document's newest epoch here is `current`.
pub fn admit(
    membership: &Membership,
    me: &KeyBytes,
    requester: &KeyBytes,
    epoch: u32,
    current: u32,
    asked: Asked,
) -> Admission {
    // A node that knows it was removed serves nobody: its roster has the removals but not the
    // keys that came with them, and a member must never learn one without the other.
    if membership.is_revoked_key(me) {
        return Admission::RecordsOnly(Why::ResponderRemoved);
    }
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

/// How a gossip message is taken, by its author's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GossipVerdict {
    Accept,
    /// The owner removed the author: refused.
    Removed,
    /// The author's role does not allow the message (a reader's edit): refused.
    NotAllowed(Role),
    /// The author's role is not known here yet: ignored until its certificates arrive.
    Unknown,
}

/// Whether gossip that needs role `needed` (writer for edits, reader for presence) is taken
/// from `author`.
pub fn admit_gossip(membership: &Membership, author: &KeyBytes, needed: Role) -> GossipVerdict {
    if membership.is_revoked_key(author) {
        return GossipVerdict::Removed;
    }
    match membership.role_of_key(author) {
        Some(role) if role >= needed => GossipVerdict::Accept,
        Some(role) => GossipVerdict::NotAllowed(role),
        None => GossipVerdict::Unknown,
    }
}

/// The records a requester that is not served needs, and nothing more: the owner's
/// revocation of its key, and of the invitations behind the certificates it `presented` for
/// itself. Never key grants: a member that lacks the newest key fetches the whole roster by a
/// member exchange, so the new key never arrives without the removals it came with.
pub fn records_for(membership: &Membership, requester: &KeyBytes, presented: &[Cert]) -> Vec<Cert> {
    let mut concerned: Vec<KeyBytes> = vec![*requester];
    concerned.extend(
        presented
            .iter()
            .filter(|c| c.kind == CertKind::Member && c.subject == *requester)
            .map(|c| c.issuer),
    );
    membership
        .chain()
        .iter()
        .filter(|c| c.kind == CertKind::Revocation && concerned.contains(&c.subject))
        .cloned()
        .collect()
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
        assert_eq!(
            admit(&m, &owner_key, &member, 0, 0, Asked::Content),
            Admission::Serve
        );
        assert_eq!(
            admit(&m, &owner_key, &removed, 0, 0, Asked::Content),
            Admission::Serve
        );
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

        assert_eq!(
            admit(&m, &owner_key, &member, 1, 1, Asked::Content),
            Admission::Serve
        );
        assert_eq!(
            admit(&m, &owner_key, &member, 0, 1, Asked::Content),
            Admission::RecordsOnly(Why::StaleEpoch)
        );
        assert_eq!(
            admit(&m, &owner_key, &member, 0, 1, Asked::Members),
            Admission::Serve
        );
        for asked in [Asked::Content, Asked::Members] {
            assert_eq!(
                admit(&m, &owner_key, &removed, 0, 1, asked),
                Admission::RecordsOnly(Why::Removed)
            );
            assert_eq!(
                admit(&m, &owner_key, &stranger, 1, 1, asked),
                Admission::RecordsOnly(Why::NotMember)
            );
        }
        // The removed member learns of its own removal; a joiner with the revoked invitation
        // learns that the invitation is gone; a stranger learns nothing.
        let certs = records_for(&m, &removed, &[]);
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].subject, removed);
        let (_, joiner, _) = node();
        let own = Cert::issue(doc, CertKind::Member, Role::Writer, joiner, &invite);
        let certs = records_for(&m, &joiner, &[own]);
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].subject, invite.public().to_bytes());
        assert!(records_for(&m, &stranger, &[admitted_removed]).is_empty());
        // A removed node serves nobody, not even a member.
        assert_eq!(
            admit(&m, &removed, &member, 1, 1, Asked::Members),
            Admission::RecordsOnly(Why::ResponderRemoved)
        );
    }
}
