//! The sync driver's answering side of `/peerdoc/sync/1`: requests are limited per peer (a
//! flooding or garbage-sending peer is banned, see [`crate::core::limits`]), opened on the loop,
//! admitted by the requester's role ([`crate::core::access::admission`]: members only, content
//! in the current key epoch only, everyone else gets the records that concern it),
//! continuations answered there from the responder's transfers, and a start's diff is computed
//! by the room in a bounded task, then answered on the loop. A member exchange's records are
//! added to the room before it is answered, so a joiner's own certificate counts at once.

use std::time::Instant;

use libp2p::request_response::ResponseChannel;
use libp2p::PeerId;

use super::{Report, SyncDriver};
use crate::core::access::admission::{admit, records_for, Admission, Asked};
use crate::core::access::{key_of, Cert};
use crate::core::blob::wire::BlobRequest;
use crate::core::blob::BLOB_WIRE;
use crate::core::hold::{HoldResponse, Refusal as HoldRefusal, HOLD_WIRE};
use crate::core::limits::Verdict;
use crate::core::sync::members::{self, Roster};
use crate::core::sync::responder::{Opened, Refusal};
use crate::core::sync::{RequestBody, Responder, SyncResponse};
use crate::replica::room::{DiffAndSv, RoomError, RoomHandle};

