//! The libp2p side: the [`Net`] handle that everything else uses to reach the swarm (commands
//! in over a bounded channel, [`NetEvent`]s out), the event loop that alone owns the `Swarm`,
//! the composed behaviour and the sync protocol's byte codec. It knows peers, topics and bytes,
//! nothing about documents.
//!
//! | module | owns |
//! |---|---|
//! | [`behaviour`] | the composed `Behaviour` and the swarm built around it |
//! | [`event_loop`] | the task that alone owns the `Swarm` (behaviour events in `event_loop::events`, DHT work in `event_loop::dht`) |
//! | [`codec`] | raw, bounded bytes over `/peerdoc/sync/1` |
//! | [`reachability`] | NAT status, relay reservations, direct vs relayed connections |
//! | [`guard`] | peer scoring, connection limits, banned peers |
//! | [`stall`] | peers whose gossip queue stays full (their connection is recycled) |
//! | [`rejoin`] | reconnected peers that do not announce their subscriptions again (recycled too) |

use std::sync::Arc;
use std::time::Duration;

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::identity::Keypair;
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::actor::ask;

mod behaviour;
mod codec;
mod dial_error;
mod event_loop;
mod faults;
mod guard;
mod reachability;
mod rejoin;
mod stall;

#[cfg(feature = "testing")]
pub use behaviour::MESH_DEGREE;
#[cfg(feature = "test-faults")]
pub use faults::{FaultsParseError, MessageFaults};
pub(crate) use guard::DEFAULT_MAX_CONNECTIONS;
pub use reachability::NatStatus;
pub(crate) use reachability::{is_relayed, ConnectionKind};

/// Commands queued for the event loop. It never blocks, so the queue drains quickly; callers
/// that must not wait (the sync driver) use the `try_` methods and drop a command when full.
const COMMAND_QUEUE: usize = 1024;
/// Events queued for the consumer; beyond it the loop keeps its own bounded backlog.
const EVENT_QUEUE: usize = 1024;
/// How long [`Net::spawn`] waits for every listener to report an address.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

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
    #[error("the network task is overloaded; the command was dropped")]
    Busy,
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
    /// Whether this node answers DHT queries.
    pub dht: DhtMode,
    /// Ask the router for a port mapping (UPnP IGD).
    pub upnp: bool,
    /// Be a circuit relay v2 server with these limits.
    pub relay_server: Option<RelayLimits>,
    /// Inbound connections at most (more are refused).
    pub max_connections: u32,
    /// Test only: drop, duplicate and delay received messages.
    #[cfg(feature = "test-faults")]
    pub faults: Option<MessageFaults>,
}

impl NetConfig {
    /// Listening on `listen` only: no LAN discovery, no UPnP, a DHT client, no relay service,
    /// the default connection limit. (Tests and benchmarks change what they need.)
    #[cfg(any(test, feature = "testing"))]
    pub fn new(listen: Vec<Multiaddr>) -> NetConfig {
        NetConfig {
            listen,
            mdns: false,
            request_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(120),
            dht: DhtMode::Client,
            upnp: false,
            relay_server: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            #[cfg(feature = "test-faults")]
            faults: None,
        }
    }
}

/// Limits of a relay server. The defaults carry document sync (libp2p's defaults, 128 KiB and
/// 2 minutes per circuit, only suffice to coordinate a hole punch).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayLimits {
    /// Peers that may hold a reservation at once.
    pub max_reservations: usize,
    pub max_reservations_per_peer: usize,
    pub reservation_duration_secs: u64,
    /// Relayed connections at once.
    pub max_circuits: usize,
    pub max_circuits_per_peer: usize,
    /// A relayed connection is closed after this long or this many bytes (each way); peers
    /// then open a new one.
    pub max_circuit_duration_secs: u64,
    pub max_circuit_bytes: u64,
    pub reservations_per_minute_per_peer: u32,
    pub reservations_per_minute_per_ip: u32,
    pub circuits_per_minute_per_peer: u32,
    pub circuits_per_minute_per_ip: u32,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_reservations: 512,
            max_reservations_per_peer: 4,
            reservation_duration_secs: 3600,
            max_circuits: 256,
            max_circuits_per_peer: 16,
            max_circuit_duration_secs: 3600,
            max_circuit_bytes: 1 << 30,
            reservations_per_minute_per_peer: 10,
            reservations_per_minute_per_ip: 30,
            circuits_per_minute_per_peer: 30,
            circuits_per_minute_per_ip: 60,
        }
    }
}

