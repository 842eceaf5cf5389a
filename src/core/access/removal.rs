//! [`RemovalPlan`]: what the owner signs to remove a member, decided once, purely, from the
//! membership as it stands.
//!
//! Removing `target` revokes:
//! - `target` itself;
//! - every member whose only admission passed through `target` (admitted by it, or by an
//!   invitation it issued), unless the owner keeps it explicitly (`keep`): those it set up go
//!   with it;
//! - every invitation still open, whoever issued it: a ticket is a bearer capability that
//!   `target` may have seen, and it would let `target` back in under a fresh key.
//!
//! Members that lose their role only because their invitation was revoked (not through
//! `target`), and those kept explicitly, are certified again by the owner directly, with the
//! role they had. The plan is checked against a copy of the membership before it is returned:
//! a plan that would leave `target` a role is an error, never a silent success.

use libp2p_identity::ed25519;

use super::{AccessError, Cert, CertKind, KeyBytes, Membership, Role};

/// The owner-signed records that carry out one removal, and whom they affect.
#[derive(Debug, Clone)]
pub struct RemovalPlan {
    /// Revocations (first) and re-certifications, signed by the owner, in the order to add.
    pub records: Vec<Cert>,
    /// Members removed besides the target, because their admission passed through it.
    pub cascaded: Vec<(KeyBytes, Role)>,
    /// Members certified again by the owner (their invitation was revoked, or kept).
    pub recertified: Vec<(KeyBytes, Role)>,
    /// Invitations revoked (open tickets that no longer admit anyone).
    pub invitations: usize,
}

/// Why a removal cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemovalError {
    #[error("only the owner removes members")]
    NotOwner,
    #[error("the owner cannot be removed")]
    Owner,
    #[error("not a member of this document")]
    NotAMember,
    #[error("cannot keep {0}: it is not a member whose admission passed through the removed one")]
    CannotKeep(String),
    #[error("the removal did not take: {0}")]
    DidNotTake(&'static str),
}

impl RemovalPlan {
    /// Plans removing `target`, signed with `owner` (the document owner's key). `keep` names
    /// members admitted through `target` that stay (certified by the owner directly).
    pub fn new(
        membership: &Membership,
        owner: &ed25519::Keypair,
        target: KeyBytes,
        keep: &[KeyBytes],
    ) -> Result<RemovalPlan, RemovalError> {
        if owner.public().to_bytes() != membership.owner() {
            return Err(RemovalError::NotOwner);
        }
        match membership.role_of_key(&target) {
            None => return Err(RemovalError::NotAMember),
            Some(Role::Owner) => return Err(RemovalError::Owner),
            Some(_) => {}
        }
        let doc = membership.doc();
        let sign = |kind, role, subject| Cert::issue(doc, kind, role, subject, owner);
        let revoke = |subject| sign(CertKind::Revocation, Role::Reader, subject);
        let before: Vec<(KeyBytes, Role)> = membership
            .member_keys()
            .filter(|(key, role)| **key != target && **role != Role::Owner)
            .map(|(key, role)| (*key, *role))
            .collect();

        // Who falls with the target alone: their admission passed through it.
        let mut without_target = membership.clone();
        add_checked(&mut without_target, revoke(target))?;
        let mut cascaded = Vec::new();
        let mut kept = Vec::new();
        for (key, role) in &before {
            if without_target.role_of_key(key).is_none() {
                if keep.contains(key) {
                    kept.push((*key, *role));
                } else {
                    cascaded.push((*key, *role));
                }
            }
        }
        for key in keep {
            if !kept.iter().any(|(k, _)| k == key) {
                let name = super::peer_of(key).map_or_else(|| hex::encode(key), |p| p.to_string());
                return Err(RemovalError::CannotKeep(name));
            }
        }

        let mut records = vec![revoke(target)];
        records.extend(cascaded.iter().map(|(key, _)| revoke(*key)));
        let mut open: Vec<KeyBytes> = membership.invitations().map(|(key, _)| *key).collect();
        open.sort();
        records.extend(open.iter().map(|key| revoke(*key)));
        let mut after = membership.clone();
        for record in &records {
            add_checked(&mut after, record.clone())?;
        }
        // Everyone else keeps the role they had, now certified by the owner.
        let mut recertified = Vec::new();
        for (key, role) in &before {
            if cascaded.iter().any(|(k, _)| k == key) {
                continue;
            }
            if after.role_of_key(key) != Some(*role) {
                let cert = sign(CertKind::Member, *role, *key);
                add_checked(&mut after, cert.clone())?;
                records.push(cert);
                recertified.push((*key, *role));
            }
        }
        if after.role_of_key(&target).is_some() || !after.is_revoked_key(&target) {
            return Err(RemovalError::DidNotTake(
                "the removed member would keep its role",
            ));
        }
        if cascaded
            .iter()
            .any(|(key, _)| after.role_of_key(key).is_some())
        {
            return Err(RemovalError::DidNotTake(
                "a member admitted through the removed one would keep its role",
            ));
        }
        if after.invitations().next().is_some() {
            return Err(RemovalError::DidNotTake("an invitation would stay open"));
        }
        Ok(RemovalPlan {
            records,
            cascaded,
            recertified,
            invitations: open.len(),
        })
    }
}

