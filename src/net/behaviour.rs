//! The composed libp2p [`Behaviour`] and the swarm built around it: TCP + Noise + Yamux, QUIC,
//! in-process memory (`/memory/N`, for many nodes in one test or benchmark), DNS, and circuit
//! relay v2 as a transport; a block list and connection and memory limits;
//! gossipsub (strict signing, peer scoring, messages validated by the caller), request-response on `/peerdoc/sync/1`, identify, ping, Kademlia, relay client
//! (and server with `--relay`), DCUtR hole punching, AutoNAT v2 (client and server), and
//! optional mDNS and UPnP.

use std::num::NonZeroU32;
use std::time::Duration;

use libp2p::core::{transport::MemoryTransport, upgrade::Version};
use libp2p::gossipsub::{self, MessageAuthenticity};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    allow_block_list, autonat, connection_limits, dcutr, identify, kad, mdns,
    memory_connection_limits, noise, ping, relay, tcp, upnp, yamux, StreamProtocol, Swarm,
    Transport,
};

use super::codec::BytesCodec;
use super::guard;
use super::{DhtMode, NetConfig, NetError, RelayLimits};
use crate::core::sync::{MAX_GOSSIP_MESSAGE, PROTOCOL};

/// gossipsub's mesh degree (D): the peers each node forwards a document's messages to.
pub const MESH_DEGREE: usize = 4;

/// identify protocol version string.
const IDENTIFY_PROTOCOL: &str = "/peerdoc/id/1";
/// Our Kademlia protocol: a DHT of peerdoc nodes only.
pub(crate) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/peerdoc/kad/1");

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Banned peers (see `guard::Bans`); first, so their connections are refused before any
    /// other behaviour sees them.
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    limits: connection_limits::Behaviour,
    memory: memory_connection_limits::Behaviour,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) sync: request_response::Behaviour<BytesCodec>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) relay_client: relay::client::Behaviour,
    relay: Toggle<relay::Behaviour>,
    dcutr: dcutr::Behaviour,
    autonat_client: autonat::v2::client::Behaviour,
    autonat_server: autonat::v2::server::Behaviour,
    upnp: Toggle<upnp::tokio::Behaviour>,
    ping: ping::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

pub(crate) fn build_swarm(
    keypair: Keypair,
    config: &NetConfig,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<Swarm<Behaviour>, NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_quic()
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                MemoryTransport::default()
                    .upgrade(Version::V1)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default()),
            )
        })
        .map_err(|e| setup(&e))?
        .with_dns()
        .map_err(|e| setup(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(&e))?
        // Bytes in and out per protocol stack, for `GET /metrics`.
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key, relay_client| {
            Ok(Behaviour {
                blocked: allow_block_list::Behaviour::default(),
                limits: connection_limits::Behaviour::new(guard::connection_limits(
                    config.max_connections,
                )),
                memory: memory_connection_limits::Behaviour::with_max_percentage(
                    guard::MAX_MEMORY_SHARE,
                ),
                gossipsub: gossipsub(registry)?,
                sync: request_response::Behaviour::with_codec(
                    BytesCodec,
                    [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(config.request_timeout),
                ),
                identify: identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                        .with_agent_version(format!("peerdoc/{}", env!("CARGO_PKG_VERSION"))),
                ),
                kad: kad(key, config.dht),
                relay_client,
                relay: Toggle::from(config.relay_server.as_ref().map(|limits| {
                    relay::Behaviour::new(key.public().to_peer_id(), relay_config(limits))
                })),
                dcutr: dcutr::Behaviour::new(key.public().to_peer_id()),
                autonat_client: autonat::v2::client::Behaviour::default(),
                autonat_server: autonat::v2::server::Behaviour::default(),
                upnp: Toggle::from(config.upnp.then(upnp::tokio::Behaviour::default)),
                ping: ping::Behaviour::default(),
                mdns: Toggle::from(config.mdns.then(|| mdns(key)).flatten()),
            })
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}

/// Message ids per IHAVE (and IWANT) list: about 11 KB, under a stock gossipsub's 16 KiB.
pub(crate) const IHAVE_IDS: usize = 500;
// An id on the wire: tag, length, 20 bytes; plus the topic name and the list's framing.
const _: () = assert!(IHAVE_IDS * 22 + 256 < 16 * 1024);

/// Gossip messages (publish and forward) queued for one peer at most.
pub(crate) const GOSSIP_SEND_QUEUE: usize = 128;

fn gossipsub(
    registry: &mut prometheus_client::registry::Registry,
) -> Result<gossipsub::Behaviour, String> {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .max_transmit_size(MAX_GOSSIP_MESSAGE)
        .heartbeat_interval(Duration::from_millis(700))
        // Anonymous: no author, sequence number or signature from gossipsub, which would check
        // the signature of every copy before its duplicate filter (a third of a node's CPU
        // while many edit; BENCHMARKS.md, row 6). The author signs inside the message instead
        // (`gossip::sign`), checked once per message after the filter. A receiver tells its
        // mesh at once that it has a message (IDONTWANT, gossipsub v1.2); since forwarding
        // waits for our validation, the copies it would have got are mostly not sent.
        .idontwant_message_size_threshold(0)
        // Each mesh peer sends a node its copy of every message (less what IDONTWANT saves):
        // a mesh of 4 instead of gossipsub's 6 brings the copies per node from about 6 to 3
        // (BENCHMARKS.md, row 11). In a document of up to five members, every member is in
        // every mesh. The author sends its own messages to every peer of the topic (flood
        // publishing), so each member it is connected to has them after one hop; that costs
        // one copy more at those peers only (row 11: 3.97 copies per node with or without it,
        // mean hops 3.10 -> 2.63; row 5 with 10 nodes: p50 3.7 -> 3.35 ms).
        .mesh_n(MESH_DEGREE)
        .mesh_n_low(3)
        .mesh_n_high(8)
        .flood_publish(true)
        .message_id_fn(message_id)
        // A slow or stalled peer's messages wait in a queue per peer; when it is full, new
        // messages for that peer are dropped (it catches up by anti-entropy pulls) instead of
        // the node buffering without bound: at most GOSSIP_SEND_QUEUE × 64 KiB per peer
        // (gossipsub's default is 5,000).
        .connection_handler_queue_len(GOSSIP_SEND_QUEUE)
        // A receiver closes a gossip stream whose control part (IHAVE lists) is over its limit
        // (16 KiB in a stock gossipsub), and after five such closes gossip on the connection is
        // dead for good. After a stall, the recent-message cache holds thousands of ids (22
        // bytes each on the wire): send at most IHAVE_IDS per list, and accept up to a whole
        // message's worth from others (older peerdoc nodes sent up to 5,000).
        .max_control_messages_sent(IHAVE_IDS)
        .max_control_message_size(MAX_GOSSIP_MESSAGE)
        .build()
        .map_err(|e| e.to_string())?;
    // Its metrics (messages received before and after the duplicate filter, mesh sizes, scores;
    // labelled by topic, bounded by gossipsub's own topic limit) go to `GET /metrics`.
    let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)
        .map_err(String::from)?
        .with_metrics(
            registry.sub_registry_with_prefix("gossipsub"),
            gossipsub::MetricsConfig::default(),
        );
    gossipsub.with_peer_score(guard::score_params(), guard::score_thresholds())?;
    Ok(gossipsub)
}

