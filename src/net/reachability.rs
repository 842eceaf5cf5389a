//! [`Reachability`]: how this node is reached and how it reaches its peers, kept by the event
//! loop. Whether the node is public (AutoNAT confirmed an external address), private (AutoNAT
//! tests failed) or unknown; which relays it knows and holds reservations on (while not public:
//! a relay restart drops the reservation, and it is renewed); and, per peer, whether the
//! connection is direct or relayed (relayed ones are closed as soon as a direct one exists, so
//! sync uses the direct path after a hole punch).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, Swarm};

use super::behaviour::Behaviour;

/// Relays this node holds reservations on at most.
const MAX_RESERVATIONS: usize = 2;
/// Connected this long without any address confirmed by AutoNAT means private. (A router that
/// drops unsolicited packets makes the dial-back hang, and AutoNAT v2 servers give up without
/// telling the client: so failure shows as silence.)
const PRIVATE_AFTER: Duration = Duration::from_secs(20);
/// A relayed connection is closed this long after a direct one to the same peer opened, so
/// requests already on it finish.
const RELAYED_GRACE: Duration = Duration::from_secs(10);

/// Whether this node can be reached from the internet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NatStatus {
    /// Not known yet.
    #[default]
    Unknown,
    /// AutoNAT confirmed an address others can dial.
    Public,
    /// AutoNAT tests failed: behind a NAT or firewall; reachable through relays.
    Private,
}

impl NatStatus {
    /// `unknown`, `public` or `private`.
    pub fn as_str(self) -> &'static str {
        match self {
            NatStatus::Unknown => "unknown",
            NatStatus::Public => "public",
            NatStatus::Private => "private",
        }
    }
}

/// How a peer is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionKind {
    Direct,
    Relayed,
}

pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

pub(super) struct Reachability {
    nat: NatStatus,
    /// Since when we have had connections (so AutoNAT could have confirmed an address).
    unconfirmed_since: Option<Instant>,
    /// An AutoNAT test of one of our addresses failed.
    test_failed: bool,
    /// Open connections per peer, and whether each goes through a relay.
    connections: HashMap<PeerId, HashMap<ConnectionId, bool>>,
    /// Relay servers we know (identify says they serve the hop protocol), and how we reach them.
    relays: HashMap<PeerId, Multiaddr>,
    /// Reservations asked for, by relay.
    reservations: HashMap<PeerId, ListenerId>,
    /// Reservations the relay accepted.
    accepted: HashSet<PeerId>,
    /// Relayed connections superseded by a direct one, and when to close them.
    superseded: Vec<(Instant, ConnectionId)>,
}

impl Default for Reachability {
    fn default() -> Self {
        Reachability {
            nat: NatStatus::Unknown,
            unconfirmed_since: None,
            test_failed: false,
            connections: HashMap::new(),
            relays: HashMap::new(),
            reservations: HashMap::new(),
            accepted: HashSet::new(),
            superseded: Vec::new(),
        }
    }
}

impl Reachability {
    pub(super) fn nat(&self) -> NatStatus {
        self.nat
    }

    /// Relays that accepted our reservation.
    pub(super) fn reservations(&self) -> Vec<PeerId> {
        self.accepted.iter().copied().collect()
    }

    pub(super) fn connection_kind(&self, peer: &PeerId) -> ConnectionKind {
        let direct = self
            .connections
            .get(peer)
            .is_some_and(|conns| conns.values().any(|relayed| !relayed));
        if direct {
            ConnectionKind::Direct
        } else {
            ConnectionKind::Relayed
        }
    }

    /// A connection opened (`relayed`: through a relay, on either side). A direct one
    /// replaces relayed ones to the same peer, after [`RELAYED_GRACE`].
    pub(super) fn connected(&mut self, peer: PeerId, id: ConnectionId, relayed: bool) {
        let conns = self.connections.entry(peer).or_default();
        conns.insert(id, relayed);
        if !relayed {
            let close_at = Instant::now() + RELAYED_GRACE;
            for (id, relayed) in conns.iter() {
                if *relayed {
                    tracing::debug!(%peer, "direct connection established; the relayed one goes");
                    self.superseded.push((close_at, *id));
                }
            }
        }
    }

