//! The sync driver's gossip: handing received gossip to its room (bounded by the room's
//! queue), which reports the verdict to gossipsub. Edits are accepted only from authors the
//! document's membership makes writers. (A room publishes its own gossip: `room/publish`.)

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;
use tokio::sync::mpsc;

use super::{Report, SyncDriver};
use crate::core::access::admission::{admit_gossip, GossipVerdict};
use crate::core::access::{key_of, Role};
use crate::core::doc::DocId;
use crate::core::envelope::{envelope_epoch, EnvelopeError};
use crate::core::sync::gossip::{self, Gossip, Received};
use crate::core::sync::SyncError;
use crate::metrics::Metrics;
use crate::net::Net;
use crate::replica::room::RoomError;

impl SyncDriver {
    /// Opens one gossip message and hands it to its room in a task; the task reports the
    /// verdict to gossipsub (accept: forward, reject: penalise the sender, ignore: neither).
    pub(super) fn on_gossip(&mut self, topic: &str, via: PeerId, id: MessageId, data: &[u8]) {
        tracing::trace!(target: "peerdoc::stage", "sync driver: gossip in");
        let Some(room) = self.rooms.by_topic_name(topic) else {
            return report_verdict(&self.net, id, via, MessageAcceptance::Ignore);
        };
        // The author's signature, checked once per message (gossipsub's duplicate filter ran
        // before): only a member's key signs what a member may then be held to.
        let (author, sealed) = match gossip::verify(&room.topic, data) {
            Ok(signed) => signed,
            Err(e) => {
                tracing::warn!(doc = %room.id, peer = %via, "dropped gossip: {e}");
                return report_verdict(&self.net, id, via, MessageAcceptance::Reject);
            }
        };
        if let Ok(epoch) = envelope_epoch(sealed) {
            self.note_epoch(author, room.id, epoch);
        }
        // Who may do what, and the keys: taken once per message.
        let access = room.access();
        let message = match gossip::open(&access.keys, &room.topic, sealed) {
            Ok(message) => message,
            // A newer key than ours: not the sender's fault. Our grant is on its way; ask.
            Err(SyncError::Sealed(EnvelopeError::UnknownEpoch(epoch))) => {
                tracing::debug!(doc = %room.id, epoch, "gossip sealed with a key we do not have yet");
                self.exchange_members(self.nearest(author, via), room.id, true);
                return report_verdict(&self.net, id, via, MessageAcceptance::Ignore);
            }
            Err(e) => {
                tracing::warn!(doc = %room.id, peer = %author, "dropped gossip: {e}");
                return report_verdict(&self.net, id, via, MessageAcceptance::Reject);
            }
        };
        // Only writers edit; any member may show presence. An author whose role we do not know
        // yet is ignored (not penalised: the forwarder may know more) until its roster arrives.
        let needed = match message {
            Gossip::Update(_) | Gossip::Have(_) => Role::Writer,
            Gossip::Awareness(_) => Role::Reader,
        };
        let metrics = self.settings.metrics.clone();
        let author_key = key_of(&author).unwrap_or([0; 32]);
        match admit_gossip(&access.membership, &author_key, needed) {
            GossipVerdict::Accept => {}
            GossipVerdict::Removed => {
                metrics.refused("gossip", "removed", 1);
                tracing::warn!(doc = %room.id, peer = %author, "dropped gossip: its author was removed from the document");
                // A forwarder may not have heard of the removal yet: only the author is
                // penalised.
                let verdict = if via == author {
                    MessageAcceptance::Reject
                } else {
                    MessageAcceptance::Ignore
                };
                return report_verdict(&self.net, id, via, verdict);
            }
            GossipVerdict::NotAllowed(role) => {
                metrics.refused("gossip", "role", 1);
                tracing::warn!(doc = %room.id, peer = %author, "dropped gossip: a {} may not edit", role.as_str());
                return report_verdict(&self.net, id, via, MessageAcceptance::Reject);
            }
            GossipVerdict::Unknown => {
                metrics.refused("gossip", "unknown_author", 1);
                self.exchange_members(self.nearest(author, via), room.id, true);
                return report_verdict(&self.net, id, via, MessageAcceptance::Ignore);
            }
        }
        // No edit before a roster: a node back from offline learns the removals it missed
        // (and the claims a cut names) before it takes anything from a removed member.
        if needed == Role::Writer && !self.rosters.heard_any(&room.id) {
            metrics.refused("gossip", "roster_unheard", 1);
            self.exchange_members(self.nearest(author, via), room.id, true);
            return report_verdict(&self.net, id, via, MessageAcceptance::Ignore);
        }
        // Pull what is missing from the author when we can reach it.
        let pull_from = self.nearest(author, via);
        let net = self.net.clone();
        let reports = self.reports.clone();
        let doc = room.id;
        let settled_id = id.clone();
        tracing::trace!(target: "peerdoc::stage", "sync driver: signature and envelope checked");
        // The room reports the verdict itself once it has applied the message: no task and no
        // hop back through this loop on the keystroke path.
        let settle = move |received: Result<Received, RoomError>| {
            let verdict = verdict_of(received, doc, author, pull_from, &metrics, &reports);
            report_verdict(&net, settled_id, via, verdict);
        };
        if !room.try_receive_gossip(message, author, Box::new(settle)) {
            // Its queue is full (dropped: a duplicate from now on for gossipsub): fetched by a
            // pull instead, not left to the next anti-entropy round.
            tracing::debug!(doc = %room.id, "room is behind on gossip; pulling instead");
            self.want_pull(pull_from, room.id);
            report_verdict(&self.net, id, via, MessageAcceptance::Ignore);
        }
    }

