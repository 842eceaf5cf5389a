//! What [`Node::status`] and [`Node::peers`] report: the network, connected peers, and each
//! document's standing and sync state with the peers that share it.

use std::time::Instant;

use libp2p::PeerId;

use super::{DocPeer, DocStatus, Error, Node, PeerStatus, Standing, Status};
use crate::core::access::Membership;
use crate::net::{is_relayed, ConnectedPeer, ConnectionKind};

impl Node {
    pub async fn peers(&self) -> Result<Vec<PeerStatus>, Error> {
        let net = self.inner.net.status().await?;
        Ok(net.connected.into_iter().map(peer_status).collect())
    }

    pub async fn status(&self) -> Result<Status, Error> {
        let net = self.inner.net.status().await?;
        let mut sync = self.inner.sync.status().await;
        let now = Instant::now();
        let mut docs = Vec::new();
        let me = self.peer_id();
        for m in self.inner.store.list_docs().await? {
            let room = self.inner.rooms.get(&m.id);
            let summary = match &room {
                Some(room) => room.summary().await.ok(),
                None => None,
            };
            let access = room.map(|room| room.access());
            let membership = access.as_ref().map(|a| &a.membership);
            let role = standing(membership, &me);
            // A removed member still subscribed is no peer of the document, and a node that
            // was removed syncs with no one.
            let current = |peer: &PeerId| {
                role != Standing::Removed && !membership.is_some_and(|m| m.is_revoked(peer))
            };
            docs.push(DocStatus {
                id: m.id,
                name: m.name,
                role,
                peers: sync
                    .remove(&m.id)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|p| current(&p.peer))
                    .map(|p| {
                        let last = p
                            .last_sync
                            .map(|(at, gap)| (now.duration_since(at).as_secs(), gap));
                        DocPeer::new(p.peer, last)
                    })
                    .collect(),
                state_vector: summary
                    .as_ref()
                    .and_then(|s| crate::core::doc::sv_text(&s.sv).ok())
                    .unwrap_or_default(),
                digest: summary.map(|s| s.digest),
            });
        }
        Ok(Status {
            peer_id: self.peer_id(),
            name: self.name(),
            data_dir: self.inner.config.data_dir.clone(),
            nat: net.nat,
            relayed_addrs: net
                .listen_addrs
                .iter()
                .filter(|a| is_relayed(a))
                .cloned()
                .collect(),
            listen_addrs: net.listen_addrs,
            public_addrs: net.external_addrs,
            relays: net.reservations.into_iter().collect(),
            connected_peers: net.connected.into_iter().map(peer_status).collect(),
            docs,
        })
    }
}

/// A node's standing in a document, from the membership its room holds (unknown without one).
pub(super) fn standing(membership: Option<&Membership>, me: &PeerId) -> Standing {
    match membership {
        Some(m) if m.is_revoked(me) => Standing::Removed,
        Some(m) => m.role_of(me).map_or(Standing::Unknown, Standing::Member),
        None => Standing::Unknown,
    }
}

fn peer_status(connected: ConnectedPeer) -> PeerStatus {
    // One connection per transport may report the same address.
    let mut addrs = connected.addrs;
    addrs.sort();
    addrs.dedup();
    PeerStatus {
        peer: connected.peer,
        addrs,
        relayed: connected.kind == ConnectionKind::Relayed,
    }
}
