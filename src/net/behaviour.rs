//! The composed libp2p [`Behaviour`] and the swarm built around it: TCP + Noise + Yamux and
//! QUIC; gossipsub (strict signing, messages validated by the caller), request-response on
//! `/peerdoc/sync/1`, identify, ping and optional mDNS.

use std::time::Duration;

use libp2p::gossipsub::{self, MessageAuthenticity};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, kad, mdns, noise, ping, tcp, yamux, StreamProtocol, Swarm};

use super::codec::BytesCodec;
use super::{DhtMode, NetConfig, NetError};
use crate::core::sync::{MAX_GOSSIP_MESSAGE, PROTOCOL};

/// identify protocol version string.
const IDENTIFY_PROTOCOL: &str = "/peerdoc/id/1";
/// Our Kademlia protocol: a DHT of peerdoc nodes only.
pub(crate) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/peerdoc/kad/1");

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) sync: request_response::Behaviour<BytesCodec>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    ping: ping::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

pub(crate) fn build_swarm(
    keypair: Keypair,
    config: &NetConfig,
) -> Result<Swarm<Behaviour>, NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let mdns_enabled = config.mdns;
    let request_timeout = config.request_timeout;
    let dht_mode = config.dht;
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
            let peer_id = key.public().to_peer_id();
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad::Config::new(KAD_PROTOCOL),
            );
            kad.set_mode(match dht_mode {
                DhtMode::Auto => None,
                DhtMode::Server => Some(kad::Mode::Server),
                DhtMode::Client => Some(kad::Mode::Client),
            });
            Ok(Behaviour {
                gossipsub,
                sync,
                identify,
                kad,
                ping: ping::Behaviour::default(),
                mdns: Toggle::from(mdns),
            })
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}