/// Whether a node serves the DHT (stores records and answers queries) or only uses it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DhtMode {
    /// Server once the node knows it is publicly reachable (a confirmed external address).
    #[default]
    Auto,
    /// Always a server (relay and bootstrap nodes, and test networks without NAT).
    Server,
    /// Never a server.
    Client,
}

/// What the network tells the rest of the node.
#[derive(Debug)]
pub enum NetEvent {
    /// A gossip message; the receiver must answer with [`Net::try_validate`].
    Gossip {
        topic: String,
        /// The neighbour that forwarded it.
        via: PeerId,
        id: MessageId,
        data: Vec<u8>,
    },
    /// A sync request; answer with `Net::try_respond` (dropping the channel refuses it).
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
    /// Where this node can be reached now (listen and confirmed external addresses).
    Addresses(Vec<Multiaddr>),
}

/// Snapshot of the network's state.
#[derive(Debug, Clone)]
pub(crate) struct NetStatus {
    /// Listen addresses, including relayed (`/p2p-circuit`) ones.
    pub(crate) listen_addrs: Vec<Multiaddr>,
    /// Addresses others confirmed they can reach us at.
    pub(crate) external_addrs: Vec<Multiaddr>,
    pub(crate) nat: NatStatus,
    /// Relays holding a reservation for us.
    pub(crate) reservations: Vec<PeerId>,
    /// Connected peers with the addresses we know for them and how we are connected.
    pub(crate) connected: Vec<ConnectedPeer>,
}

/// A connected peer in [`NetStatus`].
#[derive(Debug, Clone)]
pub(crate) struct ConnectedPeer {
    pub(crate) peer: PeerId,
    pub(crate) addrs: Vec<Multiaddr>,
    pub(crate) kind: ConnectionKind,
}

type Reply<T> = oneshot::Sender<Result<T, NetError>>;

enum Command {
    Dial(PeerId, Vec<Multiaddr>, Reply<()>),
    Subscribe(String),
    Unsubscribe(String),
    /// The reply is optional: the sync driver publishes without waiting for the outcome.
    Publish(String, Vec<u8>, Option<Reply<()>>),
    Validate(MessageId, PeerId, MessageAcceptance),
    Ban(PeerId, &'static str),
    Request(PeerId, Vec<u8>, Reply<Vec<u8>>),
    Respond(ResponseChannel<Vec<u8>>, Vec<u8>),
    Status(oneshot::Sender<NetStatus>),
    Provide(DhtKey),
    Unprovide(DhtKey),
    /// Look up providers and dial them; the reply, if any, lists the providers found.
    FindProviders(DhtKey, Option<oneshot::Sender<Vec<PeerId>>>),
}

/// What a [`Net::detached`] handle was asked to publish (unit tests).
#[cfg(test)]
pub(crate) struct Published(mpsc::Receiver<Command>);

#[cfg(test)]
impl Published {
    /// The next message published: its topic name and bytes (other commands are skipped).
    pub(crate) async fn next(&mut self) -> Option<(String, Vec<u8>)> {
        while let Some(cmd) = self.0.recv().await {
            if let Command::Publish(topic, data, _) = cmd {
                return Some((topic, data));
            }
        }
        None
    }
}

/// A DHT key: 32 bytes (peerdoc provides document topics).
pub(crate) type DhtKey = [u8; 32];

/// Cloneable handle to the network task.
#[derive(Clone)]
pub struct Net {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    /// libp2p's bandwidth counters (read-only once the swarm is built).
    registry: Arc<prometheus_client::registry::Registry>,
}

impl Net {
    /// libp2p's metrics (bandwidth per protocol stack).
    pub(crate) fn registry(&self) -> &prometheus_client::registry::Registry {
        &self.registry
    }

