//! Connections: which connected peers share which document (their subscriptions, and the
//! members a document's membership names, which survive reconnects), what a connect or a
//! disconnect changes in the driver, and keeping connected (redial rounds, DHT lookups).

use std::collections::HashSet;

use libp2p::{Multiaddr, PeerId};

use super::{SyncDriver, DIAL_TIMEOUT};
use crate::core::doc::parse_topic_name;
use crate::net::Net;
use crate::replica::room::RoomHandle;

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
        let mut peers: HashSet<PeerId> = self.topic_peers.get(topic).cloned().unwrap_or_default();
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
        self.topic_peers.entry(topic).or_default().insert(peer);
        if let Some(room) = self.rooms.by_topic(&topic) {
            room.set_listened(true);
            self.want_pull(peer, room.id);
        }
    }

    /// Tells `room` whether any peer subscribed to its topic (it publishes only then).
    pub(super) fn tell_listened(&self, room: &RoomHandle) {
        room.set_listened(
            self.topic_peers
                .get(&room.topic)
                .is_some_and(|peers| !peers.is_empty()),
        );
    }

    pub(super) fn connected(&mut self, peer: PeerId) {
        self.connected.insert(peer);
        self.settings.metrics.peers.set(self.connected.len() as i64);
        self.settings.peer_connected.notify_waiters();
    }

    /// `peer` disconnected: what we knew of it for this connection goes, and a member is
    /// dialled again soon.
    pub(super) fn disconnected(&mut self, peer: PeerId) {
        self.connected.remove(&peer);
        self.settings.metrics.peers.set(self.connected.len() as i64);
        self.addresses.disconnected(&peer);
        self.guard.forget(&peer);
        for (topic, peers) in &mut self.topic_peers {
            if peers.remove(&peer) && peers.is_empty() {
                if let Some(room) = self.rooms.by_topic(topic) {
                    room.set_listened(false);
                }
            }
        }
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
        let connected = self.connected.clone();
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
