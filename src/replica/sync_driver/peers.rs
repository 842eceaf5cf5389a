//! The sync driver's address book: the addresses peers announce (identify), stored once a
//! peer proves it shares a document, so that it is redialled after a restart; strangers that
//! merely connect are neither stored nor redialled.

use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

use super::{SyncDriver, DIAL_TIMEOUT};

/// A peer that shares a document and dropped is dialled again after this long (not at the next
/// redial round): a connection that broke, or that a peer closed because gossip on it stalled,
/// comes back within seconds.
const REDIAL_SOON: Duration = Duration::from_secs(1);
/// At most one such quick redial per peer in this time (a peer that keeps dropping waits for
/// the regular rounds).
const REDIAL_SOON_EVERY: Duration = Duration::from_secs(10);

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

    /// `peer` disconnected: if it shares a document with us (its addresses are stored), dial it
    /// again shortly.
    pub(super) fn redial_soon(&mut self, peer: PeerId) {
        let now = Instant::now();
        self.redialled
            .retain(|_, at| now.saturating_duration_since(*at) < REDIAL_SOON_EVERY);
        if self.redialled.contains_key(&peer) {
            return;
        }
        let Some(addrs) = self.saved_addrs.get(&peer).cloned() else {
            return;
        };
        self.redialled.insert(peer, now);
        let net = self.net.clone();
        self.spawn_task(async move {
            tokio::time::sleep(REDIAL_SOON).await;
            match tokio::time::timeout(DIAL_TIMEOUT, net.dial(peer, addrs)).await {
                Ok(Ok(())) => tracing::debug!(%peer, "reconnected"),
                Ok(Err(e)) => tracing::debug!(%peer, "quick redial failed: {e}"),
                Err(_) => tracing::debug!(%peer, "quick redial timed out"),
            }
        });
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
