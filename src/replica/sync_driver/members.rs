//! The sync driver's member exchange: after a pull, now and then, a node sends a member of the
//! document the members it knows and hears the members that one knows; it remembers and dials
//! the ones it is not connected to. So any member introduces the others, not only the sharer.

use std::time::Instant;

use libp2p::PeerId;

use super::{Report, SyncDriver, DIAL_TIMEOUT, MEMBER_EXCHANGE_EVERY};
use crate::core::access::admission::records_for;
use crate::core::access::key_of;
use crate::core::doc::DocId;
use crate::core::sync::members::Member;
use crate::core::sync::PullError;
use crate::replica::pull::{exchange, Offer, PullFailure};

/// An exchange asked for because a peer's role is unknown happens at most this often (a
/// failed one may be tried again at once).
const URGENT_EXCHANGE_GAP: std::time::Duration = std::time::Duration::from_secs(2);
/// How soon a failed exchange may be tried again.
const FAILED_EXCHANGE_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
/// Key epochs an exchange tries, newest first, when the peer cannot open the newest.
const EPOCH_TRIES: usize = 3;

impl SyncDriver {
    /// The members we know for a document: ourselves first, then connected peers sharing it,
    /// then its connected holders (so members that never met a holder learn where it is).
    pub(super) fn known_members(&self, topic: &[u8; 32], except: PeerId) -> Vec<Member> {
        let holders = self
            .rooms
            .by_topic(topic)
            .map(|room| room.access().membership.holders())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|key| crate::core::access::peer_of(&key))
            .filter(|peer| *peer != except && self.connected.contains(peer))
            .map(|peer| Member {
                peer,
                addrs: self.addresses.addrs_of(&peer),
            });
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
                addrs: self.addresses.addrs_of(&peer),
            });
        std::iter::once(me).chain(others).chain(holders).collect()
    }

    /// Exchanges rosters with `peer` for `doc`, unless done recently (`urgent`: a peer whose
    /// role we do not know yet, so its edits wait for it, or news to spread, is asked again
    /// after a few seconds; a failed exchange may be retried at once). Sealed in the newest key
    /// epoch the peer used with us (a newer one it may lack), falling back to older ones if it
    /// cannot open it. A peer that is no member any more gets only the records of its removal.
    pub(super) fn exchange_members(&mut self, peer: PeerId, doc: DocId, urgent: bool) {
        let Some(room) = self.rooms.get(&doc) else {
            return;
        };
        let access = room.access();
        // Removed here: it has nothing to tell anyone (see `admit`).
        if access.membership.is_revoked(&self.net.peer_id()) {
            return;
        }
        let every = if urgent {
            URGENT_EXCHANGE_GAP
        } else {
            self.settings.sync_interval * MEMBER_EXCHANGE_EVERY
        };
        if !self.rosters.start(peer, doc, Instant::now(), every) {
            return;
        }
        let key = key_of(&peer).unwrap_or([0; 32]);
        let offer = if access.membership.is_revoked_key(&key) {
            Offer::Records(records_for(&access.membership, &key, &[]))
        } else {
            Offer::Roster {
                members: self.known_members(&room.topic, peer),
                extra: Vec::new(),
                name: self.settings.name.borrow().clone(),
            }
        };
        let current = access.keys.current().0;
        let first = self.rosters.epoch_for(&peer, &doc, current);
        // Epochs to try, newest first: the first, then older ones we hold.
        let epochs: Vec<u32> = std::iter::once(first)
            .chain((0..first).rev().filter(|e| access.keys.get(*e).is_some()))
            .take(EPOCH_TRIES)
            .collect();
        let net = self.net.clone();
        let reports = self.reports.clone();
        self.spawn_task(async move {
            let mut result = Err(PullFailure::NotWriter(peer));
            for epoch in epochs {
                result = exchange(&net, &room, peer, &offer, epoch).await;
                let unopened = matches!(
                    result,
                    Err(PullFailure::Protocol {
                        source: PullError::UnknownDoc,
                        ..
                    })
                );
                if !unopened {
                    break;
                }
            }
            let report = match result {
                Ok((members, news)) => Report::MembersLearned {
                    peer,
                    doc: room.id,
                    members,
                    news,
                },
                Err(PullFailure::NotServed { news, .. }) => {
                    tracing::debug!(%peer, doc = %room.id, "member exchange answered with records only");
                    if news {
                        Report::RecordsLearned { doc: room.id }
                    } else {
                        Report::ExchangeFailed { peer, doc: room.id }
                    }
                }
                Err(e) => {
                    tracing::debug!(%peer, doc = %room.id, "member exchange failed: {e}");
                    Report::ExchangeFailed { peer, doc: room.id }
                }
            };
            let _ = reports.send(report).await;
        });
    }

    /// An exchange failed: the next may start after a short pause instead of the full gap.
    pub(super) fn exchange_failed(&mut self, peer: PeerId, doc: DocId) {
        self.rosters.failed(
            peer,
            doc,
            Instant::now(),
            URGENT_EXCHANGE_GAP,
            FAILED_EXCHANGE_PAUSE,
        );
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

    /// Sends our roster for `doc` to every connected peer sharing it, at once: removals and
    /// new keys travel member to member, even without the owner, sealed in a key each peer has.
    pub(super) fn spread_records(&mut self, doc: DocId) {
        let Some(room) = self.rooms.get(&doc) else {
            return;
        };
        for peer in self.peers_on_topic(&room.topic) {
            self.rosters.due_now(peer, doc);
            self.exchange_members(peer, doc, true);
        }
    }
}
