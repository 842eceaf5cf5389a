//! The event loop's DHT work: providing keys (and providing them again when the routing table
//! first fills and every [`REPROVIDE_INTERVAL`](super::REPROVIDE_INTERVAL)), provider lookups,
//! and dialling the providers found while the lookup still holds their addresses.

use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult, RecordKey};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::PeerId;
use tokio::sync::oneshot;

use super::{EventLoop, MAX_LOOKUPS};
use crate::net::DhtKey;

impl EventLoop {
    pub(super) fn provide_key(&mut self, key: DhtKey) {
        self.provided.insert(key);
        // Before the first DHT peer a provider record would reach nobody, and kad's store holds
        // several KB per key: the key is provided once the routing table fills.
        if self.dht_joined {
            self.provide(key);
        }
    }

    pub(super) fn unprovide_key(&mut self, key: DhtKey) {
        self.provided.remove(&key);
        self.swarm
            .behaviour_mut()
            .kad
            .stop_providing(&RecordKey::new(&key));
    }

    pub(super) fn find_providers(
        &mut self,
        key: DhtKey,
        reply: Option<oneshot::Sender<Vec<PeerId>>>,
    ) {
        if self.lookups.len() >= MAX_LOOKUPS {
            tracing::debug!("too many DHT lookups at once; dropped one");
            if let Some(reply) = reply {
                let _ = reply.send(Vec::new());
            }
            return;
        }
        let id = self
            .swarm
            .behaviour_mut()
            .kad
            .get_providers(RecordKey::new(&key));
        self.lookups.insert(id, (Vec::new(), reply));
    }

    fn provide(&mut self, key: DhtKey) {
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .kad
            .start_providing(RecordKey::new(&key))
        {
            tracing::warn!("cannot provide a DHT record: {e}");
        }
    }

    pub(super) fn provide_all(&mut self) {
        for key in self.provided.clone() {
            self.provide(key);
        }
    }

    pub(super) fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed {
                id,
                result: QueryResult::GetProviders(result),
                step,
                ..
            } => {
                if let Ok(GetProvidersOk::FoundProviders { providers, .. }) = result {
                    for peer in providers {
                        self.found_provider(id, peer);
                    }
                }
                if step.last {
                    if let Some((found, Some(reply))) = self.lookups.remove(&id) {
                        let _ = reply.send(found);
                    }
                }
            }
            kad::Event::RoutingUpdated { .. } if !self.dht_joined => {
                // Records provided while we knew no DHT peer reached nobody: announce them now.
                self.dht_joined = true;
                self.provide_all();
            }
            _ => {}
        }
    }

    /// Dials a provider while its lookup still holds the addresses the DHT returned for it.
    fn found_provider(&mut self, query: QueryId, peer: PeerId) {
        if peer == *self.swarm.local_peer_id() {
            return;
        }
        if let Some((found, _)) = self.lookups.get_mut(&query) {
            if !found.contains(&peer) {
                found.push(peer);
            }
        }
        if !self.swarm.is_connected(&peer) {
            let addrs = self.addresses.get(&peer).cloned().unwrap_or_default();
            if let Err(e) = self
                .swarm
                .dial(DialOpts::peer_id(peer).addresses(addrs).build())
            {
                tracing::debug!(%peer, "cannot dial a provider: {e}");
            }
        }
    }
}
