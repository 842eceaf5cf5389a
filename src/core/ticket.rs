//! Share tickets: the copy-pasteable string that lets another node join a document
//! (`peerdoc1` + base58 of the document id, key, capability, name, the sharer's peer id and
//! addresses, the owner's key and an invitation, with a checksum). The invitation is a fresh
//! Ed25519 key the sharer certified as a writer or reader invitation: the joiner signs its own
//! member certificate with it (see [`crate::core::access`]). See PROTOCOL.md, "Tickets". Peer ids and addresses are the
//! libp2p value types (`libp2p-identity`, `multiaddr`): plain data, no networking.

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;

use libp2p_identity::{ed25519, PublicKey};

use crate::core::access::{key_of, Cert, CertKind, KeyBytes, Role};
use crate::core::addrs::{read_addrs, write_addrs};
use crate::core::doc::{DocId, MAX_NAME_LEN};
use crate::core::envelope::{DocKey, Keyring};

/// Text every ticket starts with; the digit is the version of this outer encoding (base58 with a
/// checksum).
pub const TICKET_PREFIX: &str = "peerdoc1";
/// Version of the ticket's content (1: before roles, no longer accepted; 2: before holders,
/// still read).
const TICKET_VERSION: u8 = 3;
/// The oldest content version still read.
const OLDEST_VERSION: u8 = 2;
const TICKET_CHECKSUM_LEN: usize = 4;
/// Limits that keep tickets short and decoding bounded.
pub const MAX_TICKET_ADDRS: usize = 8;
/// Holders a ticket names at most, and addresses per holder.
pub const MAX_TICKET_HOLDERS: usize = 4;
pub const MAX_HOLDER_ADDRS: usize = 4;
const MAX_TICKET_LEN: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TicketError {
    #[error(
        "not a peerdoc ticket: it must start with \"{TICKET_PREFIX}\"; copy the whole ticket again"
    )]
    Prefix,
    #[error("ticket is damaged ({0}); copy the whole ticket again")]
    Damaged(&'static str),
    #[error("ticket was made by a newer peerdoc (format {0}); upgrade peerdoc to join it")]
    Version(u8),
    #[error("ticket was made by an older peerdoc, before read-only sharing; ask for a new ticket")]
    Old,
}

/// Capability a ticket grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Capability {
    ReadWrite = 0,
    ReadOnly = 1,
}

impl Capability {
    /// The role a member admitted with this ticket holds.
    pub fn role(self) -> Role {
        match self {
            Capability::ReadWrite => Role::Writer,
            Capability::ReadOnly => Role::Reader,
        }
    }
}

/// Everything a peer needs to join a document: see PROTOCOL.md, "Tickets".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub doc: DocId,
    /// The key epoch of `key` (the newest when the ticket was made).
    pub epoch: u32,
    pub key: DocKey,
    pub capability: Capability,
    pub name: String,
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
    /// The document owner's key: the root of its membership.
    pub owner: KeyBytes,
    /// The invitation key's secret (an Ed25519 seed).
    pub invitation: [u8; 32],
    /// The sharer's signature of the invitation certificate.
    pub invitation_signature: [u8; 64],
    /// Nodes that keep the document sealed for its members, and where they listen: a joiner
    /// gets the document from them when no member is online.
    pub holders: Vec<(PeerId, Vec<Multiaddr>)>,
}

impl Ticket {
    /// A ticket for `doc`, with a fresh invitation signed by `sharer`.
    #[allow(clippy::too_many_arguments)]
    pub fn issue(
        doc: DocId,
        epoch: u32,
        key: DocKey,
        capability: Capability,
        name: String,
        sharer: &ed25519::Keypair,
        addrs: Vec<Multiaddr>,
        owner: KeyBytes,
    ) -> (Ticket, Cert) {
        let invitation = ed25519::SecretKey::generate();
        let seed: [u8; 32] = invitation.as_ref().try_into().unwrap_or([0; 32]);
        let invitation_key = ed25519::Keypair::from(invitation);
        let cert = Cert::issue(
            doc,
            CertKind::Invitation,
            capability.role(),
            invitation_key.public().to_bytes(),
            sharer,
        );
        let ticket = Ticket {
            doc,
            epoch,
            key,
            capability,
            name,
            peer: PublicKey::from(sharer.public()).to_peer_id(),
            addrs,
            owner,
            invitation: seed,
            invitation_signature: cert.signature,
            holders: Vec::new(),
        };
        (ticket, cert)
    }

