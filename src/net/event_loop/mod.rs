//! [`EventLoop`]: the task that alone owns the libp2p `Swarm`. It serves [`Command`]s from
//! [`Net`](super::Net) handles and turns swarm events into [`NetEvent`]s. It never blocks on
//! its consumer: events wait in a bounded backlog (gossip and requests are shed first), so the
//! command channel keeps moving and a consumer waiting on a command can never deadlock with it.

use std::collections::{HashMap, HashSet, VecDeque};

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::gossipsub::IdentTopic;
use libp2p::kad::{self, QueryId};
use libp2p::request_response::OutboundRequestId;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::behaviour::{Behaviour, BehaviourEvent};
use super::faults::Faults;
use super::guard::{self, Bans};
use super::reachability::{is_relayed, NatStatus, Reachability};
use super::rejoin::RejoinWatch;
use super::stall::StallWatch;
use super::{
    Command, ConnectedPeer, DhtKey, DhtMode, NetConfig, NetError, NetEvent, NetStatus, Reply,
};

mod dht;
mod events;

/// Addresses remembered per peer.
const MAX_ADDRS_PER_PEER: usize = 16;
/// Events kept for a slow consumer before gossip and requests are shed.
const MAX_QUEUED_EVENTS: usize = 8192;
/// How often every provided key is announced again (DHT records expire, peers come and go).
const REPROVIDE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);
/// Provider lookups running at once; more are dropped (callers look up again later).
const MAX_LOOKUPS: usize = 64;
/// How often lost relay reservations are renewed.
const RESERVATION_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// A running provider lookup: the providers found so far, and who waits for them.
type Lookup = (Vec<PeerId>, Option<oneshot::Sender<Vec<PeerId>>>);

/// Sole owner of the swarm.
pub(super) struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    pending_dials: HashMap<PeerId, Vec<Reply<()>>>,
    pending_requests: HashMap<OutboundRequestId, (PeerId, Reply<Vec<u8>>)>,
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
    /// Events waiting for room in the events channel.
    queue: VecDeque<NetEvent>,
    /// Listeners that have not reported an address yet; `ready` fires when none are left.
    unreported: HashSet<ListenerId>,
    ready: Option<oneshot::Sender<()>>,
    /// Keys this node provides in the DHT.
    provided: HashSet<DhtKey>,
    /// Running provider lookups.
    lookups: HashMap<QueryId, Lookup>,
    /// Whether the DHT routing table has had a peer yet (records provided before went nowhere).
    dht_joined: bool,
    reach: Reachability,
    /// The DHT mode follows reachability (`DhtMode::Auto`).
    dht_auto: bool,
    /// Whether `Auto` made us a DHT server.
    serving_dht: bool,
    /// This node is a relay server.
    relay_server: bool,
    bans: Bans,
    /// Peers whose gossip queue keeps overflowing.
    stalls: StallWatch,
    /// Peers that owe us their subscriptions after a reconnect.
    rejoins: RejoinWatch,
    /// `peerdoc_connections_refused_total`: inbound connections denied (limits, bans).
    refused: prometheus_client::metrics::counter::Counter,
    /// Test-only message faults (`NetConfig::faults`).
    faults: Option<Faults>,
}

