//! Starting the network for a node: listen addresses (last run's ports when none are given),
//! the DHT mode, relay and UPnP settings, and the bootstrap peers.

use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Error, IDLE_CONNECTION_TIMEOUT};
use crate::config::Config;
use crate::data_dir::{DataDir, StickyPorts};
use crate::net::{DhtMode, Net, NetConfig, NetError, NetEvent};

/// `/…/p2p/<peer>` → (peer, address without the suffix).
pub(super) fn split_peer_addr(addr: &Multiaddr) -> Option<(PeerId, Vec<Multiaddr>)> {
    let mut base = addr.clone();
    match base.pop()? {
        Protocol::P2p(peer) => Some((peer, vec![base])),
        // The CLI and the config file refuse these; an embedding app's `Config` may not.
        _ => {
            tracing::warn!("ignoring bootstrap address {addr} without /p2p/<peer id>");
            None
        }
    }
}

/// Starts the network. Without explicit listen addresses, TCP and QUIC on all interfaces,
/// reusing last run's ports when they are free.
pub(super) async fn start_net(
    config: &Config,
    data_dir: &DataDir,
    keypair: Keypair,
    cancel: CancellationToken,
) -> Result<(Net, mpsc::Receiver<NetEvent>, JoinHandle<()>), Error> {
    let net_config = |listen| NetConfig {
        listen,
        mdns: config.mdns,
        request_timeout: config.request_timeout,
        idle_timeout: IDLE_CONNECTION_TIMEOUT,
        // A relay is public by nature, and a good place for others to find the DHT.
        dht: match (config.dht, &config.relay) {
            (DhtMode::Auto, Some(_)) => DhtMode::Server,
            (mode, _) => mode,
        },
        upnp: config.upnp,
        relay_server: config.relay.clone(),
        max_connections: config.max_connections,
        #[cfg(feature = "test-faults")]
        faults: config.message_faults,
    };
    if !config.listen.is_empty() {
        return Ok(Net::spawn(keypair, net_config(config.listen.clone()), cancel).await?);
    }
    let defaults = |ports: StickyPorts| -> Vec<Multiaddr> {
        vec![
            Multiaddr::empty()
                .with(Protocol::Ip4(std::net::Ipv4Addr::UNSPECIFIED))
                .with(Protocol::Tcp(ports.tcp)),
            Multiaddr::empty()
                .with(Protocol::Ip4(std::net::Ipv4Addr::UNSPECIFIED))
                .with(Protocol::Udp(ports.quic))
                .with(Protocol::QuicV1),
        ]
    };
    let sticky = data_dir.sticky_ports();
    let started = match Net::spawn(
        keypair.clone(),
        net_config(defaults(sticky)),
        cancel.clone(),
    )
    .await
    {
        Ok(started) => started,
        Err(NetError::Listen { .. }) if sticky != StickyPorts::default() => {
            Net::spawn(
                keypair,
                net_config(defaults(StickyPorts::default())),
                cancel,
            )
            .await?
        }
        Err(e) => return Err(e.into()),
    };
    // One port per transport (every interface address of a listener shares it).
    let mut ports = StickyPorts::default();
    for addr in started.0.status().await?.listen_addrs {
        for p in addr.iter() {
            match p {
                Protocol::Tcp(port) => ports.tcp = port,
                Protocol::Udp(port) => ports.quic = port,
                _ => {}
            }
        }
    }
    if let Err(e) = data_dir.save_sticky_ports(ports) {
        tracing::debug!("cannot remember listen ports: {e}");
    }
    Ok(started)
}
