//! Stalled gossip connections: a peer whose gossip send queue keeps overflowing is disconnected,
//! so that both sides redial and gossipsub starts over on a fresh connection.
//!
//! Why: gossipsub gives a connection's stream five (re)opening attempts for its whole life.
//! After that (a receiver closing streams it cannot decode, a peer paused mid-burst) the
//! connection stays up with gossip dead on it: messages for the peer only fill its queue, for as
//! long as the connection lives. Gossipsub reports the overflow per heartbeat (`SlowPeer`);
//! overflow that lasts [`STALL_AFTER`] means nothing is being taken off the queue.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Overflow this long (with no quiet spell of [`QUIET`] between reports) makes a stall. A
/// healthy peer drains its queue within a heartbeat or two of a burst ending.
pub(crate) const STALL_AFTER: Duration = Duration::from_secs(3);
/// A gap this long between overflow reports ends a stall (the peer caught up, or nothing was
/// sent). Longer than a few heartbeats, so that a dead stream under slow typing (one message
/// every few seconds, each one overflowing) still counts as one stall.
pub(crate) const QUIET: Duration = Duration::from_secs(10);

/// Which peers are overflowing, since when.
pub(crate) struct StallWatch {
    overflowing: HashMap<PeerId, Overflow>,
    /// `peerdoc_gossip_stalled_total`: stalled connections closed.
    stalled: Counter,
}

#[derive(Clone, Copy)]
struct Overflow {
    since: Instant,
    last: Instant,
}

impl StallWatch {
    /// A watch, its counter registered in `registry`.
    pub(crate) fn new(registry: &mut Registry) -> StallWatch {
        let stalled = Counter::default();
        registry.register(
            "peerdoc_gossip_stalled",
            "Peers disconnected because their gossip send queue stayed full (they redial)",
            stalled.clone(),
        );
        StallWatch {
            overflowing: HashMap::new(),
            stalled,
        }
    }

    /// Gossipsub reported messages for `peer` dropped at `now`. True: the peer is stalled, close
    /// its connections (counted).
    pub(crate) fn overflowed(&mut self, peer: PeerId, now: Instant) -> bool {
        let entry = self.overflowing.entry(peer).or_insert(Overflow {
            since: now,
            last: now,
        });
        if now.saturating_duration_since(entry.last) > QUIET {
            entry.since = now;
        }
        entry.last = now;
        if now.saturating_duration_since(entry.since) < STALL_AFTER {
            return false;
        }
        self.overflowing.remove(&peer);
        self.stalled.inc();
        true
    }

    /// `peer` disconnected: its next connection starts with an empty queue.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.overflowing.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> StallWatch {
        StallWatch::new(&mut Registry::default())
    }

    #[test]
    fn overflow_that_lasts_is_a_stall_once() {
        let (mut w, peer, t) = (watch(), PeerId::random(), Instant::now());
        let mut stalls = 0;
        for i in 0..20 {
            // A report per heartbeat (700 ms), for 14 s.
            stalls += w.overflowed(peer, t + Duration::from_millis(700 * i)) as u32;
        }
        // Stalled after 3 s; the next stall counts from scratch.
        assert_eq!(stalls, 3);
        assert_eq!(w.stalled.get(), 3);
    }

    #[test]
    fn short_bursts_with_quiet_between_are_no_stall() {
        let (mut w, peer, t) = (watch(), PeerId::random(), Instant::now());
        for burst in 0..10u64 {
            let start = t + Duration::from_secs(burst * 12);
            for i in 0..3 {
                assert!(!w.overflowed(peer, start + Duration::from_millis(700 * i)));
            }
        }
        assert_eq!(w.stalled.get(), 0);
    }

    #[test]
    fn a_dead_stream_under_slow_typing_is_a_stall() {
        let (mut w, peer, t) = (watch(), PeerId::random(), Instant::now());
        // One overflowing message every 2 s.
        assert!(!w.overflowed(peer, t));
        assert!(!w.overflowed(peer, t + Duration::from_secs(2)));
        assert!(w.overflowed(peer, t + Duration::from_secs(4)));
    }

    #[test]
    fn a_reconnect_starts_afresh() {
        let (mut w, peer, t) = (watch(), PeerId::random(), Instant::now());
        assert!(!w.overflowed(peer, t));
        w.forget(&peer);
        assert!(!w.overflowed(peer, t + Duration::from_secs(4)));
        // Another peer's overflow is its own.
        assert!(!w.overflowed(PeerId::random(), t + Duration::from_secs(5)));
    }
}