    /// [`Net::registry`] as OpenMetrics text (the benchmark reads gossipsub's counters).
    #[cfg(feature = "testing")]
    pub fn metrics_text(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Builds the swarm, starts listening, and runs the event loop until `cancel` fires.
    /// Returns once every listener has reported an address (or after a few seconds).
    pub async fn spawn(
        keypair: Keypair,
        config: NetConfig,
        cancel: CancellationToken,
    ) -> Result<(Net, mpsc::Receiver<NetEvent>, JoinHandle<()>), NetError> {
        let peer_id = keypair.public().to_peer_id();
        let mut registry = prometheus_client::registry::Registry::default();
        let mut swarm = behaviour::build_swarm(keypair, &config, &mut registry)?;
        let mut listeners = Vec::new();
        for addr in &config.listen {
            let listener = swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
            listeners.push(listener);
        }
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let (ready_tx, ready_rx) = oneshot::channel();
        let event_loop =
            event_loop::EventLoop::new(swarm, rx, listeners, ready_tx, &config, &mut registry);
        let task = tokio::spawn(event_loop.run(events_tx, cancel));
        let _ = tokio::time::timeout(READY_TIMEOUT, ready_rx).await;
        let registry = Arc::new(registry);
        Ok((
            Net {
                tx,
                peer_id,
                registry,
            },
            events_rx,
            task,
        ))
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// A handle with no network behind it, and what is published through it (unit tests).
    #[cfg(test)]
    pub(crate) fn detached(peer_id: PeerId) -> (Net, Published) {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let net = Net {
            tx,
            peer_id,
            registry: Arc::default(),
        };
        (net, Published(rx))
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, NetError> {
        ask(&self.tx, make).await.ok_or(NetError::Stopped)?
    }

    async fn send(&self, cmd: Command) {
        // A stopped network drops fire-and-forget commands; its owner is shutting down.
        let _ = self.tx.send(cmd).await;
    }

    /// Queues a command without waiting: for callers that must never block on the network.
    fn try_send(&self, cmd: Command) -> Result<(), NetError> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => NetError::Busy,
            mpsc::error::TrySendError::Closed(_) => NetError::Stopped,
        })
    }

    /// Connects to `peer` (trying `addrs` and any known addresses); resolves when connected.
    pub async fn dial(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), NetError> {
        self.call(|r| Command::Dial(peer, addrs, r)).await
    }
    pub async fn subscribe(&self, topic: String) {
        self.send(Command::Subscribe(topic)).await
    }
    pub async fn unsubscribe(&self, topic: String) {
        self.send(Command::Unsubscribe(topic)).await
    }
    /// Publishes and waits for gossipsub's verdict (e.g. no peer subscribed yet).
    #[cfg(any(test, feature = "testing"))]
    pub async fn publish(&self, topic: String, data: Vec<u8>) -> Result<(), NetError> {
        self.call(|r| Command::Publish(topic, data, Some(r))).await
    }
    /// Publishes without waiting; the event loop logs what gossipsub says.
    pub(crate) fn try_publish(&self, topic: String, data: Vec<u8>) -> Result<(), NetError> {
        self.try_send(Command::Publish(topic, data, None))
    }
    /// Verdict on a gossip message: accept (forward), reject (penalise sender) or ignore.
    pub fn try_validate(
        &self,
        id: MessageId,
        via: PeerId,
        verdict: MessageAcceptance,
    ) -> Result<(), NetError> {
        self.try_send(Command::Validate(id, via, verdict))
    }
    /// Disconnects `peer` and refuses it for a while: it broke the protocol on purpose or
    /// floods (`reason` is logged).
    pub(crate) fn try_ban(&self, peer: PeerId, reason: &'static str) -> Result<(), NetError> {
        self.try_send(Command::Ban(peer, reason))
    }
    /// Sends a sync request and waits for the response.
    pub async fn request(&self, peer: PeerId, data: Vec<u8>) -> Result<Vec<u8>, NetError> {
        self.call(|r| Command::Request(peer, data, r)).await
    }
    /// Answers a sync request without waiting.
    pub(crate) fn try_respond(
        &self,
        channel: ResponseChannel<Vec<u8>>,
        data: Vec<u8>,
    ) -> Result<(), NetError> {
        self.try_send(Command::Respond(channel, data))
    }
    /// Announces in the DHT that this node holds `key` (re-announced while the node runs).
    pub(crate) async fn provide(&self, key: DhtKey) {
        self.send(Command::Provide(key)).await
    }
    pub(crate) async fn unprovide(&self, key: DhtKey) {
        self.send(Command::Unprovide(key)).await
    }
    /// Looks up who provides `key` in the DHT and dials them; returns the providers found
    /// (other than this node) once the lookup ends.
    pub(crate) async fn find_providers(&self, key: DhtKey) -> Result<Vec<PeerId>, NetError> {
        ask(&self.tx, |r| Command::FindProviders(key, Some(r)))
            .await
            .ok_or(NetError::Stopped)
    }
    /// [`Net::find_providers`] without waiting for the result: the dials are what matter.
    pub(crate) fn try_find_providers(&self, key: DhtKey) -> Result<(), NetError> {
        self.try_send(Command::FindProviders(key, None))
    }
    pub(crate) async fn status(&self) -> Result<NetStatus, NetError> {
        ask(&self.tx, Command::Status)
            .await
            .ok_or(NetError::Stopped)
    }
}

/// Whether an address is on this machine only.
pub(crate) fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(ip) => ip.is_loopback(),
        libp2p::multiaddr::Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}
