use super::super::tests::node;
use super::*;
use crate::core::access::{name::MAX_FUTURE_MS, NameError};
use libp2p_identity::ed25519;

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
    // Alone, the member certificate does not chain to the owner and is not stored; in a
    // batch, order does not matter.
    assert_eq!(m.add(admitted.clone()), Err(AccessError::Unchained));
    assert_eq!(m.role_of(&writer_peer), None);
    let added = m.add_all([admitted.clone(), invitation]);
    assert_eq!((added.new_count(), added.refused()), (2, 0));
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
    assert_eq!(
        m.add(Cert::issue(
            doc,
            CertKind::Member,
            Role::Writer,
            fourth,
            &reader_kp_forged,
        )),
        Err(AccessError::Unchained)
    );
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
    // Self-issued writer certificate and an invitation of its own: both refused.
    let sock = ed25519::Keypair::generate();
    let (_, puppet, puppet_peer) = node();
    let added = m.add_all([
        Cert::issue(doc, CertKind::Member, Role::Writer, reader, &reader_kp),
        Cert::issue(
            doc,
            CertKind::Invitation,
            Role::Writer,
            sock.public().to_bytes(),
            &reader_kp,
        ),
        Cert::issue(doc, CertKind::Member, Role::Writer, puppet, &sock),
    ]);
    assert_eq!((added.new_count(), added.unchained), (0, 3));
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

    // Someone else's "revocation" is refused.
    assert_eq!(
        m.add(Cert::issue(
            doc,
            CertKind::Revocation,
            Role::Reader,
            bad,
            &bad_kp,
        )),
        Err(AccessError::Unchained)
    );
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
fn members_name_themselves_and_strangers_cannot() {
    let doc = DocId::random();
    let (owner_kp, owner, _) = node();
    let mut m = Membership::new(doc, owner);
    let (writer_kp, writer, _) = node();
    m.add(Cert::issue(
        doc,
        CertKind::Member,
        Role::Writer,
        writer,
        &owner_kp,
    ))
    .unwrap();
    let now = 1_800_000_000_000;

    let named = NameRecord::sign("Wren", now, &writer_kp).unwrap();
    assert_eq!(m.add_name(named.clone(), now), Ok(true));
    assert_eq!(m.add_name(named, now), Ok(false), "a duplicate is not new");
    assert_eq!(m.name_of(&writer), Some("Wren"));
    // An older record does not undo a newer one, whatever order they arrive in.
    let older = NameRecord::sign("Old name", now - 1, &writer_kp).unwrap();
    assert_eq!(m.add_name(older, now), Ok(false));
    assert_eq!(m.name_of(&writer), Some("Wren"));

    // A stranger's record is refused, and so is one dated days ahead.
    let (stranger_kp, stranger, _) = node();
    let stray = NameRecord::sign("Owner", now, &stranger_kp).unwrap();
    assert_eq!(m.add_name(stray, now), Err(NameError::NotMember));
    assert_eq!(m.name_of(&stranger), None);
    let ahead = NameRecord::sign("Later", now + 2 * MAX_FUTURE_MS, &owner_kp).unwrap();
    assert_eq!(m.add_name(ahead, now), Err(NameError::FromTheFuture));

    // A removed member's name stays, for what it wrote before.
    m.add(Cert::issue(
        doc,
        CertKind::Revocation,
        Role::Reader,
        writer,
        &owner_kp,
    ))
    .unwrap();
    assert_eq!(m.name_of(&writer), Some("Wren"));
}

#[test]
fn a_client_is_attributed_to_the_writer_that_claimed_it() {
    let doc = DocId::random();
    let (owner_kp, owner, _) = node();
    let mut m = Membership::new(doc, owner);
    let (writer_kp, writer, _) = node();
    let (reader_kp, reader, _) = node();
    m.add(Cert::issue(
        doc,
        CertKind::Member,
        Role::Writer,
        writer,
        &owner_kp,
    ))
    .unwrap();
    m.add(Cert::issue(
        doc,
        CertKind::Member,
        Role::Reader,
        reader,
        &owner_kp,
    ))
    .unwrap();
    m.add_all([
        Cert::claim(doc, 7, &writer_kp),
        Cert::claim(doc, 1, &owner_kp),
    ]);
    // A reader's claim is not stored: readers write nothing.
    assert!(m.add(Cert::claim(doc, 9, &reader_kp)).is_err());
    assert_eq!(m.claimant(7), Some(writer));
    assert_eq!(m.claimant(1), Some(owner));
    assert_eq!(m.claimant(9), None);
    assert_eq!(m.claimant(8), None);
    // Removed, it is still who wrote what it wrote.
    m.add(Cert::issue(
        doc,
        CertKind::Revocation,
        Role::Reader,
        writer,
        &owner_kp,
    ))
    .unwrap();
    assert_eq!(m.claimant(7), Some(writer));
}
