//! Member exchange: members of a document tell each other which members they know (peer ids
//! and addresses) and the membership certificates they hold, so any member, not only the
//! sharer, introduces the others and proves their roles. A requester sends its [`Roster`] in a
//! sealed `Members` request body; the responder answers with its own, sealed for
//! [`Purpose::Members`]. Lists and addresses are bounded; the codec is in PROTOCOL.md.

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;

use crate::core::access::{Cert, KeyGrant, CERT_LEN, GRANT_LEN};
use crate::core::addrs::{read_addrs, write_addrs};

use super::{malformed, PullError, RequestBody, SyncError, SyncRequest, SyncResponse};
use crate::core::envelope::{Keyring, Purpose};

/// Most members in one list.
pub const MAX_MEMBERS: usize = 64;
/// Most addresses per member.
pub const MAX_MEMBER_ADDRS: usize = 8;
/// Most certificates, and most key grants, in one roster.
pub const MAX_ROSTER_CERTS: usize = 1024;

/// What a member exchange carries: members to meet, certificates proving roles, and key
/// grants (new epochs' keys sealed to members).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    pub members: Vec<Member>,
    pub certs: Vec<Cert>,
    pub grants: Vec<KeyGrant>,
}

/// A member of a document as another member knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
}

/// Encodes a roster, keeping at most [`MAX_MEMBERS`] members with at most
/// [`MAX_MEMBER_ADDRS`] addresses of at most 256 bytes each, and [`MAX_ROSTER_CERTS`]
/// certificates.
pub fn encode(roster: &Roster, out: &mut Vec<u8>) {
    let members = &roster.members[..roster.members.len().min(MAX_MEMBERS)];
    out.write_var(members.len() as u32);
    for member in members {
        out.write_buf(member.peer.to_bytes());
        write_addrs(out, &member.addrs, MAX_MEMBER_ADDRS);
    }
    let certs = &roster.certs[..roster.certs.len().min(MAX_ROSTER_CERTS)];
    out.write_var(certs.len() as u32);
    for cert in certs {
        out.write_all(&cert.encode());
    }
    let grants = &roster.grants[..roster.grants.len().min(MAX_ROSTER_CERTS)];
    out.write_var(grants.len() as u32);
    for grant in grants {
        out.write_all(&grant.encode());
    }
}

/// Decodes a roster from untrusted bytes: every count is bounded before anything is
/// allocated. Certificates are decoded, not verified (the membership verifies them).
pub fn decode(r: &mut Cursor) -> Result<Roster, SyncError> {
    let members = decode_members(r)?;
    let count: u32 = r
        .read_var()
        .map_err(malformed("truncated certificate count"))?;
    if count as usize > MAX_ROSTER_CERTS {
        return Err(SyncError::Malformed("too many certificates"));
    }
    let mut certs = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let bytes = r
            .read_exact(CERT_LEN)
            .map_err(malformed("truncated certificate"))?;
        certs.push(Cert::decode(bytes).map_err(|_| SyncError::Malformed("bad certificate"))?);
    }
    let count: u32 = r.read_var().map_err(malformed("truncated grant count"))?;
    if count as usize > MAX_ROSTER_CERTS {
        return Err(SyncError::Malformed("too many key grants"));
    }
    let mut grants = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let bytes = r
            .read_exact(GRANT_LEN)
            .map_err(malformed("truncated key grant"))?;
        grants.push(KeyGrant::decode(bytes).map_err(|_| SyncError::Malformed("bad key grant"))?);
    }
    Ok(Roster {
        members,
        certs,
        grants,
    })
}

fn decode_members(r: &mut Cursor) -> Result<Vec<Member>, SyncError> {
    let count: u32 = r.read_var().map_err(malformed("truncated member count"))?;
    if count as usize > MAX_MEMBERS {
        return Err(SyncError::Malformed("too many members"));
    }
    let mut members = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let peer = PeerId::from_bytes(r.read_buf().map_err(malformed("truncated peer id"))?)
            .map_err(|_| SyncError::Malformed("bad peer id"))?;
        let addrs = read_addrs(r, MAX_MEMBER_ADDRS).map_err(SyncError::Malformed)?;
        members.push(Member { peer, addrs });
    }
    Ok(members)
}

