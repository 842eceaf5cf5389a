//! Certificates, key grants and rosters from peers: decoding untrusted bytes, and deriving roles
//! from any mix of validly signed certificates and revocations (the fuzzer picks kinds, roles,
//! subjects and issuers from a fixed set of keys, so signatures verify and the role derivation
//! itself is exercised), client claims and cuts among them. Invariants: the owner stays the only
//! owner, the roles do not depend on the order certificates arrive in, and the owner can always
//! remove any member, its cut included. Display-name records decode only when signed, and are
//! taken only from members.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdoc::core::access::{
    peer_of, Cert, CertKind, KeyGrant, Membership, NameRecord, RemovalPlan, Role,
};
use peerdoc::core::doc::DocId;
use peerdoc::core::sync::members;
use yrs::encoding::read::Cursor;

fuzz_target!(|data: &[u8]| {
    let doc = DocId([3; 16]);
    let keys: Vec<libp2p_identity::ed25519::Keypair> = (1..=6u8)
        .map(|i| {
            let secret = libp2p_identity::ed25519::SecretKey::try_from_bytes([i; 32]).unwrap();
            libp2p_identity::ed25519::Keypair::from(secret)
        })
        .collect();
    let public = |i: u8| keys[usize::from(i) % keys.len()].public().to_bytes();
    let mut membership = Membership::new(doc, public(0));

    if let Ok(cert) = Cert::decode(data) {
        let _ = cert.verify();
        let _ = membership.add(cert);
    }
    if let Ok(grant) = KeyGrant::decode(data) {
        let _ = grant.verify(&public(0));
        let _ = grant.open(&keys[1]);
        let _ = membership.add_grant(grant);
    }
    let _ = members::decode(&mut Cursor::new(data));
    if let Ok(record) = NameRecord::decode(data) {
        // Only a member names itself: the owner's record is the only one a fresh document takes.
        let added = membership.add_name(record.clone(), u64::MAX);
        assert_eq!(added.is_ok(), record.member == public(0));
    }

    let mut certs = Vec::new();
    for op in data.chunks_exact(3) {
        let issuer = &keys[usize::from(op[2]) % keys.len()];
        let client = u64::from(op[1] % 8);
        let kind = match op[0] & 3 {
            0 => CertKind::Member,
            1 => CertKind::Invitation,
            2 => CertKind::Revocation,
            _ if op[0] & 8 == 0 => {
                certs.push(Cert::claim(doc, client, issuer));
                continue;
            }
            _ => {
                certs.push(Cert::cut(doc, client, u64::from(op[2]), issuer));
                continue;
            }
        };
        let role = if op[0] & 4 == 0 {
            Role::Reader
        } else {
            Role::Writer
        };
        certs.push(Cert::issue(doc, kind, role, public(op[1]), issuer));
    }
    let added = membership.add_all(certs.clone());
    assert_eq!(
        added.invalid, 0,
        "validly signed certificates are never invalid"
    );
    // The order certificates arrive in does not change the roles.
    let mut reversed = Membership::new(doc, public(0));
    reversed.add_all(certs.into_iter().rev());
    let roles = |m: &Membership| m.members();
    assert_eq!(roles(&membership), roles(&reversed));
    // The owner stays the owner, and nobody else ever is.
    for (i, key) in keys.iter().enumerate() {
        let role = membership.role_of(&peer_of(&key.public().to_bytes()).unwrap());
        if i == 0 {
            assert_eq!(role, Some(Role::Owner));
        } else {
            assert_ne!(role, Some(Role::Owner));
        }
    }
    // The owner can always remove any member, and the removal takes.
    let target = membership
        .member_keys()
        .find(|(_, role)| **role != Role::Owner)
        .map(|(key, _)| *key);
    if let Some(target) = target {
        let clocks = (0..8).map(|client| (client, client * 3)).collect();
        let plan =
            RemovalPlan::new(&membership, &keys[0], target, &[], &clocks).expect("a removal plan");
        let mut after = membership.clone();
        assert_eq!(after.add_all(plan.records).refused(), 0);
        assert_eq!(after.role_of_key(&target), None);
    }
});