    pub(super) fn disconnected(&mut self, peer: PeerId, id: ConnectionId) {
        if let Some(conns) = self.connections.get_mut(&peer) {
            conns.remove(&id);
            if conns.is_empty() {
                self.connections.remove(&peer);
            }
        }
    }

    /// A peer serves as a relay; `addr` is how we reach it.
    pub(super) fn relay_found(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        relay: PeerId,
        addr: Multiaddr,
    ) {
        if is_relayed(&addr) {
            return;
        }
        let mut addr = addr;
        if let Some(Protocol::P2p(_)) = addr.iter().last() {
            addr.pop();
        }
        self.relays.insert(relay, addr);
        self.maintain(swarm);
    }

    /// An AutoNAT test of one of our addresses ended; returns what we know now. (A success
    /// confirms the address in the swarm, which is what makes the node public.)
    pub(super) fn autonat_result(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        reachable: bool,
    ) -> NatStatus {
        if !reachable {
            self.test_failed = true;
        }
        self.maintain(swarm)
    }

    pub(super) fn reservation_accepted(&mut self, relay: PeerId) {
        if self.reservations.contains_key(&relay) {
            self.accepted.insert(relay);
        }
    }

    /// A listener closed: if it was a reservation, it is gone (the relay went away).
    pub(super) fn listener_closed(&mut self, id: ListenerId) {
        let gone: Vec<PeerId> = self
            .reservations
            .iter()
            .filter(|(_, listener)| **listener == id)
            .map(|(relay, _)| *relay)
            .collect();
        for relay in gone {
            tracing::info!(%relay, "relay reservation lost; will renew");
            self.reservations.remove(&relay);
            self.accepted.remove(&relay);
        }
    }

    /// Called now and then and when our confirmed addresses change. Derives the NAT status in
    /// one place: public while a direct address is confirmed; else private after a failed test
    /// or a long silence; else unknown. Holds reservations on up to [`MAX_RESERVATIONS`] known
    /// relays while not public, and closes superseded relayed connections. Returns the status.
    pub(super) fn maintain(&mut self, swarm: &mut Swarm<Behaviour>) -> NatStatus {
        let now = Instant::now();
        self.superseded.retain(|(at, id)| {
            if *at <= now {
                swarm.close_connection(*id);
            }
            *at > now
        });
        if !self.connections.is_empty() {
            self.unconfirmed_since.get_or_insert(now);
        }
        let silent = self
            .unconfirmed_since
            .is_some_and(|since| now.duration_since(since) >= PRIVATE_AFTER);
        let nat = if swarm.external_addresses().any(|a| !is_relayed(a)) {
            NatStatus::Public
        } else if self.test_failed || silent {
            NatStatus::Private
        } else {
            NatStatus::Unknown
        };
        if nat != self.nat {
            tracing::info!(
                from = self.nat.as_str(),
                to = nat.as_str(),
                "reachability changed"
            );
            self.nat = nat;
        }
        if self.nat == NatStatus::Public {
            return self.nat;
        }
        let candidates: Vec<(PeerId, Multiaddr)> = self
            .relays
            .iter()
            .filter(|(relay, _)| !self.reservations.contains_key(relay))
            .map(|(relay, addr)| (*relay, addr.clone()))
            .collect();
        for (relay, addr) in candidates {
            if self.reservations.len() >= MAX_RESERVATIONS {
                break;
            }
            let circuit = addr.with(Protocol::P2p(relay)).with(Protocol::P2pCircuit);
            match swarm.listen_on(circuit.clone()) {
                Ok(id) => {
                    tracing::debug!(%relay, "asking for a relay reservation");
                    self.reservations.insert(relay, id);
                }
                Err(e) => tracing::debug!(%relay, "cannot reserve on relay: {e}"),
            }
        }
        self.nat
    }
}
