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
//! The removal also names a **cut** in the removed members' writing: for every Yjs client
//! they claimed, the clock up to which the owner holds its operations. What they wrote beyond
//! it is void everywhere: every replica deletes it (see [`Membership::voided`]).
//!
//! Members that lose their role only because their invitation was revoked (not through
//! `target`), and those kept explicitly, are certified again by the owner directly, with the
//! role they had. The plan is checked against a copy of the membership before it is returned:
//! a plan that would leave `target` a role is an error, never a silent success.

use std::collections::{BTreeSet, HashMap, HashSet};

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
    /// The cut: each removed member's claimed client and the clock its operations are void
    /// from (what the owner held of it).
    pub cut: Vec<(u64, u64)>,
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
    /// `clocks` is the owner's document state (the next clock of each Yjs client it holds):
    /// where the cut falls.
    pub fn new(
        membership: &Membership,
        owner: &ed25519::Keypair,
        target: KeyBytes,
        keep: &[KeyBytes],
        clocks: &HashMap<u64, u64>,
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
        let cut = cut_of(membership, target, &cascaded, clocks);
        records.extend(
            cut.iter()
                .map(|(client, clock)| Cert::cut(doc, *client, *clock, owner)),
        );
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
        if cut
            .iter()
            .any(|(client, clock)| after.voided().get(client).is_none_or(|from| from > clock))
        {
            return Err(RemovalError::DidNotTake(
                "the cut would not void what it names",
            ));
        }
        Ok(RemovalPlan {
            records,
            cascaded,
            recertified,
            invitations: open.len(),
            cut,
        })
    }
}

