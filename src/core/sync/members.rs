//! Member exchange: members of a document tell each other which members they know (peer ids
//! and addresses) and the membership certificates they hold, so any member, not only the
//! sharer, introduces the others and proves their roles. A requester sends its [`Roster`] in a
//! sealed `Members` request body; the responder answers with its own, sealed for
//! [`Purpose::Members`]. Rosters travel whole, in pages ([`page`]): the owner's revocations
//! first, then each certificate after the one that lets its issuer grant it, so a receiver
//! never refuses a certificate for arriving before its issuer's. A peer that is not served
//! gets a `Records` answer instead: only the records that concern it
//! ([`crate::core::access::admission`]). Lists and addresses are bounded; the codec is in
//! PROTOCOL.md.

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;

use crate::core::access::name::MAX_RECORD_LEN;
use crate::core::access::{
    Cert, HoldRecord, KeyGrant, Membership, NameRecord, CERT_LEN, GRANT_LEN, HOLD_LEN,
};
use crate::core::addrs::{read_addrs, write_addrs};

use super::{malformed, PullError, RequestBody, SyncError, SyncRequest, SyncResponse};
use crate::core::envelope::{Keyring, Purpose};

/// Most members in one list.
pub const MAX_MEMBERS: usize = 64;
/// Most addresses per member.
pub const MAX_MEMBER_ADDRS: usize = 8;
/// Most certificates, and most key grants, in one roster page (about 350 KB, within a
/// response's [`super::MAX_RESPONSE_BYTES`]).
pub const ROSTER_PAGE: usize = 1024;
/// Most display names in one roster (page 0 only).
pub const MAX_NAMES: usize = 256;
/// Most hold records in one roster (page 0 only): holders, and those released.
pub const MAX_HOLDS: usize = 64;
/// Most pages of one roster: 131,072 certificates, more than a document's limits let exist.
pub const MAX_ROSTER_PAGES: u32 = 128;

/// What a member exchange carries: members to meet, certificates proving roles, and key
/// grants (new epochs' keys sealed to members); one page of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    pub members: Vec<Member>,
    pub certs: Vec<Cert>,
    pub grants: Vec<KeyGrant>,
    /// Members' signed display names (on page 0).
    pub names: Vec<NameRecord>,
    /// Which nodes hold the document's sealed data (on page 0).
    pub holds: Vec<HoldRecord>,
    /// This page's number, from 0.
    pub page: u32,
    /// How many pages the sender's roster has (0 is read as 1).
    pub pages: u32,
}

/// Page `page` of the roster of `membership`: the members to introduce and the display names
/// held (on page 0 only), the
/// certificates in chain order ([`Membership::chain`]), then the key grants, newest epoch
/// first, starting on the last page of certificates. A receiver adds a page's certificates
/// before its grants, so it never holds a new key without every removal it came with (or it
/// could serve a member it does not know was removed).
pub fn page(membership: &Membership, members: Vec<Member>, page: u32) -> Roster {
    let chain = membership.chain();
    let mut grants: Vec<&KeyGrant> = membership.grants().collect();
    grants.sort_by_key(|g| (std::cmp::Reverse(g.epoch), g.member));
    let cert_pages = chain.len().div_ceil(ROSTER_PAGE).max(1);
    let grant_pages = grants.len().div_ceil(ROSTER_PAGE).max(1);
    let pages = (cert_pages + grant_pages - 1).min(MAX_ROSTER_PAGES as usize);
    let slice = |len: usize, index: usize| {
        let from = (index * ROSTER_PAGE).min(len);
        from..(from + ROSTER_PAGE).min(len)
    };
    let page_index = page as usize;
    let grants_from = cert_pages - 1;
    let grants: Vec<KeyGrant> = match page_index.checked_sub(grants_from) {
        Some(index) => grants[slice(grants.len(), index)]
            .iter()
            .map(|g| (*g).clone())
            .collect(),
        None => Vec::new(),
    };
    Roster {
        members: if page == 0 { members } else { Vec::new() },
        certs: chain[slice(chain.len(), page_index)].to_vec(),
        grants,
        names: if page == 0 {
            membership.names().take(MAX_NAMES).cloned().collect()
        } else {
            Vec::new()
        },
        holds: if page == 0 {
            membership
                .holds_to_send()
                .into_iter()
                .take(MAX_HOLDS)
                .cloned()
                .collect()
        } else {
            Vec::new()
        },
        page,
        pages: pages as u32,
    }
}

/// A member of a document as another member knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
}

/// Encodes a roster page, keeping at most [`MAX_MEMBERS`] members with at most
/// [`MAX_MEMBER_ADDRS`] addresses of at most 256 bytes each, and [`ROSTER_PAGE`]
/// certificates and key grants.
pub fn encode(roster: &Roster, out: &mut Vec<u8>) {
    let members = &roster.members[..roster.members.len().min(MAX_MEMBERS)];
    out.write_var(members.len() as u32);
    for member in members {
        out.write_buf(member.peer.to_bytes());
        write_addrs(out, &member.addrs, MAX_MEMBER_ADDRS);
    }
    let certs = &roster.certs[..roster.certs.len().min(ROSTER_PAGE)];
    out.write_var(certs.len() as u32);
    for cert in certs {
        out.write_all(&cert.encode());
    }
    let grants = &roster.grants[..roster.grants.len().min(ROSTER_PAGE)];
    out.write_var(grants.len() as u32);
    for grant in grants {
        out.write_all(&grant.encode());
    }
    // A page past the sender's own last one (asking for the receiver's) counts as a page.
    let page = roster.page.min(MAX_ROSTER_PAGES - 1);
    out.write_var(page);
    out.write_var(roster.pages.max(page + 1).min(MAX_ROSTER_PAGES));
    let names = &roster.names[..roster.names.len().min(MAX_NAMES)];
    out.write_var(names.len() as u32);
    for name in names {
        out.write_buf(name.encode());
    }
    let holds = &roster.holds[..roster.holds.len().min(MAX_HOLDS)];
    out.write_var(holds.len() as u32);
    for hold in holds {
        out.write_all(&hold.encode());
    }
}

