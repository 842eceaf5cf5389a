//! Connections: which connected peers share which document (their subscriptions, and the
//! members a document's membership names, which survive reconnects), what a connect or a
//! disconnect changes in the driver, and keeping connected (redial rounds, DHT lookups).

use std::collections::{HashMap, HashSet};

use libp2p::{Multiaddr, PeerId};

use super::{SyncDriver, DIAL_TIMEOUT};
use crate::core::doc::parse_topic_name;
use crate::net::Net;
use crate::replica::room::RoomHandle;

/// Who is connected, and which of them subscribed to which topic (as gossipsub told). A topic
/// no connected peer listens on is forgotten.
#[derive(Default)]
pub(super) struct Connected {
    peers: HashSet<PeerId>,
    topics: HashMap<[u8; 32], HashSet<PeerId>>,
}

impl Connected {
    pub(super) fn contains(&self, peer: &PeerId) -> bool {
        self.peers.contains(peer)
    }

    pub(super) fn len(&self) -> usize {
        self.peers.len()
    }

    pub(super) fn peers(&self) -> &HashSet<PeerId> {
        &self.peers
    }

    pub(super) fn connected(&mut self, peer: PeerId) {
        self.peers.insert(peer);
    }

    /// `peer` subscribed to `topic`.
    pub(super) fn subscribed(&mut self, peer: PeerId, topic: [u8; 32]) {
        self.topics.entry(topic).or_default().insert(peer);
    }

    /// Forgets `peer` and its subscriptions; returns the topics no one listens on any more.
    pub(super) fn disconnected(&mut self, peer: &PeerId) -> Vec<[u8; 32]> {
        self.peers.remove(peer);
        let mut silent = Vec::new();
        self.topics.retain(|topic, listeners| {
            if listeners.remove(peer) && listeners.is_empty() {
                silent.push(*topic);
            }
            !listeners.is_empty()
        });
        silent
    }

    /// The peers subscribed to `topic`.
    pub(super) fn on_topic(&self, topic: &[u8; 32]) -> impl Iterator<Item = PeerId> + '_ {
        self.topics.get(topic).into_iter().flatten().copied()
    }

    /// Whether any peer subscribed to `topic`.
    pub(super) fn listened(&self, topic: &[u8; 32]) -> bool {
        self.topics.contains_key(topic)
    }
}

impl SyncDriver {
    /// Connected peers that share the document: those subscribed to its topic, and the
    /// connected members its membership names (the membership survives reconnects; a
    /// subscription can go unannounced on a replaced connection). Peers the owner removed are
    /// not among them.
    pub(super) fn peers_sharing(&self, topic: &[u8; 32]) -> Vec<PeerId> {
        let Some(room) = self.rooms.by_topic(topic) else {
            return self.peers_on_topic(topic);
        };
        let access = room.access();
        self.peers_on_topic(topic)
            .into_iter()
            .filter(|peer| !access.membership.is_revoked(peer))
            .collect()
    }

    /// [`SyncDriver::peers_sharing`], removed members included (to tell them).
    pub(super) fn peers_on_topic(&self, topic: &[u8; 32]) -> Vec<PeerId> {
        let mut peers: HashSet<PeerId> = self.connected.on_topic(topic).collect();
        if let Some(room) = self.rooms.by_topic(topic) {
            let me = self.net.peer_id();
            peers.extend(
                room.access()
                    .membership
                    .members()
                    .into_iter()
                    .map(|(peer, _)| peer)
                    .filter(|peer| *peer != me && self.connected.contains(peer)),
            );
        }
        peers.into_iter().collect()
    }

    /// `peer` subscribed to a topic: if it is one of our documents, pull from it.
    pub(super) fn subscribed(&mut self, peer: PeerId, topic: &str) {
        let Some(topic) = parse_topic_name(topic) else {
            return;
        };
        self.connected.subscribed(peer, topic);
        if let Some(room) = self.rooms.by_topic(&topic) {
            room.set_listened(true);
            self.want_pull(peer, room.id);
        }
    }

    /// Tells `room` whether any peer subscribed to its topic (it publishes only then).
    pub(super) fn tell_listened(&self, room: &RoomHandle) {
        room.set_listened(self.connected.listened(&room.topic));
    }