    /// The ticket's key as a keyring (its epoch's key only).
    pub fn keyring(&self) -> Keyring {
        Keyring::new(self.epoch, self.key.clone())
    }

    /// The invitation key.
    pub fn invitation_key(&self) -> Result<ed25519::Keypair, TicketError> {
        let mut seed = self.invitation;
        ed25519::SecretKey::try_from_bytes(&mut seed)
            .map(ed25519::Keypair::from)
            .map_err(|_| TicketError::Damaged("bad invitation"))
    }

    /// The invitation certificate the sharer signed, checked.
    pub fn invitation_cert(&self) -> Result<Cert, TicketError> {
        let cert = Cert {
            doc: self.doc,
            kind: CertKind::Invitation,
            role: self.capability.role(),
            subject: self.invitation_key()?.public().to_bytes(),
            issuer: key_of(&self.peer).map_err(|_| TicketError::Damaged("bad sharer id"))?,
            signature: self.invitation_signature,
        };
        if !cert.verify() {
            return Err(TicketError::Damaged("invitation signature does not verify"));
        }
        Ok(cert)
    }

    /// The member certificate a joining node signs for itself with the invitation key.
    pub fn admit(&self, member: KeyBytes) -> Result<Cert, TicketError> {
        Ok(Cert::issue(
            self.doc,
            CertKind::Member,
            self.capability.role(),
            member,
            &self.invitation_key()?,
        ))
    }
}

impl Ticket {
    /// `peerdoc1` + base58(body | blake3(body)[..4]).
    pub fn encode(&self) -> String {
        let mut body: Vec<u8> = Vec::new();
        body.write_u8(TICKET_VERSION);
        body.write_u8(self.capability as u8);
        body.write_all(&self.doc.0);
        body.write_all(&self.epoch.to_be_bytes());
        body.write_all(&self.key.0);
        body.write_string(truncate_utf8(&self.name, MAX_NAME_LEN));
        body.write_buf(self.peer.to_bytes());
        write_addrs(&mut body, &self.addrs, MAX_TICKET_ADDRS);
        body.write_all(&self.owner);
        body.write_all(&self.invitation);
        body.write_all(&self.invitation_signature);
        let holders = &self.holders[..self.holders.len().min(MAX_TICKET_HOLDERS)];
        body.write_var(holders.len() as u32);
        for (peer, addrs) in holders {
            body.write_buf(peer.to_bytes());
            write_addrs(&mut body, addrs, MAX_HOLDER_ADDRS);
        }
        let checksum = blake3::hash(&body);
        body.write_all(&checksum.as_bytes()[..TICKET_CHECKSUM_LEN]);
        format!("{TICKET_PREFIX}{}", bs58::encode(body).into_string())
    }

