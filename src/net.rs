//! The libp2p side: the [`Behaviour`], the [`EventLoop`] task that alone owns the `Swarm`, and
//! the cloneable [`Net`] handle that everything else uses to reach it (commands in over a
//! channel, [`NetEvent`]s out). It knows peers, topics and bytes, nothing about documents.
//!
//! Transports: TCP + Noise + Yamux and QUIC. Behaviours: gossipsub (signed, manually validated
//! by the caller), request-response on `/peerdoc/sync/1` with a raw bytes codec, identify, ping
//! and (optionally) mDNS.

use std::collections::{HashMap, HashSet};
use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::core::transport::ListenerId;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{DialError, NetworkBehaviour, SwarmEvent};
use libp2p::{identify, mdns, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::actor::ask;
use crate::sync::{MAX_GOSSIP_MESSAGE, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, PROTOCOL};

/// identify protocol version string.
const IDENTIFY_PROTOCOL: &str = "/peerdoc/id/1";
/// Addresses remembered per peer.
const MAX_ADDRS_PER_PEER: usize = 16;
/// Events queued for a slow consumer before gossip and requests are shed.
const MAX_QUEUED_EVENTS: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot listen on {addr}: {reason}; pick another address with --listen")]
    Listen { addr: Multiaddr, reason: String },
    #[error("could not set up the network stack: {0}")]
    Setup(String),
    #[error("could not connect to peer {peer}: {reason}")]
    Dial { peer: PeerId, reason: String },
    #[error("request to {peer} failed: {reason}")]
    Request { peer: PeerId, reason: String },
    #[error("could not publish: {0}")]
    Publish(String),
    #[error("the network task has stopped")]
    Stopped,
}

/// Network settings.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub listen: Vec<Multiaddr>,
    pub mdns: bool,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Raw bytes over `/peerdoc/sync/1`: a request or response is the whole stream up to the
/// writer's close, bounded in size. Decoding the bytes is the caller's job (`sync`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesCodec;

async fn read_bounded<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(max as u64 + 1).read_to_end(&mut buf).await?;
    if buf.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message too large",
        ));
    }
    Ok(buf)
}

async fn write_all_close<T: AsyncWrite + Unpin + Send>(io: &mut T, data: &[u8]) -> io::Result<()> {
    io.write_all(data).await?;
    io.close().await
}

impl request_response::Codec for BytesCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_bounded(io, MAX_REQUEST_BYTES).await
    }
    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_bounded(io, MAX_RESPONSE_BYTES).await
    }
    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        write_all_close(io, &req).await
    }
    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()> {
        write_all_close(io, &res).await
    }
}

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<BytesCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

/// What the network tells the rest of the node.
#[derive(Debug)]
pub enum NetEvent {
    /// A gossip message; the receiver must answer with [`Net::validate`].
    Gossip {
        topic: String,
        /// The (signature-verified) author.
        source: Option<PeerId>,
        /// The neighbour that forwarded it.
        via: PeerId,
        id: MessageId,
        data: Vec<u8>,
    },
    /// A sync request; answer with [`Net::respond`].
    Request {
        peer: PeerId,
        data: Vec<u8>,
        channel: ResponseChannel<Vec<u8>>,
    },
    /// A connected peer subscribed to a topic.
    Subscribed {
        peer: PeerId,
        topic: String,
    },
    Connected {
        peer: PeerId,
    },
    Disconnected {
        peer: PeerId,
    },
    /// A peer told us where it listens.
    Identified {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    },
}

/// A connected peer as seen by the network.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerInfo {
    pub peer: String,
    pub addrs: Vec<String>,
}

/// Snapshot of the network's state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NetStatus {
    pub peer_id: String,
    pub listen_addrs: Vec<String>,
    pub connected: Vec<PeerInfo>,
}

enum Command {
    Dial(
        PeerId,
        Vec<Multiaddr>,
        oneshot::Sender<Result<(), NetError>>,
    ),
    AddAddrs(PeerId, Vec<Multiaddr>),
    Subscribe(String),
    Unsubscribe(String),
    Publish(String, Vec<u8>, oneshot::Sender<Result<(), NetError>>),
    Validate(MessageId, PeerId, MessageAcceptance),
    Request(PeerId, Vec<u8>, ResponseReply),
    Respond(ResponseChannel<Vec<u8>>, Vec<u8>),
    Status(oneshot::Sender<NetStatus>),
    IsConnected(PeerId, oneshot::Sender<bool>),
}

/// Cloneable handle to the network task.
#[derive(Clone)]
pub struct Net {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
}

