//! Certificates, key grants and rosters from peers: decoding untrusted bytes, and deriving roles
//! from any mix of validly signed certificates and revocations (the fuzzer picks kinds, roles, subjects and issuers from
//! a fixed set of keys, so signatures verify and the role derivation itself is exercised).
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdoc::core::access::{peer_of, Cert, CertKind, KeyGrant, Membership, Role};
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

    for op in data.chunks_exact(3) {
        let kind = match op[0] & 3 {
            0 => CertKind::Member,
            1 => CertKind::Invitation,
            _ => CertKind::Revocation,
        };
        let role = if op[0] & 4 == 0 { Role::Reader } else { Role::Writer };
        let issuer = &keys[usize::from(op[2]) % keys.len()];
        let cert = Cert::issue(doc, kind, role, public(op[1]), issuer);
        assert!(membership.add(cert).is_ok());
    }
    // The owner stays the owner, and nobody else ever is.
    for (i, key) in keys.iter().enumerate() {
        let role = membership.role_of(&peer_of(&key.public().to_bytes()).unwrap());
        if i == 0 {
            assert_eq!(role, Some(Role::Owner));
        } else {
            assert_ne!(role, Some(Role::Owner));
        }
    }
});