/// A message's id: 20 bytes of BLAKE3 over its data. Anonymous messages have no author or
/// sequence number; the data is unique anyway (every envelope has a random nonce).
fn message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    gossipsub::MessageId::new(&blake3::hash(&message.data).as_bytes()[..20])
}

fn kad(key: &Keypair, mode: DhtMode) -> kad::Behaviour<kad::store::MemoryStore> {
    let peer_id = key.public().to_peer_id();
    let mut kad = kad::Behaviour::with_config(
        peer_id,
        kad::store::MemoryStore::new(peer_id),
        kad::Config::new(KAD_PROTOCOL),
    );
    // `Auto` starts as a client; the event loop makes it a server once AutoNAT confirms a
    // direct public address (kad's own automatic mode would also count relayed addresses).
    kad.set_mode(Some(match mode {
        DhtMode::Server => kad::Mode::Server,
        DhtMode::Auto | DhtMode::Client => kad::Mode::Client,
    }));
    kad
}

fn mdns(key: &Keypair) -> Option<mdns::tokio::Behaviour> {
    match mdns::tokio::Behaviour::new(mdns::Config::default(), key.public().to_peer_id()) {
        Ok(mdns) => Some(mdns),
        Err(e) => {
            tracing::warn!("mDNS unavailable, LAN discovery is off: {e}");
            None
        }
    }
}

/// A relay server with limits high enough to carry document sync, rate-limited per peer and
/// per IP address.
fn relay_config(limits: &RelayLimits) -> relay::Config {
    let per_minute = |n: u32| NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
    let minute = Duration::from_secs(60);
    relay::Config {
        max_reservations: limits.max_reservations,
        max_reservations_per_peer: limits.max_reservations_per_peer,
        reservation_duration: Duration::from_secs(limits.reservation_duration_secs),
        max_circuits: limits.max_circuits,
        max_circuits_per_peer: limits.max_circuits_per_peer,
        max_circuit_duration: Duration::from_secs(limits.max_circuit_duration_secs),
        max_circuit_bytes: limits.max_circuit_bytes,
        reservation_rate_limiters: Vec::new(),
        circuit_src_rate_limiters: Vec::new(),
    }
    .reservation_rate_per_peer(per_minute(limits.reservations_per_minute_per_peer), minute)
    .reservation_rate_per_ip(per_minute(limits.reservations_per_minute_per_ip), minute)
    .circuit_src_per_peer(per_minute(limits.circuits_per_minute_per_peer), minute)
    .circuit_src_per_ip(per_minute(limits.circuits_per_minute_per_ip), minute)
}
