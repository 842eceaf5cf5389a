//! The composed libp2p [`Behaviour`] and the swarm built around it: TCP + Noise + Yamux and
//! QUIC; gossipsub (strict signing, messages validated by the caller), request-response on
//! `/peerdoc/sync/1`, identify, ping and optional mDNS.

use std::time::Duration;

use libp2p::gossipsub::{self, MessageAuthenticity};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, mdns, noise, ping, tcp, yamux, StreamProtocol, Swarm};

use super::codec::BytesCodec;
use super::{NetConfig, NetError};
use crate::core::sync::{MAX_GOSSIP_MESSAGE, PROTOCOL};

/// identify protocol version string.
const IDENTIFY_PROTOCOL: &str = "/peerdoc/id/1";

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) sync: request_response::Behaviour<BytesCodec>,
    pub(crate) identify: identify::Behaviour,
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