    pub(super) fn connected(&mut self, peer: PeerId) {
        self.connected.connected(peer);
        self.settings.metrics.peers.set(self.connected.len() as i64);
        self.settings.peer_connected.notify_waiters();
    }

    /// `peer` disconnected: what we knew of it for this connection goes, and a member is
    /// dialled again soon.
    pub(super) fn disconnected(&mut self, peer: PeerId) {
        for topic in self.connected.disconnected(&peer) {
            if let Some(room) = self.rooms.by_topic(&topic) {
                room.set_listened(false);
            }
        }
        self.settings.metrics.peers.set(self.connected.len() as i64);
        self.addresses.disconnected(&peer);
        self.guard.forget(&peer);
        self.rosters.disconnected(&peer);
        self.synced.retain(|(_, p), _| *p != peer);
        self.redial_soon(peer);
    }

    /// Every redial interval: looks up in the DHT the documents no connected peer shares, and
    /// dials the bootstrap and known peers that are not connected.
    pub(super) fn redial(&self) {
        // Documents no connected peer shares: ask the DHT who holds them.
        for room in self.rooms.all() {
            // Looking up a topic tells DHT nodes of an interest in it: never for a document
            // that was never shared.
            if room.access().membership.is_shared() && self.peers_sharing(&room.topic).is_empty() {
                if let Err(e) = self.net.try_find_providers(room.topic) {
                    tracing::debug!(doc = %room.id, "DHT lookup not started: {e}");
                }
            }
        }
        let net = self.net.clone();
        let store = self.store.clone();
        let connected = self.connected.peers().clone();
        let mut targets = self.settings.bootstrap.clone();
        self.spawn_task(async move {
            match store.known_peers().await {
                Ok(known) => targets.extend(known.into_iter().filter_map(|(peer, addrs)| {
                    let peer: PeerId = peer.parse().ok()?;
                    let addrs = addrs.iter().filter_map(|a| a.parse().ok()).collect();
                    Some((peer, addrs))
                })),
                Err(e) => tracing::warn!("cannot read known peers: {e}"),
            }
            let me = net.peer_id();
            let dials = targets
                .into_iter()
                .filter(|(peer, _)| *peer != me && !connected.contains(peer))
                .map(|(peer, addrs)| dial(net.clone(), peer, addrs));
            futures::future::join_all(dials).await;
        });
    }
}

/// Dials `peer` at `addrs`, giving up after [`DIAL_TIMEOUT`]; the outcome is only logged (the
/// next round tries again).
pub(super) async fn dial(net: Net, peer: PeerId, addrs: Vec<Multiaddr>) {
    match tokio::time::timeout(DIAL_TIMEOUT, net.dial(peer, addrs)).await {
        Ok(Ok(())) => tracing::debug!(%peer, "reconnected"),
        Ok(Err(e)) => tracing::debug!(%peer, "redial failed: {e}"),
        Err(_) => tracing::debug!(%peer, "redial timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_is_listened_while_a_connected_peer_subscribed_and_forgotten_after() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let (doc, other) = ([1; 32], [2; 32]);
        let mut connected = Connected::default();
        connected.connected(a);
        connected.connected(b);
        assert!(!connected.listened(&doc), "no listener yet");
        connected.subscribed(a, doc);
        assert!(connected.listened(&doc), "the first listener");
        connected.subscribed(b, doc);
        connected.subscribed(b, doc);
        let mut on_doc: Vec<_> = connected.on_topic(&doc).collect();
        on_doc.sort();
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(on_doc, both, "again: nothing new");
        connected.subscribed(b, other);
        assert!(connected.listened(&doc) && connected.listened(&other));

        assert_eq!(
            connected.disconnected(&b),
            vec![other],
            "only `other` fell silent"
        );
        assert!(!connected.contains(&b));
        assert_eq!(connected.on_topic(&doc).collect::<Vec<_>>(), vec![a]);
        assert!(!connected.listened(&other));
        assert_eq!(connected.disconnected(&a), vec![doc]);
        assert!(connected.topics.is_empty(), "no topic kept for no one");
        assert_eq!(connected.len(), 0);
    }
}
