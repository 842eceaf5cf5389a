//! [`EventLoop`]: the task that alone owns the libp2p `Swarm`. It serves [`Command`]s from
//! [`Net`](super::Net) handles and turns swarm events into [`NetEvent`]s. It never blocks on
//! its consumer: events wait in a bounded backlog (gossip and requests are shed first), so the
//! command channel keeps moving and a consumer waiting on a command can never deadlock with it.

use std::collections::{HashMap, HashSet, VecDeque};

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{identify, mdns, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::behaviour::{Behaviour, BehaviourEvent};
use super::{Command, NetError, NetEvent, NetStatus, Reply};

/// Addresses remembered per peer.
const MAX_ADDRS_PER_PEER: usize = 16;
/// Events kept for a slow consumer before gossip and requests are shed.
const MAX_QUEUED_EVENTS: usize = 8192;

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
}

impl EventLoop {
    pub(super) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        listeners: Vec<ListenerId>,
        ready: oneshot::Sender<()>,
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
        }
    }

    pub(super) async fn run(mut self, events: mpsc::Sender<NetEvent>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
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
                        let _ = reply.send(Err(NetError::Dial {
                            peer,
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::Subscribe(topic) => {
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .subscribe(&IdentTopic::new(topic))
                {
                    tracing::warn!("gossip subscribe failed: {e}");
                }
            }
            Command::Unsubscribe(topic) => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .unsubscribe(&IdentTopic::new(topic));
            }
            Command::Publish(topic, data, reply) => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(IdentTopic::new(topic), data)
                    .map(|_| ())
                    .map_err(|e| NetError::Publish(e.to_string()));
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
            Command::Status(reply) => {
                let connected = self
                    .swarm
                    .connected_peers()
                    .map(|p| (*p, self.addresses.get(p).cloned().unwrap_or_default()))
                    .collect();
                let _ = reply.send(NetStatus {
                    listen_addrs: self.swarm.listeners().cloned().collect(),
                    connected,
                });
            }
        }
    }

    fn emit(&mut self, event: NetEvent) {
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
                self.unreported.remove(&listener_id);
                if self.unreported.is_empty() {
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(());
                    }
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if endpoint.is_dialer() {
                    self.remember(peer_id, [endpoint.get_remote_address().clone()]);
                }
                for waiter in self.pending_dials.remove(&peer_id).unwrap_or_default() {
                    let _ = waiter.send(Ok(()));
                }
                if num_established.get() == 1 {
                    self.emit(NetEvent::Connected { peer: peer_id });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.emit(NetEvent::Disconnected { peer: peer_id });
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } if !self.swarm.is_connected(&peer) => {
                for waiter in self.pending_dials.remove(&peer).unwrap_or_default() {
                    let _ = waiter.send(Err(NetError::Dial {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                self.emit(NetEvent::Gossip {
                    topic: message.topic.into_string(),
                    source: message.source,
                    via: propagation_source,
                    id: message_id,
                    data: message.data,
                });
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic, .. }) => {
                self.emit(NetEvent::Subscribed {
                    peer: peer_id,
                    topic: topic.into_string(),
                });
            }
            BehaviourEvent::Sync(request_response::Event::Message { peer, message, .. }) => {
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => {
                        self.emit(NetEvent::Request {
                            peer,
                            data: request,
                            channel,
                        });
                    }
                    request_response::Message::Response {
                        request_id,
                        response,
                    } => {
                        if let Some((_, reply)) = self.pending_requests.remove(&request_id) {
                            let _ = reply.send(Ok(response));
                        }
                    }
                }
            }
            BehaviourEvent::Sync(request_response::Event::OutboundFailure {
                request_id,
                error,
                ..
            }) => {
                if let Some((peer, reply)) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                let addrs: Vec<Multiaddr> = info
                    .listen_addrs
                    .into_iter()
                    .take(MAX_ADDRS_PER_PEER)
                    .collect();
                self.remember(peer_id, addrs.iter().cloned());
                self.emit(NetEvent::Identified {
                    peer: peer_id,
                    addrs,
                });
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                let mut peers = HashSet::new();
                for (peer, addr) in found {
                    self.remember(peer, [addr]);
                    peers.insert(peer);
                }
                for peer in peers {
                    if !self.swarm.is_connected(&peer) {
                        let addrs = self.addresses.get(&peer).cloned().unwrap_or_default();
                        let _ = self
                            .swarm
                            .dial(DialOpts::peer_id(peer).addresses(addrs).build());
                    }
                }
            }
            _ => {}
        }
    }
}
