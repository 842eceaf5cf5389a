//! [`Reachability`]: how this node is reached and how it reaches its peers, kept by the event
//! loop. Whether the node is public (AutoNAT confirmed an external address), private (AutoNAT
//! tests failed) or unknown; which relays it knows and holds reservations on (while not public:
//! a relay restart drops the reservation, and it is renewed); and, per peer, whether the
//! connection is direct or relayed (relayed ones are closed as soon as a direct one exists, so
//! sync uses the direct path after a hole punch).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
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

/// One connection's far end.
#[derive(Debug, Clone, Copy)]
struct Remote {
    relayed: bool,
    ip: Option<IpAddr>,
}

pub(super) struct Reachability {
    nat: NatStatus,
    /// Since when we have had connections (so AutoNAT could have confirmed an address).
    unconfirmed_since: Option<Instant>,
    /// An AutoNAT test of one of our addresses failed.
    test_failed: bool,
    /// Open connections per peer: whether each goes through a relay, and the peer's IP on it.
    connections: HashMap<PeerId, HashMap<ConnectionId, Remote>>,
    /// Addresses confirmed by an AutoNAT server on another host outside our LAN.
    confirmed_from_afar: HashSet<Multiaddr>,
    /// `peerdoc_autonat_local_confirmations_total`: confirmations that did not count.
    local_confirmations: prometheus_client::metrics::counter::Counter,
    /// Relay servers we know (identify says they serve the hop protocol), and how we reach them.
    relays: HashMap<PeerId, Multiaddr>,
    /// Reservations asked for, by relay.
    reservations: HashMap<PeerId, ListenerId>,
    /// Reservations the relay accepted.
    accepted: HashSet<PeerId>,
    /// Relayed connections superseded by a direct one, and when to close them.
    superseded: Vec<(Instant, ConnectionId)>,
}

impl Reachability {
    pub(super) fn new(registry: &mut prometheus_client::registry::Registry) -> Reachability {
        let local_confirmations = prometheus_client::metrics::counter::Counter::default();
        registry.register(
            "peerdoc_autonat_local_confirmations",
            "AutoNAT confirmations not counted as public reachability: the server was on this \
             host or its LAN, or the address tested was a private one",
            local_confirmations.clone(),
        );
        Reachability {
            nat: NatStatus::Unknown,
            unconfirmed_since: None,
            test_failed: false,
            connections: HashMap::new(),
            confirmed_from_afar: HashSet::new(),
            local_confirmations,
            relays: HashMap::new(),
            reservations: HashMap::new(),
            accepted: HashSet::new(),
            superseded: Vec::new(),
        }
    }

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
            .is_some_and(|conns| conns.values().any(|c| !c.relayed));
        if direct {
            ConnectionKind::Direct
        } else {
            ConnectionKind::Relayed
        }
    }

    /// A connection opened (`relayed`: through a relay, on either side), to `remote`. A direct
    /// one replaces relayed ones to the same peer, after [`RELAYED_GRACE`].
    pub(super) fn connected(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        relayed: bool,
        remote: &Multiaddr,
    ) {
        let conns = self.connections.entry(peer).or_default();
        let ip = if relayed { None } else { ip_of(remote) };
        conns.insert(id, Remote { relayed, ip });
        if !relayed {
            let close_at = Instant::now() + RELAYED_GRACE;
            for (id, remote) in conns.iter() {
                if remote.relayed {
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

    /// An AutoNAT test of one of our addresses (`tested`, by `server`) ended; returns what we
    /// know now. A success confirms the address in the swarm, which is what makes the node
    /// public; one from a server on this host or its LAN, or of a private address, proves
    /// nothing about the internet, so that address is taken back out (unless a server from
    /// afar confirmed it too), and counted.
    pub(super) fn autonat_result(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        server: PeerId,
        tested: &Multiaddr,
        reachable: bool,
    ) -> NatStatus {
        if !reachable {
            self.test_failed = true;
        } else {
            let own: Vec<IpAddr> = swarm.listeners().filter_map(ip_of).collect();
            if confirms_public(tested, self.server_ip(&server), &own) {
                self.confirmed_from_afar.insert(tested.clone());
            } else if !self.confirmed_from_afar.contains(tested) {
                tracing::debug!(%server, addr = %tested, "AutoNAT confirmation from this host or LAN: not public");
                self.local_confirmations.inc();
                swarm.remove_external_address(tested);
            }
        }
        self.maintain(swarm)
    }

    /// The IP a server is directly connected from, if any.
    fn server_ip(&self, server: &PeerId) -> Option<IpAddr> {
        self.connections
            .get(server)?
            .values()
            .find_map(|remote| remote.ip)
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
        let external: HashSet<&Multiaddr> = swarm.external_addresses().collect();
        self.confirmed_from_afar.retain(|a| external.contains(a));
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

/// The IP address an address starts with, if it does.
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(ip.into()),
        Protocol::Ip6(ip) => Some(ip.into()),
        _ => None,
    }
}

/// An address only this host or its LAN can use: loopback, private, link-local, shared
/// (carrier-grade NAT), unique-local or unspecified.
fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(ip) => {
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some_and(|v4| is_local(v4.into()))
        }
    }
}

/// Whether an AutoNAT server at `server` (the IP we see it at; `None`: through a relay, or
/// unknown) confirming `tested` shows that the internet can reach us there: only a server on
/// another host, outside our LAN, testing an address that is not a private one.
fn confirms_public(tested: &Multiaddr, server: Option<IpAddr>, own: &[IpAddr]) -> bool {
    let Some(server) = server else {
        return false;
    };
    let tested_ok = ip_of(tested).is_none_or(|ip| !is_local(ip));
    tested_ok && !is_local(server) && !own.contains(&server)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_a_server_from_afar_testing_a_public_address_makes_a_node_public() {
        let public = addr("/ip4/198.51.100.10/tcp/4001");
        let far: IpAddr = "203.0.113.5".parse().unwrap();
        assert!(confirms_public(&public, Some(far), &[]));
        // The server on this host (loopback, or one of our own addresses) or on our LAN.
        for server in [
            "127.0.0.1",
            "192.168.1.20",
            "10.0.0.3",
            "100.64.1.1",
            "fe80::1",
            "::1",
        ] {
            let server: IpAddr = server.parse().unwrap();
            assert!(!confirms_public(&public, Some(server), &[]), "{server}");
        }
        let own: IpAddr = "198.51.100.10".parse().unwrap();
        assert!(!confirms_public(&public, Some(own), &[own]));
        // Through a relay: we cannot tell where it is.
        assert!(!confirms_public(&public, None, &[]));
        // A private address confirmed by anyone reaches only a LAN.
        assert!(!confirms_public(
            &addr("/ip4/192.168.1.5/tcp/4001"),
            Some(far),
            &[]
        ));
        assert!(!confirms_public(
            &addr("/ip6/fd00::5/tcp/4001"),
            Some(far),
            &[]
        ));
    }
}
