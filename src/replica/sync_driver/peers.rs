//! The sync driver's address book: the addresses peers announce (identify), stored once a
//! peer proves it shares a document, so that it is redialled after a restart; strangers that
//! merely connect are neither stored nor redialled. [`AddressBook`] decides (time is an
//! argument); the driver stores and dials.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

use super::connections::dial;
use super::SyncDriver;

/// A peer that shares a document and dropped is dialled again after this long (not at the next
/// redial round): a connection that broke, or that a peer closed because gossip on it stalled,
/// comes back within seconds.
const REDIAL_SOON: Duration = Duration::from_secs(1);
/// At most one such quick redial per peer in this time (a peer that keeps dropping waits for
/// the regular rounds).
const REDIAL_SOON_EVERY: Duration = Duration::from_secs(10);

/// What the driver knows of where peers are.
#[derive(Default)]
pub(super) struct AddressBook {
    /// Addresses connected peers announce (identify).
    heard: HashMap<PeerId, Vec<Multiaddr>>,
    /// Addresses last stored per peer (peers that proved they share a document), so the same
    /// rows are not rewritten.
    saved: HashMap<PeerId, Vec<Multiaddr>>,
    /// Peers dialled again soon after they dropped, and when (kept for a few seconds).
    redialled: HashMap<PeerId, Instant>,
}

impl AddressBook {
    /// `peer` announced `addrs`. True: it proved itself before, vouch for it again.
    pub(super) fn heard(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) -> bool {
        self.heard.insert(peer, addrs);
        self.saved.contains_key(&peer)
    }

    /// Forgets the stored addresses of peers that are not connected (the store keeps them for
    /// the redial rounds; a peer that comes back proves itself again by its first sync), so
    /// the book holds only what the connections in use need.
    pub(super) fn forget_unless(&mut self, connected: impl Fn(&PeerId) -> bool) {
        self.saved.retain(|peer, _| connected(peer));
    }

    /// `peer` disconnected: what it announced is stale.
    pub(super) fn disconnected(&mut self, peer: &PeerId) {
        self.heard.remove(peer);
    }

    /// `peer` proved it shares a document: the addresses to store, if they changed.
    pub(super) fn vouch(&self, peer: &PeerId) -> Option<Vec<Multiaddr>> {
        // Every sync request vouches: compare before copying anything.
        match self.heard.get(peer) {
            Some(addrs) if self.saved.get(peer) != Some(addrs) => Some(addrs.clone()),
            _ => None,
        }
    }

    /// Records `addrs` as stored for `peer`. False: they were stored already.
    pub(super) fn saved(&mut self, peer: PeerId, addrs: &[Multiaddr]) -> bool {
        if self.saved.get(&peer).is_some_and(|saved| saved == addrs) {
            return false;
        }
        self.saved.insert(peer, addrs.to_vec());
        true
    }

    /// The addresses `peer` can be reached at, as far as we know.
    pub(super) fn addrs_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.heard
            .get(peer)
            .or_else(|| self.saved.get(peer))
            .cloned()
            .unwrap_or_default()
    }

    /// `peer` dropped at `now`: the addresses to dial it at again soon, if it shares a document
    /// (its addresses are stored) and was not redialled just before.
    pub(super) fn redial_soon(&mut self, peer: PeerId, now: Instant) -> Option<Vec<Multiaddr>> {
        self.redialled
            .retain(|_, at| now.saturating_duration_since(*at) < REDIAL_SOON_EVERY);
        if self.redialled.contains_key(&peer) {
            return None;
        }
        let addrs = self.saved.get(&peer).cloned()?;
        self.redialled.insert(peer, now);
        Some(addrs)
    }
}

impl SyncDriver {
    /// `peer` proved it holds a document key we hold (its request opened, or it answered a
    /// pull): store the addresses it announced.
    pub(super) fn vouch(&mut self, peer: PeerId) {
        if let Some(addrs) = self.addresses.vouch(&peer) {
            self.remember_peer(peer, addrs);
        }
    }

    /// `peer` disconnected: if it shares a document with us, dial it again shortly.
    pub(super) fn redial_soon(&mut self, peer: PeerId) {
        let Some(addrs) = self.addresses.redial_soon(peer, Instant::now()) else {
            return;
        };
        let net = self.net.clone();
        self.spawn_task(async move {
            tokio::time::sleep(REDIAL_SOON).await;
            dial(net, peer, addrs).await;
        });
    }

    /// Stores a peer's addresses (so it can be redialled after a restart) when they changed.
    pub(super) fn remember_peer(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if !self.addresses.saved(peer, &addrs) {
            return;
        }
        let store = self.store.clone();
        self.spawn_task(async move {
            let addrs = addrs.iter().map(|a| a.to_string()).collect();
            if let Err(e) = store.save_peer(peer.to_string(), addrs).await {
                tracing::warn!(%peer, "cannot remember peer: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

    #[test]
    fn a_stranger_is_neither_stored_nor_redialled_until_it_proves_itself() {
        let (mut book, peer, now) = (AddressBook::default(), PeerId::random(), Instant::now());
        assert!(!book.heard(peer, vec![addr(1)]), "not vouched for yet");
        assert_eq!(
            book.redial_soon(peer, now),
            None,
            "a stranger is not redialled"
        );
        // It proves it shares a document: its addresses are stored, once.
        let addrs = book.vouch(&peer).expect("addresses to store");
        assert!(book.saved(peer, &addrs));
        assert_eq!(book.vouch(&peer), None, "stored already");
        // After a reconnect it is vouched for again at once; new addresses are stored.
        book.disconnected(&peer);
        assert_eq!(book.addrs_of(&peer), vec![addr(1)], "the stored ones");
        assert!(book.heard(peer, vec![addr(2)]));
        assert_eq!(book.vouch(&peer), Some(vec![addr(2)]));
    }

    #[test]
    fn a_member_that_drops_is_redialled_soon_at_most_once_in_a_while() {
        let (mut book, peer, now) = (AddressBook::default(), PeerId::random(), Instant::now());
        book.heard(peer, vec![addr(1)]);
        book.saved(peer, &[addr(1)]);
        assert_eq!(book.redial_soon(peer, now), Some(vec![addr(1)]));
        assert_eq!(book.redial_soon(peer, now + Duration::from_secs(3)), None);
        let later = now + REDIAL_SOON_EVERY + Duration::from_secs(1);
        assert_eq!(book.redial_soon(peer, later), Some(vec![addr(1)]));
        // Another member's quick redial is its own.
        let other = PeerId::random();
        book.saved(other, &[addr(2)]);
        assert_eq!(book.redial_soon(other, later), Some(vec![addr(2)]));
    }

    #[test]
    fn stored_addresses_are_forgotten_once_their_peer_is_gone_and_learned_again_on_return() {
        let (mut book, peer) = (AddressBook::default(), PeerId::random());
        book.heard(peer, vec![addr(1)]);
        let addrs = book.vouch(&peer).unwrap();
        assert!(book.saved(peer, &addrs));
        book.forget_unless(|p| *p == peer);
        assert!(!book.saved(peer, &addrs), "kept while connected");
        book.disconnected(&peer);
        book.forget_unless(|_| false);
        assert!(book.addrs_of(&peer).is_empty(), "forgotten once gone");
        assert!(!book.heard(peer, vec![addr(1)]), "it proves itself again");
        assert_eq!(book.vouch(&peer), Some(vec![addr(1)]));
    }
}