    pub fn decode(text: &str) -> Result<Ticket, TicketError> {
        let text = text.trim();
        let encoded = text
            .strip_prefix(TICKET_PREFIX)
            .ok_or(TicketError::Prefix)?;
        if encoded.len() > MAX_TICKET_LEN {
            return Err(TicketError::Damaged("too long"));
        }
        let bytes = bs58::decode(encoded)
            .into_vec()
            .map_err(|_| TicketError::Damaged("invalid characters"))?;
        if bytes.len() < 1 + TICKET_CHECKSUM_LEN {
            return Err(TicketError::Damaged("too short"));
        }
        let (body, checksum) = bytes.split_at(bytes.len() - TICKET_CHECKSUM_LEN);
        if blake3::hash(body).as_bytes()[..TICKET_CHECKSUM_LEN] != *checksum {
            return Err(TicketError::Damaged("checksum mismatch"));
        }
        let mut r = Cursor::new(body);
        let truncated = |_| TicketError::Damaged("truncated");
        let version = r.read_u8().map_err(truncated)?;
        if version < OLDEST_VERSION {
            return Err(TicketError::Old);
        }
        if version > TICKET_VERSION {
            return Err(TicketError::Version(version));
        }
        let capability = match r.read_u8().map_err(truncated)? {
            0 => Capability::ReadWrite,
            1 => Capability::ReadOnly,
            _ => return Err(TicketError::Damaged("unknown capability")),
        };
        let doc = DocId(
            r.read_exact(16)
                .map_err(truncated)?
                .try_into()
                .expect("16 bytes"),
        );
        let epoch = u32::from_be_bytes(
            r.read_exact(4)
                .map_err(truncated)?
                .try_into()
                .expect("4 bytes"),
        );
        let key = DocKey(
            r.read_exact(32)
                .map_err(truncated)?
                .try_into()
                .expect("32 bytes"),
        );
        let name = r
            .read_string()
            .map_err(|_| TicketError::Damaged("bad name"))?;
        if name.len() > MAX_NAME_LEN {
            return Err(TicketError::Damaged("name too long"));
        }
        let name = name.to_string();
        let peer = PeerId::from_bytes(r.read_buf().map_err(truncated)?)
            .map_err(|_| TicketError::Damaged("bad peer id"))?;
        let addrs = read_addrs(&mut r, MAX_TICKET_ADDRS).map_err(TicketError::Damaged)?;
        let mut fixed = |n: usize| r.read_exact(n).map(<[u8]>::to_vec).map_err(truncated);
        let owner = fixed(32)?
            .try_into()
            .map_err(|_| TicketError::Damaged("owner"))?;
        let invitation = fixed(32)?
            .try_into()
            .map_err(|_| TicketError::Damaged("invitation"))?;
        let invitation_signature = fixed(64)?
            .try_into()
            .map_err(|_| TicketError::Damaged("invitation"))?;
        let mut holders = Vec::new();
        if version >= 3 {
            let count: u32 = r.read_var().map_err(truncated)?;
            if count as usize > MAX_TICKET_HOLDERS {
                return Err(TicketError::Damaged("too many holders"));
            }
            for _ in 0..count {
                let peer = PeerId::from_bytes(r.read_buf().map_err(truncated)?)
                    .map_err(|_| TicketError::Damaged("bad holder id"))?;
                let addrs = read_addrs(&mut r, MAX_HOLDER_ADDRS).map_err(TicketError::Damaged)?;
                holders.push((peer, addrs));
            }
        }
        if r.has_content() {
            return Err(TicketError::Damaged("trailing bytes"));
        }
        Ok(Ticket {
            doc,
            epoch,
            key,
            capability,
            name,
            peer,
            addrs,
            owner,
            invitation,
            invitation_signature,
            holders,
        })
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ticket(name: &str, ports: &[u16]) -> Ticket {
        let sharer = ed25519::Keypair::generate();
        let addrs = ports
            .iter()
            .map(|p| format!("/ip4/127.0.0.1/tcp/{p}").parse().unwrap())
            .collect();
        let owner = sharer.public().to_bytes();
        Ticket::issue(
            DocId::random(),
            0,
            DocKey::random(),
            Capability::ReadWrite,
            name.to_string(),
            &sharer,
            addrs,
            owner,
        )
        .0
    }

    #[test]
    fn the_invitation_admits_the_joiner_with_the_ticket_role() {
        let sharer = ed25519::Keypair::generate();
        let owner = sharer.public().to_bytes();
        let doc = DocId::random();
        for capability in [Capability::ReadOnly, Capability::ReadWrite] {
            let (t, cert) = Ticket::issue(
                doc,
                0,
                DocKey::random(),
                capability,
                "n".into(),
                &sharer,
                vec![],
                owner,
            );
            let t = Ticket::decode(&t.encode()).unwrap();
            assert_eq!(t.invitation_cert().unwrap(), cert);
            let joiner = ed25519::Keypair::generate();
            let mut membership = crate::core::access::Membership::new(doc, owner);
            membership.add(t.invitation_cert().unwrap()).unwrap();
            membership
                .add(t.admit(joiner.public().to_bytes()).unwrap())
                .unwrap();
            let peer = PublicKey::from(joiner.public()).to_peer_id();
            assert_eq!(membership.role_of(&peer), Some(capability.role()));
        }
        // A ticket whose invitation was not signed by its sharer is refused.
        let (mut t, _) = Ticket::issue(
            doc,
            3,
            DocKey::random(),
            Capability::ReadOnly,
            "n".into(),
            &sharer,
            vec![],
            owner,
        );
        t.capability = Capability::ReadWrite;
        assert!(t.invitation_cert().is_err(), "upgraded to read-write");
    }

    #[test]
    fn ticket_round_trips_and_detects_damage() {
        let t = ticket("notes", &[4001, 4002]);
        let s = t.encode();
        assert!(s.starts_with("peerdoc1"));
        assert_eq!(Ticket::decode(&s).unwrap(), t);
        assert_eq!(Ticket::decode(&format!("  {s}\n")).unwrap(), t);
        assert_eq!(Ticket::decode("hello"), Err(TicketError::Prefix));
        // Flip one character in the middle: checksum or alphabet catches it.
        let mut chars: Vec<char> = s.chars().collect();
        let mid = chars.len() / 2;
        chars[mid] = if chars[mid] == 'a' { 'b' } else { 'a' };
        let damaged: String = chars.into_iter().collect();
        assert!(matches!(
            Ticket::decode(&damaged),
            Err(TicketError::Damaged(_))
        ));
        // Truncation.
        assert!(matches!(
            Ticket::decode(&s[..s.len() - 5]),
            Err(TicketError::Damaged(_))
        ));
    }

    #[test]
    fn tickets_carry_holders_and_version_2_tickets_still_read() {
        let mut t = ticket("held", &[4001]);
        let holder = PublicKey::from(ed25519::Keypair::generate().public()).to_peer_id();
        let addr: Multiaddr = "/ip4/203.0.113.7/tcp/4001".parse().unwrap();
        t.holders = vec![(holder, vec![addr]); 6];
        let back = Ticket::decode(&t.encode()).unwrap();
        assert_eq!(back.holders.len(), MAX_TICKET_HOLDERS);
        assert_eq!(back.holders[0], t.holders[0]);
        // A version 2 body: the same fields without the holders section.
        let v2 = ticket("old", &[4001]);
        let encoded = v2.encode();
        let raw = bs58::decode(&encoded[TICKET_PREFIX.len()..])
            .into_vec()
            .unwrap();
        let mut body = raw[..raw.len() - TICKET_CHECKSUM_LEN - 1].to_vec();
        body[0] = 2;
        body.extend_from_slice(&blake3::hash(&body).as_bytes()[..TICKET_CHECKSUM_LEN]);
        let old = format!("{TICKET_PREFIX}{}", bs58::encode(body).into_string());
        assert_eq!(Ticket::decode(&old).unwrap(), v2);
    }

    #[test]
    fn ticket_caps_addresses() {
        let t = ticket("many", &(1..20).collect::<Vec<_>>());
        let back = Ticket::decode(&t.encode()).unwrap();
        assert_eq!(back.addrs.len(), MAX_TICKET_ADDRS);
    }

    proptest! {
        #[test]
        fn ticket_round_trip(name in "\\PC{0,60}", ports in proptest::collection::vec(any::<u16>(), 0..8)) {
            let t = ticket(&name, &ports);
            prop_assert_eq!(Ticket::decode(&t.encode()).unwrap(), t);
        }

        #[test]
        fn ticket_decode_never_panics(s in "\\PC{0,300}", raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Ticket::decode(&s);
            let _ = Ticket::decode(&format!("{TICKET_PREFIX}{s}"));
            let _ = Ticket::decode(&format!("{TICKET_PREFIX}{}", bs58::encode(&raw).into_string()));
            // A body with a valid checksum but random content must not panic either.
            let mut body = raw.clone();
            body.extend_from_slice(&blake3::hash(&raw).as_bytes()[..TICKET_CHECKSUM_LEN]);
            let _ = Ticket::decode(&format!("{TICKET_PREFIX}{}", bs58::encode(&body).into_string()));
        }

    }
}