/// Decodes a roster from untrusted bytes: every count is bounded before anything is
/// allocated. Certificates are decoded, not verified (the membership verifies them).
pub fn decode(r: &mut Cursor) -> Result<Roster, SyncError> {
    let members = decode_members(r)?;
    let count: u32 = r
        .read_var()
        .map_err(malformed("truncated certificate count"))?;
    if count as usize > ROSTER_PAGE {
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
    if count as usize > ROSTER_PAGE {
        return Err(SyncError::Malformed("too many key grants"));
    }
    let mut grants = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let bytes = r
            .read_exact(GRANT_LEN)
            .map_err(malformed("truncated key grant"))?;
        grants.push(KeyGrant::decode(bytes).map_err(|_| SyncError::Malformed("bad key grant"))?);
    }
    let page: u32 = r.read_var().map_err(malformed("truncated page"))?;
    let pages: u32 = r.read_var().map_err(malformed("truncated page count"))?;
    if pages == 0 || pages > MAX_ROSTER_PAGES || page >= pages {
        return Err(SyncError::Malformed("bad roster page"));
    }
    let count: u32 = r.read_var().map_err(malformed("truncated name count"))?;
    if count as usize > MAX_NAMES {
        return Err(SyncError::Malformed("too many names"));
    }
    let mut names = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let bytes = r.read_buf().map_err(malformed("truncated name record"))?;
        if bytes.len() > MAX_RECORD_LEN {
            return Err(SyncError::Malformed("name record too long"));
        }
        names.push(NameRecord::decode(bytes).map_err(|_| SyncError::Malformed("bad name record"))?);
    }
    let count: u32 = r.read_var().map_err(malformed("truncated hold count"))?;
    if count as usize > MAX_HOLDS {
        return Err(SyncError::Malformed("too many hold records"));
    }
    let mut holds = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let bytes = r
            .read_exact(HOLD_LEN)
            .map_err(malformed("truncated hold record"))?;
        holds.push(HoldRecord::decode(bytes).map_err(|_| SyncError::Malformed("bad hold record"))?);
    }
    Ok(Roster {
        members,
        certs,
        grants,
        names,
        holds,
        page,
        pages,
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
    SyncResponse::Members(seal_roster(key, topic, roster))
}

/// Responder side: only the records that concern a requester that is not served (see
/// [`crate::core::access::admission`]), as a sealed `Records` response.
pub fn seal_records(key: &Keyring, topic: &[u8; 32], certs: Vec<Cert>) -> SyncResponse {
    let roster = Roster {
        certs,
        ..Roster::default()
    };
    SyncResponse::Records(seal_roster(key, topic, &roster))
}

fn seal_roster(key: &Keyring, topic: &[u8; 32], roster: &Roster) -> Vec<u8> {
    let mut plain = Vec::new();
    encode(roster, &mut plain);
    key.seal(topic, Purpose::Members, &plain)
}

/// Opens a sealed roster (a `Members` or `Records` response's payload).
pub fn open_roster(key: &Keyring, topic: &[u8; 32], sealed: &[u8]) -> Result<Roster, SyncError> {
    let plain = key.open(topic, Purpose::Members, sealed)?;
    let mut r = Cursor::new(&plain);
    let roster = decode(&mut r)?;
    if r.has_content() {
        return Err(SyncError::Malformed("trailing bytes after members"));
    }
    Ok(roster)
}

/// Requester side: the responder's roster from its response bytes. A `Records` answer (we are
/// not served) is [`PullError::RecordsOnly`] with the records it carries.
pub fn open_response(key: &Keyring, topic: &[u8; 32], bytes: &[u8]) -> Result<Roster, PullError> {
    match SyncResponse::decode(bytes)? {
        SyncResponse::Members(sealed) => Ok(open_roster(key, topic, &sealed)?),
        SyncResponse::Records(sealed) => Err(PullError::RecordsOnly(Box::new(open_roster(
            key, topic, &sealed,
        )?))),
        SyncResponse::UnknownDoc => Err(PullError::UnknownDoc),
        SyncResponse::BadRequest => Err(PullError::Refused),
        SyncResponse::Chunk(_) | SyncResponse::TransferExpired => {
            Err(SyncError::Malformed("not a members response").into())
        }
    }
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
            names: vec![NameRecord::sign("Ana", 7, &owner).unwrap()],
            holds: vec![HoldRecord::sign(
                crate::core::doc::DocId::random(),
                [8; 32],
                9,
                true,
                &owner,
            )],
            page: 2,
            pages: 3,
        };
        let response = seal_response(&key, &topic, &roster).encode();
        assert_eq!(open_response(&key, &topic, &response).unwrap(), roster);
        assert!(open_response(&Keyring::test(6), &topic, &response).is_err());

        let many = Roster {
            members: (0..100)
                .map(|_| member(&(1..20).collect::<Vec<_>>()))
                .collect(),
            ..Roster::default()
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