impl Net {
    /// Builds the swarm, starts listening, and runs the event loop until `cancel` fires.
    /// Returns once every listener has reported an address (or after a few seconds).
    pub async fn spawn(
        keypair: Keypair,
        config: NetConfig,
        cancel: CancellationToken,
    ) -> Result<(Net, mpsc::Receiver<NetEvent>, tokio::task::JoinHandle<()>), NetError> {
        let peer_id = keypair.public().to_peer_id();
        let mut swarm = build_swarm(keypair, &config)?;
        let mut unreported = HashSet::new();
        for addr in &config.listen {
            let listener = swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
            unreported.insert(listener);
        }
        let (tx, rx) = mpsc::channel(256);
        let (events_tx, events_rx) = mpsc::channel(1024);
        let (ready_tx, ready_rx) = oneshot::channel();
        let event_loop = EventLoop {
            swarm,
            commands: rx,
            pending_dials: HashMap::new(),
            pending_requests: HashMap::new(),
            addresses: HashMap::new(),
            queue: std::collections::VecDeque::new(),
            unreported,
            ready: Some(ready_tx),
        };
        let task = tokio::spawn(event_loop.run(events_tx, cancel));
        let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx).await;
        Ok((Net { tx, peer_id }, events_rx, task))
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        ask(&self.tx, make).await.ok_or(NetError::Stopped)
    }

    async fn send(&self, cmd: Command) {
        // A stopped network drops fire-and-forget commands; its owner is shutting down.
        let _ = self.tx.send(cmd).await;
    }

    /// Connects to `peer` (trying `addrs` and any known addresses); resolves when connected.
    pub async fn dial(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), NetError> {
        self.call(|r| Command::Dial(peer, addrs, r)).await?
    }
    /// Remembers addresses for a peer (used when a request needs a connection).
    pub async fn add_addrs(&self, peer: PeerId, addrs: Vec<Multiaddr>) {
        self.send(Command::AddAddrs(peer, addrs)).await
    }
    pub async fn subscribe(&self, topic: String) {
        self.send(Command::Subscribe(topic)).await
    }
    pub async fn unsubscribe(&self, topic: String) {
        self.send(Command::Unsubscribe(topic)).await
    }
    pub async fn publish(&self, topic: String, data: Vec<u8>) -> Result<(), NetError> {
        self.call(|r| Command::Publish(topic, data, r)).await?
    }
    /// Verdict on a gossip message: accept (forward), reject (penalise sender) or ignore.
    pub async fn validate(&self, id: MessageId, via: PeerId, verdict: MessageAcceptance) {
        self.send(Command::Validate(id, via, verdict)).await
    }
    /// Sends a sync request and waits for the response.
    pub async fn request(&self, peer: PeerId, data: Vec<u8>) -> Result<Vec<u8>, NetError> {
        self.call(|r| Command::Request(peer, data, r)).await?
    }
    pub async fn respond(&self, channel: ResponseChannel<Vec<u8>>, data: Vec<u8>) {
        self.send(Command::Respond(channel, data)).await
    }
    pub async fn status(&self) -> Result<NetStatus, NetError> {
        self.call(Command::Status).await
    }
    pub async fn is_connected(&self, peer: PeerId) -> bool {
        self.call(|r| Command::IsConnected(peer, r))
            .await
            .unwrap_or(false)
    }
}

fn build_swarm(keypair: Keypair, config: &NetConfig) -> Result<Swarm<Behaviour>, NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let mdns_enabled = config.mdns;
    let request_timeout = config.request_timeout;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_quic()
        .with_behaviour(|key| {
            let gossip_config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Strict)
                .validate_messages()
                .max_transmit_size(MAX_GOSSIP_MESSAGE)
                .heartbeat_interval(Duration::from_millis(700))
                .build()
                .map_err(|e| e.to_string())?;
            let gossipsub =
                gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_config)?;
            let sync = request_response::Behaviour::with_codec(
                BytesCodec,
                [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(request_timeout),
            );
            let identify = identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                    .with_agent_version(format!("peerdoc/{}", env!("CARGO_PKG_VERSION"))),
            );
            let mdns = if mdns_enabled {
                match mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    key.public().to_peer_id(),
                ) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        tracing::warn!("mDNS unavailable, LAN discovery is off: {e}");
                        None
                    }
                }
            } else {
                None
            };
            Ok(Behaviour {
                gossipsub,
                sync,
                identify,
                ping: ping::Behaviour::default(),
                mdns: Toggle::from(mdns),
            })
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}

type ResponseReply = oneshot::Sender<Result<Vec<u8>, NetError>>;

/// Sole owner of the swarm.
struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    pending_dials: HashMap<PeerId, Vec<oneshot::Sender<Result<(), NetError>>>>,
    pending_requests: HashMap<OutboundRequestId, (PeerId, ResponseReply)>,
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
    /// Events waiting for room in the events channel. The loop never blocks on its consumer, so it keeps
    /// serving commands (a consumer waiting on a command can never deadlock with it).
    queue: std::collections::VecDeque<NetEvent>,
    /// Listeners that have not reported an address yet; `ready` fires when none are left.
    unreported: HashSet<ListenerId>,
    ready: Option<oneshot::Sender<()>>,
}

impl EventLoop {
    async fn run(mut self, events: mpsc::Sender<NetEvent>, cancel: CancellationToken) {
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
            Command::AddAddrs(peer, addrs) => self.remember(peer, addrs),
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
                let _ = reply.send(result);
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
                    .map(|p| PeerInfo {
                        peer: p.to_string(),
                        addrs: self
                            .addresses
                            .get(p)
                            .map(|a| a.iter().map(|a| a.to_string()).collect())
                            .unwrap_or_default(),
                    })
                    .collect();
                let _ = reply.send(NetStatus {
                    peer_id: self.swarm.local_peer_id().to_string(),
                    listen_addrs: self.swarm.listeners().map(|a| a.to_string()).collect(),
                    connected,
                });
            }
            Command::IsConnected(peer, reply) => {
                let _ = reply.send(self.swarm.is_connected(&peer));
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