    /// Whom to ask about a message's author: the author when connected, else the neighbour
    /// that forwarded the message.
    fn nearest(&self, author: PeerId, via: PeerId) -> PeerId {
        if self.connected.contains(&author) {
            author
        } else {
            via
        }
    }
}

/// What the room's handling of a gossip message means for gossipsub; asks for a pull or an
/// exchange with `pull_from` where the message showed one is due.
fn verdict_of(
    received: Result<Received, RoomError>,
    doc: DocId,
    author: PeerId,
    pull_from: PeerId,
    metrics: &Metrics,
    reports: &mpsc::Sender<Report>,
) -> MessageAcceptance {
    // Called on the room's task, which never waits for this loop: a full report queue only
    // leaves the pull to the next anti-entropy round.
    let want = |report: Report| {
        if let Err(e) = reports.try_send(report) {
            tracing::debug!(%doc, "pull after gossip left to anti-entropy: {e}");
        }
    };
    match received {
        // Through a client no writer claimed (yet): it comes by a pull after the claim.
        Ok(received) if received.unclaimed => {
            metrics.refused("gossip", "unclaimed", 1);
            tracing::debug!(%doc, peer = %author, "edit through an unclaimed client: pulled once its claim is here");
            want(Report::ExchangeWanted {
                peer: pull_from,
                doc,
            });
            MessageAcceptance::Ignore
        }
        Ok(received) => {
            if received.pull {
                want(Report::PullWanted {
                    peer: pull_from,
                    doc,
                });
            }
            MessageAcceptance::Accept
        }
        // Full here is not the sender's fault (stored sizes differ between replicas).
        Err(e @ RoomError::TooLarge(_)) => {
            tracing::warn!(%doc, peer = %author, "dropped gossip: {e}");
            MessageAcceptance::Ignore
        }
        Err(e) => {
            if let RoomError::Doc(_) = e {
                // Bytes no replica takes (malformed, or shared types nested too deep).
                metrics.refused("gossip", "malformed", 1);
            }
            tracing::warn!(%doc, peer = %author, "dropped gossip: {e}");
            MessageAcceptance::Reject
        }
    }
}

/// Tells gossipsub whether to forward (accept), penalise the sender (reject) or neither.
fn report_verdict(net: &Net, id: MessageId, via: PeerId, verdict: MessageAcceptance) {
    if let Err(e) = net.try_validate(id, via, verdict) {
        tracing::debug!("gossip verdict dropped: {e}");
    }
}
