//! The node's membership API: tickets (sharing), removing a member, listing members. The
//! rules are the core's ([`crate::core::access`]); the room keeps the records.

use libp2p::{Multiaddr, PeerId};

use super::{DocRef, Error, MemberInfo, Node, Removed, Standing};
use crate::core::access::{key_of, labels, peer_of, KeyBytes, Role};
use crate::core::ticket::{Capability, Ticket};
use crate::net::{is_loopback, is_relayed, NetStatus};

impl Node {
    /// A read-write ticket for the document, carrying this node's addresses.
    pub async fn ticket<'a>(&self, doc: impl Into<DocRef<'a>>) -> Result<String, Error> {
        self.share(doc, false).await
    }

    /// A ticket for the document: read-only or read-write. It carries a fresh invitation this
    /// node signs, so only the owner and writers may share.
    pub async fn share<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        read_only: bool,
    ) -> Result<String, Error> {
        let meta = self.resolve(doc.into()).await?;
        let room = self.room_of(&meta).await?;
        if !room
            .access()
            .membership
            .role_of(&self.peer_id())
            .is_some_and(|role| role.may_write())
        {
            return Err(Error::ReaderCannotShare);
        }
        let addrs = ticket_addrs(&self.inner.net.status().await?);
        let capability = if read_only {
            Capability::ReadOnly
        } else {
            Capability::ReadWrite
        };
        let (epoch, key) = room.keys().current_owned();
        let (mut ticket, invitation) = Ticket::issue(
            meta.id,
            epoch,
            key,
            capability,
            meta.name,
            &self.inner.identity,
            addrs,
            meta.owner,
        );
        ticket.holders = self.ticket_holders(&room).await;
        // Members learn the invitation from us, so they can check whom it admits.
        room.add_certs(vec![invitation]).await?;
        // Holders learn it too: they admit joiners that come while no member is online.
        self.inner.holding.changed(room.id);
        // Shared now: announced from now on (gossip topic, DHT provider record).
        self.announce(&room).await;
        self.metrics().tickets_issued.inc();
        Ok(ticket.encode())
    }

    /// Removes a member (owner only): it can no longer read what is written from now on (the
    /// document gets a new key, sealed to every remaining member), its writes are refused
    /// everywhere, and the other members hear of it at once. With it go the members whose only
    /// admission passed through it (unless named in `keep`, peer ids), and every ticket shared
    /// so far stops admitting anyone (the removed member may have seen it). Fails, changing
    /// nothing, if the removal would not take.
    pub async fn revoke<'a>(
        &self,
        doc: impl Into<DocRef<'a>>,
        peer: &str,
        keep: &[String],
    ) -> Result<Removed, Error> {
        let meta = self.resolve(doc.into()).await?;
        let room = self.room_of(&meta).await?;
        let access = room.access();
        if access.membership.role_of(&self.peer_id()) != Some(Role::Owner) {
            return Err(Error::NotOwner);
        }
        let member_key = |peer: &str| -> Result<KeyBytes, Error> {
            let parsed: PeerId = peer
                .trim()
                .parse()
                .map_err(|_| Error::NotAMember(peer.to_string()))?;
            key_of(&parsed).map_err(|_| Error::NotAMember(peer.to_string()))
        };
        let key = member_key(peer)?;
        match access.membership.role_of_key(&key) {
            None => return Err(Error::NotAMember(peer.to_string())),
            Some(Role::Owner) => return Err(Error::RemoveOwner),
            Some(_) => {}
        }
        let keep = keep
            .iter()
            .map(|p| member_key(p))
            .collect::<Result<Vec<_>, _>>()?;
        let removal = room.revoke(key, keep).await?;
        self.inner.sync.changed(meta.id).await;
        // Holders get the removal, and a snapshot in the new epoch (entries sealed in older
        // ones are unreadable to members that join with newer tickets).
        self.inner.holding.compact(meta.id);
        // Keys in a membership are valid Ed25519 keys (checked when their certificate was).
        let access = room.access();
        let info = |(key, role): (KeyBytes, Role)| {
            Some(MemberInfo {
                peer: peer_of(&key)?,
                role: Standing::Member(role),
                you: false,
                name: access.membership.name_of(&key).map(str::to_string),
                label: String::new(),
            })
        };
        Ok(Removed {
            epoch: removal.epoch,
            with_it: labelled(removal.cascaded.into_iter().filter_map(info).collect()),
            recertified: removal.recertified,
            tickets_closed: removal.invitations,
        })
    }

    /// The document's members and their roles, the owner first.
    pub async fn members<'a>(&self, doc: impl Into<DocRef<'a>>) -> Result<Vec<MemberInfo>, Error> {
        let room = self.room(doc.into()).await?;
        let me = self.peer_id();
        let access = room.access();
        let name_of = |peer: &PeerId| {
            if *peer == me {
                return self.name();
            }
            let key = key_of(peer).ok()?;
            access.membership.name_of(&key).map(str::to_string)
        };
        let mut members: Vec<MemberInfo> = access
            .membership
            .members()
            .into_iter()
            .map(|(peer, role)| MemberInfo {
                peer,
                role: Standing::Member(role),
                you: peer == me,
                name: name_of(&peer),
                label: String::new(),
            })
            .collect();
        // A removed node says so rather than listing itself as what it was.
        if access.membership.is_revoked(&me) {
            members.push(MemberInfo {
                peer: me,
                role: Standing::Removed,
                you: true,
                name: self.name(),
                label: String::new(),
            });
        }
        Ok(labelled(members))
    }
}

/// Fills in each member's label (see [`MemberInfo::label`]).
fn labelled(mut members: Vec<MemberInfo>) -> Vec<MemberInfo> {
    let named: Vec<(String, Option<String>)> = members
        .iter()
        .map(|m| (m.peer.to_string(), m.name.clone()))
        .collect();
    for (member, label) in members.iter_mut().zip(labels(&named)) {
        member.label = label;
    }
    members
}

/// Addresses put in a ticket at most (it stays short enough to paste).
const MAX_TICKET_ADDRS: usize = 5;

/// Addresses for a ticket, most widely reachable first: public, relayed, the rest (LAN), and
/// this machine's last; a few at most.
fn ticket_addrs(net: &NetStatus) -> Vec<Multiaddr> {
    let rank = |addr: &Multiaddr| {
        if net.external_addrs.contains(addr) {
            0
        } else if is_relayed(addr) {
            1
        } else if is_loopback(addr) {
            3
        } else {
            2
        }
    };
    let mut addrs: Vec<Multiaddr> = net.external_addrs.clone();
    addrs.extend(
        net.listen_addrs
            .iter()
            .filter(|a| !addrs.contains(a))
            .cloned()
            .collect::<Vec<_>>(),
    );
    addrs.sort_by_key(rank);
    addrs.truncate(MAX_TICKET_ADDRS);
    addrs
}