/// A member exchange a peer asked for, on its way through the room and back to the loop.
pub(super) struct MembersAsked {
    peer: PeerId,
    room: RoomHandle,
    /// The key epoch the request came in (the answer is sealed in it).
    epoch: u32,
    roster: Roster,
    channel: ResponseChannel<Vec<u8>>,
    /// Its records were news here.
    news: bool,
}

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
        let verdict = if data.first() == Some(&BLOB_WIRE) {
            self.guard.piece_request(&peer, Instant::now())
        } else {
            self.guard.request(&peer, Instant::now())
        };
        match verdict {
            Verdict::Serve => {}
            // Dropping the channel fails the request at the requester.
            Verdict::Refuse => return,
            Verdict::Ban => return self.ban(peer, "floods sync requests"),
        }
        if data.first() == Some(&BLOB_WIRE) {
            // A document without a room here may be one this node holds for others.
            if let (Ok(request), Some(held)) = (BlobRequest::decode(data), &self.settings.held) {
                if self.rooms.by_topic(&request.topic).is_none() {
                    return held.try_blob(&self.net, peer, request, channel);
                }
            }
            return self
                .settings
                .blobs
                .try_request(&self.net, peer, data.to_vec(), channel);
        }
        if data.first() == Some(&HOLD_WIRE) {
            return match &self.settings.held {
                Some(held) => held.try_request(&self.net, peer, data.to_vec(), channel),
                None => {
                    self.settings
                        .metrics
                        .refused("held", HoldRefusal::NotAHolder.as_str(), 1);
                    let refused = HoldResponse::Refused(HoldRefusal::NotAHolder).encode();
                    if let Err(e) = self.net.try_respond(channel, refused) {
                        tracing::debug!(%peer, "hold response dropped: {e}");
                    }
                }
            };
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
            (Err(refusal), room) => return self.refuse_unopened(peer, channel, refusal, room),
            (Ok(_), None) => unreachable!("a request opens only with a room's key"),
        };
        self.note_epoch(peer, room.id, epoch);
        match body {
            RequestBody::Members(roster) => self.on_members_request(MembersAsked {
                peer,
                room,
                epoch,
                roster,
                channel,
                news: false,
            }),
            RequestBody::Continue { transfer, offset } => {
                if let Err(records) = self.admission(peer, &room, epoch, Asked::Content, &[]) {
                    return self.respond(peer, channel, records);
                }
                let response = self.responder.answer_continue(
                    &room.keys().answering(epoch),
                    &room.topic,
                    transfer,
                    offset,
                    Instant::now(),
                );
                self.respond(peer, channel, response);
            }
            RequestBody::Start { sv, digest } => {
                if let Err(records) = self.admission(peer, &room, epoch, Asked::Content, &[]) {
                    return self.respond(peer, channel, records);
                }
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

    /// A request that did not open: answered as for a topic we do not hold, so a stranger
    /// learns nothing; counted; a key epoch we lack makes us ask the requester for our grant.
    fn refuse_unopened(
        &mut self,
        peer: PeerId,
        channel: ResponseChannel<Vec<u8>>,
        refusal: Refusal,
        room: Option<RoomHandle>,
    ) {
        match (&refusal, room) {
            // Asking for a document we do not hold is normal (it was deleted here).
            (Refusal::UnknownDoc, _) => {}
            // The requester is ahead: our key grant is on its way; ask for it now.
            (Refusal::UnknownEpoch(_), Some(room)) => {
                self.exchange_members(peer, room.id, true);
            }
            _ => {
                tracing::warn!(%peer, "refused a sync request: {refusal}");
                self.settings.metrics.refused("sync", refusal.as_str(), 1);
                if self.guard.fault(&peer, Instant::now()) == Verdict::Ban {
                    return self.ban(peer, "sends invalid sync requests");
                }
            }
        }
        self.respond(peer, channel, refusal.response());
    }

    /// Whether `peer` is served `asked` for `room` in `epoch`; if not, the `Records` response
    /// that tells it why (its removal, or its new key), counted and logged.
    fn admission(
        &self,
        peer: PeerId,
        room: &RoomHandle,
        epoch: u32,
        asked: Asked,
        presented: &[Cert],
    ) -> Result<(), SyncResponse> {
        let access = room.access();
        // A peer id that is no Ed25519 key can hold no role: an all-zero key has none.
        let key = key_of(&peer).unwrap_or([0; 32]);
        let current = access.keys.current().0;
        let me = self.settings.identity.public().to_bytes();
        match admit(&access.membership, &me, &key, epoch, current, asked) {
            Admission::Serve => Ok(()),
            Admission::RecordsOnly(why) => {
                let what = match asked {
                    Asked::Content => "sync",
                    Asked::Members => "members",
                };
                self.settings.metrics.refused(what, why.as_str(), 1);
                tracing::info!(doc = %room.id, %peer, epoch, reason = why.as_str(), "{what} request answered with membership records only");
                let certs = records_for(&access.membership, &key, presented);
                let keys = access.keys.answering(epoch);
                Err(members::seal_records(&keys, &room.topic, certs))
            }
        }
    }

    /// A member exchange: its records go to the room first (a joiner's certificate makes it a
    /// member), then [`SyncDriver::answer_members`] decides on the loop.
    fn on_members_request(&mut self, asked: MembersAsked) {
        let reports = self.reports.clone();
        self.spawn_task(async move {
            let mut asked = asked;
            let roster = &asked.roster;
            let (certs, grants, names) = (
                roster.certs.clone(),
                roster.grants.clone(),
                roster.names.clone(),
            );
            let holds = roster.holds.clone();
            let added = match asked.room.add_records(certs, grants, names).await {
                // Hold records after the certificates that make their issuers writers.
                Ok(new) => asked.room.add_holds(holds).await.map(|holds| new + holds),
                Err(e) => Err(e),
            };
            asked.news = match added {
                Ok(new) => new > 0,
                Err(e) => {
                    tracing::warn!(doc = %asked.room.id, peer = %asked.peer, "cannot store certificates: {e}");
                    false
                }
            };
            let _ = reports.send(Report::MembersAsked(asked)).await;
        });
    }

    /// Answers a member exchange whose records the room has: our roster's page, or only the
    /// records that concern a requester that is no member.
    pub(super) fn answer_members(&mut self, asked: MembersAsked) {
        let MembersAsked {
            peer,
            room,
            epoch,
            roster,
            channel,
            news,
        } = asked;
        if let Err(records) = self.admission(peer, &room, epoch, Asked::Members, &roster.certs) {
            return self.respond(peer, channel, records);
        }
        self.vouch(peer);
        self.heard_roster(peer, room.id);
        let mut ours = members::page(
            &room.access().membership,
            self.known_members(&room.topic, peer),
            roster.page,
        );
        if ours.page == 0 {
            let name = self.settings.name.borrow().clone();
            ours.names.splice(0..0, name);
        }
        let keys = room.keys().answering(epoch);
        self.respond(
            peer,
            channel,
            members::seal_response(&keys, &room.topic, &ours),
        );
        self.meet(roster.members);
        if news {
            // Its role may be known now: pull from it if it writes; and tell the others.
            self.want_pull(peer, room.id);
            self.spread_records(room.id);
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
        // A removal may have come in while the diff was computed.
        if let Err(records) = self.admission(peer, &room, epoch, Asked::Content, &[]) {
            return self.respond(peer, channel, records);
        }
        self.vouch(peer);
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
