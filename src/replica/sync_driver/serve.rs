//! The sync driver's answering side of `/peerdoc/sync/1`: requests are limited per peer (a
//! flooding or garbage-sending peer is banned, see [`crate::core::limits`]), opened on the loop,
//! continuations answered there from the responder's transfers, and a start's diff is computed
//! by the room in a bounded task, then answered on the loop.

use std::time::Instant;

use libp2p::request_response::ResponseChannel;
use libp2p::PeerId;

use super::{Report, SyncDriver};
use crate::core::limits::Verdict;
use crate::core::sync::responder::{Opened, Refusal};
use crate::core::sync::{RequestBody, Responder, SyncResponse};
use crate::replica::room::{DiffAndSv, RoomError, RoomHandle};

impl SyncDriver {
    fn ban(&self, peer: PeerId, reason: &'static str) {
        if let Err(e) = self.net.try_ban(peer, reason) {
            tracing::debug!(%peer, "ban not sent: {e}");
        }
    }

    fn respond(&self, peer: PeerId, channel: ResponseChannel<Vec<u8>>, response: SyncResponse) {
        if let Err(e) = self.net.try_respond(channel, response.encode()) {
            tracing::debug!(%peer, "sync response dropped: {e}");
        }
    }

    pub(super) fn on_request(
        &mut self,
        peer: PeerId,
        data: &[u8],
        channel: ResponseChannel<Vec<u8>>,
    ) {
        match self.guard.request(&peer, Instant::now()) {
            Verdict::Serve => {}
            // Dropping the channel fails the request at the requester.
            Verdict::Refuse => return,
            Verdict::Ban => return self.ban(peer, "floods sync requests"),
        }
        let mut room = None;
        let opened = Responder::open(data, |topic| {
            let found = self.rooms.by_topic(topic)?;
            let keys = found.keys();
            room = Some(found);
            Some(keys)
        });
        let (room, body, epoch) = match (opened, room) {
            (Ok(Opened { body, epoch, .. }), Some(room)) => (room, body, epoch),
            (Err(refusal), _) => {
                // Asking for a document we do not hold is normal (it was deleted here), and so
                // is a key epoch we do not have yet; anything else is a broken or hostile peer.
                if !matches!(refusal, Refusal::UnknownDoc | Refusal::UnknownEpoch(_)) {
                    tracing::warn!(%peer, "refused a sync request: {refusal}");
                    if self.guard.fault(&peer, Instant::now()) == Verdict::Ban {
                        return self.ban(peer, "sends invalid sync requests");
                    }
                }
                return self.respond(peer, channel, refusal.response());
            }
            (Ok(_), None) => unreachable!("a request opens only with a room's key"),
        };
        if room.access().membership.is_revoked(&peer) {
            tracing::info!(doc = %room.id, %peer, "refused a sync request from a removed member");
            return self.respond(peer, channel, SyncResponse::BadRequest);
        }
        self.vouch(peer);
        // Answers are sealed in the request's epoch: the requester may not have a newer key.
        let keys = room.keys().answering(epoch);
        match body {
            RequestBody::Members(roster) => {
                let ours = self.roster(&room, peer);
                let response = crate::core::sync::members::seal_response(&keys, &room.topic, &ours);
                self.respond(peer, channel, response);
                self.meet(roster.members);
                let reports = self.reports.clone();
                let doc = room.id;
                self.spawn_task(async move {
                    match room.add_records(roster.certs, roster.grants).await {
                        // Its role may be known now: pull from it if it writes; and tell the
                        // others what we learned.
                        Ok(new) if new > 0 => {
                            let _ = reports.send(Report::PullWanted { peer, doc }).await;
                            let _ = reports.send(Report::RecordsLearned { doc }).await;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(%doc, %peer, "cannot store certificates: {e}"),
                    }
                });
            }
            RequestBody::Continue { transfer, offset } => {
                let response = self.responder.answer_continue(
                    &keys,
                    &room.topic,
                    transfer,
                    offset,
                    Instant::now(),
                );
                self.respond(peer, channel, response);
            }
            RequestBody::Start { sv, digest } => {
                let Ok(slot) = self.serve_slots.clone().try_acquire_owned() else {
                    // Dropping the channel fails the request at the requester, which retries.
                    tracing::debug!(%peer, "too many sync requests at once; refused one");
                    return;
                };
                let reports = self.reports.clone();
                self.spawn_task(async move {
                    let result = room.diff(sv.clone(), Some(digest)).await;
                    let ready = Report::DiffReady {
                        peer,
                        room,
                        epoch,
                        channel,
                        requester_sv: sv,
                        result,
                    };
                    let _ = reports.send(ready).await;
                    drop(slot);
                });
            }
        }
    }

    pub(super) fn answer_start(
        &mut self,
        peer: PeerId,
        room: RoomHandle,
        epoch: u32,
        channel: ResponseChannel<Vec<u8>>,
        requester_sv: Vec<u8>,
        result: Result<DiffAndSv, RoomError>,
    ) {
        let (diff, local_sv) = match result {
            Ok(diff_and_sv) => diff_and_sv,
            Err(e) => {
                tracing::warn!(doc = %room.id, %peer, "cannot serve sync: {e}");
                return self.respond(peer, channel, SyncResponse::BadRequest);
            }
        };
        let answer = self.responder.answer_start(
            &room.keys().answering(epoch),
            &room.topic,
            diff,
            local_sv,
            &requester_sv,
            Instant::now(),
            &mut rand::thread_rng(),
        );
        self.respond(peer, channel, answer.response);
        if answer.requester_ahead {
            self.want_pull(peer, room.id);
        }
    }
}
