//! The sync driver's member exchange: after a pull, now and then, a node sends a member of the
//! document the members it knows and hears the members that one knows; it remembers and dials
//! the ones it is not connected to. So any member introduces the others, not only the sharer.

use std::time::Instant;

use libp2p::PeerId;

use super::{Report, SyncDriver, DIAL_TIMEOUT, MEMBER_EXCHANGE_EVERY};
use crate::core::doc::DocId;
use crate::core::sync::members::{Member, Roster};
use crate::replica::pull::exchange;
use crate::replica::room::RoomHandle;

/// An exchange asked for because a peer's role is unknown happens at most this often.
const URGENT_EXCHANGE_GAP: std::time::Duration = std::time::Duration::from_secs(2);

impl SyncDriver {
    /// The members we know for a document: ourselves first, then connected peers sharing it.
    pub(super) fn known_members(&self, topic: &[u8; 32], except: PeerId) -> Vec<Member> {
        let me = Member {
            peer: self.net.peer_id(),
            addrs: self.own_addrs.clone(),
        };
        let others = self
            .peers_sharing(topic)
            .into_iter()
            .filter(|peer| *peer != except)
            .map(|peer| Member {
                peer,
                addrs: self.addrs_of(&peer),
            });
        std::iter::once(me).chain(others).collect()
    }

    /// Our roster for `room`, for `except`: the members we know and every certificate and key
    /// grant we hold.
    pub(super) fn roster(&self, room: &RoomHandle, except: PeerId) -> Roster {
        let access = room.access();
        Roster {
            members: self.known_members(&room.topic, except),
            certs: access.membership.certs().cloned().collect(),
            grants: access.membership.grants().cloned().collect(),
        }
    }

    /// Exchanges rosters with `peer` for `doc`, unless done recently (`urgent`: a peer whose
    /// role we do not know yet, so its edits wait for it, is asked again after a few seconds).
    pub(super) fn exchange_members(&mut self, peer: PeerId, doc: DocId, urgent: bool) {
        let Some(room) = self.rooms.get(&doc) else {
            return;
        };
        let now = Instant::now();
        let every = if urgent {
            URGENT_EXCHANGE_GAP
        } else {
            self.settings.sync_interval * MEMBER_EXCHANGE_EVERY
        };
        if let Some(last) = self.members_exchanged.get(&(peer, doc)) {
            if now.duration_since(*last) < every {
                return;
            }
        }
        self.members_exchanged.insert((peer, doc), now);
        let mine = self.roster(&room, peer);
        let net = self.net.clone();
        let reports = self.reports.clone();
        self.spawn_task(async move {
            match exchange(&net, &room, peer, mine).await {
                Ok((roster, news)) => {
                    let learned = Report::MembersLearned {
                        peer,
                        doc: room.id,
                        members: roster.members,
                        news,
                    };
                    let _ = reports.send(learned).await;
                }
                Err(e) => tracing::debug!(%peer, doc = %room.id, "member exchange failed: {e}"),
            }
        });
    }

    /// Remembers members we heard of and dials those we are not connected to.
    pub(super) fn meet(&mut self, members: Vec<Member>) {
        let me = self.net.peer_id();
        for Member { peer, addrs } in members {
            if peer == me || self.connected.contains(&peer) || addrs.is_empty() {
                continue;
            }
            self.remember_peer(peer, addrs.clone());
            let net = self.net.clone();
            self.spawn_task(async move {
                match tokio::time::timeout(DIAL_TIMEOUT, net.dial(peer, addrs)).await {
                    Ok(Ok(())) => tracing::debug!(%peer, "met a member"),
                    Ok(Err(e)) => tracing::debug!(%peer, "cannot reach a member: {e}"),
                    Err(_) => tracing::debug!(%peer, "reaching a member timed out"),
                }
            });
        }
    }

    /// Sends our roster for `doc` to every connected peer sharing it (at most every few seconds
    /// per peer): removals and new keys travel member to member, even without the owner.
    pub(super) fn spread_records(&mut self, doc: DocId) {
        let Some(room) = self.rooms.get(&doc) else {
            return;
        };
        for peer in self.peers_sharing(&room.topic) {
            self.exchange_members(peer, doc, true);
        }
    }
}
