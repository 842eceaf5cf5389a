//! What a room publishes itself: its local edits and presence, queued while more commands wait,
//! then merged ([`gossip::coalesce`]: under load, fewer and larger messages; when idle, one edit
//! goes out alone and at once), sealed with the document's newest key, signed with this node's
//! identity and handed to the network loop. The room is the only publisher of its topic, so its
//! messages leave in the order it made them, without a hop through the sync driver on the
//! keystroke path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::Room;
use crate::core::sync::gossip::{self, Gossip};

/// Most messages a room queues before it publishes, however many commands still wait.
pub(super) const PUBLISH_BATCH: usize = 64;

/// A room's outgoing gossip: its topic, whether any peer listens, and what waits to go out.
pub(super) struct Publisher {
    topic: [u8; 32],
    topic_name: String,
    /// Some peer subscribed to the topic (the sync driver keeps it current). With none,
    /// nothing is sealed or signed: gossipsub would send it to no one, and peers that
    /// subscribe later pull.
    listened: Arc<AtomicBool>,
    queued: Vec<Gossip>,
    /// More commands waited when the current one was taken: queue, and publish merged once
    /// they are done. Otherwise what a command makes goes out at once.
    pub(super) busy: bool,
}

impl Publisher {
    pub(super) fn new(topic: [u8; 32], topic_name: String, listened: Arc<AtomicBool>) -> Publisher {
        Publisher {
            topic,
            topic_name,
            listened,
            queued: Vec::new(),
            busy: false,
        }
    }

    /// Whether the queue should go out now: nothing else waits for the room.
    pub(super) fn due(&self, more_waiting: bool) -> bool {
        !self.queued.is_empty() && !more_waiting
    }
}

impl Room {
    /// A local edit or presence change for the network: published at once when no other
    /// command waits, else queued (see [`Room::publish_queued`]).
    pub(super) fn send_out(&mut self, gossip: Gossip) {
        self.publisher.queued.push(gossip);
        if !self.publisher.busy || self.publisher.queued.len() >= PUBLISH_BATCH {
            self.publish_queued();
        }
    }

    /// Publishes what is queued. Local edits also go to the document's holders (they are told
    /// whether or not a peer listens: holders keep it for members offline now).
    pub(super) fn publish_queued(&mut self) {
        let queued = std::mem::take(&mut self.publisher.queued);
        let edits = queued
            .iter()
            .any(|g| matches!(g, Gossip::Update(_) | Gossip::Have(_)));
        if edits && self.access.membership.holds().any(|hold| hold.holds) {
            self.ctx.holding.changed(self.id);
        }
        if !self.publisher.listened.load(Ordering::Relaxed) {
            return;
        }
        let publisher = &self.publisher;
        for message in gossip::coalesce(queued) {
            let sealed = gossip::seal(&self.access.keys, &publisher.topic, &message);
            let signed = gossip::sign(&self.ctx.identity, &publisher.topic, &sealed);
            if let Err(e) = self
                .ctx
                .net
                .try_publish(publisher.topic_name.clone(), signed)
            {
                // Peers catch up at the next anti-entropy round.
                tracing::debug!(doc = %self.id, "gossip not sent: {e}");
            }
        }
        tracing::trace!(target: "peerdoc::stage", "room: sealed, signed, to the net");
    }
}
