//! Abuse limits of the network layer: gossipsub peer scoring (an invalid message costs its
//! deliverer score quadratically, so a few put it on the graylist), connection limits, and
//! [`Bans`]: peers that fall under the graylist threshold or that the sync driver reports are
//! disconnected and refused for [`BAN_TIME`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::gossipsub::{PeerScoreParams, PeerScoreThresholds, TopicScoreParams};
use libp2p::{connection_limits, PeerId, Swarm};

use super::behaviour::Behaviour;

/// How often scores are checked for peers to ban (well within the time three invalid messages
/// stay under the graylist threshold as their count decays).
pub(crate) const SCORE_CHECK: Duration = Duration::from_secs(1);
/// How long a misbehaving peer is disconnected and refused.
pub(crate) const BAN_TIME: Duration = Duration::from_secs(600);
/// Bans held at once; the oldest is lifted first when more are needed (a flood of fresh peer
/// ids cannot grow the list without bound, and each id costs the attacker a new connection).
const MAX_BANS: usize = 4096;
/// Connections being set up at once, each way.
const MAX_PENDING: u32 = 64;
/// Connections to one peer (a relayed one and a direct one during a hole punch, and a
/// simultaneous dial from both sides).
const MAX_PER_PEER: u32 = 4;
/// Above this share of the machine's memory the node accepts no new connections.
pub(crate) const MAX_MEMORY_SHARE: f64 = 0.8;
/// Default limit on inbound connections (the config file's `max_connections`).
pub(crate) const DEFAULT_MAX_CONNECTIONS: u32 = 256;

pub(crate) fn connection_limits(max_inbound: u32) -> connection_limits::ConnectionLimits {
    connection_limits::ConnectionLimits::default()
        .with_max_pending_incoming(Some(MAX_PENDING))
        .with_max_pending_outgoing(Some(MAX_PENDING))
        .with_max_established_incoming(Some(max_inbound))
        .with_max_established_per_peer(Some(MAX_PER_PEER))
}

/// Score thresholds: gossipsub's defaults. Below `graylist_threshold` gossipsub ignores a
/// peer's messages, and [`Bans::check_scores`] disconnects it.
pub(crate) fn score_thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds::default()
}

/// Scoring that only punishes: peers earn nothing for delivering (documents are quiet, so
/// delivery counts say little) and colocation is not penalised (members behind one NAT, or a
/// test network on loopback, share an address). What costs: invalid messages (rejected by the
/// sync driver: undecryptable, malformed, refused by the document) and gossipsub protocol
/// misbehaviour (broken promises, excessive IWANTs).
pub(crate) fn score_params() -> PeerScoreParams {
    PeerScoreParams {
        app_specific_weight: 0.0,
        ip_colocation_factor_weight: 0.0,
        // A member that cannot keep up (a paused laptop, a slow link) is no offender: with
        // gossipsub's default weight, a few hundred messages its queue could not take sank its
        // score below the publish threshold (our edits were not even sent to it) and then the
        // graylist, which bans it for ten minutes. A stalled connection is recycled instead
        // (`stall::StallWatch`).
        slow_peer_weight: 0.0,
        ..PeerScoreParams::default()
    }
}

/// Per-document topic scoring: each invalid message delivered counts, squared, at -20;
/// three within a few seconds pass the graylist threshold (-80), two do not. The count decays
/// by 10% a second, so an honest peer's rare mistake is forgotten.
pub(crate) fn topic_score_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -20.0,
        invalid_message_deliveries_decay: 0.9,
        ..TopicScoreParams::default()
    }
}

/// Peers banned until an instant.
#[derive(Default)]
pub(crate) struct Bans {
    until: HashMap<PeerId, Instant>,
}

impl Bans {
    /// Disconnects `peer` and refuses it until [`BAN_TIME`] has passed.
    pub(crate) fn ban(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peer: PeerId,
        reason: &str,
        now: Instant,
    ) {
        if peer == *swarm.local_peer_id() {
            return;
        }
        if self.until.len() >= MAX_BANS && !self.until.contains_key(&peer) {
            if let Some(oldest) = self.until.iter().min_by_key(|(_, t)| **t).map(|(p, _)| *p) {
                self.lift(swarm, oldest);
            }
        }
        if self.until.insert(peer, now + BAN_TIME).is_none() {
            tracing::warn!(%peer, "peer banned for {} s: {reason}", BAN_TIME.as_secs());
        }
        swarm.behaviour_mut().blocked.block_peer(peer);
    }

    fn lift(&mut self, swarm: &mut Swarm<Behaviour>, peer: PeerId) {
        self.until.remove(&peer);
        swarm.behaviour_mut().blocked.unblock_peer(peer);
    }

    /// Lifts expired bans and bans connected peers gossipsub has graylisted.
    pub(crate) fn maintain(&mut self, swarm: &mut Swarm<Behaviour>, now: Instant) {
        let expired: Vec<PeerId> = self
            .until
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in expired {
            tracing::info!(%peer, "ban lifted");
            self.lift(swarm, peer);
        }
        let graylist = score_thresholds().graylist_threshold;
        let graylisted: Vec<PeerId> = swarm
            .connected_peers()
            .filter(|peer| {
                swarm
                    .behaviour()
                    .gossipsub
                    .peer_score(peer)
                    .is_some_and(|score| score < graylist)
            })
            .copied()
            .collect();
        for peer in graylisted {
            self.ban(swarm, peer, "sent invalid gossip", now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoring_parameters_are_valid() {
        score_params().validate().unwrap();
        score_thresholds().validate().unwrap();
        topic_score_params().validate().unwrap();
    }

    #[test]
    fn three_invalid_messages_pass_the_graylist_threshold_and_two_do_not() {
        let params = topic_score_params();
        let score = |n: f64| params.topic_weight * n * n * params.invalid_message_deliveries_weight;
        let graylist = score_thresholds().graylist_threshold;
        assert!(score(2.0) >= graylist);
        assert!(score(3.0) < graylist);
        // Three stay under it for a few score checks while they decay.
        let decayed = 3.0 * params.invalid_message_deliveries_decay.powi(3);
        assert!(score(decayed) < graylist);
    }
}
