//! [`Rosters`]: what the sync driver remembers of its roster exchanges, per peer and document:
//! when it last exchanged (so it does not ask again too soon), whose roster it has heard since
//! they connected (content and gossiped edits wait for that: a removal arrives before anything
//! from the removed member), and the newest key epoch each peer used with it (what to seal the
//! next exchange in). It decides; time is an argument; the driver does the exchanging.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;

use crate::core::doc::DocId;

#[derive(Default)]
pub(super) struct Rosters {
    /// When members were last exchanged with a peer for a document.
    exchanged: HashMap<(PeerId, DocId), Instant>,
    /// Per document, the peers whose roster we heard (an exchange either way) since they
    /// connected.
    heard: HashMap<DocId, HashSet<PeerId>>,
    /// The newest key epoch each peer used with us for a document.
    epochs: HashMap<(PeerId, DocId), u32>,
}

impl Rosters {
    /// Whether an exchange with `peer` for `doc` may start at `now`, none having started in
    /// the last `every`; if so, it counts as started.
    pub(super) fn start(
        &mut self,
        peer: PeerId,
        doc: DocId,
        now: Instant,
        every: Duration,
    ) -> bool {
        if let Some(last) = self.exchanged.get(&(peer, doc)) {
            if now.saturating_duration_since(*last) < every {
                return false;
            }
        }
        self.exchanged.insert((peer, doc), now);
        true
    }

    /// An exchange failed at `now`: the next may start once `pause` has passed, whatever the
    /// usual gap (`gap`, the shortest one asked for).
    pub(super) fn failed(
        &mut self,
        peer: PeerId,
        doc: DocId,
        now: Instant,
        gap: Duration,
        pause: Duration,
    ) {
        match now.checked_sub(gap.saturating_sub(pause)) {
            Some(as_if) => self.exchanged.insert((peer, doc), as_if),
            None => self.exchanged.remove(&(peer, doc)),
        };
    }

    /// The next exchange with `peer` for `doc` may start at once (there is news to tell).
    pub(super) fn due_now(&mut self, peer: PeerId, doc: DocId) {
        self.exchanged.remove(&(peer, doc));
    }

    /// An exchange with `peer` for `doc` went through, either way.
    pub(super) fn heard(&mut self, peer: PeerId, doc: DocId) {
        self.heard.entry(doc).or_default().insert(peer);
    }

    /// Whether `peer`'s roster for `doc` was heard since it connected.
    pub(super) fn has_heard(&self, peer: &PeerId, doc: &DocId) -> bool {
        self.heard
            .get(doc)
            .is_some_and(|peers| peers.contains(peer))
    }

    /// Whether any peer's roster for `doc` was heard since it connected.
    pub(super) fn heard_any(&self, doc: &DocId) -> bool {
        self.heard.contains_key(doc)
    }

    /// `peer` used key epoch `epoch` for `doc` (remembered only upwards).
    pub(super) fn note_epoch(&mut self, peer: PeerId, doc: DocId, epoch: u32) {
        let known = self.epochs.entry((peer, doc)).or_insert(epoch);
        *known = (*known).max(epoch);
    }

    /// The epoch to seal an exchange with `peer` in: the newest it used with us, or `current`
    /// (ours) if it used none or a newer one we lack.
    pub(super) fn epoch_for(&self, peer: &PeerId, doc: &DocId, current: u32) -> u32 {
        self.epochs
            .get(&(*peer, *doc))
            .map_or(current, |e| (*e).min(current))
    }

    /// `peer` disconnected: what we heard on that connection goes (its epochs stay: a key it
    /// held, it still holds).
    pub(super) fn disconnected(&mut self, peer: &PeerId) {
        self.exchanged.retain(|(p, _), _| p != peer);
        self.heard.retain(|_, peers| {
            peers.remove(peer);
            !peers.is_empty()
        });
    }

    /// Keeps only what concerns the documents `open` says are still here.
    pub(super) fn retain_docs(&mut self, open: impl Fn(&DocId) -> bool) {
        self.exchanged.retain(|(_, doc), _| open(doc));
        self.heard.retain(|doc, _| open(doc));
        self.epochs.retain(|(_, doc), _| open(doc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Duration = Duration::from_secs(2);

    #[test]
    fn an_exchange_waits_its_gap_unless_news_or_a_failure_says_otherwise() {
        let (mut rosters, peer, doc, t0) = (
            Rosters::default(),
            PeerId::random(),
            DocId::random(),
            Instant::now(),
        );
        assert!(rosters.start(peer, doc, t0, GAP));
        assert!(!rosters.start(peer, doc, t0 + GAP / 2, GAP), "too soon");
        assert!(
            rosters.start(peer, doc, t0 + GAP, GAP),
            "the gap has passed"
        );
        let t1 = t0 + GAP;
        rosters.due_now(peer, doc);
        assert!(rosters.start(peer, doc, t1, GAP), "news goes at once");
        let pause = Duration::from_millis(250);
        rosters.failed(peer, doc, t1, GAP, pause);
        assert!(
            !rosters.start(peer, doc, t1 + pause / 2, GAP),
            "a failure pauses"
        );
        assert!(
            rosters.start(peer, doc, t1 + pause, GAP),
            "then it may be tried again"
        );
    }

    #[test]
    fn rosters_heard_are_per_connection_and_epochs_only_rise() {
        let (mut rosters, peer, doc) = (Rosters::default(), PeerId::random(), DocId::random());
        assert!(!rosters.heard_any(&doc));
        rosters.heard(peer, doc);
        assert!(rosters.has_heard(&peer, &doc) && rosters.heard_any(&doc));
        rosters.note_epoch(peer, doc, 3);
        rosters.note_epoch(peer, doc, 1);
        assert_eq!(rosters.epoch_for(&peer, &doc, 5), 3, "the newest it used");
        assert_eq!(rosters.epoch_for(&peer, &doc, 2), 2, "not one we lack");
        assert_eq!(
            rosters.epoch_for(&PeerId::random(), &doc, 5),
            5,
            "ours for a peer we never heard"
        );
        rosters.disconnected(&peer);
        assert!(
            !rosters.has_heard(&peer, &doc) && !rosters.heard_any(&doc),
            "heard again after a reconnect"
        );
        assert_eq!(
            rosters.epoch_for(&peer, &doc, 5),
            3,
            "a key it held, it still holds"
        );
        rosters.retain_docs(|_| false);
        assert_eq!(
            rosters.epoch_for(&peer, &doc, 5),
            5,
            "a deleted document's state goes"
        );
    }
}
