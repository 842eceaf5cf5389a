//! The sync driver's address book: the addresses peers announce (identify), stored once a
//! peer proves it shares a document, so that it is redialled after a restart; strangers that
//! merely connect are neither stored nor redialled.

use libp2p::{Multiaddr, PeerId};

use super::SyncDriver;

impl SyncDriver {
    /// `peer` proved it holds a document key we hold (its request opened, or it answered a
    /// pull): store the addresses it announced.
    pub(super) fn vouch(&mut self, peer: PeerId) {
        // Every sync request vouches: compare before copying anything.
        match self.heard_addrs.get(&peer) {
            Some(addrs) if self.saved_addrs.get(&peer) != Some(addrs) => {
                self.remember_peer(peer, addrs.clone());
            }
            _ => {}
        }
    }

    /// The addresses `peer` can be reached at, as far as we know.
    pub(super) fn addrs_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.heard_addrs
            .get(peer)
            .or_else(|| self.saved_addrs.get(peer))
            .cloned()
            .unwrap_or_default()
    }

    /// Stores a peer's addresses (so it can be redialled after a restart) when they changed.
    pub(super) fn remember_peer(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if self.saved_addrs.get(&peer) == Some(&addrs) {
            return;
        }
        self.saved_addrs.insert(peer, addrs.clone());
        let store = self.store.clone();
        self.spawn_task(async move {
            let addrs = addrs.iter().map(|a| a.to_string()).collect();
            if let Err(e) = store.save_peer(peer.to_string(), addrs).await {
                tracing::warn!(%peer, "cannot remember peer: {e}");
            }
        });
    }
}
