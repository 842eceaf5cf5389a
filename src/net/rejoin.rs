//! Peers whose gossip subscriptions do not come back after a reconnect: their connections are
//! closed, so that both sides start over.
//!
//! Why: gossipsub announces a node's subscriptions only on its *first* connection to a peer.
//! When one side drops a connection that the other still thinks alive (a node paused while its
//! peer closed the stalled connection, a laptop that slept, a NAT that forgot the mapping), the
//! other side counts the new connection as a second one and never announces again. We then do
//! not know the peer listens on our documents, send it no gossip, and never will for as long as
//! its connection lives. A peer that had announced subscriptions before it disconnected owes
//! them again within [`WAIT`] of reconnecting; if they do not come, its connections are closed
//! (which ends the other side's stale one too, once it notices) and it is watched again on the
//! next reconnect, waiting twice as long each time, at most [`ATTEMPTS`] times.
//!
//! The right fix is in gossipsub (announce on every new connection; rust-libp2p issue #5097,
//! open); until then this is the depth we own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// How long a reconnected peer has to announce its subscriptions again (they are the first
/// thing gossipsub sends on a connection), doubled after each closing.
pub(crate) const WAIT: Duration = Duration::from_secs(5);
/// Closings per peer before we stop asking (it may really have left every topic meanwhile).
pub(crate) const ATTEMPTS: u32 = 4;
/// A peer that stays away this long is forgotten: its next connection is a fresh start anyway
/// on both sides' gossipsub if it was a real disconnect, and the map stays small.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Peers watched at once; more are not watched (each costs an honest disconnect to get here).
const MAX_OWING: usize = 4096;

/// Who has announced subscriptions, and who owes them after a reconnect.
pub(crate) struct RejoinWatch {
    /// Topics each connected peer has announced (and not left).
    topics: HashMap<PeerId, usize>,
    /// Peers that had announced topics when they disconnected.
    owing: HashMap<PeerId, Owing>,
    /// `peerdoc_gossip_rejoined_total`: peers disconnected for not announcing again.
    rejoined: Counter,
}

#[derive(Clone, Copy, Debug)]
struct Owing {
    /// When the peer first disconnected with topics announced.
    since: Instant,
    /// Closings so far.
    closed: u32,
    /// While connected: when its subscriptions are due.
    due: Option<Instant>,
}

impl RejoinWatch {
    /// A watch, its counter registered in `registry`.
    pub(crate) fn new(registry: &mut Registry) -> RejoinWatch {
        let rejoined = Counter::default();
        registry.register(
            "peerdoc_gossip_rejoined",
            "Peers disconnected because they did not announce their gossip subscriptions again after a reconnect (they redial)",
            rejoined.clone(),
        );
        RejoinWatch {
            topics: HashMap::new(),
            owing: HashMap::new(),
            rejoined,
        }
    }

    /// `peer` announced a topic.
    pub(crate) fn subscribed(&mut self, peer: PeerId) {
        *self.topics.entry(peer).or_default() += 1;
        self.owing.remove(&peer);
    }

    /// `peer` left a topic.
    pub(crate) fn unsubscribed(&mut self, peer: &PeerId) {
        if let Some(count) = self.topics.get_mut(peer) {
            *count = count.saturating_sub(1);
        }
    }

    /// `peer`'s first connection is up: if it owes its subscriptions, they are due.
    pub(crate) fn connected(&mut self, peer: PeerId, now: Instant) {
        self.topics.remove(&peer);
        if let Some(owing) = self.owing.get_mut(&peer) {
            owing.due = Some(now + WAIT * 2u32.pow(owing.closed));
        }
    }

    /// `peer`'s last connection closed at `now`.
    pub(crate) fn disconnected(&mut self, peer: PeerId, now: Instant) {
        let announced = self.topics.remove(&peer).is_some_and(|n| n > 0);
        if let Some(owing) = self.owing.get_mut(&peer) {
            owing.due = None;
        } else if announced && self.owing.len() < MAX_OWING {
            self.owing.insert(
                peer,
                Owing {
                    since: now,
                    closed: 0,
                    due: None,
                },
            );
        }
    }

    /// Connected peers whose subscriptions are overdue at `now`: close their connections
    /// (counted). Also forgets peers away too long.
    pub(crate) fn overdue(&mut self, now: Instant) -> Vec<PeerId> {
        let mut overdue = Vec::new();
        self.owing.retain(|peer, owing| match owing.due {
            None => now.saturating_duration_since(owing.since) < FORGET_AFTER,
            Some(due) if due > now => true,
            Some(_) => {
                overdue.push(*peer);
                owing.due = None;
                owing.closed += 1;
                owing.closed < ATTEMPTS
            }
        });
        self.rejoined.inc_by(overdue.len() as u64);
        overdue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> RejoinWatch {
        RejoinWatch::new(&mut Registry::default())
    }

    /// `p` connects at `t`, announces a topic, and disconnects at `gone`.
    fn announced_then_gone(w: &mut RejoinWatch, p: PeerId, t: Instant, gone: Instant) {
        w.connected(p, t);
        w.subscribed(p);
        w.disconnected(p, gone);
    }

    #[test]
    fn a_peer_that_announces_again_is_left_alone() {
        let (mut w, p, t) = (watch(), PeerId::random(), Instant::now());
        announced_then_gone(&mut w, p, t, t + Duration::from_secs(1));
        w.connected(p, t + Duration::from_secs(2));
        w.subscribed(p);
        assert!(w.overdue(t + Duration::from_secs(60)).is_empty());
        assert_eq!(w.rejoined.get(), 0);
    }

    #[test]
    fn a_silent_reconnect_is_closed_with_growing_patience_then_given_up() {
        let (mut w, p, t) = (watch(), PeerId::random(), Instant::now());
        announced_then_gone(&mut w, p, t, t);
        let mut now = t;
        for attempt in 0..ATTEMPTS {
            w.connected(p, now);
            let patience = WAIT * 2u32.pow(attempt);
            assert!(w
                .overdue(now + patience - Duration::from_millis(1))
                .is_empty());
            now += patience;
            assert_eq!(w.overdue(now), vec![p], "attempt {attempt}");
            // Our closing ends the connection.
            w.disconnected(p, now);
        }
        assert_eq!(w.rejoined.get(), u64::from(ATTEMPTS));
        w.connected(p, now);
        assert!(w.overdue(now + Duration::from_secs(300)).is_empty());
    }

    #[test]
    fn peers_that_never_announced_or_left_every_topic_owe_nothing() {
        let (mut w, t) = (watch(), Instant::now());
        let (quiet, left) = (PeerId::random(), PeerId::random());
        for p in [quiet, left] {
            w.connected(p, t);
        }
        w.subscribed(left);
        w.unsubscribed(&left);
        for p in [quiet, left] {
            w.disconnected(p, t);
            w.connected(p, t);
        }
        assert!(w.overdue(t + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn a_peer_away_too_long_is_forgotten() {
        let (mut w, p, t) = (watch(), PeerId::random(), Instant::now());
        announced_then_gone(&mut w, p, t, t);
        assert!(w.overdue(t + FORGET_AFTER).is_empty());
        assert!(w.owing.is_empty());
        w.connected(p, t + FORGET_AFTER);
        assert!(w.overdue(t + FORGET_AFTER * 2).is_empty());
    }
}