/// The cut of a removal: each client `target` and the `cascaded` members claimed, at the
/// owner's clock, but for clients the owner or a remaining writer claims too.
fn cut_of(
    membership: &Membership,
    target: KeyBytes,
    cascaded: &[(KeyBytes, Role)],
    clocks: &HashMap<u64, u64>,
) -> Vec<(u64, u64)> {
    let removed = |key: &KeyBytes| *key == target || cascaded.iter().any(|(k, _)| k == key);
    let mut theirs: BTreeSet<u64> = BTreeSet::new();
    let mut others: HashSet<u64> = HashSet::new();
    for cert in membership.certs().filter(|c| c.kind == CertKind::Claim) {
        let Some(client) = cert.client() else {
            continue;
        };
        if removed(&cert.issuer) {
            theirs.insert(client);
        } else if membership
            .role_of_key(&cert.issuer)
            .is_some_and(Role::may_write)
        {
            others.insert(client);
        }
    }
    theirs
        .into_iter()
        .filter(|client| !others.contains(client))
        .map(|client| (client, clocks.get(&client).copied().unwrap_or(0)))
        .collect()
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
    use std::collections::BTreeMap;

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
        let plan = RemovalPlan::new(&t.m, &t.owner, t.w, &[], &HashMap::new()).unwrap();
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
        let plan = RemovalPlan::new(&t.m, &t.owner, t.w, &[t.r], &HashMap::new()).unwrap();
        assert!(plan.cascaded.is_empty());
        let mut after = t.m.clone();
        after.add_all(plan.records);
        assert_eq!(after.role_of_key(&t.r), Some(Role::Reader));
        let (_, stranger, _) = node();
        assert!(matches!(
            RemovalPlan::new(&t.m, &t.owner, t.w, &[stranger], &HashMap::new()),
            Err(RemovalError::CannotKeep(_))
        ));
        assert_eq!(
            RemovalPlan::new(&t.m, &t.owner, t.m.owner(), &[], &HashMap::new()).unwrap_err(),
            RemovalError::Owner
        );
        let (someone, _, _) = node();
        assert_eq!(
            RemovalPlan::new(&t.m, &someone, t.x, &[], &HashMap::new()).unwrap_err(),
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
        let plan = RemovalPlan::new(&m, &t.owner, t.w, &[], &HashMap::new()).unwrap();
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
        let plan =
            RemovalPlan::new(&m, &t.owner, x_kp.public().to_bytes(), &[], &HashMap::new()).unwrap();
        let mut after = m.clone();
        assert_eq!(after.add_all(plan.records).refused(), 0);
        assert_eq!(after.role_of_key(&x_kp.public().to_bytes()), None);
    }

    #[test]
    fn a_removal_cuts_the_removed_members_clients_at_the_owners_clocks() {
        let t = team();
        let mut m = t.m.clone();
        let doc = m.doc();
        let w_kp = ed25519::Keypair::generate();
        let w = w_kp.public().to_bytes();
        m.add(Cert::issue(
            doc,
            CertKind::Member,
            Role::Writer,
            w,
            &t.owner,
        ))
        .unwrap();
        // W writes through two clients; the owner holds 5 operations of the first, none of
        // the second. A reader's claim is refused: readers write nothing.
        m.add_all([Cert::claim(doc, 7, &w_kp), Cert::claim(doc, 8, &w_kp)]);
        let (reader_kp, reader, _) = node();
        m.add(Cert::issue(
            doc,
            CertKind::Member,
            Role::Reader,
            reader,
            &t.owner,
        ))
        .unwrap();
        assert_eq!(
            m.add(Cert::claim(doc, 9, &reader_kp)),
            Err(AccessError::Unchained)
        );
        assert!(m.is_claimed(7) && !m.is_claimed(9));
        assert!(m.voided().is_empty());
        let clocks = HashMap::from([(7, 5), (3, 40)]);
        let plan = RemovalPlan::new(&m, &t.owner, w, &[], &clocks).unwrap();
        assert_eq!(plan.cut, vec![(7, 5), (8, 0)]);
        let mut after = m.clone();
        assert_eq!(after.add_all(plan.records.clone()).refused(), 0);
        assert_eq!(after.voided(), &BTreeMap::from([(7, 5), (8, 0)]));
        // Once removed, it claims nothing more (a client of someone else's, say).
        assert_eq!(
            after.add(Cert::claim(doc, 3, &w_kp)),
            Err(AccessError::Unchained)
        );
        // A node that learns the removal in any order voids the same.
        let mut other = Membership::new(doc, m.owner());
        let mut all: Vec<Cert> = after.chain().to_vec();
        all.reverse();
        other.add_all(all);
        assert_eq!(other.voided(), after.voided());
    }

    #[test]
    fn a_removed_members_claims_no_cut_names_are_void_from_the_start() {
        // A member that held the claim before the removal, where the owner never saw it.
        let t = team();
        let doc = t.m.doc();
        let w_kp = ed25519::Keypair::generate();
        let w = w_kp.public().to_bytes();
        let mut owner_view = t.m.clone();
        owner_view
            .add(Cert::issue(
                doc,
                CertKind::Member,
                Role::Writer,
                w,
                &t.owner,
            ))
            .unwrap();
        let mut member_view = owner_view.clone();
        member_view.add(Cert::claim(doc, 11, &w_kp)).unwrap();
        let plan = RemovalPlan::new(&owner_view, &t.owner, w, &[], &HashMap::new()).unwrap();
        assert!(plan.cut.is_empty());
        member_view.add_all(plan.records);
        assert_eq!(member_view.voided(), &BTreeMap::from([(11, 0)]));
        // And the claim does not travel on from there.
        assert!(member_view
            .chain()
            .iter()
            .all(|c| c.kind != CertKind::Claim));
    }

    #[test]
    fn claims_and_cuts_round_trip_and_refuse_a_second_encoding() {
        let t = team();
        let doc = t.m.doc();
        let cut = Cert::cut(doc, u64::MAX - 1, 1 << 40, &t.owner);
        assert!(cut.verify());
        let decoded = Cert::decode(&cut.encode()).unwrap();
        assert_eq!(decoded.client(), Some(u64::MAX - 1));
        assert_eq!(decoded.cut_clock(), Some(1 << 40));
        let mut bytes = Cert::claim(doc, 5, &t.owner).encode();
        bytes[19 + 20] = 1;
        assert!(Cert::decode(&bytes).is_err());
    }
}