/// Requester side: the request that sends our roster (members: ourselves first).
pub fn request(key: &Keyring, topic: &[u8; 32], mine: Roster) -> Vec<u8> {
    let body = RequestBody::Members(mine);
    SyncRequest {
        topic: *topic,
        sealed: key.seal(topic, Purpose::SyncRequest, &body.encode()),
    }
    .encode()
}

/// Responder side: our roster as a sealed response.
pub fn seal_response(key: &Keyring, topic: &[u8; 32], roster: &Roster) -> SyncResponse {
    let mut plain = Vec::new();
    encode(roster, &mut plain);
    SyncResponse::Members(key.seal(topic, Purpose::Members, &plain))
}

/// Requester side: the responder's roster from its response bytes.
pub fn open_response(key: &Keyring, topic: &[u8; 32], bytes: &[u8]) -> Result<Roster, PullError> {
    let sealed = match SyncResponse::decode(bytes)? {
        SyncResponse::Members(sealed) => sealed,
        SyncResponse::UnknownDoc => return Err(PullError::UnknownDoc),
        SyncResponse::BadRequest => return Err(PullError::Refused),
        SyncResponse::Chunk(_) | SyncResponse::TransferExpired => {
            return Err(SyncError::Malformed("not a members response").into())
        }
    };
    let plain = key
        .open(topic, Purpose::Members, &sealed)
        .map_err(SyncError::from)?;
    let mut r = Cursor::new(&plain);
    let members = decode(&mut r)?;
    if r.has_content() {
        return Err(SyncError::Malformed("trailing bytes after members").into());
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn member(ports: &[u16]) -> Member {
        Member {
            peer: PeerId::random(),
            addrs: ports
                .iter()
                .map(|p| format!("/ip4/192.0.2.1/tcp/{p}").parse().unwrap())
                .collect(),
        }
    }

    #[test]
    fn lists_round_trip_sealed_and_are_bounded() {
        let key = Keyring::test(4);
        let topic = [5; 32];
        let owner = libp2p_identity::ed25519::Keypair::generate();
        let cert = Cert::issue(
            crate::core::doc::DocId::random(),
            crate::core::access::CertKind::Member,
            crate::core::access::Role::Reader,
            [9; 32],
            &owner,
        );
        let roster = Roster {
            members: vec![member(&[1, 2]), member(&[])],
            certs: vec![cert.clone(), cert],
            grants: vec![KeyGrant::issue(
                crate::core::doc::DocId::random(),
                1,
                &crate::core::envelope::DocKey([3; 32]),
                libp2p_identity::ed25519::Keypair::generate()
                    .public()
                    .to_bytes(),
                &owner,
                [5; 32],
            )
            .unwrap()],
        };
        let response = seal_response(&key, &topic, &roster).encode();
        assert_eq!(open_response(&key, &topic, &response).unwrap(), roster);
        assert!(open_response(&Keyring::test(6), &topic, &response).is_err());

        let many = Roster {
            members: (0..100)
                .map(|_| member(&(1..20).collect::<Vec<_>>()))
                .collect(),
            certs: Vec::new(),
            grants: Vec::new(),
        };
        let mut bytes = Vec::new();
        encode(&many, &mut bytes);
        let back = decode(&mut Cursor::new(&bytes)).unwrap().members;
        assert_eq!(back.len(), MAX_MEMBERS);
        assert!(back.iter().all(|m| m.addrs.len() == MAX_MEMBER_ADDRS));
    }

    #[test]
    fn oversized_counts_are_refused_before_allocating() {
        // 100 members claimed, then nothing.
        assert!(decode(&mut Cursor::new(&[100])).is_err());
        let mut bytes = Vec::new();
        bytes.write_var(1u32);
        bytes.write_buf(PeerId::random().to_bytes());
        bytes.write_var(9u32); // one address too many
        assert!(decode(&mut Cursor::new(&bytes)).is_err());
        // No members, then more certificates than allowed.
        assert!(decode(&mut Cursor::new(&[0, 0xff, 0x0f])).is_err());
        assert!(decode(&mut Cursor::new(&[0, 0, 0xff, 0x0f])).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&mut Cursor::new(&raw));
        }
    }
}