impl EventLoop {
    pub(super) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        listeners: Vec<ListenerId>,
        ready: oneshot::Sender<()>,
        config: &NetConfig,
        registry: &mut prometheus_client::registry::Registry,
    ) -> EventLoop {
        let ready = if listeners.is_empty() {
            // Nothing to wait for.
            let _ = ready.send(());
            None
        } else {
            Some(ready)
        };
        EventLoop {
            swarm,
            commands,
            pending_dials: HashMap::new(),
            pending_requests: HashMap::new(),
            addresses: HashMap::new(),
            queue: VecDeque::new(),
            unreported: listeners.into_iter().collect(),
            ready,
            provided: HashSet::new(),
            lookups: HashMap::new(),
            dht_joined: false,
            reach: Reachability::new(registry),
            dht_auto: config.dht == DhtMode::Auto,
            serving_dht: false,
            relay_server: config.relay_server.is_some(),
            bans: Bans::default(),
            stalls: StallWatch::new(registry),
            rejoins: RejoinWatch::new(registry),
            refused: {
                let refused = prometheus_client::metrics::counter::Counter::default();
                registry.register(
                    "peerdoc_connections_refused",
                    "Inbound connections refused: over the connection limits, or from a banned peer",
                    refused.clone(),
                );
                refused
            },
            faults: faults_of(config, registry),
        }
    }

    pub(super) async fn run(mut self, events: mpsc::Sender<NetEvent>, cancel: CancellationToken) {
        let mut reprovide = tokio::time::interval(REPROVIDE_INTERVAL);
        reprovide.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reservations = tokio::time::interval(RESERVATION_CHECK);
        reservations.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut score_check = tokio::time::interval(guard::SCORE_CHECK);
        score_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = reprovide.tick() => self.provide_all(),
                _ = reservations.tick() => {
                    let nat = self.reach.maintain(&mut self.swarm);
                    self.follow_nat(nat);
                }
                _ = score_check.tick() => {
                    let now = std::time::Instant::now();
                    self.bans.maintain(&mut self.swarm, now);
                    self.close_silent_rejoins(now);
                }
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(event) = next_held(&mut self.faults) => self.enqueue(event),
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                permit = events.reserve(), if !self.queue.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.queue.pop_front() {
                            permit.send(event);
                        }
                    }
                    // Nobody listens any more: the node is shutting down.
                    Err(_) => self.queue.clear(),
                },
            }
        }
        tracing::debug!("network event loop stopped");
    }

    fn remember(&mut self, peer: PeerId, addrs: impl IntoIterator<Item = Multiaddr>) {
        let known = self.addresses.entry(peer).or_default();
        for addr in addrs {
            if !known.contains(&addr) {
                known.insert(0, addr);
            }
        }
        known.truncate(MAX_ADDRS_PER_PEER);
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Dial(peer, addrs, reply) => {
                self.remember(peer, addrs);
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(()));
                    return;
                }
                let addrs = self.addresses.get(&peer).cloned().unwrap_or_default();
                match self
                    .swarm
                    .dial(DialOpts::peer_id(peer).addresses(addrs).build())
                {
                    Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {
                        self.pending_dials.entry(peer).or_default().push(reply);
                    }
                    Err(e) => {
                        tracing::debug!(%peer, "dial failed: {e}");
                        let _ = reply.send(Err(NetError::Dial {
                            peer,
                            reason: super::dial_error::short(&e),
                        }));
                    }
                }
            }
            Command::Subscribe(topic) => {
                let topic = IdentTopic::new(topic);
                let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
                if let Err(e) = gossipsub.subscribe(&topic) {
                    tracing::warn!("gossip subscribe failed: {e}");
                }
                if let Err(e) = gossipsub.set_topic_params(topic, guard::topic_score_params()) {
                    tracing::warn!("gossip scoring is off: {e}");
                }
            }
            Command::Unsubscribe(topic) => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .unsubscribe(&IdentTopic::new(topic));
            }
            Command::Publish(topic, data, reply) => {
                tracing::trace!(target: "peerdoc::stage", "net: publish");
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(IdentTopic::new(topic), data)
                    .map(|_| ())
                    .map_err(|e| NetError::Publish(e.to_string()));
                tracing::trace!(target: "peerdoc::stage", "net: handed to gossipsub");
                match reply {
                    Some(reply) => {
                        let _ = reply.send(result);
                    }
                    // No peer subscribed yet is normal; anti-entropy delivers it later either way.
                    None => {
                        if let Err(e) = result {
                            tracing::debug!("gossip not sent: {e}");
                        }
                    }
                }
            }
            Command::Validate(id, via, verdict) => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &via, verdict);
            }
            Command::Ban(peer, reason) => {
                self.bans
                    .ban(&mut self.swarm, peer, reason, std::time::Instant::now());
            }
            Command::Request(peer, data, reply) => {
                let addrs = self.addresses.get(&peer).cloned().unwrap_or_default();
                let id = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_request_with_addresses(&peer, data, addrs);
                self.pending_requests.insert(id, (peer, reply));
            }
            Command::Respond(channel, data) => {
                if self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, data)
                    .is_err()
                {
                    tracing::debug!("sync response dropped: the requester went away");
                }
            }
            Command::Provide(key) => self.provide_key(key),
            Command::Unprovide(key) => self.unprovide_key(key),
            Command::FindProviders(key, reply) => self.find_providers(key, reply),
            Command::Status(reply) => {
                let connected = self
                    .swarm
                    .connected_peers()
                    .map(|p| ConnectedPeer {
                        peer: *p,
                        addrs: self.addresses.get(p).cloned().unwrap_or_default(),
                        kind: self.reach.connection_kind(p),
                    })
                    .collect();
                let _ = reply.send(NetStatus {
                    listen_addrs: self.swarm.listeners().cloned().collect(),
                    external_addrs: self
                        .swarm
                        .external_addresses()
                        .filter(|a| !is_relayed(a))
                        .cloned()
                        .collect(),
                    nat: self.reach.nat(),
                    reservations: self.reach.reservations(),
                    connected,
                });
            }
        }
    }

    fn addresses_changed(&mut self) {
        let mut addrs: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        for addr in self.swarm.listeners() {
            if !addrs.contains(addr) {
                addrs.push(addr.clone());
            }
        }
        self.emit(NetEvent::Addresses(addrs));
    }

    /// With `DhtMode::Auto`, serve the DHT exactly while publicly reachable.
    fn follow_nat(&mut self, nat: NatStatus) {
        let serve = nat == NatStatus::Public;
        if self.dht_auto && serve != self.serving_dht {
            self.serving_dht = serve;
            let mode = if serve {
                kad::Mode::Server
            } else {
                kad::Mode::Client
            };
            self.swarm.behaviour_mut().kad.set_mode(Some(mode));
        }
    }

    /// Closes the connections of reconnected peers that have not announced their subscriptions
    /// again (`rejoin`); both sides redial and gossipsub starts over.
    fn close_silent_rejoins(&mut self, now: std::time::Instant) {
        for peer in self.rejoins.overdue(now) {
            if self.swarm.is_connected(&peer) {
                tracing::warn!(%peer, "reconnected peer announced no gossip subscriptions (it kept a stale connection): reconnecting");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    /// Hands an event to the consumer (through the test-only faults, if any).
    fn emit(&mut self, event: NetEvent) {
        let event = match self.faults.as_mut() {
            Some(faults) => match faults.pass(event) {
                Some(event) => event,
                None => return,
            },
            None => event,
        };
        self.enqueue(event);
    }

    fn enqueue(&mut self, event: NetEvent) {
        if self.queue.len() >= MAX_QUEUED_EVENTS
            && matches!(event, NetEvent::Gossip { .. } | NetEvent::Request { .. })
        {
            // Shed load: unvalidated gossip expires, a dropped request fails at its sender.
            tracing::warn!("overloaded: dropping a network event");
            return;
        }
        self.queue.push_back(event);
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr {
                address,
                listener_id,
            } => {
                tracing::info!("listening on {address}/p2p/{}", self.swarm.local_peer_id());
                // A relay runs on a public host (that is its job): its own addresses are what
                // it announces, and libp2p's relay serves only with a confirmed address.
                if self.relay_server && !super::is_loopback(&address) && !is_relayed(&address) {
                    self.swarm.add_external_address(address.clone());
                }
                self.addresses_changed();
                self.unreported.remove(&listener_id);
                if self.unreported.is_empty() {
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(());
                    }
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let remote = endpoint.get_remote_address().clone();
                if endpoint.is_dialer() && !is_relayed(&remote) {
                    self.remember(peer_id, [remote.clone()]);
                }
                self.reach
                    .connected(peer_id, connection_id, endpoint.is_relayed(), &remote);
                for waiter in self.pending_dials.remove(&peer_id).unwrap_or_default() {
                    let _ = waiter.send(Ok(()));
                }
                if num_established.get() == 1 {
                    self.rejoins.connected(peer_id, std::time::Instant::now());
                    self.emit(NetEvent::Connected { peer: peer_id });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.reach.disconnected(peer_id, connection_id);
                if num_established == 0 {
                    self.stalls.forget(&peer_id);
                    self.rejoins
                        .disconnected(peer_id, std::time::Instant::now());
                    self.emit(NetEvent::Disconnected { peer: peer_id });
                }
            }
            SwarmEvent::ListenerClosed { listener_id, .. } => {
                self.reach.listener_closed(listener_id);
                self.addresses_changed();
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } if !self.swarm.is_connected(&peer) => {
                let waiters = self.pending_dials.remove(&peer).unwrap_or_default();
                if !waiters.is_empty() {
                    tracing::debug!(%peer, "dial failed: {error}");
                }
                let reason = super::dial_error::short(&error);
                for waiter in waiters {
                    let _ = waiter.send(Err(NetError::Dial {
                        peer,
                        reason: reason.clone(),
                    }));
                }
            }
            SwarmEvent::IncomingConnectionError {
                error: libp2p::swarm::ListenError::Denied { cause },
                send_back_addr,
                ..
            } => {
                self.refused.inc();
                tracing::debug!(addr = %send_back_addr, "inbound connection refused: {cause}");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::ExpiredListenAddr { .. } => self.addresses_changed(),
            SwarmEvent::ExternalAddrConfirmed { .. } | SwarmEvent::ExternalAddrExpired { .. } => {
                self.addresses_changed();
                let nat = self.reach.maintain(&mut self.swarm);
                self.follow_nat(nat);
            }
            _ => {}
        }
    }
}

/// The message faults `config` asks for (test-only builds).
#[cfg(feature = "test-faults")]
fn faults_of(
    config: &NetConfig,
    registry: &mut prometheus_client::registry::Registry,
) -> Option<Faults> {
    config.faults.map(|faults| Faults::new(faults, registry))
}

/// Without the `test-faults` feature there are none.
#[cfg(not(feature = "test-faults"))]
fn faults_of(_: &NetConfig, _: &mut prometheus_client::registry::Registry) -> Option<Faults> {
    None
}

/// The next held event that comes due; never resolves without faults or held events.
async fn next_held(faults: &mut Option<Faults>) -> Option<NetEvent> {
    match faults {
        Some(faults) if faults.is_holding() => faults.held().next().await,
        _ => std::future::pending().await,
    }
}