fn add_checked(membership: &mut Membership, cert: Cert) -> Result<(), RemovalError> {
    match membership.add(cert) {
        Ok(_) => Ok(()),
        Err(AccessError::IssuerFull) => Err(RemovalError::DidNotTake(
            "the owner has issued as many certificates as it may",
        )),
        Err(_) => Err(RemovalError::DidNotTake(
            "a record the owner signed was refused",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::node;
    use super::*;
    use crate::core::doc::DocId;

    /// Owner, a writer W admitted by ticket, a reader R that W admitted, a writer X admitted by
    /// the owner's ticket, and an open read-only ticket.
    struct Team {
        owner: ed25519::Keypair,
        m: Membership,
        w: KeyBytes,
        r: KeyBytes,
        x: KeyBytes,
        open_ticket: ed25519::Keypair,
    }

    fn team() -> Team {
        let doc = DocId::random();
        let (owner, owner_key, _) = node();
        let mut m = Membership::new(doc, owner_key);
        let invite = ed25519::Keypair::generate();
        let (w_kp, w, _) = node();
        let (_, r, _) = node();
        let (_, x, _) = node();
        let open_ticket = ed25519::Keypair::generate();
        let certs = vec![
            Cert::issue(doc, CertKind::Member, Role::Writer, w, &invite),
            Cert::issue(
                doc,
                CertKind::Invitation,
                Role::Writer,
                invite.public().to_bytes(),
                &owner,
            ),
            Cert::issue(doc, CertKind::Member, Role::Reader, r, &w_kp),
            Cert::issue(doc, CertKind::Member, Role::Writer, x, &invite),
            Cert::issue(
                doc,
                CertKind::Invitation,
                Role::Reader,
                open_ticket.public().to_bytes(),
                &owner,
            ),
        ];
        let added = m.add_all(certs);
        assert_eq!(added.new_count(), 5, "{added:?}");
        Team {
            owner,
            m,
            w,
            r,
            x,
            open_ticket,
        }
    }

    #[test]
    fn a_removal_takes_what_the_member_set_up_and_closes_every_open_ticket() {
        let t = team();
        let plan = RemovalPlan::new(&t.m, &t.owner, t.w, &[]).unwrap();
        assert_eq!(plan.cascaded, vec![(t.r, Role::Reader)]);
        assert_eq!(plan.recertified, vec![(t.x, Role::Writer)]);
        assert_eq!(plan.invitations, 2);
        let mut after = t.m.clone();
        assert_eq!(after.add_all(plan.records).refused(), 0);
        assert_eq!(after.role_of_key(&t.w), None);
        assert_eq!(after.role_of_key(&t.r), None);
        assert!(after.is_revoked_key(&t.r));
        assert_eq!(after.role_of_key(&t.x), Some(Role::Writer));
        // The read-only ticket it may have seen admits nobody now.
        let (_, fresh, _) = node();
        let again = Cert::issue(
            t.m.doc(),
            CertKind::Member,
            Role::Reader,
            fresh,
            &t.open_ticket,
        );
        assert_eq!(after.add(again), Err(AccessError::Unchained));
    }

    #[test]
    fn keep_re_admits_a_member_explicitly_and_refuses_a_stranger() {
        let t = team();
        let plan = RemovalPlan::new(&t.m, &t.owner, t.w, &[t.r]).unwrap();
        assert!(plan.cascaded.is_empty());
        let mut after = t.m.clone();
        after.add_all(plan.records);
        assert_eq!(after.role_of_key(&t.r), Some(Role::Reader));
        let (_, stranger, _) = node();
        assert!(matches!(
            RemovalPlan::new(&t.m, &t.owner, t.w, &[stranger]),
            Err(RemovalError::CannotKeep(_))
        ));
        assert_eq!(
            RemovalPlan::new(&t.m, &t.owner, t.m.owner(), &[]).unwrap_err(),
            RemovalError::Owner
        );
        let (someone, _, _) = node();
        assert_eq!(
            RemovalPlan::new(&t.m, &someone, t.x, &[]).unwrap_err(),
            RemovalError::NotOwner
        );
    }

    #[test]
    fn an_invitation_for_the_owners_own_key_counts_for_nothing() {
        // The owner's key is beyond revocation: as an invitation it could never be closed
        // (found by the certs fuzz target).
        let t = team();
        let mut m = t.m.clone();
        let doc = m.doc();
        m.add(Cert::issue(
            doc,
            CertKind::Invitation,
            Role::Writer,
            m.owner(),
            &t.owner,
        ))
        .unwrap();
        assert!(m.invitations().all(|(key, _)| *key != m.owner()));
        let plan = RemovalPlan::new(&m, &t.owner, t.w, &[]).unwrap();
        let mut after = m.clone();
        assert_eq!(after.add_all(plan.records).refused(), 0);
        assert!(after.invitations().next().is_none());
    }

    #[test]
    fn a_removal_takes_however_many_certificates_members_issued() {
        // A writer fills its quota (and the junk of strangers is refused outright): the
        // owner's revocation still takes.
        let t = team();
        let mut m = t.m.clone();
        let doc = m.doc();
        let x_kp = ed25519::Keypair::generate();
        m.add(Cert::issue(
            doc,
            CertKind::Member,
            Role::Writer,
            x_kp.public().to_bytes(),
            &t.owner,
        ))
        .unwrap();
        let spam: Vec<Cert> = (0..super::super::MAX_CERTS_PER_ISSUER + 10)
            .map(|_| Cert::issue(doc, CertKind::Invitation, Role::Reader, node().1, &x_kp))
            .collect();
        let added = m.add_all(spam);
        assert_eq!(added.new_count(), super::super::MAX_CERTS_PER_ISSUER);
        assert_eq!(added.over_limit, 10);
        let strangers: Vec<Cert> = (0..50)
            .map(|_| Cert::issue(doc, CertKind::Member, Role::Writer, node().1, &node().0))
            .collect();
        assert_eq!(m.add_all(strangers).unchained, 50);
        let plan = RemovalPlan::new(&m, &t.owner, x_kp.public().to_bytes(), &[]).unwrap();
        let mut after = m.clone();
        assert_eq!(after.add_all(plan.records).refused(), 0);
        assert_eq!(after.role_of_key(&x_kp.public().to_bytes()), None);
    }
}
