//! The event loop's handling of behaviour events: gossip and sync requests and responses become
//! [`NetEvent`]s; identify, AutoNAT, relay, DCUtR, Kademlia and mDNS events update addresses,
//! reachability and the DHT.

use std::collections::HashSet;

use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{autonat, dcutr, gossipsub, identify, mdns, ping, relay, request_response, Multiaddr};

use super::{EventLoop, MAX_ADDRS_PER_PEER};
use crate::net::behaviour::{BehaviourEvent, KAD_PROTOCOL};
use crate::net::reachability::is_relayed;
use crate::net::{NetError, NetEvent};

impl EventLoop {
    pub(super) fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(event) => self.on_gossipsub(event),
            BehaviourEvent::Sync(event) => self.on_sync(event),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.identified(peer_id, info);
            }
            BehaviourEvent::Kad(event) => self.on_kad_event(event),
            BehaviourEvent::AutonatClient(autonat::v2::client::Event {
                tested_addr,
                result,
                server,
                ..
            }) => {
                tracing::debug!(addr = %tested_addr, ok = result.is_ok(), "AutoNAT test");
                let nat = self.reach.autonat_result(
                    &mut self.swarm,
                    server,
                    &tested_addr,
                    result.is_ok(),
                );
                self.follow_nat(nat);
            }
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            }) => {
                if !renewal {
                    tracing::info!(relay = %relay_peer_id, "relay reservation accepted");
                }
                self.reach.reservation_accepted(relay_peer_id);
            }
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => match result {
                Ok(_) => tracing::info!(peer = %remote_peer_id, "hole punched: direct connection"),
                Err(e) => tracing::debug!(peer = %remote_peer_id, "hole punching failed: {e}"),
            },
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => self.discovered(found),
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(e),
            }) if !matches!(e, ping::Failure::Unsupported) => {
                // Two pings in a row unanswered (libp2p reports the second failure; 20 s each,
                // 15 s apart): the other side is gone (asleep, its NAT mapping lost) or the
                // connection is dead. Left open, it would keep taking gossip for the peer from
                // the queue its live connections share.
                tracing::info!(%peer, "connection unresponsive, closing it: {e}");
                self.swarm.close_connection(connection);
            }
            _ => {}
        }
    }

    /// Gossip in, subscriptions, and peers too slow for what we send them.
    fn on_gossipsub(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                tracing::trace!(target: "peerdoc::stage", "net: gossip in");
                self.emit(NetEvent::Gossip {
                    topic: message.topic.into_string(),
                    via: propagation_source,
                    id: message_id,
                    data: message.data,
                });
            }
            gossipsub::Event::Subscribed { peer_id, topic, .. } => {
                self.rejoins.subscribed(peer_id);
                self.emit(NetEvent::Subscribed {
                    peer: peer_id,
                    topic: topic.into_string(),
                });
            }
            gossipsub::Event::Unsubscribed { peer_id, .. } => self.rejoins.unsubscribed(&peer_id),
            gossipsub::Event::SlowPeer { peer_id, .. } => self.gossip_overflowed(peer_id),
            _ => {}
        }
    }

    /// Sync requests in (to the consumer), and answers or failures of ours (to their caller).
    fn on_sync(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.emit(NetEvent::Request {
                peer,
                data: request,
                channel,
            }),
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some((_, reply)) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some((peer, reply)) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            _ => {}
        }
    }

    /// A peer told us where it listens and what it speaks: remember it; a relay becomes a
    /// reservation candidate, a DHT server a routing table entry.
    fn identified(&mut self, peer_id: libp2p::PeerId, info: identify::Info) {
        let addrs: Vec<Multiaddr> = info
            .listen_addrs
            .into_iter()
            .take(MAX_ADDRS_PER_PEER)
            .collect();
        self.remember(peer_id, addrs.iter().cloned());
        if info.protocols.contains(&relay::HOP_PROTOCOL_NAME) {
            // Reach the relay where it listens, preferring addresses off this machine.
            let mut candidates: Vec<&Multiaddr> = addrs.iter().filter(|a| !is_relayed(a)).collect();
            candidates.sort_by_key(|a| crate::net::is_loopback(a));
            if let Some(addr) = candidates.first() {
                self.reach
                    .relay_found(&mut self.swarm, peer_id, (*addr).clone());
            }
        }
        if info.protocols.contains(&KAD_PROTOCOL) {
            let kad = &mut self.swarm.behaviour_mut().kad;
            for addr in &addrs {
                kad.add_address(&peer_id, addr.clone());
            }
        }
        self.emit(NetEvent::Identified {
            peer: peer_id,
            addrs,
        });
    }

    /// Peers found on the LAN (mDNS): remember and dial them.
    fn discovered(&mut self, found: Vec<(libp2p::PeerId, Multiaddr)>) {
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

    /// Gossipsub dropped messages for `peer` (its queue was full): a connection that stays so
    /// is closed, and both sides redial.
    fn gossip_overflowed(&mut self, peer: libp2p::PeerId) {
        if self.stalls.overflowed(peer, std::time::Instant::now()) {
            tracing::warn!(%peer, "gossip to this peer is stalled: reconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }
}
